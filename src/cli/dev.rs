//! `osn dev`: one command, nothing else installed. An embedded in-memory Kafka-protocol broker
//! (librdkafka's mock cluster), a ledger in a fresh temporary directory (or `--data-dir`), Fabric's
//! gRPC service on 127.0.0.1:7050 and the HTTP API on 127.0.0.1:7060. It writes the genesis block
//! configtxgen would for a Kafka network of an orderer organisation and one client organisation
//! (NodeOUs on, in consortium SampleConsortium), boots from it, and creates one channel through
//! it; or, with `--genesis`, boots from a given configtxgen block (its brokers replaced by the
//! embedded one), to try a network's own configuration.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use super::channel::{ensure_channel, ChannelCreate};
use super::client::Endpoint;
use crate::config::{Config, GrpcConfig, HttpConfig, IdentityConfig, KafkaConfig, LedgerConfig, SystemConfig};
use crate::core::genesis::{genesis_block, system_config, Consortium, Organization, SystemProfile};
use crate::identity::dev::{default_dev_root, dev_crypto, DevCrypto, DEV_CLIENT_MSP, DEV_ORDERER_MSP};
use crate::identity::fabric_msp::verifying_config;
use crate::identity::layout::MSP_DIR;
use crate::identity::SigningIdentity;
use crate::kafka::embedded::EmbeddedKafka;
use crate::ledger::{rocks::RocksStore, Store};
use crate::node::Node;

/// Backlog bound for dev mode, well inside the mock broker's 5 MB per partition.
pub const DEV_MAX_LAG_BYTES: u64 = 2 * 1024 * 1024;
#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// Address of the HTTP API (and its websockets, `/docs`, the operations routes).
    #[arg(long, default_value = "127.0.0.1:7060")]
    pub http: String,
    /// Address of Fabric's gRPC service (`orderer.AtomicBroadcast`), on Fabric's orderer port by
    /// default so that Fabric's tools work with their defaults.
    #[arg(long, default_value = "127.0.0.1:7050")]
    pub grpc: String,
    /// Keep the ledger in this directory instead of a temporary one deleted at exit.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Name of the channel created at start (not with --genesis).
    #[arg(long, default_value = "devchannel")]
    pub channel: String,
    /// Batch timeout of the genesis block written (every channel's, as configtx.yaml's
    /// `Orderer.BatchTimeout`).
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub batch_timeout: Duration,
    /// MaxMessageCount of the genesis block written.
    #[arg(long, default_value_t = 500)]
    pub max_message_count: u32,
    /// Boot from this configtxgen genesis block (a Kafka system channel's) instead of writing
    /// one: its Kafka brokers are replaced by the embedded broker. Needs --identity.
    #[arg(long, value_name = "FILE", requires = "identity")]
    pub genesis: Option<PathBuf>,
    /// With --genesis: the OSN's signing identity, an orderer's Fabric local MSP directory of
    /// an orderer organisation of that block (cryptogen's `orderers/<name>/msp`).
    #[arg(long, value_name = "MSP_DIR", requires = "genesis")]
    pub identity: Option<PathBuf>,
    /// With --identity: its MSP ID, when the directory has no `mspid` file.
    #[arg(long, value_name = "ID", requires = "identity")]
    pub msp_id: Option<String>,
    /// Where the development organisations and identities are created on first start and
    /// reused afterwards (the CLI's default --identity is the client identity in there).
    #[arg(long, env = "OSN_DEV_CRYPTO")]
    pub crypto_dir: Option<PathBuf>,
    /// How long the channels' consumers let the broker hold a fetch that finds no new record
    /// (librdkafka's `fetch.wait.max.ms`). The embedded broker answers such a fetch only when
    /// this time is up, even if records arrive meanwhile (a real broker answers at once), so it
    /// bounds the extra latency of dev mode (`kafka::embedded::FETCH_WAIT`); idle channels poll the
    /// broker this often.
    #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
    pub fetch_wait_max: Duration,
    /// BENCHMARKS ONLY: accept broadcast envelopes without verifying their signatures (the
    /// creator's certificate, organisation, policy and timestamp are still checked), to measure
    /// the OSN without its crypto (`osn load --embedded --no-verify`). `osn start` has no such
    /// setting.
    #[arg(long)]
    pub skip_signature_verification: bool,
    /// One librdkafka property of the OSN's producer, over OSN's defaults (repeat for more), as
    /// `kafka.producer` sets it for `osn start`: to try a setting, e.g. `--kafka-producer
    /// linger.ms=0.5`.
    #[arg(long, value_name = "KEY=VALUE", value_parser = property)]
    pub kafka_producer: Vec<(String, String)>,
}

/// A `KEY=VALUE` librdkafka property.
fn property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}

/// The genesis block `osn dev` boots from: configtxgen's for a Kafka system channel `osn-system`
/// whose orderer organisation is the dev crypto's OrdererMSP and whose consortium
/// SampleConsortium has the client organisation DevOrgMSP, with this run's batch settings. Kept
/// in `dir` (genesis.block) and reused while the ledger there is.
fn dev_genesis(args: &DevArgs, crypto: &DevCrypto, brokers: &str, dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("genesis.block");
    if path.exists() {
        return Ok(path);
    }
    let msp = |org: &std::path::Path, id: &str| verifying_config(&org.join(MSP_DIR), id);
    let mut profile = SystemProfile::kafka(vec![brokers.to_owned()], vec![args.grpc.clone()]);
    profile.batch_size.max_message_count = args.max_message_count;
    profile.batch_timeout = format!("{}ms", args.batch_timeout.as_millis().max(1));
    profile.orderer_organizations =
        vec![Organization::orderer(DEV_ORDERER_MSP, msp(&crypto.orderer_org, DEV_ORDERER_MSP)?)];
    profile.consortiums = vec![Consortium {
        name: super::channel::DEFAULT_CONSORTIUM.into(),
        members: vec![Organization::application(DEV_CLIENT_MSP, msp(&crypto.client_org, DEV_CLIENT_MSP)?)],
    }];
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let mut nonce = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
    let block = genesis_block(DEV_SYSTEM_CHANNEL, &system_config(&profile), now as i64, nonce);
    std::fs::write(&path, prost::Message::encode_to_vec(&block))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The system channel of `osn dev`'s genesis block.
pub const DEV_SYSTEM_CHANNEL: &str = "osn-system";

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    crate::config::validate_channel_id(&args.channel).map_err(anyhow::Error::msg)?;
    let kafka = EmbeddedKafka::start(1).context("cannot start the embedded Kafka broker")?;
    crate::kafka::rely_on_auto_creation(&kafka.bootstrap_servers());

    let temp;
    let ledger_dir = match &args.data_dir {
        Some(dir) => {
            refuse_stale_ledger(dir)?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new().prefix("osn-dev-").tempdir()?;
            temp.path().to_owned()
        }
    };

    let crypto_root = args.crypto_dir.clone().unwrap_or_else(default_dev_root);
    let crypto = dev_crypto(&crypto_root)
        .with_context(|| format!("cannot create the development identities in {}", crypto_root.display()))?;
    let (genesis_file, identity_dir) = match &args.genesis {
        Some(file) => (file.clone(), args.identity.clone().unwrap_or_default()),
        None => {
            std::fs::create_dir_all(&ledger_dir)?;
            (dev_genesis(&args, &crypto, &kafka.bootstrap_servers(), &ledger_dir)?, crypto.orderer_identity.clone())
        }
    };
    let (_, bundle) = crate::node::read_genesis(&genesis_file)?;
    kafka.create_topic(&bundle.channel_id, 1)?;
    if args.genesis.is_none() {
        kafka.create_topic(&args.channel, 1)?;
    }

    let config = Config {
        http: HttpConfig {
            address: args.http.clone(),
            // The explorer link's reader: the dev client, in the dev network only (with a genesis
            // block of the user's, the page asks for an identity of theirs).
            dev_reader: if args.genesis.is_none() { Some(dev_reader(&crypto.client_identity)?) } else { None },
            ..Default::default()
        },
        grpc: GrpcConfig { address: args.grpc.clone(), ..Default::default() },
        // The operations routes on the API's listener.
        operations: Default::default(),
        identity: IdentityConfig {
            dir: Some(identity_dir.clone()),
            msp_id: args.msp_id.clone(),
            skip_signature_verification: args.skip_signature_verification,
            ..Default::default()
        },
        kafka: KafkaConfig {
            // The embedded broker, whatever the genesis block names.
            brokers: kafka.bootstrap_servers(),
            replication_factor: 1,
            fetch_wait: args.fetch_wait_max,
            producer: args.kafka_producer.iter().cloned().collect(),
            ..Default::default()
        },
        ledger: LedgerConfig { path: ledger_dir.clone(), ..Default::default() },
        system: SystemConfig {
            genesis_file: Some(genesis_file.clone()),
            // The in-memory broker keeps only about 5 MB per partition: records further behind
            // the consumer than that are dropped, and the channel would stop with them.
            max_lag_bytes: DEV_MAX_LAG_BYTES,
            ..Default::default()
        },
        actors: Default::default(),
    };
    let node = Node::start(&config).await?;
    node.wait_ready(Duration::from_secs(30)).await?;
    let url = node.url();
    let grpc = node.grpc_addr().map_or_else(|| "off".to_owned(), |a| a.to_string());
    if let Some(file) = &args.genesis {
        println!(
            "\nOSN dev mode is running from {file} (system channel '{system}', Kafka: the embedded broker {brokers}).\
             \n  gRPC     {grpc}\
             \n  API      {url}  (HTTP/JSON, protobuf, websockets; /docs)\
             \n  explorer {url}/explorer  (give it an identity of a reader to see blocks)\
             \n  ledger   {ledger}{temp_note}\
             \n  identity {identity}\
             \n\nCreate a channel as with Fabric's orderer, e.g. `peer channel create -o {grpc} -c mychannel -f mychannel.tx`.\
             \nStop with Ctrl-C.\n",
            file = file.display(),
            system = bundle.channel_id,
            brokers = kafka.bootstrap_servers(),
            ledger = ledger_dir.display(),
            temp_note = if args.data_dir.is_none() { " (temporary, deleted at exit)" } else { "" },
            identity = identity_dir.display(),
        );
        if let Some(addr) = node.grpc_addr() {
            println!("osn gRPC listening on {addr}");
        }
        println!("osn listening on {url}");
        node.run_until_signal().await?;
        drop(kafka);
        return Ok(());
    }
    // The dev channel, created as an operator would: a creation update approved by an admin of
    // DevOrgMSP (SampleConsortium's ChannelCreationPolicy), posted to this OSN's API.
    let endpoint = Endpoint { url: url.clone(), cacert: None, client_cert: None, client_key: None, grpc: grpc.clone() };
    let admin = SigningIdentity::load(&crypto.admin_identity).context("cannot load the development admin identity")?;
    let create = ChannelCreate { channel: args.channel.clone(), ..Default::default() };
    ensure_channel(&endpoint, &admin, &create)
        .await
        .with_context(|| format!("cannot create the dev channel '{}'", args.channel))?;
    node.wait_ready(Duration::from_secs(30)).await?;
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "osn".into());
    println!(
        "\nOSN dev mode is running.\n\
         \n  gRPC     {grpc}  (Fabric's orderer.AtomicBroadcast: peer, broadcast_msg, SDKs)\
         \n  API      {url}  (HTTP/JSON, protobuf, websockets; /docs)\
         \n  explorer {explorer}\
         \n           (open it to watch the channels and their blocks, reading as the dev client)\
         \n  channel  {ch} (batch timeout {bt}, at most {mc} envelopes per block)\
         \n  Kafka    {brokers}: an EMBEDDED IN-MEMORY broker (librdkafka's mock cluster). It keeps about\
         \n           5 MB per partition and everything vanishes when this process stops. Use `osn start`\
         \n           with a real Kafka cluster for anything that must last.\
         \n  ledger   {ledger}{temp_note}\
         \n  identity organisation {org} may write and read the channel; the CLI signs as its client\
         \n           {client} by default.\
         \n           Its admin creates channels: {admin}\
         \n           The orderer organisation's admin changes batch settings: {orderer_admin}\
         \n           Blocks are signed by {orderer}. All kept in {crypto} and reused.{skip_note}\
         \n  genesis  {genesis} (a Kafka system channel '{system}', as configtxgen writes one)\
         \n\nIn another shell, try:\
         \n  {exe} broadcast --url {url} --channel {ch} --count 1000 --size 1024\
         \n  {exe} deliver --url {url} --channel {ch} --start oldest --stop newest --format summary\
         \n  curl {url}/v1/channels/{ch}\
         \n\nStop with Ctrl-C.\n",
        ch = args.channel,
        explorer = explorer_link(&url, &config.http),
        bt = humantime::format_duration(args.batch_timeout),
        mc = args.max_message_count,
        brokers = kafka.bootstrap_servers(),
        ledger = ledger_dir.display(),
        temp_note = if args.data_dir.is_none() { " (temporary, deleted at exit)" } else { "" },
        org = DEV_CLIENT_MSP,
        client = crypto.client_identity.display(),
        admin = crypto.admin_identity.display(),
        orderer_admin = crypto.orderer_admin_identity.display(),
        orderer = crypto.orderer_identity.display(),
        crypto = crypto_root.display(),
        genesis = genesis_file.display(),
        system = DEV_SYSTEM_CHANNEL,
        skip_note = if args.skip_signature_verification {
            "\n  WARNING  broadcast signatures are NOT verified (--skip-signature-verification, for benchmarks)."
        } else {
            ""
        },
    );
    if let Some(addr) = node.grpc_addr() {
        println!("osn gRPC listening on {addr}");
    }
    println!("osn listening on {url}");
    node.run_until_signal().await?;
    drop(kafka);
    Ok(())
}

/// The dev client as the explorer's reader, with a fresh token.
fn dev_reader(identity: &std::path::Path) -> anyhow::Result<crate::config::DevReader> {
    use crate::identity::layout::{pick_file, read, read_msp_id, CERT_FILE, KEYSTORE_DIR, KEY_FILE, SIGNCERTS_DIR};
    let text = |path: PathBuf| -> anyhow::Result<String> {
        String::from_utf8(read(&path)?).with_context(|| format!("{}: not UTF-8", path.display()))
    };
    Ok(crate::config::DevReader {
        token: crate::http::explorer::new_token(),
        msp_id: read_msp_id(identity)?,
        cert_pem: text(pick_file(&identity.join(SIGNCERTS_DIR), CERT_FILE)?)?,
        key_pem: text(pick_file(&identity.join(KEYSTORE_DIR), KEY_FILE)?)?,
    })
}

/// The explorer's address, with the dev reader's token in its fragment (which browsers keep to
/// themselves: it reaches no server log).
pub fn explorer_link(url: &str, http: &HttpConfig) -> String {
    match &http.dev_reader {
        Some(reader) => format!("{url}/explorer#token={}", reader.token),
        None => format!("{url}/explorer"),
    }
}

/// A ledger written in an earlier dev run points at Kafka offsets of a broker that no longer
/// exists; resuming from it would stall on "offset out of range". Say so up front.
fn refuse_stale_ledger(dir: &std::path::Path) -> anyhow::Result<()> {
    if !dir.join("CURRENT").exists() {
        return Ok(());
    }
    let store = RocksStore::open(dir, true)?;
    for name in store.channels()? {
        if store.channel(&name)?.last()?.is_some_and(|(n, _)| n > 0) {
            anyhow::bail!(
                "{} holds blocks of channel '{name}' ordered by an earlier `osn dev` broker, whose in-memory records are gone; \
                 dev mode cannot resume it. Use a new --data-dir, or omit it for a temporary one.",
                dir.display()
            );
        }
    }
    Ok(())
}
