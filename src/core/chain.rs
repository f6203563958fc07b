//! The per-channel ordering state machine: consumed Kafka messages in, blocks out.
//!
//! [`Chain::consume`] is a pure function of the chain's state and the message at an offset; the
//! blocks it returns (header, data, metadata) depend on nothing else, which is what lets every OSN
//! cut the same chain (invariant 1 of DESIGN.md). The caller writes the returned blocks to the
//! ledger in order; if that fails it must rebuild the chain from the ledger, never continue.
//!
//! Rules, as Fabric's Kafka chain, except that nothing here ever stops the channel:
//! - CONNECT messages are ignored;
//! - a NORMAL message goes through the block cutter; the block that does not contain the newest
//!   message persists `offset - 1`, so a restart re-consumes that message into the pending batch;
//! - a CONFIG message cuts the pending batch, then goes alone in its own block, and becomes the
//!   LAST_CONFIG of every later block;
//! - `TimeToCut{N}` cuts the pending batch when N is the next block number; a stale TTC
//!   (N smaller), a future TTC (N larger) and a TTC with nothing pending are ignored;
//! - a re-submitted message (original offset ≠ 0) already processed is dropped;
//! - an undecodable message, or an envelope over `AbsoluteMaxBytes`, is dropped.

use bytes::Bytes;
use prost::Message as _;

use crate::core::block::{build_block, header_hash};
use crate::core::cutter::{BlockCutter, Message};
use crate::proto::{
    kafka_message, kafka_message_regular::Class, BatchSize, Block, Envelope, KafkaMessage, KafkaMetadata,
};

/// What the chain resumes from: the ledger's last block.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainTip {
    /// Number of the next block to cut (the ledger height).
    pub next_number: u64,
    /// Header hash of the last block.
    pub previous_hash: Bytes,
    /// ORDERER metadata of the last block.
    pub kafka: KafkaMetadata,
    /// LAST_CONFIG index of the last block.
    pub last_config: u64,
}

/// Why a consumed message produced no block, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// A CONNECT message, with its payload (the sender's genesis block hash, for OSN senders).
    Connect(Bytes),
    /// Ordered into the pending batch; nothing to cut yet.
    Pending,
    StaleTtc {
        ttc: u64,
        next: u64,
    },
    FutureTtc {
        ttc: u64,
        next: u64,
    },
    EmptyTtc {
        ttc: u64,
    },
    AlreadyProcessed {
        original_offset: i64,
    },
    Undecodable(String),
    Rejected(String),
}

/// The outcome of consuming one message.
#[derive(Debug, Default)]
pub struct Consumed {
    /// Blocks to write, in order (zero, one or two).
    pub blocks: Vec<Block>,
    /// Why no block was cut, when none was.
    pub skip: Option<Skip>,
}

#[derive(Debug, Clone)]
pub struct Chain {
    cutter: BlockCutter,
    next_number: u64,
    previous_hash: Bytes,
    last_offset_persisted: i64,
    last_original_offset_processed: i64,
    last_resubmitted_config_offset: i64,
    last_config: u64,
}

impl Chain {
    pub fn new(tip: ChainTip, batch_size: BatchSize) -> Self {
        Chain {
            cutter: BlockCutter::new(batch_size),
            next_number: tip.next_number,
            previous_hash: tip.previous_hash,
            last_offset_persisted: tip.kafka.last_offset_persisted,
            last_original_offset_processed: tip.kafka.last_original_offset_processed,
            last_resubmitted_config_offset: tip.kafka.last_resubmitted_config_offset,
            last_config: tip.last_config,
        }
    }

    /// The Kafka offset to resume consuming from: one past the last offset in a written block.
    pub fn resume_offset(&self) -> i64 {
        self.last_offset_persisted + 1
    }

    pub fn next_number(&self) -> u64 {
        self.next_number
    }

    pub fn has_pending(&self) -> bool {
        self.cutter.has_pending()
    }

    pub fn pending_len(&self) -> usize {
        self.cutter.pending_len()
    }

    pub fn batch_size(&self) -> &BatchSize {
        self.cutter.config()
    }

    /// Consumes the record at `offset` whose value is `value` (a marshaled `KafkaMessage`).
    pub fn consume(&mut self, offset: i64, value: &[u8]) -> Consumed {
        let msg = match KafkaMessage::decode(value) {
            Ok(m) => m,
            Err(e) => return skip(Skip::Undecodable(format!("KafkaMessage: {e}"))),
        };
        match msg.r#type {
            None => skip(Skip::Undecodable("KafkaMessage without a type".into())),
            Some(kafka_message::Type::Connect(c)) => skip(Skip::Connect(c.payload)),
            Some(kafka_message::Type::TimeToCut(ttc)) => self.time_to_cut(offset, ttc.block_number),
            Some(kafka_message::Type::Regular(reg)) => {
                if reg.original_offset != 0 && reg.original_offset <= self.last_original_offset_processed {
                    return skip(Skip::AlreadyProcessed { original_offset: reg.original_offset });
                }
                let size = match envelope_size(&reg.payload) {
                    Ok(s) => s,
                    Err(e) => return skip(Skip::Undecodable(e)),
                };
                let msg = Message { envelope: reg.payload, size };
                match Class::try_from(reg.class) {
                    Ok(Class::Config) => self.config(offset, msg, reg.original_offset),
                    Ok(Class::Normal) | Ok(Class::Unknown) | Err(_) => self.normal(offset, msg, reg.original_offset),
                }
            }
        }
    }

    fn normal(&mut self, offset: i64, msg: Message, original_offset: i64) -> Consumed {
        let new_original = if original_offset != 0 { original_offset } else { self.last_original_offset_processed };
        let ordered = match self.cutter.ordered(msg) {
            Ok(o) => o,
            Err(e) => return skip(Skip::Rejected(e.to_string())),
        };
        if ordered.batches.is_empty() {
            self.last_original_offset_processed = new_original;
            return skip(Skip::Pending);
        }
        let last = ordered.batches.len() - 1;
        let mut out = Consumed::default();
        for (i, batch) in ordered.batches.into_iter().enumerate() {
            // The newest message is in the last batch unless it is still pending; a block without
            // it persists the offset before it, so a restart consumes the message again.
            let holds_newest = !ordered.pending && i == last;
            if holds_newest {
                self.last_original_offset_processed = new_original;
            }
            let persisted = if holds_newest { offset } else { offset - 1 };
            out.blocks.push(self.make_block(batch, persisted));
        }
        if ordered.pending {
            self.last_original_offset_processed = new_original;
        }
        out
    }

    fn config(&mut self, offset: i64, msg: Message, original_offset: i64) -> Consumed {
        let mut out = Consumed::default();
        let pending = self.cutter.cut();
        if !pending.is_empty() {
            out.blocks.push(self.make_block(pending, offset - 1));
        }
        if original_offset != 0 {
            self.last_original_offset_processed = original_offset;
        }
        self.last_config = self.next_number;
        out.blocks.push(self.make_block(vec![msg.envelope], offset));
        out
    }

    fn time_to_cut(&mut self, offset: i64, ttc: u64) -> Consumed {
        let next = self.next_number;
        if ttc < next {
            return skip(Skip::StaleTtc { ttc, next });
        }
        if ttc > next {
            return skip(Skip::FutureTtc { ttc, next });
        }
        let batch = self.cutter.cut();
        if batch.is_empty() {
            return skip(Skip::EmptyTtc { ttc });
        }
        Consumed { blocks: vec![self.make_block(batch, offset)], skip: None }
    }

    fn make_block(&mut self, batch: Vec<Bytes>, persisted: i64) -> Block {
        let kafka = KafkaMetadata {
            last_offset_persisted: persisted,
            last_original_offset_processed: self.last_original_offset_processed,
            last_resubmitted_config_offset: self.last_resubmitted_config_offset,
        };
        let block = build_block(self.next_number, self.previous_hash.clone(), batch, self.last_config, &kafka);
        self.previous_hash = Bytes::from(header_hash(block.header.as_ref().expect("built with a header")));
        self.next_number += 1;
        self.last_offset_persisted = persisted;
        block
    }
}

fn skip(s: Skip) -> Consumed {
    Consumed { blocks: Vec::new(), skip: Some(s) }
}

/// Fabric's message size: payload length + signature length of the marshaled envelope.
pub fn envelope_size(raw: &Bytes) -> Result<u32, String> {
    let env = Envelope::decode(raw.clone()).map_err(|e| format!("Envelope: {e}"))?;
    let size = env.payload.len() + env.signature.len();
    u32::try_from(size).map_err(|_| format!("envelope of {size} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::block::{genesis_block, kafka_metadata, last_config};
    use crate::proto::osn::ChannelConfig;

    fn batch(count: u32, preferred: u32) -> BatchSize {
        BatchSize { max_message_count: count, absolute_max_bytes: 1000, preferred_max_bytes: preferred }
    }

    fn new_chain(bs: BatchSize) -> Chain {
        let genesis = genesis_block("ch", &ChannelConfig { sequence: 0, batch_size: Some(bs), ..Default::default() });
        Chain::new(
            ChainTip {
                next_number: 1,
                previous_hash: header_hash(genesis.header.as_ref().unwrap()).into(),
                kafka: kafka_metadata(&genesis).unwrap(),
                last_config: 0,
            },
            bs,
        )
    }

    /// A NORMAL record holding an envelope whose payload has `size` bytes.
    fn env(tag: u8, size: usize) -> Vec<u8> {
        let e = Envelope { payload: vec![tag; size].into(), signature: Bytes::new() };
        KafkaMessage::regular(e.encode_to_vec().into(), 0, Class::Normal).encode_to_vec()
    }

    fn config_env(tag: u8) -> Vec<u8> {
        let e = Envelope { payload: vec![tag; 3].into(), signature: Bytes::new() };
        KafkaMessage::regular(e.encode_to_vec().into(), 0, Class::Config).encode_to_vec()
    }

    fn ttc(n: u64) -> Vec<u8> {
        KafkaMessage::time_to_cut(n).encode_to_vec()
    }

    /// Feeds records at offsets 0.. and returns (number, tx count, last_offset_persisted) of
    /// every block cut, and the skips.
    fn run(chain: &mut Chain, records: &[Vec<u8>]) -> (Vec<(u64, usize, i64)>, Vec<Skip>) {
        let mut blocks = Vec::new();
        let mut skips = Vec::new();
        for (offset, r) in records.iter().enumerate() {
            let out = chain.consume(offset as i64, r);
            for b in out.blocks {
                let n = b.header.as_ref().unwrap().number;
                blocks.push((
                    n,
                    b.data.as_ref().unwrap().data.len(),
                    kafka_metadata(&b).unwrap().last_offset_persisted,
                ));
            }
            skips.extend(out.skip);
        }
        (blocks, skips)
    }

    #[test]
    fn count_cut_persists_the_offset_of_the_last_message() {
        let mut c = new_chain(batch(2, 500));
        let (blocks, _) =
            run(&mut c, &[KafkaMessage::connect(Bytes::new()).encode_to_vec(), env(1, 10), env(2, 10), env(3, 10)]);
        assert_eq!(blocks, vec![(1, 2, 2)]);
        assert!(c.has_pending());
        assert_eq!(c.resume_offset(), 3, "a restart re-consumes the pending message");
    }

    #[test]
    fn overflow_cut_persists_offset_before_the_newest_message() {
        let mut c = new_chain(batch(10, 100));
        let (blocks, _) = run(&mut c, &[env(1, 60), env(2, 60)]);
        assert_eq!(blocks, vec![(1, 1, 0)]);
        assert_eq!(c.resume_offset(), 1);
    }

    #[test]
    fn oversized_message_goes_alone_after_pending() {
        let mut c = new_chain(batch(10, 100));
        let (blocks, _) = run(&mut c, &[env(1, 10), env(2, 500)]);
        assert_eq!(blocks, vec![(1, 1, 0), (2, 1, 1)]);
        assert!(!c.has_pending());
    }

    #[test]
    fn ttc_rules() {
        let mut c = new_chain(batch(10, 500));
        let (blocks, skips) = run(&mut c, &[ttc(1), env(1, 10), ttc(0), ttc(2), ttc(1), ttc(1), env(2, 10), ttc(2)]);
        assert_eq!(blocks, vec![(1, 1, 4), (2, 1, 7)]);
        assert_eq!(
            skips,
            vec![
                Skip::EmptyTtc { ttc: 1 },
                Skip::Pending,
                Skip::StaleTtc { ttc: 0, next: 1 },
                Skip::FutureTtc { ttc: 2, next: 1 },
                Skip::StaleTtc { ttc: 1, next: 2 },
                Skip::Pending,
            ]
        );
    }

    #[test]
    fn config_is_isolated_and_becomes_last_config() {
        let mut c = new_chain(batch(10, 500));
        let mut all = Vec::new();
        for (offset, r) in [env(1, 10), config_env(9), env(2, 10), ttc(3)].iter().enumerate() {
            all.extend(c.consume(offset as i64, r).blocks);
        }
        let summary: Vec<_> = all
            .iter()
            .map(|b| (b.header.as_ref().unwrap().number, b.data.as_ref().unwrap().data.len(), last_config(b).unwrap()))
            .collect();
        assert_eq!(summary, vec![(1, 1, 0), (2, 1, 2), (3, 1, 2)]);
        assert_eq!(kafka_metadata(&all[0]).unwrap().last_offset_persisted, 0);
        assert_eq!(kafka_metadata(&all[1]).unwrap().last_offset_persisted, 1);
    }

    #[test]
    fn garbage_and_oversized_records_are_skipped_without_changing_the_chain() {
        let mut c = new_chain(batch(1, 500));
        let big = Envelope { payload: vec![0; 2000].into(), signature: Bytes::new() };
        let (blocks, skips) = run(
            &mut c,
            &[
                vec![0xff, 0xff, 0xff],
                KafkaMessage::default().encode_to_vec(),
                KafkaMessage::regular(Bytes::from_static(b"\xff\xff"), 0, Class::Normal).encode_to_vec(),
                KafkaMessage::regular(big.encode_to_vec().into(), 0, Class::Normal).encode_to_vec(),
                env(1, 10),
            ],
        );
        assert_eq!(blocks, vec![(1, 1, 4)]);
        assert_eq!(skips.len(), 4);
        assert!(matches!(skips[3], Skip::Rejected(_)));
    }

    #[test]
    fn resubmitted_messages_already_processed_are_dropped() {
        let mut c = new_chain(batch(1, 500));
        let resubmit = |orig: i64| {
            let e = Envelope { payload: vec![7; 5].into(), signature: Bytes::new() };
            let mut m = KafkaMessage::regular(e.encode_to_vec().into(), 0, Class::Normal);
            if let Some(kafka_message::Type::Regular(r)) = m.r#type.as_mut() {
                r.original_offset = orig;
            }
            m.encode_to_vec()
        };
        let (blocks, skips) = run(&mut c, &[resubmit(5), resubmit(5), resubmit(3), resubmit(6)]);
        assert_eq!(blocks, vec![(1, 1, 0), (2, 1, 3)]);
        assert_eq!(
            skips,
            vec![Skip::AlreadyProcessed { original_offset: 5 }, Skip::AlreadyProcessed { original_offset: 3 }]
        );
    }

    #[test]
    fn chain_is_linked_by_header_hashes() {
        let mut c = new_chain(batch(1, 500));
        let mut prev = c.previous_hash.clone();
        for i in 0..5u8 {
            let out = c.consume(i as i64, &env(i, 10));
            let h = out.blocks[0].header.as_ref().unwrap();
            assert_eq!(h.previous_hash, prev);
            prev = header_hash(h).into();
        }
    }
}
