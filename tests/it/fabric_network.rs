//! A network made by Fabric's own tools (`../shared/fabric-1.4.12`: configtxgen's
//! `kafka-two-orgs.block` and cryptogen's crypto): three OSNs boot from the block, their brokers
//! overridden to the mock cluster, and run that network: block 0 is the file byte for byte, the
//! configuration shows as configtxlator showed it, a channel is created as `peer channel create`
//! creates one, and cryptogen's users write and read it as the block's policies say.

use std::path::{Path, PathBuf};
use std::time::Duration;

use osn::identity::SigningIdentity;
use osn::proto::Block;
use prost::Message as _;

use crate::harness::*;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fabric-1.4.12")
}

/// A cryptogen identity: `org` under `crypto/`, `who` an `orderers/…`, `users/…` or `peers/…`
/// directory, as `msp_id`.
fn cryptogen(org: &str, who: &str, msp_id: &str) -> SigningIdentity {
    let dir = shared().join("crypto").join(org).join(who).join("msp");
    SigningIdentity::load_as(&dir, Some(msp_id)).unwrap()
}

const ORDERERS: &str = "ordererOrganizations/example.com";
const ORG1: &str = "peerOrganizations/org1.example.com";
const ORG2: &str = "peerOrganizations/org2.example.com";

/// `GET /v1/channels/{channel}/{what}` as `reader`, protobuf: the status and the body.
async fn get(osn: &Osn, channel: &str, what: &str, reader: &SigningIdentity, accept: &str) -> (u16, bytes::Bytes) {
    let mut resp = client()
        .get(format!("{}/v1/channels/{channel}/{what}", osn.url))
        .insert_header(("Accept", accept))
        .insert_header(("Authorization", osn::cli::client::read_authorization(reader, channel)))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.body().limit(64 << 20).await.unwrap())
}

#[actix_rt::test]
async fn three_osns_boot_from_configtxgens_block_and_run_its_network() {
    let genesis_file = shared().join("genesis/kafka-two-orgs.block");
    let broker = Broker::start();
    broker.kafka.create_topic("syschannel", 1).unwrap();
    broker.kafka.create_topic("ch1", 1).unwrap();
    // cryptogen's two orderers, and the orderer organisation's admin (a member too, which is
    // what the block's BlockValidation policy asks of a block's signer).
    let mut osns = Vec::new();
    for (n, who) in ["orderers/orderer.example.com", "orderers/orderer2.example.com", "users/Admin@example.com"]
        .into_iter()
        .enumerate()
    {
        let node = FabricNode {
            genesis: genesis_file.clone(),
            msp_dir: shared().join("crypto").join(ORDERERS).join(who).join("msp"),
            msp_id: "OrdererMSP".into(),
        };
        let spec =
            OsnSpec { fabric: Some(node), osn_identity: n, create: false, ..OsnSpec::new("syschannel", &broker) };
        osns.push(Osn::start(spec).await);
    }
    let orderer_admin = cryptogen(ORDERERS, "users/Admin@example.com", "OrdererMSP");
    let file = std::fs::read(&genesis_file).unwrap();
    let fabric_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shared().join("genesis/kafka-two-orgs.json")).unwrap()).unwrap();
    for osn in &osns {
        // Block 0 is configtxgen's, byte for byte.
        let (code, block0) = get(osn, "syschannel", "blocks/0", &orderer_admin, "application/x-protobuf").await;
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&block0));
        assert_eq!(block0.as_ref(), file.as_slice(), "block 0 on {}", osn.url);
        // The configuration, as configtxlator decoded the same block.
        let (code, config) = get(osn, "syschannel", "config", &orderer_admin, "application/json").await;
        assert_eq!(code, 200);
        let ours: serde_json::Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(
            ours, fabric_json["data"]["data"][0]["payload"]["data"]["config"],
            "the configuration on {}",
            osn.url
        );
        // The system channel is the orderer organisation's: Org1's admin does not read it.
        let org1_admin = cryptogen(ORG1, "users/Admin@org1.example.com", "Org1MSP");
        let (code, _) = get(osn, "syschannel", "config", &org1_admin, "application/json").await;
        assert_eq!(code, 403);
    }

    // ch1, as `peer channel create` creates it from configtx.yaml's Org1Channel profile: Org1's
    // admin approves a creation update of SampleConsortium with Org1MSP, sent through OSN 1.
    let org1_admin = cryptogen(ORG1, "users/Admin@org1.example.com", "Org1MSP");
    let create = osn::cli::channel::ChannelCreate {
        channel: "ch1".into(),
        organizations: vec!["Org1MSP".into()],
        consortium: "SampleConsortium".into(),
    };
    let info = osn::cli::channel::create_channel(&osns[1].endpoint(), &org1_admin, &[], &create).await.unwrap();
    assert_eq!(info.name, "ch1");
    for osn in &osns {
        wait_ready(osn, "ch1").await;
    }
    // Org2's admin may not create a channel of Org1 (ChannelCreationPolicy: the members' admins).
    let org2_admin = cryptogen(ORG2, "users/Admin@org2.example.com", "Org2MSP");
    let ch2 = osn::cli::channel::ChannelCreate { channel: "ch2".into(), ..create.clone() };
    let refused = osn::cli::channel::create_channel(&osns[0].endpoint(), &org2_admin, &[], &ch2).await.unwrap_err();
    assert!(format!("{refused:#}").contains("403 BAD_REQUEST"), "{refused:#}");

    // Org1's user writes; Org2's user is no member of ch1.
    let user1 = cryptogen(ORG1, "users/User1@org1.example.com", "Org1MSP");
    let sent: Vec<_> = (0..20).map(|_| osn::cli::client::transaction(&user1, "ch1", 300)).collect();
    broadcast_all(&format!("{}/v1/channels/ch1/broadcast", osns[2].url), &sent, 4).await;
    let outsider = cryptogen(ORG2, "users/User1@org2.example.com", "Org2MSP");
    let (code, answer) = broadcast(
        &format!("{}/v1/channels/ch1/broadcast", osns[0].url),
        &osn::cli::client::transaction(&outsider, "ch1", 300),
    )
    .await;
    assert_eq!(code, 403, "{answer:?}");

    // Every OSN cuts the same chain, each block signed by an orderer organisation member
    // cryptogen made, verified against the block's orderer organisation.
    let orderer_msp =
        osn::identity::fabric_msp::verifying_config(&shared().join("crypto").join(ORDERERS).join("msp"), "OrdererMSP")
            .unwrap();
    let orderer_org =
        osn::core::msp::Organization::from_pem("OrdererMSP", &orderer_msp.root_certs, &orderer_msp.intermediate_certs)
            .unwrap();
    let mut views = Vec::new();
    for osn in &osns {
        let chain = wait_for("20 transactions on ch1", Duration::from_secs(60), || async {
            let (_, raw) = get(osn, "ch1", "blocks/newest", &user1, "application/x-protobuf").await;
            let newest = Block::decode(raw).ok()?;
            let height = newest.header.as_ref()?.number + 1;
            let mut chain = Vec::new();
            for n in 0..height {
                let (code, raw) = get(osn, "ch1", &format!("blocks/{n}"), &user1, "application/x-protobuf").await;
                assert_eq!(code, 200);
                chain.push(Block::decode(raw).unwrap());
            }
            let txs: usize = chain.iter().skip(1).map(|b| b.data.as_ref().unwrap().data.len()).sum();
            (txs >= 20).then_some(chain)
        })
        .await;
        let mut verifier = osn::core::verify_chain::ChainVerifier::new(vec![orderer_org.clone()]);
        for block in &chain {
            verifier.check(block).unwrap_or_else(|bad| panic!("{}: {bad}", osn.url));
        }
        views.push(chain.iter().map(consensus_view).collect::<Vec<_>>());
    }
    assert!(views.iter().all(|v| *v == views[0]), "identical chains");
    // ch1's configuration: the template of SampleConsortium with Org1MSP, at sequence 1.
    let (_, raw) = get(&osns[0], "ch1", "config", &user1, "application/x-protobuf").await;
    let bundle =
        osn::core::channelconfig::Bundle::new("ch1", osn::proto::common::Config::decode(raw).unwrap()).unwrap();
    assert_eq!(bundle.values.sequence, 1);
    assert_eq!(bundle.values.consortium.as_deref(), Some("SampleConsortium"));
    assert_eq!(bundle.values.batch_size.max_message_count, 10, "configtx.yaml's BatchSize");
    let mut msps: Vec<&String> = bundle.validator.policies().msps.keys().collect();
    msps.sort();
    assert_eq!(msps, ["OrdererMSP", "Org1MSP"]);
}
