//! Against an independent Kafka-protocol broker process, tansu with its sqlite storage, instead
//! of librdkafka's mock cluster: three `osn start` processes order identically, answer 503 naming
//! Kafka while the broker is killed with SIGKILL, and lose nothing they acknowledged once it is
//! back on the same database.
//!
//! tansu 0.6.0 does not survive its own restart for producers that outlive it: the first
//! idempotent produce of an existing producer panics in its sqlite storage ("more or less than
//! one row", `producer_select_for_update`), and its storage fails every request from then on,
//! for every client. So the OSNs are killed before the broker restarts and started after it (new
//! producers); their recovery by themselves from a broker that goes away and comes back is
//! tested on the mock cluster (`operations_faults`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use osn::proto::Envelope;
use prost::Message as _;

use crate::harness::*;

/// Broadcasts `envelopes` round-robin through the OSNs, each once; those acknowledged.
async fn through_all(osns: &[Osn], envelopes: &[Envelope]) -> (Vec<Envelope>, Vec<String>) {
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for (i, osn) in osns.iter().enumerate() {
        let share: Vec<Envelope> = envelopes.iter().skip(i).step_by(osns.len()).cloned().collect();
        let (a, r) = try_all(&osn.broadcast_url(), &share).await;
        acked.extend(a);
        refused.extend(r);
    }
    (acked, refused)
}

#[actix_rt::test]
async fn three_osns_on_tansu_order_identically_and_lose_nothing_acknowledged_across_a_broker_kill() {
    let mut tansu = Tansu::start();
    let channel = channel_name("tansu");
    let spec = |n| OsnSpec {
        osn_identity: n,
        max_message_count: 20,
        kafka_extra: FAST_KAFKA.into(),
        ..OsnSpec::on(&channel, tansu.servers())
    };
    let mut osns = [Osn::start(spec(0)).await, Osn::start(spec(1)).await, Osn::start(spec(2)).await];

    // Load through all three.
    let (mut acked, refused) = through_all(&osns, &envelopes(&channel, 150, 500)).await;
    assert!(refused.is_empty(), "{refused:?}");

    // The broker dies: broadcasts are refused with 503 naming Kafka, nothing is acknowledged.
    tansu.kill();
    let infos = wait_for("a broadcast refused while the broker is down", Duration::from_secs(60), || {
        let (osns, channel) = (&osns, &channel);
        async move {
            let (during, refused) = through_all(osns, &envelopes(channel, 3, 500)).await;
            assert!(during.is_empty(), "acknowledged while the broker is down");
            (!refused.is_empty()).then_some(refused)
        }
    })
    .await;
    assert!(infos.iter().all(|info| info.contains("Kafka")), "{infos:?}");

    // The OSNs go down too (SIGKILL: their producers must not outlive the broker, see above),
    // the broker comes back on the same database, then the OSNs, which take load again.
    for osn in osns.iter_mut() {
        osn.kill();
    }
    tansu.restart();
    for osn in osns.iter_mut() {
        osn.restart().await; // waits until it is READY
    }
    // Until all 150 are acknowledged (a producer may still be reconnecting: 503, then retry).
    let mut pending = envelopes(&channel, 150, 500);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() {
        assert!(Instant::now() < deadline, "{} envelopes still refused 60 s after the restart", pending.len());
        let (a, _) = through_all(&osns, &pending).await;
        let done: HashSet<Vec<u8>> = a.iter().map(Envelope::encode_to_vec).collect();
        pending.retain(|e| !done.contains(&e.encode_to_vec()));
        acked.extend(a);
        if !pending.is_empty() {
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Every acknowledged envelope, before the kill and after, exactly once in three identical chains.
    let mut chains = Vec::new();
    for osn in &osns {
        chains.push(osn.wait_for_transactions(acked.len(), Duration::from_secs(60)).await);
    }
    assert_identical(&chains);
    assert_all_once(&chains[0], &acked);
}
