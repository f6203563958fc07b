//! `osn load`: a load test of a running OSN (or of an `osn dev` it starts, with `--embedded`).
//! Envelopes are signed before the clock starts. Deliver subscriptions opened before the first
//! broadcast see every envelope arrive in a block, so the figures are what users care about:
//! accepted and **ordered** transactions per second, the latency of the broadcast answer and of
//! broadcast → delivered in a block (p50/p90/p99/p99.9), refusals by status, whether every
//! subscriber received every block, the server's resident memory, and the channels'
//! `osn_channel_*` metrics before and after.
//!
//! One channel or many (`--channel` repeated, or `--create-channels N`): envelope `i` goes to
//! channel `i mod N`. Single and batch requests are interleaved across the channels; in websocket
//! mode each channel gets its share of the `--concurrency` streams.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use prost::Message as _;
use serde::Serialize;

use super::broadcast::Mode;
use super::channel::{create_channel, ChannelCreate};
use super::client::{
    deliver_over_websocket, refused_with, seek_request, status_name, transaction, unreachable, Endpoint, IdentityArgs,
};
use crate::core::config::envelope_parts;
use crate::core::seek::{newest, specified};
use crate::identity::SigningIdentity;
use crate::proto::{BroadcastResponse, DeliverResponse, SeekInfo};

#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    /// Start `osn dev` (embedded broker) on a free loopback port, load it, and stop it.
    #[arg(long)]
    pub embedded: bool,
    /// With --embedded: the dev channel's MaxMessageCount (`osn dev --max-message-count`), also
    /// the default of channels created with --create-channels; a batch that fills in a few
    /// milliseconds at the load's rate keeps the latency down.
    #[arg(long, requires = "embedded")]
    pub embedded_max_message_count: Option<u32>,
    /// With --embedded: one more argument for `osn dev` (repeat for more), e.g.
    /// `--embedded-arg=--fetch-wait-max=2ms`.
    #[arg(long, requires = "embedded", allow_hyphen_values = true, value_name = "ARG")]
    pub embedded_arg: Vec<String>,
    /// With --embedded: BENCHMARKS ONLY, the OSN does not verify broadcast signatures (`osn dev
    /// --skip-signature-verification`), to measure it without its crypto.
    #[arg(long, requires = "embedded")]
    pub no_verify: bool,
    /// Channel to load; repeat for several (envelope i goes to the (i mod N)th).
    #[arg(long = "channel", default_value = "devchannel")]
    pub channels: Vec<String>,
    /// Create this many new channels (`load-XXXXXX-NNN`, signed by --admin) and load them instead
    /// of --channel.
    #[arg(long, value_name = "N")]
    pub create_channels: Option<usize>,
    /// Identity that creates the channels of --create-channels. Default: the admin identity
    /// `osn dev` creates.
    #[arg(long, value_name = "DIR")]
    pub admin: Option<PathBuf>,
    /// Deliver websocket subscriptions per channel, opened before the load; each must receive
    /// every block (the first one also measures the delivered latency).
    #[arg(long, default_value_t = 1)]
    pub subscribers: usize,
    /// Envelopes to send (over all channels).
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Send at this rate (envelopes per second, over all channels) instead of as fast as the OSN
    /// answers: each request goes at its scheduled time, and latencies count from that time, so
    /// a slow answer is not hidden by the requests it delayed. `--concurrency` must allow the
    /// rate; a rate above what the OSN sustains is an open-loop overload.
    #[arg(long)]
    pub rate: Option<f64>,
    /// With --rate: send for this long (the count is rate × duration).
    #[arg(long, requires = "rate", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Approximate size of each envelope in bytes.
    #[arg(long, default_value_t = 2048)]
    pub size: usize,
    /// How envelopes travel: single (one per request), batch (--batch-size per request), ws
    /// (websocket streams, one answer per envelope) or grpc (Fabric's Broadcast RPC at --grpc,
    /// streams as ws).
    #[arg(long, value_enum, default_value_t = Mode::Batch)]
    pub mode: Mode,
    /// Envelopes per request in batch mode.
    #[arg(long, default_value_t = 200)]
    pub batch_size: usize,
    /// Requests in flight at once (single and batch), or broadcast streams (ws, grpc).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// How long to wait, after the last broadcast, for every accepted envelope to be delivered.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML report (no script, no network): the figures, the
    /// throughput over time and the latency distributions as plots.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Also measure the broker alone in the same run: produce and consume as many records of the
    /// same size straight to a new topic with the same client library, and give the OSN's
    /// ordered throughput as a ratio of it. With --rate: at the same rate, in the same groups
    /// (--batch-size), and give the broker's own latencies (produce → acknowledged, produce →
    /// consumed) beside the OSN's.
    #[arg(long, value_enum)]
    pub baseline: Option<Baseline>,
    /// With --baseline: the baseline consumer's fetch wait; set it as the OSN's
    /// `kafka.fetch-wait` (`osn dev --fetch-wait-max`), since a broker that holds an empty fetch
    /// for the whole wait (the embedded one, tansu) adds up to that much, and with a bounded
    /// backlog also bounds the throughput.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20ms")]
    pub baseline_fetch_wait: Duration,
    /// The Kafka bootstrap servers for --baseline (with --embedded: the embedded broker's).
    #[arg(long)]
    pub brokers: Option<String>,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// Produce (acks=all, idempotent, as the OSN) and consume the same records with librdkafka.
    Kafka,
}

mod html;
mod pace;
mod report;
mod senders;
mod server;

use report::print_summary;
pub use report::{BrokerLatency, ChannelFigures, Percentiles, Plots, Rss, Subscribers, Summary, Threads};
use senders::{broadcast_grpc, broadcast_http, broadcast_ws};
use server::{channel_metrics, progress_bar, sample_rss, scrape, CPU, RSS, THREADS};

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let mut dev = None;
    let mut brokers = args.brokers.clone();
    let endpoint = if args.embedded {
        let mut dev_args = args.embedded_arg.clone();
        if let Some(n) = args.embedded_max_message_count {
            dev_args.push(format!("--max-message-count={n}"));
        }
        if args.no_verify {
            dev_args.push("--skip-signature-verification".into());
        }
        let (child, url, grpc, embedded) = start_dev(&dev_args).await?;
        dev = Some(child);
        brokers = brokers.or(Some(embedded));
        if let Some(b) = &brokers {
            crate::kafka::rely_on_auto_creation(b);
        }
        Endpoint { url, cacert: None, client_cert: None, client_key: None, grpc }
    } else {
        args.endpoint.clone()
    };
    let mut result = load(&args, &endpoint).await;
    if let (Ok(summary), Some(Baseline::Kafka)) = (result.as_mut(), args.baseline) {
        let brokers = brokers.context("--baseline kafka needs --brokers (or --embedded)")?;
        let envelope_len = transaction(&args.identity.load()?, &args.channels[0], args.size).encoded_len();
        let baseline = match args.rate {
            Some(rate) => kafka_latency_baseline(&brokers, &args, rate, summary.count, envelope_len)
                .await
                .map(|latency| summary.baseline_kafka_latency_ms = Some(latency)),
            None => kafka_baseline(&brokers, summary.count, envelope_len, args.baseline_fetch_wait).await.map(|tps| {
                summary.baseline_kafka_tps = Some(tps);
                summary.baseline_ratio = Some(summary.ordered_tps / tps);
            }),
        };
        if let Err(e) = baseline {
            result = Err(e.context("the Kafka baseline failed"));
        }
    }
    if let Some(mut child) = dev {
        // SIGINT: `osn dev` shuts down cleanly and deletes its temporary ledger.
        let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let _ = child.wait();
    }
    let summary = result?;
    if let Some(path) = &args.report {
        std::fs::write(path, html::report(&summary, &std::env::args().collect::<Vec<_>>()))
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(())
}

/// Produces `count` records of `size` bytes to a new topic and consumes them, with the OSN's
/// producer and consumer settings and `fetch_wait`; records/second from the first send to the
/// last record read. The producer stays at most about 2 MB ahead of the consumer (the embedded
/// broker keeps about 5 MB per partition, as `osn dev`'s channel bound).
async fn kafka_baseline(brokers: &str, count: usize, size: usize, fetch_wait: Duration) -> anyhow::Result<f64> {
    let (cfg, topic, producer) = baseline_topic(brokers, fetch_wait).await?;
    let consumed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let reader = {
        let (cfg, topic, consumed) = (cfg.clone(), topic.clone(), consumed.clone());
        actix_rt::spawn(async move {
            let mut stream = Box::pin(crate::kafka::consume_from(&cfg, &topic, 1)?);
            while let Some(record) = stream.next().await {
                record?;
                if consumed.fetch_add(1, Ordering::Relaxed) + 1 == count {
                    return Ok::<_, anyhow::Error>(started.elapsed());
                }
            }
            anyhow::bail!("the consumer stream ended")
        })
    };
    let value = vec![0x5a; size];
    let window = (2 * 1024 * 1024 / size.max(1)).max(16);
    let sends = futures_util::stream::iter(0..count).map(|i| {
        let (producer, topic, value, consumed) = (producer.clone(), topic.clone(), &value, consumed.clone());
        async move {
            while i > consumed.load(Ordering::Relaxed) + window {
                actix_rt::time::sleep(Duration::from_micros(200)).await;
            }
            crate::kafka::produce(&producer, &topic, value).await
        }
    });
    let elapsed = baseline_done(sends.buffer_unordered(window.min(1024)).collect().await, reader).await?;
    Ok(count as f64 / elapsed.as_secs_f64().max(1e-9))
}

/// A new topic for a Kafka baseline on `brokers`, the OSN's producer settings, and the consumer
/// settings with `fetch_wait`; the topic is there once its warm-up record (offset 0) is
/// acknowledged.
async fn baseline_topic(
    brokers: &str,
    fetch_wait: Duration,
) -> anyhow::Result<(crate::config::KafkaConfig, String, crate::kafka::Producer)> {
    let cfg = crate::config::KafkaConfig {
        brokers: brokers.to_owned(),
        replication_factor: 1,
        fetch_wait,
        ..Default::default()
    };
    let topic = format!("osn-load-baseline-{}", crate::core::block::hex(&rand::random::<[u8; 6]>()));
    crate::kafka::ensure_topic(&cfg, &topic, None).await?;
    let producer = crate::kafka::producer(&cfg)?;
    crate::kafka::produce(&producer, &topic, b"warm-up").await?;
    Ok((cfg, topic, producer))
}

/// The first production error of a baseline, else what its consumer task gave once it read every
/// record (within 300 s).
async fn baseline_done<T>(
    produced: Vec<Result<i64, rdkafka::error::KafkaError>>,
    reader: actix_rt::task::JoinHandle<anyhow::Result<T>>,
) -> anyhow::Result<T> {
    if let Some(Err(e)) = produced.into_iter().find(Result::is_err) {
        anyhow::bail!("producing: {e}");
    }
    tokio::time::timeout(Duration::from_secs(300), reader)
        .await
        .context("the consumer did not read every record within 300 s")?
        .context("the consumer task failed")?
}

/// The broker alone at the load's rate: `count` records of `size` bytes produced to a new topic
/// in groups of `--batch-size` in batch mode (else one by one), each group when due (as the
/// load's requests), and consumed with the OSN's client settings and `--baseline-fetch-wait`.
/// Each record carries when it was due; its latencies count from then, as the load's do.
async fn kafka_latency_baseline(
    brokers: &str,
    args: &LoadArgs,
    rate: f64,
    count: usize,
    size: usize,
) -> anyhow::Result<report::BrokerLatency> {
    let (cfg, topic, producer) = baseline_topic(brokers, args.baseline_fetch_wait).await?;
    let mut stream = Box::pin(crate::kafka::consume_from(&cfg, &topic, 1)?);
    let t0 = Instant::now();
    let reader = actix_rt::spawn(async move {
        let mut consumed = Histogram::<u64>::new(3).expect("valid histogram");
        for _ in 0..count {
            let Some(record) = stream.next().await else { anyhow::bail!("the consumer stream ended") };
            let now = t0.elapsed().as_nanos() as u64;
            let record = record?;
            let due = record.value.get(..8).map_or(0, |b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
            let _ = consumed.record((now.saturating_sub(due) / 1000).max(1));
        }
        Ok::<_, anyhow::Error>(consumed)
    });
    let per_group = if args.mode == Mode::Batch { args.batch_size.max(1) } else { 1 };
    let groups = count.div_ceil(per_group);
    let started = t0 + Duration::from_millis(50);
    let pacer = pace::Pacer::start(groups, move |g| due(rate, started, g * per_group)).context("starting the pacer")?;
    let acked = Mutex::new(Histogram::<u64>::new(3).expect("valid histogram"));
    let sends = futures_util::stream::iter(0..groups).map(|g| {
        let (producer, topic, pacer, acked) = (&producer, &topic, &pacer, &acked);
        async move {
            pacer.turn(g).await;
            let at = due(rate, started, g * per_group) - t0;
            let mut value = vec![0x5a; size.max(8)];
            value[..8].copy_from_slice(&(at.as_nanos() as u64).to_be_bytes());
            let n = per_group.min(count - g * per_group);
            let results =
                futures_util::future::join_all((0..n).map(|_| crate::kafka::produce(producer, topic, &value))).await;
            let took = (t0.elapsed().saturating_sub(at).as_micros() as u64).max(1);
            for _ in 0..n {
                let _ = lock(acked).record(took);
            }
            results.into_iter().find(Result::is_err).unwrap_or(Ok(0))
        }
    });
    let consumed = baseline_done(sends.buffer_unordered(args.concurrency.max(1)).collect().await, reader).await?;
    let ack = Percentiles::of(&lock(&acked));
    Ok(report::BrokerLatency { ack, consumed: Percentiles::of(&consumed) })
}

/// Starts `osn dev` on free loopback ports; its process, URL, gRPC address and embedded broker
/// once it listens.
async fn start_dev(dev_args: &[String]) -> anyhow::Result<(std::process::Child, String, String, String)> {
    use std::io::BufRead as _;
    let exe = std::env::current_exe().context("cannot find the osn executable")?;
    let mut command = std::process::Command::new(exe);
    command.args(["dev", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"]).args(dev_args);
    // Its log, kept to explain a failed start.
    let mut log = tempfile::tempfile().context("cannot create a temporary file")?;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(log.try_clone()?)
        .spawn()
        .context("cannot start osn dev")?;
    let stdout = child.stdout.take().context("no stdout of osn dev")?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut brokers = String::new();
        let mut grpc = String::new();
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("osn gRPC listening on ") {
                grpc = addr.to_owned();
            }
            // The banner: "  Kafka    HOST:PORT: an EMBEDDED IN-MEMORY broker ...".
            if let Some(rest) = line.trim_start().strip_prefix("Kafka") {
                if let Some((servers, _)) = rest.trim_start().split_once(": an EMBEDDED") {
                    brokers = servers.to_owned();
                }
            }
            if let Some(url) = line.strip_prefix("osn listening on ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send((url.to_owned(), grpc.clone(), brokers.clone()));
                }
            }
        }
    });
    match tokio::time::timeout(Duration::from_secs(60), rx).await {
        Ok(Ok((url, grpc, brokers))) => Ok((child, url, grpc, brokers)),
        Ok(Err(_)) | Err(_) => {
            use std::io::{Read as _, Seek as _};
            let _ = child.kill();
            let _ = child.wait();
            let mut text = String::new();
            let _ = log.rewind().and_then(|()| log.read_to_string(&mut text));
            let tail: Vec<&str> = text.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
            anyhow::bail!("osn dev did not start (within 60 s); its last words:\n{}", tail.join("\n"))
        }
    }
}

/// Creates `n` channels through the OSN's API, a few at a time; their names.
async fn create_channels(endpoint: &Endpoint, admin: &SigningIdentity, n: usize) -> anyhow::Result<Vec<String>> {
    let run = crate::core::block::hex(&rand::random::<[u8; 3]>());
    let names: Vec<String> = (0..n).map(|i| format!("load-{run}-{i:03}")).collect();
    let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(names.iter())
        .map(|name| async move {
            let create = ChannelCreate { channel: name.clone(), ..Default::default() };
            // A busy system channel answers 503 (retry later); a retry of a creation that went
            // through after all is answered 409 (it exists).
            let mut pause = Duration::from_millis(100);
            let mut retried = false;
            loop {
                match create_channel(endpoint, admin, &[], &create).await {
                    Ok(_) => return Ok(()),
                    Err(e) if retried && refused_with(&e) == Some(409) => return Ok(()),
                    Err(e) if refused_with(&e) == Some(503) && pause <= Duration::from_secs(3) => {
                        tokio::time::sleep(pause).await;
                        pause *= 2;
                        retried = true;
                    }
                    Err(e) => return Err(e).with_context(|| format!("cannot create channel {name}")),
                }
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<()>>()?;
    Ok(names)
}

/// The transaction ID of a marshaled envelope.
fn tx_id(envelope: &[u8]) -> Option<String> {
    envelope_parts(envelope).ok().map(|(header, _)| header.tx_id)
}

/// What the load shares with its subscriptions, broadcasters and progress bar.
struct Shared {
    t0: Instant,
    channels: usize,
    /// Transaction ID → envelope number.
    index: HashMap<String, usize>,
    /// When each envelope was sent (ns since `t0`, plus one; 0 = not yet).
    sent: Vec<AtomicU64>,
    answered: AtomicUsize,
    accepted: AtomicUsize,
    ordered: AtomicUsize,
    /// With `--rate`: how late each request (or stream message) left after it was due, in µs.
    lag: Mutex<Histogram<u64>>,
}

/// What one deliver subscription saw of its channel's blocks.
#[derive(Default)]
struct Stream {
    first: Option<u64>,
    last: u64,
    /// A block number that did not follow the one before.
    gap: bool,
    failed: Option<String>,
}

/// What a channel's first subscription saw of the load's envelopes.
struct Tracked {
    ordered: usize,
    /// When its last envelope was delivered, since `t0`.
    last: Duration,
    /// The blocks holding the load's envelopes.
    first_block: Option<u64>,
    last_block: u64,
    /// Broadcast → delivered, in microseconds.
    latency: Histogram<u64>,
    /// The load's envelopes delivered per [`report::TICK`] since `t0`.
    delivered_per_tick: Vec<u64>,
}

impl Tracked {
    fn new() -> Self {
        Tracked {
            ordered: 0,
            last: Duration::ZERO,
            first_block: None,
            last_block: 0,
            latency: Histogram::new(3).expect("valid histogram"),
            delivered_per_tick: Vec::new(),
        }
    }
}

/// One subscription: its stream state, its task, and (for a channel's first) the tracking.
struct Subscription {
    channel: usize,
    stream: Arc<Mutex<Stream>>,
    tracked: Option<Arc<Mutex<Tracked>>>,
    task: actix_rt::task::JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens a deliver subscription of channel `c` from its newest block; `ready` fires with its
/// first block.
fn subscribe(
    endpoint: &Endpoint,
    name: &str,
    c: usize,
    request: Bytes,
    shared: Arc<Shared>,
    track: bool,
    ready: tokio::sync::oneshot::Sender<()>,
) -> Subscription {
    let stream = Arc::new(Mutex::new(Stream::default()));
    let tracked = track.then(|| Arc::new(Mutex::new(Tracked::new())));
    let (endpoint, name) = (endpoint.clone(), name.to_owned());
    let (state, tracking) = (stream.clone(), tracked.clone());
    let task = actix_rt::spawn(async move {
        let mut ready = Some(ready);
        // Envelope i of this channel is its (i / channels)th.
        let mut seen = vec![false; shared.sent.len() / shared.channels + 1];
        let result = deliver_over_websocket(&endpoint, &name, request, |raw| {
            if let Some(tx) = ready.take() {
                let _ = tx.send(());
            }
            let now = shared.t0.elapsed();
            let resp = DeliverResponse::decode(raw).context("a deliver answer does not decode")?;
            let block = match resp.r#type {
                Some(crate::proto::orderer::deliver_response::Type::Block(block)) => block,
                Some(crate::proto::orderer::deliver_response::Type::Status(status)) => {
                    anyhow::bail!("the deliver stream ended: {} {}", status_name(status), resp.info)
                }
                None => return Ok(None),
            };
            let number = block.header.as_ref().map_or(0, |h| h.number);
            {
                let mut s = lock(&state);
                if s.first.is_some() && number != s.last + 1 {
                    s.gap = true;
                }
                s.first.get_or_insert(number);
                s.last = number;
            }
            let Some(tracked) = &tracking else { return Ok(None) };
            let mut t = lock(tracked);
            for data in block.data.map(|d| d.data).unwrap_or_default() {
                let Some(i) = tx_id(&data).and_then(|id| shared.index.get(&id).copied()) else { continue };
                if i % shared.channels != c || std::mem::replace(&mut seen[i / shared.channels], true) {
                    continue;
                }
                t.ordered += 1;
                t.last = now;
                Plots::count(&mut t.delivered_per_tick, now);
                t.first_block.get_or_insert(number);
                t.last_block = number;
                shared.ordered.fetch_add(1, Ordering::Relaxed);
                let at = shared.sent[i].load(Ordering::Relaxed);
                if at > 0 {
                    let us = (now.as_nanos() as u64).saturating_sub(at - 1) / 1000;
                    let _ = t.latency.record(us.max(1));
                }
            }
            Ok(None::<()>)
        })
        .await;
        if let Err(e) = result {
            lock(&state).failed = Some(format!("{e:#}"));
        }
    });
    Subscription { channel: c, stream, tracked, task }
}

/// Every envelope's outcome: its number, its status (None: no answer) and how long it took.
type Outcome = (usize, Option<i32>, Duration);

async fn load(args: &LoadArgs, endpoint: &Endpoint) -> anyhow::Result<Summary> {
    let count = match (args.rate, args.duration) {
        (Some(rate), Some(d)) => (rate * d.as_secs_f64()).ceil() as usize,
        _ => args.count,
    };
    anyhow::ensure!(
        count > 0
            && args.concurrency > 0
            && args.batch_size > 0
            && args.subscribers > 0
            && args.create_channels != Some(0)
            && args.rate.is_none_or(|r| r > 0.0),
        "count, rate, concurrency, batch size, subscribers and channels must be positive"
    );
    let signer = args.identity.load()?;
    let threads_before = scrape(endpoint).await.and_then(|m| m.get(THREADS).copied());
    let mut created_in = None;
    let channels = match args.create_channels {
        Some(n) => {
            let admin = match &args.admin {
                Some(dir) => SigningIdentity::load(dir),
                None => SigningIdentity::load(&crate::identity::dev::dev_admin_identity(
                    &crate::identity::dev::default_dev_root(),
                )),
            }
            .context("cannot load the identity that creates channels (--admin)")?;
            let creating = Instant::now();
            let names = create_channels(endpoint, &admin, n).await?;
            created_in = Some(creating.elapsed().as_secs_f64());
            names
        }
        None => args.channels.clone(),
    };
    let args = &LoadArgs { count, channels, ..args.clone() };
    let n = args.channels.len();
    // Signed before the clock starts.
    let envelopes: Vec<Bytes> = (0..count)
        .map(|i| Bytes::from(transaction(&signer, &args.channels[i % n], args.size).encode_to_vec()))
        .collect();
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        channels: n,
        index: envelopes.iter().enumerate().filter_map(|(i, e)| Some((tx_id(e)?, i))).collect(),
        sent: (0..count).map(|_| AtomicU64::new(0)).collect(),
        answered: AtomicUsize::new(0),
        accepted: AtomicUsize::new(0),
        ordered: AtomicUsize::new(0),
        lag: Mutex::new(Histogram::new(3).expect("valid histogram")),
    });
    let before = scrape(endpoint).await.unwrap_or_default();

    // The subscriptions, from the newest block on, before the first broadcast: open once they
    // answer with the newest block.
    let seek = SeekInfo { start: Some(newest()), stop: Some(specified(u64::MAX)), behavior: 0, error_response: 0 };
    let mut subscriptions = Vec::new();
    let mut readiness = Vec::new();
    for (c, name) in args.channels.iter().enumerate() {
        let request = Bytes::from(seek_request(&signer, name, &seek).encode_to_vec());
        for s in 0..args.subscribers {
            let (tx, rx) = tokio::sync::oneshot::channel();
            subscriptions.push(subscribe(endpoint, name, c, request.clone(), shared.clone(), s == 0, tx));
            readiness.push(rx);
        }
    }
    let opened = tokio::time::timeout(Duration::from_secs(60), futures_util::future::join_all(readiness))
        .await
        .map_or(0, |all| all.iter().filter(|r| r.is_ok()).count());

    let stop = Arc::new(AtomicBool::new(false));
    let rss = Arc::new(AtomicU64::new(0));
    let sampler = actix_rt::spawn(sample_rss(endpoint.clone(), rss.clone(), stop.clone()));
    let bar =
        std::io::stderr().is_terminal().then(|| actix_rt::spawn(progress_bar(shared.clone(), count, stop.clone())));

    let started = Instant::now();
    let outcomes = match args.mode {
        Mode::Ws => broadcast_ws(args, endpoint, &envelopes, &shared, started).await?,
        Mode::Grpc => broadcast_grpc(args, endpoint, &envelopes, &shared, started).await?,
        Mode::Single | Mode::Batch => broadcast_http(args, endpoint, &envelopes, &shared, started).await?,
    };
    let sending = started.elapsed();
    let mut accepted = vec![0usize; n];
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    let mut ack = Histogram::<u64>::new(3).expect("valid histogram");
    let mut plots = Plots::default();
    for (i, status, took) in outcomes {
        match status {
            Some(s) if s == crate::proto::Status::Success as i32 => {
                accepted[i % n] += 1;
                let _ = ack.record((took.as_micros() as u64).max(1));
                let sent = Duration::from_nanos(shared.sent[i].load(Ordering::Relaxed).saturating_sub(1));
                Plots::count(&mut plots.accepted, sent + took);
            }
            Some(s) => *refused.entry(status_name(s).to_owned()).or_default() += 1,
            None => *refused.entry("UNREACHABLE".into()).or_default() += 1,
        }
    }

    // Wait until every accepted envelope is delivered and every subscription has the blocks that
    // hold them (or the timeout, or every subscription failed).
    let deadline = Instant::now() + args.timeout;
    let mut trackers: Vec<Option<Arc<Mutex<Tracked>>>> = vec![None; n];
    for sub in &subscriptions {
        if let Some(t) = &sub.tracked {
            trackers[sub.channel] = Some(t.clone());
        }
    }
    loop {
        // (ordered, last block) per channel, then every subscription against its channel's.
        let progress: Vec<(usize, u64)> = trackers
            .iter()
            .map(|t| {
                t.as_ref().map_or((usize::MAX, 0), |t| {
                    let t = lock(t);
                    (t.ordered, t.last_block)
                })
            })
            .collect();
        let done = subscriptions.iter().all(|sub| {
            let (ordered, last_block) = progress[sub.channel];
            ordered >= accepted[sub.channel] && (ordered == 0 || lock(&sub.stream).last >= last_block)
        });
        let failed = subscriptions.iter().all(|s| s.task.is_finished());
        if done || failed || Instant::now() >= deadline {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(bar) = bar {
        let _ = bar.await;
    }
    let _ = sampler.await;

    let mut figures: Vec<ChannelFigures> = args
        .channels
        .iter()
        .zip(&accepted)
        .map(|(name, &accepted)| ChannelFigures { name: name.clone(), accepted, ordered: 0, blocks: 0 })
        .collect();
    let mut delivered = Histogram::<u64>::new(3).expect("valid histogram");
    let mut last = Duration::ZERO;
    let mut subscribers = Subscribers { per_channel: args.subscribers, opened, ..Default::default() };
    let mut ranges = vec![None; n];
    for (c, tracked) in trackers.iter().enumerate() {
        let Some(tracked) = tracked else { continue };
        let t = lock(tracked);
        figures[c].ordered = t.ordered;
        figures[c].blocks = t.first_block.map_or(0, |first| t.last_block - first + 1);
        ranges[c] = t.first_block.map(|first| (first, t.last_block));
        last = last.max(t.last);
        delivered.add(&t.latency).expect("same histogram bounds");
        for (tick, &n) in t.delivered_per_tick.iter().enumerate() {
            if plots.ordered.len() <= tick {
                plots.ordered.resize(tick + 1, 0);
            }
            plots.ordered[tick] += n;
        }
    }
    for sub in &subscriptions {
        sub.task.abort();
        let s = lock(&sub.stream);
        if let Some(why) = &s.failed {
            *subscribers.failures.entry(why.clone()).or_default() += 1;
        }
        let complete = match (ranges[sub.channel], s.first) {
            (Some((first, last)), Some(from)) => !s.gap && from < first && s.last >= last,
            _ => false,
        };
        subscribers.received_every_block += usize::from(complete);
    }
    let after = scrape(endpoint).await.unwrap_or_default();
    let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
    let server_rss_mib = after.get(RSS).map(|&end| Rss {
        before: mib(before.get(RSS).copied().unwrap_or(0.0)),
        max: mib((rss.load(Ordering::Relaxed) as f64).max(end)),
        after: mib(end),
    });
    let server_threads = threads_before
        .zip(after.get(THREADS).copied())
        .map(|(before, after)| Threads { before: before as u64, after: after as u64 });
    let secs = |d: Duration| d.as_secs_f64().max(1e-9);
    let ordered = figures.iter().map(|f| f.ordered).sum::<usize>();
    // The OSN's CPU time from just before the subscriptions to after the last delivery, per
    // ordered transaction (everything it did for them: checks, relaying, cutting, writing, deliver).
    let per_tx = |key: &str| {
        let (b, a) = (before.get(key)?, after.get(key)?);
        (ordered > 0).then(|| (a - b) / ordered as f64 * 1e6)
    };
    let server_cpu_us_per_tx = per_tx(CPU);
    let by_part: BTreeMap<String, f64> = crate::metrics::CPU_PARTS
        .iter()
        .filter_map(|part| Some((part.to_string(), per_tx(&format!("osn_process_cpu_seconds{{part=\"{part}\"}}"))?)))
        .collect();
    let osn_cpu_us_per_tx = server_cpu_us_per_tx.filter(|_| !by_part.is_empty()).map(|total| {
        total - by_part.get("verify").copied().unwrap_or(0.0) - by_part.get("embedded_broker").copied().unwrap_or(0.0)
    });
    plots.ack = Plots::curve(&ack);
    plots.delivered = Plots::curve(&delivered);
    let accepted = accepted.iter().sum::<usize>();
    Ok(Summary {
        channel_metrics: channel_metrics(&before, &after, &args.channels),
        channels: figures,
        mode: format!("{:?}", args.mode).to_lowercase(),
        rate: args.rate,
        count,
        size: args.size,
        accepted,
        ordered,
        accepted_tps: accepted as f64 / secs(sending),
        ordered_tps: ordered as f64 / secs(last.saturating_sub(started - shared.t0)),
        ack_latency_ms: Percentiles::of(&ack),
        delivered_latency_ms: Percentiles::of(&delivered),
        send_lag_ms: args.rate.map(|_| Percentiles::of(&lock(&shared.lag))),
        refused,
        subscribers,
        server_rss_mib,
        server_threads,
        server_cpu_us_per_tx,
        server_cpu_us_per_tx_by_part: by_part,
        osn_cpu_us_per_tx,
        create_channels_secs: created_in,
        baseline_kafka_tps: None,
        baseline_ratio: None,
        baseline_kafka_latency_ms: None,
        plots,
    })
}

/// When envelope `i` is due at `rate` envelopes a second from `started`.
fn due(rate: f64, started: Instant, i: usize) -> Instant {
    started + Duration::from_secs_f64(i as f64 / rate)
}

/// With `--rate`: the pacer of `n` turns, turn `k` due with envelope `k * per_turn`.
fn pacer(args: &LoadArgs, started: Instant, n: usize, per_turn: usize) -> anyhow::Result<Option<pace::Pacer>> {
    let Some(rate) = args.rate else { return Ok(None) };
    let pacer = pace::Pacer::start(n, move |k| due(rate, started, k * per_turn)).context("starting the pacer")?;
    Ok(Some(pacer))
}

/// Records that envelopes `ids` leave now (or at their scheduled time); that time since `t0`.
fn mark_sent(shared: &Shared, ids: &[usize], due: Option<Instant>) -> Duration {
    let now = shared.t0.elapsed();
    let at = due.map_or(now, |due| due - shared.t0);
    if due.is_some() {
        let _ = lock(&shared.lag).record((now.saturating_sub(at).as_micros() as u64).max(1));
    }
    for &i in ids {
        shared.sent[i].store(at.as_nanos() as u64 + 1, Ordering::Relaxed);
    }
    at
}

fn count_answer(shared: &Shared, status: Option<i32>) {
    shared.answered.fetch_add(1, Ordering::Relaxed);
    if status == Some(crate::proto::Status::Success as i32) {
        shared.accepted.fetch_add(1, Ordering::Relaxed);
    }
}
