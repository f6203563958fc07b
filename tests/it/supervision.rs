//! A ChannelActor whose ledger write fails — an error injected into the third block — rebuilds
//! its state from the ledger and the chain goes on with no gap and no duplicate: in place once
//! the store can write again for a storage error (a full disk), through a restart by the
//! supervisor for anything else. In-process, so the storage can be made to fail; the broker is
//! real.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use osn::actors::Phase;
use osn::config::KafkaConfig;
use osn::ledger::memory::MemoryStore;
use osn::ledger::{ChannelStore, LedgerError, Store};

use crate::harness::*;

/// A store whose `fail_at`-th append (counting from 0, the genesis block) fails once, with
/// `error`.
struct FlakyStore {
    inner: MemoryStore,
    appends: Arc<AtomicU64>,
    fail_at: u64,
    error: fn() -> LedgerError,
}

struct FlakyChannel {
    inner: Arc<dyn ChannelStore>,
    appends: Arc<AtomicU64>,
    fail_at: u64,
    error: fn() -> LedgerError,
}

impl Store for FlakyStore {
    fn channel(&self, channel: &str) -> Result<Arc<dyn ChannelStore>, LedgerError> {
        Ok(Arc::new(FlakyChannel {
            inner: self.inner.channel(channel)?,
            appends: self.appends.clone(),
            // The system channel's writes are not counted: only the channel under test's.
            fail_at: if channel == SYSTEM_CHANNEL { u64::MAX } else { self.fail_at },
            error: self.error,
        }))
    }

    fn channels(&self) -> Result<Vec<String>, LedgerError> {
        self.inner.channels()
    }
}

impl ChannelStore for FlakyChannel {
    fn last(&self) -> Result<Option<(u64, Bytes)>, LedgerError> {
        self.inner.last()
    }

    fn get(&self, number: u64) -> Result<Option<Bytes>, LedgerError> {
        self.inner.get(number)
    }

    fn append(&self, number: u64, block: &[u8], state: Option<&[u8]>) -> Result<(), LedgerError> {
        if self.fail_at != u64::MAX && self.appends.fetch_add(1, Ordering::SeqCst) == self.fail_at {
            return Err((self.error)());
        }
        self.inner.append(number, block, state)
    }

    fn state(&self) -> Result<Option<Bytes>, LedgerError> {
        self.inner.state()
    }
}

/// The third block's write fails once with `error`; the chain is whole and right, after
/// `restarts` restarts of the actor.
async fn a_failed_write(error: fn() -> LedgerError, restarts: u32) {
    let channel = channel_name("flaky");
    let broker = Broker::with_topic(&channel);
    let kafka = KafkaConfig {
        brokers: broker.servers(),
        replication_factor: 1,
        connect_timeout: Duration::from_secs(5),
        fetch_wait: osn::kafka::embedded::FETCH_WAIT,
        ..Default::default()
    };
    let spec = OsnSpec { max_message_count: 5, ..OsnSpec::new(&channel, &broker) };
    let batch = osn::proto::BatchSize {
        max_message_count: spec.max_message_count,
        absolute_max_bytes: spec.absolute_max_bytes,
        preferred_max_bytes: spec.preferred_max_bytes,
    };
    let appends = Arc::new(AtomicU64::new(0));
    let store = Arc::new(FlakyStore { inner: MemoryStore::new(), appends, fail_at: 3, error });
    let channels = start_network(std::slice::from_ref(&channel), batch, &kafka, store.clone()).await;
    let ch = channels.get(&channel).unwrap().clone();

    let sent = envelopes(&channel, 30, 200);
    for env in &sent {
        broadcast_via_actor(&ch, env).await;
    }

    // 30 envelopes, 5 per block: blocks 1..=6 after the genesis block.
    wait_for("blocks 1..=6", Duration::from_secs(60), || async { (ch.ledger.height() == 7).then_some(()) }).await;
    assert_eq!(ch.status.restarts.load(Ordering::SeqCst), restarts);
    assert_eq!(ch.status.phase().0, Phase::Ready);
    let chain = ledger_chain(&ch);
    check_chain(&chain, &sent, &spec);

    let c = channels.clone();
    actix_rt::task::spawn_blocking(move || c.stop_and_join()).await.unwrap();
}

#[actix_rt::test]
async fn a_failed_storage_write_resumes_in_place_from_the_ledger() {
    a_failed_write(|| LedgerError::Storage { channel: "flaky".into(), message: "injected write failure".into() }, 0)
        .await;
}

#[actix_rt::test]
async fn a_channel_actor_failing_otherwise_is_restarted_and_resumes_from_its_ledger() {
    let corrupt = || LedgerError::Corrupt { channel: "flaky".into(), number: 3, reason: "injected refusal".into() };
    a_failed_write(corrupt, 1).await;
}

/// Records the ledger needs were dropped by the broker (the mock cluster keeps about 5 MB per
/// partition, as retention would): the restarted OSN says ERRORED with the reason instead of
/// skipping ahead or pretending to be ready.
#[actix_rt::test]
async fn records_lost_to_retention_mark_the_channel_errored() {
    let channel = crate::harness::channel_name("retention");
    let broker = Broker::with_topic(&channel);
    let mut osn = Osn::start(OsnSpec { max_message_count: 1, ..OsnSpec::new(&channel, &broker) }).await;
    broadcast_all(&osn.broadcast_url(), &envelopes(&channel, 2, 200), 1).await;
    osn.wait_for_transactions(2, Duration::from_secs(30)).await;
    osn.kill();

    // 12 MB more while it is down: the records right after its last block are dropped.
    let producer = osn::kafka::producer(&KafkaConfig { brokers: broker.servers(), ..Default::default() }).unwrap();
    let filler = vec![0u8; 100 * 1024];
    let sends: Vec<_> = (0..120).map(|_| osn::kafka::produce(&producer, &channel, &filler)).collect();
    for s in futures_util::future::join_all(sends).await {
        s.expect("produce filler");
    }

    osn.restart_listening().await;
    let info_url = format!("{}/v1/channels/{channel}", osn.url);
    let info = crate::harness::wait_for("the channel to report the lost records", Duration::from_secs(30), || async {
        let info: serde_json::Value = client().get(&info_url).send().await.ok()?.json().await.ok()?;
        (info["status"] == "ERRORED").then_some(info)
    })
    .await;
    assert!(info["statusReason"].as_str().unwrap().contains("out of range"), "{info}");
    // Loudly: in health and metrics too, and it stays so (no probe clears it).
    let mut resp = client().get(format!("{}/healthz", osn.url)).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let health: serde_json::Value = resp.json().await.unwrap();
    let failed = health["failed_checks"].as_array().unwrap();
    assert!(
        failed.iter().any(|c| c["component"] == format!("{channel}/0")
            && c["reason"].as_str().unwrap().contains("out of range")),
        "{health}"
    );
    let mut resp = client().get(format!("{}/metrics", osn.url)).send().await.unwrap();
    let text = String::from_utf8(resp.body().limit(16 << 20).await.unwrap().to_vec()).unwrap();
    let counted = format!("osn_kafka_errors_total{{channel=\"{channel}\",operation=\"offset_out_of_range\"}}");
    assert!(text.lines().any(|l| l.starts_with(&counted)), "{counted} in /metrics");
    assert!(text.contains(&format!("osn_channel_status{{channel=\"{channel}\"}} 2")), "ERRORED in /metrics");
}

/// A panic in a channel's actor (`OSN_PANIC_AT`, `src/faults.rs`), here between the third block's
/// write and the ledger tip's update, must not leave a dead channel looking alive: the channel is
/// marked ERRORED, its ledger read again from the store, a new actor started, counted as a restart
/// and logged with the panic's message; and the chain goes on with every acknowledged envelope
/// once, block 3 neither lost nor written twice.
#[actix_rt::test]
async fn a_panicking_channel_actor_is_restarted_from_its_ledger_and_never_left_looking_ready() {
    let channel = channel_name("panic");
    let broker = Broker::with_topic(&channel);
    let spec = OsnSpec {
        max_message_count: 5,
        // The fourth block written: the system channel's block 1 (the channel's creation), then
        // the channel's blocks 1, 2 and 3.
        env: vec![("OSN_PANIC_AT", "ledger.after-write:4".to_owned())],
        ..OsnSpec::new(&channel, &broker)
    };
    let osn = Osn::start(spec.clone()).await;

    // Sequentially, each until acknowledged: while the actor is being replaced a broadcast is
    // refused with 503 and sent again, as a client would.
    let sent = envelopes(&channel, 30, 200);
    for env in &sent {
        wait_for("the envelope to be acknowledged", Duration::from_secs(30), || async {
            let (code, resp) = broadcast(&osn.broadcast_url(), env).await;
            assert!(code == 200 || code == 503, "answered {code}: {resp:?}");
            (code == 200).then_some(())
        })
        .await;
    }

    let chain = osn.wait_for_transactions(sent.len(), Duration::from_secs(60)).await;
    check_chain(&chain, &sent, &spec);
    let info_url = format!("{}/v1/channels/{channel}", osn.url);
    let info = wait_for("the channel READY again", Duration::from_secs(30), || async {
        let info: serde_json::Value = client().get(&info_url).send().await.ok()?.json().await.ok()?;
        (info["status"] == "READY").then_some(info)
    })
    .await;
    assert_eq!(info["restarts"], 1, "{info}");

    let log = osn.log();
    assert!(log.contains("OSN_PANIC_AT: fault point ledger.after-write reached"), "{}", osn.log_tail());
    assert!(log.contains("the channel's actor panicked; restarting it from its ledger"), "{}", osn.log_tail());
    let mut resp = client().get(format!("{}/metrics", osn.url)).send().await.unwrap();
    let text = String::from_utf8(resp.body().limit(16 << 20).await.unwrap().to_vec()).unwrap();
    assert!(text.contains(&format!("osn_channel_restarts{{channel=\"{channel}\"}} 1")), "one restart in /metrics");
    assert!(text.contains(&format!("osn_channel_status{{channel=\"{channel}\"}} 1")), "READY in /metrics");
}
