//! The crash suite: three `osn start` processes on one broker take load through all three while
//! one of them at a time dies and is restarted: at each crash point of the write path in turn
//! (`OSN_CRASH_AT`, `src/faults.rs`) in the first cycles and one cycle in five after them, by
//! SIGKILL from outside at a random moment in the others. On the mock cluster, one cycle in seven
//! (the fourth, the eleventh, …) freezes one instead (SIGSTOP, then SIGCONT after 1-2 s, with its
//! requests in flight; not on tansu, which a client returning from a freeze can break: see
//! RELIABILITY.md's known limits); and on tansu, which keeps the whole partition, one in seven
//! (the seventh, …) replaces one by a node joining late, on an empty ledger.
//! The last cycle kills all three at once. Afterwards every envelope acknowledged with SUCCESS
//! is in the chain exactly once, nothing is in it twice, and the three chains are identical
//! (headers, data, ORDERER metadata) and verify block by block (numbers, links, data hashes,
//! signatures).
//!
//! Ten cycles per broker by default; `OSN_SOAK=1` runs a hundred, `OSN_SOAK=N` (N > 1) runs N. `OSN_CRASH_SEED` replays a run (every
//! run prints its seed). Each run prints a `reliability:` line with its figures (RELIABILITY.md).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use osn::proto::{Block, BroadcastResponse, Envelope};
use prost::Message as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use osn::cli::client::transaction;

use crate::harness::*;

/// Requests in flight per OSN.
const WORKERS_PER_OSN: usize = 3;
/// No run sends more than this, whatever happens (the load is otherwise stopped by the test).
const MAX_ENVELOPES: u64 = 1_000_000;
/// How long a worker waits for an answer: longer than any freeze the suite makes, so that a
/// request to a frozen OSN is answered (or not) by the OSN, not cut by the client.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client waits before trying again after a 503, or after its deliver stream ended:
/// the behaviour of a polite client, not a synchronisation of the test.
const CLIENT_BACKOFF: Duration = Duration::from_millis(20);

/// The load: workers broadcasting one envelope per request to their OSN, and what came of it.
#[derive(Default)]
struct Load {
    /// Each OSN's broadcast URL; empty while it is down.
    urls: Vec<tokio::sync::watch::Sender<String>>,
    acked: Mutex<Vec<Envelope>>,
    /// Answered 503 (Kafka unavailable, backlog full, the channel restarting): not acknowledged,
    /// though it may be ordered (Kafka took the record but its acknowledgement never came).
    refused: AtomicU64,
    /// The infos of the last 503s.
    refusals: Mutex<std::collections::VecDeque<String>>,
    /// No answer: refused connections, and requests cut by a kill (these may or may not be ordered).
    unanswered: AtomicU64,
    /// Anything else (a bug): answered with another status, or 200 without SUCCESS.
    unexpected: Mutex<Vec<String>>,
    sent: AtomicU64,
    stop: AtomicBool,
    /// The shortest time between two requests of one worker (none: back to back).
    pace: Option<Duration>,
    /// Tells the subscribers to stop (they outlive the load until they have every block).
    stop_subscribers: AtomicBool,
    /// Deliver subscriptions opened again after their OSN went away or ended them.
    resubscriptions: AtomicU64,
}

impl Load {
    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn set_url(&self, osn: usize, url: String) {
        self.urls[osn].send_replace(url);
    }

    /// OSN `osn`'s broadcast URL once it is up, woken when the test sets it; None once `stop`
    /// is set (checked every second).
    async fn url_when_up(&self, osn: usize, stop: &AtomicBool) -> Option<String> {
        let mut urls = self.urls[osn].subscribe();
        while !stop.load(Ordering::SeqCst) {
            let url = urls.borrow_and_update().clone();
            if !url.is_empty() {
                return Some(url);
            }
            let _ = actix_rt::time::timeout(Duration::from_secs(1), urls.changed()).await;
        }
        None
    }

    /// After a request to `url` went unanswered (its OSN killed, the test about to say so):
    /// waits until the test changes OSN `osn`'s URL, for a second at most.
    async fn until_url_changes(&self, osn: usize, url: &str) {
        let mut urls = self.urls[osn].subscribe();
        let _ = actix_rt::time::timeout(Duration::from_secs(1), urls.wait_for(|now| now != url)).await;
    }
}

async fn worker(load: Arc<Load>, osn: usize, channel: String) {
    let client = awc::Client::builder().timeout(CLIENT_TIMEOUT).finish();
    let mut pace = load.pace.map(|every| {
        let mut pace = tokio::time::interval(every);
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        pace
    });
    while load.sent.load(Ordering::SeqCst) < MAX_ENVELOPES {
        let Some(url) = load.url_when_up(osn, &load.stop).await else { return };
        if let Some(pace) = pace.as_mut() {
            pace.tick().await;
        }
        let env = transaction(&crypto().client, &channel, 300);
        load.sent.fetch_add(1, Ordering::SeqCst);
        let request = client
            .post(&url)
            .insert_header(("Content-Type", "application/x-protobuf"))
            .insert_header(("Accept", "application/x-protobuf"))
            .send_body(env.encode_to_vec());
        let answer = match request.await {
            Ok(mut resp) => resp.body().await.ok().map(|body| (resp.status().as_u16(), body)),
            Err(_) => None,
        };
        match answer {
            None => {
                load.unanswered.fetch_add(1, Ordering::SeqCst);
                // A refused connection fails at once: do not spin while the URL is stale.
                load.until_url_changes(osn, &url).await;
            }
            Some((200, body)) if BroadcastResponse::decode(body.clone()).is_ok_and(|r| r.status == 200) => {
                load.acked.lock().unwrap().push(env);
            }
            Some((503, body)) => {
                load.refused.fetch_add(1, Ordering::SeqCst);
                let info = BroadcastResponse::decode(body).map(|r| r.info).unwrap_or_else(|e| e.to_string());
                {
                    let mut refusals = load.refusals.lock().unwrap();
                    refusals.push_back(info);
                    if refusals.len() > 100 {
                        refusals.pop_front();
                    }
                }
                actix_rt::time::sleep(CLIENT_BACKOFF).await;
            }
            Some((code, body)) => load.unexpected.lock().unwrap().push(format!("{code}: {body:?}")),
        }
    }
}

/// A deliver websocket subscriber of OSN `osn` (STRICT, from block 0 on): follows the chain and,
/// whenever its OSN goes away or ends the stream, subscribes again from the next block it lacks. Every
/// block must come in order, numbered right after the one before (else `unexpected`).
async fn subscriber(load: Arc<Load>, osn: usize, channel: String, received: Arc<Mutex<Vec<Block>>>) {
    use futures_util::{SinkExt as _, StreamExt as _};
    use osn::proto::orderer::deliver_response::Type;
    let mut first = true;
    while let Some(broadcast_url) = load.url_when_up(osn, &load.stop_subscribers).await {
        let url = broadcast_url.replace("http://", "ws://").replace("/broadcast", "/deliver");
        let Ok((_, mut ws)) = awc::Client::new().ws(url).max_frame_size(64 << 20).connect().await else {
            load.until_url_changes(osn, &broadcast_url).await;
            continue;
        };
        if !std::mem::take(&mut first) {
            load.resubscriptions.fetch_add(1, Ordering::SeqCst);
        }
        let next = received.lock().unwrap().len() as u64;
        let seek = osn::proto::SeekInfo {
            start: Some(osn::core::seek::specified(next)),
            stop: Some(osn::core::seek::specified(u64::MAX)),
            ..Default::default()
        };
        let request = osn::cli::client::seek_request(&crypto().client, &channel, &seek);
        if ws.send(awc::ws::Message::Binary(request.encode_to_vec().into())).await.is_err() {
            continue;
        }
        loop {
            if load.stop_subscribers.load(Ordering::SeqCst) {
                return;
            }
            let frame = match actix_rt::time::timeout(Duration::from_millis(200), ws.next()).await {
                Err(_) => continue, // Nothing new yet.
                Ok(frame) => frame,
            };
            let response = match frame {
                Some(Ok(awc::ws::Frame::Binary(b))) => osn::proto::DeliverResponse::decode(b).ok(),
                Some(Ok(awc::ws::Frame::Ping(_) | awc::ws::Frame::Pong(_))) => continue,
                _ => None, // Closed, cut by a kill, or ended: subscribe again.
            };
            match response.and_then(|r| r.r#type) {
                Some(Type::Block(block)) => {
                    let mut received = received.lock().unwrap();
                    let number = block.header.as_ref().map_or(u64::MAX, |h| h.number);
                    if number != received.len() as u64 {
                        let want = received.len();
                        load.unexpected
                            .lock()
                            .unwrap()
                            .push(format!("OSN {osn}'s subscriber got block {number}, not {want}"));
                        return;
                    }
                    received.push(block);
                }
                _ => break,
            }
        }
        // While the channel is not READY, a STRICT subscription ends at once with 503.
        actix_rt::time::sleep(CLIENT_BACKOFF).await;
    }
}

/// Waits (60 s at most) until `more` envelopes beyond those refused now are refused.
async fn until_refused(load: &Load, more: u64) {
    let target = load.refused.load(Ordering::SeqCst) + more;
    wait_for(&format!("{target} envelopes refused"), Duration::from_secs(60), || async move {
        (load.refused.load(Ordering::SeqCst) >= target).then_some(())
    })
    .await
}

/// While the broker is down: 503s naming Kafka, and nothing acknowledged.
async fn refused_while_down(load: &Load) {
    until_refused(load, 20).await;
    let acked = load.acked();
    until_refused(load, 50).await;
    assert_eq!(load.acked(), acked, "envelopes acknowledged while the broker is down");
    let refusals = load.refusals.lock().unwrap().clone();
    assert!(refusals.iter().all(|info| info.contains("Kafka")), "{refusals:?}");
}

/// Waits (60 s at most) until `more` envelopes beyond those acknowledged now are acknowledged.
async fn until_acked(load: &Load, more: usize) {
    let target = load.acked() + more;
    wait_for(&format!("{target} envelopes acknowledged"), Duration::from_secs(60), || async move {
        (load.acked() >= target).then_some(())
    })
    .await
}

/// Once the load has stopped: waits until the three OSNs have the same height, unchanged for
/// half a second, holding at least `acked` transactions; their chains.
async fn settled_chains(osns: &[Osn], acked: usize) -> Vec<Vec<Block>> {
    osns[0].wait_for_transactions(acked, Duration::from_secs(120)).await;
    let mut last = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut heights = Vec::new();
        for osn in osns {
            heights.push(osn.height().await);
        }
        if heights.iter().all(|h| *h == heights[0]) && heights == last {
            break;
        }
        assert!(Instant::now() < deadline, "heights do not settle: {heights:?}");
        last = heights;
        actix_rt::time::sleep(Duration::from_millis(500)).await;
    }
    let mut chains = Vec::new();
    for osn in osns {
        chains.push(osn.chain().await);
    }
    chains
}

/// What a run came to.
#[derive(Debug, serde::Serialize)]
struct Figures {
    broker: &'static str,
    seed: u64,
    cycles: usize,
    crash_points: usize,
    sigkills: usize,
    /// SIGSTOPs (each resumed by SIGCONT).
    freezes: usize,
    /// OSNs started again on an empty ledger.
    rejoins: usize,
    sent: u64,
    acknowledged: usize,
    refused_503: u64,
    unanswered: u64,
    ordered: usize,
    lost: usize,
    duplicated: usize,
    blocks: usize,
    /// Blocks received by the three deliver subscribers (each has the whole chain).
    delivered: usize,
    resubscriptions: u64,
    /// "panicked" in the OSNs' logs, across all their restarts.
    panics: usize,
    seconds: u64,
}

/// The faults of a run, by kind.
#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    crash_points: usize,
    sigkills: usize,
    freezes: usize,
    rejoins: usize,
}

/// Ten; with `OSN_SOAK=1`, a hundred; with `OSN_SOAK=N` (N > 1), N.
fn cycles() -> usize {
    match std::env::var("OSN_SOAK").ok().and_then(|n| n.parse::<usize>().ok()) {
        None | Some(0) => 10,
        Some(1) => 100,
        Some(n) => n,
    }
}

fn seed() -> u64 {
    std::env::var("OSN_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random)
}

/// Three OSNs under load.
struct Run {
    broker: &'static str,
    started: Instant,
    osns: [Osn; 3],
    load: Arc<Load>,
    workers: Vec<actix_rt::task::JoinHandle<()>>,
    /// What each OSN's deliver subscriber received.
    delivered: Vec<Arc<Mutex<Vec<Block>>>>,
    subscribers: Vec<actix_rt::task::JoinHandle<()>>,
}

impl Run {
    /// Three OSNs of `channel` on the brokers at `servers`, taking load through all three once
    /// 100 envelopes are acknowledged.
    async fn start(broker: &'static str, servers: String, channel: String, pace: Option<Duration>) -> Run {
        Self::start_with(broker, servers, channel, pace, |_, spec| spec).await
    }

    /// [`Run::start`] with each OSN's spec changed by `adapt` (given the OSN's number).
    async fn start_with(
        broker: &'static str,
        servers: String,
        channel: String,
        pace: Option<Duration>,
        adapt: impl Fn(usize, OsnSpec) -> OsnSpec,
    ) -> Run {
        let spec = |n| {
            let spec = OsnSpec {
                osn_identity: n,
                max_message_count: 20,
                kafka_extra: FAST_KAFKA.into(),
                ..OsnSpec::on(&channel, servers.clone())
            };
            adapt(n, spec)
        };
        let osns = [Osn::start(spec(0)).await, Osn::start(spec(1)).await, Osn::start(spec(2)).await];
        let load = Arc::new(Load {
            urls: osns.iter().map(|o| tokio::sync::watch::Sender::new(o.broadcast_url())).collect(),
            pace,
            ..Load::default()
        });
        let mut workers = Vec::new();
        let mut delivered = Vec::new();
        let mut subscribers = Vec::new();
        for osn in 0..osns.len() {
            let received = Arc::new(Mutex::new(Vec::new()));
            subscribers.push(actix_rt::spawn(subscriber(load.clone(), osn, channel.clone(), received.clone())));
            delivered.push(received);
            for _ in 0..WORKERS_PER_OSN {
                workers.push(actix_rt::spawn(worker(load.clone(), osn, channel.clone())));
            }
        }
        until_acked(&load, 100).await;
        Run { broker, started: Instant::now(), osns, load, workers, delivered, subscribers }
    }

    /// Takes OSN `n` out of the load.
    fn down(&self, n: usize) {
        self.load.set_url(n, String::new());
    }

    /// Puts OSN `n` back into the load.
    fn up(&self, n: usize) {
        self.load.set_url(n, self.osns[n].broadcast_url());
    }

    /// Stops the load once 100 more envelopes are acknowledged, checks the three chains, and
    /// tells what the run came to (`seed`, the faults: for the report).
    async fn finish(mut self, seed: u64, faults: Faults) -> Figures {
        until_acked(&self.load, 100).await;
        self.load.stop.store(true, Ordering::SeqCst);
        for w in std::mem::take(&mut self.workers) {
            w.await.unwrap();
        }
        let load = &self.load;
        let unexpected = load.unexpected.lock().unwrap().clone();
        assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
        let acked = load.acked.lock().unwrap().clone();
        let chains = settled_chains(&self.osns, acked.len()).await;
        assert_identical(&chains);
        // Each OSN's subscriber, through every kill and restart, got every block once, in order.
        let height = chains[0].len();
        wait_for("every subscriber to have every block", Duration::from_secs(60), || {
            let delivered = &self.delivered;
            async move { delivered.iter().all(|d| d.lock().unwrap().len() >= height).then_some(()) }
        })
        .await;
        load.stop_subscribers.store(true, Ordering::SeqCst);
        for s in std::mem::take(&mut self.subscribers) {
            s.await.unwrap();
        }
        let unexpected = load.unexpected.lock().unwrap().clone();
        assert!(unexpected.is_empty(), "{unexpected:?}");
        for (n, delivered) in self.delivered.iter().enumerate() {
            let delivered = delivered.lock().unwrap();
            let views: Vec<_> = delivered.iter().map(consensus_view).collect();
            let chain: Vec<_> = chains[0].iter().map(consensus_view).collect();
            assert!(views == chain, "OSN {n}'s subscriber received blocks other than the chain's");
        }
        let mut counts: HashMap<Bytes, usize> = HashMap::new();
        for block in chains[0].iter().skip(1) {
            for d in &block.data.as_ref().unwrap().data {
                *counts.entry(d.clone()).or_default() += 1;
            }
        }
        let lost = acked.iter().filter(|e| !counts.contains_key(&Bytes::from(e.encode_to_vec()))).count();
        let figures = Figures {
            broker: self.broker,
            seed,
            cycles: faults.crash_points + faults.sigkills + faults.freezes + faults.rejoins,
            crash_points: faults.crash_points,
            sigkills: faults.sigkills,
            freezes: faults.freezes,
            rejoins: faults.rejoins,
            sent: load.sent.load(Ordering::SeqCst),
            acknowledged: acked.len(),
            refused_503: load.refused.load(Ordering::SeqCst),
            unanswered: load.unanswered.load(Ordering::SeqCst),
            ordered: counts.values().sum(),
            lost,
            duplicated: counts.values().filter(|n| **n > 1).count(),
            blocks: chains[0].len(),
            delivered: self.delivered.iter().map(|d| d.lock().unwrap().len()).sum(),
            resubscriptions: load.resubscriptions.load(Ordering::SeqCst),
            panics: self.osns.iter().map(|o| o.log().matches("panicked").count()).sum(),
            seconds: self.started.elapsed().as_secs(),
        };
        eprintln!("reliability: {}", serde_json::to_string(&figures).unwrap());
        assert_eq!((figures.lost, figures.duplicated, figures.panics), (0, 0, 0), "{figures:?}");
        assert_all_once(&chains[0], &acked);
        figures
    }
}

impl Drop for Run {
    /// On a failure, what the OSNs were saying (the whole logs go to the temp dir).
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (n, osn) in self.osns.iter().enumerate() {
                let path = std::env::temp_dir().join(format!("osn-crash-{}-{n}.log", std::process::id()));
                let _ = std::fs::write(&path, osn.log());
                eprintln!("--- OSN {n} (whole log: {}):\n{}", path.display(), osn.log_tail());
            }
        }
    }
}

/// The crash cycles on the brokers at `servers`, on `channel`; `whole_partition` if the broker
/// keeps every record (tansu), so that a node can join late.
async fn crash_cycles(broker: &'static str, servers: String, channel: String, whole_partition: bool) -> Figures {
    let (cycles, seed) = (cycles(), seed());
    eprintln!("crash suite on {broker}: {cycles} cycles, OSN_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut run = Run::start(broker, servers, channel, None).await;

    // Cycles at the write path's crash points, the others SIGKILLs from outside.
    // (The system channel's and the config block's points have tests of their own.)
    let points = ["channel.commit-queued", "ledger.before-write", "ledger.after-write", "channel.after-commit"];
    assert!(points.iter().all(|p| osn::faults::POINTS.contains(p)));
    let mut faults = Faults::default();
    for cycle in 0..cycles {
        let victim = rng.random_range(0..run.osns.len());
        if cycle + 1 == cycles && cycles >= 5 {
            // The last cycle takes all three down at once, as a power cut of the whole service would.
            until_acked(&run.load, rng.random_range(1..=300)).await;
            eprintln!("cycle {cycle}: all three OSNs SIGKILLed at once");
            for n in 0..run.osns.len() {
                run.down(n);
                run.osns[n].kill();
            }
            for n in 0..run.osns.len() {
                run.osns[n].restart().await;
                run.up(n);
            }
            faults.sigkills += 1;
            continue;
        }
        if cycle % 7 == 3 && !whole_partition {
            // Frozen with its requests in flight, and its clients still sending: they wait. For
            // 1-2 s: at full load, 2 s of the others' records fill half of the mock cluster's
            // 5 MB partition, and the frozen OSN must still find what it missed.
            until_acked(&run.load, rng.random_range(1..=300)).await;
            let pause = Duration::from_millis(rng.random_range(1_000..=2_000));
            eprintln!("cycle {cycle}: OSN {victim} frozen (SIGSTOP) for {pause:?}");
            run.osns[victim].freeze(true);
            // The fault itself: the length of the freeze.
            actix_rt::time::sleep(pause).await;
            run.osns[victim].freeze(false);
            faults.freezes += 1;
            continue;
        }
        if cycle % 7 == 6 && whole_partition {
            until_acked(&run.load, rng.random_range(1..=300)).await;
            eprintln!("cycle {cycle}: OSN {victim} replaced by a node joining late (empty ledger)");
            run.down(victim);
            let started = Instant::now();
            run.osns[victim].rejoin_empty().await;
            let target = run.osns[(victim + 1) % run.osns.len()].height().await;
            wait_for("the late node to rebuild the chain", Duration::from_secs(300), || {
                let osn = &run.osns[victim];
                async move { (osn.height().await >= target).then_some(()) }
            })
            .await;
            eprintln!("cycle {cycle}: the late node rebuilt {target} blocks in {:?}", started.elapsed());
            run.up(victim);
            faults.rejoins += 1;
            continue;
        }
        // Each crash point in turn first, then one cycle in five.
        let point = match cycle {
            c if c < points.len() => Some(points[c]),
            c if c % 5 == 0 => Some(points[(c / 5) % points.len()]),
            _ => None,
        };
        match point {
            Some(point) => {
                // Dies on its n-th pass, while the other two take the load.
                run.down(victim);
                let crash = format!("{point}:{}", rng.random_range(2..=8));
                eprintln!("cycle {cycle}: OSN {victim} crashes at {crash}");
                run.osns[victim].crash_at(&crash).await;
                faults.crash_points += 1;
            }
            None => {
                // Dies with requests of its own in flight.
                let after = rng.random_range(1..=300);
                until_acked(&run.load, after).await;
                eprintln!("cycle {cycle}: OSN {victim} SIGKILLed after {after} more acknowledgements");
                run.down(victim);
                run.osns[victim].kill();
                faults.sigkills += 1;
            }
        }
        until_acked(&run.load, rng.random_range(0..=200)).await;
        run.osns[victim].restart().await;
        run.up(victim);
    }
    run.finish(seed, faults).await
}

#[actix_rt::test]
async fn three_osns_killed_one_at_a_time_under_load_lose_and_duplicate_nothing_on_the_mock_cluster() {
    let channel = channel_name("crash");
    let broker = Broker::with_topic(&channel);
    crash_cycles("mock-cluster", broker.servers(), channel, false).await;
}

#[actix_rt::test]
async fn three_osns_killed_one_at_a_time_under_load_lose_and_duplicate_nothing_on_tansu() {
    let tansu = Tansu::start();
    crash_cycles("tansu", tansu.servers(), channel_name("crash"), true).await;
}

#[actix_rt::test]
async fn the_broker_going_down_twice_under_load_is_answered_503_and_the_osns_recover_by_themselves() {
    let channel = channel_name("outage");
    let broker = Broker::with_topic(&channel);
    // At most 300 envelopes a second (about 0.3 MB/s): an OSN that needs a few seconds more to
    // recover must still find its records in the mock cluster's 5 MB of partition.
    let run = Run::start("mock-cluster", broker.servers(), channel, Some(Duration::from_millis(30))).await;
    for _ in 0..2 {
        until_acked(&run.load, 200).await;
        broker.kafka.cluster().broker_down(1).unwrap();
        let down = Instant::now();
        refused_while_down(&run.load).await;
        let mut heights = Vec::new();
        for osn in &run.osns {
            heights.push(osn.height().await);
        }
        broker.kafka.cluster().broker_up(1).unwrap();
        let up = Instant::now();
        // No OSN is restarted: each channel recovers by itself, takes load again and cuts
        // blocks again, well before librdkafka would give up a fetch lost in the outage (60 s;
        // 3-9 s measured, the deadline leaves room for a loaded CI machine).
        until_acked(&run.load, 300).await;
        wait_for("every OSN cutting blocks again", Duration::from_secs(30), || {
            let (osns, heights) = (&run.osns, &heights);
            async move {
                for (osn, before) in osns.iter().zip(heights) {
                    if osn.height().await < before + 3 {
                        return None;
                    }
                }
                Some(())
            }
        })
        .await;
        eprintln!("broker down for {:?}, every OSN cutting again {:?} after it is back", up - down, up.elapsed());
    }
    run.finish(0, Faults::default()).await;
}

/// tansu 0.6.0 does not survive its own restart for producers that outlive it: the first
/// idempotent produce of an existing producer panics in its sqlite storage ("more or less than
/// one row", `producer_select_for_update`), and its storage fails every request from then on,
/// for every client. So here the OSNs are killed before the broker restarts and started after it
/// (new producers); their recovery by themselves from a broker that goes away and comes back is
/// the mock cluster's test above.
#[actix_rt::test]
async fn tansu_killed_under_load_is_answered_503_and_nothing_acknowledged_is_lost() {
    let mut tansu = Tansu::start();
    let mut run = Run::start("tansu", tansu.servers(), channel_name("tansu"), None).await;
    until_acked(&run.load, 200).await;
    tansu.kill();
    refused_while_down(&run.load).await;
    for n in 0..run.osns.len() {
        run.down(n);
        run.osns[n].kill();
    }
    tansu.restart();
    for n in 0..run.osns.len() {
        run.osns[n].restart().await;
        run.up(n);
    }
    until_acked(&run.load, 300).await;
    run.finish(0, Faults::default()).await;
}

#[actix_rt::test]
async fn an_osn_killed_between_creating_a_channel_and_recording_it_has_the_channel_after_its_restart() {
    use osn::cli::channel::ChannelCreate;

    let broker = Broker::start();
    let spec = |n| OsnSpec { osn_identity: n, ..OsnSpec::system_only(&broker) };
    let mut osns = [Osn::start(spec(0)).await, Osn::start(spec(1)).await];
    // OSN 1 dies once the new channel's ledger exists, before the system channel's block that
    // records the creation is written.
    osns[1].spawn_to_crash("system.after-create");
    let create =
        ChannelCreate { channel: "crashed".into(), organizations: vec!["Org1MSP".into()], ..Default::default() };
    let (code, body) = create_channel(&osns[0], &create, &crypto().admin).await;
    assert_eq!(code, 201, "{body}");
    osns[1].wait_for_crash("system.after-create").await;

    osns[1].restart().await;
    let sent = envelopes("crashed", 10, 200);
    for osn in &osns {
        wait_ready(osn, "crashed").await;
    }
    broadcast_all(&format!("{}/v1/channels/crashed/broadcast", osns[1].url), &sent, 4).await;
    let channel_chains = chains_holding(&osns, "crashed", sent.len()).await;
    let mut system_chains = Vec::new();
    for osn in &osns {
        system_chains.push(osn.chain_of("osn-system").await);
    }
    assert_identical(&channel_chains);
    assert_identical(&system_chains);
    assert_all_once(&channel_chains[0], &sent);
}

/// A config block is committed, and the OSN dies before the new configuration is in force in
/// memory: restarted, it reads it from the ledger and cuts the next blocks with it, as the other
/// two do. Envelopes enqueued under the old configuration and re-submitted are ordered once.
#[actix_rt::test]
async fn an_osn_killed_right_after_writing_a_config_block_restarts_under_that_configuration() {
    let channel = channel_name("config");
    let broker = Broker::with_topic(&channel);
    let mut run = Run::start("mock-cluster", broker.servers(), channel.clone(), None).await;
    run.down(2);
    run.osns[2].spawn_to_crash("ledger.after-config-write");
    until_acked(&run.load, 200).await;
    let seven = |c: &mut osn::proto::common::Config| with_max_message_count(c, 7);
    let (code, body) = change_config(&run.osns[0], &channel, seven, &crypto().orderer_admin, &[]).await;
    assert_eq!(code, 200, "{body}");
    run.osns[2].wait_for_crash("ledger.after-config-write").await;
    run.osns[2].restart().await;
    run.up(2);
    until_acked(&run.load, 300).await;

    let mut resp = client()
        .get(format!("{}/v1/channels/{channel}/config", run.osns[2].url))
        .insert_header(("Authorization", osn::cli::client::read_authorization(&crypto().client, &channel)))
        .send()
        .await
        .unwrap();
    let config: serde_json::Value = resp.json().await.unwrap();
    let batch = &config["channel_group"]["groups"]["Orderer"]["values"]["BatchSize"]["value"];
    assert_eq!(batch["max_message_count"].as_u64(), Some(7), "{config}");
    let chain = run.osns[2].chain().await;
    let config_blocks: Vec<usize> =
        (1..chain.len()).filter(|&n| osn::core::block::last_config(&chain[n]) == Some(n as u64)).collect();
    assert_eq!(config_blocks.len(), 1, "one config block: {config_blocks:?}");
    let sizes: Vec<usize> = chain.iter().map(|b| b.data.as_ref().unwrap().data.len()).collect();
    let k = config_blocks[0];
    assert!(sizes[1..k].iter().any(|&n| n > 7), "20 per block before block {k}: {sizes:?}");
    assert!(sizes[k + 1..].iter().all(|&n| n <= 7), "7 per block after block {k}: {sizes:?}");
    assert!(sizes[k + 1..].iter().filter(|&&n| n == 7).count() > 10, "full blocks of 7: {sizes:?}");
    // The chains are identical, so the other two cut the same blocks under the same configuration.
    run.finish(0, Faults { crash_points: 1, ..Faults::default() }).await;
}

/// A channel's info, as `GET /v1/channels/{channel}` answers it.
async fn channel_info(osn: &Osn) -> serde_json::Value {
    let url = format!("{}/v1/channels/{}", osn.url, osn.spec.channel);
    let mut resp = client().get(url).send().await.expect("channel info");
    resp.json().await.unwrap_or_default()
}

/// `/healthz` or `/readyz`: status and body.
async fn health(osn: &Osn, route: &str) -> (u16, serde_json::Value) {
    let mut resp = client().get(format!("{}/{route}", osn.operations_url)).send().await.expect(route);
    (resp.status().as_u16(), resp.json().await.unwrap_or_default())
}

/// Every record of `channel`'s partition, by type: (CONNECT, others).
async fn partition_records(servers: String, channel: &str) -> (usize, usize) {
    use osn::proto::{kafka_message::Type, KafkaMessage};
    let kafka = osn::config::KafkaConfig { brokers: servers, ..Default::default() };
    let end = {
        let (kafka, channel) = (kafka.clone(), channel.to_owned());
        actix_rt::task::spawn_blocking(move || osn::kafka::high_watermark(&kafka, &channel, Duration::from_secs(10)))
            .await
            .unwrap()
            .unwrap()
    };
    let mut records = Box::pin(osn::kafka::consume_from(&kafka, channel, 0).unwrap());
    let (mut connects, mut others) = (0, 0);
    for _ in 0..end {
        let record = tokio::time::timeout(Duration::from_secs(30), futures_util::StreamExt::next(&mut records))
            .await
            .expect("the partition's records within 30 s")
            .unwrap()
            .unwrap();
        match KafkaMessage::decode(record.value).map(|m| m.r#type) {
            Ok(Some(Type::Connect(_))) => connects += 1,
            _ => others += 1,
        }
    }
    (connects, others)
}

/// Issue 18: OSN 0 of three has its ledger on a 6 MB tmpfs, which the load fills. Its channel
/// stops committing and says why: ERRORED with the storage error (not "connecting to Kafka"),
/// broadcasts to it answered 503 naming the ledger, `/healthz` and `/readyz` 503 with a `ledger`
/// component, `osn_ledger_storage_failed` 1. It neither restarts nor writes to Kafka while it
/// waits (the partition holds one CONNECT per OSN at the end), and the other two go on ordering.
/// With room again (`mount -o remount,size=…`) it resumes by itself, without a restart: nothing
/// acknowledged is lost or duplicated, and its chain is the others'. (It used to restart every
/// 8 s, writing a CONNECT each time, saying "connecting to Kafka", until the process restarted.)
/// Skipped, saying so, where the machine forbids mounts.
#[actix_rt::test]
async fn a_full_disk_is_reported_as_such_and_the_osn_resumes_by_itself_once_there_is_room() {
    let Some(disk) = Tmpfs::mount("6m") else { return };
    // tansu keeps the whole partition (the mock cluster keeps 5 MB): the full OSN consumes
    // again, after the disk has room, what the others ordered meanwhile.
    let tansu = Tansu::start();
    let channel = channel_name("full-disk");
    let ledger = disk.path().join("ledger");
    let run = Run::start_with("tansu", tansu.servers(), channel.clone(), None, |n, spec| {
        if n == 0 {
            OsnSpec { ledger: Some(ledger.clone()), ..spec }
        } else {
            spec
        }
    })
    .await;
    let full = &run.osns[0];
    let info = wait_for("OSN 0's channel errored by its full disk", Duration::from_secs(120), || async {
        let info = channel_info(full).await;
        (info["status"] == "ERRORED").then_some(info)
    })
    .await;
    let (failed_at, acked_before) = (Instant::now(), run.load.acked());
    let reason = info["statusReason"].as_str().unwrap().to_owned();
    assert!(reason.contains("ledger storage failed") && reason.contains("No space left on device"), "{info}");

    // Reported as what it is, everywhere.
    for route in ["healthz", "readyz"] {
        let (code, body) = health(full, route).await;
        assert_eq!(code, 503, "{body}");
        let ledger = body["failed_checks"].as_array().unwrap().iter().find(|c| c["component"] == "ledger");
        let ledger = ledger.unwrap_or_else(|| panic!("/{route} names the ledger: {body}"));
        assert!(ledger["reason"].as_str().unwrap().contains("No space left on device"), "{body}");
    }
    let (code, answer) = broadcast(&full.broadcast_url(), &envelopes(&channel, 1, 200)[0]).await;
    assert_eq!(code, 503, "{answer:?}");
    assert!(answer.info.contains("ledger storage failed"), "{answer:?}");
    let metrics = scrape(full).await;
    assert_eq!(total(&metrics, "osn_ledger_storage_failed", None), 1.0);
    assert!(total(&metrics, "osn_ledger_write_failures_total", Some(&channel)) >= 1.0);
    // It retries (every second), and the other two go on meanwhile.
    wait_for("three retries of the full OSN", Duration::from_secs(30), || async {
        (full.log().matches("the ledger cannot write: the channel waits for storage").count() >= 4).then_some(())
    })
    .await;
    until_acked(&run.load, 200).await;
    let info = channel_info(full).await;
    assert_eq!(info["status"], "ERRORED", "still waiting for room: {info}");

    disk.resize("512m");
    let resized = Instant::now();
    wait_for("OSN 0's channel READY again", Duration::from_secs(30), || async {
        (channel_info(full).await["status"] == "READY").then_some(())
    })
    .await;
    let resumed_in = resized.elapsed();
    wait_for("/healthz 200 on OSN 0", Duration::from_secs(30), || async {
        (health(full, "healthz").await.0 == 200).then_some(())
    })
    .await;
    let metrics = scrape(full).await;
    assert_eq!(total(&metrics, "osn_ledger_storage_failed", None), 0.0);
    assert!(total(&metrics, "osn_ledger_reopens_total", None) >= 1.0);
    assert_eq!(total(&metrics, "osn_channel_restarts", Some(&channel)), 0.0, "it resumed without a restart");
    eprintln!(
        "reliability: full disk: errored {:.1} s, READY {:.1} s after the remount, {} acknowledged meanwhile by the others",
        failed_at.elapsed().as_secs_f64(),
        resumed_in.as_secs_f64(),
        run.load.acked() - acked_before
    );
    let servers = tansu.servers();
    run.finish(0, Faults::default()).await;
    let (connects, _) = partition_records(servers, &channel).await;
    assert_eq!(connects, 3, "one CONNECT per OSN, none while the full one waited");
}

/// Issue 18: OSN 0 of three frozen (SIGSTOP) for 30 s under load, then resumed (SIGCONT). Every
/// request sent to it, those in flight when it froze and those sent while it was frozen, is
/// answered once it resumes (the clients wait 60 s): acknowledged, or 503 where it waited past
/// its enqueue deadline or the producer's acknowledgement window (a 503'd envelope may still be
/// ordered; these clients never retry one, so nothing is ordered twice). The other two order
/// meanwhile; it catches up; nothing acknowledged is lost or duplicated, and the chains are
/// identical. On the mock cluster, with each client paced to 10 requests a second, so that what
/// the other two order during the freeze (about 2 MB) stays within its 5 MB partition. (Not on
/// tansu: a produce request in flight across the freeze times out at librdkafka's 30 s and is
/// retried, and tansu 0.6.0 then fails every request of every client, in 1 run of 5 here, and
/// once after an 8 s freeze; see RELIABILITY.md's known limits.)
#[actix_rt::test]
async fn an_osn_frozen_for_30_s_under_load_answers_every_request_and_loses_nothing() {
    const FREEZE: Duration = Duration::from_secs(30);
    let channel = channel_name("frozen");
    let broker = Broker::with_topic(&channel);
    let run = Run::start("mock-cluster", broker.servers(), channel, Some(Duration::from_millis(100))).await;
    until_acked(&run.load, 200).await;
    let frozen = &run.osns[0];
    frozen.freeze(true);
    let began = Instant::now();
    until_acked(&run.load, 300).await;
    // The fault itself: a freeze of 30 s.
    actix_rt::time::sleep(FREEZE.saturating_sub(began.elapsed())).await;
    frozen.freeze(false);
    let thawed = Instant::now();
    let target = run.osns[1].height().await;
    wait_for("the frozen OSN to catch up", Duration::from_secs(60), || async {
        (frozen.height().await >= target).then_some(())
    })
    .await;
    eprintln!(
        "reliability: frozen {:.0} s under load: caught up with the others' height at the thaw in {:.1} s",
        FREEZE.as_secs_f64(),
        thawed.elapsed().as_secs_f64()
    );
    let figures = run.finish(0, Faults { freezes: 1, ..Faults::default() }).await;
    assert_eq!(figures.unanswered, 0, "every request answered: {figures:?}");
}
