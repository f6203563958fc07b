//! librdkafka's statistics as metrics: the producer's per-broker and per-topic figures as
//! Fabric's `consensus_kafka_*` gauges, and the shared consumer's lag of each channel (high
//! watermark − position).
//! librdkafka emits them every `kafka.statistics-interval`; a large report is read less often
//! (see `Throttle`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use rdkafka::consumer::ConsumerContext;
use rdkafka::{ClientContext, Statistics};

use super::PARTITION;
use crate::metrics::metrics;

/// Decides which statistics reports are read: librdkafka's JSON grows with every topic it
/// knows (about a kilobyte a partition), and parsing it every interval would make idle channels
/// cost CPU. After a report took `d` to read, none is read for the next 50 × `d` (at most 2 % of
/// a core; every report while they are small).
#[derive(Default)]
struct Throttle {
    next: Mutex<Option<Instant>>,
}

impl Throttle {
    /// Reads `raw` with `read` unless the last report read was too recent.
    fn read(&self, raw: &[u8], read: impl FnOnce(Statistics)) {
        let now = Instant::now();
        if self.next.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|next| now < next) {
            return;
        }
        match serde_json::from_slice::<Statistics>(raw) {
            Ok(stats) => read(stats),
            Err(e) => tracing::debug!(error = %e, "unreadable librdkafka statistics"),
        }
        let took = now.elapsed();
        *self.next.lock().unwrap_or_else(|e| e.into_inner()) = Some(now + took * 50);
    }
}

/// Counters of the previous statistics, to turn totals into rates.
#[derive(Default)]
struct Previous {
    /// By broker id: (ts µs, requests sent, bytes sent, responses, bytes received).
    brokers: HashMap<String, (i64, u64, u64, u64, u64)>,
    /// By topic: (ts µs, records sent).
    topics: HashMap<String, (i64, u64)>,
}

/// The producer's statistics context.
#[derive(Default)]
pub struct ProducerStats {
    previous: Mutex<Previous>,
    throttle: Throttle,
}

impl ClientContext for ProducerStats {
    fn stats_raw(&self, raw: &[u8]) {
        self.throttle.read(raw, |stats| self.read(stats));
    }
}

impl ProducerStats {
    fn read(&self, stats: Statistics) {
        let m = &metrics().kafka;
        let mut previous = self.previous.lock().unwrap_or_else(|e| e.into_inner());
        for broker in stats.brokers.values() {
            if broker.nodeid < 0 {
                continue; // bootstrap and internal handles
            }
            let id = broker.nodeid.to_string();
            let now = (stats.ts, broker.tx, broker.txbytes, broker.rx, broker.rxbytes);
            if let Some(&(ts, tx, txbytes, rx, rxbytes)) = previous.brokers.get(&id) {
                let secs = (now.0 - ts) as f64 / 1e6;
                if secs > 0.0 {
                    let rate = |new: u64, old: u64| new.saturating_sub(old) as f64 / secs;
                    let avg = |bytes: u64, old_bytes: u64, n: u64, old_n: u64| {
                        let n = n.saturating_sub(old_n);
                        if n == 0 {
                            0.0
                        } else {
                            bytes.saturating_sub(old_bytes) as f64 / n as f64
                        }
                    };
                    m.outgoing_byte_rate.with_label_values(&[&id]).set(rate(now.2, txbytes));
                    m.incoming_byte_rate.with_label_values(&[&id]).set(rate(now.4, rxbytes));
                    m.request_rate.with_label_values(&[&id]).set(rate(now.1, tx));
                    m.response_rate.with_label_values(&[&id]).set(rate(now.3, rx));
                    m.request_size.with_label_values(&[&id]).set(avg(now.2, txbytes, now.1, tx));
                    m.response_size.with_label_values(&[&id]).set(avg(now.4, rxbytes, now.3, rx));
                }
            }
            if let Some(rtt) = &broker.rtt {
                m.request_latency.with_label_values(&[&id]).set(rtt.avg as f64 / 1000.0);
            }
            previous.brokers.insert(id, now);
        }
        for (name, topic) in &stats.topics {
            let sent: u64 = topic.partitions.values().filter(|p| p.partition >= 0).map(|p| p.txmsgs).sum();
            if let Some(&(ts, old)) = previous.topics.get(name) {
                let secs = (stats.ts - ts) as f64 / 1e6;
                if secs > 0.0 {
                    m.record_send_rate.with_label_values(&[name]).set(sent.saturating_sub(old) as f64 / secs);
                }
            }
            m.batch_size.with_label_values(&[name]).set(topic.batchsize.avg as f64);
            m.records_per_request.with_label_values(&[name]).set(topic.batchcnt.avg as f64);
            previous.topics.insert(name.clone(), (stats.ts, sent));
        }
    }
}

/// The shared consumer's statistics context: each channel's lag (high watermark − position),
/// for the partitions it fetches, and when the consumer was last seen connected to every broker
/// it knows.
#[derive(Default)]
pub struct HubStats {
    throttle: Throttle,
    connected_at: Mutex<Option<Instant>>,
}

impl HubStats {
    /// When a report last showed this consumer connected (state UP) to every broker of the
    /// cluster it knows (the bootstrap entries aside): it fetches, even if nothing arrives.
    pub fn connected_at(&self) -> Option<Instant> {
        *self.connected_at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ClientContext for HubStats {
    fn stats_raw(&self, raw: &[u8]) {
        let received = Instant::now();
        self.throttle.read(raw, |stats| {
            let mut brokers = stats.brokers.values().filter(|b| b.nodeid >= 0).peekable();
            let known = brokers.peek().is_some();
            if known && brokers.all(|b| b.state == "UP") {
                *self.connected_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(received);
            }
            read_lag(stats);
        });
    }
}

/// Each channel's lag in a report of the shared consumer.
fn read_lag(stats: Statistics) {
    let m = metrics();
    for (channel, topic) in &stats.topics {
        let Some(partition) = topic.partitions.get(&PARTITION) else { continue };
        // app_offset: the offset after the last record handed to the application (−1001
        // before any); then the offset the consumer fetches next.
        let position = if partition.app_offset >= 0 { partition.app_offset } else { partition.next_offset };
        if partition.hi_offset >= 0 && position >= 0 {
            m.kafka_consumer_lag.with_label_values(&[channel]).set((partition.hi_offset - position).max(0));
        }
    }
}

impl ConsumerContext for HubStats {}
