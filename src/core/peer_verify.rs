//! A channel's blocks checked as a Fabric peer checks them before it commits them (FABRIC.md
//! §6: Fabric's `VerifyBlock`, with the transaction check of v2.2.14 / v2.5.5, and the
//! `/Channel/Orderer/BlockValidation` policy of the configuration in force):
//!
//! - the header: numbers in sequence, each previous hash the header hash of the block before, the
//!   data hash that of the data;
//! - metadata present, and the first envelope's channel header naming the channel;
//! - every transaction of a block that is not a config block well formed: it parses as an
//!   envelope, has a payload and a signature, and re-marshals (as Go does) to its own bytes;
//! - after block 0 (which a peer joins with, unsigned), the SIGNATURES metadata: each signature
//!   that verifies over `value ‖ signature header ‖ header DER` counts for its creator, and
//!   together they must satisfy BlockValidation. A config block is judged under the
//!   configuration before it, and its own configuration applies from the next block on.
//!
//! [`super::verify_chain`] is the auditor's check (any orderer organisation member, the trust
//! anchor given from outside); this one takes its policies from the chain, as a peer does.

use bytes::Bytes;
use prost::Message as _;

use super::block::{signatures_metadata, signing_input};
use super::fabric_policy::Policies;
use super::msp::Identity;
use super::verify_chain::{check_structure, Fault};
use crate::proto::{Block, ChannelHeader, Envelope, HeaderType, Payload, SignatureHeader};

/// The policy a peer checks block signatures against.
pub const BLOCK_VALIDATION: &str = "/Channel/Orderer/BlockValidation";

/// What a peer refuses a block for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerFault {
    #[error("{0}")]
    Structure(Fault),
    #[error("it has no metadata")]
    NoMetadata,
    #[error("it has no transaction")]
    NoData,
    #[error("its first envelope names channel '{got}', not '{want}'")]
    WrongChannel { got: String, want: String },
    #[error("its first envelope's header does not decode: {0}")]
    BadHeader(String),
    #[error("transaction {index} is not well formed: {reason}")]
    NotWellFormed { index: usize, reason: String },
    #[error("transaction {index} does not re-marshal to its own bytes")]
    NotCanonical { index: usize },
    #[error("its signatures do not satisfy {BLOCK_VALIDATION} ({valid} valid signature(s))")]
    NotValidated { valid: usize },
    #[error("its configuration cannot be loaded: {0}")]
    Config(String),
}

/// A block a peer would refuse, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block {number}: {fault}")]
pub struct Refused {
    pub number: u64,
    pub fault: PeerFault,
}

/// Checks a channel's blocks from block 0, one at a time.
#[derive(Debug)]
pub struct PeerVerifier {
    channel: Option<String>,
    policies: Option<Policies>,
    next_number: u64,
    previous_hash: Option<Bytes>,
}

impl Default for PeerVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl PeerVerifier {
    /// A verifier that learns the channel and its configuration from block 0.
    pub fn new() -> Self {
        PeerVerifier { channel: None, policies: None, next_number: 0, previous_hash: None }
    }

    /// Checks the next block; on success it is the block the next one must link to.
    pub fn check(&mut self, block: &Block) -> Result<(), Refused> {
        let number = self.next_number;
        let refuse = |fault| Refused { number, fault };
        let hash =
            check_structure(block, number, self.previous_hash.as_ref()).map_err(|f| refuse(PeerFault::Structure(f)))?;
        if block.metadata.as_ref().is_none_or(|m| m.metadata.is_empty()) {
            return Err(refuse(PeerFault::NoMetadata));
        }
        let data: &[Bytes] = block.data.as_ref().map_or(&[], |d| &d.data);
        let first = data.first().ok_or(refuse(PeerFault::NoData))?;
        let header = channel_header(first).map_err(|e| refuse(PeerFault::BadHeader(e)))?;
        let channel = self.channel.get_or_insert_with(|| header.channel_id.clone());
        if header.channel_id != *channel {
            return Err(refuse(PeerFault::WrongChannel { got: header.channel_id, want: channel.clone() }));
        }
        let is_config = header.r#type == HeaderType::Config as i32;
        if !is_config {
            well_formed(data).map_err(refuse)?;
        }
        if number > 0 {
            let policies = self.policies.as_ref().ok_or(refuse(PeerFault::Config("no configuration".into())))?;
            validated(block, policies).map_err(refuse)?;
        }
        if is_config {
            let config = crate::ledger::block_config(block).map_err(|e| refuse(PeerFault::Config(e)))?;
            let group = config.channel_group.as_ref().ok_or(refuse(PeerFault::Config("no channel group".into())))?;
            self.policies = Some(Policies::of(group).map_err(|e| refuse(PeerFault::Config(e)))?);
        }
        self.next_number += 1;
        self.previous_hash = Some(hash);
        Ok(())
    }
}

fn channel_header(raw: &Bytes) -> Result<ChannelHeader, String> {
    let envelope = Envelope::decode(raw.clone()).map_err(|e| e.to_string())?;
    let payload = Payload::decode(envelope.payload).map_err(|e| e.to_string())?;
    let header = payload.header.ok_or("no header")?;
    ChannelHeader::decode(header.channel_header).map_err(|e| e.to_string())
}

/// Fabric 2.5.5's `VerifyTransactionsAreWellFormed`.
fn well_formed(data: &[Bytes]) -> Result<(), PeerFault> {
    for (index, raw) in data.iter().enumerate() {
        let bad = |reason: &str| PeerFault::NotWellFormed { index, reason: reason.to_owned() };
        let canonical = super::canonical::envelope(raw).map_err(|e| bad(&e))?;
        let envelope = Envelope::decode(raw.clone()).map_err(|e| bad(&e.to_string()))?;
        if envelope.payload.is_empty() {
            return Err(bad("no payload"));
        }
        if envelope.signature.is_empty() {
            return Err(bad("no signature"));
        }
        if canonical != *raw {
            return Err(PeerFault::NotCanonical { index });
        }
    }
    Ok(())
}

/// The block's signatures that verify, with their creators, against BlockValidation.
fn validated(block: &Block, policies: &Policies) -> Result<(), PeerFault> {
    let header = block.header.as_ref().ok_or(PeerFault::Structure(Fault::NoHeader))?;
    let meta = signatures_metadata(block).ok_or(PeerFault::Structure(Fault::NoSignaturesSlot))?;
    let signers: Vec<(Identity, Bytes)> = meta
        .signatures
        .iter()
        .filter_map(|sig| {
            let creator = SignatureHeader::decode(sig.signature_header.clone()).ok()?.creator;
            let identity = Identity::deserialize(&creator).ok()?;
            let input = signing_input(&meta.value, &sig.signature_header, header);
            identity.cert.public_key.verify(&input, &sig.signature).ok()?;
            Some((identity, creator))
        })
        .collect();
    if !policies.evaluate(BLOCK_VALIDATION, &signers) {
        return Err(PeerFault::NotValidated { valid: signers.len() });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
