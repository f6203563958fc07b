//! Fabric's retry schedule for Kafka: every `short_interval` until `short_total` has passed since
//! the trouble began, then every `long_interval`. Fabric gives up after `long_total`; OSN never
//! gives up (an operator fixes Kafka, the channel recovers by itself), it only reports that the
//! long total has passed.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    pub short_interval: Duration,
    pub short_total: Duration,
    pub long_interval: Duration,
    pub long_total: Duration,
}

impl RetrySchedule {
    /// How long to wait before the next attempt, `elapsed` after the trouble began.
    pub fn delay(&self, elapsed: Duration) -> Duration {
        if elapsed < self.short_total {
            self.short_interval
        } else {
            self.long_interval
        }
    }

    /// Whether the trouble has lasted past the long total (Fabric would have halted the channel).
    pub fn exhausted(&self, elapsed: Duration) -> bool {
        elapsed >= self.long_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_then_long_intervals() {
        let s = |secs| Duration::from_secs(secs);
        let r =
            RetrySchedule { short_interval: s(5), short_total: s(600), long_interval: s(300), long_total: s(43200) };
        assert_eq!(r.delay(s(0)), s(5));
        assert_eq!(r.delay(s(599)), s(5));
        assert_eq!(r.delay(s(600)), s(300));
        assert!(!r.exhausted(s(43199)) && r.exhausted(s(43200)));
    }
}
