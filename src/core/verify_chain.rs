//! Checking a chain of blocks as a client or an auditor would, block after block: numbers in
//! sequence from 0, each `previous_hash` the header hash of the block before, each `data_hash`
//! the hash of the block's data, and each block signed by a member of an orderer organisation.
//!
//! A block's SIGNATURES slot must hold at least one signature, and every signature in it must
//! verify: its `SignatureHeader.creator` deserializes, names one of the orderer organisations
//! given to [`ChainVerifier::new`], chains to that organisation's CAs, and signs `value ‖
//! signature_header ‖ header DER` ([`block::signing_input`]). That is what a Fabric peer asks of
//! a block under configtxgen's default `/Channel/Orderer/BlockValidation` policy (ANY Writers of
//! the orderer organisations: any member of one), whatever the signer's role.
//!
//! Certificate expiry is not checked, for the signer nor for the CAs on its chain: a block carries
//! no time one could trust, and a block signed while its signer's certificate was valid stays
//! valid after it expires (Fabric's MSP validates certificate chains the same way, at the
//! certificate's own `notBefore`). Revocation is not checked either.
//!
//! The orderer organisations are the trust anchor and come from the caller, not from the genesis
//! block being checked: a forger could rewrite that too.
//!
//! Genesis blocks are unsigned, as Fabric writes them (configtxgen's, and a created channel's
//! block 0): block 0 is checked for structure only, and is covered by block 1's signature, which
//! signs block 1's header and so block 0's header hash.
//!
//! Incremental: [`ChainVerifier::check`] takes one block at a time, so a ledger or a deliver stream
//! can be checked without holding it. The orderers that sign the blocks are few: each signer is
//! parsed and judged once, and its ECDSA key verified with a table of its own after a few blocks
//! ([`super::p256`]). Pure: no I/O, no clock.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;

use super::block::{self, data_hash, header_hash, signatures_metadata};
use super::msp::{ChainError, Identity, Organization, SignatureError};
use super::p256::RepeatKey;
use crate::proto::{Block, OrdererBlockMetadata, SignatureHeader};

/// The checks of block `number` that need no trust anchor: its number, its link to the block
/// before (`previous`, that block's header hash; None for block 0) and its data hash. Its own
/// header hash when they pass.
pub fn check_structure(block: &Block, number: u64, previous: Option<&Bytes>) -> Result<Bytes, Fault> {
    let header = block.header.as_ref().ok_or(Fault::NoHeader)?;
    if header.number != number {
        return Err(Fault::WrongNumber { expected: number, got: header.number });
    }
    match previous {
        None if !header.previous_hash.is_empty() => return Err(Fault::GenesisWithPrevious),
        Some(previous) if header.previous_hash != *previous => {
            return Err(Fault::BrokenLink { previous: number.saturating_sub(1) })
        }
        _ => {}
    }
    let data: &[Bytes] = block.data.as_ref().map_or(&[], |d| &d.data);
    if header.data_hash.as_ref() != data_hash(data).as_slice() {
        return Err(Fault::DataHash);
    }
    Ok(header_hash(header).into())
}

/// What is wrong with a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("it does not decode as a block: {0}")]
    Undecodable(String),
    #[error("it is missing")]
    Missing,
    #[error("it has no header")]
    NoHeader,
    #[error("its header says it is block {got}, where block {expected} was expected")]
    WrongNumber { expected: u64, got: u64 },
    #[error("header link broken: its previous hash is not the header hash of block {previous}")]
    BrokenLink { previous: u64 },
    #[error("the genesis block has a previous hash")]
    GenesisWithPrevious,
    #[error("data hash does not match its data")]
    DataHash,
    #[error("its SIGNATURES metadata slot is missing or does not decode")]
    NoSignaturesSlot,
    #[error("no signature: its SIGNATURES metadata slot holds none")]
    NoSignature,
    #[error("signature {index}: its signature header does not decode: {reason}")]
    BadSignatureHeader { index: usize, reason: String },
    #[error("signature {index}: its creator is not a valid identity: {reason}")]
    BadCreator { index: usize, reason: String },
    #[error("signature {index}: signer not an orderer organisation member: {reason}")]
    NotOrderer { index: usize, reason: String },
    #[error("signature {index}: signature invalid: {error}")]
    BadSignature { index: usize, error: SignatureError },
    #[error("its LAST_CONFIG slot ({slot:?}) does not match the last config its signatures cover ({signed:?})")]
    LastConfig { slot: Option<u64>, signed: Option<u64> },
}

/// The first bad block of a chain and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block {number} is bad: {fault}")]
pub struct BadBlock {
    pub number: u64,
    pub fault: Fault,
}

/// Checks a chain one block at a time. After the first bad block it stays where it was: the
/// caller stops there.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    orgs: Vec<Organization>,
    next_number: u64,
    /// Header hash of block `next_number - 1`; None before block 0.
    previous_hash: Option<Bytes>,
    /// The signers seen, by their serialized identity (at most [`SIGNERS_CACHED`]).
    signers: HashMap<Bytes, Arc<Signer>>,
}

/// How many block signers a verifier remembers (a chain has a few orderers).
const SIGNERS_CACHED: usize = 64;

/// A block signer as first seen: parsed once and judged once against the trusted organisations
/// (they are the verifier's, and do not change).
#[derive(Debug)]
struct Signer {
    identity: Identity,
    orderer: Result<(), String>,
    key: RepeatKey,
}

impl ChainVerifier {
    /// A verifier of a chain from its genesis block, trusting blocks signed by orderers of `orgs`.
    pub fn new(orgs: Vec<Organization>) -> Self {
        ChainVerifier { orgs, next_number: 0, previous_hash: None, signers: HashMap::new() }
    }

    /// A verifier that resumes after a block already trusted: `next_number` is the next block to
    /// check, `previous_hash` the header hash of the block before it.
    pub fn resume(orgs: Vec<Organization>, next_number: u64, previous_hash: Bytes) -> Self {
        ChainVerifier { orgs, next_number, previous_hash: Some(previous_hash), signers: HashMap::new() }
    }

    /// Number of the next block to check (= blocks checked, from a fresh verifier).
    pub fn next_number(&self) -> u64 {
        self.next_number
    }

    /// Decodes and checks the next block's marshaled bytes.
    pub fn check_bytes(&mut self, raw: Bytes) -> Result<Block, BadBlock> {
        let block = Block::decode(raw)
            .map_err(|e| BadBlock { number: self.next_number, fault: Fault::Undecodable(e.to_string()) })?;
        self.check(&block)?;
        Ok(block)
    }

    /// Checks the next block; on success it becomes the block the following one must link to.
    pub fn check(&mut self, block: &Block) -> Result<(), BadBlock> {
        let number = self.next_number;
        let bad = |fault| BadBlock { number, fault };
        let hash = check_structure(block, self.next_number, self.previous_hash.as_ref()).map_err(bad)?;
        if self.next_number > 0 {
            self.check_signatures(block).map_err(bad)?;
            self.check_last_config(block, self.next_number).map_err(bad)?;
        }
        self.next_number += 1;
        self.previous_hash = Some(hash);
        Ok(())
    }

    fn check_signatures(&mut self, block: &Block) -> Result<(), Fault> {
        let header = block.header.as_ref().ok_or(Fault::NoHeader)?;
        let meta = signatures_metadata(block).ok_or(Fault::NoSignaturesSlot)?;
        if meta.signatures.is_empty() {
            return Err(Fault::NoSignature);
        }
        for (index, sig) in meta.signatures.iter().enumerate() {
            let sh = SignatureHeader::decode(sig.signature_header.clone())
                .map_err(|e| Fault::BadSignatureHeader { index, reason: e.to_string() })?;
            let signer = self.signer(sh.creator).map_err(|reason| Fault::BadCreator { index, reason })?;
            signer.orderer.clone().map_err(|reason| Fault::NotOrderer { index, reason })?;
            let input = block::signing_input(&meta.value, &sig.signature_header, header);
            signer
                .key
                .verify(&signer.identity.cert.public_key, true, &input, &sig.signature)
                .map_err(|error| Fault::BadSignature { index, error })?;
        }
        Ok(())
    }

    /// The signer a creator names, parsed and judged the first time it is seen; an error (not
    /// remembered) if it does not deserialize.
    fn signer(&mut self, creator: Bytes) -> Result<Arc<Signer>, String> {
        if let Some(signer) = self.signers.get(&creator) {
            return Ok(signer.clone());
        }
        let identity = Identity::deserialize(&creator)?;
        let orderer = self.orderer(&identity);
        let signer = Arc::new(Signer { identity, orderer, key: RepeatKey::default() });
        if self.signers.len() >= SIGNERS_CACHED {
            self.signers.clear();
        }
        self.signers.insert(creator, signer.clone());
        Ok(signer)
    }

    /// The LAST_CONFIG slot is not signed; the `last_config` of the signed orderer metadata is.
    /// They must agree, and point at this block or an earlier one.
    fn check_last_config(&self, block: &Block, number: u64) -> Result<(), Fault> {
        let signed = signatures_metadata(block)
            .and_then(|m| OrdererBlockMetadata::decode(m.value).ok())
            .and_then(|o| o.last_config)
            .map(|l| l.index);
        let slot = block::last_config(block);
        if slot.is_none() || slot != signed || slot.is_some_and(|n| n > number) {
            return Err(Fault::LastConfig { slot, signed });
        }
        Ok(())
    }

    /// Whether `signer` is a member of one of the orderer organisations, or why not.
    fn orderer(&self, signer: &Identity) -> Result<(), String> {
        let org = self.orgs.iter().find(|o| o.msp_id == signer.msp_id).ok_or_else(|| {
            let known: Vec<&str> = self.orgs.iter().map(|o| o.msp_id.as_str()).collect();
            format!("MSP '{}' is not an orderer organisation ({})", signer.msp_id, known.join(", "))
        })?;
        org.validate(&signer.cert).map_err(|e: ChainError| format!("{} ({})", e, signer.cert.subject))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
