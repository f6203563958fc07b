//! What front ends send a channel's actor: a batch of broadcast envelopes or a config record,
//! each counted in the channel's mailbox depth while it waits ([`MailboxSlot`]), answered with
//! an [`Enqueued`] per record to await Kafka's acknowledgement, or a [`BroadcastError`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::DeliveryFuture;

use super::ChannelStatus;
use crate::metrics::{metrics, secs};

/// Relay structurally valid, marshaled envelopes into the channel's partition, in order, with
/// one mailbox hop. Answers as soon as the producer holds them, with one [`Enqueued`] per
/// envelope to await Kafka's acknowledgement, or the reason it was refused. Never dropped
/// silently: the sender gets an answer for every envelope.
#[derive(Message)]
#[rtype(result = "Vec<Result<Enqueued, BroadcastError>>")]
pub struct BroadcastBatch {
    /// Counts the message in its channel's mailbox depth until it is handled (or dropped).
    pub slot: MailboxSlot,
    pub envelopes: Vec<Bytes>,
    /// The sequence of the configuration the envelopes were checked by: a record enqueued under
    /// an older one than the chain's is re-validated when consumed.
    pub config_seq: u64,
    /// A message taken from the mailbox after this instant is refused, not relayed: the client
    /// was told the channel is busy, so the envelopes must not be ordered behind its back.
    pub deadline: Instant,
}

/// Relay one CONFIG-class record (a config update or a channel creation this OSN derived and
/// signed) into the channel's partition, enqueued under configuration `config_seq`.
#[derive(Message)]
#[rtype(result = "Result<Enqueued, BroadcastError>")]
pub struct EnqueueConfig {
    pub slot: MailboxSlot,
    pub record: Bytes,
    pub config_seq: u64,
    pub deadline: Instant,
}

/// One message in a channel actor's mailbox: counted in `osn_channel_mailbox_depth` from its
/// creation until it is dropped (handled, refused by a full mailbox, or never sent).
#[derive(Debug)]
pub struct MailboxSlot {
    status: Arc<ChannelStatus>,
}

impl MailboxSlot {
    pub fn new(status: &Arc<ChannelStatus>) -> Self {
        status.mailbox_depth.fetch_add(1, Ordering::Relaxed);
        status.metrics.mailbox_depth.inc();
        MailboxSlot { status: status.clone() }
    }
}

impl Drop for MailboxSlot {
    fn drop(&mut self) {
        self.status.mailbox_depth.fetch_sub(1, Ordering::Relaxed);
        self.status.metrics.mailbox_depth.dec();
    }
}

/// Why a broadcast was not accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BroadcastError {
    #[error("channel '{channel}' is not ready: {reason}")]
    NotReady { channel: String, reason: String },
    #[error("channel '{channel}' is busy: the envelope waited in its queue past the enqueue timeout, retry later")]
    Busy { channel: String },
    #[error(
        "channel '{channel}' is about {lag} bytes behind its Kafka partition (max-lag-bytes {limit}); retry later"
    )]
    Behind { channel: String, lag: u64, limit: u64 },
    #[error("channel '{channel}' is overloaded: the Kafka producer queue is full, retry later")]
    Overloaded { channel: String },
    #[error(
        "channel '{channel}' is re-processing a config update that was ordered under an older configuration; retry once it is consumed"
    )]
    Reprocessing { channel: String },
    #[error(
        "Kafka did not acknowledge the envelope on channel '{channel}': {reason} (are the partition's brokers reachable, with at least min.insync.replicas in sync?)"
    )]
    Kafka { channel: String, reason: String },
}

/// Whether a produce error means the partition is unavailable (rather than the record refused).
pub(super) fn unavailable(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(
            MessageTimedOut
                | RequestTimedOut
                | AllBrokersDown
                | BrokerTransportFailure
                | NotEnoughReplicas
                | NotEnoughReplicasAfterAppend
                | LeaderNotAvailable
                | NotLeaderForPartition
                | UnknownTopicOrPartition
                | NetworkException
        )
    )
}

/// A broadcast record handed to the producer, not yet acknowledged.
pub struct Enqueued {
    /// Taken when awaited; dropping an `Enqueued` unawaited still settles its in-flight bytes.
    pub(super) delivery: Option<DeliveryFuture>,
    pub(super) status: Arc<ChannelStatus>,
    pub(super) size: u64,
    /// When the record was handed to the producer.
    pub(super) sent: Instant,
}

impl Drop for Enqueued {
    fn drop(&mut self) {
        self.status.in_flight_bytes.fetch_sub(self.size, Ordering::Relaxed);
    }
}

impl Enqueued {
    /// Waits for Kafka's acknowledgement (`acks=all`); bounded by the producer's
    /// `message.timeout.ms`.
    pub async fn acknowledged(mut self) -> Result<i64, BroadcastError> {
        let channel = || self.status.name.clone();
        let Some(delivery) = self.delivery.take() else {
            return Err(BroadcastError::Kafka { channel: channel(), reason: "acknowledgement already awaited".into() });
        };
        let result = delivery.await;
        self.status.metrics.produce_latency.observe(secs(self.sent.elapsed()));
        match result {
            Ok(Ok(d)) => {
                self.status.note_acked(d.offset, self.size);
                Ok(d.offset)
            }
            Ok(Err((e, _))) => {
                metrics().kafka_errors.with_label_values(&[&self.status.name, "produce"]).inc();
                // Only Kafka being unavailable errors the channel: a record the broker refuses
                // (too large for its message.max.bytes, say) is that record's problem.
                if unavailable(&e) {
                    self.status.note_produce_failure(e.to_string());
                }
                Err(BroadcastError::Kafka { channel: channel(), reason: e.to_string() })
            }
            Err(_) => Err(BroadcastError::Kafka { channel: channel(), reason: "the producer shut down".into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailability_errors_a_channel() {
        let produce = |code| KafkaError::MessageProduction(code);
        assert!(unavailable(&produce(RDKafkaErrorCode::MessageTimedOut)));
        assert!(unavailable(&produce(RDKafkaErrorCode::NotEnoughReplicas)));
        assert!(!unavailable(&produce(RDKafkaErrorCode::MessageSizeTooLarge)));
        assert!(!unavailable(&produce(RDKafkaErrorCode::InvalidRecord)));
    }
}
