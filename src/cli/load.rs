//! `osn load`: a load test of a running OSN (or of an `osn dev` it starts, with `--embedded`).
//! Envelopes are signed before the clock starts. A Deliver subscription opened before the first
//! broadcast sees every envelope arrive in a block, so the figures are what users care about:
//! accepted and **ordered** transactions per second, the latency of the broadcast answer and of
//! broadcast → delivered in a block (p50/p90/p99/p99.9), and refusals by status; with the
//! channel's `osn_channel_*` metrics before and after.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use hdrhistogram::Histogram;
use prost::Message as _;
use serde::Serialize;

use super::broadcast::Mode;
use super::client::{
    deliver_over_websocket, seek_request, status_name, transaction, unreachable, Endpoint, IdentityArgs,
};
use crate::core::config::envelope_parts;
use crate::core::seek::{newest, specified};
use crate::proto::{BroadcastResponse, DeliverResponse, SeekInfo};

#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    /// Start `osn dev` (embedded broker) on a free loopback port, load it, and stop it.
    #[arg(long)]
    pub embedded: bool,
    /// With --embedded: the dev channel's MaxMessageCount (`osn dev --max-message-count`); a
    /// batch that fills in a few milliseconds at the load's rate keeps the latency down.
    #[arg(long, requires = "embedded")]
    pub embedded_max_message_count: Option<u32>,
    /// Channel to load.
    #[arg(long, default_value = "devchannel")]
    pub channel: String,
    /// Envelopes to send.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Send at this rate (envelopes per second) instead of as fast as the OSN answers: each
    /// request goes at its scheduled time, and latencies count from that time, so a slow answer
    /// is not hidden by the requests it delayed. `--concurrency` must allow the rate.
    #[arg(long)]
    pub rate: Option<f64>,
    /// With --rate: send for this long (the count is rate × duration).
    #[arg(long, requires = "rate", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Approximate size of each envelope in bytes.
    #[arg(long, default_value_t = 2048)]
    pub size: usize,
    /// How envelopes travel: single (one per request) or batch (--batch-size per request).
    #[arg(long, value_enum, default_value_t = Mode::Batch)]
    pub mode: Mode,
    /// Envelopes per request in batch mode.
    #[arg(long, default_value_t = 200)]
    pub batch_size: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// How long to wait, after the last broadcast, for every accepted envelope to be delivered.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also measure the broker alone in the same run: produce and consume as many records of the
    /// same size straight to a new topic with the same client library, and give the OSN's
    /// ordered throughput as a ratio of it.
    #[arg(long, value_enum)]
    pub baseline: Option<Baseline>,
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

/// Latency percentiles in milliseconds.
#[derive(Debug, Serialize, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// What the deliver subscription saw of the load's envelopes.
struct Delivered {
    ordered: usize,
    /// When the last one was delivered, since the clock started.
    last: Duration,
    /// Broadcast → delivered, in microseconds.
    latency: Histogram<u64>,
}

/// What `osn load` reports.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub channel: String,
    pub mode: String,
    pub count: usize,
    pub size: usize,
    pub accepted: usize,
    pub ordered: usize,
    /// The target rate, if one was set (envelopes per second).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Accepted envelopes per second, from the first broadcast to the last answer.
    pub accepted_tps: f64,
    /// Envelopes delivered in blocks per second, from the first broadcast to the last delivery.
    pub ordered_tps: f64,
    /// Broadcast sent → SUCCESS answer (Kafka acknowledged it).
    pub ack_latency_ms: Percentiles,
    /// Broadcast sent → delivered in a block.
    pub delivered_latency_ms: Percentiles,
    /// Refused envelopes by status (and transport failures as `UNREACHABLE`).
    pub refused: BTreeMap<String, usize>,
    /// The channel's `osn_channel_*` counters, after minus before.
    pub channel_metrics: BTreeMap<String, f64>,
    /// With `--baseline kafka`: records/second produced and consumed through the broker alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_kafka_tps: Option<f64>,
    /// `ordered_tps / baseline_kafka_tps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_ratio: Option<f64>,
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let mut dev = None;
    let mut brokers = args.brokers.clone();
    let endpoint = if args.embedded {
        let (child, url, embedded) = start_dev(args.embedded_max_message_count).await?;
        dev = Some(child);
        brokers = brokers.or(Some(embedded));
        if let Some(b) = &brokers {
            crate::kafka::rely_on_auto_creation(b);
        }
        Endpoint { url, cacert: None, client_cert: None, client_key: None }
    } else {
        args.endpoint.clone()
    };
    let mut result = load(&args, &endpoint).await;
    if let (Ok(summary), Some(Baseline::Kafka)) = (result.as_mut(), args.baseline) {
        let brokers = brokers.context("--baseline kafka needs --brokers (or --embedded)")?;
        let envelope_len = transaction(&args.identity.load()?, &args.channel, args.size).encoded_len();
        match kafka_baseline(&brokers, summary.count, envelope_len).await {
            Ok(tps) => {
                summary.baseline_kafka_tps = Some(tps);
                summary.baseline_ratio = Some(summary.ordered_tps / tps);
            }
            Err(e) => result = Err(e.context("the Kafka baseline failed")),
        }
    }
    if let Some(mut child) = dev {
        // SIGINT: `osn dev` shuts down cleanly and deletes its temporary ledger.
        let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let _ = child.wait();
    }
    let summary = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(())
}

/// Produces `count` records of `size` bytes to a new topic and consumes them, with the OSN's
/// producer and consumer settings; records/second from the first send to the last record read.
/// The producer stays at most about 2 MB ahead of the consumer (the embedded broker keeps about
/// 5 MB per partition, as `osn dev`'s channel bound).
async fn kafka_baseline(brokers: &str, count: usize, size: usize) -> anyhow::Result<f64> {
    use std::sync::atomic::AtomicUsize;
    let cfg = crate::config::KafkaConfig { brokers: brokers.to_owned(), replication_factor: 1, ..Default::default() };
    let topic = format!("osn-load-baseline-{}", crate::core::block::hex(&rand::random::<[u8; 6]>()));
    crate::kafka::ensure_topic(&cfg, &topic).await?;
    let producer = crate::kafka::producer(&cfg)?;
    // The topic is there once a record is acknowledged.
    crate::kafka::produce(&producer, &topic, b"warm-up").await?;
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
    let results: Vec<_> = sends.buffer_unordered(window.min(1024)).collect().await;
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        anyhow::bail!("producing: {e}");
    }
    let elapsed = tokio::time::timeout(Duration::from_secs(300), reader)
        .await
        .context("the consumer did not read every record within 300 s")?
        .context("the consumer task failed")??;
    Ok(count as f64 / elapsed.as_secs_f64().max(1e-9))
}

/// Starts `osn dev` on a free loopback port; its process, URL and embedded broker once it listens.
async fn start_dev(max_message_count: Option<u32>) -> anyhow::Result<(std::process::Child, String, String)> {
    use std::io::BufRead as _;
    let exe = std::env::current_exe().context("cannot find the osn executable")?;
    let mut command = std::process::Command::new(exe);
    command.args(["dev", "--http", "127.0.0.1:0"]);
    if let Some(n) = max_message_count {
        command.args(["--max-message-count", &n.to_string()]);
    }
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("cannot start osn dev")?;
    let stdout = child.stdout.take().context("no stdout of osn dev")?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut brokers = String::new();
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            // The banner: "  Kafka    HOST:PORT: an EMBEDDED IN-MEMORY broker ...".
            if let Some(rest) = line.trim_start().strip_prefix("Kafka") {
                if let Some((servers, _)) = rest.trim_start().split_once(": an EMBEDDED") {
                    brokers = servers.to_owned();
                }
            }
            if let Some(url) = line.strip_prefix("osn listening on ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send((url.to_owned(), brokers.clone()));
                }
            }
        }
    });
    match tokio::time::timeout(Duration::from_secs(60), rx).await {
        Ok(Ok((url, brokers))) => Ok((child, url, brokers)),
        _ => {
            let _ = child.kill();
            anyhow::bail!("osn dev did not start within 60 s")
        }
    }
}

/// The transaction ID of a marshaled envelope.
fn tx_id(envelope: &[u8]) -> Option<String> {
    envelope_parts(envelope).ok().map(|(header, _)| header.tx_id)
}

async fn load(args: &LoadArgs, endpoint: &Endpoint) -> anyhow::Result<Summary> {
    let count = match (args.rate, args.duration) {
        (Some(rate), Some(d)) => (rate * d.as_secs_f64()).ceil() as usize,
        _ => args.count,
    };
    anyhow::ensure!(
        count > 0 && args.concurrency > 0 && args.batch_size > 0 && args.rate.is_none_or(|r| r > 0.0),
        "count, rate, concurrency and batch size must be positive"
    );
    let args = &LoadArgs { count, ..args.clone() };
    let signer = args.identity.load()?;
    let channel = args.channel.clone();
    // Signed before the clock starts.
    let envelopes: Vec<Bytes> =
        (0..args.count).map(|_| Bytes::from(transaction(&signer, &channel, args.size).encode_to_vec())).collect();
    let index: Arc<HashMap<String, usize>> =
        Arc::new(envelopes.iter().enumerate().filter_map(|(i, e)| Some((tx_id(e)?, i))).collect());
    let before = scrape(endpoint, &channel).await.unwrap_or_default();

    // The subscription, from the newest block on, before the first broadcast.
    let t0 = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..args.count).map(|_| AtomicU64::new(0)).collect());
    let seek = SeekInfo { start: Some(newest()), stop: Some(specified(u64::MAX)), behavior: 0, error_response: 0 };
    let request = Bytes::from(seek_request(&signer, &channel, &seek).encode_to_vec());
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let progress = Arc::new(std::sync::Mutex::new(Delivered {
        ordered: 0,
        last: Duration::ZERO,
        latency: Histogram::<u64>::new(3).expect("valid histogram"),
    }));
    let deliveries = {
        let (endpoint, channel, index, sent, progress) =
            (endpoint.clone(), channel.clone(), index.clone(), sent.clone(), progress.clone());
        let count = args.count;
        actix_rt::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut seen = vec![false; count];
            deliver_over_websocket(&endpoint, &channel, request, |raw| {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
                let now = t0.elapsed();
                let resp = DeliverResponse::decode(raw).context("a deliver answer does not decode")?;
                let block = match resp.r#type {
                    Some(crate::proto::orderer::deliver_response::Type::Block(block)) => block,
                    Some(crate::proto::orderer::deliver_response::Type::Status(status)) => {
                        anyhow::bail!("the deliver stream ended: {} {}", status_name(status), resp.info)
                    }
                    None => return Ok(None),
                };
                let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
                for data in block.data.map(|d| d.data).unwrap_or_default() {
                    let Some(i) = tx_id(&data).and_then(|id| index.get(&id).copied()) else { continue };
                    if std::mem::replace(&mut seen[i], true) {
                        continue;
                    }
                    p.ordered += 1;
                    p.last = now;
                    let at = sent[i].load(Ordering::Relaxed);
                    if at > 0 {
                        let us = (now.as_nanos() as u64).saturating_sub(at - 1) / 1000;
                        let _ = p.latency.record(us.max(1));
                    }
                }
                Ok((p.ordered == count).then_some(()))
            })
            .await
        })
    };
    // The subscription answers with the newest block first: it is open.
    let _ = tokio::time::timeout(Duration::from_secs(30), ready_rx).await;

    let client = endpoint.client(Duration::from_secs(60))?;
    let base = endpoint.base();
    let started = Instant::now();
    let mut requests: Vec<Vec<usize>> = Vec::new();
    match args.mode {
        Mode::Single | Mode::Ws => requests.extend((0..args.count).map(|i| vec![i])),
        Mode::Batch => {
            requests.extend((0..args.count).collect::<Vec<_>>().chunks(args.batch_size).map(<[usize]>::to_vec))
        }
    }
    let per_request = requests.first().map_or(1, Vec::len) as f64;
    let answers: Vec<Answer> = futures_util::stream::iter(requests.into_iter().enumerate())
        .map(|(n, ids)| {
            let (client, base, channel, envelopes, sent) =
                (client.clone(), base.clone(), channel.clone(), &envelopes, sent.clone());
            let mode = args.mode;
            // At a target rate, request n is due n × (envelopes per request) / rate after the start.
            let due = args.rate.map(|rate| started + Duration::from_secs_f64(n as f64 * per_request / rate));
            async move {
                if let Some(due) = due {
                    tokio::time::sleep_until(due.into()).await;
                }
                let at = due.map_or_else(|| t0.elapsed(), |due| due - t0);
                for &i in &ids {
                    sent[i].store(at.as_nanos() as u64 + 1, Ordering::Relaxed);
                }
                let result = send(&client, &base, &channel, mode, &ids, envelopes).await;
                (ids, result, t0.elapsed() - at)
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let sending = started.elapsed();
    let mut accepted = 0usize;
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    let mut ack = Histogram::<u64>::new(3).expect("valid histogram");
    for (ids, result, took) in answers {
        match result {
            Ok(responses) => {
                for resp in responses {
                    if resp.status == crate::proto::Status::Success as i32 {
                        accepted += 1;
                        let _ = ack.record((took.as_micros() as u64).max(1));
                    } else {
                        *refused.entry(status_name(resp.status).to_owned()).or_default() += 1;
                    }
                }
            }
            Err(_) => *refused.entry("UNREACHABLE".into()).or_default() += ids.len(),
        }
    }

    // Wait until every accepted envelope is delivered (or the timeout, or the stream failed).
    let deadline = Instant::now() + args.timeout;
    loop {
        let ordered = progress.lock().unwrap_or_else(|e| e.into_inner()).ordered;
        if ordered >= accepted || deliveries.is_finished() || Instant::now() >= deadline {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    deliveries.abort();
    let Delivered { ordered, last, latency: delivered } = std::mem::replace(
        &mut *progress.lock().unwrap_or_else(|e| e.into_inner()),
        Delivered { ordered: 0, last: Duration::ZERO, latency: Histogram::new(3).expect("valid histogram") },
    );
    let after = scrape(endpoint, &channel).await.unwrap_or_default();
    let channel_metrics = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(k, _)| k.starts_with("osn_channel_") && !k.contains("_bucket{"))
        .collect();
    let secs = |d: Duration| d.as_secs_f64().max(1e-9);
    Ok(Summary {
        channel,
        mode: format!("{:?}", args.mode).to_lowercase(),
        rate: args.rate,
        count: args.count,
        size: args.size,
        accepted,
        ordered,
        accepted_tps: accepted as f64 / secs(sending),
        ordered_tps: ordered as f64 / secs(last.saturating_sub(started - t0)),
        ack_latency_ms: Percentiles::of(&ack),
        delivered_latency_ms: Percentiles::of(&delivered),
        refused,
        channel_metrics,
        baseline_kafka_tps: None,
        baseline_ratio: None,
    })
}

/// One request's envelopes, their answers (or why the request failed), and how long it took.
type Answer = (Vec<usize>, Result<Vec<BroadcastResponse>, String>, Duration);

/// Sends the envelopes `ids` in one request; their answers in order.
async fn send(
    client: &awc::Client,
    base: &str,
    channel: &str,
    mode: Mode,
    ids: &[usize],
    envelopes: &[Bytes],
) -> Result<Vec<BroadcastResponse>, String> {
    let (url, body) = match mode {
        Mode::Batch => {
            let mut body = bytes::BytesMut::new();
            for &i in ids {
                prost::encoding::encode_varint(envelopes[i].len() as u64, &mut body);
                body.extend_from_slice(&envelopes[i]);
            }
            (format!("{base}/v1/channels/{channel}/broadcast:batch"), body.freeze())
        }
        Mode::Single | Mode::Ws => (format!("{base}/v1/channels/{channel}/broadcast"), envelopes[ids[0]].clone()),
    };
    let mut resp = client
        .post(&url)
        .insert_header(("Content-Type", "application/x-protobuf"))
        .insert_header(("Accept", "application/x-protobuf"))
        .send_body(body)
        .await
        .map_err(|e| unreachable(&url, e).to_string())?;
    let body = resp.body().limit(64 << 20).await.map_err(|e| e.to_string())?;
    if mode == Mode::Batch && resp.status().is_success() {
        let mut buf = body;
        let mut out = Vec::new();
        while !buf.is_empty() {
            out.push(BroadcastResponse::decode_length_delimited(&mut buf).map_err(|e| e.to_string())?);
        }
        Ok(out)
    } else {
        let answer = BroadcastResponse::decode(body).map_err(|e| e.to_string())?;
        Ok(ids.iter().map(|_| answer.clone()).collect())
    }
}

/// The channel's samples of `/metrics` (name{labels} → value), when the OSN serves them there.
async fn scrape(endpoint: &Endpoint, channel: &str) -> Option<HashMap<String, f64>> {
    let client = endpoint.client(Duration::from_secs(10)).ok()?;
    let mut resp = client.get(format!("{}/metrics", endpoint.base())).send().await.ok()?;
    let text = String::from_utf8(resp.body().limit(64 << 20).await.ok()?.to_vec()).ok()?;
    let label = format!("channel=\"{channel}\"");
    Some(
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains(&label))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| Some((k.to_owned(), v.parse().ok()?))))
            .collect(),
    )
}

fn print_summary(s: &Summary) {
    println!("channel {} · {} envelopes of {} bytes · mode {}", s.channel, s.count, s.size, s.mode);
    println!("accepted   {:>8}   {:>10.0} tx/s", s.accepted, s.accepted_tps);
    println!("ordered    {:>8}   {:>10.0} tx/s", s.ordered, s.ordered_tps);
    let p = |name: &str, l: &Percentiles| {
        println!(
            "{name:<10} p50 {:.1} ms · p90 {:.1} ms · p99 {:.1} ms · p99.9 {:.1} ms · max {:.1} ms",
            l.p50, l.p90, l.p99, l.p999, l.max
        )
    };
    p("ack", &s.ack_latency_ms);
    p("delivered", &s.delivered_latency_ms);
    if let (Some(tps), Some(ratio)) = (s.baseline_kafka_tps, s.baseline_ratio) {
        println!("kafka      {tps:>19.0} rec/s alone (the OSN orders {:.0} % of it)", ratio * 100.0);
    }
    for (status, n) in &s.refused {
        println!("refused    {n:>8}   {status}");
    }
    for (name, delta) in &s.channel_metrics {
        if *delta != 0.0 {
            println!("  {name} +{delta}");
        }
    }
}
