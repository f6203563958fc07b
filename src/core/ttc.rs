//! Time-to-cut bookkeeping: when this OSN should *propose* cutting the pending batch.
//!
//! The timer only decides when to post `TimeToCut{block_number}` to the partition; the cut itself
//! happens when a TTC is consumed (see [`crate::core::chain`]), so each OSN's local timeout never
//! changes the chain. The timer starts when a batch becomes pending, stops when a block is cut,
//! and after firing re-arms itself so a lost or late TTC is proposed again.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct TtcTimer {
    timeout: Duration,
    deadline: Option<Instant>,
}

impl TtcTimer {
    pub fn new(timeout: Duration) -> Self {
        TtcTimer { timeout, deadline: None }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A new timeout (the channel's configuration changed); a running deadline is kept.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// When the timer next fires, if it runs.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Updates the timer after a consumed message: `cut` says a block was cut by it, `pending`
    /// whether messages remain pending afterwards.
    pub fn on_consumed(&mut self, now: Instant, cut: bool, pending: bool) {
        if cut || !pending {
            self.deadline = None;
        }
        if pending && self.deadline.is_none() {
            self.deadline = Some(now + self.timeout);
        }
    }

    /// If the deadline has passed, returns true (post a TTC for the next block) and re-arms.
    pub fn fire(&mut self, now: Instant) -> bool {
        match self.deadline {
            Some(d) if d <= now => {
                self.deadline = Some(now + self.timeout);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_lifecycle() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut t = TtcTimer::new(ms(100));
        assert!(!t.fire(t0 + ms(1000)), "idle timer never fires");

        t.on_consumed(t0, false, true);
        assert_eq!(t.deadline(), Some(t0 + ms(100)));
        // More pending messages do not push the deadline back.
        t.on_consumed(t0 + ms(50), false, true);
        assert_eq!(t.deadline(), Some(t0 + ms(100)));
        assert!(!t.fire(t0 + ms(99)));
        assert!(t.fire(t0 + ms(100)));
        // Re-armed in case the TTC is lost.
        assert_eq!(t.deadline(), Some(t0 + ms(200)));

        // A cut with messages left over restarts the timer from the cut.
        t.on_consumed(t0 + ms(150), true, true);
        assert_eq!(t.deadline(), Some(t0 + ms(250)));
        // A cut that leaves nothing pending stops it.
        t.on_consumed(t0 + ms(160), true, false);
        assert_eq!(t.deadline(), None);
        // A non-cutting message with nothing pending (a TTC, a CONNECT) keeps it stopped.
        t.on_consumed(t0 + ms(170), false, false);
        assert_eq!(t.deadline(), None);
    }
}
