//! The Kafka cluster's settings held to Fabric's guide for a Kafka-based ordering service
//! ("Bringing up a Kafka-based Ordering Service"): what the brokers and the channels' topics say
//! (DescribeConfigs) in, what contradicts the guide out, each finding naming the broker or topic,
//! the setting, what it is and what the guide asks. Fabric checks none of these. Only what the
//! cluster reports is judged: a setting it does not report is not guessed. Pure.

use std::collections::BTreeMap;

/// Room the guide asks between AbsoluteMaxBytes and the brokers' record limits, for a record's
/// headers ("1 MiB is more than enough").
pub const HEADROOM: u64 = 1024 * 1024;

/// What the cluster reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Each broker's id and settings.
    pub brokers: Vec<(i32, BTreeMap<String, String>)>,
    /// Each channel topic: its name, the replicas of its partition, and its settings.
    pub topics: Vec<(String, usize, BTreeMap<String, String>)>,
}

/// One setting that contradicts the guide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `broker 1` or `topic mychannel`.
    pub subject: String,
    pub message: String,
}

fn number(settings: &BTreeMap<String, String>, key: &str) -> Option<i64> {
    settings.get(key).and_then(|v| v.trim().parse().ok())
}

impl Observed {
    /// The largest record every broker accepts for `topic`: the topic's `max.message.bytes` if
    /// it sets one, else the smallest `message.max.bytes` among the brokers; None if unknown.
    pub fn record_limit(&self, topic: Option<&str>) -> Option<u64> {
        let topic_limit = topic
            .and_then(|t| self.topics.iter().find(|(name, ..)| name == t))
            .and_then(|(_, _, s)| number(s, "max.message.bytes"));
        let broker_limit = self.brokers.iter().filter_map(|(_, s)| number(s, "message.max.bytes")).min();
        topic_limit.or(broker_limit).and_then(|n| u64::try_from(n).ok())
    }
}

/// What contradicts the guide, for channels whose largest AbsoluteMaxBytes is
/// `absolute_max_bytes`:
/// - `unclean.leader.election.enable=true` (a broker's default or a topic's): an unclean leader
///   loses acknowledged records;
/// - `min.insync.replicas` under 2 while a topic has 3 or more replicas: `acks=all` then waits
///   for one replica only;
/// - a topic with as many replicas as there are brokers (or more): with one broker down the
///   topic cannot keep its replication;
/// - `message.max.bytes`, `replica.fetch.max.bytes` (brokers) or `max.message.bytes` (a topic)
///   not above AbsoluteMaxBytes + [`HEADROOM`]: the largest envelopes would be refused or not
///   replicated;
/// - a channel topic with finite retention (`retention.ms` not -1): the ledger rebuilds from the
///   partition, and a channel whose records expired cannot.
pub fn check(observed: &Observed, absolute_max_bytes: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    let need = absolute_max_bytes + HEADROOM;
    let brokers = observed.brokers.len();
    for (id, s) in &observed.brokers {
        let subject = format!("broker {id}");
        if s.get("unclean.leader.election.enable").is_some_and(|v| v == "true") {
            out.push(Finding {
                subject: subject.clone(),
                message: "unclean.leader.election.enable is true: set it to false (an unclean leader loses acknowledged records)".into(),
            });
        }
        for key in ["message.max.bytes", "replica.fetch.max.bytes"] {
            if let Some(n) = number(s, key).filter(|n| *n < need as i64) {
                out.push(Finding {
                    subject: subject.clone(),
                    message: format!(
                        "{key} is {n}: it should be above AbsoluteMaxBytes ({absolute_max_bytes}) plus 1 MiB, {need} or more"
                    ),
                });
            }
        }
    }
    let broker_min_isr = observed.brokers.iter().filter_map(|(_, s)| number(s, "min.insync.replicas")).min();
    for (name, replicas, s) in &observed.topics {
        let subject = format!("topic {name}");
        if s.get("unclean.leader.election.enable").is_some_and(|v| v == "true") {
            out.push(Finding {
                subject: subject.clone(),
                message: "unclean.leader.election.enable is true: set it to false (an unclean leader loses acknowledged records)".into(),
            });
        }
        let min_isr = number(s, "min.insync.replicas").or(broker_min_isr);
        if let Some(m) = min_isr.filter(|m| *m < 2 && *replicas >= 3) {
            out.push(Finding {
                subject: subject.clone(),
                message: format!(
                    "min.insync.replicas is {m} with {replicas} replicas: set it to 2 or more, so that an acknowledged record is on two replicas"
                ),
            });
        }
        if brokers > 0 && *replicas >= brokers {
            out.push(Finding {
                subject: subject.clone(),
                message: format!(
                    "{replicas} replicas on {brokers} broker(s): keep the replication factor below the number of brokers, so that a broker down does not leave the topic under-replicated"
                ),
            });
        }
        if let Some(n) = number(s, "max.message.bytes").filter(|n| *n < need as i64) {
            out.push(Finding {
                subject: subject.clone(),
                message: format!(
                    "max.message.bytes is {n}: it should be above AbsoluteMaxBytes ({absolute_max_bytes}) plus 1 MiB, {need} or more"
                ),
            });
        }
        if let Some(ms) = number(s, "retention.ms").filter(|ms| *ms != -1) {
            out.push(Finding {
                subject,
                message: format!(
                    "retention.ms is {ms}: set it to -1 (a channel's ledger is rebuilt from its partition, so its records must never expire)"
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_cluster_set_up_as_the_guide_says_has_no_finding() {
        let broker = settings(&[
            ("unclean.leader.election.enable", "false"),
            ("min.insync.replicas", "2"),
            ("message.max.bytes", "105906176"),
            ("replica.fetch.max.bytes", "105906176"),
        ]);
        let observed = Observed {
            brokers: (1..=4).map(|id| (id, broker.clone())).collect(),
            topics: vec![("ch1".into(), 3, settings(&[("retention.ms", "-1")]))],
        };
        assert_eq!(check(&observed, 99 * 1024 * 1024), vec![]);
        assert_eq!(observed.record_limit(Some("ch1")), Some(105906176));
    }

    #[test]
    fn each_contradiction_is_named_with_its_subject() {
        let observed = Observed {
            brokers: vec![
                (
                    1,
                    settings(&[
                        ("unclean.leader.election.enable", "true"),
                        ("min.insync.replicas", "1"),
                        ("message.max.bytes", "1048588"),
                    ]),
                ),
                (2, settings(&[("replica.fetch.max.bytes", "1048576")])),
                (3, settings(&[])),
            ],
            topics: vec![
                ("ch1".into(), 3, settings(&[("retention.ms", "604800000"), ("max.message.bytes", "2000000")])),
                ("ch2".into(), 2, settings(&[("retention.ms", "-1"), ("unclean.leader.election.enable", "true")])),
            ],
        };
        let found: Vec<String> =
            check(&observed, 1024 * 1024).iter().map(|f| format!("{}: {}", f.subject, f.message)).collect();
        let expect = [
            "broker 1: unclean.leader.election.enable is true",
            "broker 1: message.max.bytes is 1048588",
            "broker 2: replica.fetch.max.bytes is 1048576",
            "topic ch1: min.insync.replicas is 1 with 3 replicas",
            "topic ch1: 3 replicas on 3 broker(s)",
            "topic ch1: max.message.bytes is 2000000",
            "topic ch1: retention.ms is 604800000",
            "topic ch2: unclean.leader.election.enable is true",
        ];
        assert_eq!(found.len(), expect.len(), "{found:#?}");
        for (got, want) in found.iter().zip(expect) {
            assert!(got.starts_with(want), "{got} / {want}");
        }
        // The largest record: the topic's own limit, else the smallest broker's.
        assert_eq!(observed.record_limit(Some("ch1")), Some(2000000));
        assert_eq!(observed.record_limit(Some("ch2")), Some(1048588));
        assert_eq!(Observed::default().record_limit(None), None);
    }
}
