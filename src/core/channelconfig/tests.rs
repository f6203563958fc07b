//! Fabric 1.4's channel configuration rules on the configurations Fabric wrote, and on mutations
//! of them; Go durations and Fabric's broker rule as tables.

use std::path::{Path, PathBuf};

use prost::Message as _;

use super::*;
use crate::proto::common::{CapabilityEntry, ConfigEnvelope};
use crate::proto::{Block, Envelope, Payload};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fabric-1.4.12")
}

fn config_of(block: &str) -> Config {
    let raw = std::fs::read(shared().join(block)).unwrap();
    let block = Block::decode(raw.as_slice()).unwrap();
    let payload = Payload::decode(Envelope::decode(block.data.unwrap().data[0].clone()).unwrap().payload).unwrap();
    ConfigEnvelope::decode(payload.data).unwrap().config.unwrap()
}

#[test]
fn configtxgens_kafka_genesis_blocks_read_as_configtx_yaml_says() {
    let two_orgs = OrderingValues::read(&config_of("genesis/kafka-two-orgs.block")).unwrap();
    assert_eq!(
        two_orgs,
        OrderingValues {
            sequence: 0,
            batch_size: BatchSize {
                max_message_count: 10,
                absolute_max_bytes: 1_048_576,
                preferred_max_bytes: 262_144
            },
            batch_timeout: Duration::from_millis(250),
            kafka_brokers: vec!["127.0.0.1:9092".into()],
            max_channels: 0,
            orderer_addresses: vec!["127.0.0.1:7050".into()],
            consortium: None,
            channel_capabilities: vec!["V1_4_3".into()],
            orderer_capabilities: vec!["V1_4_2".into()],
            application_capabilities: vec![],
        }
    );
    let sample = OrderingValues::read(&config_of("genesis/sample-insecure-kafka-reordered.block")).unwrap();
    assert_eq!(sample.kafka_brokers, vec!["kafka0:9092", "kafka1:9092", "kafka2:9092"]);
    assert_eq!(sample.batch_timeout, Duration::from_secs(2));
    assert_eq!(
        (
            sample.batch_size.max_message_count,
            sample.batch_size.absolute_max_bytes,
            sample.batch_size.preferred_max_bytes
        ),
        (500, 10_485_760, 2_097_152)
    );
}

#[test]
fn the_shipped_sample_insecure_kafka_profile_is_solo_and_refused_saying_so() {
    let e = OrderingValues::read(&config_of("genesis/sample-insecure-kafka.block")).unwrap_err();
    assert!(e.contains("ConsensusType: 'solo'") && e.contains("'kafka' channels only"), "{e}");
}

#[test]
fn every_channel_configuration_of_the_recorded_runs_reads() {
    for run in ["single", "two-orderers"] {
        let dir = shared().join("runs").join(run).join("blocks");
        let dir = if dir.join("ch1").is_dir() { dir } else { dir.join("orderer1") };
        for (channel, numbers) in [("syschannel", vec![0]), ("ch1", vec![0])] {
            for n in numbers {
                let rel = dir.join(channel).join(format!("{n}.block"));
                let values = OrderingValues::read(&config_of(rel.strip_prefix(shared()).unwrap().to_str().unwrap()))
                    .unwrap_or_else(|e| panic!("{run} {channel} {n}: {e}"));
                assert_eq!(values.batch_timeout, Duration::from_millis(250), "{run} {channel}");
                assert_eq!(values.consortium.is_some(), channel == "ch1", "{run} {channel}: {values:?}");
            }
        }
    }
    // ch1's batch-size update (block 19 of the single run): MaxMessageCount 10 → 25.
    let updated = OrderingValues::read(&config_of("runs/single/blocks/ch1/19.block")).unwrap();
    assert_eq!((updated.sequence, updated.batch_size.max_message_count), (2, 25));
}

/// The configuration with one orderer value changed.
fn with_value(mut config: Config, key: &str, value: Vec<u8>) -> Config {
    let channel = config.channel_group.as_mut().unwrap();
    let orderer = channel.groups.iter_mut().find(|g| g.key == "Orderer").unwrap().value.as_mut().unwrap();
    orderer.values.iter_mut().find(|v| v.key == key).unwrap().value.as_mut().unwrap().value = value.into();
    config
}

#[test]
fn fabrics_validation_rules_refuse_with_the_reason() {
    let base = || config_of("genesis/kafka-two-orgs.block");
    let batch =
        |m, a, p| BatchSize { max_message_count: m, absolute_max_bytes: a, preferred_max_bytes: p }.encode_to_vec();
    let timeout = |t: &str| crate::proto::orderer::BatchTimeout { timeout: t.into() }.encode_to_vec();
    let brokers = |b: &[&str]| {
        crate::proto::orderer::KafkaBrokers { brokers: b.iter().map(|s| s.to_string()).collect() }.encode_to_vec()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("BatchSize", batch(0, 10, 5), "MaxMessageCount is 0"),
        ("BatchSize", batch(10, 0, 0), "AbsoluteMaxBytes is 0"),
        ("BatchSize", batch(10, 10, 0), "PreferredMaxBytes is 0"),
        ("BatchSize", batch(10, 10, 11), "PreferredMaxBytes (11) is greater than AbsoluteMaxBytes (10)"),
        ("BatchTimeout", timeout("0s"), "is not positive"),
        ("BatchTimeout", timeout("soon"), "not a duration"),
        ("BatchTimeout", timeout("-1s"), "negative"),
        ("KafkaBrokers", brokers(&["kafka0"]), "invalid broker entry 'kafka0'"),
        ("KafkaBrokers", brokers(&["-kafka:9092"]), "invalid broker entry"),
        ("KafkaBrokers", brokers(&["kafka:99999"]), "invalid broker entry"),
        ("BatchSize", vec![0xff, 0xff], "does not decode"),
    ];
    for (key, value, want) in cases {
        let e = OrderingValues::read(&with_value(base(), key, value)).unwrap_err();
        assert!(e.contains(want), "{key}: {e}");
    }
    // A capability Fabric 1.4 does not know stops the channel.
    let mut config = base();
    let channel = config.channel_group.as_mut().unwrap();
    let caps = channel.values.iter_mut().find(|v| v.key == "Capabilities").unwrap().value.as_mut().unwrap();
    let mut c = crate::proto::common::Capabilities::decode(caps.value.clone()).unwrap();
    c.capabilities.push(CapabilityEntry { key: "V2_0".into(), value: Some(Default::default()) });
    caps.value = c.encode_to_vec().into();
    let e = OrderingValues::read(&config).unwrap_err();
    assert!(e.contains("capability 'V2_0' is required but not supported"), "{e}");
}

#[test]
fn go_durations_parse_as_go_parses_them() {
    let ok = [
        ("250ms", Duration::from_millis(250)),
        ("2s", Duration::from_secs(2)),
        ("1m30s", Duration::from_secs(90)),
        ("1.5h", Duration::from_secs(5400)),
        ("100us", Duration::from_micros(100)),
        ("100µs", Duration::from_micros(100)),
        ("10ns", Duration::from_nanos(10)),
        ("+1s", Duration::from_secs(1)),
        ("0", Duration::ZERO),
        ("0.5s", Duration::from_millis(500)),
    ];
    for (text, want) in ok {
        assert_eq!(go_duration(text), Ok(want), "{text}");
    }
    for bad in ["", "1", "s", "1d", "1.2.3s", "-1s", "ms", "1 s"] {
        assert!(go_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn broker_entries_follow_fabrics_rule() {
    for good in ["kafka0:9092", "127.0.0.1:9092", "a:1", "k-1.example.com:9092", ":9092", "k:0"] {
        assert!(broker_seems_valid(good), "{good}");
    }
    for bad in ["kafka0", "k:1:2", "k:", "k:x", "k:65536", "-k:1", "k-:1", ".k:1", "k_1:1", "[::1]:9092"] {
        assert!(!broker_seems_valid(bad), "{bad}");
    }
}

/// `config` with `edit` applied to its channel group.
fn edited(mut config: Config, edit: impl FnOnce(&mut crate::proto::common::ConfigGroup)) -> Config {
    edit(config.channel_group.as_mut().unwrap());
    config
}

fn group_mut<'a>(
    group: &'a mut crate::proto::common::ConfigGroup,
    key: &str,
) -> &'a mut crate::proto::common::ConfigGroup {
    group.groups.iter_mut().find(|g| g.key == key).unwrap().value.as_mut().unwrap()
}

#[test]
fn the_tree_is_held_to_fabrics_shape() {
    use crate::proto::common::{ConfigGroupEntry, ConfigValue, ConfigValueEntry};
    let base = || config_of("genesis/kafka-two-orgs.block");
    check_tree(&base()).unwrap();
    let value = |key: &str, raw: Vec<u8>| ConfigValueEntry {
        key: key.into(),
        value: Some(ConfigValue { value: raw.into(), mod_policy: "Admins".into(), version: 0 }),
    };
    let org1_msp = || {
        let mut c = base();
        let consortiums = group_mut(c.channel_group.as_mut().unwrap(), "Consortiums");
        let org = group_mut(group_mut(consortiums, "SampleConsortium"), "Org1MSP");
        org.values.iter().find(|v| v.key == "MSP").unwrap().clone()
    };
    let cases: Vec<(Config, &str)> = vec![
        (
            edited(base(), |c| c.values.push(value("BatchSize", vec![]))),
            "/Channel: value 'BatchSize' is not allowed here",
        ),
        (
            edited(base(), |c| {
                c.groups.push(ConfigGroupEntry { key: "Peers".into(), value: Some(Default::default()) })
            }),
            "disallowed channel group 'Peers'",
        ),
        (
            edited(base(), |c| group_mut(c, "Orderer").values.push(value("AnchorPeers", vec![]))),
            "/Channel/Orderer: value 'AnchorPeers' is not allowed here",
        ),
        (
            edited(base(), |c| {
                group_mut(group_mut(c, "Orderer"), "OrdererOrg")
                    .groups
                    .push(ConfigGroupEntry { key: "Sub".into(), value: Some(Default::default()) })
            }),
            "/Channel/Orderer/OrdererOrg: organisations do not support sub-groups",
        ),
        (
            // The channel's V1_4_3 capability gone: per-organisation Endpoints are not allowed.
            edited(base(), |c| {
                c.values.retain(|v| v.key != "Capabilities");
                group_mut(group_mut(c, "Orderer"), "OrdererOrg").values.push(value("Endpoints", vec![]));
            }),
            "cannot hold Endpoints until the channel has the V1_4_2 capability",
        ),
        (
            edited(base(), |c| group_mut(c, "Orderer").values.retain(|v| v.key != "Capabilities")),
            "cannot enable channel capabilities without orderer support first",
        ),
        (
            // Org2's group holding Org1's MSP under the same ID as a different value.
            edited(base(), |c| {
                let consortium = group_mut(group_mut(c, "Consortiums"), "SampleConsortium");
                let org2 = group_mut(consortium, "Org2MSP");
                let mut msp = org1_msp();
                let mut config =
                    crate::proto::msp::MspConfig::decode(msp.value.as_ref().unwrap().value.clone()).unwrap();
                let mut fabric = crate::proto::msp::FabricMspConfig::decode(config.config.clone()).unwrap();
                fabric.name = "OrdererMSP".into();
                config.config = fabric.encode_to_vec().into();
                msp.value.as_mut().unwrap().value = config.encode_to_vec().into();
                org2.values.retain(|v| v.key != "MSP");
                org2.values.push(msp);
            }),
            "two different versions of MSP OrdererMSP",
        ),
    ];
    for (config, want) in cases {
        let e = check_tree(&config).map(|_| "accepted".to_owned()).unwrap_or_else(|e| e);
        assert!(e.contains(want), "'{e}' does not say '{want}'");
        // The chain reads nothing from a tree that fails it.
        assert!(OrderingValues::read(&config).is_err());
    }
}

#[test]
fn a_successor_keeps_the_consensus_type_and_msp_ids() {
    let base = || config_of("runs/single/blocks/ch1/0.block");
    let next = config_of("runs/single/blocks/ch1/28.block");
    check_successor(&base(), &next).unwrap();
    let solo = with_value(
        base(),
        "ConsensusType",
        crate::proto::orderer::ConsensusType { r#type: "solo".into(), ..Default::default() }.encode_to_vec(),
    );
    let e = check_successor(&base(), &solo).unwrap_err();
    assert!(e.contains("consensus type from kafka to solo"), "{e}");
    let no_app = edited(base(), |c| c.groups.retain(|g| g.key != "Application"));
    let e = check_successor(&base(), &no_app).unwrap_err();
    assert!(e.contains("application section"), "{e}");
    // Org1's group now holding Org2's MSP (from block 28, which added Org2).
    let mut renamed = base();
    let mut later = next.clone();
    let org2 = group_mut(group_mut(later.channel_group.as_mut().unwrap(), "Application"), "Org2MSP").clone();
    *group_mut(group_mut(renamed.channel_group.as_mut().unwrap(), "Application"), "Org1MSP") = org2;
    let e = check_successor(&base(), &renamed).unwrap_err();
    assert!(e.contains("application org Org1MSP attempted to change MSP ID from Org1MSP to Org2MSP"), "{e}");
}

#[test]
fn a_bundle_takes_a_real_update_and_refuses_one_that_breaks_the_new_configuration() {
    use crate::proto::common::ConfigUpdate;
    let genesis = config_of("runs/single/blocks/ch1/0.block");
    let bundle = Bundle::new("ch1", genesis).unwrap();
    assert_eq!(bundle.values.batch_size.max_message_count, 10);
    // Block 19's update, with the signer whose signature verifies in it.
    let raw = std::fs::read(shared().join("envelopes/u1-batch-max-config-update.pb")).unwrap();
    let envelope = crate::proto::Envelope::decode(raw.as_slice()).unwrap();
    let update = crate::core::configtx::config_update_envelope(&envelope).unwrap();
    let signed = crate::core::configtx::signed_data(&update).unwrap();
    let id = crate::core::msp::Identity::deserialize(&signed[0].identity).unwrap();
    id.cert.public_key.verify(&signed[0].data, &signed[0].signature).unwrap();
    let signers = vec![(id, signed[0].identity.clone())];
    let next = bundle.propose(&update, &signers).unwrap();
    assert_eq!((next.values.sequence, next.values.batch_size.max_message_count), (2, 25));

    // The same update setting a preferred size over the absolute one: configtx allows it, the
    // new configuration's own checks do not.
    let mut changed = ConfigUpdate::decode(update.config_update.clone()).unwrap();
    let orderer = changed.write_set.as_mut().unwrap().groups.iter_mut().find(|g| g.key == "Orderer").unwrap();
    let batch = orderer.value.as_mut().unwrap().values.iter_mut().find(|v| v.key == "BatchSize").unwrap();
    batch.value.as_mut().unwrap().value =
        BatchSize { max_message_count: 25, absolute_max_bytes: 1000, preferred_max_bytes: 2000 }.encode_to_vec().into();
    let update = crate::proto::common::ConfigUpdateEnvelope { config_update: changed.encode_to_vec().into(), ..update };
    let e = bundle.propose(&update, &signers).unwrap_err();
    assert!(e.message.contains("PreferredMaxBytes (2000) is greater than AbsoluteMaxBytes (1000)"), "{e}");
}
