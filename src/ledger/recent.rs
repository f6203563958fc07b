//! The newest blocks of a ledger as they were written, for readers close behind the tip: live
//! deliveries read each new block once per subscriber, and from here that is a reference count,
//! not a store read and a copy of the whole block.
//!
//! Only durable blocks enter ([`Recent::put`] is called once the write returned), and a durable
//! block never changes, so an entry is always what the store holds. Bounded twice: at most
//! [`RECENT_BLOCKS`] per ledger, and [`RECENT_BUDGET`] bytes across every ledger of the process
//! (a thousand busy channels must not hold a thousand times their newest blocks). A block that
//! does not fit is simply not kept; readers then go to the store, as they would without this.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

/// Most blocks kept per ledger.
pub const RECENT_BLOCKS: usize = 8;
/// Most bytes kept across every ledger of the process.
pub const RECENT_BUDGET: usize = 64 << 20;

/// Bytes held by every [`Recent`] of the process.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// One ledger's newest blocks: consecutive numbers, oldest first.
#[derive(Debug, Default)]
pub struct Recent {
    blocks: Mutex<VecDeque<(u64, Bytes)>>,
}

impl Recent {
    /// Block `number`, if it is one of those kept.
    pub fn get(&self, number: u64) -> Option<Bytes> {
        let blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let first = blocks.front()?.0;
        let index = usize::try_from(number.checked_sub(first)?).ok()?;
        blocks.get(index).map(|(n, raw)| {
            debug_assert_eq!(*n, number);
            raw.clone()
        })
    }

    /// Keeps block `number`, just written; the oldest kept go to make room.
    pub fn put(&self, number: u64, raw: Bytes) {
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        if blocks.back().is_some_and(|(last, _)| last + 1 != number) {
            // Not the next one (cannot happen through Ledger::append_all): start over.
            Self::drop_all(&mut blocks);
        }
        while blocks.len() >= RECENT_BLOCKS
            || (!blocks.is_empty() && HELD.load(Ordering::Relaxed) + raw.len() > RECENT_BUDGET)
        {
            let (_, old) = blocks.pop_front().expect("not empty");
            HELD.fetch_sub(old.len(), Ordering::Relaxed);
        }
        if HELD.load(Ordering::Relaxed) + raw.len() > RECENT_BUDGET {
            return; // Other ledgers hold the budget: this one keeps nothing for now.
        }
        HELD.fetch_add(raw.len(), Ordering::Relaxed);
        blocks.push_back((number, raw));
    }

    fn drop_all(blocks: &mut VecDeque<(u64, Bytes)>) {
        for (_, old) in blocks.drain(..) {
            HELD.fetch_sub(old.len(), Ordering::Relaxed);
        }
    }
}

impl Drop for Recent {
    fn drop(&mut self) {
        Self::drop_all(self.blocks.get_mut().unwrap_or_else(|e| e.into_inner()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_blocks_and_gives_back_their_bytes() {
        let recent = Recent::default();
        assert_eq!(recent.get(0), None);
        for n in 0..20u64 {
            recent.put(n, Bytes::from(vec![n as u8; 10]));
        }
        // The last RECENT_BLOCKS, each the very bytes put.
        assert_eq!(recent.get(11), None);
        for n in 12..20u64 {
            assert_eq!(recent.get(n).unwrap(), Bytes::from(vec![n as u8; 10]));
        }
        assert_eq!(recent.get(20), None);
        // A gap starts over.
        recent.put(30, Bytes::from_static(b"thirty"));
        assert_eq!((recent.get(19), recent.get(30)), (None, Some(Bytes::from_static(b"thirty"))));
        // A block larger than the whole budget is not kept, and the ledger still answers from the store.
        recent.put(31, Bytes::from(vec![0; RECENT_BUDGET + 1]));
        assert_eq!(recent.get(31), None);
        recent.put(32, Bytes::from_static(b"after"));
        assert_eq!(recent.get(32), Some(Bytes::from_static(b"after")));
    }
}
