//! Scenario tests run against every storage implementation.

use crate::proto::Envelope;
use std::sync::Arc;

use bytes::Bytes;

use super::memory::MemoryStore;
use super::rocks::RocksStore;
use super::*;
use crate::core::chain::Chain;
use crate::proto::{kafka_message_regular::Class, BatchSize, KafkaMessage};

fn batch() -> BatchSize {
    BatchSize { max_message_count: 2, absolute_max_bytes: 1000, preferred_max_bytes: 500 }
}

fn config() -> crate::proto::common::Config {
    crate::core::genesis::bare_config(batch())
}

fn genesis_block(channel: &str, config: &crate::proto::common::Config) -> Block {
    crate::core::genesis::genesis_block(channel, config, 0, [0; 24])
}

fn record(tag: u8) -> Vec<u8> {
    let env = Envelope { payload: vec![tag; 8].into(), signature: Bytes::new() };
    KafkaMessage::regular(env.encode_to_vec().into(), 0, Class::Normal).encode_to_vec()
}

/// Orders `count` records (offsets from `first`) into `ledger` through a chain resumed from it.
fn order(ledger: &Ledger, first: i64, count: i64) {
    let mut chain = Chain::with_batch_size("ch", ledger.tip(), ledger.config().values.batch_size);
    assert_eq!(chain.resume_offset(), first, "resumes right after the last persisted offset");
    for offset in first..first + count {
        for block in chain.consume(offset, &record(offset as u8)).blocks {
            ledger.append(&block).unwrap();
        }
    }
}

/// Every scenario, against a store that `reopen` gives back with the same contents.
fn scenarios(reopen: &dyn Fn() -> Arc<dyn Store>) {
    // A new channel starts with its genesis block.
    let store = reopen();
    let ledger = Ledger::open("ch", store.channel("ch").unwrap(), &genesis_block("ch", &config())).unwrap();
    assert_eq!(ledger.height(), 1);
    assert_eq!(ledger.tip().kafka.last_offset_persisted, -1);
    assert_eq!(ledger.config().config, config());
    let genesis = ledger.block(0).unwrap().unwrap();
    assert!(genesis.header.as_ref().unwrap().previous_hash.is_empty());

    // Blocks append in order, readable by number, and the height watch follows.
    let mut height = ledger.subscribe();
    order(&ledger, 0, 5);
    assert_eq!(ledger.height(), 3, "5 records with 2 per block: blocks 1 and 2, one pending");
    assert!(height.has_changed().unwrap());
    assert_eq!(*height.borrow_and_update(), 3);
    assert_eq!(ledger.tip().kafka.last_offset_persisted, 3);
    assert!(ledger.block(3).unwrap().is_none());
    assert_eq!(ledger.block_bytes(2).unwrap().unwrap(), Bytes::from(ledger.block(2).unwrap().unwrap().encode_to_vec()));

    // Blocks that do not extend the chain are refused.
    let b2 = ledger.block(2).unwrap().unwrap();
    assert!(matches!(ledger.append(&b2), Err(LedgerError::OutOfOrder { expected: 3, got: 2, .. })));
    let mut forged = b2.clone();
    forged.header.as_mut().unwrap().number = 3;
    assert!(matches!(ledger.append(&forged), Err(LedgerError::BrokenLink { number: 3, .. })));
    assert_eq!(ledger.height(), 3);

    // Reopened, the channel resumes at the last persisted offset, with another config ignored.
    drop(ledger);
    drop(store);
    let store = reopen();
    assert_eq!(store.channels().unwrap(), vec!["ch".to_string()]);
    let other = crate::core::genesis::bare_config(BatchSize { max_message_count: 99, ..batch() });
    let ledger = Ledger::open("ch", store.channel("ch").unwrap(), &genesis_block("ch", &other)).unwrap();
    assert_eq!(ledger.height(), 3);
    assert_eq!(ledger.config().config, config(), "the genesis block's config wins");
    order(&ledger, 4, 3);
    assert_eq!(ledger.height(), 4, "the pending record 4 is consumed again: block 3 = [4, 5], 6 pending");
    let mut previous = Bytes::new();
    for n in 0..4 {
        let block = ledger.block(n).unwrap().unwrap();
        assert_eq!(block.header.as_ref().unwrap().previous_hash, previous);
        previous = header_hash(block.header.as_ref().unwrap()).into();
    }

    // Channels are independent.
    let other = Ledger::open("other", store.channel("other").unwrap(), &genesis_block("other", &config())).unwrap();
    assert_eq!(other.height(), 1);
    assert_eq!(ledger.height(), 4);

    // The resume state written with a block keeps what its metadata leaves out (the re-submitted
    // config offset, left out of a block cut by a time-to-cut) across a reopen, and the chain
    // resumed from it writes it into the next block it cuts by count.
    let mut chain = Chain::with_batch_size("ch", ledger.tip(), ledger.config().values.batch_size);
    assert!(chain.consume(6, &record(6)).blocks.is_empty());
    let block = chain.consume(7, &record(7)).blocks.remove(0);
    ledger.append_resuming(&block, Some(3)).unwrap();
    assert_eq!(ledger.tip().kafka.last_resubmitted_config_offset, 3);
    let reopened = |store: &Arc<dyn Store>| {
        Ledger::open("ch", store.channel("ch").unwrap(), &genesis_block("ch", &config())).unwrap().tip().kafka
    };
    drop((ledger, other, store));
    let store = reopen();
    let kafka = reopened(&store);
    assert_eq!((kafka.last_offset_persisted, kafka.last_resubmitted_config_offset), (7, 3));
    let ledger = Ledger::open("ch", store.channel("ch").unwrap(), &genesis_block("ch", &config())).unwrap();
    order(&ledger, 8, 2);
    drop((ledger, store));
    let store = reopen();
    let ledger = Ledger::open("ch", store.channel("ch").unwrap(), &genesis_block("ch", &config())).unwrap();
    let kafka = kafka_metadata(&ledger.block(5).unwrap().unwrap()).unwrap();
    assert_eq!((kafka.last_offset_persisted, kafka.last_resubmitted_config_offset), (9, 3));
}

#[test]
fn memory_store_scenarios() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    scenarios(&|| store.clone());
}

#[test]
fn rocks_store_scenarios() {
    for sync in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        scenarios(&|| Arc::new(RocksStore::open(&path, sync).unwrap()));
    }
}

#[test]
fn rocks_store_reports_corrupt_last_block_with_channel_and_number() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path(), true).unwrap();
    let ch = store.channel("bad").unwrap();
    ch.append(0, b"\xff\xff\xff not a block", None).unwrap();
    let err = Ledger::open("bad", ch, &genesis_block("bad", &config())).unwrap_err().to_string();
    assert!(err.contains("'bad'") && err.contains("block 0"), "{err}");
}

#[test]
fn a_ledger_altered_on_disk_is_refused_naming_the_channel_and_the_block() {
    let genesis = genesis_block("alt", &config());
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RocksStore::open(dir.path(), true).unwrap();
        let ledger = Ledger::open("alt", store.channel("alt").unwrap(), &genesis).unwrap();
        order(&ledger, 0, 10);
        assert_eq!(ledger.height(), 6);
        assert_eq!(ledger.check_stored().unwrap(), 6, "an intact ledger passes");
    }
    let reopen = || {
        let store = RocksStore::open(dir.path(), true).unwrap();
        let ledger = Ledger::open("alt", store.channel("alt").unwrap(), &genesis).unwrap();
        ledger.check_stored().map(|_| ()).map_err(|e| e.to_string())
    };
    let rewrite = |number: u64, alter: &dyn Fn(Vec<u8>) -> Vec<u8>| {
        let store = RocksStore::open(dir.path(), true).unwrap();
        let ch = store.channel("alt").unwrap();
        let raw = ch.get(number).unwrap().unwrap().to_vec();
        ch.append(number, &alter(raw), None).unwrap();
    };
    let original = RocksStore::open(dir.path(), true).unwrap().channel("alt").unwrap().get(2).unwrap().unwrap();

    // A flipped byte in an envelope of block 2: it still decodes, but its data hash does not match.
    let envelope = Envelope::decode(Block::decode(original.clone()).unwrap().data.unwrap().data[0].clone()).unwrap();
    rewrite(2, &|raw| {
        let mut block = Block::decode(Bytes::from(raw)).unwrap();
        let mut altered = envelope.clone();
        altered.payload = Bytes::from(vec![0xAA; altered.payload.len()]);
        block.data.as_mut().unwrap().data[0] = altered.encode_to_vec().into();
        block.encode_to_vec()
    });
    let err = reopen().unwrap_err();
    assert!(err.contains("'alt'") && err.contains("block 2") && err.contains("data hash"), "{err}");

    // Block 2 cut in half: it no longer decodes.
    let half = original.len() / 2;
    rewrite(2, &|_| original[..half].to_vec());
    let err = reopen().unwrap_err();
    assert!(err.contains("'alt'") && err.contains("block 2") && err.contains("does not decode"), "{err}");

    // Block 2 replaced by block 3: its number, then its link, are wrong.
    let three = RocksStore::open(dir.path(), true).unwrap().channel("alt").unwrap().get(3).unwrap().unwrap();
    rewrite(2, &|_| three.to_vec());
    let err = reopen().unwrap_err();
    assert!(err.contains("block 2") && err.contains("block 3"), "{err}");

    // Put back: intact again.
    rewrite(2, &|_| original.to_vec());
    reopen().unwrap();
}

/// Copies a closed RocksDB directory (its files only: it has no subdirectories).
fn copy_db(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The database's files whose name ends with `suffix`, sorted by name (RocksDB numbers them).
fn files(dir: &std::path::Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

/// Opens the ledger in `dir` after a crash, and checks what it holds against `blocks` (the blocks
/// written before it): a prefix of them, each whole, or a clear error. The height, or the error.
fn reopen_after_crash(dir: &std::path::Path, genesis: &Block, blocks: &[Bytes]) -> Result<u64, String> {
    let store = RocksStore::open(dir, true).map_err(|e| e.to_string())?;
    let ledger = Ledger::open("torn", store.channel("torn").unwrap(), genesis).map_err(|e| e.to_string())?;
    let height = ledger.check_stored().map_err(|e| e.to_string())?;
    assert!(height as usize <= blocks.len(), "{height} blocks after a crash, {} before", blocks.len());
    for n in 0..height {
        assert_eq!(ledger.block_bytes(n).unwrap().unwrap(), blocks[n as usize], "block {n}");
    }
    Ok(height)
}

/// The commit point's atomicity: a block is appended in one RocksDB write (one write-ahead log
/// record, fsynced). A crash that tears that record (the log cut anywhere inside it) or leaves a
/// byte of it wrong loses the whole block, never part of it, and never an earlier block; the
/// OSN then cuts it again from Kafka, resuming after the last block it holds.
#[test]
fn a_write_torn_by_a_crash_leaves_each_block_whole_or_absent() {
    let genesis = genesis_block("torn", &config());
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<Bytes> = {
        let store = RocksStore::open(dir.path(), true).unwrap();
        let ledger = Ledger::open("torn", store.channel("torn").unwrap(), &genesis).unwrap();
        order(&ledger, 0, 10);
        (0..ledger.height()).map(|n| ledger.block_bytes(n).unwrap().unwrap()).collect()
    }; // Closed without a flush: every block is only in the write-ahead log, as after a kill.
    assert_eq!(blocks.len(), 6);
    let wal = files(dir.path(), ".log").pop().expect("a write-ahead log");
    let len = std::fs::metadata(&wal).unwrap().len();
    let last = blocks[5].len() as u64;
    assert!(len > 5 * last, "the blocks are in the log ({len} bytes)");

    // The log cut short at every byte of the last two records and a little more.
    let mut heights = std::collections::BTreeMap::new();
    for cut in 1..=(2 * last + 64) {
        let copy = tempfile::tempdir().unwrap();
        copy_db(dir.path(), copy.path());
        let torn = copy.path().join(wal.file_name().unwrap());
        std::fs::OpenOptions::new().write(true).open(&torn).unwrap().set_len(len - cut).unwrap();
        let height = reopen_after_crash(copy.path(), &genesis, &blocks).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        *heights.entry(height).or_insert(0) += 1;
    }
    // Cuts inside the last record lost exactly block 5, deeper ones block 4 as well (and
    // the deepest block 3): the tear hit each of the last records, and only ever lost whole
    // blocks from the end.
    assert!(heights[&5] > 100 && heights[&4] > 100 && heights.keys().all(|h| *h >= 3), "{heights:?}");

    // One byte of the last record changed (not a tear: the record's checksum no longer matches).
    for at in [len - 1, len - last / 2, len - last + 2] {
        let copy = tempfile::tempdir().unwrap();
        copy_db(dir.path(), copy.path());
        let path = copy.path().join(wal.file_name().unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at as usize] ^= 0x5A;
        std::fs::write(&path, bytes).unwrap();
        match reopen_after_crash(copy.path(), &genesis, &blocks) {
            Ok(height) => assert!(height >= 5, "byte {at}: only {height} blocks"),
            Err(e) => assert!(e.contains("Corruption"), "byte {at}: {e}"),
        }
    }
}

/// A byte flipped in a table file (blocks flushed out of the write-ahead log) is found by
/// RocksDB's checksums when the ledger is opened or checked at start: a clear error naming the
/// channel, never a block served wrong.
#[test]
fn a_flipped_byte_in_a_table_file_is_refused_naming_the_channel() {
    let genesis = genesis_block("sst", &config());
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RocksStore::open(dir.path(), true).unwrap();
        let ledger = Ledger::open("sst", store.channel("sst").unwrap(), &genesis).unwrap();
        order(&ledger, 0, 10);
        store.flush();
    }
    let tables = files(dir.path(), ".sst");
    assert!(!tables.is_empty(), "the blocks are in table files");
    for table in &tables {
        let copy = tempfile::tempdir().unwrap();
        copy_db(dir.path(), copy.path());
        let path = copy.path().join(table.file_name().unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 0x5A; // In the first data block.
        std::fs::write(&path, bytes).unwrap();
        let outcome = RocksStore::open(copy.path(), true).map_err(|e| e.to_string()).and_then(|store| {
            let ledger = Ledger::open("sst", store.channel("sst").unwrap(), &genesis).map_err(|e| e.to_string())?;
            ledger.check_stored().map_err(|e| e.to_string())
        });
        let err = outcome.expect_err("a corrupt table file is refused");
        assert!(err.contains("'sst'") && err.contains("Corruption") && err.contains("block"), "{err}");
    }
}

/// A panic between the store's write and the tip's update (a bug there, or `OSN_PANIC_AT`) leaves
/// the block stored, the tip behind and its lock poisoned: `reload` makes the ledger the store's
/// again, so a restarted actor builds on the block that was written instead of writing it twice.
#[test]
fn reload_after_a_panic_in_the_middle_of_an_append_resumes_from_what_is_stored() {
    let store = Arc::new(MemoryStore::default());
    let genesis = genesis_block("ch", &config());
    let ledger = Arc::new(Ledger::open("ch", store.channel("ch").unwrap(), &genesis).unwrap());
    order(&ledger, 0, 4);
    assert_eq!(ledger.height(), 3);

    // Block 3 reaches the store while the tip's lock is held, then the thread panics.
    let mut chain = Chain::with_batch_size("ch", ledger.tip(), ledger.config().values.batch_size);
    let block = chain.consume(4, &record(4)).blocks.into_iter().chain(chain.consume(5, &record(5)).blocks).next();
    let block = block.expect("two records cut a block");
    let poisoner = ledger.clone();
    let stored = store.channel("ch").unwrap();
    let panicked = std::thread::spawn(move || {
        let _tip = poisoner.tip.lock().unwrap();
        stored.append(3, &block.encode_to_vec(), None).unwrap();
        panic!("in the middle of an append");
    })
    .join();
    assert!(panicked.is_err());
    assert_eq!(ledger.height(), 3, "the in-memory tip is behind the store");
    let mut height = ledger.subscribe();

    assert_eq!(ledger.reload().unwrap(), 4);
    assert_eq!(ledger.height(), 4);
    assert_eq!(*height.borrow_and_update(), 4, "deliver subscribers see the block");
    assert_eq!(ledger.tip().kafka.last_offset_persisted, 5);
    order(&ledger, 6, 2);
    assert_eq!(ledger.height(), 5, "the chain goes on from the stored block, without a gap or a repeat");
    assert_eq!(ledger.check_stored().unwrap(), 5);
}

/// A ledger whose last blocks were cut from a forged record (an original offset past the
/// partition's end, kept in their Kafka metadata by a build before the chain skipped such
/// records) resumes with the state of the last sane block, so the copies re-submitted later are
/// ordered; the next block records that state, and reopening changes nothing more.
#[test]
fn a_tip_cut_from_a_forged_record_resumes_with_the_last_sane_state() {
    use crate::core::block::build_block;
    use crate::proto::KafkaMetadata;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let open = || Ledger::open("ch", store.channel("ch").unwrap(), &genesis_block("ch", &config())).unwrap();
    let ledger = open();
    order(&ledger, 0, 4); // blocks 1 and 2, offsets 0-3
    let append = |offset: i64, original: i64| {
        let tip = ledger.tip();
        let kafka = KafkaMetadata {
            last_offset_persisted: offset,
            last_original_offset_processed: original,
            last_resubmitted_config_offset: 0,
        };
        let block = build_block(tip.next_number, tip.previous_hash.clone(), vec![record(9).into()], 0, &kafka);
        ledger.append(&block).unwrap();
    };
    append(4, 2); // block 3: a genuine copy of offset 2
    append(5, 1_000_000_000_000); // block 4: the forged record's value
    append(6, 1_000_000_000_000); // block 5: kept since
    drop(ledger);

    let ledger = open();
    let tip = ledger.tip();
    assert_eq!(tip.kafka.last_offset_persisted, 6);
    assert_eq!((tip.kafka.last_original_offset_processed, tip.kafka.last_resubmitted_config_offset), (2, 0));
    // A copy of offset 3 re-submitted now is ordered, not dropped as already processed.
    let mut chain = Chain::with_batch_size("ch", tip, BatchSize { max_message_count: 1, ..batch() });
    let mut copy = KafkaMessage::decode(record(3).as_slice()).unwrap();
    if let Some(crate::proto::kafka_message::Type::Regular(r)) = copy.r#type.as_mut() {
        r.original_offset = 3;
    }
    let out = chain.consume(7, &copy.encode_to_vec());
    assert_eq!(out.skip, None, "{:?}", out.skip);
    let block = &out.blocks[0];
    ledger.append(block).unwrap();
    assert_eq!(kafka_metadata(block).unwrap().last_original_offset_processed, 3);
    drop(ledger);
    assert_eq!(open().tip().kafka.last_original_offset_processed, 3);
}

/// A tmpfs of `size` mounted on a new directory, unmounted on drop; None (saying why) where the
/// machine forbids mounts.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir)),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: this machine forbids mounting a tmpfs: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.0.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount with size={size}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_fails_writes_until_there_is_room_then_the_store_reopens_and_writes_again() {
    let Some(disk) = Tmpfs::mount("8m") else { return };
    let path = disk.0.path().join("ledger");
    let store = Arc::new(RocksStore::open(&path, true).unwrap());
    let (a, b) = (store.channel("a").unwrap(), store.channel("b").unwrap());
    b.append(0, b"b0", None).unwrap();
    let block = vec![7u8; 100_000];
    let mut written = 0;
    let failed = loop {
        match a.append(written, &block, None) {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 200, "an 8 MB disk holds fewer than 200 blocks of 100 kB");
    };
    assert!(failed.is_storage(), "{failed}");
    assert!(failed.to_string().contains("No space left on device"), "{failed}");
    assert!(store.failure().unwrap().contains("No space left on device"));
    // Every channel's writes fail now, and recovering fails while the disk is full; reads go on.
    assert!(b.append(1, b"b1", None).is_err());
    let still = a.recover().unwrap_err();
    assert!(still.to_string().contains("still cannot be written"), "{still}");
    assert_eq!(b.get(0).unwrap().unwrap(), Bytes::from_static(b"b0"));
    assert_eq!(a.last().unwrap().unwrap().0, written - 1);

    // With room again, writes still fail: RocksDB keeps the error until the database is reopened.
    disk.resize("64m");
    assert!(a.append(written, &block, None).is_err(), "RocksDB does not resume by itself");
    assert!(a.recover().unwrap(), "the first recover reopens");
    assert!(!b.recover().unwrap(), "the database is shared: the other channel has nothing to do");
    assert_eq!(store.failure(), None);
    a.append(written, &block, None).unwrap();
    b.append(1, b"b1", None).unwrap();
    assert_eq!(a.last().unwrap().unwrap().0, written, "every block written before the failure is kept");
    assert_eq!(b.get(1).unwrap().unwrap(), Bytes::from_static(b"b1"));
    drop((a, b, store));
    // And it all survives a restart.
    let store = RocksStore::open(&path, true).unwrap();
    assert_eq!(store.channel("a").unwrap().last().unwrap().unwrap().0, written);
}

/// `count` blocks cut from records at offsets `first..`, on top of `ledger`'s tip (not written).
fn cut(ledger: &Ledger, first: i64, count: i64) -> Vec<Block> {
    let mut chain = Chain::with_batch_size("ch", ledger.tip(), ledger.config().values.batch_size);
    (first..first + count).flat_map(|offset| chain.consume(offset, &record(offset as u8)).blocks).collect()
}

/// Submits `blocks` as one job of `generation`, sending what came of it on `tx`.
fn submit(ledger: &Arc<Ledger>, generation: u64, blocks: Vec<Block>, tx: &std::sync::mpsc::Sender<Written>) {
    let tx = tx.clone();
    let blocks = blocks.into_iter().map(|b| (b, None)).collect();
    ledger.submit(WriteJob { generation, blocks, done: Box::new(move |w| tx.send(w).unwrap()) });
}

#[test]
fn the_writer_makes_submitted_blocks_durable_in_order_and_reports_each_job() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(dir.path(), true).unwrap());
    let ledger = Arc::new(Ledger::open("ch", store.channel("ch").unwrap(), &genesis_block("ch", &config())).unwrap());
    let generation = ledger.settle();
    let blocks = cut(&ledger, 0, 40); // 20 blocks of 2
    let (tx, rx) = std::sync::mpsc::channel();
    for block in blocks.clone() {
        submit(&ledger, generation, vec![block], &tx);
    }
    let mut heights = Vec::new();
    for _ in 0..20 {
        let written = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("every job reported");
        assert!(written.result.is_ok(), "{written:?}");
        assert_eq!(written.generation, generation);
        heights.push(written.height);
    }
    assert!(heights.windows(2).all(|w| w[0] <= w[1]), "reported in order: {heights:?}");
    assert_eq!(*heights.last().unwrap(), 21);
    assert_eq!(ledger.settle(), generation + 1, "settle waits for nothing left, and starts a generation");
    assert_eq!(ledger.height(), 21);
    for block in &blocks {
        let n = block.header.as_ref().unwrap().number;
        assert_eq!(ledger.block(n).unwrap().as_ref(), Some(block));
    }
    assert_eq!(ledger.tip().kafka.last_offset_persisted, 39);
}

#[test]
fn jobs_of_an_ended_generation_or_after_a_failed_write_are_dropped_unwritten() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let ledger = Arc::new(Ledger::open("ch", store.channel("ch").unwrap(), &genesis_block("ch", &config())).unwrap());
    let old = ledger.settle();
    let current = ledger.settle();
    let blocks = cut(&ledger, 0, 6); // blocks 1..=3
    let (tx, rx) = std::sync::mpsc::channel();
    submit(&ledger, old, vec![blocks[0].clone()], &tx);
    assert_eq!(ledger.settle(), current + 1, "the writer holds nothing once settled");
    assert!(rx.try_recv().is_err(), "an ended generation's job is not reported");
    assert_eq!(ledger.height(), 1, "nor written");

    // A job that does not extend the chain fails; the generation's later jobs are dropped, though
    // they would extend it; a new generation writes again.
    let generation = current + 1;
    submit(&ledger, generation, vec![blocks[1].clone()], &tx);
    let failed = rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
    assert!(matches!(failed.result, Err(WriteFailure::Ledger(LedgerError::OutOfOrder { expected: 1, got: 2, .. }))));
    submit(&ledger, generation, vec![blocks[0].clone()], &tx);
    let generation = ledger.settle();
    assert!(rx.try_recv().is_err(), "dropped after the failure");
    assert_eq!(ledger.height(), 1);
    submit(&ledger, generation, blocks.clone(), &tx);
    let written = rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
    assert!(written.result.is_ok(), "{written:?}");
    assert_eq!((written.height, ledger.height()), (4, 4));
}
