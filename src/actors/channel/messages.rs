//! What front ends send a channel's actor: a batch of broadcast envelopes or a config record,
//! each counted in the channel's mailbox depth while it waits ([`MailboxSlot`]), answered with
//! an [`Enqueued`] per record to await Kafka's acknowledgement, or a [`BroadcastError`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::kafka::producer::{Acknowledge, Outcome, Pending};

use super::ChannelStatus;
use crate::metrics::{metrics, secs};

/// Relay structurally valid, marshaled envelopes into the channel's partition, in order, with
/// one mailbox hop. Answers as soon as the producer holds them ([`Taken`]): an [`Enqueued`] per
/// envelope to await Kafka's acknowledgement, or the reason it was refused; the envelopes that
/// did not fit in the channel's backlog bound come back to be sent again. Never dropped
/// silently.
#[derive(Message)]
#[rtype(result = "Taken")]
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

/// The actor's answer to a [`BroadcastBatch`]: one answer per envelope it took, in order, and
/// the envelopes after those, which it did not take because the backlog bound
/// (`max-lag-bytes`) had no room for them (the sender waits for room and sends them again).
pub struct Taken {
    pub answers: Vec<Result<Enqueued, BroadcastError>>,
    pub rest: Vec<Bytes>,
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

/// The records one actor message handed to the producer, as Kafka acknowledges them. Each
/// acknowledgement is taken on the producer's polling thread as it comes: the record's bytes
/// leave the channel's backlog and its offset is noted at once, whether or not its sender awaits
/// it yet (a sender whose batch is enqueued in parts holds the first part's answers while it
/// waits for room for the rest). Senders await the whole group ([`Enqueued::acknowledged`]): one
/// wake-up per group, not per record.
pub struct Acks {
    status: Arc<ChannelStatus>,
    /// When the group was handed to the producer.
    sent: Instant,
    /// Each record's outcome, by its index in the group, once acknowledged.
    outcomes: Mutex<Vec<Option<Outcome>>>,
    /// Records handed over and not acknowledged yet, plus one until the group is sealed.
    remaining: AtomicUsize,
    done: tokio::sync::Notify,
}

impl Acks {
    /// A group of at most `records` records of the channel of `status`.
    pub(super) fn new(status: &Arc<ChannelStatus>, records: usize) -> Arc<Acks> {
        Arc::new(Acks {
            status: status.clone(),
            sent: Instant::now(),
            outcomes: Mutex::new(vec![None; records]),
            remaining: AtomicUsize::new(1),
            done: tokio::sync::Notify::new(),
        })
    }

    /// Record `index`, of `size` bytes, goes to the producer: counted in the group and in the
    /// channel's backlog before it is handed over (its acknowledgement may come at once).
    pub(super) fn expect(self: &Arc<Self>, index: usize, size: usize) -> Box<Pending> {
        self.remaining.fetch_add(1, Ordering::Relaxed);
        self.status.in_flight_bytes.fetch_add(size as u64, Ordering::Relaxed);
        Pending::of(self.clone(), index as u32, size as u32)
    }

    /// The producer refused record `index` (no acknowledgement will come).
    pub(super) fn refused(&self, size: usize) {
        self.status.in_flight_bytes.fetch_sub(size as u64, Ordering::Relaxed);
        self.settle_one();
    }

    /// Every record of the group has been handed over.
    pub(super) fn seal(&self) {
        self.settle_one();
    }

    fn settle_one(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_waiters();
        }
    }

    /// Resolves when every record of the group is acknowledged (or failed).
    async fn settled(&self) {
        loop {
            let mut done = std::pin::pin!(self.done.notified());
            done.as_mut().enable();
            if self.remaining.load(Ordering::Acquire) == 0 {
                return;
            }
            done.await;
        }
    }
}

impl Acknowledge for Acks {
    fn acknowledged(&self, index: u32, size: u32, outcome: Outcome) {
        let status = &self.status;
        status.in_flight_bytes.fetch_sub(size as u64, Ordering::Relaxed);
        status.metrics.produce_latency.observe(secs(self.sent.elapsed()));
        match &outcome {
            Ok(offset) => status.note_acked(*offset, size as u64),
            Err(KafkaError::Canceled) => {}
            Err(e) => {
                metrics().kafka_errors.with_label_values(&[&status.name, "produce"]).inc();
                // Only Kafka being unavailable errors the channel: a record the broker refuses
                // (too large for its message.max.bytes, say) is that record's problem.
                if unavailable(e) {
                    status.note_produce_failure(e.to_string());
                }
            }
        }
        if let Some(slot) = self.outcomes.lock().unwrap_or_else(|e| e.into_inner()).get_mut(index as usize) {
            *slot = Some(outcome);
        }
        self.settle_one();
    }
}

/// A broadcast record handed to the producer, not yet acknowledged: record `index` of a group.
pub struct Enqueued {
    pub(super) acks: Arc<Acks>,
    pub(super) index: usize,
}

impl Enqueued {
    /// Waits for Kafka's acknowledgement (`acks=all`) of the record's whole group; bounded by
    /// the producer's `message.timeout.ms`.
    pub async fn acknowledged(self) -> Result<i64, BroadcastError> {
        self.acks.settled().await;
        let channel = || self.acks.status.name.clone();
        let outcome =
            self.acks.outcomes.lock().unwrap_or_else(|e| e.into_inner()).get_mut(self.index).and_then(Option::take);
        match outcome {
            Some(Ok(offset)) => Ok(offset),
            Some(Err(KafkaError::Canceled)) | None => {
                Err(BroadcastError::Kafka { channel: channel(), reason: "the producer shut down".into() })
            }
            Some(Err(e)) => Err(BroadcastError::Kafka { channel: channel(), reason: e.to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_group_settles_its_backlog_as_acknowledgements_come_and_answers_once_all_are_in() {
        let status = Arc::new(ChannelStatus::new("acks"));
        let acks = Acks::new(&status, 3);
        let mut first = acks.expect(0, 100);
        // Acknowledged before the rest is even handed over: its bytes leave the backlog at once.
        let first_enqueued = Enqueued { acks: acks.clone(), index: 0 };
        // What the producer's polling thread does with a delivery report.
        first.tell(Ok(41));
        drop(first);
        assert_eq!(status.in_flight_bytes.load(Ordering::Relaxed), 0);
        assert_eq!(status.offsets().0, 41);
        let second = acks.expect(1, 200);
        let third = acks.expect(2, 300);
        acks.refused(300);
        drop(as_refused(third));
        acks.seal();
        assert_eq!(status.in_flight_bytes.load(Ordering::Relaxed), 200);
        let waiting = tokio::spawn(first_enqueued.acknowledged());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "answered before the whole group was acknowledged");
        // Dropped unreported (the producer shut down): the group still hears of it.
        drop(second);
        assert_eq!(status.in_flight_bytes.load(Ordering::Relaxed), 0);
        assert_eq!(waiting.await.unwrap().unwrap(), 41);
        let shut = Enqueued { acks: acks.clone(), index: 1 }.acknowledged().await.unwrap_err();
        assert!(shut.to_string().contains("the producer shut down"), "{shut}");
    }

    /// A record the producer refused is marked told (as `kafka::producer::send` does), so that
    /// dropping it says nothing to its group.
    fn as_refused(mut pending: Box<Pending>) -> Box<Pending> {
        if let Pending::Of { told, .. } = pending.as_mut() {
            *told = true;
        }
        pending
    }

    #[test]
    fn only_unavailability_errors_a_channel() {
        let produce = |code| KafkaError::MessageProduction(code);
        assert!(unavailable(&produce(RDKafkaErrorCode::MessageTimedOut)));
        assert!(unavailable(&produce(RDKafkaErrorCode::NotEnoughReplicas)));
        assert!(!unavailable(&produce(RDKafkaErrorCode::MessageSizeTooLarge)));
        assert!(!unavailable(&produce(RDKafkaErrorCode::InvalidRecord)));
    }
}
