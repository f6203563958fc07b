//! Typed configuration: a TOML file, then `OSN_<SECTION>_<KEY>` environment overrides
//! (for example `OSN_KAFKA_BROKERS=k1:9092,k2:9092`, `OSN_GRPC_ADDRESS=0.0.0.0:7050`, `OSN_HTTP_ADDRESS=0.0.0.0:7060`,
//! `OSN_LEDGER_SYNC_WRITES=false`, `OSN_OPERATIONS_ADDRESS=10.0.0.5:9443`). An override's key is
//! the rest of the variable's name, lower-cased, with `_` read as `-`. The sub-tables `http.tls`, `grpc.tls`,
//! `kafka.tls` and `kafka.sasl` take overrides too (`OSN_KAFKA_SASL_PASSWORD`,
//! `OSN_HTTP_TLS_CERT_FILE`); their values are taken as strings, verbatim. What channels share
//! (brokers, batch sizes, organisations, policies) is not here: it is Fabric's channel
//! configuration, from the system channel's genesis block (`[system] genesis-file`).
//!
//! Secrets (passwords) are [`Secret`]s: they never appear in `Debug`, `Display` or serialized
//! output, and the free-form librdkafka property maps refuse them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

/// The system channel, which every OSN consumes and channels are created through: it boots
/// from Fabric's genesis block (made by `configtxgen -outputBlock`), which holds everything the
/// channels share: the Kafka brokers, batch size and timeout, the orderer organisations, the
/// consortiums and their members, the capabilities. Give every OSN the same file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct SystemConfig {
    /// The system channel's genesis block (Fabric's `General.BootstrapFile`). Read at the first
    /// start, when the ledger is new; later starts check it is the ledger's block 0.
    pub genesis_file: Option<PathBuf>,
    /// This OSN's mailbox capacity for each channel.
    pub mailbox_capacity: usize,
    /// How far (in bytes of records, estimated) a channel's partition may run ahead of this
    /// OSN's consumer before broadcasts wait (up to `http.enqueue-timeout`, then 503). Bounds the
    /// backlog and the latency a fast client can build up; 0 = no bound.
    pub max_lag_bytes: u64,
}

impl Default for SystemConfig {
    fn default() -> Self {
        let ch = ChannelSettings::default();
        SystemConfig { genesis_file: None, mailbox_capacity: ch.mailbox_capacity, max_lag_bytes: ch.max_lag_bytes }
    }
}

impl SystemConfig {
    /// The node-local settings of a channel (the system channel or one created through it).
    pub fn settings(&self, name: &str) -> ChannelSettings {
        ChannelSettings {
            name: name.to_owned(),
            mailbox_capacity: self.mailbox_capacity,
            max_lag_bytes: self.max_lag_bytes,
        }
    }
}

/// This OSN's own identity, and how it checks the identities of requests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct IdentityConfig {
    /// This OSN's signing identity: a Fabric local MSP directory (`signcerts/`, `keystore/`,
    /// `cacerts/`, as cryptogen writes `orderers/<name>/msp`, or as `osn identity issue --role
    /// orderer` writes it). It signs every block, and must satisfy the channels'
    /// `/Channel/Orderer/BlockValidation` policy: an orderer of an orderer organisation.
    pub dir: Option<PathBuf>,
    /// The identity's MSP ID (Fabric's `General.LocalMSPID`), when its directory has no `mspid`
    /// file (cryptogen's do not).
    pub msp_id: Option<String>,
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
            msp_id: None,
            time_window: Duration::from_secs(15 * 60),
            verify_threads: 0,
            skip_signature_verification: false,
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
    /// `osn dev` only: the identity `/explorer` reads as when its link carries the token. Never
    /// read from a configuration file, so `osn start` never has one.
    #[serde(skip)]
    pub dev_reader: Option<DevReader>,
}

/// The identity `osn dev` lends its explorer link (`GET /explorer/dev-reader` with the token),
/// so a newcomer's browser can read the dev channel with one click, as a notebook server's token
/// lets a browser in. The development client's own key, already on disk in the dev crypto
/// directory; a dev network's, never a real one's.
#[derive(Clone, PartialEq, Eq)]
pub struct DevReader {
    /// Random, printed in the link only (in its fragment, which browsers do not send).
    pub token: String,
    pub msp_id: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for DevReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevReader").field("msp_id", &self.msp_id).finish_non_exhaustive()
    }
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
            dev_reader: None,
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
    /// Comma-separated bootstrap brokers. Empty (the default): the brokers of the system
    /// channel's genesis block (`Orderer.Kafka.Brokers` of configtx.yaml); set, it overrides them
    /// for this OSN (an OSN extension: Fabric reads the block's only).
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
            brokers: String::new(),
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

/// This OSN's own settings for one channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct ChannelSettings {
    pub name: String,
    /// Capacity of the channel actor's mailbox.
    pub mailbox_capacity: usize,
    /// How far (in bytes of records, estimated) the partition may run ahead of this OSN's
    /// consumer before broadcasts wait (up to `http.enqueue-timeout`, then 503); 0 = no bound.
    pub max_lag_bytes: u64,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        ChannelSettings { name: String::new(), mailbox_capacity: 4096, max_lag_bytes: 256 * 1024 * 1024 }
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
        if self.system.mailbox_capacity == 0 {
            return Err("system.mailbox-capacity must be at least 1".into());
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
                assert!(config.system.genesis_file.is_some(), "{} names no genesis block", path.display());
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
        check("[kafka]\nbrokerz = \"x\"\n", "unknown field");
        check("[system]\nmailbox-capacity = 0\n", "system.mailbox-capacity must be at least 1");
        // What the genesis block holds is not set here any more.
        check("[[channels]]\nname = \"a\"\n", "unknown field `channels`");
        check("[system]\nbatch-timeout = \"2s\"\n", "unknown field `batch-timeout`");
        Config::parse("[system]\ngenesis-file = \"genesis.block\"\n", "t", std::iter::empty()).unwrap();
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
