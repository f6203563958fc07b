//! Fabric's MSPs and policies on Fabric-made material: the MSPs of `kafka-two-orgs.block`
//! (cryptogen's organisations, NodeOUs on) judging cryptogen's identities, the block's own
//! signature policies, and NOutOf / implicit-meta tables.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message as _;

use super::*;
use crate::core::configtree::{walk, Item, Msp, Rule, Value};
use crate::proto::common::{ConfigEnvelope, SignaturePolicy as Rules};
use crate::proto::msp::SerializedIdentity;
use crate::proto::{Block, Envelope, Payload};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fabric-1.4.12")
}

/// The MSPs and signature policies of the genesis block, by path.
fn genesis() -> (HashMap<String, FabricMsp>, HashMap<String, SignaturePolicyEnvelope>) {
    let raw = std::fs::read(shared().join("genesis/kafka-two-orgs.block")).unwrap();
    let block = Block::decode(raw.as_slice()).unwrap();
    let payload = Payload::decode(Envelope::decode(block.data.unwrap().data[0].clone()).unwrap().payload).unwrap();
    let config = ConfigEnvelope::decode(payload.data).unwrap().config.unwrap();
    let (mut msps, mut policies) = (HashMap::new(), HashMap::new());
    walk(config.channel_group.as_ref().unwrap(), "/Channel", &mut |path, item| match item {
        Item::Value(key, bytes) => {
            if let Ok(Value::Msp(msp)) = Value::decode(key, bytes) {
                let Msp::Fabric(config) = *msp else { panic!("{path}: not a Fabric MSP") };
                let msp = FabricMsp::from_config(&config).unwrap_or_else(|e| panic!("{path}: {e}"));
                msps.insert(msp.msp_id.clone(), msp);
            }
        }
        Item::Policy(policy) => {
            if let Ok(Rule::Signature(envelope)) = Rule::decode(policy) {
                policies.insert(path.to_owned(), envelope);
            }
        }
    });
    (msps, policies)
}

/// A cryptogen identity: its certificate under `msp/signcerts`, as `msp_id` claims it.
fn identity(org: &str, who: &str, msp_id: &str) -> (Identity, Bytes) {
    let dir = shared().join("crypto").join(org).join(who).join("msp/signcerts");
    let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let pem = std::fs::read(file).unwrap();
    let serialized = SerializedIdentity { mspid: msp_id.into(), id_bytes: pem.into() }.encode_to_vec();
    (Identity::deserialize(&serialized).unwrap(), serialized.into())
}

const ORG1: &str = "peerOrganizations/org1.example.com";
const ORG2: &str = "peerOrganizations/org2.example.com";
const ORDERER: &str = "ordererOrganizations/example.com";

#[test]
fn cryptogen_identities_have_the_roles_their_node_ous_give() {
    let (msps, _) = genesis();
    assert_eq!(msps.len(), 3, "OrdererMSP, Org1MSP and Org2MSP: {:?}", msps.keys());
    let roles = [MspRoleType::Member, MspRoleType::Admin, MspRoleType::Client, MspRoleType::Peer, MspRoleType::Orderer];
    let cases = [
        (ORG1, "users/Admin@org1.example.com", "Org1MSP", [true, true, false, false, false]),
        (ORG1, "users/User1@org1.example.com", "Org1MSP", [true, false, true, false, false]),
        (ORG1, "peers/peer0.org1.example.com", "Org1MSP", [true, false, false, true, false]),
        (ORDERER, "orderers/orderer.example.com", "OrdererMSP", [true, false, false, false, true]),
        (ORDERER, "users/Admin@example.com", "OrdererMSP", [true, true, false, false, false]),
        // Org2's user claiming to be Org1's: not issued by Org1's CA.
        (ORG2, "users/User1@org2.example.com", "Org1MSP", [false; 5]),
        // An MSP ID no organisation has.
        (ORG1, "users/User1@org1.example.com", "NoSuchMSP", [false; 5]),
    ];
    for (org, who, msp_id, want) in cases {
        let (id, _) = identity(org, who, msp_id);
        let got: Vec<bool> = roles.iter().map(|r| msps.get(msp_id).is_some_and(|msp| msp.has_role(&id, *r))).collect();
        assert_eq!(got, want, "{who} as {msp_id}: {roles:?}");
    }
}

#[test]
fn the_genesis_blocks_own_policies_admit_whom_configtx_yaml_says() {
    let (msps, policies) = genesis();
    let policy = |path: &str| SignaturePolicy::compile(&policies[path]).unwrap();
    let org1 = "/Channel/Consortiums/SampleConsortium/Org1MSP";
    let (admin, user, peer) = (
        identity(ORG1, "users/Admin@org1.example.com", "Org1MSP"),
        identity(ORG1, "users/User1@org1.example.com", "Org1MSP"),
        identity(ORG1, "peers/peer0.org1.example.com", "Org1MSP"),
    );
    let outsider = identity(ORG2, "users/User1@org2.example.com", "Org2MSP");
    // Readers OR(admin, peer, client), Writers OR(admin, client), Admins OR(admin).
    let table = [
        ("Readers", [true, true, true, false]),
        ("Writers", [true, true, false, false]),
        ("Admins", [true, false, false, false]),
    ];
    for (name, want) in table {
        let p = policy(&format!("{org1}/{name}"));
        let got: Vec<bool> =
            [&admin, &user, &peer, &outsider].iter().map(|s| p.satisfied_by(&[(*s).clone()], &msps)).collect();
        assert_eq!(got, want, "{name}: admin, user, peer, Org2's user");
    }
    // The orderer organisation's Writers: any member.
    let orderer = identity(ORDERER, "orderers/orderer.example.com", "OrdererMSP");
    assert!(policy("/Channel/Orderer/OrdererOrg/Writers").satisfied_by(&[orderer], &msps));
    assert!(!policy("/Channel/Orderer/OrdererOrg/Writers").satisfied_by(&[user], &msps));
}

fn role(msp_id: &str, role: MspRoleType) -> MspPrincipal {
    MspPrincipal {
        principal_classification: Classification::Role as i32,
        principal: MspRole { msp_identifier: msp_id.into(), role: role as i32 }.encode_to_vec().into(),
    }
}

fn signed_by(i: i32) -> Rules {
    Rules { r#type: Some(signature_policy::Type::SignedBy(i)) }
}

fn n_of(n: i32, rules: Vec<Rules>) -> Rules {
    Rules { r#type: Some(signature_policy::Type::NOutOf(signature_policy::NOutOf { n, rules })) }
}

#[test]
fn n_out_of_counts_each_signer_once_as_fabric_does() {
    let (msps, _) = genesis();
    let admin = identity(ORG1, "users/Admin@org1.example.com", "Org1MSP");
    let user = identity(ORG1, "users/User1@org1.example.com", "Org1MSP");
    let org2_user = identity(ORG2, "users/User1@org2.example.com", "Org2MSP");
    let envelope = |rule: Rules, identities: Vec<MspPrincipal>| {
        SignaturePolicy::compile(&SignaturePolicyEnvelope { version: 0, rule: Some(rule), identities }).unwrap()
    };
    let member = || role("Org1MSP", MspRoleType::Member);
    // Two Org1 members: the same signer twice is one signer.
    let two_members = envelope(n_of(2, vec![signed_by(0), signed_by(1)]), vec![member(), member()]);
    assert!(!two_members.satisfied_by(&[user.clone(), user.clone()], &msps));
    assert!(two_members.satisfied_by(&[user.clone(), admin.clone()], &msps));
    // An admin and a member: one admin cannot be both.
    let admin_and_member =
        envelope(n_of(2, vec![signed_by(0), signed_by(1)]), vec![role("Org1MSP", MspRoleType::Admin), member()]);
    assert!(!admin_and_member.satisfied_by(std::slice::from_ref(&admin), &msps));
    assert!(admin_and_member.satisfied_by(&[admin.clone(), user.clone()], &msps));
    // Both organisations (Fabric's AND), and one of them (OR).
    let both =
        envelope(n_of(2, vec![signed_by(0), signed_by(1)]), vec![member(), role("Org2MSP", MspRoleType::Member)]);
    assert!(!both.satisfied_by(std::slice::from_ref(&user), &msps));
    assert!(both.satisfied_by(&[org2_user.clone(), user.clone()], &msps));
    let either =
        envelope(n_of(1, vec![signed_by(0), signed_by(1)]), vec![member(), role("Org2MSP", MspRoleType::Member)]);
    assert!(either.satisfied_by(&[org2_user], &msps));
    assert!(!either.satisfied_by(&[], &msps));
    // Nested: 1 of (2 of (admin, member)) with one admin fails; zero-of-anything holds.
    let nested = envelope(
        n_of(1, vec![n_of(2, vec![signed_by(0), signed_by(1)])]),
        vec![role("Org1MSP", MspRoleType::Admin), member()],
    );
    assert!(!nested.satisfied_by(std::slice::from_ref(&admin), &msps));
    assert!(envelope(n_of(0, vec![]), vec![]).satisfied_by(&[], &msps));
    // The very identity as a principal.
    let exactly = MspPrincipal { principal_classification: Classification::Identity as i32, principal: user.1.clone() };
    let only_user = envelope(signed_by(0), vec![exactly]);
    assert!(only_user.satisfied_by(std::slice::from_ref(&user), &msps));
    assert!(!only_user.satisfied_by(&[admin], &msps));
    // A rule naming an identity the envelope does not have is refused when compiled.
    let bad = SignaturePolicyEnvelope { version: 0, rule: Some(signed_by(3)), identities: vec![member()] };
    assert!(SignaturePolicy::compile(&bad).unwrap_err().contains("names no identity"));
}

#[test]
fn implicit_meta_thresholds_are_fabrics() {
    use implicit_meta_policy::Rule::{All, Any, Majority};
    let table = [(0, [0, 0, 0]), (1, [1, 1, 1]), (2, [1, 2, 2]), (3, [1, 3, 2]), (4, [1, 4, 3]), (5, [1, 5, 3])];
    for (n, [any, all, majority]) in table {
        assert_eq!(
            [implicit_meta_threshold(Any, n), implicit_meta_threshold(All, n), implicit_meta_threshold(Majority, n)],
            [any, all, majority],
            "{n} sub-policies"
        );
    }
}

#[test]
fn with_node_ous_an_identity_without_a_configured_role_ou_is_no_member() {
    let raw = std::fs::read(shared().join("genesis/kafka-two-orgs.block")).unwrap();
    let block = Block::decode(raw.as_slice()).unwrap();
    let payload = Payload::decode(Envelope::decode(block.data.unwrap().data[0].clone()).unwrap().payload).unwrap();
    let config = ConfigEnvelope::decode(payload.data).unwrap().config.unwrap();
    let mut org1 = None;
    walk(config.channel_group.as_ref().unwrap(), "/Channel", &mut |path, item| {
        if let (true, Item::Value(key, bytes)) = (path.ends_with("/Org1MSP/MSP"), item) {
            if let Ok(Value::Msp(msp)) = Value::decode(key, bytes) {
                if let Msp::Fabric(config) = *msp {
                    org1 = Some(*config);
                }
            }
        }
    });
    // The same MSP, but its clients are "customers": cryptogen's User1 (OU client) holds none of
    // the configured role OUs, so it is no member at all; the admin is unaffected.
    let mut config = org1.unwrap();
    config.fabric_node_ous.as_mut().unwrap().client_ou_identifier.as_mut().unwrap().organizational_unit_identifier =
        "customers".into();
    let msp = FabricMsp::from_config(&config).unwrap();
    let (user, _) = identity(ORG1, "users/User1@org1.example.com", "Org1MSP");
    let (admin, _) = identity(ORG1, "users/Admin@org1.example.com", "Org1MSP");
    assert!(!msp.is_member(&user) && !msp.has_role(&user, MspRoleType::Client));
    assert!(msp.has_role(&admin, MspRoleType::Admin));
    // Without NodeOUs every issued identity is a member, and only listed admins are admins
    // (cryptogen lists none: its admins are admins by OU).
    config.fabric_node_ous = None;
    let msp = FabricMsp::from_config(&config).unwrap();
    assert!(msp.is_member(&user) && msp.is_member(&admin));
    assert!(!msp.has_role(&admin, MspRoleType::Admin));
}

/// The policies of the configuration in block `number` of the single run's ch1, with its sequence.
fn ch1_policies(number: u64) -> (u64, Policies) {
    let raw = std::fs::read(shared().join(format!("runs/single/blocks/ch1/{number}.block"))).unwrap();
    let block = Block::decode(raw.as_slice()).unwrap();
    let payload = Payload::decode(Envelope::decode(block.data.unwrap().data[0].clone()).unwrap().payload).unwrap();
    let config = ConfigEnvelope::decode(payload.data).unwrap().config.unwrap();
    (config.sequence, Policies::of(config.channel_group.as_ref().unwrap()).unwrap())
}

/// Every NORMAL record Fabric's orderer took into ch1's partition in the single run (broadcast by
/// `broadcast_msg` as User1@org1, Admin@example.com and, after Org2 joined, User1@org2; some of
/// them re-submitted after a configuration change): its signature verifies, and its creator
/// satisfies `/Channel/Writers` (implicit meta over the application and orderer groups, down to
/// each organisation's signature policy) of the configuration it was ordered under. Org2's
/// envelopes would not have been admitted before Org2 was added.
#[test]
fn every_envelope_fabric_ordered_satisfies_the_channel_writers_of_its_configuration() {
    use crate::proto::{kafka_message, kafka_message_regular::Class, KafkaMessage};
    use base64::Engine as _;
    let configs: HashMap<u64, Policies> = [0, 19, 28].into_iter().map(ch1_policies).collect();
    let mut sequences: Vec<u64> = configs.keys().copied().collect();
    sequences.sort();
    // A channel created through the system channel starts at sequence 1.
    assert_eq!(sequences, vec![1, 2, 3]);
    let topic = std::fs::read_to_string(shared().join("runs/single/topics/ch1.jsonl")).unwrap();
    let mut by_msp: HashMap<String, usize> = HashMap::new();
    let mut before_org2 = 0;
    for line in topic.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let value = base64::engine::general_purpose::STANDARD.decode(record["value"].as_str().unwrap()).unwrap();
        let Some(kafka_message::Type::Regular(regular)) = KafkaMessage::decode(value.as_slice()).unwrap().r#type else {
            continue;
        };
        if regular.class != Class::Normal as i32 {
            continue;
        }
        let at = format!("offset {}", record["offset"]);
        let envelope = Envelope::decode(regular.payload).unwrap();
        let payload = Payload::decode(envelope.payload.clone()).unwrap();
        let header = crate::proto::SignatureHeader::decode(payload.header.unwrap().signature_header).unwrap();
        let identity = Identity::deserialize(&header.creator).unwrap();
        identity
            .cert
            .public_key
            .verify(&envelope.payload, &envelope.signature)
            .unwrap_or_else(|e| panic!("{at}: {e:?}"));
        let signer = (identity.clone(), header.creator.clone());
        let policies = &configs[&regular.config_seq];
        assert!(policies.evaluate("/Channel/Writers", std::slice::from_ref(&signer)), "{at}: {}", identity.msp_id);
        assert!(
            !policies.evaluate("/Channel/Admins", std::slice::from_ref(&signer)) || identity.msp_id == "OrdererMSP"
        );
        if identity.msp_id == "Org2MSP" {
            assert!(!configs[&1].evaluate("/Channel/Writers", std::slice::from_ref(&signer)), "{at}");
            before_org2 += 1;
        }
        *by_msp.entry(identity.msp_id).or_default() += 1;
    }
    assert!(by_msp.len() == 3 && by_msp.values().all(|n| *n > 0), "{by_msp:?}");
    assert!(before_org2 > 0);
    assert_eq!(by_msp.values().sum::<usize>(), 414, "the run's NORMAL records: {by_msp:?}");
}

/// `/Channel/Admins` is MAJORITY over the application and orderer groups, each MAJORITY over its
/// organisations' Admins: on ch1 (Org1 only) it takes an Org1 admin *and* an orderer admin.
#[test]
fn channel_admins_take_a_majority_of_groups_each_by_a_majority_of_organisations() {
    let (_, policies) = ch1_policies(0);
    let org1_admin = identity(ORG1, "users/Admin@org1.example.com", "Org1MSP");
    let orderer_admin = identity(ORDERER, "users/Admin@example.com", "OrdererMSP");
    let org1_user = identity(ORG1, "users/User1@org1.example.com", "Org1MSP");
    let admins = |signers: &[(Identity, Bytes)]| policies.evaluate("/Channel/Admins", signers);
    assert!(admins(&[org1_admin.clone(), orderer_admin.clone()]));
    assert!(!admins(std::slice::from_ref(&org1_admin)));
    assert!(!admins(std::slice::from_ref(&orderer_admin)));
    assert!(!admins(&[org1_user.clone(), orderer_admin.clone()]));
    assert!(policies.evaluate("/Channel/Application/Admins", std::slice::from_ref(&org1_admin)));
    assert!(!policies.evaluate("/Channel/Application/Admins", &[org1_user]));
    assert!(!policies.evaluate("/Channel/NoSuchPolicy", &[org1_admin, orderer_admin]), "a missing policy rejects");
}
