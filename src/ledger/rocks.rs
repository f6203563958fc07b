//! RocksDB ledger storage: one database, one column family per channel (`channel/<name>`),
//! blocks keyed by their number as 8 big-endian bytes, each appended in one `WriteBatch`
//! (fsynced by default: `ledger.sync-writes`).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use rocksdb::{
    BoundColumnFamily, ColumnFamilyDescriptor, DBWithThreadMode, Direction, IteratorMode, MultiThreaded, Options,
    WriteBatch, WriteOptions,
};

use super::{ChannelStore, LedgerError, Store};

type Db = DBWithThreadMode<MultiThreaded>;

const CF_PREFIX: &str = "channel/";

pub struct RocksStore {
    db: Arc<Db>,
    sync: bool,
}

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
        let existing =
            if path.join("CURRENT").exists() { Db::list_cf(&opts, path).map_err(|e| err("*", e))? } else { vec![] };
        let cfs = existing.into_iter().map(|name| ColumnFamilyDescriptor::new(name, cf_options()));
        let db = Db::open_cf_descriptors(&opts, path, cfs)
            .map_err(|e| err("*", format!("cannot open {}: {e}", path.display())))?;
        Ok(RocksStore { db: Arc::new(db), sync })
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
        Ok(RocksStore { db: Arc::new(db), sync: false })
    }
}

impl RocksStore {
    /// The column family holding a channel's blocks.
    pub fn cf_name(channel: &str) -> String {
        format!("{CF_PREFIX}{channel}")
    }

    /// Writes every channel's memtable to table files (tests that need blocks in SST files).
    #[cfg(test)]
    pub fn flush(&self) {
        for name in Db::list_cf(&Options::default(), self.db.path()).unwrap() {
            if let Some(cf) = self.db.cf_handle(&name) {
                self.db.flush_cf(&cf).unwrap();
            }
        }
    }
}

impl Store for RocksStore {
    fn channel(&self, channel: &str) -> Result<Arc<dyn ChannelStore>, LedgerError> {
        let cf = Self::cf_name(channel);
        if self.db.cf_handle(&cf).is_none() {
            self.db.create_cf(&cf, &cf_options()).map_err(|e| err(channel, e))?;
        }
        Ok(Arc::new(RocksChannel { db: self.db.clone(), cf, channel: channel.to_owned(), sync: self.sync }))
    }

    fn channels(&self) -> Result<Vec<String>, LedgerError> {
        let path = self.db.path();
        let mut names: Vec<String> = Db::list_cf(&Options::default(), path)
            .map_err(|e| err("*", e))?
            .into_iter()
            .filter_map(|n| n.strip_prefix(CF_PREFIX).map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }
}

struct RocksChannel {
    db: Arc<Db>,
    cf: String,
    channel: String,
    sync: bool,
}

impl RocksChannel {
    fn handle(&self) -> Result<Arc<BoundColumnFamily<'_>>, LedgerError> {
        self.db.cf_handle(&self.cf).ok_or_else(|| err(&self.channel, "column family vanished"))
    }
}

impl ChannelStore for RocksChannel {
    fn last(&self) -> Result<Option<(u64, Bytes)>, LedgerError> {
        let cf = self.handle()?;
        let mut iter = self.db.iterator_cf(&cf, IteratorMode::From(&u64::MAX.to_be_bytes(), Direction::Reverse));
        match iter.next() {
            None => Ok(None),
            Some(Err(e)) => Err(err(&self.channel, e)),
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
        let cf = self.handle()?;
        let value = self.db.get_pinned_cf(&cf, number.to_be_bytes()).map_err(|e| err(&self.channel, e))?;
        Ok(value.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn append(&self, number: u64, block: &[u8]) -> Result<(), LedgerError> {
        let cf = self.handle()?;
        let mut batch = WriteBatch::default();
        batch.put_cf(&cf, number.to_be_bytes(), block);
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync);
        self.db.write_opt(batch, &opts).map_err(|e| err(&self.channel, e))
    }
}
