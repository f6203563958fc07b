//! One OSN: everything acknowledged is ordered exactly once, in a linked chain within the batch
//! limits.

use std::time::Duration;

use crate::harness::*;

#[actix_rt::test]
async fn thousand_concurrent_envelopes_are_ordered_exactly_once() {
    let channel = channel_name("order");
    let broker = Broker::with_topic(&channel);
    let spec = OsnSpec { max_message_count: 40, preferred_max_bytes: 16 * 1024, ..OsnSpec::new(&channel, &broker) };
    let osn = Osn::start(spec.clone()).await;

    // Sizes vary so that count, preferred-bytes and oversized cuts all happen.
    let mut sent = envelopes(&channel, 990, 300);
    sent.extend(envelopes(&channel, 10, 20 * 1024));
    broadcast_all(&osn.broadcast_url(), &sent, 100).await;

    let chain = osn.wait_for_transactions(sent.len(), Duration::from_secs(60)).await;
    check_chain(&chain, &sent, &spec);
    let genesis = &chain[0];
    assert!(genesis.header.as_ref().unwrap().previous_hash.is_empty());
    assert_eq!(osn::core::block::kafka_metadata(&chain[1]).map(|k| k.last_offset_persisted >= 1), Some(true));
}

/// Also covers a topic that does not exist yet: the OSN sets it up itself (the mock broker has no
/// CreateTopics, so this goes through the auto-creation fallback).
#[actix_rt::test]
async fn graceful_shutdown_on_sigterm_then_resume() {
    let channel = channel_name("term");
    let broker = Broker::start();
    let spec = OsnSpec::new(&channel, &broker);
    let mut osn = Osn::start(spec.clone()).await;
    let first = envelopes(&channel, 30, 200);
    broadcast_all(&osn.broadcast_url(), &first, 10).await;
    osn.wait_for_transactions(30, Duration::from_secs(30)).await;
    let status = osn.terminate().await;
    assert!(status.success(), "clean exit on SIGTERM, got {status}:\n{}", osn.log_tail());

    osn.restart().await;
    let second = envelopes(&channel, 30, 200);
    broadcast_all(&osn.broadcast_url(), &second, 10).await;
    let chain = osn.wait_for_transactions(60, Duration::from_secs(30)).await;
    let all: Vec<_> = first.into_iter().chain(second).collect();
    check_chain(&chain, &all, &spec);
}
