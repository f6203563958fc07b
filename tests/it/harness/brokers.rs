//! The brokers: librdkafka's mock cluster in this process, and tansu as a process of its own.

use super::*;

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
