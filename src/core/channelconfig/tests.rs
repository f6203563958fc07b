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
