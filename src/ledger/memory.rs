//! In-memory ledger storage, for tests and for comparing behaviour with RocksDB.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::{ChannelStore, LedgerError, Store};

#[derive(Default)]
pub struct MemoryStore {
    channels: Mutex<HashMap<String, Arc<MemoryChannel>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn channel(&self, channel: &str) -> Result<Arc<dyn ChannelStore>, LedgerError> {
        let mut channels = self.channels.lock().expect("memory store lock");
        Ok(channels.entry(channel.to_owned()).or_default().clone())
    }

    fn channels(&self) -> Result<Vec<String>, LedgerError> {
        let mut names: Vec<String> = self.channels.lock().expect("memory store lock").keys().cloned().collect();
        names.sort();
        Ok(names)
    }
}

#[derive(Default)]
pub struct MemoryChannel {
    blocks: Mutex<(Vec<Bytes>, Option<Bytes>)>,
}

impl ChannelStore for MemoryChannel {
    fn last(&self) -> Result<Option<(u64, Bytes)>, LedgerError> {
        let guard = self.blocks.lock().expect("memory channel lock");
        let blocks = &guard.0;
        Ok(blocks.last().map(|b| (blocks.len() as u64 - 1, b.clone())))
    }

    fn get(&self, number: u64) -> Result<Option<Bytes>, LedgerError> {
        let guard = self.blocks.lock().expect("memory channel lock");
        Ok(usize::try_from(number).ok().and_then(|n| guard.0.get(n)).cloned())
    }

    fn append(&self, number: u64, block: &[u8], state: Option<&[u8]>) -> Result<(), LedgerError> {
        let mut guard = self.blocks.lock().expect("memory channel lock");
        let (blocks, stored) = &mut *guard;
        if number != blocks.len() as u64 {
            return Err(LedgerError::OutOfOrder { channel: String::new(), expected: blocks.len() as u64, got: number });
        }
        blocks.push(Bytes::copy_from_slice(block));
        if let Some(state) = state {
            *stored = Some(Bytes::copy_from_slice(state));
        }
        Ok(())
    }

    fn state(&self) -> Result<Option<Bytes>, LedgerError> {
        Ok(self.blocks.lock().expect("memory channel lock").1.clone())
    }
}
