//! An `osn start` process: its settings ([`OsnSpec`], [`TestPki`] for HTTPS) and the process
//! itself ([`Osn`]), started, killed, restarted, crashed at a fault point, read.

use super::*;

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
    /// Serve gRPC over TLS with these files (`[grpc.tls]`; mutual TLS if the PKI requires client
    /// certificates).
    pub grpc_tls: Option<TestPki>,
    /// The OSN's signing identity: orderer `osn{n}` of the test crypto.
    pub osn_identity: usize,
    /// The member organisations `channel` is created with (default: Org1MSP).
    pub members: Vec<&'static str>,
    /// Whether the harness creates `channel` through the system channel when the OSN starts
    /// (else it is the system channel, or a channel the test creates).
    pub create: bool,
    /// The system channel's channel limit (ChannelRestrictions.max_count; 0: none).
    pub max_channels: u64,
    /// More keys of the `[kafka]` table.
    pub kafka_extra: String,
    /// `[operations] address`: empty (the default) serves the operations routes on the API's
    /// listener.
    pub operations_address: String,
    /// Environment variables of the process besides `OSN_LOG` (`OSN_LOG_FORMAT`, for example).
    pub env: Vec<(&'static str, String)>,
    /// `[ledger] path`: by default `ledger` in the process's data directory.
    pub ledger: Option<PathBuf>,
    /// Boot from this genesis block instead of [`OsnSpec::genesis`]'s, signing as this local MSP
    /// directory with this MSP ID (a network made by Fabric's tools).
    pub fabric: Option<FabricNode>,
}

/// An OSN of a network made by Fabric's own tools: its configtxgen genesis block, and this
/// OSN's identity as cryptogen wrote it.
#[derive(Clone)]
pub struct FabricNode {
    pub genesis: PathBuf,
    pub msp_dir: PathBuf,
    pub msp_id: String,
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
            grpc_tls: None,
            osn_identity: 0,
            members: vec!["Org1MSP"],
            create: true,
            max_channels: 0,
            kafka_extra: String::new(),
            operations_address: String::new(),
            env: Vec::new(),
            ledger: None,
            fabric: None,
        }
    }

    /// OSNs whose channels the test creates: `channel` is the system channel, whose readiness
    /// the harness waits for.
    pub fn system_only(broker: &Broker) -> Self {
        OsnSpec { create: false, ..OsnSpec::new(SYSTEM_CHANNEL, broker) }
    }

    /// The network's genesis block: the test crypto's orderer organisation and consortium
    /// (Org1MSP, Org2MSP), with this spec's brokers, batch settings and channel limit. The same
    /// bytes for every OSN of a test (fixed time and nonce).
    pub fn genesis(&self) -> Block {
        genesis_block(
            &self.brokers,
            osn::proto::BatchSize {
                max_message_count: self.max_message_count,
                absolute_max_bytes: self.absolute_max_bytes,
                preferred_max_bytes: self.preferred_max_bytes,
            },
            self.batch_timeout,
            self.max_channels,
        )
    }

    fn toml(&self, ledger: &Path, genesis: &Path) -> String {
        let tls = self.http_tls.as_ref().map_or(String::new(), |pki| {
            let client_ca =
                if pki.require_client_certs { format!("client-ca-file = {:?}\n", pki.ca_file) } else { String::new() };
            format!("[http.tls]\ncert-file = {:?}\nkey-file = {:?}\n{client_ca}", pki.cert_file, pki.key_file)
        });
        let grpc_tls = self.grpc_tls.as_ref().map_or(String::new(), |pki| {
            let client_ca =
                if pki.require_client_certs { format!("client-ca-file = {:?}\n", pki.ca_file) } else { String::new() };
            format!("[grpc.tls]\ncert-file = {:?}\nkey-file = {:?}\n{client_ca}", pki.cert_file, pki.key_file)
        });
        format!(
            r#"[http]
address = "127.0.0.1:0"
workers = 2
[grpc]
address = "127.0.0.1:0"
workers = 2
[kafka]
brokers = "{brokers}"
replication-factor = 1
connect-timeout = "5s"
fetch-wait = "{fetch_wait}ms"
{kafka_extra}
[ledger]
path = "{ledger}"
[identity]
dir = "{identity}"
{msp_id}
[system]
genesis-file = "{genesis}"
[operations]
address = "{operations}"
"#,
            identity =
                self.fabric.as_ref().map_or(crypto().osn_identity(self.osn_identity), |f| f.msp_dir.clone()).display(),
            msp_id = self.fabric.as_ref().map_or(String::new(), |f| format!("msp-id = \"{}\"", f.msp_id)),
            genesis = genesis.display(),
            kafka_extra = self.kafka_extra,
            fetch_wait = osn::kafka::embedded::FETCH_WAIT.as_millis(),
            operations = self.operations_address,
            brokers = self.brokers,
            ledger = ledger.display(),
        ) + &tls
            + &grpc_tls
    }
}

/// The listeners an `osn start` process prints.
#[derive(Debug, Clone, Copy)]
enum Listener {
    Operations,
    Grpc,
    Api,
}

/// An `osn start` process. Killed when dropped; its data directory lives as long as it.
pub struct Osn {
    pub spec: OsnSpec,
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub url: String,
    /// Where the operations routes are served: `url`, or the listener of `[operations] address`.
    pub operations_url: String,
    /// Where gRPC (`orderer.AtomicBroadcast`) listens: `127.0.0.1:PORT`.
    pub grpc_addr: String,
}

impl Osn {
    pub async fn start(spec: OsnSpec) -> Osn {
        Self::start_with(spec, true).await
    }

    /// Starts an OSN and returns as soon as it listens, ready or not.
    pub async fn start_listening(spec: OsnSpec) -> Osn {
        Self::start_with(spec, false).await
    }

    async fn start_with(spec: OsnSpec, ready: bool) -> Osn {
        let dir = tempfile::tempdir().unwrap();
        let ledger = spec.ledger.clone().unwrap_or_else(|| dir.path().join("ledger"));
        let genesis = dir.path().join("genesis.block");
        match &spec.fabric {
            Some(f) => std::fs::copy(&f.genesis, &genesis).map(drop).unwrap(),
            None => std::fs::write(&genesis, spec.genesis().encode_to_vec()).unwrap(),
        }
        std::fs::write(dir.path().join("osn.toml"), spec.toml(&ledger, &genesis)).unwrap();
        let mut osn =
            Osn { spec, dir, child: None, url: String::new(), operations_url: String::new(), grpc_addr: String::new() };
        osn.launch(ready).await;
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
    /// addresses as it prints them.
    fn spawn(&mut self, extra_env: &[(&str, String)]) -> mpsc::Receiver<(Listener, String)> {
        self.url.clear();
        self.operations_url.clear();
        self.grpc_addr.clear();
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
            // The operations listener's and gRPC's lines come first, when there are such.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let prefixes = [
                    ("osn operations listening on ", Listener::Operations),
                    ("osn gRPC listening on ", Listener::Grpc),
                    ("osn listening on ", Listener::Api),
                ];
                for (prefix, listener) in prefixes {
                    if let Some(addr) = line.strip_prefix(prefix) {
                        let _ = tx.send((listener, addr.to_owned()));
                    }
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
                if let Ok((listener, url)) = rx.try_recv() {
                    match listener {
                        Listener::Operations => {
                            self.operations_url = url;
                            continue;
                        }
                        Listener::Grpc => {
                            self.grpc_addr = url;
                            continue;
                        }
                        Listener::Api => {}
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
                if resp.status() == 404 && self.spec.create {
                    // The channel does not exist yet: once the system channel is ready, create it
                    // (another OSN of the test may be doing so too).
                    self.create_channel_once_ready().await;
                    continue;
                }
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

    /// Creates the spec's channel through this OSN, as an admin of its first member would, once
    /// the system channel is ready; a creation another OSN of the test made first is fine.
    async fn create_channel_once_ready(&self) {
        let system = format!("{}/v1/channels/{SYSTEM_CHANNEL}", self.url);
        let ready = match self.client().get(system).send().await {
            Ok(mut resp) => resp.json::<serde_json::Value>().await.is_ok_and(|i| i["status"] == "READY"),
            Err(_) => false,
        };
        if !ready {
            actix_rt::time::sleep(Duration::from_millis(20)).await;
            return;
        }
        let admin = crypto().admin_of(self.spec.members[0]);
        let create = osn::cli::channel::ChannelCreate {
            channel: self.spec.channel.clone(),
            organizations: self.spec.members.iter().map(|m| m.to_string()).collect(),
            consortium: CONSORTIUM.into(),
        };
        if let Err(e) = osn::cli::channel::create_channel(&self.endpoint(), admin, &[], &create).await {
            let text = format!("{e:#}");
            assert!(text.contains("already exists"), "creating {}: {text}\n{}", self.spec.channel, self.log_tail());
        }
    }

    /// This OSN's API and gRPC addresses, as the CLI takes them.
    pub fn endpoint(&self) -> osn::cli::client::Endpoint {
        let pki = self.spec.http_tls.as_ref();
        osn::cli::client::Endpoint {
            url: self.url.clone(),
            cacert: pki.map(|p| p.ca_file.clone()),
            client_cert: pki.filter(|p| p.require_client_certs).map(|p| p.client_cert_file.clone()),
            client_key: pki.filter(|p| p.require_client_certs).map(|p| p.client_key_file.clone()),
            grpc: self.grpc_addr.clone(),
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

    /// Starts the process again on an empty ledger: a node joining late (or one whose disk was
    /// replaced), which rebuilds every block from the partition.
    pub async fn rejoin_empty(&mut self) {
        self.kill();
        let ledger = self.spec.ledger.clone().unwrap_or_else(|| self.dir.path().join("ledger"));
        std::fs::remove_dir_all(&ledger).unwrap();
        self.launch(true).await;
    }

    /// SIGSTOP (true) or SIGCONT (false): the whole process frozen, as a VM paused or a long GC
    /// stop would freeze it, and resumed.
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill").args([signal, &self.pid().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill {signal}");
    }

    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits (at most `bound`) for the process to exit; its status.
    pub async fn wait_exit(&mut self, bound: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        wait_for("the OSN to exit", bound, || {
            let status = child.try_wait().ok().flatten();
            async move { status }
        })
        .await
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

    /// Block `n` of `channel`, read as Org1's client (the system channel, which only the orderer
    /// organisation reads, as an orderer).
    pub async fn block_of(&self, channel: &str, n: u64) -> Block {
        let reader = if channel == SYSTEM_CHANNEL { &crypto().orderer_admin } else { &crypto().client };
        let mut resp = self
            .client()
            .get(format!("{}/v1/channels/{channel}/blocks/{n}", self.url))
            .insert_header(("Accept", "application/x-protobuf"))
            .insert_header(("Authorization", read_authorization(reader, channel)))
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
