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

use bytes::{BufMut as _, Bytes, BytesMut};

/// Most blocks kept per ledger.
pub const RECENT_BLOCKS: usize = 8;
/// Most bytes kept across every ledger of the process.
pub const RECENT_BUDGET: usize = 64 << 20;

/// A stored block's bytes. A block just written is kept with, in front of it in the same
/// allocation, the prefix that makes it a deliver frame (`DeliverResponse{block}`, field 2), so
/// that every live subscriber's frame is a reference count, not a copy of the whole block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockBytes {
    /// `frame[at..]` is the block.
    Framed { frame: Bytes, at: usize },
    /// The block alone (as read from the store).
    Plain(Bytes),
}

impl BlockBytes {
    /// The deliver frame of `block` (its encoding, `encoded_len` bytes, written by `encode`)
    /// with the block's bytes at its end: one allocation, one encoding.
    pub fn framed(encoded_len: usize, encode: impl FnOnce(&mut Vec<u8>)) -> Self {
        let mut frame = Vec::with_capacity(encoded_len + 11);
        frame.put_u8(0x12); // field 2 (block), wire type 2
        prost::encoding::encode_varint(encoded_len as u64, &mut frame);
        let at = frame.len();
        encode(&mut frame);
        debug_assert_eq!(frame.len() - at, encoded_len);
        BlockBytes::Framed { frame: frame.into(), at }
    }

    /// The block's protobuf bytes.
    pub fn raw(&self) -> Bytes {
        match self {
            BlockBytes::Framed { frame, at } => frame.slice(*at..),
            BlockBytes::Plain(raw) => raw.clone(),
        }
    }

    /// The block's protobuf bytes, borrowed.
    pub fn as_raw(&self) -> &[u8] {
        match self {
            BlockBytes::Framed { frame, at } => &frame[*at..],
            BlockBytes::Plain(raw) => raw,
        }
    }

    /// `DeliverResponse{block}`'s protobuf bytes: shared when kept framed, built otherwise.
    pub fn deliver_frame(&self) -> Bytes {
        match self {
            BlockBytes::Framed { frame, .. } => frame.clone(),
            BlockBytes::Plain(raw) => {
                let mut out = BytesMut::with_capacity(raw.len() + 11);
                out.put_u8(0x12);
                prost::encoding::encode_varint(raw.len() as u64, &mut out);
                out.extend_from_slice(raw);
                out.freeze()
            }
        }
    }

    /// The bytes it holds.
    fn held(&self) -> usize {
        match self {
            BlockBytes::Framed { frame, .. } => frame.len(),
            BlockBytes::Plain(raw) => raw.len(),
        }
    }
}

/// Bytes held by every [`Recent`] of the process.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// One ledger's newest blocks: consecutive numbers, oldest first.
#[derive(Debug, Default)]
pub struct Recent {
    blocks: Mutex<VecDeque<(u64, BlockBytes)>>,
}

impl Recent {
    /// Block `number`, if it is one of those kept.
    pub fn get(&self, number: u64) -> Option<BlockBytes> {
        let blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let first = blocks.front()?.0;
        let index = usize::try_from(number.checked_sub(first)?).ok()?;
        blocks.get(index).map(|(n, raw)| {
            debug_assert_eq!(*n, number);
            raw.clone()
        })
    }

    /// Keeps block `number`, just written; the oldest kept go to make room.
    pub fn put(&self, number: u64, raw: BlockBytes) {
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        if blocks.back().is_some_and(|(last, _)| last + 1 != number) {
            // Not the next one (cannot happen through Ledger::append_all): start over.
            Self::drop_all(&mut blocks);
        }
        while blocks.len() >= RECENT_BLOCKS
            || (!blocks.is_empty() && HELD.load(Ordering::Relaxed) + raw.held() > RECENT_BUDGET)
        {
            let (_, old) = blocks.pop_front().expect("not empty");
            HELD.fetch_sub(old.held(), Ordering::Relaxed);
        }
        if HELD.load(Ordering::Relaxed) + raw.held() > RECENT_BUDGET {
            return; // Other ledgers hold the budget: this one keeps nothing for now.
        }
        HELD.fetch_add(raw.held(), Ordering::Relaxed);
        blocks.push_back((number, raw));
    }

    fn drop_all(blocks: &mut VecDeque<(u64, BlockBytes)>) {
        for (_, old) in blocks.drain(..) {
            HELD.fetch_sub(old.held(), Ordering::Relaxed);
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
        let plain = |b: Bytes| BlockBytes::Plain(b);
        let recent = Recent::default();
        assert_eq!(recent.get(0), None);
        for n in 0..20u64 {
            recent.put(n, plain(Bytes::from(vec![n as u8; 10])));
        }
        // The last RECENT_BLOCKS, each the very bytes put.
        assert_eq!(recent.get(11), None);
        for n in 12..20u64 {
            assert_eq!(recent.get(n).unwrap().raw(), Bytes::from(vec![n as u8; 10]));
        }
        assert_eq!(recent.get(20), None);
        // A gap starts over.
        recent.put(30, plain(Bytes::from_static(b"thirty")));
        assert_eq!((recent.get(19), recent.get(30).map(|b| b.raw())), (None, Some(Bytes::from_static(b"thirty"))));
        // A block larger than the whole budget is not kept, and the ledger still answers from the store.
        recent.put(31, plain(Bytes::from(vec![0; RECENT_BUDGET + 1])));
        assert_eq!(recent.get(31), None);
        recent.put(32, plain(Bytes::from_static(b"after")));
        assert_eq!(recent.get(32).map(|b| b.raw()), Some(Bytes::from_static(b"after")));
    }

    #[test]
    fn a_framed_block_is_its_deliver_frame_and_its_bytes_in_one_allocation() {
        use prost::Message as _;
        let block = crate::proto::Block {
            header: Some(crate::proto::BlockHeader { number: 7, ..Default::default() }),
            data: Some(crate::proto::BlockData { data: vec![Bytes::from(vec![0xab; 300])] }),
            metadata: None,
        };
        let framed = BlockBytes::framed(block.encoded_len(), |out| block.encode(out).expect("room"));
        let plain = BlockBytes::Plain(block.encode_to_vec().into());
        assert_eq!(framed.raw(), plain.raw());
        // Both frames are DeliverResponse{block}, byte for byte.
        assert_eq!(framed.deliver_frame(), plain.deliver_frame());
        let resp = crate::proto::DeliverResponse::decode(framed.deliver_frame()).unwrap();
        assert_eq!(resp.r#type, Some(crate::proto::orderer::deliver_response::Type::Block(block)));
        // The block's bytes are the frame's tail, not a copy of them.
        let (frame, raw) = (framed.deliver_frame(), framed.raw());
        assert_eq!(raw.as_ptr(), frame[frame.len() - raw.len()..].as_ptr());
    }
}
