//! Time-to-cut bookkeeping: when this OSN should *propose* cutting the pending batch.
//!
//! The timer only decides when to post `TimeToCut{block_number}` to the partition; the cut itself
//! happens when a TTC is consumed (see [`crate::core::chain`]), so each OSN's local timeout never
//! changes the chain. The timer starts when a batch becomes pending, stops when a block is cut,
//! and after firing re-arms itself so a lost or late TTC is proposed again: after the timeout,
//! then twice as long each time, up to [`MAX_REPROPOSAL`] (a consumer that is late by a minute
//! must not find the partition filled with ten proposals a second for the same block).

use std::time::{Duration, Instant};

/// The longest wait between two proposals for the same block (unless the batch timeout is
/// longer).
pub const MAX_REPROPOSAL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct TtcTimer {
    timeout: Duration,
    deadline: Option<Instant>,
    /// Proposals made since the timer was last started.
    fired: u32,
}

impl TtcTimer {
    pub fn new(timeout: Duration) -> Self {
        TtcTimer { timeout, deadline: None, fired: 0 }
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
            self.fired = 0;
        }
    }

    /// If the deadline has passed, returns true (post a TTC for the next block) and re-arms,
    /// backing off.
    pub fn fire(&mut self, now: Instant) -> bool {
        match self.deadline {
            Some(d) if d <= now => {
                self.fired = self.fired.saturating_add(1);
                let wait =
                    self.timeout.saturating_mul(1 << (self.fired - 1).min(16)).min(MAX_REPROPOSAL.max(self.timeout));
                self.deadline = Some(now + wait);
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
        // Re-armed in case the TTC is lost (then backing off).
        assert_eq!(t.deadline(), Some(t0 + ms(200)));
        assert!(t.fire(t0 + ms(200)));
        assert_eq!(t.deadline(), Some(t0 + ms(400)));

        // A cut with messages left over restarts the timer from the cut, without back-off.
        t.on_consumed(t0 + ms(250), true, true);
        assert_eq!(t.deadline(), Some(t0 + ms(350)));
        assert!(t.fire(t0 + ms(350)));
        assert_eq!(t.deadline(), Some(t0 + ms(450)));
        // A cut that leaves nothing pending stops it.
        t.on_consumed(t0 + ms(460), true, false);
        assert_eq!(t.deadline(), None);
        // A non-cutting message with nothing pending (a TTC, a CONNECT) keeps it stopped.
        t.on_consumed(t0 + ms(470), false, false);
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn re_proposals_back_off_up_to_the_cap_or_the_timeout() {
        let t0 = Instant::now();
        let mut t = TtcTimer::new(Duration::from_millis(100));
        t.on_consumed(t0, false, true);
        let mut now = t0 + Duration::from_millis(100);
        let mut waits = Vec::new();
        for _ in 0..8 {
            assert!(t.fire(now));
            let next = t.deadline().unwrap();
            waits.push((next - now).as_millis());
            now = next;
        }
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        // A batch timeout beyond the cap is itself the wait.
        let mut t = TtcTimer::new(Duration::from_secs(8));
        t.on_consumed(t0, false, true);
        assert!(t.fire(t0 + Duration::from_secs(8)));
        assert!(t.fire(t0 + Duration::from_secs(16)));
        assert_eq!(t.deadline(), Some(t0 + Duration::from_secs(24)));
    }
}
