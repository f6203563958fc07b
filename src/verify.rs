//! The verification pool: the access checks of signed requests (signature, chain, policy) are the
//! most expensive step per envelope, so they run here, on a pool of one thread per core, off the
//! channel actors' threads and the HTTP workers' event loops. A batch of envelopes is split
//! across the pool's threads, and each part's Ed25519 signatures are verified as one batch.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rayon::prelude::*;

use crate::core::access::{Access, Denied, Request, Verified};
use crate::core::policy::PolicyName;

/// Fewest requests a pool thread is given at once (smaller parts cost more in hand-offs than
/// they save).
const MIN_PART: usize = 32;

/// A signed request to check, owning its parts.
#[derive(Debug, Clone)]
pub struct Signed {
    pub payload: Bytes,
    pub signature: Bytes,
    pub creator: Bytes,
    pub timestamp: Option<i64>,
}

impl Signed {
    fn request(&self) -> Request<'_> {
        Request {
            payload: &self.payload,
            signature: &self.signature,
            creator: &self.creator,
            timestamp: self.timestamp,
        }
    }
}

/// A pool of verification threads.
pub struct Verifier {
    pool: rayon::ThreadPool,
    threads: usize,
    /// Benchmarks only: signatures are not verified (see `IdentityConfig`).
    skip_signatures: bool,
}

impl Verifier {
    /// A pool of `threads` threads (0 = one per core).
    pub fn new(threads: usize) -> std::io::Result<Self> {
        Self::build(threads, false)
    }

    /// A pool that does not verify signatures, for benchmarks that measure the OSN without its
    /// crypto (`osn dev --skip-signature-verification`). Everything else is checked.
    pub fn skipping_signatures(threads: usize) -> std::io::Result<Self> {
        tracing::warn!("signatures of broadcast envelopes are NOT verified (a benchmark setting)");
        Self::build(threads, true)
    }

    fn build(threads: usize, skip_signatures: bool) -> std::io::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("osn-verify-{i}"))
            // A panic that escapes a job would abort the process by default.
            .panic_handler(|_| tracing::error!("a verification job panicked; its requests were refused"))
            .build()
            .map_err(std::io::Error::other)?;
        let threads = pool.current_num_threads();
        Ok(Verifier { pool, threads, skip_signatures })
    }

    /// Checks every request against `policy` of `access` at the current time; answers in order.
    pub async fn check_all(
        &self,
        access: Arc<Access>,
        requests: Vec<Signed>,
        policy: PolicyName,
    ) -> Vec<Result<Verified, Denied>> {
        if requests.is_empty() {
            return Vec::new();
        }
        let now = unix_now();
        let count = requests.len();
        let skip_signatures = self.skip_signatures;
        let part = requests.len().div_ceil(self.threads).max(MIN_PART);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            // Hostile input must not take the pool (or the process) down: a panic refuses the
            // requests instead (the sender is dropped).
            let started = std::time::Instant::now();
            let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                requests
                    .par_chunks(part)
                    .flat_map_iter(|chunk| {
                        let reqs: Vec<Request<'_>> = chunk.iter().map(Signed::request).collect();
                        if skip_signatures {
                            access.check_all_unsigned(&reqs, policy, now)
                        } else {
                            access.check_all(&reqs, policy, now)
                        }
                    })
                    .collect::<Vec<_>>()
            }));
            let label = match policy {
                PolicyName::Writers => "Writers",
                PolicyName::Readers => "Readers",
                PolicyName::Admins => "Admins",
            };
            crate::metrics::metrics()
                .verify_duration
                .with_label_values(&[label])
                .observe(started.elapsed().as_secs_f64());
            match results {
                Ok(results) => {
                    let _ = tx.send(results);
                }
                Err(_) => tracing::error!(requests = count, "verifying requests panicked; they are refused"),
            }
        });
        rx.await.unwrap_or_else(|_| {
            // Refuse rather than let an unchecked envelope through.
            (0..count).map(|_| Err(Denied::Unverified("the verification pool failed".into()))).collect()
        })
    }
}

/// Seconds since the Unix epoch, by this machine's clock.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::client::transaction;
    use prost::Message as _;

    fn signed(env: &crate::proto::Envelope) -> Signed {
        let header = crate::proto::Payload::decode(env.payload.clone()).unwrap().header.unwrap();
        let creator = crate::proto::SignatureHeader::decode(header.signature_header).unwrap().creator;
        let ch = crate::proto::ChannelHeader::decode(header.channel_header).unwrap();
        Signed {
            payload: env.payload.clone(),
            signature: env.signature.clone(),
            creator,
            timestamp: ch.timestamp.map(|t| t.seconds),
        }
    }

    #[tokio::test]
    async fn a_batch_split_across_the_pool_is_answered_in_order() {
        let (_dir, signer, config) = crate::cli::client::tests::test_org();
        let access = crate::cli::client::tests::access_of(&config);
        let mut requests: Vec<Signed> = (0..150).map(|_| signed(&transaction(&signer, "ch", 300))).collect();
        // Every 7th signature belongs to another envelope.
        for i in (0..150).step_by(7) {
            requests[i].signature = requests[(i + 1) % 150].signature.clone();
        }
        let verifier = Verifier::new(2).unwrap();
        let verdicts = verifier.check_all(access, requests, PolicyName::Writers).await;
        assert_eq!(verdicts.len(), 150);
        for (i, v) in verdicts.iter().enumerate() {
            assert_eq!(v.is_ok(), i % 7 != 0, "request {i}: {v:?}");
        }
        assert!(verifier.check_all(Arc::new(Access::deny_all()), Vec::new(), PolicyName::Writers).await.is_empty());
    }

    #[tokio::test]
    async fn a_pool_skipping_signatures_still_checks_the_creator_and_the_policy() {
        let (_dir, signer, config) = crate::cli::client::tests::test_org();
        let (_other_dir, stranger) = crate::cli::client::tests::signer();
        let access = crate::cli::client::tests::access_of(&config);
        let mut forged = signed(&transaction(&signer, "ch", 300));
        forged.signature = Bytes::from_static(b"not a signature");
        let outsider = signed(&transaction(&stranger, "ch", 300));
        let requests = vec![forged.clone(), outsider];
        let skipping = Verifier::skipping_signatures(1).unwrap();
        let verdicts = skipping.check_all(access.clone(), requests, PolicyName::Writers).await;
        assert!(verdicts[0].is_ok(), "the signature is not verified: {:?}", verdicts[0]);
        assert!(verdicts[1].is_err(), "a certificate that does not chain to the organisation's CA is still refused");
        let verifying = Verifier::new(1).unwrap();
        assert!(verifying.check_all(access, vec![forged], PolicyName::Writers).await[0].is_err());
    }
}
