//! The recorded Fabric 1.4.12 runs replayed through OSN's chain: from each run's genesis block
//! and the records of its topics, OSN's chain makes the same decision as Fabric's orderer on
//! every record (ordered, re-validated and re-submitted, discarded, isolated as a config; proper
//! or stale time-to-cut), creates the same channel with the same block 0 byte for byte, reaches
//! the same configurations at the same sequences, and cuts the same blocks: header, data,
//! LAST_CONFIG and ORDERER metadata and the SIGNATURES value byte-identical to the blocks Fabric
//! wrote (only the signatures differ).
//!
//! What re-submissions OSN *produces* is not replayed here (the recording already holds
//! Fabric's); this is the consuming side, which decides every block.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use prost::Message as _;

use crate::core::block::{header_hash, last_config, metadata_value, resume_metadata};
use crate::core::chain::{Applied, Chain, ChainTip, Consumed, InForce, Resubmit, Skip, SystemState};
use crate::core::channelconfig::Bundle;
use crate::core::configtx::same_group;
use crate::core::cutter::CutReason;
use crate::proto::common::BlockMetadataIndex;
use crate::proto::Block;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fabric-1.4.12")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A channel's recorded blocks, in number order.
fn blocks(dir: &Path) -> Vec<(Vec<u8>, Block)> {
    (0..)
        .map(|n| dir.join(format!("{n}.block")))
        .take_while(|p| p.exists())
        .map(|p| {
            let raw = read(&p);
            let block = Block::decode(raw.as_slice()).unwrap();
            (raw, block)
        })
        .collect()
}

/// One record of a topic with what Fabric's orderer did with it (`records/<channel>.jsonl`).
struct Record {
    offset: i64,
    value: Vec<u8>,
    outcome: String,
    new_sequence: Option<u64>,
}

fn records(run: &Path, channel: &str) -> Vec<Record> {
    let raw = |name: &str| std::fs::read_to_string(run.join(name).join(format!("{channel}.jsonl"))).unwrap();
    let topic = raw("topics");
    let annotated = raw("records");
    topic
        .lines()
        .zip(annotated.lines())
        .map(|(t, a)| {
            let t: serde_json::Value = serde_json::from_str(t).unwrap();
            let a: serde_json::Value = serde_json::from_str(a).unwrap();
            assert_eq!(t["offset"], a["offset"]);
            Record {
                offset: t["offset"].as_i64().unwrap(),
                value: base64::engine::general_purpose::STANDARD.decode(t["value"].as_str().unwrap()).unwrap(),
                outcome: a["outcome"].as_str().unwrap().to_owned(),
                new_sequence: a["new_config_sequence"].as_u64(),
            }
        })
        .collect()
}

/// What a consumption did, in the words of the recording's outcomes.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Ignored,
    Ordered,
    ProperTtc,
    StaleTtc,
    Resubmitted,
    Discarded,
    Isolated,
    Other(String),
}

fn fabrics(outcome: &str) -> Decision {
    match outcome {
        o if o.starts_with("ignored (CONNECT)") => Decision::Ignored,
        o if o.starts_with("ordered") => Decision::Ordered,
        o if o.starts_with("proper TTC") => Decision::ProperTtc,
        o if o.starts_with("stale TTC") => Decision::StaleTtc,
        o if o.contains("re-submitted by each orderer") => Decision::Resubmitted,
        o if o.ends_with("discarded") => Decision::Discarded,
        o if o.starts_with("config: isolated block") => Decision::Isolated,
        o => Decision::Other(o.to_owned()),
    }
}

fn osns(out: &Consumed) -> Decision {
    if out.resubmit.is_some() {
        return Decision::Resubmitted;
    }
    match (&out.skip, &out.outcome) {
        (_, Some(outcome)) if outcome.result.is_ok() => Decision::Isolated,
        (Some(Skip::Connect(_)), _) => Decision::Ignored,
        (Some(Skip::Pending), _) => Decision::Ordered,
        (Some(Skip::StaleTtc { .. }), _) => Decision::StaleTtc,
        (Some(Skip::AlreadyProcessed { .. }), _) => Decision::Discarded,
        (None, None) if out.reasons.last() == Some(&CutReason::TimeToCut) => Decision::ProperTtc,
        (None, None) if !out.blocks.is_empty() => Decision::Ordered,
        (skip, outcome) => Decision::Other(format!("{skip:?} {outcome:?}")),
    }
}

/// Where a chain resumes after `block`, as the ledger reads it.
fn tip(block: &Block) -> ChainTip {
    let header = block.header.as_ref().unwrap();
    ChainTip {
        next_number: header.number + 1,
        previous_hash: header_hash(header).into(),
        kafka: resume_metadata(block).unwrap(),
        last_config: last_config(block).unwrap(),
    }
}

/// The block-identity a peer and a mixed cluster see, signatures aside: the SIGNATURES entry's
/// value (what the orderers sign) included.
fn same_block(ours: &Block, fabrics: &Block) -> Result<(), String> {
    let number = fabrics.header.as_ref().unwrap().number;
    if ours.header != fabrics.header {
        return Err(format!("block {number}: headers differ"));
    }
    if ours.data != fabrics.data {
        return Err(format!("block {number}: data differ"));
    }
    for slot in [BlockMetadataIndex::Signatures, BlockMetadataIndex::LastConfig, BlockMetadataIndex::Orderer] {
        let (a, b) = (metadata_value(ours, slot), metadata_value(fabrics, slot));
        if a != b {
            return Err(format!("block {number}: {slot:?} metadata {a:?}, Fabric's {b:?}"));
        }
    }
    Ok(())
}

/// Consumes a channel's topic into `chain`, checking every decision and every block against the
/// recording; answers the blocks cut and what the config records came to.
fn replay(chain: &mut Chain, run: &Path, channel: &str, recorded: &[(Vec<u8>, Block)]) -> (Vec<(i64, Applied)>, usize) {
    let mut applied = Vec::new();
    let mut cut = 0;
    let mut duplicates = 0;
    for record in records(run, channel) {
        let at = format!("{} {channel} offset {}", run.display(), record.offset);
        let out = chain.consume(record.offset, &record.value);
        assert_eq!(osns(&out), fabrics(&record.outcome), "{at}: Fabric's outcome: {}", record.outcome);
        duplicates += usize::from(out.duplicate);
        if let Some(Resubmit::Config { config_seq, .. }) = &out.resubmit {
            assert_eq!(*config_seq, chain.in_force().sequence(), "{at}");
        }
        for block in &out.blocks {
            let number = block.header.as_ref().unwrap().number;
            let (_, fabric_block) = &recorded[number as usize];
            same_block(block, fabric_block).unwrap_or_else(|e| panic!("{at}: {e}"));
            cut += 1;
        }
        if let Some(outcome) = out.outcome {
            if let Ok(result) = outcome.result {
                if let (Applied::Config(bundle), Some(seq)) = (&result, record.new_sequence) {
                    assert_eq!(bundle.values.sequence, seq, "{at}: the new sequence");
                }
                applied.push((record.offset, result));
            }
        }
    }
    assert_eq!(cut + 1, recorded.len(), "{} {channel}: every block after block 0, and no more", run.display());
    (applied, duplicates)
}

/// Replays one run (`blocks` names the orderer whose copies to compare with); `duplicates` is
/// how many envelopes Fabric ordered a second time.
fn replay_run(run: &str, blocks_of: &str, duplicates: usize) {
    let run = shared().join("runs").join(run);
    let blocks_dir = run.join("blocks").join(blocks_of);
    let genesis_raw = read(&run.join("genesis.block"));
    let system_blocks = blocks(&blocks_dir.join("syschannel"));
    assert_eq!(system_blocks[0].0, genesis_raw, "the system channel's block 0 is the genesis file");
    let genesis = &system_blocks[0].1;
    let system_config = crate::ledger::block_config(genesis).unwrap();
    let system_bundle = Arc::new(Bundle::new("syschannel", system_config.clone()).unwrap());
    let mut system =
        Chain::new("syschannel", tip(genesis), InForce::new(system_bundle, 0), 0, Some(SystemState::default()));
    let (created, _) = replay(&mut system, &run, "syschannel", &system_blocks);
    assert_eq!(system.in_force().sequence(), 0, "a creation leaves the system channel's configuration");
    let [(_, Applied::Created { channel, genesis_envelope })] = created.as_slice() else {
        panic!("one channel created, not {created:?}")
    };
    assert_eq!(channel, "ch1");

    // The new channel's block 0, as every OSN writes it from the system channel's record.
    let channel_blocks = blocks(&blocks_dir.join("ch1"));
    let block0 = crate::core::block::genesis_block_of(genesis_envelope.clone());
    assert_eq!(block0.encode_to_vec(), channel_blocks[0].0, "ch1's block 0, byte for byte");
    let created_config = crate::ledger::block_config(&block0).unwrap();
    let bundle = Arc::new(Bundle::new("ch1", created_config).unwrap());
    assert_eq!(bundle.values.sequence, 1);
    let mut chain = Chain::new("ch1", tip(&block0), InForce::new(bundle, 0), 0, None);
    let (updates, counted) = replay(&mut chain, &run, "ch1", &channel_blocks);
    assert_eq!(counted, duplicates, "envelopes ordered twice (Fabric's double re-submission), counted");

    // Every configuration reached is the one in Fabric's config block, as configtxlator shows it.
    let config_blocks: Vec<&Block> = channel_blocks[1..]
        .iter()
        .map(|(_, b)| b)
        .filter(|b| last_config(b) == Some(b.header.as_ref().unwrap().number))
        .collect();
    assert_eq!(updates.len(), config_blocks.len(), "one applied update per config block");
    for ((offset, applied), block) in updates.iter().zip(config_blocks) {
        let Applied::Config(bundle) = applied else { panic!("offset {offset}: {applied:?}") };
        let fabrics = crate::ledger::block_config(block).unwrap();
        let json = |c| crate::core::configtree::json::config(c).unwrap();
        assert_eq!(json(&bundle.config), json(&fabrics), "offset {offset}: the configuration");
        let (ours, theirs) = (bundle.config.channel_group.as_ref(), fabrics.channel_group.as_ref());
        assert!(
            same_group(ours.unwrap(), theirs.unwrap()),
            "offset {offset}: the configuration, as proto.Equal sees it"
        );
        assert_eq!(bundle.config.sequence, fabrics.sequence, "offset {offset}");
    }
    assert_eq!(chain.in_force().sequence(), updates.len() as u64 + 1);
}

#[test]
fn one_orderers_run_replays_to_fabrics_blocks() {
    replay_run("single", "", 0);
}

#[test]
fn two_orderers_run_replays_to_both_orderers_blocks() {
    replay_run("two-orderers", "orderer1", 23);
    replay_run("two-orderers", "orderer2", 23);
}
