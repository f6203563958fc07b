//! The OSN's Prometheus metrics: Fabric's names where Fabric has the metric (so existing
//! dashboards work), and per-channel actor metrics no orderer has (`osn_channel_*`, `osn_kafka_*`,
//! `osn_deliver_*`, `osn_verify_*`). One process-wide registry; [`gather`] renders the text
//! exposition format for `GET /metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric, registered once.
pub struct Metrics {
    registry: Registry,
    // Fabric's.
    pub broadcast_processed_count: IntCounterVec,
    pub broadcast_validate_duration: HistogramVec,
    pub broadcast_enqueue_duration: HistogramVec,
    pub blockcutter_block_fill_duration: HistogramVec,
    pub deliver_streams_opened: IntCounter,
    pub deliver_streams_closed: IntCounter,
    pub deliver_requests_received: IntCounterVec,
    pub deliver_requests_completed: IntCounterVec,
    pub deliver_blocks_sent: IntCounterVec,
    pub ledger_blockchain_height: IntGaugeVec,
    pub ledger_blockstorage_commit_time: HistogramVec,
    pub consensus_kafka_last_offset_persisted: IntGaugeVec,
    pub kafka: KafkaClientMetrics,
    // Fabric's gRPC server metrics.
    pub grpc_stream_requests_received: IntCounterVec,
    pub grpc_stream_requests_completed: IntCounterVec,
    pub grpc_stream_request_duration: HistogramVec,
    pub grpc_stream_messages_received: IntCounterVec,
    pub grpc_stream_messages_sent: IntCounterVec,
    pub grpc_conn_opened: IntCounter,
    pub grpc_conn_closed: IntCounter,
    // OSN's ledger storage.
    pub ledger_write_failures: IntCounterVec,
    pub ledger_storage_failed: IntGauge,
    pub ledger_reopens: IntCounter,
    // OSN's per-channel actor metrics.
    pub channel_status: IntGaugeVec,
    pub channel_restarts: IntGaugeVec,
    pub channel_config_sequence: IntGaugeVec,
    pub channel_mailbox_depth: IntGaugeVec,
    pub channel_mailbox_capacity: IntGaugeVec,
    pub channel_messages_handled: IntCounterVec,
    pub channel_handler_duration: HistogramVec,
    pub channel_blocks_cut: IntCounterVec,
    pub channel_transactions_ordered: IntCounterVec,
    pub channel_time_to_cut: IntCounterVec,
    pub channel_records_skipped: IntCounterVec,
    pub channel_resubmitted: IntCounterVec,
    pub channel_duplicates: IntCounterVec,
    pub channel_commits_pending: IntGaugeVec,
    pub kafka_produce_latency: HistogramVec,
    pub kafka_consumer_lag: IntGaugeVec,
    pub kafka_errors: IntCounterVec,
    pub deliver_websocket_subscribers: IntGaugeVec,
    // The process (read from /proc/self when scraped; Linux only).
    pub process_resident_memory_bytes: IntGauge,
    pub process_threads: IntGauge,
    pub process_open_fds: IntGauge,
    /// Read when scraped, as the process gauges are.
    pub verify_ecdsa_tables: IntGauge,
    pub process_cpu_seconds: prometheus::Gauge,
    pub process_cpu_by_part: prometheus::GaugeVec,
    pub verify_duration: HistogramVec,
}

/// Fabric's `consensus_kafka_*` gauges, from librdkafka's statistics (per broker and per topic).
pub struct KafkaClientMetrics {
    pub outgoing_byte_rate: prometheus::GaugeVec,
    pub incoming_byte_rate: prometheus::GaugeVec,
    pub request_rate: prometheus::GaugeVec,
    pub request_size: prometheus::GaugeVec,
    pub request_latency: prometheus::GaugeVec,
    pub response_rate: prometheus::GaugeVec,
    pub response_size: prometheus::GaugeVec,
    pub batch_size: prometheus::GaugeVec,
    pub record_send_rate: prometheus::GaugeVec,
    pub records_per_request: prometheus::GaugeVec,
}

/// Seconds buckets from 100 µs to about 52 s.
fn seconds() -> Vec<f64> {
    exponential_buckets(0.0001, 2.0, 20).expect("valid buckets")
}

impl Metrics {
    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        macro_rules! reg {
            ($metric:expr) => {{
                let m = $metric;
                registry.register(Box::new(m.clone()))?;
                m
            }};
        }
        let counter = |name: &str, help: &str, labels: &[&str]| IntCounterVec::new(Opts::new(name, help), labels);
        let gauge = |name: &str, help: &str, labels: &[&str]| IntGaugeVec::new(Opts::new(name, help), labels);
        let fgauge = |name: &str, help: &str, labels: &[&str]| prometheus::GaugeVec::new(Opts::new(name, help), labels);
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            HistogramVec::new(HistogramOpts::new(name, help).buckets(seconds()), labels)
        };
        let kafka = KafkaClientMetrics {
            outgoing_byte_rate: reg!(fgauge(
                "consensus_kafka_outgoing_byte_rate",
                "Bytes/second written to a broker (librdkafka statistics).",
                &["broker_id"]
            )?),
            incoming_byte_rate: reg!(fgauge(
                "consensus_kafka_incoming_byte_rate",
                "Bytes/second read from a broker.",
                &["broker_id"]
            )?),
            request_rate: reg!(fgauge(
                "consensus_kafka_request_rate",
                "Requests/second sent to a broker.",
                &["broker_id"]
            )?),
            request_size: reg!(fgauge(
                "consensus_kafka_request_size",
                "Average size in bytes of the requests sent to a broker.",
                &["broker_id"]
            )?),
            request_latency: reg!(fgauge(
                "consensus_kafka_request_latency",
                "Average request round-trip time to a broker, in milliseconds.",
                &["broker_id"]
            )?),
            response_rate: reg!(fgauge(
                "consensus_kafka_response_rate",
                "Responses/second received from a broker.",
                &["broker_id"]
            )?),
            response_size: reg!(fgauge(
                "consensus_kafka_response_size",
                "Average size in bytes of the responses received from a broker.",
                &["broker_id"]
            )?),
            batch_size: reg!(fgauge(
                "consensus_kafka_batch_size",
                "Average number of bytes sent per partition per request (producer batches).",
                &["topic"]
            )?),
            record_send_rate: reg!(fgauge(
                "consensus_kafka_record_send_rate",
                "Records/second sent to a topic.",
                &["topic"]
            )?),
            records_per_request: reg!(fgauge(
                "consensus_kafka_records_per_request",
                "Average number of records per producer batch to a topic.",
                &["topic"]
            )?),
        };
        Ok(Metrics {
            broadcast_processed_count: reg!(counter(
                "broadcast_processed_count",
                "Envelopes broadcast, by channel, header type and answer status.",
                &["channel", "type", "status"]
            )?),
            broadcast_validate_duration: reg!(histogram(
                "broadcast_validate_duration",
                "Seconds spent checking a broadcast envelope (structure, signature, policy).",
                &["channel", "type", "status"]
            )?),
            broadcast_enqueue_duration: reg!(histogram(
                "broadcast_enqueue_duration",
                "Seconds from handing a checked envelope to the channel until Kafka acknowledged it (or refused).",
                &["channel", "type", "status"]
            )?),
            blockcutter_block_fill_duration: reg!(histogram(
                "blockcutter_block_fill_duration",
                "Seconds from the first envelope of a batch being pending to the batch being cut, on this OSN.",
                &["channel"]
            )?),
            deliver_streams_opened: reg!(IntCounter::new(
                "deliver_streams_opened",
                "Deliver streams opened (websocket sessions and streamed POSTs)."
            )?),
            deliver_streams_closed: reg!(IntCounter::new("deliver_streams_closed", "Deliver streams closed.")?),
            deliver_requests_received: reg!(counter(
                "deliver_requests_received",
                "Deliver requests received.",
                &["channel", "filtered", "data_type"]
            )?),
            deliver_requests_completed: reg!(counter(
                "deliver_requests_completed",
                "Deliver requests completed, by whether they ended with SUCCESS.",
                &["channel", "filtered", "data_type", "success"]
            )?),
            deliver_blocks_sent: reg!(counter(
                "deliver_blocks_sent",
                "Blocks sent by Deliver.",
                &["channel", "filtered", "data_type"]
            )?),
            ledger_blockchain_height: reg!(gauge(
                "ledger_blockchain_height",
                "Number of blocks in the channel's ledger.",
                &["channel"]
            )?),
            ledger_blockstorage_commit_time: reg!(histogram(
                "ledger_blockstorage_commit_time",
                "Seconds to commit blocks to the ledger (one RocksDB write batch, holding every block the writer had waiting).",
                &["channel"]
            )?),
            consensus_kafka_last_offset_persisted: reg!(gauge(
                "consensus_kafka_last_offset_persisted",
                "Offset of the last Kafka record included in a committed block.",
                &["channel"]
            )?),
            kafka,
            grpc_stream_requests_received: reg!(counter(
                "grpc_server_stream_requests_received",
                "The number of stream requests received.",
                &["service", "method"]
            )?),
            grpc_stream_requests_completed: reg!(counter(
                "grpc_server_stream_requests_completed",
                "The number of stream requests completed.",
                &["service", "method", "code"]
            )?),
            grpc_stream_request_duration: reg!(histogram(
                "grpc_server_stream_request_duration",
                "The time to complete a stream request.",
                &["service", "method", "code"]
            )?),
            grpc_stream_messages_received: reg!(counter(
                "grpc_server_stream_messages_received",
                "The number of stream messages received.",
                &["service", "method"]
            )?),
            grpc_stream_messages_sent: reg!(counter(
                "grpc_server_stream_messages_sent",
                "The number of stream messages sent.",
                &["service", "method"]
            )?),
            grpc_conn_opened: reg!(IntCounter::new(
                "grpc_comm_conn_opened",
                "gRPC connections opened. Open minus closed is the active number of connections."
            )?),
            grpc_conn_closed: reg!(IntCounter::new(
                "grpc_comm_conn_closed",
                "gRPC connections closed. Open minus closed is the active number of connections."
            )?),
            ledger_write_failures: reg!(counter(
                "osn_ledger_write_failures_total",
                "Ledger writes (blocks, a new channel's storage) that failed in the storage itself: a full disk, an I/O error.",
                &["channel"]
            )?),
            ledger_storage_failed: reg!(IntGauge::new(
                "osn_ledger_storage_failed",
                "1 from a failed ledger write until the ledger database was reopened and can write again, else 0."
            )?),
            ledger_reopens: reg!(IntCounter::new(
                "osn_ledger_reopens_total",
                "Times the ledger database was reopened after a failed write, once its disk could be written again."
            )?),
            channel_status: reg!(gauge(
                "osn_channel_status",
                "The channel actor's phase: 0 starting, 1 ready, 2 errored.",
                &["channel"]
            )?),
            channel_restarts: reg!(gauge(
                "osn_channel_restarts",
                "How many times the channel actor restarted since the OSN started.",
                &["channel"]
            )?),
            channel_config_sequence: reg!(gauge(
                "osn_channel_config_sequence",
                "Sequence number of the channel's configuration in force.",
                &["channel"]
            )?),
            channel_mailbox_depth: reg!(gauge(
                "osn_channel_mailbox_depth",
                "Messages waiting in the channel actor's mailbox.",
                &["channel"]
            )?),
            channel_mailbox_capacity: reg!(gauge(
                "osn_channel_mailbox_capacity",
                "Capacity of the channel actor's mailbox.",
                &["channel"]
            )?),
            channel_messages_handled: reg!(counter(
                "osn_channel_messages_handled_total",
                "Messages the channel actor handled, by type (broadcast, config, record: each record consumed, ttc_timer).",
                &["channel", "type"]
            )?),
            channel_handler_duration: reg!(histogram(
                "osn_channel_handler_duration_seconds",
                "Seconds the channel actor spent handling one message, by type (record: one run of up to 64 records the consumer had ready, handled together).",
                &["channel", "type"]
            )?),
            channel_blocks_cut: reg!(counter(
                "osn_channel_blocks_cut_total",
                "Blocks cut, by reason (max_message_count, preferred_max_bytes, oversized, time_to_cut, config, channel_creation).",
                &["channel", "reason"]
            )?),
            channel_transactions_ordered: reg!(counter(
                "osn_channel_transactions_ordered_total",
                "Envelopes in the blocks this OSN cut (every OSN of a channel cuts the same blocks, so each counts the same).",
                &["channel"]
            )?),
            channel_time_to_cut: reg!(counter(
                "osn_channel_time_to_cut_total",
                "Time-to-cut messages: sent by this OSN, and consumed: won (cut the block) or ignored (stale, future, empty).",
                &["channel", "event"]
            )?),
            channel_records_skipped: reg!(counter(
                "osn_channel_records_skipped_total",
                "Consumed records that made no block, by reason.",
                &["channel", "reason"]
            )?),
            channel_resubmitted: reg!(counter(
                "osn_channel_resubmitted_total",
                "Records re-submitted because they were enqueued under an older configuration, by class.",
                &["channel", "class"]
            )?),
            channel_commits_pending: reg!(gauge(
                "osn_channel_commits_pending",
                "Records whose blocks are cut and with the ledger's writer, not yet durable (subscribers and the \
                 consumer position see a block once it is).",
                &["channel"]
            )?),
            channel_duplicates: reg!(counter(
                "osn_channel_duplicates_total",
                "Envelopes ordered a second time from re-submitted copies (Fabric 1.4's double re-submission of a \
                 message stale across two config changes, cut as Fabric cuts it).",
                &["channel"]
            )?),
            kafka_produce_latency: reg!(histogram(
                "osn_kafka_produce_latency_seconds",
                "Seconds from handing a record to the producer until Kafka acknowledged it (acks=all).",
                &["channel"]
            )?),
            kafka_consumer_lag: reg!(gauge(
                "osn_kafka_consumer_lag",
                "Records in the channel's partition not consumed yet (high watermark - position).",
                &["channel"]
            )?),
            kafka_errors: reg!(counter(
                "osn_kafka_errors_total",
                "Kafka errors seen by a channel, by operation (produce, consume, consumer_stalled, connect, offset_out_of_range).",
                &["channel", "operation"]
            )?),
            deliver_websocket_subscribers: reg!(gauge(
                "osn_deliver_websocket_subscribers",
                "Open deliver websockets.",
                &["channel"]
            )?),
            verify_duration: reg!(histogram(
                "osn_verify_duration_seconds",
                "Seconds the verification pool spent on one job (a batch of envelopes checked together).",
                &["policy"]
            )?),
            process_resident_memory_bytes: reg!(IntGauge::new(
                "process_resident_memory_bytes",
                "Resident memory of the OSN process, in bytes (read from /proc when scraped)."
            )?),
            process_threads: reg!(IntGauge::new("process_threads", "Threads of the OSN process.")?),
            verify_ecdsa_tables: reg!(IntGauge::new(
                "osn_verify_ecdsa_key_tables",
                "ECDSA public keys verified with a precomputed table of their own (86 KiB each; repeat signers \
                 that are members of a channel's organisations, at most 512; read when scraped)."
            )?),
            process_open_fds: reg!(IntGauge::new("process_open_fds", "Open file descriptors of the OSN process.")?),
            process_cpu_seconds: reg!(prometheus::Gauge::new(
                "process_cpu_seconds_total",
                "User and system CPU time the OSN process has used, in seconds (read from /proc when scraped)."
            )?),
            process_cpu_by_part: reg!(prometheus::GaugeVec::new(
                prometheus::Opts::new(
                    "osn_process_cpu_seconds",
                    "The OSN process's CPU time by what its threads do, in seconds (read from /proc when scraped): \
                     verify (the signature pool), embedded_broker (osn dev's in-process Kafka broker), kafka_client \
                     (librdkafka's threads), ledger (RocksDB's and the ledger writers' threads), and osn (the \
                     rest: HTTP, gRPC, the actors, threads that have ended)."
                ),
                &["part"]
            )?),
            registry,
        })
    }

    /// Reads the process gauges from `/proc/self` (left as they are where there is no /proc).
    fn read_process(&self) {
        self.verify_ecdsa_tables.set(crate::core::p256::tables() as i64);
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            for line in status.lines() {
                let field = |prefix: &str| {
                    line.strip_prefix(prefix).and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
                };
                if let Some(kb) = field("VmRSS:") {
                    self.process_resident_memory_bytes.set(kb * 1024);
                } else if let Some(n) = field("Threads:") {
                    self.process_threads.set(n);
                }
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.process_open_fds.set(fds.count() as i64);
        }
        if let Some(total) = std::fs::read_to_string("/proc/self/stat").ok().as_deref().and_then(cpu_seconds) {
            self.process_cpu_seconds.set(total);
            let mut parts = [0.0f64; CPU_PARTS.len()];
            for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
                let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
                let (Some(name), Some(secs)) = (thread_name(&stat), cpu_seconds(&stat)) else { continue };
                parts[cpu_part(name)] += secs;
            }
            // The rest, with the threads that have ended (their time stays in the process's).
            let named: f64 = parts[..CPU_PARTS.len() - 1].iter().sum();
            parts[CPU_PARTS.len() - 1] = (total - named).max(0.0);
            for (part, secs) in CPU_PARTS.iter().zip(parts) {
                self.process_cpu_by_part.with_label_values(&[part]).set(secs);
            }
        }
    }
}

/// The parts of `osn_process_cpu_seconds`, the last one being the rest.
pub const CPU_PARTS: [&str; 5] = ["verify", "embedded_broker", "kafka_client", "ledger", "osn"];

/// Which part of [`CPU_PARTS`] a thread of this name does.
fn cpu_part(thread: &str) -> usize {
    if thread.starts_with("osn-verify") {
        0
    } else if thread == "rdk:mock" {
        1
    } else if thread.starts_with("rdk:") {
        2
    } else if thread.starts_with("rocksdb:") || thread.starts_with("ledger-") {
        3
    } else {
        4
    }
}

/// The command name of a `/proc/PID/stat` line (between the first parenthesis and the last).
fn thread_name(stat: &str) -> Option<&str> {
    Some(&stat[stat.find('(')? + 1..stat.rfind(')')?])
}

/// utime + stime of a `/proc/PID/stat` line, in seconds: the 14th and 15th fields, counted after
/// the command name (which may hold spaces, so from its closing parenthesis).
fn cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 / hz as f64)
}

/// One channel's metrics on its hot paths, resolved once (a labelled lookup per record or per
/// envelope measured at 5–10 % of the throughput).
#[derive(Clone)]
pub struct ChannelMetrics {
    pub mailbox_depth: IntGauge,
    pub handled_record: IntCounter,
    pub handler_record: Histogram,
    pub handled_broadcast: IntCounter,
    pub handler_broadcast: Histogram,
    pub commit_time: Histogram,
    pub commits_pending: IntGauge,
    pub height: IntGauge,
    pub last_offset_persisted: IntGauge,
    pub block_fill: Histogram,
    pub produce_latency: Histogram,
    /// By `CutReason` order: max_message_count, preferred_max_bytes, oversized, time_to_cut,
    /// config, channel_creation.
    pub blocks_cut: [IntCounter; 6],
    /// Envelopes in the blocks cut.
    pub transactions_ordered: IntCounter,
    pub ttc_won: IntCounter,
    /// Broadcasts of ENDORSER_TRANSACTION envelopes answered SUCCESS (the common case).
    pub transaction_processed: IntCounter,
    pub transaction_validate: Histogram,
    pub transaction_enqueue: Histogram,
}

impl std::fmt::Debug for ChannelMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelMetrics")
    }
}

impl Metrics {
    /// The hot-path metrics of channel `name`.
    pub fn channel(&self, name: &str) -> ChannelMetrics {
        let ok = [name, "ENDORSER_TRANSACTION", "SUCCESS"];
        let reason = |r: &str| self.channel_blocks_cut.with_label_values(&[name, r]);
        ChannelMetrics {
            mailbox_depth: self.channel_mailbox_depth.with_label_values(&[name]),
            handled_record: self.channel_messages_handled.with_label_values(&[name, "record"]),
            handler_record: self.channel_handler_duration.with_label_values(&[name, "record"]),
            handled_broadcast: self.channel_messages_handled.with_label_values(&[name, "broadcast"]),
            handler_broadcast: self.channel_handler_duration.with_label_values(&[name, "broadcast"]),
            commit_time: self.ledger_blockstorage_commit_time.with_label_values(&[name]),
            commits_pending: self.channel_commits_pending.with_label_values(&[name]),
            height: self.ledger_blockchain_height.with_label_values(&[name]),
            last_offset_persisted: self.consensus_kafka_last_offset_persisted.with_label_values(&[name]),
            block_fill: self.blockcutter_block_fill_duration.with_label_values(&[name]),
            produce_latency: self.kafka_produce_latency.with_label_values(&[name]),
            blocks_cut: [
                reason("max_message_count"),
                reason("preferred_max_bytes"),
                reason("oversized"),
                reason("time_to_cut"),
                reason("config"),
                reason("channel_creation"),
            ],
            transactions_ordered: self.channel_transactions_ordered.with_label_values(&[name]),
            ttc_won: self.channel_time_to_cut.with_label_values(&[name, "won"]),
            transaction_processed: self.broadcast_processed_count.with_label_values(&ok),
            transaction_validate: self.broadcast_validate_duration.with_label_values(&ok),
            transaction_enqueue: self.broadcast_enqueue_duration.with_label_values(&ok),
        }
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics::new().expect("metric definitions are valid and registered once"))
}

/// Every metric in Prometheus' text exposition format (version 0.0.4).
pub fn gather() -> Vec<u8> {
    let mut out = Vec::new();
    metrics().read_process();
    // Encoding into a Vec cannot fail but for invalid metric families, which the registry refuses.
    let _ = TextEncoder::new().encode(&metrics().registry.gather(), &mut out);
    out
}

/// The content type of [`gather`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A duration in seconds, for histograms.
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_seconds_come_from_the_fields_after_the_command_name() {
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let stat = "42 (osn (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3";
        assert_eq!(super::cpu_seconds(stat), Some(300.0 / hz));
        assert_eq!(super::cpu_seconds("garbage"), None);
        assert_eq!(super::thread_name("12 (rdk:broker 1) S 1"), Some("rdk:broker 1"));
        let parts: Vec<&str> =
            ["osn-verify-1", "rdk:mock", "rdk:main", "ledger-writer-0", "rocksdb:low", "actix-rt|system"]
                .iter()
                .map(|t| super::CPU_PARTS[super::cpu_part(t)])
                .collect();
        assert_eq!(parts, ["verify", "embedded_broker", "kafka_client", "ledger", "ledger", "osn"]);
    }

    #[test]
    fn every_metric_registers_and_renders() {
        let m = super::metrics();
        m.broadcast_processed_count.with_label_values(&["ch", "ENDORSER_TRANSACTION", "SUCCESS"]).inc();
        m.ledger_blockchain_height.with_label_values(&["ch"]).set(3);
        let text = String::from_utf8(super::gather()).unwrap();
        let rss: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(rss > 1e6, "the process's resident memory, from /proc: {rss}");
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
        assert!(
            text.contains(
                "broadcast_processed_count{channel=\"ch\",status=\"SUCCESS\",type=\"ENDORSER_TRANSACTION\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("ledger_blockchain_height{channel=\"ch\"} 3"), "{text}");
    }
}
