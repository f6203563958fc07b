//! Benchmarks of the ordering hot path that does not need a broker: the block cutter, block
//! assembly and hashing, the chain state machine, ledger appends (RocksDB with and without fsync,
//! and in memory, for blocks of 10, 100 and 500 envelopes), and protobuf encoding and decoding of
//! envelopes and blocks. Run: `cargo bench --bench core`.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use prost::Message as _;

use osn::core::block::{build_block, header_hash};
use osn::core::chain::{Chain, ChainTip};
use osn::core::cutter::{BlockCutter, Message};
use osn::ledger::memory::MemoryStore;
use osn::ledger::rocks::RocksStore;
use osn::ledger::{Ledger, Store};
use osn::proto::{kafka_message_regular::Class, BatchSize, Envelope, KafkaMessage, KafkaMetadata};

fn envelope(size: usize) -> Bytes {
    Envelope { payload: vec![7u8; size].into(), signature: vec![1u8; 72].into() }.encode_to_vec().into()
}

const BATCH: BatchSize =
    BatchSize { max_message_count: 500, absolute_max_bytes: 10 << 20, preferred_max_bytes: 2 << 20 };

fn cutter(c: &mut Criterion) {
    let env = envelope(2048);
    let mut g = c.benchmark_group("cutter");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ordered_2KB", |b| {
        let mut cutter = BlockCutter::new(BATCH);
        b.iter(|| cutter.ordered(Message { envelope: env.clone(), size: 2048 + 72 }).unwrap())
    });
    g.finish();
}

fn blocks(c: &mut Criterion) {
    let mut g = c.benchmark_group("block");
    for count in [10usize, 100, 500] {
        let envs: Vec<Bytes> = (0..count).map(|_| envelope(2048)).collect();
        g.throughput(Throughput::Elements(count as u64));
        g.bench_with_input(BenchmarkId::new("build_and_hash_2KB", count), &envs, |b, envs| {
            b.iter(|| {
                let block = build_block(7, Bytes::from_static(&[0; 32]), envs.clone(), 0, &KafkaMetadata::default());
                header_hash(block.header.as_ref().unwrap())
            })
        });
    }
    g.finish();
}

fn chain(c: &mut Criterion) {
    let record = KafkaMessage::regular(envelope(2048), 0, Class::Normal).encode_to_vec();
    let mut g = c.benchmark_group("chain");
    g.throughput(Throughput::Elements(1));
    g.bench_function("consume_2KB_blocks_of_500", |b| {
        let tip =
            ChainTip { next_number: 1, previous_hash: Bytes::new(), kafka: KafkaMetadata::default(), last_config: 0 };
        let mut chain = Chain::with_batch_size("ch", tip, BATCH);
        let mut offset = 0i64;
        b.iter(|| {
            offset += 1;
            chain.consume(offset, &record)
        })
    });
    g.finish();
}

fn ledger_append(c: &mut Criterion) {
    let record = KafkaMessage::regular(envelope(2048), 0, Class::Normal).encode_to_vec();
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<(&str, Arc<dyn Store>)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        ("rocksdb_sync", Arc::new(RocksStore::open(&dir.path().join("sync"), true).unwrap())),
        ("rocksdb_nosync", Arc::new(RocksStore::open(&dir.path().join("nosync"), false).unwrap())),
    ];
    let mut g = c.benchmark_group("ledger_append_2KB");
    g.sample_size(20);
    for per_block in [10u32, 100, 500] {
        let batch = BatchSize { max_message_count: per_block, ..BATCH };
        g.throughput(Throughput::Elements(u64::from(per_block)));
        for (name, store) in &stores {
            let channel = format!("bench{per_block}");
            let genesis = osn::core::genesis::bare_genesis(&channel, batch);
            let ledger = Ledger::open(&channel, store.channel(&channel).unwrap(), &genesis).unwrap();
            let mut chain = Chain::with_batch_size("ch", ledger.tip(), batch);
            let mut offset = 0i64;
            g.bench_function(BenchmarkId::new(*name, per_block), |b| {
                b.iter(|| loop {
                    offset += 1;
                    let out = chain.consume(offset, &record);
                    if let Some(block) = out.blocks.first() {
                        ledger.append(block).unwrap();
                        break;
                    }
                })
            });
        }
    }
    g.finish();
}

/// Protobuf encoding and decoding of a 2 KB envelope and of a block of 500 of them.
fn protobuf(c: &mut Criterion) {
    let raw = envelope(2048);
    let env = Envelope::decode(raw.clone()).unwrap();
    let block = build_block(1, Bytes::from(vec![1u8; 32]), vec![raw.clone(); 500], 0, &KafkaMetadata::default());
    let block_raw = Bytes::from(block.encode_to_vec());
    let mut g = c.benchmark_group("protobuf");
    g.throughput(Throughput::Elements(1));
    g.bench_function("envelope_2KB_encode", |b| b.iter(|| env.encode_to_vec()));
    g.bench_function("envelope_2KB_decode", |b| b.iter(|| Envelope::decode(raw.clone()).unwrap()));
    g.throughput(Throughput::Elements(500));
    g.bench_function("block_500x2KB_encode", |b| b.iter(|| block.encode_to_vec()));
    g.bench_function("block_500x2KB_decode", |b| b.iter(|| osn::proto::Block::decode(block_raw.clone()).unwrap()));
    g.finish();
}

/// Signing one block as an OSN does before each ledger write (ECDSA P-256 and Ed25519).
fn block_signing(c: &mut Criterion) {
    use osn::identity::{create_ca, issue, KeyType, Role, SigningIdentity, Validity};
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("block_sign");
    for (name, key_type) in [("ecdsa_p256", KeyType::EcdsaP256), ("ed25519", KeyType::Ed25519)] {
        let org = dir.path().join(name);
        create_ca("BenchMSP", &org, key_type, Validity::ca_default()).unwrap();
        let id = issue(&org, "osn", Role::Orderer, key_type, Validity::leaf_default()).unwrap();
        let signer = SigningIdentity::load(&id).unwrap();
        let block = build_block(7, Bytes::from_static(&[0; 32]), vec![envelope(2048)], 0, &KafkaMetadata::default());
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut block = block.clone();
                signer.sign_block(&mut block);
                block
            })
        });
    }
    g.finish();
}

criterion_group!(benches, cutter, blocks, block_signing, chain, ledger_append, protobuf);
criterion_main!(benches);
