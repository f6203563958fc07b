//! Kafka plumbing: client configuration (one base for every client, with TLS and SASL), topic set-up, the per-channel consumer stream, and the
//! producer. Channel `X` is topic `X`, partition 0; records are keyed `"0"` and hold a marshaled
//! `KafkaMessage`. Consumers are assigned a partition and offset directly: no consumer group, no
//! offset commits (the position lives in the ledger).

pub mod embedded;
mod hub;
pub mod producer;
pub mod settings;
pub mod stats;

pub use hub::Hub;

pub use producer::{produce, Producer};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::config::{KafkaConfig, Secret};

/// The Kafka clients every channel shares: the configuration (for topic set-up and the connect
/// sequence), the producer and the consumer hub. Cheap to clone.
#[derive(Clone)]
pub struct Clients {
    pub config: KafkaConfig,
    pub producer: Producer,
    pub hub: Hub,
}

/// The only partition of a channel's topic.
pub const PARTITION: i32 = 0;
/// Fabric's record key.
pub const KEY: &str = "0";

#[derive(Debug, thiserror::Error)]
pub enum KafkaFailure {
    #[error("Kafka client error on channel '{channel}': {source}")]
    Client { channel: String, source: KafkaError },
    #[error("topic '{topic}' could not be set up: {reason}")]
    Topic { topic: String, reason: String },
}

/// librdkafka's `reconnect.backoff.max.ms` for every client (overridable in `[kafka] producer`
/// and `consumer`).
pub const RECONNECT_BACKOFF_MAX_MS: &str = "1000";

/// What every client the OSN builds (producer, consumers, metadata probes, admin) starts from:
/// the brokers, and the transport and authentication of `[kafka.tls]` and `[kafka.sasl]`.
fn base_config(cfg: &KafkaConfig) -> Result<ClientConfig, KafkaError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    c.set("client.id", "osn");
    // A broker that went away is tried again at least every second (librdkafka backs off up to
    // 10 s), so that channels find it within a second of its return, before `error-timeout`.
    c.set("reconnect.backoff.max.ms", RECONNECT_BACKOFF_MAX_MS);
    for (key, value) in security_properties(cfg).map_err(KafkaError::ClientCreation)? {
        c.set(key, value);
    }
    Ok(c)
}

/// The librdkafka properties for `[kafka.tls]` and `[kafka.sasl]`: `security.protocol` (`ssl`,
/// `sasl_plaintext` or `sasl_ssl`; nothing without either table), the TLS files and the SASL
/// mechanism and credentials. The files are checked and the `*-file` secrets read here, each time
/// a client is built, so a rotated password reaches the next client. The values include secrets:
/// they go to librdkafka (which redacts them from its own logs) and nowhere else.
pub fn security_properties(cfg: &KafkaConfig) -> Result<Vec<(&'static str, String)>, String> {
    let mut props = Vec::new();
    let protocol = match (&cfg.tls, &cfg.sasl) {
        (None, None) => return Ok(props),
        (Some(_), None) => "ssl",
        (None, Some(_)) => "sasl_plaintext",
        (Some(_), Some(_)) => "sasl_ssl",
    };
    props.push(("security.protocol", protocol.to_owned()));
    if let Some(tls) = &cfg.tls {
        let files = [
            ("ssl.ca.location", "ca-file", &tls.ca_file),
            ("ssl.certificate.location", "cert-file", &tls.cert_file),
            ("ssl.key.location", "key-file", &tls.key_file),
        ];
        for (prop, key, path) in files {
            if let Some(path) = path {
                std::fs::File::open(path)
                    .map_err(|e| format!("cannot read kafka.tls.{key} {}: {e}", path.display()))?;
                props.push((prop, path.display().to_string()));
            }
        }
        if let Some(password) = secret(&tls.key_password, &tls.key_password_file, "kafka.tls.key-password-file")? {
            props.push(("ssl.key.password", password));
        }
    }
    if let Some(sasl) = &cfg.sasl {
        props.push(("sasl.mechanisms", sasl.mechanism.as_str().to_owned()));
        props.push(("sasl.username", sasl.username.clone()));
        if let Some(password) = secret(&sasl.password, &sasl.password_file, "kafka.sasl.password-file")? {
            props.push(("sasl.password", password));
        }
    }
    Ok(props)
}

/// A secret given inline or as a file (its trailing newline dropped).
fn secret(inline: &Option<Secret>, file: &Option<PathBuf>, key: &str) -> Result<Option<String>, String> {
    if let Some(s) = inline {
        return Ok(Some(s.expose().to_owned()));
    }
    let Some(path) = file else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {key} {}: {e}", path.display()))?;
    Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()))
}

/// The shared producer: `acks=all`, idempotent, so a SUCCESS answer means Kafka holds the record.
pub fn producer(cfg: &KafkaConfig) -> Result<Producer, KafkaError> {
    let mut c = base_config(cfg)?;
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("message.max.bytes", "104857600")
        .set("message.timeout.ms", "30000")
        .set("statistics.interval.ms", cfg.statistics_interval.as_millis().to_string());
    with_overrides(c, &cfg.producer).create_with_context(producer::Deliveries::default()).map(std::sync::Arc::new)
}

/// Applies the operator's extra librdkafka properties over OSN's defaults.
fn with_overrides(mut c: ClientConfig, extra: &BTreeMap<String, String>) -> ClientConfig {
    for (k, v) in extra {
        c.set(k, v);
    }
    c
}

pub(crate) fn consumer_config(cfg: &KafkaConfig) -> Result<ClientConfig, KafkaError> {
    let mut c = base_config(cfg)?;
    // A group id is required by librdkafka's consumer but never used: no subscribe, no commits.
    c.set("group.id", "osn")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "false")
        .set("auto.offset.reset", "error")
        .set("fetch.wait.max.ms", cfg.fetch_wait.as_millis().clamp(1, 300_000).to_string());
    Ok(with_overrides(c, &cfg.consumer))
}

/// Makes sure the channel's topic exists with a partition 0 (asking through the OSN's consumer
/// hub when given, which so learns the topic, else through a client of its own). Creates it with
/// the configured replication factor; if the broker does not answer CreateTopics or does not support it
/// (librdkafka's mock cluster), it is left to the broker's auto-creation, which the first
/// produced record (the CONNECT) triggers, or fails with a clear reason if that is disabled.
/// True if the topic was there already (so the hub, when given, knows its partition's leader).
pub async fn ensure_topic(cfg: &KafkaConfig, topic: &str, hub: Option<&Hub>) -> Result<bool, KafkaFailure> {
    let fail = |reason: String| KafkaFailure::Topic { topic: topic.to_owned(), reason };
    // The check is librdkafka's, on a blocking thread or the hub's metadata thread: bounded by
    // `connect-timeout`, so a call that never returns is reported and retried, not waited for.
    let checked = tokio::time::timeout(cfg.connect_timeout, async {
        if cfg!(debug_assertions) && std::env::var_os("OSN_STALL_AT").is_some() {
            // The fault point runs where librdkafka's call would (a blocking thread).
            let _ = actix_rt::task::spawn_blocking(|| crate::faults::crash_point("kafka.topic-check")).await;
        }
        let exists = match hub {
            Some(hub) => hub.learn(topic).await,
            None => {
                let probe: BaseConsumer =
                    consumer_config(cfg).and_then(|c| c.create()).map_err(|e| fail(e.to_string()))?;
                let (topic, timeout) = (topic.to_owned(), cfg.connect_timeout);
                actix_rt::task::spawn_blocking(move || topic_has_partition0(&probe, &topic, timeout))
                    .await
                    .map_err(|e| fail(e.to_string()))?
            }
        };
        exists.map_err(|e| fail(format!("metadata request failed: {e}")))
    })
    .await;
    let exists = match checked {
        Ok(answer) => answer?,
        Err(_) => {
            return Err(fail(format!(
                "librdkafka has not said whether the topic exists within {:?} (kafka.connect-timeout)",
                cfg.connect_timeout
            )))
        }
    };
    if exists {
        return Ok(true);
    }
    if UNANSWERED.lock().unwrap_or_else(|e| e.into_inner()).contains(&cfg.brokers) {
        tracing::debug!(topic, "relying on the broker's topic auto-creation");
        return Ok(false);
    }
    let admin: AdminClient<DefaultClientContext> =
        base_config(cfg).and_then(|c| c.create()).map_err(|e| fail(e.to_string()))?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(cfg.replication_factor))
        .set("unclean.leader.election.enable", "false")
        .set("retention.ms", "-1");
    let wait = cfg.connect_timeout.min(Duration::from_secs(10));
    let opts = AdminOptions::new().operation_timeout(Some(wait)).request_timeout(Some(wait));
    let fallback = |why: String| {
        tracing::warn!(topic, %why, "CreateTopics unavailable; relying on the broker's topic auto-creation");
        UNANSWERED.lock().unwrap_or_else(|e| e.into_inner()).push(cfg.brokers.clone());
        Ok(false)
    };
    match admin.create_topics([&new], &opts).await {
        Ok(results) => match results.into_iter().next() {
            Some(Ok(_)) | None => {
                tracing::info!(topic, replication_factor = cfg.replication_factor, "topic created");
                Ok(false)
            }
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
            Some(Err((_, code))) if unsupported(code) => fallback(code.to_string()),
            // The broker answered and refused (replication factor, policy, authorisation): say so
            // rather than let auto-creation make a topic with other settings.
            Some(Err((_, code))) => Err(fail(format!("the broker refused to create it: {code}"))),
        },
        // No answer (librdkafka's mock cluster never answers CreateTopics) or not supported.
        Err(KafkaError::AdminOp(code)) if unsupported(code) || code == RDKafkaErrorCode::OperationTimedOut => {
            fallback(code.to_string())
        }
        Err(e) => Err(fail(format!("CreateTopics failed: {e}"))),
    }
}

/// The broker (or librdkafka for it) does not implement CreateTopics. An answer that refuses the
/// request, such as InvalidRequest, is not this.
fn unsupported(code: RDKafkaErrorCode) -> bool {
    matches!(code, RDKafkaErrorCode::UnsupportedVersion | RDKafkaErrorCode::UnsupportedFeature)
}

fn topic_has_partition0<C: rdkafka::consumer::ConsumerContext>(
    client: &impl Consumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<bool, KafkaError> {
    Ok(has_partition0(&client.fetch_metadata(Some(topic), timeout)?, topic))
}

/// Whether the metadata shows `topic` with its partition.
fn has_partition0(md: &rdkafka::metadata::Metadata, topic: &str) -> bool {
    md.topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && t.partitions().iter().any(|p| p.id() == PARTITION))
}

/// What the cluster's metadata says of each channel's partition 0: None when it has a leader and
/// at least `min_insync` in-sync replicas, else why not. One metadata request for all topics; an
/// error when the cluster cannot be reached within `timeout`.
pub struct MetadataProbe {
    client: BaseConsumer,
}

impl MetadataProbe {
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        Ok(MetadataProbe { client: consumer_config(cfg)?.create()? })
    }

    /// Blocking: call it off the async threads.
    pub fn check(
        &self,
        topics: &[String],
        min_insync: i32,
        timeout: Duration,
    ) -> Result<Vec<(String, Option<String>)>, KafkaError> {
        let md = self.client.fetch_metadata(None, timeout)?;
        let alive: std::collections::HashSet<i32> = md.brokers().iter().map(|b| b.id()).collect();
        Ok(topics
            .iter()
            .map(|topic| {
                let problem = match md.topics().iter().find(|t| t.name() == topic) {
                    None => Some("the topic does not exist".to_owned()),
                    Some(t) if t.error().is_some() => Some(format!("topic error {:?}", t.error())),
                    Some(t) => match t.partitions().iter().find(|p| p.id() == PARTITION) {
                        None => Some("partition 0 does not exist".to_owned()),
                        Some(p) if p.leader() < 0 || !alive.contains(&p.leader()) => {
                            Some("partition 0 has no leader".to_owned())
                        }
                        Some(p) if (p.isr().len() as i32) < min_insync => Some(format!(
                            "partition 0 has {} in-sync replicas, fewer than min.insync.replicas = {min_insync}",
                            p.isr().len()
                        )),
                        Some(_) => None,
                    },
                };
                (topic.clone(), problem)
            })
            .collect())
    }
}

/// Clusters (by bootstrap servers) that did not answer CreateTopics once (librdkafka's mock
/// cluster never does): this process does not ask them again, or each new channel would wait for
/// the timeout.
static UNANSWERED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Tells [`ensure_topic`] that the cluster at `brokers` creates topics on first use and does not
/// answer CreateTopics (the embedded broker), so channels created later do not wait for it.
pub fn rely_on_auto_creation(brokers: &str) {
    UNANSWERED.lock().unwrap_or_else(|e| e.into_inner()).push(brokers.to_owned());
}

/// One consumed record, owned.
#[derive(Debug, Clone)]
pub struct Record {
    pub offset: i64,
    pub value: Bytes,
}

/// A consumer of its own for one partition starting at `offset`, as a stream of owned records or
/// errors (`osn load`'s Kafka baseline; channels share the OSN's [`Hub`]). The stream owns the
/// consumer; dropping it closes it.
///
/// The start is always an explicit offset, never "oldest": if retention already removed it, the
/// consumer reports offset-out-of-range instead of silently starting later in the stream.
pub fn consume_from(
    cfg: &KafkaConfig,
    topic: &str,
    offset: i64,
) -> Result<impl Stream<Item = Result<Record, KafkaError>> + 'static, KafkaError> {
    let consumer: StreamConsumer = consumer_config(cfg)?.create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, PARTITION, Offset::Offset(offset.max(0)))?;
    consumer.assign(&tpl)?;
    let consumer = std::sync::Arc::new(consumer);
    Ok(futures_util::stream::unfold(consumer, |consumer| async move {
        let item = match consumer.recv().await {
            Ok(m) => Ok(Record { offset: m.offset(), value: Bytes::copy_from_slice(m.payload().unwrap_or_default()) }),
            Err(e) => Err(e),
        };
        Some((item, consumer))
    }))
}

/// Whether an error is the connection's (a broker unreachable or gone), not the partition's:
/// a consumer connected again is past it (`core::link`).
pub fn is_connection_error(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    e.rdkafka_error_code().is_some_and(|code| {
        matches!(code, BrokerTransportFailure | AllBrokersDown | Resolve | NetworkException | BrokerNotAvailable)
    })
}

/// The partition's high watermark (the offset the next record will get).
pub fn high_watermark(cfg: &KafkaConfig, topic: &str, timeout: Duration) -> Result<i64, KafkaError> {
    let probe: BaseConsumer = consumer_config(cfg)?.create()?;
    probe.fetch_watermarks(topic, PARTITION, timeout).map(|(_, high)| high)
}

/// What the cluster says of its brokers' settings and of `topics`' (DescribeConfigs, with the
/// metadata's broker ids and each topic's replicas), for `core::brokercheck`. An error when the
/// cluster does not answer within `timeout` or does not implement DescribeConfigs (librdkafka's
/// mock cluster does not).
pub async fn describe_settings(
    cfg: &KafkaConfig,
    topics: &[String],
    timeout: Duration,
) -> Result<crate::core::brokercheck::Observed, String> {
    use rdkafka::admin::{OwnedResourceSpecifier, ResourceSpecifier};
    let admin: AdminClient<DefaultClientContext> =
        base_config(cfg).and_then(|c| c.create()).map_err(|e| e.to_string())?;
    let probe = MetadataProbe::new(cfg).map_err(|e| e.to_string())?;
    let md = tokio::task::spawn_blocking(move || probe.client.fetch_metadata(None, timeout))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let broker_ids: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
    let replicas: std::collections::HashMap<String, usize> = md
        .topics()
        .iter()
        .filter_map(|t| {
            Some((t.name().to_owned(), t.partitions().iter().find(|p| p.id() == PARTITION)?.replicas().len()))
        })
        .collect();
    let mut specifiers: Vec<ResourceSpecifier<'_>> =
        broker_ids.iter().map(|id| ResourceSpecifier::Broker(*id)).collect();
    specifiers.extend(topics.iter().filter(|t| replicas.contains_key(*t)).map(|t| ResourceSpecifier::Topic(t)));
    let opts = AdminOptions::new().request_timeout(Some(timeout));
    let answers =
        tokio::time::timeout(timeout + Duration::from_secs(1), admin.describe_configs(specifiers.iter(), &opts))
            .await
            .map_err(|_| format!("no answer to DescribeConfigs within {timeout:?}"))?
            .map_err(|e| format!("DescribeConfigs: {e}"))?;
    let mut observed = crate::core::brokercheck::Observed::default();
    for answer in answers {
        let resource = answer.map_err(|code| format!("DescribeConfigs: {code}"))?;
        let settings = resource.entries.iter().filter_map(|e| Some((e.name.clone(), e.value.clone()?))).collect();
        match resource.specifier {
            OwnedResourceSpecifier::Broker(id) => observed.brokers.push((id, settings)),
            OwnedResourceSpecifier::Topic(name) => {
                let n = replicas.get(&name).copied().unwrap_or(0);
                observed.topics.push((name, n, settings));
            }
            OwnedResourceSpecifier::Group(_) => {}
        }
    }
    Ok(observed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_told_from_the_partitions() {
        use rdkafka::error::RDKafkaErrorCode as Code;
        for code in [Code::BrokerTransportFailure, Code::AllBrokersDown] {
            assert!(is_connection_error(&KafkaError::MessageConsumption(code)), "{code:?}");
        }
        for code in [Code::NotLeaderForPartition, Code::OffsetOutOfRange, Code::UnknownTopicOrPartition] {
            assert!(!is_connection_error(&KafkaError::MessageConsumption(code)), "{code:?}");
        }
    }
    use crate::config::Config;

    /// The librdkafka properties of a `[kafka]` configuration (TOML after `[kafka]`).
    fn check(kafka_toml: &str, expected: &[(&str, &str)]) {
        let config = Config::parse(&format!("[kafka]\n{kafka_toml}"), "test", std::iter::empty())
            .unwrap_or_else(|e| panic!("{kafka_toml}: {e}"));
        let props = security_properties(&config.kafka).unwrap_or_else(|e| panic!("{kafka_toml}: {e}"));
        let props: Vec<(&str, &str)> = props.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(props, expected, "{kafka_toml}");
    }

    #[test]
    fn security_properties_of_each_combination() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let (ca, cert, key) = (file("ca.pem", "ca"), file("cert.pem", "cert"), file("key.pem", "key"));
        let password_file = file("password", "from-a-file\n");

        check("brokers = \"k:9092\"", &[]);
        check("[kafka.tls]", &[("security.protocol", "ssl")]);
        check(&format!("[kafka.tls]\nca-file = \"{ca}\""), &[("security.protocol", "ssl"), ("ssl.ca.location", &ca)]);
        check(
            &format!(
                "[kafka.tls]\nca-file = \"{ca}\"\ncert-file = \"{cert}\"\nkey-file = \"{key}\"\nkey-password = \"kp\""
            ),
            &[
                ("security.protocol", "ssl"),
                ("ssl.ca.location", &ca),
                ("ssl.certificate.location", &cert),
                ("ssl.key.location", &key),
                ("ssl.key.password", "kp"),
            ],
        );
        check(
            &format!(
                "[kafka.tls]\ncert-file = \"{cert}\"\nkey-file = \"{key}\"\nkey-password-file = \"{password_file}\""
            ),
            &[
                ("security.protocol", "ssl"),
                ("ssl.certificate.location", &cert),
                ("ssl.key.location", &key),
                ("ssl.key.password", "from-a-file"),
            ],
        );
        check(
            "[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"osn\"\npassword = \"pw\"",
            &[
                ("security.protocol", "sasl_plaintext"),
                ("sasl.mechanisms", "PLAIN"),
                ("sasl.username", "osn"),
                ("sasl.password", "pw"),
            ],
        );
        check(
            &format!(
                "[kafka.sasl]\nmechanism = \"SCRAM-SHA-256\"\nusername = \"osn\"\npassword-file = \"{password_file}\""
            ),
            &[
                ("security.protocol", "sasl_plaintext"),
                ("sasl.mechanisms", "SCRAM-SHA-256"),
                ("sasl.username", "osn"),
                ("sasl.password", "from-a-file"),
            ],
        );
        check(
            &format!(
                "[kafka.tls]\nca-file = \"{ca}\"\n[kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"osn\"\npassword = \"pw\""
            ),
            &[
                ("security.protocol", "sasl_ssl"),
                ("ssl.ca.location", &ca),
                ("sasl.mechanisms", "SCRAM-SHA-512"),
                ("sasl.username", "osn"),
                ("sasl.password", "pw"),
            ],
        );
    }

    #[test]
    fn missing_files_are_named() {
        let check_err = |kafka_toml: &str, needle: &str| {
            let config = Config::parse(&format!("[kafka]\n{kafka_toml}"), "test", std::iter::empty()).unwrap();
            let err = security_properties(&config.kafka).unwrap_err();
            assert!(err.contains(needle), "{err}");
            // Every client is built from base_config: it fails the same way.
            let err = producer(&config.kafka).err().expect("no producer without its files").to_string();
            assert!(err.contains(needle), "{err}");
        };
        check_err(
            "[kafka.tls]\nca-file = \"/nonexistent/ca.pem\"",
            "cannot read kafka.tls.ca-file /nonexistent/ca.pem",
        );
        check_err(
            "[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword-file = \"/nonexistent/pw\"",
            "cannot read kafka.sasl.password-file /nonexistent/pw",
        );
    }
}
