//! One running OSN: the ledger store, the shared Kafka producer, the channel actors and the HTTP
//! servers (the API's, and the operations routes' own when `[operations] address` is set), and
//! the one shutdown path (stop accepting, stop the channels, flush the producer, close the
//! ledger), bounded in time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::kafka::Producer;
use actix_web::dev::ServerHandle;
use anyhow::Context as _;
use rdkafka::producer::Producer as _;

use crate::actors::{Channels, Phase, SystemSpec};
use crate::config::Config;
use crate::core::channelconfig::Bundle;
use crate::http::{self, AppState};
use crate::identity::SigningIdentity;
use crate::kafka;
use crate::ledger::rocks::RocksStore;
use crate::proto::Block;
use crate::service::Service;
use crate::verify::Verifier;

/// The system channel's genesis block (`[system] genesis-file`): its channel ID and its
/// configuration, read and checked as Fabric's orderer reads its bootstrap block. It must be a
/// Kafka system channel's (a Consortiums group: channels are created through it).
pub fn read_genesis(path: &std::path::Path) -> anyhow::Result<(Block, Bundle)> {
    use prost::Message as _;
    let raw = std::fs::read(path).with_context(|| format!("cannot read the genesis block {}", path.display()))?;
    let block = Block::decode(raw.as_slice()).map_err(|e| anyhow::anyhow!("{} is not a block: {e}", path.display()))?;
    let number = block.header.as_ref().map(|h| h.number).unwrap_or_default();
    anyhow::ensure!(number == 0, "{} is block {number}, not a genesis block", path.display());
    let data = block
        .data
        .as_ref()
        .and_then(|d| d.data.first())
        .ok_or_else(|| anyhow::anyhow!("{}: the block holds no envelope", path.display()))?;
    let (header, envelope) = crate::core::config::config_envelope(data).map_err(|e| {
        anyhow::anyhow!("{}: not a genesis block (its envelope is not a CONFIG one: {e})", path.display())
    })?;
    let config = envelope.config.unwrap_or_default();
    let bundle = Bundle::new(&header.channel_id, config)
        .map_err(|e| anyhow::anyhow!("{}: channel '{}': {e}", path.display(), header.channel_id))?;
    let system = bundle.config.channel_group.as_ref().is_some_and(|g| g.groups.iter().any(|e| e.key == "Consortiums"));
    anyhow::ensure!(
        system,
        "{}: channel '{}' has no Consortiums group: it is an application channel's block, not an ordering system channel's (make one with configtxgen -outputBlock and a profile with Consortiums)",
        path.display(),
        header.channel_id
    );
    Ok((block, bundle))
}

/// This OSN's identity must be one whose block signatures verify: it must satisfy the system
/// channel's `/Channel/Orderer/BlockValidation` policy, and be valid now.
fn check_own_identity(signer: &SigningIdentity, bundle: &Bundle) -> Result<(), String> {
    use crate::core::msp::Identity;
    let identity = Identity::deserialize(&signer.serialized())?;
    let now = crate::verify::unix_now();
    if !identity.cert.valid_at(now) {
        return Err(format!("its certificate ({}) is not valid now", identity.cert.subject));
    }
    let policies = bundle.validator.policies();
    let path = "/Channel/Orderer/BlockValidation";
    if !policies.evaluate(path, &[(identity.clone(), signer.serialized())]) {
        return Err(format!(
            "{} ({} of '{}') does not satisfy the system channel's {path} policy ({}): peers would refuse the blocks it signs. Use an orderer identity of an orderer organisation of the genesis block ({})",
            identity.cert.subject,
            identity.role().as_str(),
            identity.msp_id,
            policies.describe(path),
            orderer_orgs(bundle).join(", ")
        ));
    }
    Ok(())
}

/// The MSP IDs of a configuration's orderer organisations.
fn orderer_orgs(bundle: &Bundle) -> Vec<String> {
    let policies = bundle.validator.policies();
    let mut ids: Vec<String> = bundle
        .config
        .channel_group
        .iter()
        .flat_map(|g| g.groups.iter().filter(|e| e.key == "Orderer"))
        .filter_map(|e| e.value.as_ref())
        .flat_map(|o| o.groups.iter().map(|org| org.key.clone()))
        .collect();
    ids.retain(|name| !name.is_empty());
    if ids.is_empty() {
        ids = policies.msps.keys().cloned().collect();
    }
    ids
}

/// A running actix-web server: how to stop it, and the task to await once stopped.
struct RunningServer {
    handle: ServerHandle,
    task: actix_rt::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    fn spawn(server: actix_web::dev::Server) -> Self {
        RunningServer { handle: server.handle(), task: actix_rt::spawn(server) }
    }

    /// Stops accepting; in-flight requests finish (up to the server's shutdown timeout).
    async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

/// How long a shutdown may take, from the signal to the process's end: the API's in-flight
/// requests (5 s), the channels (5 s) and the producer's flush (5 s), and a margin.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(20);

pub struct Node {
    http_addr: SocketAddr,
    scheme: &'static str,
    server: RunningServer,
    /// The operations routes' own listener, when `[operations] address` is set.
    operations: Option<(SocketAddr, RunningServer)>,
    channels: Arc<Channels>,
    producer: Producer,
    /// The gRPC listener (`orderer.AtomicBroadcast`), when `grpc.address` is set.
    grpc: Option<crate::grpc::GrpcServer>,
}

impl Node {
    /// Opens the ledger, starts every channel and binds the API. Must run inside an actix System.
    pub async fn start(config: &Config) -> anyhow::Result<Node> {
        config.validate().map_err(anyhow::Error::msg)?;
        // Certificate problems are reported before anything else starts.
        let tls = config.http.tls.as_ref().map(http::tls::server_config).transpose()?;
        std::fs::create_dir_all(&config.ledger.path)
            .with_context(|| format!("cannot create the ledger directory {}", config.ledger.path.display()))?;
        let genesis_file = config.system.genesis_file.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "[system] genesis-file is required: the system channel's genesis block, made by configtxgen -outputBlock (or try one with `osn dev --genesis FILE`)"
            )
        })?;
        let (genesis, bundle) = read_genesis(genesis_file)?;
        let dir = config.identity.dir.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "identity.dir is required: this OSN signs every block it writes. Give it an orderer's local MSP directory (cryptogen's ordererOrganizations/<domain>/orderers/<name>/msp, with identity.msp-id), or make one with `osn identity ca --msp-id OrdererMSP --dir orderer-org` and `osn identity issue --org orderer-org --name osn1 --role orderer` (or OSN_IDENTITY_DIR)"
            )
        })?;
        let signer = SigningIdentity::load_as(dir, config.identity.msp_id.as_deref())
            .with_context(|| format!("cannot load this OSN's identity (identity.dir) in {}", dir.display()))?;
        check_own_identity(&signer, &bundle).map_err(|e| anyhow::anyhow!("identity.dir {}: {e}", dir.display()))?;
        let signer = Arc::new(signer);
        let mut kafka_config = config.kafka.clone();
        let from_genesis = bundle.values.kafka_brokers.join(",");
        if kafka_config.brokers.is_empty() {
            anyhow::ensure!(
                !from_genesis.is_empty(),
                "the genesis block names no Kafka brokers, and [kafka] brokers is not set"
            );
            kafka_config.brokers = from_genesis;
        } else if kafka_config.brokers != from_genesis {
            tracing::info!(brokers = %kafka_config.brokers, genesis = %from_genesis, "[kafka] brokers overrides the genesis block's KafkaBrokers");
        }
        let store = RocksStore::open(&config.ledger.path, config.ledger.sync_writes)?;
        let producer = kafka::producer(&kafka_config).context("cannot create the Kafka producer")?;
        let time_window = config.identity.time_window.as_secs() as i64;
        let store: Arc<dyn crate::ledger::Store> = Arc::new(store);
        let system = SystemSpec { name: bundle.channel_id.clone(), genesis, config: config.system.clone() };
        let channels = Arc::new(Channels::start(
            system,
            time_window,
            &kafka_config,
            &producer,
            store,
            signer.clone(),
            config.ledger.check_on_start,
            config.actors.threads(),
        )?);
        let verifier = if config.identity.skip_signature_verification {
            Verifier::skipping_signatures(config.identity.verify_threads)
        } else {
            Verifier::new(config.identity.verify_threads)
        }
        .context("cannot start the verification pool")?;
        let kafka_settings = kafka::settings::KafkaSettings::new();
        kafka::settings::watch(kafka_settings.clone(), kafka_config.clone(), channels.clone());
        let kafka_health = Arc::new(http::health::KafkaHealth::new(kafka_config.clone()));
        let service = Service {
            channels: channels.clone(),
            verifier: Arc::new(verifier),
            signer: Some(signer),
            enqueue_timeout: config.http.enqueue_timeout,
            kafka_settings,
        };
        let grpc = if config.grpc.address.is_empty() {
            None
        } else {
            let grpc = crate::grpc::GrpcServer::start(service.clone(), &config.grpc)?;
            tracing::info!(address = %grpc.addr(), tls = config.grpc.tls.is_some(), "gRPC listening (orderer.AtomicBroadcast)");
            Some(grpc)
        };
        let grpc_health = grpc.as_ref().map(crate::grpc::GrpcServer::health);
        let state = AppState { service, http: config.http.clone(), kafka_health, grpc_health };
        let ops_address = &config.operations.address;
        let operations = if ops_address.is_empty() {
            None
        } else {
            let (server, addr) = http::serve_operations(state.clone(), ops_address)
                .with_context(|| format!("cannot listen on {ops_address} (operations.address)"))?;
            tracing::info!(url = %format!("http://{addr}"), "operations routes listening");
            Some((addr, RunningServer::spawn(server)))
        };
        let (server, http_addr) =
            http::serve(state, &config.http.address, config.http.workers, tls, operations.is_none())
                .with_context(|| format!("cannot listen on {}", config.http.address))?;
        let server = RunningServer::spawn(server);
        let scheme = if config.http.tls.is_some() { "https" } else { "http" };
        tracing::info!(url = %format!("{scheme}://{http_addr}"), channels = channels.list().len(), "OSN started");
        Ok(Node { http_addr, scheme, server, operations, channels, producer, grpc })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where gRPC (`orderer.AtomicBroadcast`) listens, if it does.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.as_ref().map(crate::grpc::GrpcServer::addr)
    }

    /// The API's base URL: `https://` when `[http.tls]` is configured.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.http_addr)
    }

    /// The operations routes' base URL when they have their own listener (`[operations]
    /// address`); else they are served at [`Node::url`].
    pub fn operations_url(&self) -> Option<String> {
        self.operations.as_ref().map(|(addr, _)| format!("http://{addr}"))
    }

    /// Waits until every channel consumes its partition (answers broadcasts), or says which
    /// channels are not ready, and why, after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let waiting: Vec<String> = self
                .channels
                .iter()
                .filter_map(|c| {
                    let (phase, reason) = c.status.phase();
                    (phase != Phase::Ready).then(|| format!("{}: {reason}", c.name))
                })
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                anyhow::bail!("channels not ready after {timeout:?}: {}", waiting.join("; "));
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs until SIGINT or SIGTERM, then shuts down.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
        self.shutdown().await;
        Ok(())
    }

    /// Stops accepting requests on the API and the operations listener (in-flight ones finish, up
    /// to 5 s), stops the channel actors and their consumers (up to 5 s), flushes the producer
    /// (up to 5 s), and closes the ledger. The process ends within [`SHUTDOWN_BOUND`] of the call
    /// even if something hangs (it then exits with status 1, saying so).
    pub async fn shutdown(self) {
        // Whatever a library does (a librdkafka call that never returns keeps a blocking thread,
        // which the runtime would wait for at exit), the process ends within this bound.
        std::thread::Builder::new()
            .name("osn-shutdown".into())
            .spawn(|| {
                std::thread::sleep(SHUTDOWN_BOUND);
                tracing::error!(bound = ?SHUTDOWN_BOUND, "shutdown did not finish in time (a client library call does not return); exiting now");
                std::process::exit(1);
            })
            .ok();
        tracing::info!("shutting down: stopping the API");
        let grpc = self.grpc.map(|grpc| actix_rt::task::spawn_blocking(move || grpc.stop()));
        match self.operations {
            Some((_, operations)) => {
                futures_util::join!(self.server.stop(), operations.stop());
            }
            None => self.server.stop().await,
        }
        if let Some(grpc) = grpc {
            let _ = grpc.await;
        }
        tracing::info!("stopping channel actors and their consumers");
        let channels = self.channels.clone();
        let stopped = actix_rt::task::spawn_blocking(move || channels.stop_and_join());
        if tokio::time::timeout(Duration::from_secs(5), stopped).await.is_err() {
            tracing::warn!("channel actors did not stop within 5 s");
        }
        let producer = self.producer.clone();
        let flushed = actix_rt::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
        match flushed {
            Ok(Ok(())) => tracing::info!("producer flushed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "producer not fully flushed"),
            Err(e) => tracing::warn!(error = %e, "producer flush task failed"),
        }
        drop(self.channels);
        tracing::info!("OSN stopped");
    }
}
