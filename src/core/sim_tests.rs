//! Property: OSNs with different batch timeouts and consumption speeds, sharing one partition,
//! cut identical chains that hold every broadcast envelope exactly once; and an OSN restarted
//! from any block of its ledger rebuilds the same blocks after it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message as _;

use crate::core::block::{header_hash, last_config};
use crate::core::chain::{Chain, ChainTip};
use crate::core::ttc::TtcTimer;
use crate::proto::{kafka_message_regular::Class, BatchSize, Block, Envelope, KafkaMessage};

#[derive(Debug, Clone)]
enum Action {
    /// Some OSN relays an envelope with this many payload bytes.
    Broadcast(usize),
    /// Time passes (ms).
    Tick(u64),
    /// OSN `i` consumes up to `n` records.
    Consume(usize, usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (1usize..700).prop_map(Action::Broadcast),
        2 => (1u64..80).prop_map(Action::Tick),
        3 => (0usize..3, 1usize..20).prop_map(|(i, n)| Action::Consume(i, n)),
    ]
}

struct Sim {
    chain: Chain,
    timer: TtcTimer,
    consumed: usize,
    blocks: Vec<Block>,
}

impl Sim {
    fn consume(&mut self, log: &[Vec<u8>], n: usize, now: Instant) {
        let end = self.consumed.saturating_add(n).min(log.len());
        while self.consumed < end {
            let out = self.chain.consume(self.consumed as i64, &log[self.consumed]);
            let cut = !out.blocks.is_empty();
            self.blocks.extend(out.blocks);
            self.timer.on_consumed(now, cut, self.chain.has_pending());
            self.consumed += 1;
        }
    }
}

fn tip_of(block: &Block) -> ChainTip {
    let header = block.header.as_ref().unwrap();
    ChainTip {
        next_number: header.number + 1,
        previous_hash: header_hash(header).into(),
        kafka: crate::core::block::resume_metadata(block).unwrap(),
        last_config: last_config(block).unwrap_or(0),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn osns_with_any_timing_cut_identical_chains(
        actions in proptest::collection::vec(action(), 1..200),
        timeouts in proptest::collection::vec(1u64..100, 3),
        max_count in 1u32..12,
        preferred in 200u32..2000,
        restart_at in any::<prop::sample::Index>(),
    ) {
        let batch = BatchSize { max_message_count: max_count, absolute_max_bytes: 4000, preferred_max_bytes: preferred };
        let genesis = crate::core::genesis::bare_genesis("sim", batch);
        let mut osns: Vec<Sim> = timeouts
            .iter()
            .map(|t| Sim {
                chain: Chain::with_batch_size("ch", tip_of(&genesis), batch),
                timer: TtcTimer::new(Duration::from_millis(*t)),
                consumed: 0,
                blocks: vec![genesis.clone()],
            })
            .collect();
        let start = Instant::now();
        let mut now = start;
        let mut log: Vec<Vec<u8>> = Vec::new();
        let mut sent: Vec<Bytes> = Vec::new();
        let fire = |osns: &mut Vec<Sim>, log: &mut Vec<Vec<u8>>, now: Instant| {
            for osn in osns.iter_mut() {
                if osn.timer.fire(now) {
                    log.push(KafkaMessage::time_to_cut(osn.chain.next_number()).encode_to_vec());
                }
            }
        };
        for a in actions {
            match a {
                Action::Broadcast(size) => {
                    let env: Bytes = Envelope { payload: vec![(sent.len() % 251) as u8; size].into(), signature: Bytes::from(sent.len().to_be_bytes().to_vec()) }
                        .encode_to_vec()
                        .into();
                    log.push(KafkaMessage::regular(env.clone(), 0, Class::Normal).encode_to_vec());
                    sent.push(env);
                }
                Action::Tick(ms) => {
                    now += Duration::from_millis(ms);
                    fire(&mut osns, &mut log, now);
                }
                Action::Consume(i, n) => osns[i].consume(&log, n, now),
            }
        }
        // Drain: everyone catches up and timers cut whatever is pending.
        for _ in 0..1000 {
            for osn in osns.iter_mut() {
                osn.consume(&log, usize::MAX, now);
            }
            if osns.iter().all(|o| !o.chain.has_pending() && o.consumed == log.len()) {
                break;
            }
            now += Duration::from_millis(100);
            fire(&mut osns, &mut log, now);
        }
        prop_assert!(osns.iter().all(|o| !o.chain.has_pending()), "every pending batch was eventually cut");

        // Identical chains.
        for o in &osns[1..] {
            prop_assert_eq!(&o.blocks, &osns[0].blocks);
        }
        // Every envelope exactly once, within the batch limits.
        let mut counts: HashMap<Bytes, usize> = HashMap::new();
        for b in &osns[0].blocks[1..] {
            let data = &b.data.as_ref().unwrap().data;
            prop_assert!(!data.is_empty() && data.len() <= max_count as usize);
            for d in data {
                *counts.entry(d.clone()).or_default() += 1;
            }
        }
        prop_assert_eq!(counts.len(), sent.len());
        prop_assert!(counts.values().all(|&c| c == 1));

        // Restart from any block: resume at its last offset persisted + 1 and rebuild the rest.
        let blocks = &osns[0].blocks;
        let k = restart_at.index(blocks.len());
        let mut restarted = Sim {
            chain: Chain::with_batch_size("ch", tip_of(&blocks[k]), batch),
            timer: TtcTimer::new(Duration::from_secs(1)),
            consumed: 0,
            blocks: blocks[..=k].to_vec(),
        };
        restarted.consumed = restarted.chain.resume_offset() as usize;
        restarted.consume(&log, usize::MAX, now);
        prop_assert_eq!(&restarted.blocks, blocks);
    }
}
