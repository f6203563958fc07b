//! Fabric's block cutter: decides, message by message, where batches end.
//!
//! Rules (Fabric's `blockcutter`):
//! - a message's size is the length of its payload plus the length of its signature;
//! - a message larger than `PreferredMaxBytes` goes alone in its own batch, after the pending
//!   batch (if any) is cut;
//! - a message that would push the pending batch past `PreferredMaxBytes` cuts the pending batch
//!   first and starts the next one;
//! - a batch is cut as soon as it holds `MaxMessageCount` messages.
//!
//! `AbsoluteMaxBytes` is enforced at broadcast; a consumed message larger than it (which a correct
//! OSN never enqueues) is rejected here, the same way on every OSN, instead of being ordered.

use bytes::Bytes;

use crate::proto::BatchSize;

/// One message as the cutter sees it: the marshaled envelope and its Fabric size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub envelope: Bytes,
    /// payload length + signature length.
    pub size: u32,
}

/// Why a batch was cut (for metrics; every OSN cuts for the same reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutReason {
    /// The batch reached MaxMessageCount.
    MaxMessageCount,
    /// The next message would have taken the batch past PreferredMaxBytes.
    PreferredMaxBytes,
    /// A message larger than PreferredMaxBytes, alone in its batch.
    Oversized,
    /// A time-to-cut for the block was consumed.
    TimeToCut,
    /// A config update: the pending batch before it, and the update alone.
    Config,
    /// A channel creation on the system channel: the pending batch before it, and the creation.
    ChannelCreation,
}

impl CutReason {
    /// Its position among the reasons (metrics keep one counter per reason).
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CutReason::MaxMessageCount => "max_message_count",
            CutReason::PreferredMaxBytes => "preferred_max_bytes",
            CutReason::Oversized => "oversized",
            CutReason::TimeToCut => "time_to_cut",
            CutReason::Config => "config",
            CutReason::ChannelCreation => "channel_creation",
        }
    }
}

/// What one call to [`BlockCutter::ordered`] decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ordered {
    /// Zero, one or two batches to turn into blocks, in order.
    pub batches: Vec<Vec<Bytes>>,
    /// Why each batch was cut.
    pub reasons: Vec<CutReason>,
    /// Whether messages remain pending after these batches.
    pub pending: bool,
}

/// Why a message was not ordered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CutterError {
    #[error("message of {size} bytes exceeds AbsoluteMaxBytes ({max})")]
    TooLarge { size: u32, max: u32 },
}

/// The block cutter of one channel. Pure: the same calls give the same batches on every OSN.
#[derive(Debug, Clone)]
pub struct BlockCutter {
    config: BatchSize,
    pending: Vec<Bytes>,
    pending_bytes: u64,
}

impl BlockCutter {
    pub fn new(config: BatchSize) -> Self {
        BlockCutter { config, pending: Vec::new(), pending_bytes: 0 }
    }

    pub fn config(&self) -> &BatchSize {
        &self.config
    }

    /// Replaces the batch size rules; they apply to messages ordered from now on.
    pub fn set_config(&mut self, config: BatchSize) {
        self.config = config;
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Orders one message and returns the batches it completed.
    pub fn ordered(&mut self, msg: Message) -> Result<Ordered, CutterError> {
        let BatchSize { max_message_count, absolute_max_bytes, preferred_max_bytes } = self.config;
        if msg.size > absolute_max_bytes {
            return Err(CutterError::TooLarge { size: msg.size, max: absolute_max_bytes });
        }
        let mut out = Ordered::default();

        if msg.size > preferred_max_bytes {
            if self.has_pending() {
                out.batches.push(self.cut());
                out.reasons.push(CutReason::PreferredMaxBytes);
            }
            out.batches.push(vec![msg.envelope]);
            out.reasons.push(CutReason::Oversized);
            out.pending = false;
            return Ok(out);
        }

        if self.pending_bytes + u64::from(msg.size) > u64::from(preferred_max_bytes) {
            out.batches.push(self.cut());
            out.reasons.push(CutReason::PreferredMaxBytes);
        }

        self.pending.push(msg.envelope);
        self.pending_bytes += u64::from(msg.size);

        if self.pending.len() as u64 >= u64::from(max_message_count.max(1)) {
            out.batches.push(self.cut());
            out.reasons.push(CutReason::MaxMessageCount);
        }
        out.pending = self.has_pending();
        Ok(out)
    }

    /// Returns the pending batch (possibly empty) and starts a new one.
    pub fn cut(&mut self) -> Vec<Bytes> {
        self.pending_bytes = 0;
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: &str, size: u32) -> Message {
        Message { envelope: Bytes::from(tag.to_owned()), size }
    }

    /// One table row: batch config, the messages fed in order, and the expected outcome of the
    /// last call (batches as tag lists, and whether messages remain pending).
    fn check(
        max_count: u32,
        absolute: u32,
        preferred: u32,
        msgs: &[(&str, u32)],
        want: &[&[&str]],
        want_pending: bool,
    ) {
        let mut cutter = BlockCutter::new(BatchSize {
            max_message_count: max_count,
            absolute_max_bytes: absolute,
            preferred_max_bytes: preferred,
        });
        let mut last = Ordered::default();
        for (tag, size) in msgs {
            last = cutter.ordered(msg(tag, *size)).expect("ordered");
        }
        let got: Vec<Vec<String>> =
            last.batches.iter().map(|b| b.iter().map(|e| String::from_utf8(e.to_vec()).unwrap()).collect()).collect();
        let want: Vec<Vec<String>> = want.iter().map(|b| b.iter().map(|s| s.to_string()).collect()).collect();
        assert_eq!(got, want, "batches for {msgs:?}");
        assert_eq!(last.pending, want_pending, "pending for {msgs:?}");
        assert_eq!(cutter.has_pending(), want_pending);
    }

    #[test]
    fn cutter_table() {
        // (max count, absolute, preferred, messages, batches from the last message, pending)
        // A small message with room left stays pending.
        check(10, 1000, 100, &[("a", 10)], &[], true);
        // Reaching MaxMessageCount cuts, including the message that reached it.
        check(2, 1000, 100, &[("a", 10), ("b", 10)], &[&["a", "b"]], false);
        check(1, 1000, 100, &[("a", 10)], &[&["a"]], false);
        // Exactly PreferredMaxBytes fits (overflow is strictly greater).
        check(10, 1000, 100, &[("a", 50), ("b", 50)], &[], true);
        // Overflowing PreferredMaxBytes cuts the pending batch; the message starts the next one.
        check(10, 1000, 100, &[("a", 60), ("b", 50)], &[&["a"]], true);
        // The overflow cut happens even when the count limit is not yet reached.
        check(3, 1000, 100, &[("a", 30), ("b", 30), ("c", 50)], &[&["a", "b"]], true);
        // A message larger than Preferred with nothing pending goes alone.
        check(10, 1000, 100, &[("big", 101)], &[&["big"]], false);
        // A message larger than Preferred cuts the pending batch first, then goes alone.
        check(10, 1000, 100, &[("a", 10), ("b", 10), ("big", 500)], &[&["a", "b"], &["big"]], false);
        // A message exactly at Preferred is not oversized: it cuts what is pending if it would overflow.
        check(10, 1000, 100, &[("a", 10), ("p", 100)], &[&["a"]], true);
        // A message exactly at AbsoluteMaxBytes (and over Preferred) is accepted, alone.
        check(10, 1000, 100, &[("abs", 1000)], &[&["abs"]], false);
        // After a cut, counting starts again.
        check(2, 1000, 100, &[("a", 1), ("b", 1), ("c", 1)], &[], true);
        // MaxMessageCount = 0 is treated as 1 rather than never cutting.
        check(0, 1000, 100, &[("a", 1)], &[&["a"]], false);
    }

    #[test]
    fn over_absolute_max_is_rejected_and_pending_kept() {
        let mut cutter =
            BlockCutter::new(BatchSize { max_message_count: 10, absolute_max_bytes: 100, preferred_max_bytes: 50 });
        cutter.ordered(msg("a", 10)).unwrap();
        assert_eq!(cutter.ordered(msg("huge", 101)), Err(CutterError::TooLarge { size: 101, max: 100 }));
        assert_eq!(cutter.pending_len(), 1);
        assert_eq!(cutter.cut(), vec![Bytes::from("a")]);
        assert!(cutter.cut().is_empty(), "cut of an empty batch is empty");
    }
}
