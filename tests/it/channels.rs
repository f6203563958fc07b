//! Several channels on one OSN: one actor each, one RocksDB column family each, independent
//! chains. In-process, with the real RocksDB store and a real broker.

use std::sync::Arc;
use std::time::Duration;

use osn::config::KafkaConfig;
use osn::ledger::rocks::RocksStore;
use osn::ledger::Store;

use crate::harness::*;

#[actix_rt::test]
async fn channels_order_independently_in_their_own_column_families() {
    let mut names: Vec<String> = (0..3).map(|_| channel_name("multi")).collect();
    names.sort();
    let broker = Broker::start();
    for n in &names {
        broker.kafka.create_topic(n, 1).unwrap();
    }
    let kafka = KafkaConfig {
        brokers: broker.servers(),
        replication_factor: 1,
        connect_timeout: Duration::from_secs(5),
        fetch_wait: osn::kafka::embedded::FETCH_WAIT,
        ..Default::default()
    };
    // Every channel created through the system channel cuts by its batch size (3 envelopes).
    let spec = OsnSpec { max_message_count: 3, ..OsnSpec::new(&names[0], &broker) };
    let batch = osn::proto::BatchSize {
        max_message_count: spec.max_message_count,
        absolute_max_bytes: spec.absolute_max_bytes,
        preferred_max_bytes: spec.preferred_max_bytes,
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RocksStore::open(dir.path(), true).unwrap());
    let channels = start_network(&names, batch, &kafka, store.clone()).await;
    let mut families = names.clone();
    families.push(SYSTEM_CHANNEL.into());
    families.sort();
    assert_eq!(store.channels().unwrap(), families, "one column family per channel");

    // Different amounts to each channel, interleaved.
    let sent: Vec<_> = names.iter().enumerate().map(|(i, n)| envelopes(n, 10 * (i + 1), 200)).collect();
    let handles: Vec<_> = names.iter().map(|n| channels.get(n).unwrap().clone()).collect();
    futures_util::future::join_all(handles.iter().zip(&sent).map(|(ch, envs)| async move {
        for e in envs {
            broadcast_via_actor(ch, e).await;
        }
    }))
    .await;

    for (ch, envs) in handles.iter().zip(&sent) {
        wait_for(&format!("{} transactions on {}", envs.len(), ch.name), Duration::from_secs(30), || async {
            let txs: usize = ledger_chain(ch)[1..].iter().map(|b| b.data.as_ref().unwrap().data.len()).sum();
            (txs == envs.len()).then_some(())
        })
        .await;
        check_chain(&ledger_chain(ch), envs, &OsnSpec { channel: ch.name.clone(), ..spec.clone() });
    }

    let c = channels.clone();
    actix_rt::task::spawn_blocking(move || c.stop_and_join()).await.unwrap();
}
