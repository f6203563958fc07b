//! RocksDB ledger storage: one database, one column family per channel (`channel/<name>`),
//! blocks keyed by their number as 8 big-endian bytes, appended (one or several at once) in one
//! `WriteBatch` with the channel's resume state (key `[0]` of the same column family), fsynced by default
//! (`ledger.sync-writes`).
//!
//! A failed write (a full disk, an I/O error) leaves RocksDB refusing every later write, even
//! once the disk has room again (its write-ahead log keeps the error; the C API has no
//! `Resume`). The store remembers the failure ([`Store::failure`]) and [`ChannelStore::recover`]
//! reopens the database, shared by every channel, once a probe write to its directory succeeds:
//! reads go on meanwhile, from the database as it was.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rocksdb::{
    BoundColumnFamily, ColumnFamilyDescriptor, DBWithThreadMode, Direction, IteratorMode, MultiThreaded, Options,
    WriteBatch, WriteOptions,
};

use super::{ChannelStore, LedgerError, Store, StoredBlock};
use crate::metrics::metrics;

type Db = DBWithThreadMode<MultiThreaded>;

const CF_PREFIX: &str = "channel/";
/// The key of a channel's resume state, in the channel's column family beside its blocks: one
/// byte, so it sorts before every block key (8 bytes) and a reverse scan meets it only when there
/// is no block. Written in the batch of a block whose metadata does not hold the whole state.
const STATE_KEY: &[u8] = &[0];

pub struct RocksStore {
    shared: Arc<Shared>,
}

/// What every channel's handle shares: the database, and what to reopen it with.
struct Shared {
    path: PathBuf,
    sync: bool,
    /// None only while it is reopened, or if reopening failed both ways.
    db: RwLock<Option<Arc<Db>>>,
    /// The last write failure, until a reopen succeeds.
    failure: Mutex<Option<String>>,
    /// One reopen at a time.
    reopening: Mutex<()>,
}

/// How much a probe writes (and syncs, then removes) before the database is reopened: room for a
/// new write-ahead log, a manifest and a block or two.
const PROBE_BYTES: usize = 4 << 20;
/// How long a reopen waits for reads and writes in flight on the old database to finish.
const DRAIN: Duration = Duration::from_secs(5);

fn err(channel: &str, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Storage { channel: channel.to_owned(), message: e.to_string() }
}

fn cf_options() -> Options {
    let mut opts = Options::default();
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts
}

impl RocksStore {
    /// Opens (creating if needed) the database at `path`, with every channel it already holds.
    pub fn open(path: &Path, sync: bool) -> Result<Self, LedgerError> {
        let opts = db_options(path);
        let existing =
            if path.join("CURRENT").exists() { Db::list_cf(&opts, path).map_err(|e| err("*", e))? } else { vec![] };
        let cfs = existing.into_iter().map(|name| ColumnFamilyDescriptor::new(name, cf_options()));
        let db = Db::open_cf_descriptors(&opts, path, cfs)
            .map_err(|e| err("*", format!("cannot open {}: {e}", path.display())))?;
        Ok(RocksStore::new(path, sync, db))
    }

    fn new(path: &Path, sync: bool, db: Db) -> Self {
        let shared = Shared {
            path: path.to_owned(),
            sync,
            db: RwLock::new(Some(Arc::new(db))),
            failure: Mutex::default(),
            reopening: Mutex::default(),
        };
        RocksStore { shared: Arc::new(shared) }
    }

    /// Opens an existing database read-only, for offline tools (`osn ledger verify`). RocksDB takes
    /// no lock for a read-only open, so this works while an OSN holds the database: it sees the
    /// blocks written when it opened (including the OSN's write-ahead log), and nothing later.
    /// Writing through a read-only store fails.
    pub fn open_read_only(path: &Path) -> Result<Self, LedgerError> {
        if !path.join("CURRENT").exists() {
            return Err(err("*", format!("{} is not a ledger (no RocksDB database there)", path.display())));
        }
        let opts = Options::default();
        let existing = Db::list_cf(&opts, path).map_err(|e| err("*", e))?;
        let cfs = existing.into_iter().map(|name| ColumnFamilyDescriptor::new(name, cf_options()));
        let db = Db::open_cf_descriptors_read_only(&opts, path, cfs, false)
            .map_err(|e| err("*", format!("cannot open {} read-only: {e}", path.display())))?;
        Ok(RocksStore::new(path, false, db))
    }
}

/// The options every read-write open of the database in `path` uses.
fn db_options(path: &Path) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // Memtable flushes and compactions sync their files every megabyte as they go. Left to
    // the kernel, a flush's 64 MB of dirty pages are written back in one burst, and the
    // write-ahead log's fsync of the next block waits behind it: commits of 0.2-0.8 s, twice
    // per 10 s at 12,500 envelopes/s, each stalling the channel.
    opts.set_bytes_per_sync(1 << 20);
    // One column family per channel, most of them idle: without a cap on all memtables and on
    // the write-ahead log, thousands of small memtables add up, and a write-ahead log file
    // stays until every channel with a block in it has flushed (never, for an idle channel).
    // Past either cap RocksDB flushes the column families holding the oldest data.
    opts.set_db_write_buffer_size(512 << 20);
    opts.set_max_total_wal_size(256 << 20);
    // Memtable flushes and compactions write their files past the page cache. Through it, every
    // flushed megabyte took fresh page-cache pages, which the kernel zeroes and, on a VM that
    // hands freed memory back to its host, the host faults in again; the OSN's own CPU per
    // transaction at full load then varied from 19 to 38 µs with the VM's memory (BENCHMARKS.md,
    // "Flushes past the page cache"). Blocks read back (deliver from far behind) still go
    // through the page cache. Only where the filesystem takes O_DIRECT.
    if direct_io_works(path) {
        opts.set_use_direct_io_for_flush_and_compaction(true);
    } else {
        tracing::info!(path = %path.display(), "the ledger's filesystem does not take O_DIRECT: memtable flushes go through the page cache");
    }
    opts
}

/// Whether a file in `dir` can be opened with O_DIRECT (most local filesystems can; some FUSE
/// filesystems and older tmpfs cannot, and RocksDB's flushes would fail there).
fn direct_io_works(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let _ = std::fs::create_dir_all(dir);
        let probe = dir.join(".osn-direct-io-probe");
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&probe);
        let _ = std::fs::remove_file(&probe);
        opened.is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        false
    }
}

impl Shared {
    /// The database, for one operation.
    fn db(&self) -> Result<Arc<Db>, LedgerError> {
        self.db.read().unwrap_or_else(|e| e.into_inner()).clone().ok_or_else(|| {
            let failure = self.failure().unwrap_or_default();
            err("*", format!("the ledger database is closed after a write failure ({failure}); it is reopened once {} is writable", self.path.display()))
        })
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records a failed write; every channel's later writes need a reopen ([`Shared::recover`]).
    fn write_failed(&self, channel: &str, e: impl std::fmt::Display) -> LedgerError {
        let e = err(channel, e);
        let LedgerError::Storage { message, .. } = &e else { unreachable!("err makes Storage errors") };
        let first = self.failure.lock().unwrap_or_else(|e| e.into_inner()).replace(message.clone()).is_none();
        let m = metrics();
        m.ledger_write_failures.with_label_values(&[channel]).inc();
        m.ledger_storage_failed.set(1);
        if first {
            tracing::error!(path = %self.path.display(), channel, error = %message, "ledger write failed: channels stop committing until the database can write again");
        }
        e
    }

    /// Reopens the database after a write failure, once a probe write to its directory
    /// succeeds. Ok(false) if there was nothing to recover (another channel's call did it).
    fn recover(&self) -> Result<bool, LedgerError> {
        let _one = self.reopening.lock().unwrap_or_else(|e| e.into_inner());
        let Some(failure) = self.failure() else { return Ok(false) };
        probe(&self.path)
            .map_err(|e| err("*", format!("{failure}; {} still cannot be written: {e}", self.path.display())))?;
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        // Reads and writes that took the database before the lock finish on it first: RocksDB
        // opens a directory once per process.
        let began = Instant::now();
        while slot.as_ref().is_some_and(|db| Arc::strong_count(db) > 1) {
            if began.elapsed() > DRAIN {
                return Err(err(
                    "*",
                    format!("{failure}; the database is still in use after {DRAIN:?}, reopening later"),
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(slot.take());
        let opened = Db::list_cf(&Options::default(), &self.path).and_then(|existing| {
            let cfs = existing.into_iter().map(|name| ColumnFamilyDescriptor::new(name, cf_options()));
            Db::open_cf_descriptors(&db_options(&self.path), &self.path, cfs)
        });
        match opened {
            Ok(db) => {
                *slot = Some(Arc::new(db));
                *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
                metrics().ledger_storage_failed.set(0);
                metrics().ledger_reopens.inc();
                tracing::info!(path = %self.path.display(), after = %failure, "ledger database reopened: it can write again");
                Ok(true)
            }
            Err(e) => {
                // Blocks already written stay readable while the disk is still short of room.
                let existing = Db::list_cf(&Options::default(), &self.path).unwrap_or_default();
                let cfs = existing.into_iter().map(|name| ColumnFamilyDescriptor::new(name, cf_options()));
                *slot = Db::open_cf_descriptors_read_only(&Options::default(), &self.path, cfs, false)
                    .map(Arc::new)
                    .inspect_err(|e| tracing::error!(path = %self.path.display(), error = %e, "cannot open the ledger database even read-only"))
                    .ok();
                Err(err("*", format!("{failure}; reopening {} failed: {e}", self.path.display())))
            }
        }
    }
}

/// Writes, syncs and removes a file of [`PROBE_BYTES`] in `dir`: whether a write can succeed now.
fn probe(dir: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let path = dir.join("osn-write-probe");
    let result = (|| {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&vec![0u8; PROBE_BYTES])?;
        file.sync_all()
    })();
    let _ = std::fs::remove_file(&path);
    result
}

impl RocksStore {
    /// The column family holding a channel's blocks.
    pub fn cf_name(channel: &str) -> String {
        format!("{CF_PREFIX}{channel}")
    }

    /// Writes every channel's memtable to table files (tests that need blocks in SST files).
    #[cfg(test)]
    pub fn flush(&self) {
        let db = self.shared.db().unwrap();
        for name in Db::list_cf(&Options::default(), db.path()).unwrap() {
            if let Some(cf) = db.cf_handle(&name) {
                db.flush_cf(&cf).unwrap();
            }
        }
    }
}

impl Store for RocksStore {
    fn channel(&self, channel: &str) -> Result<Arc<dyn ChannelStore>, LedgerError> {
        let cf = Self::cf_name(channel);
        let db = self.shared.db()?;
        if db.cf_handle(&cf).is_none() {
            db.create_cf(&cf, &cf_options()).map_err(|e| self.shared.write_failed(channel, e))?;
        }
        Ok(Arc::new(RocksChannel { shared: self.shared.clone(), cf, channel: channel.to_owned() }))
    }

    fn channels(&self) -> Result<Vec<String>, LedgerError> {
        let mut names: Vec<String> = Db::list_cf(&Options::default(), &self.shared.path)
            .map_err(|e| err("*", e))?
            .into_iter()
            .filter_map(|n| n.strip_prefix(CF_PREFIX).map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    fn failure(&self) -> Option<String> {
        self.shared.failure()
    }
}

struct RocksChannel {
    shared: Arc<Shared>,
    cf: String,
    channel: String,
}

impl RocksChannel {
    fn handle<'a>(&self, db: &'a Db) -> Result<Arc<BoundColumnFamily<'a>>, LedgerError> {
        db.cf_handle(&self.cf).ok_or_else(|| err(&self.channel, "column family vanished"))
    }

    /// The key of the channel's resume state, in the default column family.
    fn state_key(&self) -> &'static [u8] {
        STATE_KEY
    }
}

impl ChannelStore for RocksChannel {
    fn last(&self) -> Result<Option<(u64, Bytes)>, LedgerError> {
        let db = self.shared.db()?;
        let cf = self.handle(&db)?;
        let mut iter = db.iterator_cf(&cf, IteratorMode::From(&u64::MAX.to_be_bytes(), Direction::Reverse));
        match iter.next() {
            None => Ok(None),
            Some(Err(e)) => Err(err(&self.channel, e)),
            // Only the resume state is left: no block.
            Some(Ok((key, _))) if key.as_ref() == STATE_KEY => Ok(None),
            Some(Ok((key, value))) => {
                let key: [u8; 8] = key.as_ref().try_into().map_err(|_| LedgerError::Corrupt {
                    channel: self.channel.clone(),
                    number: 0,
                    reason: format!("unexpected key of {} bytes", key.len()),
                })?;
                Ok(Some((u64::from_be_bytes(key), Bytes::from(value.into_vec()))))
            }
        }
    }

    fn get(&self, number: u64) -> Result<Option<Bytes>, LedgerError> {
        let db = self.shared.db()?;
        let cf = self.handle(&db)?;
        let value = db.get_pinned_cf(&cf, number.to_be_bytes()).map_err(|e| err(&self.channel, e))?;
        Ok(value.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn append(&self, number: u64, block: &[u8], state: Option<&[u8]>) -> Result<(), LedgerError> {
        self.append_all(&[(number, block, state)])
    }

    fn append_all(&self, blocks: &[StoredBlock<'_>]) -> Result<(), LedgerError> {
        let db = self.shared.db()?;
        let cf = self.handle(&db)?;
        let mut batch = WriteBatch::default();
        for (number, block, state) in blocks {
            batch.put_cf(&cf, number.to_be_bytes(), block);
            if let Some(state) = state {
                batch.put_cf(&cf, self.state_key(), state);
            }
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(self.shared.sync);
        db.write_opt(batch, &opts).map_err(|e| self.shared.write_failed(&self.channel, e))
    }

    fn state(&self) -> Result<Option<Bytes>, LedgerError> {
        let db = self.shared.db()?;
        let cf = self.handle(&db)?;
        let value = db.get_pinned_cf(&cf, self.state_key()).map_err(|e| err(&self.channel, e))?;
        Ok(value.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn recover(&self) -> Result<bool, LedgerError> {
        self.shared.recover()
    }
}

#[cfg(test)]
mod probe_tests {
    /// The probe makes the ledger's directory (RocksDB would) and leaves nothing in it, whatever
    /// the filesystem answers.
    #[test]
    fn the_direct_io_probe_makes_the_directory_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger");
        let _works = super::direct_io_works(&ledger);
        assert!(ledger.is_dir());
        assert_eq!(std::fs::read_dir(&ledger).unwrap().count(), 0);
    }
}
