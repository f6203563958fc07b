//! What `osn load` reports: the summary (JSON with `--json`) and its text form.

use super::*;

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
    pub(super) fn of(h: &Histogram<u64>) -> Self {
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

/// One channel's share of the load.
#[derive(Debug, Serialize)]
pub struct ChannelFigures {
    pub name: String,
    pub accepted: usize,
    pub ordered: usize,
    /// Blocks holding the load's envelopes.
    pub blocks: u64,
}

/// The deliver subscriptions.
#[derive(Debug, Serialize, Default)]
pub struct Subscribers {
    /// Subscriptions opened per channel.
    pub per_channel: usize,
    /// Subscriptions open when the load started (over all channels).
    pub opened: usize,
    /// Subscriptions that received every block from before the load's first envelope to its
    /// last, in order, without a gap.
    pub received_every_block: usize,
    /// Why subscriptions failed, with how many failed so (empty when none did).
    pub failures: BTreeMap<String, usize>,
}

/// The OSN process's resident memory (`process_resident_memory_bytes` of `/metrics`), in MiB.
#[derive(Debug, Serialize)]
pub struct Rss {
    pub before: f64,
    /// The most seen while loading (sampled every 500 ms).
    pub max: f64,
    pub after: f64,
}

/// The broker alone at the load's rate (`--baseline kafka --rate`), from when each record was due.
#[derive(Debug, Serialize)]
pub struct BrokerLatency {
    /// Produced → acknowledged (`acks=all`), as the OSN's producer waits for.
    pub ack: Percentiles,
    /// Produced → read back by a consumer.
    pub consumed: Percentiles,
}

/// The OSN process's threads before and after.
#[derive(Debug, Serialize)]
pub struct Threads {
    pub before: u64,
    pub after: u64,
}

/// What `osn load` reports.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub channels: Vec<ChannelFigures>,
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
    /// With `--rate`: how late the load generator itself sent each request after it was due.
    /// Both latencies above count from when it was due, so this lag is part of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag_ms: Option<Percentiles>,
    /// Refused envelopes by status (and transport failures as `UNREACHABLE`).
    pub refused: BTreeMap<String, usize>,
    pub subscribers: Subscribers,
    /// When the OSN serves `process_resident_memory_bytes` on `/metrics`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_mib: Option<Rss>,
    /// The OSN process's threads (`process_threads` of `/metrics`) before the load's channels
    /// were created and after the load: a fixed pool does not grow with channels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_threads: Option<Threads>,
    /// The OSN process's CPU time (`process_cpu_seconds_total`, from /proc) from just before the
    /// load to after its last delivery, in microseconds per ordered transaction. With `osn load
    /// --embedded` it includes the embedded broker, which runs in the OSN's process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_tx: Option<f64>,
    /// The same by what the OSN's threads do (`osn_process_cpu_seconds{part}`: verify,
    /// embedded_broker, kafka_client, ledger, osn), in microseconds per ordered transaction.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub server_cpu_us_per_tx_by_part: BTreeMap<String, f64>,
    /// The OSN's own CPU per ordered transaction: the process's, less signature verification
    /// and the embedded broker (microseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub osn_cpu_us_per_tx: Option<f64>,
    /// With `--create-channels`: how long creating them took (each answered once the OSN
    /// consumed its creation), in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_channels_secs: Option<f64>,
    /// The loaded channels' `osn_channel_*` counters, after minus before, summed over the
    /// channels (the channel label removed).
    pub channel_metrics: BTreeMap<String, f64>,
    /// With `--baseline kafka`: records/second produced and consumed through the broker alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_kafka_tps: Option<f64>,
    /// `ordered_tps / baseline_kafka_tps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_ratio: Option<f64>,
    /// With `--baseline kafka --rate`: the broker's own latencies at the load's rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_kafka_latency_ms: Option<BrokerLatency>,
    /// What `--report` plots (not in the JSON summary).
    #[serde(skip)]
    pub plots: Plots,
}

/// The load over time and its latency distributions, for `--report`.
#[derive(Debug, Default)]
pub struct Plots {
    /// Envelopes answered SUCCESS and delivered in blocks, per [`TICK`] since the load began (its
    /// subscriptions opened, its envelopes signed).
    pub accepted: Vec<u64>,
    pub ordered: Vec<u64>,
    /// (percentile, milliseconds) points of the broadcast answer and of broadcast → delivered.
    pub ack: Vec<(f64, f64)>,
    pub delivered: Vec<(f64, f64)>,
}

/// The width of a throughput sample of [`Plots`].
pub const TICK: Duration = Duration::from_millis(250);

impl Plots {
    /// The percentile curve of a latency histogram (µs): from the median to the maximum.
    pub(super) fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
        if h.is_empty() {
            return Vec::new();
        }
        let mut points: Vec<(f64, f64)> = [0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999]
            .iter()
            .map(|&q| (q * 100.0, h.value_at_quantile(q) as f64 / 1000.0))
            .collect();
        points.push((100.0, h.max() as f64 / 1000.0));
        points
    }

    /// Adds one at `at` (since the load began) to a per-tick series.
    pub(super) fn count(series: &mut Vec<u64>, at: Duration) {
        let tick = (at.as_nanos() / TICK.as_nanos()) as usize;
        if tick < 100_000 {
            if series.len() <= tick {
                series.resize(tick + 1, 0);
            }
            series[tick] += 1;
        }
    }
}

pub(super) fn print_summary(s: &Summary) {
    let names: Vec<&str> = s.channels.iter().map(|c| c.name.as_str()).collect();
    let shown = if names.len() > 4 { format!("{} channels", names.len()) } else { names.join(", ") };
    println!("{shown} · {} envelopes of {} bytes · mode {}", s.count, s.size, s.mode);
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
    if let Some(lag) = &s.send_lag_ms {
        p("send lag", lag);
    }
    if let (Some(tps), Some(ratio)) = (s.baseline_kafka_tps, s.baseline_ratio) {
        println!("kafka      {tps:>19.0} rec/s alone (the OSN orders {:.0} % of it)", ratio * 100.0);
    }
    if let Some(kafka) = &s.baseline_kafka_latency_ms {
        p("kafka ack", &kafka.ack);
        p("kafka read", &kafka.consumed);
    }
    for (status, n) in &s.refused {
        println!("refused    {n:>8}   {status}");
    }
    let subs = &s.subscribers;
    println!(
        "subscribers {} per channel · {} opened · {} received every block",
        subs.per_channel, subs.opened, subs.received_every_block
    );
    for (why, n) in &subs.failures {
        println!("  {n} failed: {why}");
    }
    if let Some(rss) = &s.server_rss_mib {
        println!("server RSS {:.0} MiB before · {:.0} MiB at most · {:.0} MiB after", rss.before, rss.max, rss.after);
    }
    if let Some(secs) = s.create_channels_secs {
        println!("{} channels created in {secs:.1} s", s.channels.len());
    }
    if let Some(threads) = &s.server_threads {
        println!("server threads {} before · {} after", threads.before, threads.after);
    }
    if let Some(us) = s.server_cpu_us_per_tx {
        let parts: Vec<String> = s.server_cpu_us_per_tx_by_part.iter().map(|(p, us)| format!("{p} {us:.1}")).collect();
        println!("server CPU {us:.1} µs per ordered transaction ({})", parts.join(" · "));
    }
    if let Some(us) = s.osn_cpu_us_per_tx {
        println!("OSN's own CPU {us:.1} µs per ordered transaction (less verification and the embedded broker)");
    }
    for (name, delta) in &s.channel_metrics {
        if *delta != 0.0 {
            println!("  {name} +{delta}");
        }
    }
}
