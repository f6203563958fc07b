//! Sending on schedule (`--rate`). Every latency counts from when an envelope was due, so a
//! generator that leaves late adds its own lateness to the OSN's figures. tokio's timers fire on
//! whole milliseconds: a sender sleeping until its due time with them left 1.0 ms late at the
//! median (625 requests a second). A thread of the load's own sleeps with the OS's timers
//! instead, and wakes each sender when its turn is due.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// Releases turns 0, 1, … in order, each at its due time.
pub(super) struct Pacer {
    inner: Arc<Inner>,
}

struct Inner {
    /// Turns before this one are released.
    released: AtomicUsize,
    /// The senders waiting, by turn.
    waiting: Mutex<BTreeMap<usize, Waker>>,
    /// Set when the pacer is dropped: its thread stops at its next wake-up.
    stop: AtomicBool,
}

fn lock(m: &Mutex<BTreeMap<usize, Waker>>) -> MutexGuard<'_, BTreeMap<usize, Waker>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pacer {
    /// Starts the thread that releases turns `0..n`, turn `k` at `due(k)`; `due` does not
    /// decrease with `k`.
    pub(super) fn start(n: usize, due: impl Fn(usize) -> Instant + Send + 'static) -> std::io::Result<Pacer> {
        let inner =
            Arc::new(Inner { released: AtomicUsize::new(0), waiting: Mutex::default(), stop: AtomicBool::new(false) });
        let shared = inner.clone();
        std::thread::Builder::new().name("osn-load-pacer".into()).spawn(move || {
            // The OS may otherwise end a sleep up to 50 µs late to group wake-ups.
            // SAFETY: prctl with PR_SET_TIMERSLACK only sets this thread's timer slack (in ns).
            #[cfg(target_os = "linux")]
            unsafe {
                libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong, 0, 0, 0)
            };
            let mut k = 0;
            while k < n && !shared.stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                let from = k;
                while k < n && due(k) <= now {
                    k += 1;
                }
                if k > from {
                    shared.released.store(k, Ordering::Release);
                    let woken = {
                        let mut waiting = lock(&shared.waiting);
                        let later = waiting.split_off(&k);
                        std::mem::replace(&mut *waiting, later)
                    };
                    woken.into_values().for_each(Waker::wake);
                }
                if k < n {
                    std::thread::sleep(due(k).saturating_duration_since(Instant::now()));
                }
            }
        })?;
        Ok(Pacer { inner })
    }

    /// Ready once turn `k` is released.
    pub(super) fn turn(&self, k: usize) -> Turn<'_> {
        Turn { inner: &self.inner, k }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
    }
}

/// See [`Pacer::turn`].
pub(super) struct Turn<'a> {
    inner: &'a Inner,
    k: usize,
}

impl Future for Turn<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.released.load(Ordering::Acquire) > self.k {
            return Poll::Ready(());
        }
        // Checked again under the lock: the thread publishes a release before it takes the lock
        // to wake that release's waiters, so a waiter either sees it here or is found there.
        let mut waiting = lock(&self.inner.waiting);
        if self.inner.released.load(Ordering::Acquire) > self.k {
            return Poll::Ready(());
        }
        waiting.insert(self.k, cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn turns_come_in_order_and_close_to_their_due_time() {
        let start = Instant::now() + Duration::from_millis(20);
        let due = move |k: usize| start + Duration::from_micros(700 * k as u64);
        let pacer = Pacer::start(40, due).unwrap();
        let mut late = Vec::new();
        for k in 0..40 {
            pacer.turn(k).await;
            let now = Instant::now();
            assert!(now >= due(k), "turn {k} came before it was due");
            late.push(now - due(k));
        }
        late.sort();
        // tokio's timers are 1.0–1.1 ms late at the median here (measured on this schedule);
        // the bound leaves room for a busy machine (CI runs tests in parallel).
        assert!(late[20] < Duration::from_micros(500), "median lateness {:?}", late[20]);
        eprintln!("median lateness {:?}, p90 {:?}", late[20], late[36]);
    }

    #[tokio::test]
    async fn every_waiter_is_released_at_its_turn_not_before() {
        let start = Instant::now();
        let due = move |k: usize| start + Duration::from_micros(100 * k as u64);
        let pacer = Arc::new(Pacer::start(64, due).unwrap());
        // Registered in reverse, some before and some after their turn came.
        let tasks: Vec<_> = (0..64)
            .rev()
            .map(|k| {
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    pacer.turn(k).await;
                    assert!(Instant::now() >= due(k), "turn {k} released early");
                })
            })
            .collect();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(10), t).await.expect("every turn is released").unwrap();
        }
    }
}
