//! Fault points, for the reliability suite. With `OSN_CRASH_AT=<point>` (or `<point>:<n>`) in
//! its environment, the process kills itself with SIGKILL the first (or n-th) time it passes
//! `<point>`, exactly as `kill -9` would at that moment: no destructor runs, nothing is flushed or
//! closed. The suite restarts it on the same ledger and checks that nothing was half-written.
//! With `OSN_PANIC_AT=<point>[:<n>]` the thread passing the point panics instead, as a bug there
//! would: the channel whose actor panicked must be seen ERRORED and restarted from its ledger,
//! never left looking alive (`actors::supervisor`).
//!
//! With `OSN_STALL_AT=<point>[:<n>]` the thread passing the point blocks for good, as a client
//! library call that never returns would: start-up must say what it waits for and go on retrying,
//! and shutdown must still end the process within its bound.
//!
//! Only debug builds (what `cargo test` runs) honour the variables; in release builds
//! [`crash_point`] compiles to nothing, so no environment can make a production OSN kill itself.
//!
//! The points, in the order a consumed Kafka record passes them:
//! - `channel.consume`: a record (or consumer error) reaches the channel's actor, before the chain
//!   sees it;
//! - `system.after-create`: a channel created through the system channel has its ledger (genesis
//!   block written), before the system channel's block recording it is appended;
//! - `channel.commit-queued`: the blocks cut from a record are signed and handed to the ledger's
//!   writer thread, not yet durable (the chain in memory is ahead of the ledger);
//! - `ledger.before-write`: on a ledger writer thread, blocks are checked against the tip, not yet
//!   written (passed once per block of the write);
//! - `ledger.after-write`: RocksDB's write returned (the commit point), before the ledger's tip,
//!   height watch and configuration are updated (once per block of the write);
//! - `ledger.after-config-write`: the same, for config blocks only;
//! - `channel.after-commit`: the actor hears that a record's blocks are durable, before the
//!   record's config outcome is published;
//! - `kafka.topic-check`: a channel starting asks librdkafka whether its topic exists (on a
//!   blocking thread).

/// Every crash point, for tests and documentation.
pub const POINTS: &[&str] = &[
    "channel.consume",
    "system.after-create",
    "channel.commit-queued",
    "ledger.before-write",
    "ledger.after-write",
    "ledger.after-config-write",
    "channel.after-commit",
    "kafka.topic-check",
];

/// Kills the process if `OSN_CRASH_AT` names this point and this is the pass it names; panics if
/// `OSN_PANIC_AT` does; blocks the thread for good if `OSN_STALL_AT` does.
#[inline]
pub fn crash_point(point: &'static str) {
    #[cfg(debug_assertions)]
    armed::pass(point);
    #[cfg(not(debug_assertions))]
    let _ = point;
}

#[cfg(debug_assertions)]
mod armed {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    struct Armed {
        point: String,
        /// Passes left before the fault (1: this one).
        left: AtomicU64,
    }

    impl Armed {
        /// Whether this pass of `point` is the one the variable names.
        fn hit(&self, point: &str) -> bool {
            self.point == point && self.left.fetch_sub(1, Ordering::SeqCst) == 1
        }
    }

    fn parse(variable: &str) -> Option<Armed> {
        let spec = std::env::var(variable).ok()?;
        let (point, nth) = match spec.rsplit_once(':') {
            Some((point, n)) => (point, n.parse().ok()?),
            None => (spec.as_str(), 1),
        };
        if !super::POINTS.contains(&point) {
            eprintln!("{variable}: no fault point is called {point:?} (known: {:?})", super::POINTS);
            return None;
        }
        Some(Armed { point: point.to_owned(), left: AtomicU64::new(nth) })
    }

    fn crash() -> Option<&'static Armed> {
        static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
        ARMED.get_or_init(|| parse("OSN_CRASH_AT")).as_ref()
    }

    fn panic() -> Option<&'static Armed> {
        static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
        ARMED.get_or_init(|| parse("OSN_PANIC_AT")).as_ref()
    }

    fn stall() -> Option<&'static Armed> {
        static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
        ARMED.get_or_init(|| parse("OSN_STALL_AT")).as_ref()
    }

    pub fn pass(point: &'static str) {
        if crash().is_some_and(|a| a.hit(point)) {
            eprintln!("OSN_CRASH_AT: crash point {point} reached, killing this process with SIGKILL");
            // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            // SIGKILL cannot be caught; should the call fail, still never go on past the point.
            std::process::abort();
        }
        if panic().is_some_and(|a| a.hit(point)) {
            panic!("OSN_PANIC_AT: fault point {point} reached");
        }
        if stall().is_some_and(|a| a.hit(point)) {
            eprintln!("OSN_STALL_AT: fault point {point} reached, blocking this thread for good");
            loop {
                std::thread::park();
            }
        }
    }
}
