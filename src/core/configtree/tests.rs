//! Every configuration Fabric 1.4.12 wrote in `../shared/fabric-1.4.12/` (configtxgen's genesis
//! blocks, and the config and channel-creation blocks of the recorded runs, as each orderer stored
//! them) decodes into typed values and policies, and every part re-encodes to the bytes Fabric wrote.

use std::path::{Path, PathBuf};

use prost::Message as _;

use super::*;
use crate::proto::common::{ConfigEnvelope, ConfigUpdate, ConfigUpdateEnvelope};
use crate::proto::{Block, Envelope, HeaderType, Payload};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fabric-1.4.12")
}

fn blocks(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            blocks(&path, out);
        } else if path.extension().is_some_and(|e| e == "block") {
            out.push(path);
        }
    }
}

/// What the walk over one configuration found.
#[derive(Default)]
struct Seen {
    configs: usize,
    updates: usize,
    /// Groups whose entries are not in key order (Go writes maps in random order).
    unsorted: usize,
    values: std::collections::BTreeMap<String, usize>,
    policies: usize,
}

/// Checks one CONFIG envelope's configuration (and its last update) re-encodes exactly.
fn check_config(raw: &[u8], at: &str, seen: &mut Seen) {
    let envelope = ConfigEnvelope::decode(raw).unwrap_or_else(|e| panic!("{at}: ConfigEnvelope: {e}"));
    assert_eq!(envelope.encode_to_vec(), raw, "{at}: ConfigEnvelope re-encodes to other bytes");
    let config = envelope.config.as_ref().unwrap_or_else(|| panic!("{at}: no config"));
    let group = config.channel_group.as_ref().unwrap_or_else(|| panic!("{at}: no channel group"));
    seen.configs += 1;
    seen.unsorted += unsorted_groups(group);
    walk(group, "/Channel", &mut |path, item| match item {
        Item::Value(key, bytes) => {
            let value = Value::decode(key, bytes).unwrap_or_else(|e| panic!("{at} {path}: {e}"));
            assert_eq!(value.encode(), bytes.to_vec(), "{at} {path}: the value re-encodes to other bytes");
            *seen.values.entry(key.to_owned()).or_default() += 1;
        }
        Item::Policy(policy) => {
            let rule = Rule::decode(policy).unwrap_or_else(|e| panic!("{at} {path}: {e}"));
            assert_eq!(rule.encode(), policy.value.to_vec(), "{at} {path}: the policy re-encodes to other bytes");
            seen.policies += 1;
        }
    });
    if let Some(update) = &envelope.last_update {
        check_update(update, at, seen);
    }
}

/// How many groups of the tree hold their groups, values or policies out of key order.
fn unsorted_groups(group: &crate::proto::common::ConfigGroup) -> usize {
    let sorted = |keys: Vec<&str>| keys.windows(2).all(|w| w[0] <= w[1]);
    let own = !(sorted(group.groups.iter().map(|e| e.key.as_str()).collect())
        && sorted(group.values.iter().map(|e| e.key.as_str()).collect())
        && sorted(group.policies.iter().map(|e| e.key.as_str()).collect()));
    own as usize + group.groups.iter().filter_map(|e| e.value.as_ref()).map(unsorted_groups).sum::<usize>()
}

/// A CONFIG_UPDATE envelope: its ConfigUpdateEnvelope and ConfigUpdate re-encode exactly, and
/// the values its write set carries decode.
fn check_update(envelope: &Envelope, at: &str, seen: &mut Seen) {
    let payload = Payload::decode(envelope.payload.clone()).unwrap();
    let update_envelope = ConfigUpdateEnvelope::decode(payload.data.clone()).unwrap();
    assert_eq!(update_envelope.encode_to_vec(), payload.data.to_vec(), "{at}: ConfigUpdateEnvelope");
    let update = ConfigUpdate::decode(update_envelope.config_update.clone()).unwrap();
    assert_eq!(update.encode_to_vec(), update_envelope.config_update.to_vec(), "{at}: ConfigUpdate");
    seen.updates += 1;
    for set in [&update.read_set, &update.write_set].into_iter().flatten() {
        walk(set, "/Channel", &mut |path, item| {
            if let Item::Value(key, bytes) = item {
                // A read set carries versions only: its values are empty.
                if !bytes.is_empty() {
                    let value = Value::decode(key, bytes).unwrap_or_else(|e| panic!("{at} update {path}: {e}"));
                    assert_eq!(value.encode(), bytes.to_vec(), "{at} update {path}");
                }
            }
        });
    }
}

/// Every CONFIG envelope of a block, directly or inside an ORDERER_TRANSACTION.
fn check_block(path: &Path, seen: &mut Seen) {
    let raw = std::fs::read(path).unwrap();
    let block = Block::decode(raw.as_slice()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (i, data) in block.data.as_ref().unwrap().data.iter().enumerate() {
        let at = format!("{} data[{i}]", path.strip_prefix(shared()).unwrap_or(path).display());
        let Ok(envelope) = Envelope::decode(data.clone()) else { continue };
        let Ok(payload) = Payload::decode(envelope.payload.clone()) else { continue };
        let Some(header) = payload.header.as_ref() else { continue };
        let Ok(channel_header) = crate::core::envelope::decode_channel_header(header.channel_header.clone()) else {
            continue;
        };
        match HeaderType::try_from(channel_header.r#type) {
            Ok(HeaderType::Config) => check_config(&payload.data, &at, seen),
            Ok(HeaderType::OrdererTransaction) => {
                let inner = Envelope::decode(payload.data.clone()).unwrap();
                let inner_payload = Payload::decode(inner.payload.clone()).unwrap();
                check_config(&inner_payload.data, &format!("{at} (ORDERER_TRANSACTION)"), seen);
            }
            _ => {}
        }
    }
}

#[test]
fn every_configuration_fabric_wrote_decodes_typed_and_re_encodes_to_its_bytes() {
    let root = shared();
    assert!(root.is_dir(), "{} is missing: the shared Fabric data sits beside the checkout", root.display());
    let mut files = Vec::new();
    blocks(&root, &mut files);
    files.sort();
    assert!(files.len() >= 100, "{} block files", files.len());
    let mut seen = Seen::default();
    for file in &files {
        check_block(file, &mut seen);
    }
    // The three genesis blocks, each run's system channel (genesis and the creation of ch1) and
    // ch1's genesis and config updates, as each orderer stored them.
    assert!(seen.configs >= 20, "{} configurations", seen.configs);
    assert!(seen.updates >= 5, "{} updates", seen.updates);
    assert!(seen.policies > 100, "{} policies", seen.policies);
    // Go wrote most groups' maps out of key order: a map type (sorted or hashed) would re-encode
    // them to other bytes; entries in their order do not.
    assert!(seen.unsorted > 10, "{} groups out of key order", seen.unsorted);
    eprintln!(
        "{} configurations, {} updates, {} policies, {} groups out of key order",
        seen.configs, seen.updates, seen.policies, seen.unsorted
    );
    for key in [
        "HashingAlgorithm",
        "BlockDataHashingStructure",
        "OrdererAddresses",
        "Consortium",
        "Capabilities",
        "ConsensusType",
        "BatchSize",
        "BatchTimeout",
        "KafkaBrokers",
        "ChannelRestrictions",
        "MSP",
        // AnchorPeers too, but no recorded run set anchor peers (they come by a later update).
        "ACLs",
        "ChannelCreationPolicy",
    ] {
        assert!(seen.values.contains_key(key), "no {key} value in any configuration: {:?}", seen.values);
    }
}

#[test]
fn kafka_two_orgs_genesis_holds_what_configtx_yaml_says() {
    let raw = std::fs::read(shared().join("genesis/kafka-two-orgs.block")).unwrap();
    let block = Block::decode(raw.as_slice()).unwrap();
    let data = &block.data.as_ref().unwrap().data[0];
    let payload = Payload::decode(Envelope::decode(data.clone()).unwrap().payload).unwrap();
    let config = ConfigEnvelope::decode(payload.data).unwrap().config.unwrap();
    assert_eq!(config.sequence, 0);
    let mut values = std::collections::BTreeMap::new();
    walk(config.channel_group.as_ref().unwrap(), "/Channel", &mut |path, item| {
        if let Item::Value(key, bytes) = item {
            values.insert(path.to_owned(), Value::decode(key, bytes).unwrap());
        }
    });
    let get = |path: &str| values.get(path).unwrap_or_else(|| panic!("no {path} in {:?}", values.keys()));
    assert_eq!(
        *get("/Channel/Orderer/BatchSize"),
        Value::BatchSize(crate::proto::BatchSize {
            max_message_count: 10,
            absolute_max_bytes: 1_048_576,
            preferred_max_bytes: 262_144
        })
    );
    assert_eq!(
        *get("/Channel/Orderer/BatchTimeout"),
        Value::BatchTimeout(crate::proto::orderer::BatchTimeout { timeout: "250ms".into() })
    );
    let Value::ConsensusType(consensus) = get("/Channel/Orderer/ConsensusType") else { panic!() };
    assert_eq!(consensus.r#type, "kafka");
    let Value::KafkaBrokers(brokers) = get("/Channel/Orderer/KafkaBrokers") else { panic!() };
    assert_eq!(brokers.brokers, vec!["127.0.0.1:9092".to_owned()]);
    let Value::Msp(msp) = get("/Channel/Orderer/OrdererOrg/MSP") else { panic!() };
    let Msp::Fabric(orderer_msp) = msp.as_ref() else { panic!() };
    assert_eq!(orderer_msp.name, "OrdererMSP");
    assert!(orderer_msp.fabric_node_ous.as_ref().is_some_and(|n| n.enable), "cryptogen enables NodeOUs");
    let Value::Msp(msp) = get("/Channel/Consortiums/SampleConsortium/Org1MSP/MSP") else { panic!() };
    let Msp::Fabric(org1) = msp.as_ref() else { panic!() };
    assert_eq!(org1.name, "Org1MSP");
    let Value::Capabilities(channel) = get("/Channel/Capabilities") else { panic!() };
    assert_eq!(channel.capabilities.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), vec!["V1_4_3"]);
}

/// Every configuration configtxlator decoded for the recorded data (`genesis/*.json`, each run's
/// `config-blocks/*/*.json`), against [`json::config`] of the same block: the same JSON.
#[test]
fn configurations_show_as_configtxlator_shows_them() {
    let root = shared();
    let mut pairs: Vec<(PathBuf, PathBuf)> = Vec::new();
    for name in ["kafka-two-orgs", "sample-insecure-kafka", "sample-insecure-kafka-reordered"] {
        pairs.push((root.join(format!("genesis/{name}.json")), root.join(format!("genesis/{name}.block"))));
    }
    for run in ["single", "two-orderers"] {
        let blocks = root.join("runs").join(run).join("blocks");
        let blocks = if blocks.join("ch1").is_dir() { blocks } else { blocks.join("orderer1") };
        for channel in ["ch1", "syschannel"] {
            let dir = root.join("runs").join(run).join("config-blocks").join(channel);
            for entry in std::fs::read_dir(&dir).unwrap() {
                let json = entry.unwrap().path();
                let n = json.file_stem().unwrap().to_str().unwrap().to_owned();
                pairs.push((json, blocks.join(channel).join(format!("{n}.block"))));
            }
        }
    }
    let mut compared = 0;
    for (json_path, block_path) in pairs {
        let expected: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
        let data = &expected["data"]["data"][0]["payload"];
        if data["header"]["channel_header"]["type"] != 1 {
            continue; // an ORDERER_TRANSACTION block: its config is checked where the channel starts
        }
        let block = Block::decode(std::fs::read(&block_path).unwrap().as_slice()).unwrap();
        let payload = Payload::decode(Envelope::decode(block.data.unwrap().data[0].clone()).unwrap().payload).unwrap();
        let config = ConfigEnvelope::decode(payload.data).unwrap().config.unwrap();
        let got = json::config(&config).unwrap();
        if got != data["data"]["config"] {
            let (got, want) = (
                serde_json::to_string_pretty(&got).unwrap(),
                serde_json::to_string_pretty(&data["data"]["config"]).unwrap(),
            );
            let line = got.lines().zip(want.lines()).position(|(a, b)| a != b).unwrap_or(0);
            panic!(
                "{}: differs from configtxlator's at line {line}:\n ours: {}\n theirs: {}",
                json_path.display(),
                got.lines().nth(line).unwrap_or(""),
                want.lines().nth(line).unwrap_or("")
            );
        }
        compared += 1;
    }
    assert!(compared >= 8, "{compared} configurations compared");
}
