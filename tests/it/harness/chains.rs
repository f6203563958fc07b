//! Checks of chains: links, limits, every acknowledged envelope once, identical across OSNs.

use super::*;

/// Every acknowledged envelope is in the chain exactly once.
pub fn assert_all_once(chain: &[Block], acked: &[Envelope]) {
    let mut seen: std::collections::HashMap<Vec<u8>, usize> = std::collections::HashMap::new();
    for b in chain.iter().skip(1) {
        for d in &b.data.as_ref().unwrap().data {
            *seen.entry(d.to_vec()).or_default() += 1;
        }
    }
    for env in acked {
        assert_eq!(seen.get(&env.encode_to_vec()), Some(&1), "an acknowledged envelope is missing or duplicated");
    }
}

/// What must be identical across OSNs: header, data and the ORDERER metadata slot.
pub fn consensus_view(block: &Block) -> (osn::proto::BlockHeader, Vec<Bytes>, Option<Bytes>) {
    (
        block.header.clone().unwrap(),
        block.data.clone().unwrap().data,
        osn::core::block::metadata_value(block, osn::proto::common::BlockMetadataIndex::Orderer),
    )
}

/// Every block is one a Fabric peer accepts: links and hashes, well-formed transactions that
/// re-marshal to their own bytes, and signatures satisfying the channel's BlockValidation policy
/// (`core::peer_verify`, from FABRIC.md §6). `chain` starts at block 0.
pub fn assert_peers_accept(chain: &[Block]) {
    let mut peer = osn::core::peer_verify::PeerVerifier::new();
    for block in chain {
        peer.check(block).unwrap_or_else(|refused| panic!("a Fabric peer refuses {refused}"));
    }
}

/// Checks the hash links, the batch limits, and that every envelope of `sent` is in the chain
/// exactly once (and nothing else is); and that a Fabric peer accepts every block.
pub fn check_chain(chain: &[Block], sent: &[Envelope], spec: &OsnSpec) {
    use std::collections::HashMap;
    assert_peers_accept(chain);
    let mut prev = Bytes::new();
    for (n, block) in chain.iter().enumerate() {
        let header = block.header.as_ref().unwrap();
        assert_eq!(header.number, n as u64);
        assert_eq!(header.previous_hash, prev, "block {n} links to block {}", n.saturating_sub(1));
        assert_eq!(
            header.data_hash.to_vec(),
            osn::core::block::data_hash(&block.data.as_ref().unwrap().data),
            "data hash of block {n}"
        );
        prev = osn::core::block::header_hash(header).into();
        if n > 0 {
            let data = &block.data.as_ref().unwrap().data;
            assert!(!data.is_empty(), "block {n} is empty");
            assert!(data.len() <= spec.max_message_count as usize, "block {n} has {} messages", data.len());
            if data.len() > 1 {
                let bytes: usize = data
                    .iter()
                    .map(|d| {
                        let e = Envelope::decode(d.clone()).unwrap();
                        e.payload.len() + e.signature.len()
                    })
                    .sum();
                assert!(bytes <= spec.preferred_max_bytes as usize, "block {n} holds {bytes} bytes");
            }
        }
    }
    let mut counts: HashMap<Bytes, usize> = HashMap::new();
    for block in &chain[1..] {
        for d in &block.data.as_ref().unwrap().data {
            *counts.entry(d.clone()).or_default() += 1;
        }
    }
    for e in sent {
        let key = Bytes::from(e.encode_to_vec());
        assert_eq!(counts.get(&key).copied().unwrap_or(0), 1, "an acknowledged envelope appears once");
    }
    assert_eq!(counts.values().sum::<usize>(), sent.len(), "nothing but the sent envelopes is ordered");
}

/// The chains are identical in everything but the signatures, verify, and a Fabric peer accepts them.
pub fn assert_identical(chains: &[Vec<Block>]) {
    let reference: Vec<_> = chains[0].iter().map(consensus_view).collect();
    for (i, chain) in chains.iter().enumerate().skip(1) {
        let view: Vec<_> = chain.iter().map(consensus_view).collect();
        assert_eq!(view.len(), reference.len(), "OSN {i} height");
        for (n, (a, b)) in reference.iter().zip(&view).enumerate() {
            assert_eq!(a, b, "block {n} differs between OSN 0 and OSN {i}");
        }
    }
    let orderer = osn::identity::load_org_msp(&crypto().orderer_org.join("msp")).unwrap();
    let orgs = vec![osn::core::msp::Organization::from_pem(
        &orderer.msp_id,
        &orderer.root_certs_pem,
        &orderer.intermediate_certs_pem,
    )
    .unwrap()];
    for (i, chain) in chains.iter().enumerate() {
        let mut verifier = osn::core::verify_chain::ChainVerifier::new(orgs.clone());
        for block in chain {
            verifier.check(block).unwrap_or_else(|bad| panic!("OSN {i}: {bad}"));
        }
        assert_peers_accept(chain);
    }
}
