//! Typed configuration: a TOML file, then `OSN_<SECTION>_<KEY>` environment overrides
//! (for example `OSN_KAFKA_BROKERS=k1:9092,k2:9092`, `OSN_GRPC_ADDRESS=0.0.0.0:7050`, `OSN_HTTP_ADDRESS=0.0.0.0:7060`,
//! `OSN_LEDGER_SYNC_WRITES=false`, `OSN_OPERATIONS_ADDRESS=10.0.0.5:9443`). An override's key is
//! the rest of the variable's name, lower-cased, with `_` read as `-`. The sub-tables `http.tls`, `grpc.tls`,
//! `kafka.tls` and `kafka.sasl` take overrides too (`OSN_KAFKA_SASL_PASSWORD`,
//! `OSN_HTTP_TLS_CERT_FILE`); their values are taken as strings, verbatim. Channels are
//! configured in the file only.
//!
//! Secrets (passwords) are [`Secret`]s: they never appear in `Debug`, `Display` or serialized
//! output, and the free-form librdkafka property maps refuse them.

mod genesis;

pub use genesis::{channel_config, system_config};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::policy::Policy;
use crate::proto::BatchSize;

/// A password or other secret. `Debug`, `Display` and `Serialize` show `<redacted>`; only
/// [`Secret::expose`] gives the value, at the one place that hands it to a library.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config in {origin}: {message}")]
    Invalid { origin: String, message: String },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub grpc: GrpcConfig,
    pub operations: OperationsConfig,
    pub kafka: KafkaConfig,
    pub ledger: LedgerConfig,
    pub identity: IdentityConfig,
    /// Organisations channels may name (their MSP directories).
    pub organizations: Vec<OrganizationConfig>,
    /// Channels declared here: every OSN writes their genesis block from its own file, so every
    /// OSN must declare them identically. Channels created through the system channel need no
    /// entry.
    pub channels: Vec<ChannelSettings>,
    pub system: SystemConfig,
    pub actors: ActorsConfig,
}

/// Where the channel actors run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct ActorsConfig {
    /// Threads the channel actors share (0 = one per core). Every channel keeps its own actor,
    /// mailbox and ordering; a thread runs many of them, so threads do not grow with channels.
    pub threads: usize,
}

impl ActorsConfig {
    /// The number of threads: `threads`, or one per core.
    pub fn threads(&self) -> usize {
        per_core_unless_set(self.threads)
    }
}

/// A thread count setting: `n`, or one per core when it is 0.
fn per_core_unless_set(n: usize) -> usize {
    if n > 0 {
        return n;
    }
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The system channel, which every OSN consumes and channels are created through, and what
/// channels created through it get. Its batch size, timeout, creators and limit are its genesis
/// configuration: set them identically on every OSN before the first start. Later changes of its
/// batch size, timeout and creators go through config updates of the system channel (signed by
/// admins of a majority of the creators); the channel limit cannot be changed yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct SystemConfig {
    /// The system channel's name (and topic).
    pub channel: String,
    /// MSP IDs of the organisations whose admins may create channels, and which channels may
    /// have as members (default: every `[[organizations]]` entry).
    pub creators: Vec<String>,
    /// How many channels may be created through the system channel (0 = no limit).
    pub max_channels: u32,
    /// The system channel's batch size, and the default of the channels created through it.
    pub batch_size: BatchSizeConfig,
    /// The default batch timeout of the channels created through the system channel.
    #[serde(with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// This OSN's mailbox capacity for each channel created through the system channel.
    pub mailbox_capacity: usize,
    /// This OSN's `max-lag-bytes` for each channel created through the system channel.
    pub max_lag_bytes: u64,
}

impl Default for SystemConfig {
    fn default() -> Self {
        let ch = ChannelSettings::default();
        SystemConfig {
            channel: "osn-system".into(),
            creators: Vec::new(),
            max_channels: 0,
            batch_size: ch.batch_size,
            batch_timeout: ch.batch_timeout,
            mailbox_capacity: ch.mailbox_capacity,
            max_lag_bytes: ch.max_lag_bytes,
        }
    }
}

impl SystemConfig {
    /// The node-local settings of a channel created through the system channel (and of the
    /// system channel itself).
    pub fn settings(&self, name: &str) -> ChannelSettings {
        ChannelSettings {
            name: name.to_owned(),
            batch_size: self.batch_size,
            batch_timeout: self.batch_timeout,
            mailbox_capacity: self.mailbox_capacity,
            max_lag_bytes: self.max_lag_bytes,
            ..ChannelSettings::default()
        }
    }
}

/// This OSN's own identity, and how it checks the identities of requests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct IdentityConfig {
    /// This OSN's signing identity: a directory written by `osn identity issue --role orderer`
    /// (`mspid`, `signcerts/`, `keystore/`, `cacerts/`). It signs every block, and its
    /// organisation is recorded in each new channel's genesis block as the orderer organisation.
    pub dir: Option<PathBuf>,
    /// How far a request's ChannelHeader timestamp may be from this OSN's clock (Fabric's
    /// `General.Authentication.TimeWindow`).
    #[serde(with = "humantime_serde")]
    pub time_window: Duration,
    /// Threads verifying signatures (0 = one per core).
    pub verify_threads: usize,
    /// Benchmarks only, never read from a file or the environment: broadcast envelopes are
    /// accepted without checking their signatures (their creator's certificate, chain, policy
    /// and timestamp are still checked). Set by `osn dev --skip-signature-verification`.
    #[serde(skip)]
    pub skip_signature_verification: bool,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            dir: None,
            time_window: Duration::from_secs(15 * 60),
            verify_threads: 0,
            skip_signature_verification: false,
        }
    }
}

/// An organisation: its MSP directory (`mspid`, `cacerts/*.pem`, optional
/// `intermediatecerts/*.pem`), as `osn identity ca` writes it under `<org>/msp`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OrganizationConfig {
    pub msp_dir: PathBuf,
}

/// A channel policy: `{ members-of = [MSP IDs] }` (a signature of any member of one of them) or
/// `{ admins-of = [MSP IDs], at-least = N }` (admin signatures of at least N of them; N defaults
/// to a majority).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct PolicyConfig {
    pub members_of: Vec<String>,
    pub admins_of: Vec<String>,
    pub at_least: Option<u32>,
}

impl PolicyConfig {
    pub fn to_policy(&self) -> Result<Policy, String> {
        let set = |v: &[String]| v.iter().cloned().collect::<std::collections::BTreeSet<_>>();
        match (self.members_of.is_empty(), self.admins_of.is_empty()) {
            (false, true) if self.at_least.is_none() => Ok(Policy::AnyMember(set(&self.members_of))),
            (true, false) => {
                let at_least = self.at_least.unwrap_or(self.admins_of.len() as u32 / 2 + 1) as usize;
                if at_least == 0 || at_least > self.admins_of.len() {
                    return Err(format!(
                        "at-least = {at_least} cannot be met by {} organisations",
                        self.admins_of.len()
                    ));
                }
                Ok(Policy::Admins { orgs: set(&self.admins_of), at_least })
            }
            _ => Err("a policy is either { members-of = [...] } or { admins-of = [...], at-least = N }".into()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct HttpConfig {
    /// Address the API listens on.
    pub address: String,
    /// Number of HTTP worker threads (0 = one per core).
    pub workers: usize,
    /// How long a broadcast may wait for room in a busy channel's mailbox before 503.
    #[serde(with = "humantime_serde")]
    pub enqueue_timeout: Duration,
    /// Largest `broadcast:batch` request body, in bytes (never less than what one envelope of the
    /// channel's AbsoluteMaxBytes needs).
    pub max_batch_bytes: usize,
    /// Most envelopes in one `broadcast:batch` request.
    pub max_batch_envelopes: usize,
    /// Envelopes a broadcast websocket may have waiting for Kafka's acknowledgement at once;
    /// beyond it the server stops reading the socket until answers go out.
    pub max_in_flight: usize,
    /// How long an idle keep-alive connection stays open. A request that arrived while the
    /// process was paused (a freeze, a GC-like stall of the VM) is answered if the pause was
    /// shorter than this; after a longer one the connection is closed unanswered, as after any
    /// keep-alive expiry (the client retries: a re-sent broadcast may be ordered twice, and peers
    /// mark the second copy a duplicate transaction, as with Fabric).
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// Serve HTTPS (only) with this certificate; absent = plain HTTP.
    pub tls: Option<HttpTlsConfig>,
}

/// `[http.tls]`: the API's certificate, and optionally the CAs its clients' certificates must
/// chain to (Fabric's `ClientAuthRequired` with `ClientRootCAs`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HttpTlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub key_file: PathBuf,
    /// PEM CA certificates: when given, every client must present a certificate issued by one
    /// of them (mutual TLS), or the handshake fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            address: "127.0.0.1:7060".into(),
            workers: 0,
            enqueue_timeout: Duration::from_secs(2),
            max_batch_bytes: 32 * 1024 * 1024,
            max_batch_envelopes: 10_000,
            max_in_flight: 1024,
            keep_alive: Duration::from_secs(75),
            tls: None,
        }
    }
}

/// `[grpc]`: Fabric's own transport, the `orderer.AtomicBroadcast` service (Broadcast and
/// Deliver), which Fabric's peers, CLI, sample clients and SDKs speak.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct GrpcConfig {
    /// Address of the gRPC listener (Fabric's orderer: `General.ListenAddress`:`ListenPort`,
    /// 7050). Empty: no gRPC listener.
    pub address: String,
    /// Threads serving gRPC streams (0 = one per core).
    pub workers: usize,
    /// Largest message received or sent, in bytes (Fabric: 100 MiB, `General.MaxRecvMsgSize`
    /// and `MaxSendMsgSize`).
    pub max_recv_message_size: usize,
    pub max_send_message_size: usize,
    /// Envelopes one Broadcast stream may have in the server at once (being checked, relayed or
    /// waiting for Kafka's acknowledgement); beyond it the server stops reading the stream until
    /// answers go out, which pushes back on the client. 128 keeps a stream at the batch route's
    /// throughput; more only adds latency and memory (clients open many streams).
    pub max_in_flight: usize,
    /// How often the server pings an idle connection, and how long it waits for the answer
    /// before closing it (Fabric: 2 h and 20 s). Clients may ping every 60 s or more, with or
    /// without a stream open, as Fabric's clients do.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// Serve TLS (only) with this certificate; absent = plaintext (Fabric's
    /// `General.TLS.Enabled: false`).
    pub tls: Option<GrpcTlsConfig>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            address: "127.0.0.1:7050".into(),
            workers: 0,
            max_recv_message_size: 100 * 1024 * 1024,
            max_send_message_size: 100 * 1024 * 1024,
            max_in_flight: 128,
            keepalive_interval: Duration::from_secs(2 * 3600),
            keepalive_timeout: Duration::from_secs(20),
            tls: None,
        }
    }
}

impl GrpcConfig {
    /// The number of threads: `workers`, or one per core.
    pub fn workers(&self) -> usize {
        per_core_unless_set(self.workers)
    }
}

/// `[grpc.tls]`: the gRPC listener's certificate, and optionally the CAs its clients'
/// certificates must chain to. With them, every client must present such a certificate
/// (Fabric's `ClientAuthRequired`), and Deliver requires the request's `tls_cert_hash` to be the
/// SHA-256 of it, as Fabric's orderer does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GrpcTlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub key_file: PathBuf,
    /// PEM CA certificates of the clients (mutual TLS, required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

/// `[operations]`: where the operations routes (`/version`, `/logspec`, `/healthz`, `/readyz`,
/// `/metrics`, Fabric's operations service) are served.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct OperationsConfig {
    /// Address of a separate listener for the operations routes, plain HTTP without
    /// authentication: bind it to a private network or loopback (`PUT /logspec` changes what the
    /// OSN logs). Empty (the default): the API's own listener serves them.
    pub address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated bootstrap brokers.
    pub brokers: String,
    /// Replication factor of the topics the OSN creates.
    pub replication_factor: i32,
    /// How long start-up waits for a channel's topic and first CONNECT before retrying.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// A channel whose producer or consumer fails for this long is marked errored (broadcasts
    /// get 503 naming Kafka, STRICT deliveries end) until Kafka answers again.
    #[serde(with = "humantime_serde")]
    pub error_timeout: Duration,
    /// The in-sync replicas each channel's partition needs (the brokers' `min.insync.replicas`):
    /// `/healthz` reports a partition with fewer.
    pub min_insync_replicas: i32,
    /// How a channel retries Kafka after trouble (Fabric's `Kafka.Retry`).
    pub retry: RetryConfig,
    /// How often librdkafka reports its statistics (the `consensus_kafka_*` gauges and each
    /// channel's consumer lag).
    #[serde(with = "humantime_serde")]
    pub statistics_interval: Duration,
    /// How long a consumer lets the broker hold a fetch that finds no new record (librdkafka's
    /// `fetch.wait.max.ms`). A Kafka broker answers as soon as a record arrives, so this only sets
    /// how often idle channels are polled; librdkafka's mock cluster (`osn dev`) holds the whole
    /// time, so there it bounds the extra latency instead.
    #[serde(with = "humantime_serde")]
    pub fetch_wait: Duration,
    /// How many consumers the channels share (1-16): each channel's partition is on one of them,
    /// chosen by its name. librdkafka handles a fetch answer in time that grows with the square
    /// of the partitions one consumer fetches; more consumers cost a few threads each.
    pub consumers: usize,
    /// Extra librdkafka properties for the producer (they override OSN's defaults).
    pub producer: BTreeMap<String, String>,
    /// Extra librdkafka properties for the consumers.
    pub consumer: BTreeMap<String, String>,
    /// Connect to the brokers over TLS (`[kafka.tls]`, even empty: TLS with the system's CAs).
    pub tls: Option<KafkaTlsConfig>,
    /// Authenticate to the brokers with SASL (`[kafka.sasl]`).
    pub sasl: Option<KafkaSaslConfig>,
}

/// `[kafka.tls]`. Every key is optional: no `ca-file` trusts the system's CAs; `cert-file` and
/// `key-file` (together) authenticate the OSN to the brokers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct KafkaTlsConfig {
    /// PEM file of the CA(s) that signed the brokers' certificates.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key_file: Option<PathBuf>,
    /// Password of an encrypted `key-file`.
    pub key_password: Option<Secret>,
    /// A file holding the key's password (trailing newline ignored), instead of `key-password`.
    pub key_password_file: Option<PathBuf>,
}

/// `[kafka.sasl]`: SASL authentication (PLAIN or SCRAM), over TLS when `[kafka.tls]` is present.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct KafkaSaslConfig {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Option<Secret>,
    /// A file holding the password (trailing newline ignored), instead of `password`.
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// librdkafka's name (`sasl.mechanisms`).
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            replication_factor: 3,
            connect_timeout: Duration::from_secs(30),
            statistics_interval: Duration::from_secs(2),
            error_timeout: Duration::from_secs(10),
            min_insync_replicas: 1,
            retry: RetryConfig::default(),
            consumers: 4,
            fetch_wait: Duration::from_millis(500),
            producer: BTreeMap::new(),
            consumer: BTreeMap::new(),
            tls: None,
            sasl: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct LedgerConfig {
    /// Directory of the RocksDB ledger.
    pub path: PathBuf,
    /// fsync every block write (the default; turn off only if losing the last blocks on a power
    /// failure is acceptable: they are re-ordered from Kafka on restart).
    pub sync_writes: bool,
    /// At start, check every block of every channel (numbers, header links, data hashes) before
    /// serving or extending it: a ledger altered on disk stops the start, naming the channel and
    /// the block. Reads the whole ledger once; `false` checks only the last block.
    pub check_on_start: bool,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig { path: PathBuf::from("osn-data/ledger"), sync_writes: true, check_on_start: true }
    }
}

/// Fabric's retry schedule: every `short-interval` for `short-total`, then every
/// `long-interval`; after `long-total` OSN keeps retrying (Fabric halts) and says so.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(with = "humantime_serde")]
    pub short_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub short_total: Duration,
    #[serde(with = "humantime_serde")]
    pub long_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub long_total: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            short_interval: Duration::from_secs(5),
            short_total: Duration::from_secs(600),
            long_interval: Duration::from_secs(300),
            long_total: Duration::from_secs(12 * 3600),
        }
    }
}

impl From<RetryConfig> for crate::core::retry::RetrySchedule {
    fn from(r: RetryConfig) -> Self {
        crate::core::retry::RetrySchedule {
            short_interval: r.short_interval,
            short_total: r.short_total,
            long_interval: r.long_interval,
            long_total: r.long_total,
        }
    }
}

/// One channel. `batch-size` is part of the chain (it is written in the genesis block and every
/// OSN must use the same); `batch-timeout` is local to this OSN.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct ChannelSettings {
    pub name: String,
    pub batch_size: BatchSizeConfig,
    #[serde(with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// Capacity of the channel actor's mailbox.
    pub mailbox_capacity: usize,
    /// How far (in bytes of records, estimated) the partition may run ahead of this OSN's
    /// consumer before broadcasts wait (up to `http.enqueue-timeout`, then 503). Bounds the
    /// backlog and the latency a fast client can build up; 0 = no bound.
    pub max_lag_bytes: u64,
    /// MSP IDs of the channel's organisations (default: every `[[organizations]]` entry).
    pub organizations: Vec<String>,
    /// Who may broadcast (default: any member of the channel's organisations).
    pub writers: Option<PolicyConfig>,
    /// Who may deliver (default: any member of the channel's organisations).
    pub readers: Option<PolicyConfig>,
    /// Who may change the channel (default: admins of a majority of its organisations).
    pub admins: Option<PolicyConfig>,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        ChannelSettings {
            name: String::new(),
            batch_size: BatchSizeConfig::default(),
            batch_timeout: Duration::from_secs(2),
            mailbox_capacity: 4096,
            max_lag_bytes: 256 * 1024 * 1024,
            organizations: Vec::new(),
            writers: None,
            readers: None,
            admins: None,
        }
    }
}

/// Fabric's BatchSize, with Fabric's defaults.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct BatchSizeConfig {
    pub max_message_count: u32,
    pub absolute_max_bytes: u32,
    pub preferred_max_bytes: u32,
}

impl Default for BatchSizeConfig {
    fn default() -> Self {
        BatchSizeConfig {
            max_message_count: 500,
            absolute_max_bytes: 10 * 1024 * 1024,
            preferred_max_bytes: 2 * 1024 * 1024,
        }
    }
}

impl From<BatchSizeConfig> for BatchSize {
    fn from(b: BatchSizeConfig) -> Self {
        BatchSize {
            max_message_count: b.max_message_count,
            absolute_max_bytes: b.absolute_max_bytes,
            preferred_max_bytes: b.preferred_max_bytes,
        }
    }
}

impl Config {
    /// Reads a config file and applies the `OSN_*` variables of the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, &path.display().to_string(), std::env::vars())
    }

    /// Parses config text, then applies `OSN_*` overrides from `env`.
    pub fn parse(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { origin: origin.to_owned(), message };
        let mut value: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        for (key, raw) in env {
            let Some(rest) = key.strip_prefix("OSN_") else { continue };
            let Some((section, field)) = rest.split_once('_') else { continue };
            let section = section.to_ascii_lowercase();
            if !matches!(
                section.as_str(),
                "http" | "grpc" | "operations" | "kafka" | "ledger" | "identity" | "system" | "actors"
            ) {
                continue;
            }
            let field = field.to_ascii_lowercase();
            let mut table =
                sub_table(&mut value, &section).ok_or_else(|| invalid(format!("[{section}] is not a table")))?;
            let sub = NESTED
                .iter()
                .filter(|(s, _)| *s == section)
                .find_map(|&(_, sub)| Some((sub, field.strip_prefix(sub)?.strip_prefix('_')?)));
            let (field, parsed) = if let Some((sub, rest)) = sub {
                table = sub_table(table, sub).ok_or_else(|| invalid(format!("[{section}.{sub}] is not a table")))?;
                // Paths, names and secrets: strings as given (a password "1234" stays a string).
                (rest.replace('_', "-"), toml::Value::String(raw))
            } else {
                let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .unwrap_or(toml::Value::String(raw));
                (field.replace('_', "-"), parsed)
            };
            table.insert(field, parsed);
        }
        let config: Config =
            toml::Value::Table(value).try_into().map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        config.validate().map_err(invalid)?;
        Ok(config)
    }

    /// Checks what serde cannot: names, limits and uniqueness.
    pub fn validate(&self) -> Result<(), String> {
        let grpc = &self.grpc;
        if grpc.max_recv_message_size < 1024 || grpc.max_send_message_size < 1024 {
            return Err("grpc.max-recv-message-size and grpc.max-send-message-size must be at least 1024 bytes".into());
        }
        if grpc.max_in_flight == 0 {
            return Err("grpc.max-in-flight must be at least 1".into());
        }
        let fixed_port = |a: &str| !a.is_empty() && !a.ends_with(":0");
        if fixed_port(&grpc.address) && grpc.address == self.http.address {
            return Err(format!("grpc.address and http.address are the same ({}): each needs its own", grpc.address));
        }
        validate_channel_id(&self.system.channel).map_err(|e| format!("system.channel: {e}"))?;
        validate_batch_size(&self.system.batch_size.into())
            .and_then(|()| validate_batch_timeout(self.system.batch_timeout))
            .map_err(|e| format!("system.batch-size and system.batch-timeout: {e}"))?;
        if self.system.mailbox_capacity == 0 {
            return Err("system.mailbox-capacity must be at least 1".into());
        }
        let mut seen = std::collections::HashSet::new();
        for ch in &self.channels {
            validate_channel_id(&ch.name)?;
            if ch.name == self.system.channel {
                return Err(format!("channel '{}' is the system channel's name (system.channel)", ch.name));
            }
            if !seen.insert(&ch.name) {
                return Err(format!("channel '{}' is configured twice", ch.name));
            }
            // The limits of a create request or an update (`core::config`), so that a declared
            // channel can always be updated.
            validate_batch_size(&ch.batch_size.into())
                .and_then(|()| validate_batch_timeout(ch.batch_timeout))
                .map_err(|e| format!("channel '{}' (its batch-size and batch-timeout): {e}", ch.name))?;
            if ch.mailbox_capacity == 0 {
                return Err(format!("channel '{}': mailbox-capacity must be at least 1", ch.name));
            }
            for (name, policy) in [("writers", &ch.writers), ("readers", &ch.readers), ("admins", &ch.admins)] {
                if let Some(p) = policy {
                    p.to_policy().map_err(|e| format!("channel '{}': {name}: {e}", ch.name))?;
                }
            }
        }
        if self.http.max_batch_envelopes == 0 || self.http.max_in_flight == 0 {
            return Err("http.max-batch-envelopes and http.max-in-flight must be at least 1".into());
        }
        let r = &self.kafka.retry;
        if r.short_interval.is_zero() || r.long_interval.is_zero() {
            return Err("kafka.retry: short-interval and long-interval must be positive".into());
        }
        if self.kafka.replication_factor < 1 {
            return Err("kafka.replication-factor must be at least 1".into());
        }
        if !self.channels.is_empty() && self.identity.dir.is_none() {
            return Err(
                "identity.dir is required: this OSN signs every block it writes. Create an orderer identity with \
                        `osn identity ca --msp-id OrdererMSP --dir orderer-org` and \
                        `osn identity issue --org orderer-org --name osn1 --role orderer`, then set [identity] \
                        dir = \"orderer-org/identities/osn1\" (or OSN_IDENTITY_DIR)"
                    .into(),
            );
        }
        if !(1..=16).contains(&self.kafka.consumers) {
            return Err(format!("kafka.consumers is {}: it must be from 1 to 16", self.kafka.consumers));
        }
        self.kafka.validate_security()
    }
}

/// Sub-tables that take `OSN_<SECTION>_<SUB>_<KEY>` overrides.
const NESTED: &[(&str, &str)] =
    &[("http", "tls"), ("grpc", "tls"), ("kafka", "tls"), ("kafka", "sasl"), ("kafka", "retry")];

/// `table[key]` as a table, created empty if missing; None if it is something else.
fn sub_table<'a>(table: &'a mut toml::Table, key: &str) -> Option<&'a mut toml::Table> {
    table.entry(key).or_insert_with(|| toml::Value::Table(Default::default())).as_table_mut()
}

impl KafkaConfig {
    /// TLS and SASL settings that fit together; no secret in the free-form property maps (they
    /// are printed in `Debug`; secrets belong in `[kafka.tls]` and `[kafka.sasl]`).
    fn validate_security(&self) -> Result<(), String> {
        for (section, props) in [("producer", &self.producer), ("consumer", &self.consumer)] {
            if let Some(key) = props.keys().find(|k| is_secret_property(k)) {
                return Err(format!(
                    "kafka.{section}.\"{key}\" is a secret: set it in [kafka.tls] or [kafka.sasl] (key-password, password, \
                     or their -file forms), which keep it out of logs"
                ));
            }
        }
        if let Some(tls) = &self.tls {
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                return Err("kafka.tls: cert-file and key-file go together".into());
            }
            let password = tls.key_password.is_some() || tls.key_password_file.is_some();
            if password && tls.key_file.is_none() {
                return Err("kafka.tls: key-password needs a key-file".into());
            }
            if tls.key_password.is_some() && tls.key_password_file.is_some() {
                return Err("kafka.tls: set key-password or key-password-file, not both".into());
            }
        }
        if let Some(sasl) = &self.sasl {
            if sasl.username.is_empty() {
                return Err("kafka.sasl.username must not be empty".into());
            }
            if sasl.password.is_some() == sasl.password_file.is_some() {
                return Err("kafka.sasl: set exactly one of password and password-file".into());
            }
        }
        Ok(())
    }
}

/// librdkafka properties that hold secrets.
fn is_secret_property(key: &str) -> bool {
    key.contains("password")
        || key.contains("secret")
        || key == "ssl.key.pem"
        || key == "ssl_key"
        || key == "sasl.oauthbearer.config"
}

pub use crate::core::config::validate_channel_id;
use crate::core::config::{validate_batch_size, validate_batch_timeout};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_config_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let config = Config::parse(&text, &path.display().to_string(), std::iter::empty())
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(!config.channels.is_empty(), "{} configures no channel", path.display());
                n += 1;
            }
        }
        assert!(n > 0, "no config files found in {}", dir.display());
    }

    #[test]
    fn the_sample_configurations_parse() {
        let samples = [
            ("config/osn.toml", include_str!("../../config/osn.toml")),
            ("config/single-broker.toml", include_str!("../../config/single-broker.toml")),
        ];
        for (name, text) in samples {
            let config = Config::parse(text, name, Vec::<(String, String)>::new()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(config.grpc.address, "127.0.0.1:7050", "{name}: Fabric's orderer port");
            assert_eq!(config.http.address, "127.0.0.1:7060", "{name}");
        }
    }

    #[test]
    fn env_overrides_apply() {
        let env = [
            ("OSN_KAFKA_BROKERS", "k1:9092,k2:9092"),
            ("OSN_KAFKA_REPLICATION_FACTOR", "2"),
            ("OSN_LEDGER_SYNC_WRITES", "false"),
            ("OSN_IDENTITY_DIR", "/etc/osn/identity"),
            ("OSN_IDENTITY_TIME_WINDOW", "5m"),
            ("OSN_HTTP_ENQUEUE_TIMEOUT", "250ms"),
            ("OSN_OPERATIONS_ADDRESS", "10.0.0.5:9443"),
            ("OSN_ACTORS_THREADS", "3"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let config = Config::parse("[kafka]\nbrokers = \"x:1\"\n", "test", env).unwrap();
        assert_eq!(config.kafka.brokers, "k1:9092,k2:9092");
        assert_eq!(config.kafka.replication_factor, 2);
        assert!(!config.ledger.sync_writes);
        assert_eq!(config.identity.dir.as_deref(), Some(Path::new("/etc/osn/identity")));
        assert_eq!(config.identity.time_window, Duration::from_secs(300));
        assert_eq!(config.http.enqueue_timeout, Duration::from_millis(250));
        assert_eq!(config.operations.address, "10.0.0.5:9443");
        assert_eq!(config.actors.threads(), 3);
        assert_eq!(Config::default().operations.address, "", "the API's listener by default");
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(Config::default().actors.threads(), cores, "one channel thread per core by default");
    }

    #[test]
    fn invalid_configs_are_refused_with_reasons() {
        let check = |text: &str, needle: &str| {
            let err = Config::parse(text, "t", std::iter::empty()).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        };
        check("[[channels]]\nname = \"Bad\"\n", "invalid channel ID");
        check("[[channels]]\nname = \"a\"\n[[channels]]\nname = \"a\"\n", "twice");
        check(
            "[[channels]]\nname = \"a\"\nbatch-size = { preferred-max-bytes = 10, absolute-max-bytes = 5 }\n",
            "channel 'a' (its batch-size and batch-timeout): batch size: preferred max bytes (10) is over absolute max bytes (5)",
        );
        // The limits of a create request or an update, so that the channel can always be updated.
        check(
            "[[channels]]\nname = \"a\"\nbatch-size = { absolute-max-bytes = 209715200 }\n",
            "channel 'a' (its batch-size and batch-timeout): batch size: absolute max bytes (209715200) is over 104857600",
        );
        check("[[channels]]\nname = \"a\"\nbatch-size = { max-message-count = 0 }\n", "max message count");
        check("[[channels]]\nname = \"a\"\nbatch-timeout = \"2h\"\n", "at most 1h");
        check(
            "[system]\nbatch-size = { absolute-max-bytes = 209715200 }\n",
            "system.batch-size and system.batch-timeout: batch size: absolute max bytes",
        );
        check("[system]\nbatch-timeout = \"0s\"\n", "system.batch-timeout: batch timeout '0s' must be more than 0");
        check("[kafka]\nbrokerz = \"x\"\n", "unknown field");
        check("[[channels]]\nname = \"a\"\nbatch-timeout = \"soon\"\n", "batch-timeout");
        check("[[channels]]\nname = \"a\"\n", "identity.dir is required");
        check("[[channels]]\nname = \"a\"\n", "osn identity issue");
        Config::parse("[identity]\ndir = \"id\"\n[[channels]]\nname = \"a\"\n", "t", std::iter::empty()).unwrap();
        Config::parse("[kafka]\nbrokers = \"x:1\"\n", "no channels, no identity needed", std::iter::empty()).unwrap();
    }

    #[test]
    fn nested_env_overrides_apply_as_strings() {
        let env = [
            ("OSN_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("OSN_KAFKA_SASL_USERNAME", "osn"),
            ("OSN_KAFKA_SASL_PASSWORD", "1234"),
            ("OSN_KAFKA_TLS_CA_FILE", "/etc/kafka/ca.pem"),
            ("OSN_HTTP_TLS_CERT_FILE", "/etc/osn/cert.pem"),
            ("OSN_HTTP_TLS_KEY_FILE", "/etc/osn/key.pem"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let config = Config::parse("[kafka.sasl]\nmechanism = \"PLAIN\"\n", "test", env).unwrap();
        let sasl = config.kafka.sasl.unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
        assert_eq!(sasl.username, "osn");
        assert_eq!(sasl.password.unwrap().expose(), "1234");
        assert_eq!(config.kafka.tls.unwrap().ca_file.unwrap(), Path::new("/etc/kafka/ca.pem"));
        let tls = config.http.tls.unwrap();
        assert_eq!(
            (tls.cert_file.to_str(), tls.key_file.to_str()),
            (Some("/etc/osn/cert.pem"), Some("/etc/osn/key.pem"))
        );
    }

    #[test]
    fn secrets_never_show() {
        let text = "[kafka.tls]\nkey-file = \"k\"\ncert-file = \"c\"\nkey-password = \"tls-hunter2\"\n\
                    [kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword = \"sasl-hunter2\"\n";
        let config = Config::parse(text, "test", std::iter::empty()).unwrap();
        let shown = [
            format!("{config:?}"),
            format!("{config:#?}"),
            toml::to_string(&config).unwrap(),
            serde_json::to_string(&config).unwrap(),
            config.kafka.sasl.as_ref().unwrap().password.as_ref().unwrap().to_string(),
        ];
        for text in shown {
            assert!(!text.contains("hunter2"), "{text}");
        }
        assert!(format!("{config:?}").contains("<redacted>"));
    }

    #[test]
    fn invalid_security_configs_are_refused_with_reasons() {
        let check = |text: &str, needle: &str| {
            let err = Config::parse(text, "t", std::iter::empty()).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        };
        check("[kafka.producer]\n\"sasl.password\" = \"x\"\n", "is a secret");
        check("[kafka.consumer]\n\"ssl.key.password\" = \"x\"\n", "is a secret");
        check("[kafka.tls]\ncert-file = \"c\"\n", "cert-file and key-file go together");
        check("[kafka.tls]\nkey-password = \"p\"\n", "needs a key-file");
        check(
            "[kafka.tls]\nkey-file = \"k\"\ncert-file = \"c\"\nkey-password = \"p\"\nkey-password-file = \"f\"\n",
            "not both",
        );
        check("[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\n", "exactly one of password and password-file");
        check(
            "[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword = \"p\"\npassword-file = \"f\"\n",
            "exactly one",
        );
        check("[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"\"\npassword = \"p\"\n", "username must not be empty");
        check("[kafka.sasl]\nmechanism = \"GSSAPI\"\nusername = \"u\"\npassword = \"p\"\n", "unknown variant");
        check("[kafka.tls]\nca-flie = \"x\"\n", "unknown field");
        check("[http.tls]\ncert-file = \"c\"\n", "missing field `key-file`");
    }

    #[test]
    fn channel_ids() {
        for ok in ["a", "mychannel", "a.b-c9"] {
            assert!(validate_channel_id(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(250);
        for bad in ["", "A", "9a", "a_b", "a b", long.as_str()] {
            assert!(validate_channel_id(bad).is_err(), "{bad}");
        }
    }
}
