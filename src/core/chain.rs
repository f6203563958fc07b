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
//! - a CONFIG message is re-derived from the signed update it carries under the configuration in
//!   force (see [`super::config`]); if it was enqueued under that configuration it cuts the pending
//!   batch, goes alone in its own block, becomes the LAST_CONFIG of every later block, and its
//!   batch size applies from the next block on; if it was enqueued under an older one it is
//!   re-submitted (every OSN does so; the first copy consumed wins); if it no longer derives, it
//!   is dropped;
//! - on the system channel, an ORDERER_TRANSACTION (a new channel's CONFIG envelope) is isolated
//!   the same way without becoming LAST_CONFIG, and reports the channel to create;
//! - a NORMAL message enqueued under an older configuration is re-validated under the current one
//!   and re-submitted with its offset as original offset if still valid, dropped if not;
//! - `TimeToCut{N}` cuts the pending batch when N is the next block number; a stale TTC
//!   (N smaller), a future TTC (N larger) and a TTC with nothing pending are ignored; the block
//!   a TTC cuts leaves the last re-submitted config offset out of its ORDERER metadata, as
//!   Fabric's does (the ledger keeps it beside the block, for a restart);
//! - a re-submitted message (original offset ≠ 0) already processed is dropped;
//! - an undecodable message, or an envelope over `AbsoluteMaxBytes`, is dropped;
//! - an envelope goes into a block (and is re-submitted) as Go re-marshals it, as Fabric's chain
//!   does ([`super::canonical`]): the bytes a client sent when they already are Go's.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;

pub use crate::core::admission::{Derived, DerivedKind, Refusal};

use crate::core::access::{Access, Request};
use crate::core::admission::{admit, Existing, Stage, Target};
use crate::core::block::{build_block, header_hash};
use crate::core::channelconfig::Bundle;
use crate::core::config::{config_envelope, envelope_parts, UpdateRequest};
use crate::core::configtx::same_group;
use crate::core::cutter::{BlockCutter, CutReason, Message};
use crate::core::envelope::check_broadcast;
use crate::proto::common::Config;
use crate::proto::{
    kafka_message, kafka_message_regular::Class, Block, Envelope, HeaderType, KafkaMessage, KafkaMessageRegular,
    KafkaMetadata,
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

/// Whether a block's Kafka metadata can have been written from genuine records: both original
/// offsets it keeps name records at or before its own last offset. One that is not was written
/// from a forged record (before [`Skip::ForgedOriginalOffset`] existed) and would make the chain
/// drop every re-submitted copy below its value; the ledger resumes from the newest sane one
/// instead (`Ledger::open`).
pub fn sane_offsets(kafka: &KafkaMetadata) -> bool {
    let last = kafka.last_offset_persisted.max(0);
    (0..=last).contains(&kafka.last_original_offset_processed)
        && (0..=last).contains(&kafka.last_resubmitted_config_offset)
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
    /// A regular record whose `original_offset` no OSN can have written: negative, or not below
    /// the record's own offset (an original offset names an earlier record of the partition).
    /// Processing it would move the de-duplication state past records not yet consumed, and
    /// every later re-submitted copy would be dropped; every OSN skips it alike.
    ForgedOriginalOffset {
        original_offset: i64,
    },
    Undecodable(String),
    Rejected(String),
    /// Enqueued under an older configuration and still valid: re-submitted (see `resubmit`).
    Resubmitted {
        config_seq: u64,
    },
}

/// A record to put back into the partition.
#[derive(Debug, Clone)]
pub enum Resubmit {
    /// A NORMAL envelope still valid under the current configuration: the record to produce.
    Normal(KafkaMessage),
    /// A config update re-derived under the current configuration: the caller builds and signs
    /// its CONFIG envelope (see `identity::config_record`) and produces it as a CONFIG record with
    /// this sequence and original offset.
    Config { derived: Box<Derived>, config_seq: u64, original_offset: i64 },
}

/// What a CONFIG-class record came to, for the client waiting on it. `offset` is the offset the
/// client's record was acknowledged at (the original offset of a re-submitted copy).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub offset: i64,
    pub result: Result<Applied, Refusal>,
}

/// A configuration change committed by the blocks of a [`Consumed`].
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The channel's configuration is now this one (its block is among the blocks).
    Config(Arc<Bundle>),
    /// A channel was created: its genesis block holds this CONFIG envelope. The caller creates
    /// it before writing the system channel's block.
    Created { channel: String, genesis_envelope: Bytes },
}

/// The outcome of consuming one message.
#[derive(Debug, Default)]
pub struct Consumed {
    /// Blocks to write, in order (zero, one or two).
    pub blocks: Vec<Block>,
    /// Why each block was cut.
    pub reasons: Vec<CutReason>,
    /// Why no block was cut, when none was.
    pub skip: Option<Skip>,
    /// A record to re-submit to the partition.
    pub resubmit: Option<Resubmit>,
    /// What a CONFIG-class record came to.
    pub outcome: Option<Outcome>,
    /// The record is a re-submitted copy of the record at this offset (ordered or skipped).
    pub copy_of: Option<i64>,
    /// The envelope ordered is one another re-submitted copy already put in a block: Fabric
    /// 1.4's double re-submission (see [`RecentCopies`]). OSN orders it again, as Fabric does.
    pub duplicate: bool,
}

/// The envelopes recently ordered from re-submitted copies, to count those ordered twice.
///
/// Fabric 1.4's Kafka chain re-submits a stale record with its *own* offset as the original
/// offset, including a record that is itself a re-submitted copy. With n orderers, a message that
/// goes stale across two config changes in a row has n copies, each stale again and re-submitted
/// by every orderer under a different original offset, so the first copy of each goes into a
/// block: the envelope is ordered n times (23 times in the recorded two-orderer run; peers mark
/// the later ones duplicate transactions). OSN cuts what Fabric cuts and counts them
/// (`osn_channel_duplicates_total`). Memory only: a restart forgets the recent copies.
#[derive(Debug, Clone, Default)]
pub struct RecentCopies {
    order: std::collections::VecDeque<[u8; 32]>,
    seen: std::collections::HashSet<[u8; 32]>,
}

impl RecentCopies {
    /// How many envelopes it remembers.
    pub const CAPACITY: usize = 4096;

    /// Remembers an envelope ordered from a copy; whether it was ordered from a copy before.
    fn ordered(&mut self, envelope: &[u8]) -> bool {
        use sha2::{Digest as _, Sha256};
        let digest: [u8; 32] = Sha256::digest(envelope).into();
        if self.seen.contains(&digest) {
            return true;
        }
        if self.order.len() == Self::CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back(digest);
        self.seen.insert(digest);
        false
    }
}

/// The system channel's part of the chain state: the channels created through it so far.
#[derive(Debug, Clone, Default)]
pub struct SystemState {
    pub channels: BTreeSet<String>,
}

/// The configuration the chain cuts and re-validates by.
#[derive(Debug, Clone)]
pub struct InForce {
    pub bundle: Arc<Bundle>,
    pub access: Arc<Access>,
}

impl InForce {
    /// A configuration and its access control, for requests checked against a clock
    /// `time_window` seconds wide.
    pub fn new(bundle: Arc<Bundle>, time_window: i64) -> Self {
        let policies = Arc::new(bundle.validator.policies().clone());
        let access = Access::new(policies, bundle.values.sequence, time_window);
        InForce { bundle, access: Arc::new(access) }
    }

    /// The sequence of the configuration in force.
    pub fn sequence(&self) -> u64 {
        self.bundle.values.sequence
    }
}

#[derive(Debug, Clone)]
pub struct Chain {
    channel: String,
    in_force: InForce,
    time_window: i64,
    system: Option<SystemState>,
    cutter: BlockCutter,
    next_number: u64,
    previous_hash: Bytes,
    last_offset_persisted: i64,
    last_original_offset_processed: i64,
    last_resubmitted_config_offset: i64,
    last_config: u64,
    copies: RecentCopies,
}

impl Chain {
    /// A chain resuming from `tip` under the configuration in force there. `system` is the
    /// system channel's state, for the system channel.
    pub fn new(channel: &str, tip: ChainTip, in_force: InForce, time_window: i64, system: Option<SystemState>) -> Self {
        let batch_size = in_force.bundle.values.batch_size;
        Chain {
            channel: channel.to_owned(),
            in_force,
            time_window,
            system,
            cutter: BlockCutter::new(batch_size),
            next_number: tip.next_number,
            previous_hash: tip.previous_hash,
            last_offset_persisted: tip.kafka.last_offset_persisted,
            last_original_offset_processed: tip.kafka.last_original_offset_processed,
            last_resubmitted_config_offset: tip.kafka.last_resubmitted_config_offset,
            last_config: tip.last_config,
            copies: RecentCopies::default(),
        }
    }

    /// A chain cut by `batch_size` under a configuration with no organisations (nothing it
    /// consumes re-validates): for tools, benches and tests of cutting alone.
    pub fn with_batch_size(channel: &str, tip: ChainTip, batch_size: crate::proto::BatchSize) -> Self {
        let bundle = Bundle::new(channel, crate::core::genesis::bare_config(batch_size))
            .unwrap_or_else(|e| unreachable!("a configuration without organisations is valid: {e}"));
        Chain::new(channel, tip, InForce::new(Arc::new(bundle), 0), 0, None)
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

    pub fn batch_size(&self) -> &crate::proto::BatchSize {
        self.cutter.config()
    }

    /// The configuration in force.
    pub fn in_force(&self) -> &InForce {
        &self.in_force
    }

    /// The offset of the last re-submitted config update: what the ledger keeps with a block whose
    /// metadata leaves it out (one cut by a time-to-cut).
    pub fn last_resubmitted_config_offset(&self) -> i64 {
        self.last_resubmitted_config_offset
    }

    /// Whether a config update this OSN re-submitted is still waiting to be consumed. Broadcasts
    /// are refused (503) meanwhile, as Fabric does.
    pub fn reprocessing(&self) -> bool {
        self.last_resubmitted_config_offset > self.last_original_offset_processed
    }

    /// Consumes the record at `offset` whose value is `value` (a marshaled `KafkaMessage`).
    pub fn consume(&mut self, offset: i64, value: &[u8]) -> Consumed {
        self.consume_bytes(offset, Bytes::copy_from_slice(value))
    }

    /// [`Chain::consume`] of a record held as `Bytes`: the envelope is decoded as a slice of it,
    /// not a copy (the consumer's path).
    pub fn consume_bytes(&mut self, offset: i64, value: Bytes) -> Consumed {
        let msg = match KafkaMessage::decode(value) {
            Ok(m) => m,
            Err(e) => return skip(Skip::Undecodable(format!("KafkaMessage: {e}"))),
        };
        match msg.r#type {
            None => skip(Skip::Undecodable("KafkaMessage without a type".into())),
            Some(kafka_message::Type::Connect(c)) => skip(Skip::Connect(c.payload)),
            Some(kafka_message::Type::TimeToCut(ttc)) => self.time_to_cut(offset, ttc.block_number),
            Some(kafka_message::Type::Regular(reg)) => {
                let copy_of = (reg.original_offset > 0 && reg.original_offset < offset).then_some(reg.original_offset);
                Consumed { copy_of, ..self.regular(offset, reg) }
            }
        }
    }

    /// A regular record (NORMAL or CONFIG class).
    fn regular(&mut self, offset: i64, mut reg: KafkaMessageRegular) -> Consumed {
        if reg.original_offset < 0 || (reg.original_offset != 0 && reg.original_offset >= offset) {
            return skip(Skip::ForgedOriginalOffset { original_offset: reg.original_offset });
        }
        if reg.original_offset != 0 && reg.original_offset <= self.last_original_offset_processed {
            return skip(Skip::AlreadyProcessed { original_offset: reg.original_offset });
        }
        // From here on the envelope is as Fabric's chain holds it: parsed and marshaled again by
        // Go's protobuf (what goes into a block, what is re-submitted).
        if !crate::core::canonical::is_plain(&reg.payload) {
            reg.payload = match crate::core::canonical::envelope(&reg.payload) {
                Ok(canonical) => canonical,
                Err(e) => return skip(Skip::Undecodable(e)),
            };
        }
        let size = match envelope_size(&reg.payload) {
            Ok(s) => s,
            Err(e) => return skip(Skip::Undecodable(e)),
        };
        match Class::try_from(reg.class) {
            Ok(Class::Config) => self.config_record(offset, reg, size),
            Ok(Class::Normal) | Ok(Class::Unknown) | Err(_) => {
                let seq = self.in_force.sequence();
                if reg.config_seq < seq {
                    return self.revalidate(offset, reg);
                }
                let msg = Message { envelope: reg.payload, size };
                self.normal(offset, msg, reg.original_offset)
            }
        }
    }

    /// A NORMAL envelope enqueued under an older configuration: re-submitted if still valid.
    fn revalidate(&mut self, offset: i64, reg: KafkaMessageRegular) -> Consumed {
        let seq = self.in_force.sequence();
        // The broadcast checks again, structure first (as the receiving OSN ran them).
        let verdict = Envelope::decode(reg.payload.clone()).map_err(|e| e.to_string()).and_then(|env| {
            let checked = check_broadcast(&env, &self.channel, u32::MAX).map_err(|e| e.to_string())?;
            let request = Request {
                payload: &env.payload,
                signature: &env.signature,
                creator: &checked.creator,
                timestamp: checked.timestamp(),
            };
            self.in_force.access.revalidate(&request).map_err(|e| e.to_string())
        });
        if let Err(denied) = verdict {
            let reason = format!("enqueued under configuration {}, not valid under {seq}: {denied}", reg.config_seq);
            return skip(Skip::Rejected(reason));
        }
        let mut message = KafkaMessage::regular(reg.payload, seq, Class::Normal);
        if let Some(kafka_message::Type::Regular(r)) = message.r#type.as_mut() {
            r.original_offset = offset;
        }
        Consumed {
            skip: Some(Skip::Resubmitted { config_seq: reg.config_seq }),
            resubmit: Some(Resubmit::Normal(message)),
            ..Default::default()
        }
    }

    /// A CONFIG-class record (Fabric's `processRegular`, CONFIG case).
    fn config_record(&mut self, offset: i64, reg: KafkaMessageRegular, size: u32) -> Consumed {
        let original_offset = reg.original_offset;
        let key = if original_offset != 0 { original_offset } else { offset };
        if original_offset != 0 && original_offset > self.last_resubmitted_config_offset {
            self.last_resubmitted_config_offset = original_offset;
        }
        let derivation = self.derive(&reg.payload).and_then(|(derived, enveloped, genesis)| {
            let same = derived.config.sequence == enveloped.sequence
                && match (&derived.config.channel_group, &enveloped.channel_group) {
                    (Some(a), Some(b)) => same_group(a, b),
                    _ => false,
                };
            if reg.config_seq >= self.in_force.sequence() && !same {
                return Err("ConfigEnvelope LastUpdate did not produce the supplied config result".into());
            }
            Ok((derived, genesis))
        });
        let (derived, genesis) = match derivation {
            Ok(d) => d,
            Err(reason) => {
                // A re-submitted update that no longer derives counts as processed: broadcasts resume.
                if original_offset != 0 {
                    self.last_original_offset_processed = self.last_original_offset_processed.max(original_offset);
                }
                return Consumed {
                    skip: Some(Skip::Rejected(reason.to_string())),
                    outcome: Some(Outcome { offset: key, result: Err(reason) }),
                    ..Default::default()
                };
            }
        };
        let seq = self.in_force.sequence();
        if reg.config_seq < seq {
            self.last_resubmitted_config_offset = offset;
            return Consumed {
                skip: Some(Skip::Resubmitted { config_seq: reg.config_seq }),
                resubmit: Some(Resubmit::Config {
                    derived: Box::new(derived),
                    config_seq: seq,
                    original_offset: offset,
                }),
                ..Default::default()
            };
        }
        let msg = Message { envelope: reg.payload, size };
        match derived.kind {
            DerivedKind::Update { .. } => {
                // Derivation built the bundle once already, so this does not fail.
                let bundle = match Bundle::new(&self.channel, derived.config) {
                    Ok(b) => b,
                    Err(e) => return skip(Skip::Rejected(e)),
                };
                let in_force = InForce::new(Arc::new(bundle), self.time_window);
                let mut out = self.isolate(offset, msg, original_offset, true);
                self.cutter = BlockCutter::new(in_force.bundle.values.batch_size);
                let bundle = in_force.bundle.clone();
                self.in_force = in_force;
                out.outcome = Some(Outcome { offset: key, result: Ok(Applied::Config(bundle)) });
                out
            }
            DerivedKind::Create { channel } => {
                let mut out = self.isolate(offset, msg, original_offset, false);
                if let Some(system) = self.system.as_mut() {
                    system.channels.insert(channel.clone());
                }
                let created = Applied::Created { channel, genesis_envelope: genesis };
                out.outcome = Some(Outcome { offset: key, result: Ok(created) });
                out
            }
        }
    }

    /// Re-derives a CONFIG-class record from the signed update it carries, under the
    /// configuration in force, with the update's own timestamp as the time. Returns the
    /// derivation, the configuration the record's envelope holds, and (for a creation) the new
    /// channel's CONFIG envelope.
    fn derive(&self, envelope: &Bytes) -> Result<(Derived, Config, Bytes), Refusal> {
        let (header, data) = envelope_parts(envelope)?;
        let (kind, config_bytes) = match HeaderType::try_from(header.r#type) {
            Ok(HeaderType::OrdererTransaction) if self.system.is_some() => {
                let (inner, _) = envelope_parts(&data)?;
                (DerivedKind::Create { channel: inner.channel_id }, data)
            }
            Ok(HeaderType::Config) => (DerivedKind::Update { channel: header.channel_id.clone() }, envelope.clone()),
            _ => {
                return Err(Refusal::Invalid(format!(
                    "a CONFIG-class record holds an envelope of header type {}",
                    header.r#type
                )))
            }
        };
        let (config_header, config_env) = config_envelope(&config_bytes)?;
        let enveloped = config_env.config.ok_or("the CONFIG envelope holds no configuration")?;
        let last_update = config_env.last_update.ok_or("the CONFIG envelope holds no update")?;
        let request = UpdateRequest::parse(&last_update)?;
        let now = request.timestamp().ok_or("the config update has no timestamp")?;
        let channel = kind.channel();
        if config_header.channel_id != channel || request.update.channel_id != channel {
            return Err(Refusal::Invalid(format!(
                "the CONFIG envelope names channel '{}' and its update '{}', not '{channel}'",
                config_header.channel_id, request.update.channel_id
            )));
        }
        let target = Target {
            channel: &self.channel,
            bundle: &self.in_force.bundle,
            access: &self.in_force.access,
            existing: self.system.as_ref().map(|s| Existing { names: &s.channels, created: s.channels.len() }),
            // The brokers' limits are this OSN's view, not the chain's: judged on arrival only.
            record_limit: None,
        };
        let Derived { config, .. } = admit(&request, kind.clone(), &target, now, Stage::Consumption)?;
        let genesis = if matches!(kind, DerivedKind::Create { .. }) { config_bytes } else { Bytes::new() };
        Ok((Derived { kind, config, last_update }, enveloped, genesis))
    }

    fn normal(&mut self, offset: i64, msg: Message, original_offset: i64) -> Consumed {
        let new_original = if original_offset != 0 { original_offset } else { self.last_original_offset_processed };
        let copy = (original_offset != 0).then(|| msg.envelope.clone());
        let ordered = match self.cutter.ordered(msg) {
            Ok(o) => o,
            Err(e) => return skip(Skip::Rejected(e.to_string())),
        };
        let duplicate = copy.is_some_and(|envelope| self.copies.ordered(&envelope));
        if ordered.batches.is_empty() {
            self.last_original_offset_processed = new_original;
            return Consumed { skip: Some(Skip::Pending), duplicate, ..Default::default() };
        }
        let last = ordered.batches.len() - 1;
        let mut out = Consumed { reasons: ordered.reasons, duplicate, ..Default::default() };
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

    /// Cuts the pending batch, then puts `msg` alone in the next block; `is_config` makes that
    /// block the LAST_CONFIG of every later block.
    fn isolate(&mut self, offset: i64, msg: Message, original_offset: i64, is_config: bool) -> Consumed {
        let mut out = Consumed::default();
        let reason = if is_config { CutReason::Config } else { CutReason::ChannelCreation };
        let pending = self.cutter.cut();
        if !pending.is_empty() {
            out.blocks.push(self.make_block(pending, offset - 1));
            out.reasons.push(reason);
        }
        out.reasons.push(reason);
        if original_offset != 0 {
            self.last_original_offset_processed = original_offset;
        }
        if is_config {
            self.last_config = self.next_number;
        }
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
        // Fabric's Kafka chain leaves the re-submitted config offset out of a block cut by a
        // time-to-cut; the chain keeps it.
        let resubmitted = std::mem::take(&mut self.last_resubmitted_config_offset);
        let block = self.make_block(batch, offset);
        self.last_resubmitted_config_offset = resubmitted;
        Consumed { blocks: vec![block], reasons: vec![CutReason::TimeToCut], ..Default::default() }
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
    Consumed { skip: Some(s), ..Default::default() }
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
    use crate::core::block::kafka_metadata;
    use crate::proto::BatchSize;

    fn batch(count: u32, preferred: u32) -> BatchSize {
        BatchSize { max_message_count: count, absolute_max_bytes: 1000, preferred_max_bytes: preferred }
    }

    fn new_chain(bs: BatchSize) -> Chain {
        let genesis = crate::core::genesis::bare_genesis("ch", bs);
        Chain::with_batch_size(
            "ch",
            ChainTip {
                next_number: 1,
                previous_hash: header_hash(genesis.header.as_ref().unwrap()).into(),
                kafka: crate::core::block::resume_metadata(&genesis).unwrap(),
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

    fn ttc(n: u64) -> Vec<u8> {
        KafkaMessage::time_to_cut(n).encode_to_vec()
    }

    /// Feeds records at offsets 0.. and returns (number, tx count, last_offset_persisted) of
    /// every block cut, and the skips.
    fn run(chain: &mut Chain, records: &[Vec<u8>]) -> (Vec<(u64, usize, i64)>, Vec<Skip>) {
        run_from(chain, 0, records)
    }

    /// [`run`] with the first record at offset `first`.
    fn run_from(chain: &mut Chain, first: i64, records: &[Vec<u8>]) -> (Vec<(u64, usize, i64)>, Vec<Skip>) {
        let mut blocks = Vec::new();
        let mut skips = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let out = chain.consume(first + i as i64, r);
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

    /// A NORMAL record re-submitted from `orig`.
    fn resubmit(orig: i64) -> Vec<u8> {
        let e = Envelope { payload: vec![7; 5].into(), signature: Bytes::new() };
        let mut m = KafkaMessage::regular(e.encode_to_vec().into(), 0, Class::Normal);
        if let Some(kafka_message::Type::Regular(r)) = m.r#type.as_mut() {
            r.original_offset = orig;
        }
        m.encode_to_vec()
    }

    #[test]
    fn resubmitted_messages_already_processed_are_dropped() {
        let mut c = new_chain(batch(1, 500));
        let (blocks, skips) = run_from(&mut c, 10, &[resubmit(5), resubmit(5), resubmit(3), resubmit(6)]);
        assert_eq!(blocks, vec![(1, 1, 10), (2, 1, 13)]);
        assert_eq!(
            skips,
            vec![Skip::AlreadyProcessed { original_offset: 5 }, Skip::AlreadyProcessed { original_offset: 3 }]
        );
    }

    /// An original offset that names no earlier record (negative, the record's own offset or
    /// later, far past the partition's end) is skipped by every OSN alike, and moves nothing:
    /// the copies re-submitted after it are still ordered (issue 18: one forged record used to
    /// drop every later re-submitted copy as already processed).
    #[test]
    fn a_forged_original_offset_is_skipped_and_moves_nothing() {
        let mut c = new_chain(batch(1, 500));
        let (blocks, skips) =
            run_from(&mut c, 10, &[resubmit(-1), resubmit(11), resubmit(1_000_000_000_000), resubmit(4), resubmit(5)]);
        assert_eq!(
            skips,
            vec![
                Skip::ForgedOriginalOffset { original_offset: -1 },
                Skip::ForgedOriginalOffset { original_offset: 11 },
                Skip::ForgedOriginalOffset { original_offset: 1_000_000_000_000 },
            ]
        );
        assert_eq!(blocks, vec![(1, 1, 13), (2, 1, 14)], "the genuine copies are ordered");
        let out = c.consume(15, &env(1, 10));
        assert_eq!(kafka_metadata(&out.blocks[0]).unwrap().last_original_offset_processed, 5);
    }

    #[test]
    fn offsets_a_genuine_record_cannot_have_written_are_not_sane() {
        let meta = |persisted, original, config| KafkaMetadata {
            last_offset_persisted: persisted,
            last_original_offset_processed: original,
            last_resubmitted_config_offset: config,
        };
        assert!(sane_offsets(&meta(-1, 0, 0)), "a genesis block");
        assert!(sane_offsets(&meta(20, 15, 20)));
        assert!(!sane_offsets(&meta(20, 1_000_000_000_000, 0)));
        assert!(!sane_offsets(&meta(20, 0, 21)));
        assert!(!sane_offsets(&meta(20, -5, 0)));
    }

    #[test]
    fn each_block_says_why_it_was_cut() {
        let mut c = new_chain(batch(2, 100));
        let mut reasons = Vec::new();
        for (offset, r) in
            [env(1, 10), env(2, 10), env(3, 60), env(4, 60), env(5, 500), env(6, 10), ttc(5)].iter().enumerate()
        {
            let out = c.consume(offset as i64, r);
            assert_eq!(out.reasons.len(), out.blocks.len());
            reasons.extend(out.reasons.iter().map(|r| r.as_str()));
        }
        assert_eq!(
            reasons,
            ["max_message_count", "preferred_max_bytes", "preferred_max_bytes", "oversized", "time_to_cut"]
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
