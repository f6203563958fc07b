//! The peer's checks on what Fabric wrote (every recorded block passes) and on blocks altered in
//! each way a peer refuses.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message as _;

use super::*;
use crate::core::block::{build_block, data_hash, header_hash};
use crate::proto::common::BlockMetadataIndex;
use crate::proto::common::Metadata;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fabric-1.4.12")
}

fn blocks(dir: &Path) -> Vec<Block> {
    (0..)
        .map(|n| dir.join(format!("{n}.block")))
        .take_while(|p| p.exists())
        .map(|p| Block::decode(std::fs::read(p).unwrap().as_slice()).unwrap())
        .collect()
}

fn verify(chain: &[Block]) -> Result<(), Refused> {
    let mut verifier = PeerVerifier::new();
    chain.iter().try_for_each(|b| verifier.check(b))
}

#[test]
fn every_block_fabric_wrote_passes() {
    let runs = shared().join("runs");
    let mut checked = 0;
    for dir in ["single/blocks", "two-orderers/blocks/orderer1", "two-orderers/blocks/orderer2"] {
        for channel in ["syschannel", "ch1"] {
            let chain = blocks(&runs.join(dir).join(channel));
            verify(&chain).unwrap_or_else(|e| panic!("{dir} {channel}: {e}"));
            checked += chain.len();
        }
    }
    assert_eq!(checked, 35 + 2 + 2 * (42 + 2));
}

/// The single run's ch1 up to block `n` (excluded), and block `n`.
fn chain_and(n: usize) -> (Vec<Block>, Block) {
    let mut chain = blocks(&shared().join("runs/single/blocks/ch1"));
    chain.truncate(n + 1);
    let block = chain.pop().unwrap();
    (chain, block)
}

/// `block` after `chain`: the fault a peer refuses it for.
fn refused(chain: &[Block], block: &Block) -> PeerFault {
    let mut verifier = PeerVerifier::new();
    chain.iter().for_each(|b| verifier.check(b).unwrap());
    let refused = verifier.check(block).unwrap_err();
    assert_eq!(refused.number, chain.len() as u64);
    refused.fault
}

/// Replaces the data and fixes the data hash (so only what is asked is wrong).
fn with_data(block: &Block, data: Vec<Bytes>) -> Block {
    let mut block = block.clone();
    block.header.as_mut().unwrap().data_hash = data_hash(&data).into();
    block.data.as_mut().unwrap().data = data;
    block
}

#[test]
fn blocks_altered_in_each_way_are_refused() {
    let (chain, block) = chain_and(5);
    verify(&[chain.clone(), vec![block.clone()]].concat()).expect("as Fabric wrote it");

    // The header chain.
    let mut relinked = block.clone();
    relinked.header.as_mut().unwrap().previous_hash = Bytes::from_static(&[7; 32]);
    assert_eq!(refused(&chain, &relinked), PeerFault::Structure(Fault::BrokenLink { previous: 4 }));
    let mut rewritten = block.clone();
    rewritten.data.as_mut().unwrap().data[0] = Bytes::from_static(b"\x0a\x01p\x12\x01s");
    assert_eq!(refused(&chain, &rewritten), PeerFault::Structure(Fault::DataHash));

    // The transactions: re-marshalled otherwise, unsigned, not an envelope.
    let data = block.data.as_ref().unwrap().data.clone();
    let envelope = Envelope::decode(data[0].clone()).unwrap();
    let half = |payload: &Bytes, signature: &Bytes| {
        Envelope { payload: payload.clone(), signature: signature.clone() }.encode_to_vec()
    };
    let swapped = [half(&Bytes::new(), &envelope.signature), half(&envelope.payload, &Bytes::new())].concat();
    let mut altered = data.clone();
    altered[0] = swapped.into();
    assert_eq!(refused(&chain, &with_data(&block, altered)), PeerFault::NotCanonical { index: 0 });
    let mut altered = data.clone();
    altered[1] = half(&envelope.payload, &Bytes::new()).into();
    assert!(
        matches!(refused(&chain, &with_data(&block, altered)), PeerFault::NotWellFormed { index: 1, reason } if reason == "no signature")
    );
    let mut altered = data.clone();
    altered[2] = Bytes::from_static(b"\x0a\x09short");
    assert!(matches!(refused(&chain, &with_data(&block, altered)), PeerFault::NotWellFormed { index: 2, .. }));

    // The signatures: one byte of the orderer's changed; none; an Org1 user's instead.
    let mut forged = block.clone();
    let slot = &mut forged.metadata.as_mut().unwrap().metadata[BlockMetadataIndex::Signatures as usize];
    let mut meta = Metadata::decode(slot.clone()).unwrap();
    let mut signature = meta.signatures[0].signature.to_vec();
    let last = signature.len() - 3;
    signature[last] ^= 1;
    meta.signatures[0].signature = signature.into();
    *slot = meta.encode_to_vec().into();
    assert_eq!(refused(&chain, &forged), PeerFault::NotValidated { valid: 0 });
    let mut unsigned = block.clone();
    let slot = &mut unsigned.metadata.as_mut().unwrap().metadata[BlockMetadataIndex::Signatures as usize];
    let mut meta = Metadata::decode(slot.clone()).unwrap();
    meta.signatures.clear();
    *slot = meta.encode_to_vec().into();
    assert_eq!(refused(&chain, &unsigned), PeerFault::NotValidated { valid: 0 });
    let user = shared().join("crypto/peerOrganizations/org1.example.com/users/User1@org1.example.com/msp");
    let key = std::fs::read_dir(user.join("keystore")).unwrap().next().unwrap().unwrap().path();
    let user = crate::identity::SigningIdentity::from_pem(
        "Org1MSP",
        &std::fs::read(user.join("signcerts/User1@org1.example.com-cert.pem")).unwrap(),
        &std::fs::read(key).unwrap(),
    )
    .unwrap();
    let mut by_user = unsigned.clone();
    user.sign_block(&mut by_user);
    assert_eq!(refused(&chain, &by_user), PeerFault::NotValidated { valid: 1 }, "valid, but not an orderer's");

    // Another channel's transaction.
    let system = blocks(&shared().join("runs/single/blocks/syschannel"));
    let elsewhere = build_block(
        5,
        header_hash(chain[4].header.as_ref().unwrap()).into(),
        system[1].data.clone().unwrap().data,
        0,
        &Default::default(),
    );
    assert_eq!(refused(&chain, &elsewhere), PeerFault::WrongChannel { got: "syschannel".into(), want: "ch1".into() });
    let mut bare = block.clone();
    bare.metadata = None;
    assert_eq!(refused(&chain, &bare), PeerFault::NoMetadata);
}
