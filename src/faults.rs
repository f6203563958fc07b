//! Crash points, for the reliability suite: with `OSN_CRASH_AT=<point>` (or `<point>:<n>`) in
//! its environment, the process kills itself with SIGKILL the first (or n-th) time it passes
//! `<point>`, exactly as `kill -9` would at that moment: no destructor runs, nothing is flushed or
//! closed. The suite restarts it on the same ledger and checks that nothing was half-written.
//!
//! Only debug builds (what `cargo test` runs) honour the variable; in release builds
//! [`crash_point`] compiles to nothing, so no environment can make a production OSN kill itself.
//!
//! The points, in the order a consumed Kafka record passes them:
//! - `system.after-create`: a channel created through the system channel has its ledger (genesis
//!   block written), before the system channel's block recording it is appended;
//! - `ledger.before-write`: a block is cut, signed and checked against the tip, not yet written;
//! - `ledger.after-write`: RocksDB's write returned (the commit point), before the ledger's tip,
//!   height watch and configuration are updated;
//! - `ledger.after-config-write`: the same, for config blocks only;
//! - `channel.after-commit`: every block cut from one record is committed, before the record's
//!   config outcome is published and the time-to-cut timer re-armed.

/// Every crash point, for tests and documentation.
pub const POINTS: &[&str] = &[
    "system.after-create",
    "ledger.before-write",
    "ledger.after-write",
    "ledger.after-config-write",
    "channel.after-commit",
];

/// Kills the process if `OSN_CRASH_AT` names this point and this is the pass it names.
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
        /// Passes left before the crash (1: this one).
        left: AtomicU64,
    }

    fn armed() -> Option<&'static Armed> {
        static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
        ARMED
            .get_or_init(|| {
                let spec = std::env::var("OSN_CRASH_AT").ok()?;
                let (point, nth) = match spec.rsplit_once(':') {
                    Some((point, n)) => (point, n.parse().ok()?),
                    None => (spec.as_str(), 1),
                };
                if !super::POINTS.contains(&point) {
                    eprintln!("OSN_CRASH_AT: no crash point is called {point:?} (known: {:?})", super::POINTS);
                    return None;
                }
                Some(Armed { point: point.to_owned(), left: AtomicU64::new(nth) })
            })
            .as_ref()
    }

    pub fn pass(point: &'static str) {
        let Some(armed) = armed() else { return };
        if armed.point == point && armed.left.fetch_sub(1, Ordering::SeqCst) == 1 {
            eprintln!("OSN_CRASH_AT: crash point {point} reached, killing this process with SIGKILL");
            // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            // SIGKILL cannot be caught; should the call fail, still never go on past the point.
            std::process::abort();
        }
    }
}
