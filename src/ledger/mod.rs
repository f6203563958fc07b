//! The ledger: each channel's chain of blocks, and the commit point of ordering.
//!
//! [`Store`] and [`ChannelStore`] are the storage trait, implemented by [`rocks::RocksStore`]
//! (one column family per channel) and [`memory::MemoryStore`]. [`Ledger`] wraps one channel's
//! store: it writes the genesis block of a new channel, refuses a block that does not extend the
//! chain, and publishes the height on a watch channel so Deliver subscribers wait for blocks
//! instead of queueing them.
//!
//! The consumer position is the ORDERER metadata (`KafkaMetadata`) of the last block: a block and
//! the offset it covers are one value, written in one atomic batch. The batch also holds the
//! chain's resume state, the same offsets with the one a block cut by a time-to-cut leaves out
//! (the last re-submitted config's, as Fabric's chain leaves it out).

pub mod memory;
pub mod recent;
pub use recent::BlockBytes;
pub mod rocks;

use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use prost::Message as _;
use tokio::sync::watch;

use crate::core::block::{header_hash, kafka_metadata, last_config};
use crate::core::chain::{sane_offsets, ChainTip};
use crate::core::channelconfig::Bundle;
use crate::core::config::envelope_parts;
use crate::proto::common::Config;
use crate::proto::{Block, HeaderType, KafkaMetadata};

#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger storage error on channel '{channel}': {message}")]
    Storage { channel: String, message: String },
    #[error("ledger of channel '{channel}' is corrupt at block {number}: {reason}")]
    Corrupt { channel: String, number: u64, reason: String },
    #[error("block {got} does not extend channel '{channel}' (expected block {expected})")]
    OutOfOrder { channel: String, expected: u64, got: u64 },
    #[error("block {number} of channel '{channel}' does not link to the previous block's header hash")]
    BrokenLink { channel: String, number: u64 },
}

impl LedgerError {
    /// A failure of the storage itself (a full disk, an I/O error), as opposed to a block that
    /// does not fit the chain: the write may succeed later, after [`Ledger::recover`].
    pub fn is_storage(&self) -> bool {
        matches!(self, LedgerError::Storage { .. })
    }
}

/// A block as a store appends it: its number, its marshaled bytes, and the resume state written
/// with it, if any ([`ChannelStore::append`]).
pub type StoredBlock<'a> = (u64, &'a [u8], Option<&'a [u8]>);

/// Storage of many channels.
pub trait Store: Send + Sync + 'static {
    /// Opens (creating if needed) the storage of one channel.
    fn channel(&self, channel: &str) -> Result<Arc<dyn ChannelStore>, LedgerError>;
    /// Channels that have storage.
    fn channels(&self) -> Result<Vec<String>, LedgerError>;
    /// Why writes fail, from a failed write until the storage can write again (it then needs a
    /// [`ChannelStore::recover`]).
    fn failure(&self) -> Option<String> {
        None
    }
}

/// Storage of one channel's blocks, by number.
pub trait ChannelStore: Send + Sync + 'static {
    /// The last block's number and marshaled bytes, if any block is stored.
    fn last(&self) -> Result<Option<(u64, Bytes)>, LedgerError>;
    /// A block's marshaled bytes.
    fn get(&self, number: u64) -> Result<Option<Bytes>, LedgerError>;
    /// Appends one block atomically, with the chain's resume state after it when the block's own
    /// metadata does not hold it all (`state`: a marshaled `KafkaMetadata`): after a crash both
    /// are wholly there or neither is. A state stays until the next one replaces it.
    fn append(&self, number: u64, block: &[u8], state: Option<&[u8]>) -> Result<(), LedgerError>;
    /// Appends blocks that follow each other, each as [`ChannelStore::append`] does, all in one
    /// atomic write where the store can (the default appends them one by one: a failure may
    /// leave the first ones written, and the ledger reads its tip again after a failed write).
    fn append_all(&self, blocks: &[StoredBlock<'_>]) -> Result<(), LedgerError> {
        for (number, block, state) in blocks {
            self.append(*number, block, *state)?;
        }
        Ok(())
    }
    /// The resume state written last, if any was (it may be an earlier block's).
    fn state(&self) -> Result<Option<Bytes>, LedgerError>;
    /// After a failed write: makes the storage (shared by every channel) able to write again if
    /// it can now (a full disk with room again). Ok(true) if this call did it, Ok(false) if there
    /// was nothing to do; Err while writes still cannot succeed. Blocks (I/O).
    fn recover(&self) -> Result<bool, LedgerError> {
        Ok(false)
    }
}

/// One channel's ledger.
pub struct Ledger {
    channel: String,
    store: Arc<dyn ChannelStore>,
    tip: Mutex<ChainTip>,
    height: watch::Sender<u64>,
    /// The configuration in force: that of the LAST_CONFIG block of the last block.
    config: RwLock<Arc<Bundle>>,
    /// Jobs handed to the writers and not yet done, with the condition [`Ledger::settle`] waits on.
    pending: Mutex<usize>,
    idle: std::sync::Condvar,
    /// The write generation jobs must carry to be written ([`Ledger::settle`]).
    generation: std::sync::atomic::AtomicU64,
    /// The generation whose write failed: its later jobs are dropped.
    failed_generation: std::sync::atomic::AtomicU64,
    /// The newest blocks as written, for readers close behind the tip.
    recent: recent::Recent,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("channel", &self.channel).field("height", &self.height()).finish()
    }
}

impl Ledger {
    /// Opens a channel's ledger; a new channel gets `genesis` as its block 0, as it is (Fabric's
    /// genesis blocks are unsigned: configtxgen's for the system channel, and a created channel's
    /// first block). An existing channel keeps its own chain, and the configuration of its last
    /// config block.
    pub fn open(channel: &str, store: Arc<dyn ChannelStore>, genesis: &Block) -> Result<Self, LedgerError> {
        let last = store.last().map_err(|e| match e {
            LedgerError::Storage { channel, message } => {
                LedgerError::Storage { channel, message: format!("its last block cannot be read: {message}") }
            }
            e => e,
        })?;
        let last = match last {
            Some(last) => last,
            None => {
                let genesis = genesis.encode_to_vec();
                store.append(0, &genesis, None)?;
                (0, Bytes::from(genesis))
            }
        };
        let (tip, config) = Self::state(&*store, channel, last)?;
        Ok(Ledger {
            channel: channel.to_owned(),
            store,
            height: watch::Sender::new(tip.next_number),
            tip: Mutex::new(tip),
            config: RwLock::new(Arc::new(config)),
            pending: Mutex::new(0),
            idle: std::sync::Condvar::new(),
            generation: std::sync::atomic::AtomicU64::new(1),
            failed_generation: std::sync::atomic::AtomicU64::new(0),
            recent: recent::Recent::default(),
        })
    }

    /// The tip and the configuration in force, from the last stored block.
    fn state(
        store: &dyn ChannelStore,
        channel: &str,
        (number, raw): (u64, Bytes),
    ) -> Result<(ChainTip, Bundle), LedgerError> {
        let corrupt = |number, reason: String| LedgerError::Corrupt { channel: channel.to_owned(), number, reason };
        let block = Block::decode(raw).map_err(|e| corrupt(number, format!("does not decode: {e}")))?;
        let header = block.header.as_ref().ok_or_else(|| corrupt(number, "no header".into()))?;
        if header.number != number {
            return Err(corrupt(number, format!("stored under number {number} but holds block {}", header.number)));
        }
        // A genesis block has no Kafka metadata (Fabric writes its metadata empty): nothing of
        // the partition consumed yet.
        let mut kafka = crate::core::block::resume_metadata(&block)
            .ok_or_else(|| corrupt(number, "no ORDERER (Kafka) metadata".into()))?;
        // A block cut by a time-to-cut leaves the re-submitted config offset out of its metadata,
        // as Fabric's does; the resume state written with it keeps it. A state written with an
        // earlier block names other offsets (every block persists a later offset than the one
        // before it), and the last block's metadata is then whole.
        if let Some(state) = store.state()?.and_then(|raw| KafkaMetadata::decode(raw).ok()) {
            if state.last_offset_persisted == kafka.last_offset_persisted
                && state.last_original_offset_processed == kafka.last_original_offset_processed
            {
                kafka.last_resubmitted_config_offset = state.last_resubmitted_config_offset;
            }
        }
        if !sane_offsets(&kafka) {
            // Written from a forged record by an older build: resume with the de-duplication
            // state of the newest block written before it (no genuine copy was processed since,
            // as every one fell below the forged value), as every OSN of the chain does.
            let mut n = number;
            let repaired = loop {
                if n == 0 {
                    break (0, 0);
                }
                n -= 1;
                let earlier = Self::read(store, channel, n)?.ok_or_else(|| corrupt(n, "missing".into()))?;
                match kafka_metadata(&earlier) {
                    Some(k) if sane_offsets(&k) => {
                        break (k.last_original_offset_processed, k.last_resubmitted_config_offset)
                    }
                    _ => {}
                }
            };
            tracing::warn!(
                %channel,
                block = number,
                last_offset_persisted = kafka.last_offset_persisted,
                last_original_offset_processed = kafka.last_original_offset_processed,
                last_resubmitted_config_offset = kafka.last_resubmitted_config_offset,
                resumed_from_block = n,
                "the last block's Kafka metadata names offsets past its own records (a forged record); resuming \
                 with the de-duplication state of the last block before it"
            );
            (kafka.last_original_offset_processed, kafka.last_resubmitted_config_offset) = repaired;
        }
        let tip = ChainTip {
            next_number: number + 1,
            previous_hash: header_hash(header).into(),
            kafka,
            last_config: last_config(&block).unwrap_or(0),
        };
        let config_block = if tip.last_config == number {
            block
        } else {
            Self::read(store, channel, tip.last_config)?.ok_or_else(|| corrupt(tip.last_config, "missing".into()))?
        };
        let config = block_config(&config_block)
            .and_then(|c| Bundle::new(channel, c))
            .map_err(|e| corrupt(tip.last_config, e))?;
        Ok((tip, config))
    }

    /// Reads the tip, height and configuration again from what is stored: after a panic in the
    /// middle of [`Ledger::append`] (the block written, the tip not yet updated, the tip's lock
    /// poisoned), the in-memory state is the store's again before anything builds on it.
    pub fn reload(&self) -> Result<u64, LedgerError> {
        let mut tip = self.tip.lock().unwrap_or_else(|e| e.into_inner());
        let last = self.store.last()?.ok_or_else(|| LedgerError::Corrupt {
            channel: self.channel.clone(),
            number: 0,
            reason: "no block is stored".into(),
        })?;
        let (fresh, config) = Self::state(&*self.store, &self.channel, last)?;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        *tip = fresh;
        self.tip.clear_poison();
        self.height.send_if_modified(|h| std::mem::replace(h, tip.next_number) != tip.next_number);
        Ok(tip.next_number)
    }

    fn read(store: &dyn ChannelStore, channel: &str, number: u64) -> Result<Option<Block>, LedgerError> {
        match store.get(number)? {
            None => Ok(None),
            Some(raw) => Block::decode(raw).map(Some).map_err(|e| LedgerError::Corrupt {
                channel: channel.to_owned(),
                number,
                reason: format!("does not decode: {e}"),
            }),
        }
    }

    /// After a storage failure: makes the storage able to write again if it can now, and reads
    /// the tip again from what it holds (a failed write may or may not have stored its block).
    /// The height, once writes can succeed; Err while they still cannot. Blocks (I/O).
    pub fn recover(&self) -> Result<u64, LedgerError> {
        self.store.recover()?;
        self.reload()
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The channel configuration in force (of the newest config block).
    pub fn config(&self) -> Arc<Bundle> {
        self.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Checks every stored block, from the genesis block to the tip: its number, its link to the
    /// block before and its data hash (`core::verify_chain::check_structure`). A ledger altered on
    /// disk (a block truncated, changed or gone) is refused, naming the channel and the first bad
    /// block, instead of being served or built on. The number of blocks checked.
    pub fn check_stored(&self) -> Result<u64, LedgerError> {
        let height = self.height();
        let mut previous: Option<Bytes> = None;
        for number in 0..height {
            let corrupt = |reason: String| LedgerError::Corrupt { channel: self.channel.clone(), number, reason };
            let raw = self.store.get(number).map_err(|e| corrupt(format!("it cannot be read: {e}")))?;
            let raw = raw.ok_or_else(|| corrupt("it is missing".into()))?;
            let block = Block::decode(raw).map_err(|e| corrupt(format!("it does not decode as a block: {e}")))?;
            let hash = crate::core::verify_chain::check_structure(&block, number, previous.as_ref())
                .map_err(|fault| corrupt(fault.to_string()))?;
            previous = Some(hash);
        }
        Ok(height)
    }

    /// Number of blocks (the next block's number).
    pub fn height(&self) -> u64 {
        *self.height.borrow()
    }

    /// A receiver that sees every height change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.height.subscribe()
    }

    /// What the ordering chain resumes from.
    pub fn tip(&self) -> ChainTip {
        self.tip.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn block(&self, number: u64) -> Result<Option<Block>, LedgerError> {
        Self::read(&*self.store, &self.channel, number)
    }

    /// A block's marshaled bytes, as stored (serving them needs no re-encoding).
    pub fn block_bytes(&self, number: u64) -> Result<Option<Bytes>, LedgerError> {
        match self.recent.get(number) {
            Some(stored) => Ok(Some(stored.raw())),
            None => self.store.get(number),
        }
    }

    /// Block `number` as stored, framed for deliver streams when it is one of the newest.
    pub fn stored_block(&self, number: u64) -> Result<Option<BlockBytes>, LedgerError> {
        match self.recent.get(number) {
            Some(stored) => Ok(Some(stored)),
            None => Ok(self.store.get(number)?.map(BlockBytes::Plain)),
        }
    }

    /// Appends the next block. This is the commit point: once it returns, the block and the Kafka
    /// offset in its ORDERER metadata are durable (with sync writes) and visible to readers.
    pub fn append(&self, block: &Block) -> Result<(), LedgerError> {
        self.append_resuming(block, None)
    }

    /// [`Ledger::append`], keeping the chain's re-submitted config offset with the block when its
    /// metadata leaves it out (a block cut by a time-to-cut), so a restart resumes with it.
    pub fn append_resuming(&self, block: &Block, resubmitted_config_offset: Option<i64>) -> Result<(), LedgerError> {
        self.append_all(&[(block, resubmitted_config_offset)])
    }

    /// Appends blocks that follow each other, each with the resume offset of [`Ledger::append_resuming`],
    /// in one atomic write (one fsync for all of them): after a crash all are there or none. The
    /// tip, height and configuration move past the last one once the write returns.
    pub fn append_all(&self, blocks: &[(&Block, Option<i64>)]) -> Result<(), LedgerError> {
        let mut tip = self.tip.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = tip.clone();
        let mut entries = Vec::with_capacity(blocks.len());
        let mut config = None;
        for (block, resubmitted_config_offset) in blocks {
            let header = block.header.as_ref().ok_or_else(|| LedgerError::Corrupt {
                channel: self.channel.clone(),
                number: next.next_number,
                reason: "block to append has no header".into(),
            })?;
            if header.number != next.next_number {
                return Err(LedgerError::OutOfOrder {
                    channel: self.channel.clone(),
                    expected: next.next_number,
                    got: header.number,
                });
            }
            if header.previous_hash != next.previous_hash {
                return Err(LedgerError::BrokenLink { channel: self.channel.clone(), number: header.number });
            }
            let written = kafka_metadata(block).ok_or_else(|| LedgerError::Corrupt {
                channel: self.channel.clone(),
                number: header.number,
                reason: "block to append has no ORDERER (Kafka) metadata".into(),
            })?;
            let mut kafka = written;
            if let Some(offset) = resubmitted_config_offset {
                kafka.last_resubmitted_config_offset = *offset;
            }
            // Only what the block's metadata leaves out needs writing beside it (rare: a block cut
            // by a time-to-cut after a config was re-submitted).
            let state = (kafka != written).then(|| kafka.encode_to_vec());
            // A block that is its own LAST_CONFIG is a config block: its configuration is in force.
            if let Some(n) = last_config(block).filter(|&n| n == header.number && n > 0) {
                config = Some(
                    block_config(block)
                        .and_then(|c| Bundle::new(&self.channel, c))
                        .map_err(|reason| LedgerError::Corrupt { channel: self.channel.clone(), number: n, reason })?,
                );
            }
            // Encoded once, behind the prefix of a deliver frame (see `BlockBytes`).
            let stored = BlockBytes::framed(block.encoded_len(), |out| block.encode(out).expect("a Vec grows"));
            entries.push((header.number, stored, state));
            next = ChainTip {
                next_number: header.number + 1,
                previous_hash: header_hash(header).into(),
                kafka,
                last_config: last_config(block).unwrap_or(next.last_config),
            };
        }
        if entries.is_empty() {
            return Ok(());
        }
        for _ in &entries {
            crate::faults::crash_point("ledger.before-write");
        }
        let refs: Vec<StoredBlock<'_>> =
            entries.iter().map(|(n, stored, state)| (*n, stored.as_raw(), state.as_deref())).collect();
        self.store.append_all(&refs)?;
        drop(refs);
        for (number, stored, _) in entries {
            crate::faults::crash_point("ledger.after-write");
            // Durable now: readers close behind the tip get these bytes as they are.
            self.recent.put(number, stored);
        }
        if let Some(config) = config {
            crate::faults::crash_point("ledger.after-config-write");
            *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        }
        *tip = next;
        self.height.send_replace(tip.next_number);
        Ok(())
    }

    /// Hands blocks to the ledger's writer and returns at once, so that the channel goes on
    /// consuming and cutting while they are made durable. The writers are a fixed pool of
    /// threads shared by every ledger ([`WRITERS`]), a channel always on the same one, so its
    /// jobs are written in order. Blocks while [`WRITE_QUEUE`] jobs wait at that writer already
    /// (the disk is behind: the channel waits for it, as it did when it wrote the blocks itself).
    /// A writer takes every job waiting and writes each ledger's blocks in one atomic write
    /// ([`Ledger::append_all`]), then calls each job's `done` in order with what came of it; a
    /// job of a generation that is over ([`Ledger::settle`]), or after a failed write of its
    /// generation, is dropped unwritten and its `done` is not called.
    pub fn submit(self: &Arc<Self>, job: WriteJob) {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        if let Err(std::sync::mpsc::SendError((_, job))) = writer_for(&self.channel).send((self.clone(), job)) {
            // The writer thread is gone (it cannot be: it never ends); say so as a failure.
            self.done(1);
            (job.done)(Written {
                generation: job.generation,
                result: Err(WriteFailure::Ledger(LedgerError::Storage {
                    channel: self.channel.clone(),
                    message: "the ledger's writer thread is gone".into(),
                })),
                height: self.height(),
                took: None,
            });
        }
    }

    /// `n` jobs are done (written or dropped).
    fn done(&self, n: usize) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        *pending = pending.saturating_sub(n);
        if *pending == 0 {
            self.idle.notify_all();
        }
    }

    /// Ends the current write generation and waits until the writers hold no job of this ledger
    /// any more (at most [`SETTLE_WAIT`]): every block handed to them before is written or
    /// dropped, so that the tip read next is final. The new generation, for the jobs that build
    /// on that tip.
    pub fn settle(&self) -> u64 {
        let generation = self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (pending, waited) = self
            .idle
            .wait_timeout_while(pending, SETTLE_WAIT, |pending| *pending > 0)
            .unwrap_or_else(|e| e.into_inner());
        if waited.timed_out() {
            tracing::warn!(channel = %self.channel, pending = *pending, "the ledger's writer did not finish its jobs in {SETTLE_WAIT:?}");
        }
        generation
    }

    /// The jobs `jobs` of one take of the writer: those of the current generation written in one
    /// go, the others dropped.
    fn write_jobs(&self, jobs: Vec<WriteJob>) {
        use std::sync::atomic::Ordering::SeqCst;
        let current = self.generation.load(SeqCst);
        let failed = self.failed_generation.load(SeqCst);
        let (mut live, stale): (Vec<_>, Vec<_>) =
            jobs.into_iter().partition(|job| job.generation == current && job.generation != failed);
        drop(stale);
        if live.is_empty() {
            return;
        }
        let blocks: Vec<(Block, Option<i64>)> =
            live.iter_mut().flat_map(|job| std::mem::take(&mut job.blocks)).collect();
        let started = std::time::Instant::now();
        let refs: Vec<(&Block, Option<i64>)> = blocks.iter().map(|(block, offset)| (block, *offset)).collect();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.append_all(&refs)));
        let mut took = Some(started.elapsed());
        let result = match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WriteFailure::Ledger(e)),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|m| m.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                Err(WriteFailure::Panic(message))
            }
        };
        if result.is_err() {
            self.failed_generation.store(current, SeqCst);
            // A store may have kept some of the write's blocks (or all: a panic after it): the
            // tip is what it holds, before anything builds on it again.
            if let Err(e) = self.reload() {
                tracing::debug!(channel = %self.channel, error = %e, "the ledger cannot be read again after a failed write");
            }
        }
        let height = self.height();
        for job in live {
            let result = match &result {
                Ok(()) => Ok(()),
                Err(WriteFailure::Ledger(e)) => Err(WriteFailure::Ledger(e.clone())),
                Err(WriteFailure::Panic(m)) => Err(WriteFailure::Panic(m.clone())),
            };
            (job.done)(Written { generation: job.generation, result, height, took: took.take() });
        }
    }
}

/// How many jobs a writer holds before [`Ledger::submit`] waits.
pub const WRITE_QUEUE: usize = 16;
/// How many jobs the writer takes into one write at most.
const WRITE_GROUP: usize = 64;
/// How long [`Ledger::settle`] waits for the writer.
pub const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Blocks for the ledger's writer ([`Ledger::submit`]).
pub struct WriteJob {
    /// The generation the blocks build on ([`Ledger::settle`]).
    pub generation: u64,
    /// The blocks in order, each with its resume offset ([`Ledger::append_resuming`]).
    pub blocks: Vec<(Block, Option<i64>)>,
    /// Told what came of the write (on the writer's thread).
    pub done: Box<dyn FnOnce(Written) + Send>,
}

/// What came of a [`WriteJob`].
#[derive(Debug)]
pub struct Written {
    pub generation: u64,
    pub result: Result<(), WriteFailure>,
    /// The ledger's height after the write.
    pub height: u64,
    /// How long the write that held the job's blocks took, told with the write's first job only
    /// (one write, one measure).
    pub took: Option<std::time::Duration>,
}

#[derive(Debug)]
pub enum WriteFailure {
    Ledger(LedgerError),
    /// The write panicked (a bug, or `OSN_PANIC_AT`): its message.
    Panic(String),
}

/// How many writer threads the ledgers share: one per core, from 2 to 8. Fixed, so threads do
/// not grow with channels.
pub fn writers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8)
}

/// The writer pool's queues, one per thread (started with the first block submitted).
static WRITERS: std::sync::OnceLock<Vec<WriterQueue>> = std::sync::OnceLock::new();

/// A writer thread's queue: jobs with the ledger they are for.
type WriterQueue = std::sync::mpsc::SyncSender<(Arc<Ledger>, WriteJob)>;

/// The queue of the writer that writes `channel`'s blocks.
fn writer_for(channel: &str) -> &'static WriterQueue {
    let writers = WRITERS.get_or_init(|| (0..writers()).map(start_writer).collect());
    &writers[crate::core::shard_of(channel, writers.len())]
}

/// Starts writer `n`: it takes every job waiting (up to [`WRITE_GROUP`]), and writes each
/// ledger's in one go, in the order they came.
fn start_writer(n: usize) -> WriterQueue {
    let (jobs, queue) = std::sync::mpsc::sync_channel::<(Arc<Ledger>, WriteJob)>(WRITE_QUEUE);
    let spawned = std::thread::Builder::new().name(format!("ledger-writer-{n}")).spawn(move || {
        while let Ok(first) = queue.recv() {
            let mut taken = vec![first];
            while taken.len() < WRITE_GROUP {
                match queue.try_recv() {
                    Ok(job) => taken.push(job),
                    Err(_) => break,
                }
            }
            // By ledger, each ledger's jobs in their order.
            let mut by_ledger: Vec<(Arc<Ledger>, Vec<WriteJob>)> = Vec::new();
            for (ledger, job) in taken {
                match by_ledger.iter_mut().find(|(l, _)| Arc::ptr_eq(l, &ledger)) {
                    Some((_, jobs)) => jobs.push(job),
                    None => by_ledger.push((ledger, vec![job])),
                }
            }
            for (ledger, jobs) in by_ledger {
                let n = jobs.len();
                ledger.write_jobs(jobs);
                ledger.done(n);
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a ledger writer thread");
    }
    jobs
}

/// The channels created through a system channel's ledger, in order: name and genesis CONFIG
/// envelope of each ORDERER_TRANSACTION block (the chain only writes valid creations).
pub fn created_channels(system: &Ledger) -> anyhow::Result<Vec<(String, Bytes)>> {
    let mut created = Vec::new();
    for number in 1..system.height() {
        let Some(block) = system.block(number)? else { continue };
        let Some(data) = block.data else { continue };
        let [envelope] = data.data.as_slice() else { continue };
        let Ok((header, inner)) = envelope_parts(envelope) else { continue };
        if header.r#type != HeaderType::OrdererTransaction as i32 {
            continue;
        }
        if let Ok((inner_header, _)) = envelope_parts(&inner) {
            created.push((inner_header.channel_id, inner));
        }
    }
    Ok(created)
}

/// Reads the channel configuration out of a config block (the genesis block, or a block whose
/// LAST_CONFIG is itself): its one CONFIG envelope's ConfigEnvelope.
pub fn block_config(block: &Block) -> Result<Config, String> {
    let data = block.data.as_ref().and_then(|d| d.data.first()).ok_or("the config block has no data")?;
    let (_, envelope) = crate::core::config::config_envelope(data)?;
    envelope.config.ok_or_else(|| "the CONFIG envelope holds no configuration".into())
}

#[cfg(test)]
mod tests;
