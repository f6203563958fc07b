//! What HTTP and operators read of a channel without a mailbox hop: its phase (a watch), its
//! access control, its backlog (records acknowledged and consumed), the outcomes of its CONFIG
//! records, and its hot-path metrics.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::core::access::Access;
use crate::core::chain::{Applied, Outcome, Refusal};
use crate::metrics::metrics;

pub use crate::core::link::Phase;

/// What HTTP and operators can see of a channel actor. The phase is a watch, so deliver streams
/// that must stop when the channel is not ready (STRICT) wait on it instead of polling.
#[derive(Debug)]
pub struct ChannelStatus {
    /// The channel's name (metric labels).
    pub name: String,
    /// Its hot-path metrics.
    pub metrics: crate::metrics::ChannelMetrics,
    pub(super) phase: tokio::sync::watch::Sender<(Phase, String)>,
    /// Messages in the actor's mailbox (see [`MailboxSlot`]).
    pub mailbox_depth: AtomicI64,
    pub restarts: AtomicU32,
    /// Highest partition offset Kafka acknowledged for a broadcast through this OSN.
    pub(super) acked_offset: AtomicI64,
    /// Offset of the last record this OSN's consumer handed to the chain.
    pub(super) consumed_offset: AtomicI64,
    /// The last offset its partition held when the channel connected (-1 when that was nothing
    /// past its ledger), [`NOT_MEASURED`] until known. Until its consumer got that far the
    /// channel is replaying ([`ChannelStatus::caught_up`]): it defers re-submissions, and for the
    /// system channel, the OSN is not ready (`/readyz`).
    pub(super) replay_end: AtomicI64,
    /// Records and bytes consumed since start, for the average record size.
    pub(super) consumed_records: AtomicU64,
    pub(super) consumed_bytes: AtomicU64,
    /// Records and bytes of this OSN's broadcasts Kafka acknowledged since start: the average
    /// record size before anything is consumed.
    pub(super) acked_records: AtomicU64,
    pub(super) acked_bytes: AtomicU64,
    /// Bytes handed to the producer and not acknowledged (or failed) yet.
    pub(super) in_flight_bytes: AtomicU64,
    /// Who may write and read, by the channel's current configuration.
    pub(super) access: tokio::sync::watch::Sender<std::sync::Arc<crate::core::access::Access>>,
    /// A config update this OSN re-submitted is waiting to be consumed (broadcasts get 503).
    pub(super) reprocessing: std::sync::atomic::AtomicBool,
    /// What the latest CONFIG-class records came to, by the offset their sender was told, and a
    /// counter that moves when one is added.
    pub(super) outcomes: std::sync::Mutex<std::collections::VecDeque<Outcome>>,
    pub(super) outcome_count: tokio::sync::watch::Sender<u64>,
    /// The last produce failure not yet seen by the actor (set on the producer's polling thread).
    pub(super) produce_failure: std::sync::Mutex<Option<String>>,
    /// Woken each time the actor has consumed a run of records, which is what makes room in the
    /// backlog bound: senders waiting for room ([`ChannelStatus::room`]) look again at once.
    consumed: tokio::sync::Notify,
}

/// CONFIG-class outcomes remembered per channel (senders wait for theirs within seconds).
const OUTCOMES: usize = 256;

impl ChannelStatus {
    pub fn new(name: &str) -> Self {
        ChannelStatus {
            name: name.to_owned(),
            metrics: metrics().channel(name),
            mailbox_depth: AtomicI64::new(0),
            phase: tokio::sync::watch::Sender::new((Phase::Starting, "connecting to Kafka".into())),
            restarts: AtomicU32::new(0),
            acked_offset: AtomicI64::new(-1),
            consumed_offset: AtomicI64::new(-1),
            replay_end: AtomicI64::new(NOT_MEASURED),
            consumed_records: AtomicU64::new(0),
            consumed_bytes: AtomicU64::new(0),
            acked_records: AtomicU64::new(0),
            acked_bytes: AtomicU64::new(0),
            in_flight_bytes: AtomicU64::new(0),
            access: tokio::sync::watch::Sender::new(std::sync::Arc::new(crate::core::access::Access::deny_all())),
            reprocessing: Default::default(),
            outcomes: Default::default(),
            outcome_count: tokio::sync::watch::Sender::new(0),
            consumed: tokio::sync::Notify::new(),
            produce_failure: Default::default(),
        }
    }
}

/// [`ChannelStatus::replay_end`] before it is measured.
pub const NOT_MEASURED: i64 = i64::MIN;

impl ChannelStatus {
    /// Whether the channel consumed its partition as far as it reached when the channel
    /// connected; why not.
    pub fn caught_up(&self) -> Result<(), String> {
        match self.replay_end.load(Ordering::Relaxed) {
            NOT_MEASURED => Err("the end of its partition is not measured yet".into()),
            end => {
                let consumed = self.consumed_offset.load(Ordering::Relaxed);
                if consumed >= end {
                    Ok(())
                } else {
                    Err(format!("replaying its partition: consumed up to offset {consumed} of {end}"))
                }
            }
        }
    }

    pub(super) fn set_replay_end(&self, end: i64) {
        self.replay_end.store(end, Ordering::Relaxed);
    }

    pub fn phase(&self) -> (Phase, String) {
        self.phase.borrow().clone()
    }

    /// A receiver that sees every phase change.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<(Phase, String)> {
        self.phase.subscribe()
    }

    /// The channel's access control as it is now.
    pub fn access(&self) -> std::sync::Arc<crate::core::access::Access> {
        self.access.borrow().clone()
    }

    /// A receiver that sees every change of the channel's access control.
    pub fn watch_access(&self) -> tokio::sync::watch::Receiver<std::sync::Arc<crate::core::access::Access>> {
        self.access.subscribe()
    }

    /// Replaces the channel's access control (its configuration changed).
    pub fn set_access(&self, access: crate::core::access::Access) {
        self.set_access_arc(std::sync::Arc::new(access));
    }

    pub(crate) fn set_access_arc(&self, access: Arc<Access>) {
        if !Arc::ptr_eq(&self.access.borrow(), &access) {
            self.access.send_replace(access);
        }
    }

    pub(super) fn record_outcome(&self, outcome: Outcome) {
        let mut outcomes = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        if outcomes.len() >= OUTCOMES {
            outcomes.pop_front();
        }
        outcomes.push_back(outcome);
        drop(outcomes);
        self.outcome_count.send_modify(|n| *n += 1);
    }

    /// Waits until the CONFIG-class record acknowledged at `offset` (or a re-submitted copy of
    /// it) is consumed, and returns what it came to; None after `timeout`.
    pub async fn outcome(&self, offset: i64, timeout: Duration) -> Option<Result<Applied, Refusal>> {
        let mut changes = self.outcome_count.subscribe();
        let find = || {
            let outcomes = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
            outcomes.iter().rev().find(|o| o.offset == offset).map(|o| o.result.clone())
        };
        tokio::time::timeout(timeout, async {
            loop {
                if let Some(result) = find() {
                    return Some(result);
                }
                if changes.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// The channel's actor is being restarted (it stopped, or a panic dropped it): counts it in
    /// `restarts` and `osn_channel_restarts`, and returns the count.
    pub fn note_restart(&self) -> u32 {
        let n = self.restarts.fetch_add(1, Ordering::Relaxed) + 1;
        metrics().channel_restarts.with_label_values(&[&self.name]).set(i64::from(n));
        n
    }

    pub fn set(&self, phase: Phase, reason: impl Into<String>) {
        let value = match phase {
            Phase::Starting => 0,
            Phase::Ready => 1,
            Phase::Errored => 2,
        };
        metrics().channel_status.with_label_values(&[&self.name]).set(value);
        self.phase.send_replace((phase, reason.into()));
    }

    /// Kafka did not acknowledge a record: the actor marks the channel errored and probes Kafka
    /// until it answers.
    pub(super) fn note_produce_failure(&self, reason: String) {
        *self.produce_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }

    pub(super) fn take_produce_failure(&self) -> Option<String> {
        self.produce_failure.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub(super) fn note_acked(&self, offset: i64, size: u64) {
        self.acked_offset.fetch_max(offset, Ordering::Relaxed);
        self.acked_records.fetch_add(1, Ordering::Relaxed);
        self.acked_bytes.fetch_add(size, Ordering::Relaxed);
    }

    /// A record of ours other than a broadcast (a time-to-cut) is in the partition at `offset`.
    pub(super) fn note_written(&self, offset: i64) {
        self.acked_offset.fetch_max(offset, Ordering::Relaxed);
    }

    /// The last offset known written to the partition (acknowledged to this OSN's producer) and
    /// the last one consumed.
    pub(super) fn offsets(&self) -> (i64, i64) {
        (self.acked_offset.load(Ordering::Relaxed), self.consumed_offset.load(Ordering::Relaxed))
    }

    pub(super) fn note_consumed(&self, offset: i64, size: usize) {
        self.consumed_offset.store(offset, Ordering::Relaxed);
        self.consumed_records.fetch_add(1, Ordering::Relaxed);
        self.consumed_bytes.fetch_add(size as u64, Ordering::Relaxed);
    }

    /// Wakes the senders waiting for room in the backlog bound (after a run of records).
    pub(super) fn wake_waiting_senders(&self) {
        self.consumed.notify_waiters();
    }

    /// Resolves when the actor next consumes records: what a sender waiting for room in the
    /// backlog bound waits on. Enable it before looking at [`Self::lag_bytes`] so that a run
    /// consumed in between still wakes it.
    pub fn room(&self) -> tokio::sync::futures::Notified<'_> {
        self.consumed.notified()
    }

    /// Estimated bytes this OSN's consumer is behind what its clients sent: records in the
    /// producer not acknowledged yet (exact), plus records acknowledged and not consumed yet
    /// (times the larger of the average sizes consumed and acknowledged, so that the estimate
    /// holds before the consumer has read anything: a new channel's first burst).
    pub fn lag_bytes(&self) -> u64 {
        let in_flight = self.in_flight_bytes.load(Ordering::Relaxed);
        let behind = self.acked_offset.load(Ordering::Relaxed) - self.consumed_offset.load(Ordering::Relaxed);
        if behind <= 0 {
            return in_flight;
        }
        let average = |bytes: &AtomicU64, records: &AtomicU64| {
            bytes.load(Ordering::Relaxed) / records.load(Ordering::Relaxed).max(1)
        };
        let average = average(&self.consumed_bytes, &self.consumed_records)
            .max(average(&self.acked_bytes, &self.acked_records))
            .max(1);
        in_flight + behind as u64 * average
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_counts_acknowledged_records_at_their_size_before_anything_is_consumed() {
        let status = ChannelStatus::new("lag");
        assert_eq!(status.lag_bytes(), 0);
        // A new channel's first burst: 3,000 records of 2 KB acknowledged, none consumed yet
        // (it used to count 1 byte each, so the bound never engaged and the embedded broker
        // dropped the records before the consumer read them).
        for offset in 0..3000 {
            status.note_acked(offset, 2048);
        }
        assert_eq!(status.lag_bytes(), 3000 * 2048);
        // Consumed records of another size (other OSNs' broadcasts): the larger average counts.
        for offset in 0..1000 {
            status.note_consumed(offset, 4096);
        }
        assert_eq!(status.lag_bytes(), 2000 * 4096);
        for offset in 1000..3000 {
            status.note_consumed(offset, 4096);
        }
        assert_eq!(status.lag_bytes(), 0);
    }
}
