//! Several channels on one OSN: one actor each, one RocksDB column family each, independent
//! chains. In-process, with the real RocksDB store and a real broker.

use std::sync::Arc;
use std::time::Duration;

use osn::config::{BatchSizeConfig, ChannelSettings, KafkaConfig};
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
    let settings: Vec<ChannelSettings> = names
        .iter()
        .enumerate()
        .map(|(i, name)| ChannelSettings {
            name: name.clone(),
            batch_size: BatchSizeConfig { max_message_count: 3 + i as u32, ..Default::default() },
            batch_timeout: Duration::from_millis(50),
            ..Default::default()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RocksStore::open(dir.path(), true).unwrap());
    let channels = start_channels(&settings, &kafka, store.clone());
    assert_eq!(store.channels().unwrap(), names, "one column family per channel");

    // Different amounts to each channel, interleaved.
    let sent: Vec<_> = names.iter().enumerate().map(|(i, n)| envelopes(n, 10 * (i + 1), 200)).collect();
    let handles: Vec<_> = names.iter().map(|n| channels.get(n).unwrap().clone()).collect();
    futures_util::future::join_all(handles.iter().zip(&sent).map(|(ch, envs)| async move {
        for e in envs {
            broadcast_via_actor(ch, e).await;
        }
    }))
    .await;

    for ((ch, envs), s) in handles.iter().zip(&sent).zip(&settings) {
        wait_for(&format!("{} transactions on {}", envs.len(), ch.name), Duration::from_secs(30), || async {
            let txs: usize = ledger_chain(ch)[1..].iter().map(|b| b.data.as_ref().unwrap().data.len()).sum();
            (txs == envs.len()).then_some(())
        })
        .await;
        let spec = OsnSpec {
            max_message_count: s.batch_size.max_message_count,
            preferred_max_bytes: s.batch_size.preferred_max_bytes,
            ..OsnSpec::new(&ch.name, &broker)
        };
        check_chain(&ledger_chain(ch), envs, &spec);
    }

    let c = channels.clone();
    actix_rt::task::spawn_blocking(move || c.stop_and_join()).await.unwrap();
}
