//! Test harness: a real Kafka-protocol broker (librdkafka's mock cluster, in this process but
//! listening on loopback TCP), `osn start` processes configured against it, and HTTP/websocket
//! clients. Every wait is on a condition with a deadline.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use osn::cli::client::{read_authorization, seek_request, transaction};
use osn::identity::{create_ca, issue, KeyType, Role, SigningIdentity, Validity};
use osn::kafka::embedded::EmbeddedKafka;
use osn::proto::orderer::deliver_response;
use osn::proto::{Block, BroadcastResponse, DeliverResponse, Envelope, SeekInfo};
use prost::Message as _;

/// Organisations and identities shared by every test of this binary (made once):
/// `OrdererMSP` (identities osn0, osn1, osn2), `Org1MSP` (client, admin; Ed25519 client `ed`), and
/// `Org2MSP` (client). OSNs define Org1 and Org2; channels hold Org1 unless a test says otherwise.
pub struct TestCrypto {
    pub root: PathBuf,
    pub orderer_org: PathBuf,
    pub org1: PathBuf,
    pub org2: PathBuf,
    /// Org1's client: what tests sign with unless they say otherwise.
    pub client: SigningIdentity,
    pub admin: SigningIdentity,
    pub ed25519_client: SigningIdentity,
    /// A client of Org2.
    pub outsider: SigningIdentity,
}

impl TestCrypto {
    /// The directory of orderer identity `osn{n}` (n < 3).
    pub fn osn_identity(&self, n: usize) -> PathBuf {
        self.orderer_org.join("identities").join(format!("osn{n}"))
    }

    /// Issues a new identity of `org` (a directory of this crypto) and loads it.
    pub fn issue(&self, org: &Path, name: &str, role: Role, key: KeyType, validity: Validity) -> SigningIdentity {
        SigningIdentity::load(&issue(org, name, role, key, validity).unwrap()).unwrap()
    }
}

pub fn crypto() -> &'static TestCrypto {
    static CRYPTO: std::sync::OnceLock<TestCrypto> = std::sync::OnceLock::new();
    CRYPTO.get_or_init(|| {
        // Lives as long as the test process.
        let root = tempfile::Builder::new().prefix("osn-it-crypto-").tempdir().unwrap().keep();
        let org = |name: &str, msp: &str| {
            let dir = root.join(name);
            create_ca(msp, &dir, KeyType::EcdsaP256, Validity::ca_default()).unwrap();
            dir
        };
        let (orderer_org, org1, org2) = (org("orderer", "OrdererMSP"), org("org1", "Org1MSP"), org("org2", "Org2MSP"));
        for n in 0..3 {
            issue(&orderer_org, &format!("osn{n}"), Role::Orderer, KeyType::EcdsaP256, Validity::leaf_default())
                .unwrap();
        }
        let load = |org: &Path, name, role, key| {
            SigningIdentity::load(&issue(org, name, role, key, Validity::leaf_default()).unwrap()).unwrap()
        };
        TestCrypto {
            client: load(&org1, "client", Role::Client, KeyType::EcdsaP256),
            admin: load(&org1, "admin", Role::Admin, KeyType::EcdsaP256),
            ed25519_client: load(&org1, "ed", Role::Client, KeyType::Ed25519),
            outsider: load(&org2, "client", Role::Client, KeyType::EcdsaP256),
            root,
            orderer_org,
            org1,
            org2,
        }
    })
}

/// Starts channels of `settings` in this process (no system channel) on `store`, signed by OSN 0,
/// with their ledgers checked at start.
pub fn start_channels(
    settings: &[osn::config::ChannelSettings],
    kafka: &osn::config::KafkaConfig,
    store: std::sync::Arc<dyn osn::ledger::Store>,
) -> std::sync::Arc<osn::actors::Channels> {
    let producer = osn::kafka::producer(kafka).unwrap();
    let specs = channel_specs(settings);
    // Two threads: several channels share each (as on a machine with fewer cores than channels).
    let channels =
        osn::actors::Channels::start(&specs, None, 900, kafka, &producer, store, Some(osn_signer(0)), true, 2);
    std::sync::Arc::new(channels.unwrap())
}

/// In-process channels' start specs: Org1 as their organisation, OrdererMSP as the orderer's.
pub fn channel_specs(settings: &[osn::config::ChannelSettings]) -> Vec<osn::actors::ChannelSpec> {
    use osn::identity::load_org_msp;
    use osn::proto::osn::Organization;
    let org1: Organization = load_org_msp(&crypto().org1.join("msp")).unwrap().into();
    let orderer: Organization = load_org_msp(&crypto().osn_identity(0)).unwrap().into();
    let orgs = std::collections::BTreeMap::from([(org1.msp_id.clone(), org1)]);
    settings
        .iter()
        .map(|s| osn::actors::ChannelSpec {
            settings: s.clone(),
            genesis: osn::core::block::genesis_block(
                &s.name,
                &osn::config::channel_config(s, &orgs, Some(&orderer)).unwrap(),
            ),
        })
        .collect()
}

/// The signing identity of orderer `osn{n}`, for in-process channels.
pub fn osn_signer(n: usize) -> std::sync::Arc<SigningIdentity> {
    std::sync::Arc::new(SigningIdentity::load(&crypto().osn_identity(n)).unwrap())
}

/// A fresh channel name, also the topic name.
pub fn channel_name(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// Polls `check` until it returns Some, failing the test after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The broker: librdkafka's mock cluster with one-partition topics created on demand.
pub struct Broker {
    pub kafka: EmbeddedKafka,
}

impl Broker {
    /// The mock cluster, with the system channel's topic (the mock cluster never answers
    /// CreateTopics: an OSN would wait for the timeout, then rely on auto-creation).
    pub fn start() -> Broker {
        let kafka = EmbeddedKafka::start(1).expect("mock cluster");
        kafka.create_topic("osn-system", 1).expect("create the system topic");
        Broker { kafka }
    }

    /// A cluster of `brokers` brokers whose topics (the system channel's and `channel`) have
    /// `brokers` replicas.
    pub fn replicated(brokers: i32, channel: &str) -> Broker {
        let kafka = EmbeddedKafka::start(brokers).expect("mock cluster");
        for topic in ["osn-system", channel] {
            kafka.cluster().create_topic(topic, 1, brokers).expect("create topic");
        }
        Broker { kafka }
    }

    pub fn with_topic(channel: &str) -> Broker {
        let b = Broker::start();
        b.kafka.create_topic(channel, 1).expect("create topic");
        b
    }

    pub fn servers(&self) -> String {
        self.kafka.bootstrap_servers()
    }
}

/// An independent Kafka-protocol broker process: tansu, storing to sqlite so that it keeps its
/// records across a restart. `scripts/install-tansu` installs it (`scripts/test` runs that);
/// `OSN_TANSU` names another executable. Killed when dropped.
pub struct Tansu {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Tansu {
    /// Starts tansu on a free loopback port with a new sqlite database.
    pub fn start() -> Tansu {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut tansu = Tansu { child: None, port, dir: tempfile::tempdir().unwrap() };
        tansu.launch();
        tansu
    }

    fn executable() -> PathBuf {
        if let Some(exe) = std::env::var_os("OSN_TANSU") {
            return exe.into();
        }
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"));
        home.join("bin").join("tansu")
    }

    /// Starts the process on this port and database; returns once it accepts connections.
    fn launch(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("tansu.log")).unwrap();
        let exe = Self::executable();
        let child = Command::new(&exe)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine"])
            // tansu takes the database path relative to its working directory.
            .arg("sqlite://tansu.db")
            .current_dir(self.dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} ({e}): install it with scripts/install-tansu", exe.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("tansu exited with {status}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "tansu does not listen after 30 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }

    pub fn servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL: whatever it has not written to its database is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and database.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Quick Kafka trouble detection and retries, and a producer that gives up on a record after 3 s
/// (`[kafka]` keys of an [`OsnSpec`]).
pub const FAST_KAFKA: &str = r#"error-timeout = "1s"
statistics-interval = "200ms"
producer = { "message.timeout.ms" = "3000" }
[kafka.retry]
short-interval = "200ms"
"#;

/// Broadcasts each envelope once, concurrently; the envelopes Kafka acknowledged, and the
/// refusals' infos (every refusal must be a 503).
pub async fn try_all(url: &str, envelopes: &[Envelope]) -> (Vec<Envelope>, Vec<String>) {
    let answers =
        futures_util::future::join_all(envelopes.iter().map(|e| async move { (e.clone(), broadcast(url, e).await) }))
            .await;
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for (env, (code, resp)) in answers {
        if code == 200 {
            acked.push(env);
        } else {
            assert_eq!(code, 503, "{resp:?}");
            refused.push(resp.info);
        }
    }
    (acked, refused)
}

/// Every acknowledged envelope is in the chain exactly once.
pub fn assert_all_once(chain: &[Block], acked: &[Envelope]) {
    let mut seen: std::collections::HashMap<Vec<u8>, usize> = std::collections::HashMap::new();
    for b in chain.iter().skip(1) {
        for d in &b.data.as_ref().unwrap().data {
            *seen.entry(d.to_vec()).or_default() += 1;
        }
    }
    for env in acked {
        assert_eq!(seen.get(&env.encode_to_vec()), Some(&1), "an acknowledged envelope is missing or duplicated");
    }
}

/// Settings of one OSN process.
#[derive(Clone)]
pub struct OsnSpec {
    pub channel: String,
    pub brokers: String,
    pub batch_timeout: &'static str,
    pub max_message_count: u32,
    pub preferred_max_bytes: u32,
    pub absolute_max_bytes: u32,
    /// Serve HTTPS with these files (`[http.tls]`).
    pub http_tls: Option<TestPki>,
    /// The OSN's signing identity: orderer `osn{n}` of the test crypto.
    pub osn_identity: usize,
    /// Extra keys of the channel's `[[channels]]` table (organisations, policies).
    pub channel_extra: String,
    /// Whether `channel` is declared in `[[channels]]` (else it is the system channel's name, or
    /// a channel the test creates).
    pub declared: bool,
    /// Keys of the `[system]` table.
    pub system_extra: String,
    /// More keys of the `[kafka]` table.
    pub kafka_extra: String,
    /// `[operations] address`: empty (the default) serves the operations routes on the API's
    /// listener.
    pub operations_address: String,
    /// Environment variables of the process besides `OSN_LOG` (`OSN_LOG_FORMAT`, for example).
    pub env: Vec<(&'static str, String)>,
}

/// Certificate files for an OSN serving HTTPS: a CA, and a certificate it signed for `localhost`
/// and `127.0.0.1` with its key. The files live as long as the last clone.
#[derive(Clone)]
pub struct TestPki {
    _dir: std::sync::Arc<tempfile::TempDir>,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// A client certificate the CA issued, and its key.
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
    /// Whether the OSN requires client certificates from this CA (`client-ca-file`).
    pub require_client_certs: bool,
}

impl TestPki {
    pub fn generate() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "OSN test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params.distinguished_name.push(DnType::CommonName, "OSN test client");
        let client_cert = client_params.signed_by(&client_key, &ca).unwrap();
        let ca_file = write("ca.pem", ca.pem());
        let cert_file = write("cert.pem", cert.pem());
        let key_file = write("key.pem", key.serialize_pem());
        let client_cert_file = write("client.pem", client_cert.pem());
        let client_key_file = write("client-key.pem", client_key.serialize_pem());
        TestPki {
            _dir: std::sync::Arc::new(dir),
            ca_file,
            cert_file,
            key_file,
            client_cert_file,
            client_key_file,
            require_client_certs: false,
        }
    }

    /// An HTTP and websocket client that trusts this CA only, presenting its client certificate.
    pub fn client(&self) -> awc::Client {
        let cert = Some((self.client_cert_file.as_path(), self.client_key_file.as_path()));
        let tls = osn::http::tls::client_config_with(&self.ca_file, "ca", cert).unwrap();
        let connector = awc::Connector::new().rustls_0_23(std::sync::Arc::new(tls));
        awc::Client::builder().connector(connector).timeout(Duration::from_secs(30)).finish()
    }
}

impl OsnSpec {
    pub fn new(channel: &str, broker: &Broker) -> Self {
        Self::on(channel, broker.servers())
    }

    /// An OSN of `channel` on the brokers `servers` (a [`Tansu`], say).
    pub fn on(channel: &str, servers: String) -> Self {
        OsnSpec {
            channel: channel.into(),
            brokers: servers,
            batch_timeout: "100ms",
            max_message_count: 50,
            preferred_max_bytes: 64 * 1024,
            absolute_max_bytes: 256 * 1024,
            http_tls: None,
            osn_identity: 0,
            channel_extra: "organizations = [\"Org1MSP\"]".into(),
            declared: true,
            system_extra: String::new(),
            kafka_extra: String::new(),
            operations_address: String::new(),
            env: Vec::new(),
        }
    }

    /// OSNs with no declared channel: `channel` is the system channel, whose readiness the
    /// harness waits for; the test creates its channels.
    pub fn system_only(broker: &Broker, system_extra: &str) -> Self {
        OsnSpec { declared: false, system_extra: system_extra.into(), ..OsnSpec::new("osn-system", broker) }
    }

    fn toml(&self, ledger: &Path) -> String {
        let tls = self.http_tls.as_ref().map_or(String::new(), |pki| {
            let client_ca =
                if pki.require_client_certs { format!("client-ca-file = {:?}\n", pki.ca_file) } else { String::new() };
            format!("[http.tls]\ncert-file = {:?}\nkey-file = {:?}\n{client_ca}", pki.cert_file, pki.key_file)
        });
        format!(
            r#"[http]
address = "127.0.0.1:0"
workers = 2
[kafka]
brokers = "{brokers}"
replication-factor = 1
connect-timeout = "5s"
{kafka_extra}
[ledger]
path = "{ledger}"
[identity]
dir = "{identity}"
[[organizations]]
msp-dir = "{org1}"
[[organizations]]
msp-dir = "{org2}"
[system]
{system}
[operations]
address = "{operations}"
"#,
            identity = crypto().osn_identity(self.osn_identity).display(),
            org1 = crypto().org1.join("msp").display(),
            org2 = crypto().org2.join("msp").display(),
            system = self.system_extra,
            kafka_extra = self.kafka_extra,
            operations = self.operations_address,
            brokers = self.brokers,
            ledger = ledger.display(),
        ) + &self.declared_channel()
            + &tls
    }

    fn declared_channel(&self) -> String {
        if !self.declared {
            return String::new();
        }
        format!(
            r#"[[channels]]
name = "{channel}"
batch-timeout = "{timeout}"
batch-size = {{ max-message-count = {count}, absolute-max-bytes = {abs}, preferred-max-bytes = {pref} }}
{extra}
"#,
            extra = self.channel_extra,
            channel = self.channel,
            timeout = self.batch_timeout,
            count = self.max_message_count,
            abs = self.absolute_max_bytes,
            pref = self.preferred_max_bytes,
        )
    }
}

/// An `osn start` process. Killed when dropped; its data directory lives as long as it.
pub struct Osn {
    pub spec: OsnSpec,
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub url: String,
    /// Where the operations routes are served: `url`, or the listener of `[operations] address`.
    pub operations_url: String,
}

impl Osn {
    pub async fn start(spec: OsnSpec) -> Osn {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("osn.toml"), spec.toml(&dir.path().join("ledger"))).unwrap();
        let mut osn = Osn { spec, dir, child: None, url: String::new(), operations_url: String::new() };
        osn.launch(true).await;
        osn
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("osn.log")
    }

    /// The process's whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last lines of the process's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Spawns the process (with `extra_env` besides the spec's); the receiver gets its listeners'
    /// URLs as it prints them (true: the operations listener).
    fn spawn(&mut self, extra_env: &[(&str, String)]) -> mpsc::Receiver<(bool, String)> {
        self.url.clear();
        self.operations_url.clear();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_osn"))
            .args(["start", "--config"])
            .arg(self.dir.path().join("osn.toml"))
            .env("OSN_LOG", "info,osn=debug,rdkafka=warn")
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .envs(extra_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn osn");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // The operations listener's line comes first, when there is one.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("osn operations listening on ") {
                    let _ = tx.send((true, url.to_owned()));
                }
                if let Some(url) = line.strip_prefix("osn listening on ") {
                    let _ = tx.send((false, url.to_owned()));
                }
            }
        });
        self.child = Some(child);
        rx
    }

    /// Starts the process; waits until it listens and, if `ready`, until its channel is READY.
    async fn launch(&mut self, ready: bool) {
        let rx = self.spawn(&[]);
        // Listening, then ready: the channel consumes (it answers broadcasts only from then on).
        let deadline = Instant::now() + Duration::from_secs(60);
        let info_url = format!("/v1/channels/{}", self.spec.channel);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("osn exited with {status} while starting:\n{}", self.log_tail());
            }
            if self.url.is_empty() {
                if let Ok((operations, url)) = rx.try_recv() {
                    if operations {
                        self.operations_url = url;
                        continue;
                    }
                    if self.operations_url.is_empty() {
                        self.operations_url = url.clone();
                    }
                    self.url = url;
                    if !ready {
                        return;
                    }
                }
            } else if let Ok(mut resp) = self.client().get(format!("{}{info_url}", self.url)).send().await {
                let info: serde_json::Value = resp.json().await.unwrap_or_default();
                assert_ne!(info["status"], "ERRORED", "channel errored: {info}\n{}", self.log_tail());
                // Its channel, and every other one (the system channel) too.
                let all_ready = || async {
                    let resp = self.client().get(format!("{}/readyz", self.operations_url)).send().await;
                    resp.is_ok_and(|r| r.status() == 200)
                };
                if info["status"] == "READY" && all_ready().await {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "osn not ready within 60 s:\n{}", self.log_tail());
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A client for this OSN's API: one trusting its CA when it serves HTTPS.
    pub fn client(&self) -> awc::Client {
        self.spec.http_tls.as_ref().map_or_else(client, TestPki::client)
    }

    /// SIGKILL: no chance to flush or close anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the process again on the same configuration and ledger.
    pub async fn restart(&mut self) {
        self.kill();
        self.launch(true).await;
    }

    /// Starts the process again without waiting for its channel to be ready (Kafka may be gone).
    pub async fn restart_listening(&mut self) {
        self.kill();
        self.launch(false).await;
    }

    /// Starts the process again with `OSN_CRASH_AT=<crash>` (`src/faults.rs`) and waits (60 s at
    /// most) until it has killed itself there; its API is not used meanwhile.
    pub async fn crash_at(&mut self, crash: &str) {
        self.spawn_to_crash(crash);
        self.wait_for_crash(crash).await;
    }

    /// Starts the process again with `OSN_CRASH_AT=<crash>`, and returns at once.
    pub fn spawn_to_crash(&mut self, crash: &str) {
        self.kill();
        let _ = self.spawn(&[("OSN_CRASH_AT", crash.to_owned())]);
    }

    /// Waits (60 s at most) until a process started by `spawn_to_crash` has killed itself at
    /// `crash`.
    pub async fn wait_for_crash(&mut self, crash: &str) {
        let mut child = self.child.take().expect("running");
        let status = wait_for(&format!("the OSN to crash at {crash}"), Duration::from_secs(60), || {
            let status = child.try_wait().unwrap();
            async move { status }
        })
        .await;
        use std::os::unix::process::ExitStatusExt as _;
        let point = crash.split(':').next().unwrap();
        assert!(
            status.signal() == Some(9) && self.log().contains(&format!("crash point {point} reached")),
            "the OSN exited with {status}, not at crash point {point}:\n{}",
            self.log_tail()
        );
    }

    /// SIGTERM, and wait (bounded) for a clean exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        wait_for("the OSN to exit after SIGTERM", Duration::from_secs(20), || {
            let status = child.try_wait().ok().flatten();
            async move { status }
        })
        .await
    }

    pub fn broadcast_url(&self) -> String {
        format!("{}/v1/channels/{}/broadcast", self.url, self.spec.channel)
    }

    pub async fn height(&self) -> u64 {
        self.height_of(&self.spec.channel).await
    }

    pub async fn height_of(&self, channel: &str) -> u64 {
        let mut resp = self.client().get(format!("{}/v1/channels/{channel}", self.url)).send().await.unwrap();
        let info: serde_json::Value = resp.json().await.unwrap();
        info["height"].as_str().unwrap().parse().unwrap()
    }

    pub async fn block(&self, n: u64) -> Block {
        self.block_of(&self.spec.channel, n).await
    }

    /// Block `n` of `channel`, read as Org1's client.
    pub async fn block_of(&self, channel: &str, n: u64) -> Block {
        let mut resp = self
            .client()
            .get(format!("{}/v1/channels/{channel}/blocks/{n}", self.url))
            .insert_header(("Accept", "application/x-protobuf"))
            .insert_header(("Authorization", read_authorization(&crypto().client, channel)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "block {n} of {channel}");
        Block::decode(resp.body().limit(64 << 20).await.unwrap()).unwrap()
    }

    /// Every block, 0..height.
    pub async fn chain(&self) -> Vec<Block> {
        self.chain_of(&self.spec.channel).await
    }

    /// Every block of `channel`, 0..height.
    pub async fn chain_of(&self, channel: &str) -> Vec<Block> {
        let h = self.height_of(channel).await;
        let mut out = Vec::new();
        for n in 0..h {
            out.push(self.block_of(channel, n).await);
        }
        out
    }

    /// Waits until this OSN's chain holds at least `count` transactions (genesis excluded) and
    /// returns the chain.
    pub async fn wait_for_transactions(&self, count: usize, timeout: Duration) -> Vec<Block> {
        let deadline = Instant::now() + timeout;
        let (mut next, mut total) = (1u64, 0usize);
        loop {
            let height = self.height().await;
            while next < height {
                total += self.block(next).await.data.unwrap().data.len();
                next += 1;
            }
            if total >= count {
                return self.chain().await;
            }
            assert!(
                Instant::now() < deadline,
                "{total}/{count} transactions ordered after {timeout:?}:\n{}",
                self.log_tail()
            );
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Osn {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn client() -> awc::Client {
    awc::Client::builder().timeout(Duration::from_secs(30)).finish()
}

/// Broadcasts one envelope as protobuf; returns the HTTP code and the answer.
pub async fn broadcast(url: &str, env: &Envelope) -> (u16, BroadcastResponse) {
    let mut resp = client()
        .post(url)
        .insert_header(("Content-Type", "application/x-protobuf"))
        .insert_header(("Accept", "application/x-protobuf"))
        .send_body(env.encode_to_vec())
        .await
        .expect("broadcast request");
    let body = resp.body().await.unwrap();
    (resp.status().as_u16(), BroadcastResponse::decode(body).expect("BroadcastResponse"))
}

/// Broadcasts `envelopes` with `concurrency` requests in flight; panics on any non-200 answer.
pub async fn broadcast_all(url: &str, envelopes: &[Envelope], concurrency: usize) {
    let results: Vec<(u16, BroadcastResponse)> = futures_util::stream::iter(envelopes.iter())
        .map(|e| broadcast(url, e))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    for (code, resp) in results {
        assert_eq!(code, 200, "broadcast answered {resp:?}");
    }
}

/// `n` transactions of about `size` bytes, signed by Org1's client.
pub fn envelopes(channel: &str, n: usize, size: usize) -> Vec<Envelope> {
    (0..n).map(|_| transaction(&crypto().client, channel, size)).collect()
}

/// Opens the deliver websocket, sends `seek`, and collects responses until a status arrives
/// (or `max_blocks` blocks when the stream would go on).
pub async fn deliver(base: &str, channel: &str, seek: &SeekInfo, max_blocks: usize) -> (Vec<Block>, Option<i32>) {
    let url = format!("{}/v1/channels/{channel}/deliver", base.replace("http://", "ws://"));
    let (_, mut ws) = awc::Client::new().ws(url).max_frame_size(64 << 20).connect().await.expect("ws connect");
    let request = seek_request(&crypto().client, channel, seek);
    ws.send(awc::ws::Message::Binary(request.encode_to_vec().into())).await.unwrap();
    let mut blocks = Vec::new();
    while blocks.len() < max_blocks {
        let frame = actix_rt::time::timeout(Duration::from_secs(30), ws.next()).await.expect("deliver frame in time");
        match frame {
            Some(Ok(awc::ws::Frame::Binary(b))) => match DeliverResponse::decode(b).unwrap().r#type {
                Some(deliver_response::Type::Block(block)) => blocks.push(block),
                Some(deliver_response::Type::Status(s)) => return (blocks, Some(s)),
                None => panic!("empty DeliverResponse"),
            },
            Some(Ok(_)) => continue,
            other => panic!("deliver stream ended: {other:?}"),
        }
    }
    (blocks, None)
}

/// What must be identical across OSNs: header, data and the ORDERER metadata slot.
pub fn consensus_view(block: &Block) -> (osn::proto::BlockHeader, Vec<Bytes>, Option<Bytes>) {
    (
        block.header.clone().unwrap(),
        block.data.clone().unwrap().data,
        osn::core::block::metadata_value(block, osn::proto::common::BlockMetadataIndex::Orderer),
    )
}

/// Checks the hash links, the batch limits, and that every envelope of `sent` is in the chain
/// exactly once (and nothing else is).
pub fn check_chain(chain: &[Block], sent: &[Envelope], spec: &OsnSpec) {
    use std::collections::HashMap;
    let mut prev = Bytes::new();
    for (n, block) in chain.iter().enumerate() {
        let header = block.header.as_ref().unwrap();
        assert_eq!(header.number, n as u64);
        assert_eq!(header.previous_hash, prev, "block {n} links to block {}", n.saturating_sub(1));
        assert_eq!(
            header.data_hash.to_vec(),
            osn::core::block::data_hash(&block.data.as_ref().unwrap().data),
            "data hash of block {n}"
        );
        prev = osn::core::block::header_hash(header).into();
        if n > 0 {
            let data = &block.data.as_ref().unwrap().data;
            assert!(!data.is_empty(), "block {n} is empty");
            assert!(data.len() <= spec.max_message_count as usize, "block {n} has {} messages", data.len());
            if data.len() > 1 {
                let bytes: usize = data
                    .iter()
                    .map(|d| {
                        let e = Envelope::decode(d.clone()).unwrap();
                        e.payload.len() + e.signature.len()
                    })
                    .sum();
                assert!(bytes <= spec.preferred_max_bytes as usize, "block {n} holds {bytes} bytes");
            }
        }
    }
    let mut counts: HashMap<Bytes, usize> = HashMap::new();
    for block in &chain[1..] {
        for d in &block.data.as_ref().unwrap().data {
            *counts.entry(d.clone()).or_default() += 1;
        }
    }
    for e in sent {
        let key = Bytes::from(e.encode_to_vec());
        assert_eq!(counts.get(&key).copied().unwrap_or(0), 1, "an acknowledged envelope appears once");
    }
    assert_eq!(counts.values().sum::<usize>(), sent.len(), "nothing but the sent envelopes is ordered");
}

/// The chains are identical in everything but the signatures, and verify.
pub fn assert_identical(chains: &[Vec<Block>]) {
    let reference: Vec<_> = chains[0].iter().map(consensus_view).collect();
    for (i, chain) in chains.iter().enumerate().skip(1) {
        let view: Vec<_> = chain.iter().map(consensus_view).collect();
        assert_eq!(view.len(), reference.len(), "OSN {i} height");
        for (n, (a, b)) in reference.iter().zip(&view).enumerate() {
            assert_eq!(a, b, "block {n} differs between OSN 0 and OSN {i}");
        }
    }
    let orderer = osn::identity::load_org_msp(&crypto().orderer_org.join("msp")).unwrap();
    let orgs = vec![osn::core::msp::Organization::from_pem(
        &orderer.msp_id,
        &orderer.root_certs_pem,
        &orderer.intermediate_certs_pem,
    )
    .unwrap()];
    for (i, chain) in chains.iter().enumerate() {
        let mut verifier = osn::core::verify_chain::ChainVerifier::new(orgs.clone());
        for block in chain {
            verifier.check(block).unwrap_or_else(|bad| panic!("OSN {i}: {bad}"));
        }
    }
}

/// Broadcasts through a channel actor directly (in-process tests), waiting out a channel that
/// says it is not ready (starting or restarting); panics on any other failure.
pub async fn broadcast_via_actor(ch: &osn::actors::ChannelHandle, env: &Envelope) {
    use osn::actors::{BroadcastBatch, BroadcastError};
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let msg = BroadcastBatch {
            slot: osn::actors::MailboxSlot::new(&ch.status),
            envelopes: vec![env.encode_to_vec().into()],
            config_seq: 0,
            deadline: std::time::Instant::now() + Duration::from_secs(5),
        };
        let outcome = match ch.addr.send(msg).await.map(|mut answers| answers.pop()) {
            Ok(Some(Ok(enqueued))) => enqueued.acknowledged().await.map(|_| ()),
            Ok(Some(Err(e))) => Err(e),
            Ok(None) => panic!("no answer from {}", ch.name),
            Err(e) => panic!("mailbox of {}: {e}", ch.name),
        };
        match outcome {
            Ok(()) => return,
            Err(BroadcastError::NotReady { .. }) => {
                assert!(Instant::now() < deadline, "channel {} never became ready", ch.name);
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("broadcast failed: {e}"),
        }
    }
}

/// Every block of an in-process channel's ledger.
pub fn ledger_chain(ch: &osn::actors::ChannelHandle) -> Vec<Block> {
    (0..ch.ledger.height()).map(|n| ch.ledger.block(n).unwrap().unwrap()).collect()
}

/// A websocket client speaking raw bytes over TCP, to send what well-behaved clients cannot.
pub mod raw_ws {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A server frame: opcode and payload.
    #[derive(Debug)]
    pub struct Frame {
        pub opcode: u8,
        pub payload: Vec<u8>,
    }

    /// Opens `path` on `base` (http://host:port) with a websocket handshake.
    pub async fn connect(base: &str, path: &str) -> TcpStream {
        connect_with_buffer(base, path, None).await
    }

    /// [`connect`] with the socket's receive buffer set to `recv_buffer` bytes (a small one makes
    /// a client that does not read push back on the server quickly).
    pub async fn connect_with_buffer(base: &str, path: &str, recv_buffer: Option<u32>) -> TcpStream {
        let addr = base.trim_start_matches("http://");
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let mut tcp = socket.connect(addr.parse().expect("host:port")).await.expect("tcp connect");
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).await.expect("handshake answer");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "handshake refused: {head}");
        tcp
    }

    /// A masked client frame (FIN set) with `opcode` and `payload`.
    pub fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        let mask = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    /// Reads server frames as they come and hands each to `each` until it returns true.
    pub async fn read_frames(tcp: &mut TcpStream, timeout: Duration, mut each: impl FnMut(Frame) -> bool) {
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 256 * 1024];
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Every complete frame in the buffer.
            loop {
                if buf.len() < 2 {
                    break;
                }
                let (mut len, mut at) = ((buf[1] & 0x7f) as usize, 2);
                if len == 126 {
                    if buf.len() < 4 {
                        break;
                    }
                    len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
                    at = 4;
                } else if len == 127 {
                    if buf.len() < 10 {
                        break;
                    }
                    len = u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize;
                    at = 10;
                }
                if buf.len() < at + len {
                    break;
                }
                let frame = Frame { opcode: buf[0] & 0x0f, payload: buf[at..at + len].to_vec() };
                buf.drain(..at + len);
                if each(frame) {
                    return;
                }
            }
            let n =
                tokio::time::timeout_at(deadline, tcp.read(&mut chunk)).await.expect("frames in time").expect("read");
            assert!(n > 0, "the server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Every frame the server sends until it closes the connection (or 10 s pass).
    pub async fn frames_until_closed(tcp: &mut TcpStream) -> Vec<Frame> {
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw)).await;
        let mut frames = Vec::new();
        let mut at = 0;
        while at + 2 <= raw.len() {
            let opcode = raw[at] & 0x0f;
            let mut len = (raw[at + 1] & 0x7f) as usize;
            at += 2;
            if len == 126 {
                len = u16::from_be_bytes([raw[at], raw[at + 1]]) as usize;
                at += 2;
            } else if len == 127 {
                len = u64::from_be_bytes(raw[at..at + 8].try_into().unwrap()) as usize;
                at += 8;
            }
            frames.push(Frame { opcode, payload: raw[at..(at + len).min(raw.len())].to_vec() });
            at += len;
        }
        frames
    }
}

/// POSTs a signed config transaction (protobuf in, JSON out): the HTTP code and the JSON answer.
pub async fn post_config_tx(url: String, envelope: &Envelope) -> (u16, serde_json::Value) {
    let mut resp = client()
        .post(url)
        .insert_header(("Content-Type", "application/x-protobuf"))
        .insert_header(("Accept", "application/json"))
        .send_body(envelope.encode_to_vec())
        .await
        .expect("config request");
    let body = resp.json().limit(16 << 20).await.unwrap_or_default();
    (resp.status().as_u16(), body)
}

/// Creates a channel through `osn`'s system channel, signed by `signer`.
pub async fn create_channel(
    osn: &Osn,
    create: &osn::cli::channel::ChannelCreate,
    signer: &SigningIdentity,
) -> (u16, serde_json::Value) {
    let envelope = osn::identity::envelope::config_update(signer, &create.update(signer), &[]);
    post_config_tx(format!("{}/v1/channels", osn.url), &envelope).await
}

/// Updates a channel's configuration through `osn`, signed by `signer` and approved by `approvers`.
pub async fn update_config(
    osn: &Osn,
    update: &osn::proto::osn::ConfigUpdate,
    signer: &SigningIdentity,
    approvers: &[&SigningIdentity],
) -> (u16, serde_json::Value) {
    let url = format!("{}/v1/channels/{}/config", osn.url, update.channel_id);
    post_config_tx(url, &osn::identity::envelope::config_update(signer, update, approvers)).await
}

/// Waits until `channel` is READY on `osn`.
pub async fn wait_ready(osn: &Osn, channel: &str) {
    let url = format!("{}/v1/channels/{channel}", osn.url);
    wait_for(&format!("{channel} ready on {}", osn.url), Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            let mut resp = client().get(url).send().await.ok()?;
            let info: serde_json::Value = resp.json().await.ok()?;
            (info["status"] == "READY").then_some(())
        }
    })
    .await
}

/// Waits (60 s at most each) until every OSN holds `count` transactions on `channel`; their chains.
pub async fn chains_holding(osns: &[Osn], channel: &str, count: usize) -> Vec<Vec<Block>> {
    let mut out = Vec::new();
    for osn in osns {
        let what = format!("{count} transactions on {}", osn.url);
        let chain = wait_for(&what, Duration::from_secs(60), || async move {
            let chain = osn.chain_of(channel).await;
            let txs: usize = chain.iter().skip(1).map(|b| b.data.as_ref().unwrap().data.len()).sum();
            (txs >= count).then_some(chain)
        })
        .await;
        out.push(chain);
    }
    out
}
