//! configtxgen's own genesis block, rebuilt: the KafkaTwoOrgsOrdererGenesis profile of
//! `../shared/fabric-1.4.12/configtx.yaml` over cryptogen's MSP directories gives the same
//! configuration (every value's bytes, every policy, every version and mod_policy) and the same
//! block around it, given configtxgen's time and nonce.

use std::path::{Path, PathBuf};

use super::*;
use crate::core::configtx::same_group;
use crate::identity::fabric_msp::verifying_config;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fabric-1.4.12")
}

fn msp(dir: &str, id: &str) -> FabricMspConfig {
    verifying_config(&shared().join("crypto").join(dir).join("msp"), id).unwrap()
}

fn two_orgs() -> SystemProfile {
    let mut profile = SystemProfile::kafka(vec!["127.0.0.1:9092".into()], vec!["127.0.0.1:7050".into()]);
    profile.batch_timeout = "250ms".into();
    profile.batch_size = BatchSize { max_message_count: 10, absolute_max_bytes: 1048576, preferred_max_bytes: 262144 };
    profile.orderer_organizations =
        vec![Organization::orderer("OrdererOrg", msp("ordererOrganizations/example.com", "OrdererMSP"))];
    profile.consortiums = vec![Consortium {
        name: "SampleConsortium".into(),
        members: vec![
            Organization::application("Org1MSP", msp("peerOrganizations/org1.example.com", "Org1MSP")),
            Organization::application("Org2MSP", msp("peerOrganizations/org2.example.com", "Org2MSP")),
        ],
    }];
    profile
}

#[test]
fn the_two_orgs_profile_rebuilds_configtxgens_genesis_block() {
    let raw = std::fs::read(shared().join("genesis/kafka-two-orgs.block")).unwrap();
    let fabric = Block::decode(raw.as_slice()).unwrap();
    let envelope = Envelope::decode(fabric.data.as_ref().unwrap().data[0].clone()).unwrap();
    let payload = Payload::decode(envelope.payload.clone()).unwrap();
    let header = payload.header.clone().unwrap();
    let channel_header = ChannelHeader::decode(header.channel_header.clone()).unwrap();
    let signature_header = SignatureHeader::decode(header.signature_header.clone()).unwrap();
    let theirs = ConfigEnvelope::decode(payload.data.clone()).unwrap().config.unwrap();

    let ours = system_config(&two_orgs());
    assert_eq!(ours.sequence, theirs.sequence);
    assert!(
        same_group(ours.channel_group.as_ref().unwrap(), theirs.channel_group.as_ref().unwrap()),
        "ours:\n{}\n\nconfigtxgen's:\n{}",
        crate::core::configtree::json::config(&ours).unwrap(),
        crate::core::configtree::json::config(&theirs).unwrap()
    );

    let nonce: [u8; 24] = signature_header.nonce.as_ref().try_into().unwrap();
    let block = genesis_block("syschannel", &ours, channel_header.timestamp.unwrap().seconds, nonce);
    // Everything but the configuration's bytes (Go writes its maps in random order) is
    // configtxgen's, byte for byte.
    let our_envelope = Envelope::decode(block.data.as_ref().unwrap().data[0].clone()).unwrap();
    let our_payload = Payload::decode(our_envelope.payload.clone()).unwrap();
    assert_eq!(our_payload.header, payload.header, "channel and signature headers (tx_id included)");
    assert_eq!(our_envelope.signature, envelope.signature);
    assert_eq!(block.metadata, fabric.metadata, "five empty metadata entries");
    let (h, f) = (block.header.as_ref().unwrap(), fabric.header.as_ref().unwrap());
    assert_eq!((h.number, &h.previous_hash), (f.number, &f.previous_hash));
    // The data hash is over our bytes: the block is consistent with itself.
    assert_eq!(h.data_hash.to_vec(), crate::core::block::data_hash(&block.data.as_ref().unwrap().data));

    // And the block boots: the chain reads it as a Kafka system channel.
    let bundle = crate::core::channelconfig::Bundle::new("syschannel", ours).unwrap();
    assert_eq!(bundle.values.kafka_brokers, vec!["127.0.0.1:9092".to_owned()]);
}

#[test]
fn configtxgens_or_of_roles_compiles_as_fabrics_dsl() {
    // OR('Org1MSP.admin', 'Org1MSP.client'), as kafka-two-orgs.block holds Org1's Writers.
    let p = any_of("Org1MSP", &[MspRoleType::Admin, MspRoleType::Client]);
    let json = crate::core::configtree::json::policy(&Policy {
        r#type: PolicyType::Signature as i32,
        value: p.encode_to_vec().into(),
    })
    .unwrap();
    let text = json.to_string();
    assert!(text.contains(r#""n":1"#) && text.contains(r#""signed_by":1"#), "{text}");
    assert!(text.contains("CLIENT") && text.contains("ADMIN"), "{text}");
}

#[test]
fn the_creation_update_is_configtxgens_without_acls() {
    let raw = std::fs::read(shared().join("envelopes/create-channel-tx-unsigned.pb")).unwrap();
    let envelope = Envelope::decode(raw.as_slice()).unwrap();
    let update_envelope = crate::core::configtx::config_update_envelope(&envelope).unwrap();
    let mut theirs = crate::proto::common::ConfigUpdate::decode(update_envelope.config_update).unwrap();
    // The Org1Channel profile sets the sample ACLs; OSN's update leaves them to the peers' defaults.
    let app = theirs.write_set.as_mut().unwrap().groups.iter_mut().find(|g| g.key == "Application").unwrap();
    app.value.as_mut().unwrap().values.retain(|v| v.key != "ACLs");
    let ours = creation_update("ch1", "SampleConsortium", &["Org1MSP".into()], &["V1_4_2".into()]);
    assert_eq!(ours.channel_id, theirs.channel_id);
    assert!(same_group(ours.read_set.as_ref().unwrap(), theirs.read_set.as_ref().unwrap()));
    assert!(same_group(ours.write_set.as_ref().unwrap(), theirs.write_set.as_ref().unwrap()));
}
