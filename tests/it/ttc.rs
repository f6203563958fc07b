//! Time-to-cut edge cases injected straight into the partition: stale, future and empty-batch
//! TTCs, and records that are not valid messages. The channel keeps running and every OSN cuts
//! the same chain.

use std::time::Duration;

use osn::config::KafkaConfig;
use osn::proto::{kafka_message_regular::Class, KafkaMessage};
use prost::Message as _;

use crate::harness::*;

#[actix_rt::test]
async fn stale_future_and_empty_ttcs_and_garbage_leave_the_channel_running() {
    let channel = channel_name("ttc");
    let broker = Broker::with_topic(&channel);
    let spec = OsnSpec { max_message_count: 1000, batch_timeout: "1s", ..OsnSpec::new(&channel, &broker) };
    let a = Osn::start(spec.clone()).await;
    let b = Osn::start(OsnSpec { osn_identity: 1, ..spec.clone() }).await;
    let kafka = KafkaConfig { brokers: broker.servers(), ..Default::default() };
    let producer = osn::kafka::producer(&kafka).unwrap();
    let inject = |m: Vec<u8>| {
        let producer = producer.clone();
        let channel = channel.clone();
        async move { osn::kafka::produce(&producer, &channel, &m).await.expect("inject") }
    };

    let mut sent = envelopes(&channel, 10, 200);
    broadcast_all(&a.broadcast_url(), &sent, 10).await;
    a.wait_for_transactions(10, Duration::from_secs(30)).await;
    let next = a.height().await;

    // Nothing pending: a TTC for the next block is an empty-batch TTC; then stale and future ones.
    inject(KafkaMessage::time_to_cut(next).encode_to_vec()).await;
    inject(KafkaMessage::time_to_cut(0).encode_to_vec()).await;
    inject(KafkaMessage::time_to_cut(next + 7).encode_to_vec()).await;
    // Records that are not valid messages.
    inject(b"\xff\xfe garbage".to_vec()).await;
    inject(KafkaMessage::default().encode_to_vec()).await;
    inject(KafkaMessage::regular(bytes::Bytes::from_static(b"\x0a\xff"), 0, Class::Normal).encode_to_vec()).await;

    // A pending batch with a future TTC in the middle of it: not cut by that TTC.
    let more = envelopes(&channel, 5, 200);
    broadcast_all(&b.broadcast_url(), &more, 5).await;
    inject(KafkaMessage::time_to_cut(next + 1).encode_to_vec()).await;
    sent.extend(more);
    let more = envelopes(&channel, 5, 200);
    broadcast_all(&a.broadcast_url(), &more, 5).await;
    sent.extend(more);

    let chain_a = a.wait_for_transactions(sent.len(), Duration::from_secs(30)).await;
    let chain_b = b.wait_for_transactions(sent.len(), Duration::from_secs(30)).await;
    check_chain(&chain_a, &sent, &spec);
    assert_eq!(
        chain_a.iter().map(consensus_view).collect::<Vec<_>>(),
        chain_b.iter().map(consensus_view).collect::<Vec<_>>()
    );
    // The block after the injected records holds all ten later envelopes: the future TTC cut nothing.
    assert_eq!(chain_a[next as usize].data.as_ref().unwrap().data.len(), 10);

    // Still ordering afterwards, on both.
    let last = envelopes(&channel, 3, 200);
    broadcast_all(&b.broadcast_url(), &last, 3).await;
    sent.extend(last);
    let chain_a = a.wait_for_transactions(sent.len(), Duration::from_secs(30)).await;
    check_chain(&chain_a, &sent, &spec);
    for osn in [&a, &b] {
        let mut resp = client().get(format!("{}/v1/channels/{channel}", osn.url)).send().await.unwrap();
        let info: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(info["status"], "READY", "{info}");
        // Canonical JSON omits zero values: no "restarts" means none.
        assert!(info.get("restarts").is_none(), "{info}");
    }
}
