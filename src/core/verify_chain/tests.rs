//! A signed chain verifies; each kind of tampering is found at the right block.

use bytes::Bytes;
use prost::Message as _;

use super::*;
use crate::core::block::{build_block, genesis_block_of, header_hash};
use crate::identity::{create_ca, issue, load_org_msp, Role as IdRole, SigningIdentity, Validity};
use crate::proto::KafkaMetadata;

struct Fixture {
    _dir: tempfile::TempDir,
    orderer: SigningIdentity,
    /// A client of the orderer organisation.
    client: SigningIdentity,
    /// An orderer of another organisation.
    stranger: SigningIdentity,
    orgs: Vec<Organization>,
}

fn org(dir: &std::path::Path, msp_id: &str) -> Organization {
    let msp = load_org_msp(&dir.join("msp")).unwrap();
    Organization::from_pem(msp_id, &msp.root_certs_pem, &msp.intermediate_certs_pem).unwrap()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (ord, other) = (dir.path().join("ord"), dir.path().join("other"));
    create_ca("OrdererMSP", &ord, Default::default(), Validity::ca_default()).unwrap();
    create_ca("OtherMSP", &other, Default::default(), Validity::ca_default()).unwrap();
    let load = |org: &std::path::Path, name, role| {
        SigningIdentity::load(&issue(org, name, role, Default::default(), Validity::leaf_default()).unwrap()).unwrap()
    };
    Fixture {
        orderer: load(&ord, "osn", IdRole::Orderer),
        client: load(&ord, "client", IdRole::Client),
        stranger: load(&other, "osn", IdRole::Orderer),
        orgs: vec![org(&ord, "OrdererMSP")],
        _dir: dir,
    }
}

/// A created channel's (unsigned) genesis block.
fn genesis() -> Block {
    genesis_block_of(Bytes::from_static(b"the channel's CONFIG envelope"))
}

/// A genesis block (unsigned, as Fabric's) and `n` more, each with one envelope, signed by
/// `signer`.
fn chain(signer: &SigningIdentity, n: u64) -> Vec<Block> {
    let mut blocks = vec![genesis()];
    for number in 1..=n {
        let previous = header_hash(blocks.last().unwrap().header.as_ref().unwrap());
        let kafka = KafkaMetadata { last_offset_persisted: number as i64, ..Default::default() };
        blocks.push(build_block(number, previous.into(), vec![Bytes::from(vec![number as u8; 10])], 0, &kafka));
    }
    for b in &mut blocks[1..] {
        signer.sign_block(b);
    }
    blocks
}

/// Verifies `blocks` to the end or the first bad block.
fn verify(orgs: &[Organization], blocks: &[Block]) -> Result<u64, BadBlock> {
    let mut v = ChainVerifier::new(orgs.to_vec());
    for b in blocks {
        // Through the bytes, as the CLI does.
        v.check_bytes(b.encode_to_vec().into())?;
    }
    Ok(v.next_number())
}

/// The expected outcome: the number of good blocks, or the bad block and a test of its fault.
type Want = Result<u64, (u64, fn(&Fault) -> bool)>;

fn check(f: &Fixture, what: &str, tamper: impl FnOnce(&mut Vec<Block>), want: Want) {
    let mut blocks = chain(&f.orderer, 4);
    tamper(&mut blocks);
    let got = verify(&f.orgs, &blocks);
    match (&got, want) {
        (Ok(n), Ok(w)) if *n == w => {}
        (Err(bad), Err((number, fault))) if bad.number == number && fault(&bad.fault) => {}
        _ => panic!("{what}: got {got:?}"),
    }
}

fn slot(b: &mut Block) -> crate::proto::Metadata {
    signatures_metadata(b).unwrap()
}

fn set_slot(b: &mut Block, m: crate::proto::Metadata) {
    b.metadata.as_mut().unwrap().metadata[crate::proto::common::BlockMetadataIndex::Signatures as usize] =
        m.encode_to_vec().into();
}

#[test]
fn tampering_is_found_at_the_right_block() {
    let f = fixture();
    check(&f, "untouched", |_| {}, Ok(5));
    check(
        &f,
        "data changed",
        |b| b[2].data.as_mut().unwrap().data[0] = Bytes::from_static(b"forged"),
        Err((2, |e| *e == Fault::DataHash)),
    );
    check(
        &f,
        "data and data hash changed: the signature no longer covers the header",
        |b| {
            b[2].data.as_mut().unwrap().data[0] = Bytes::from_static(b"forged");
            b[2].header.as_mut().unwrap().data_hash = data_hash(&b[2].data.as_ref().unwrap().data).into();
        },
        Err((2, |e| matches!(e, Fault::BadSignature { index: 0, .. }))),
    );
    check(
        &f,
        "data, data hash and signature redone by the forger: the next block's link breaks",
        |b| {
            b[2].data.as_mut().unwrap().data[0] = Bytes::from_static(b"forged");
            b[2].header.as_mut().unwrap().data_hash = data_hash(&b[2].data.as_ref().unwrap().data).into();
            let mut m = slot(&mut b[2]);
            m.signatures.clear();
            set_slot(&mut b[2], m);
            f.orderer.sign_block(&mut b[2]);
        },
        Err((3, |e| *e == Fault::BrokenLink { previous: 2 })),
    );
    check(
        &f,
        "previous hash changed",
        |b| b[3].header.as_mut().unwrap().previous_hash = Bytes::from(vec![0; 32]),
        Err((3, |e| *e == Fault::BrokenLink { previous: 2 })),
    );
    check(&f, "a block missing", |b| drop(b.remove(2)), Err((2, |e| *e == Fault::WrongNumber { expected: 2, got: 3 })));
    check(
        &f,
        "signature bytes flipped",
        |b| {
            let mut m = slot(&mut b[1]);
            let mut sig = m.signatures[0].signature.to_vec();
            let last = sig.len() - 1;
            sig[last] ^= 1;
            m.signatures[0].signature = sig.into();
            set_slot(&mut b[1], m);
        },
        Err((1, |e| matches!(e, Fault::BadSignature { index: 0, .. }))),
    );
    check(
        &f,
        "signed value changed (last config)",
        |b| {
            let mut m = slot(&mut b[4]);
            m.value = Bytes::from_static(b"\x0a\x02\x08\x07");
            set_slot(&mut b[4], m);
        },
        Err((4, |e| matches!(e, Fault::BadSignature { .. }))),
    );
    check(
        &f,
        "signatures removed",
        |b| {
            let mut m = slot(&mut b[1]);
            m.signatures.clear();
            set_slot(&mut b[1], m);
        },
        Err((1, |e| *e == Fault::NoSignature)),
    );
    check(
        &f,
        "the unsigned genesis block's data changed: its data hash no longer matches",
        |b| b[0].data.as_mut().unwrap().data[0] = Bytes::from_static(b"forged"),
        Err((0, |e| *e == Fault::DataHash)),
    );
    check(
        &f,
        "the genesis block's data and data hash changed: block 1's link breaks",
        |b| {
            b[0].data.as_mut().unwrap().data[0] = Bytes::from_static(b"forged");
            b[0].header.as_mut().unwrap().data_hash = data_hash(&b[0].data.as_ref().unwrap().data).into();
        },
        Err((1, |e| *e == Fault::BrokenLink { previous: 0 })),
    );
    check(
        &f,
        "a second, bad signature is refused too",
        |b| {
            let mut m = slot(&mut b[3]);
            let mut extra = m.signatures[0].clone();
            extra.signature = Bytes::from_static(b"\x30\x00");
            m.signatures.push(extra);
            set_slot(&mut b[3], m);
        },
        Err((3, |e| matches!(e, Fault::BadSignature { index: 1, .. }))),
    );
    check(
        &f,
        "header number changed",
        |b| b[1].header.as_mut().unwrap().number = 7,
        Err((1, |e| *e == Fault::WrongNumber { expected: 1, got: 7 })),
    );
    // The LAST_CONFIG slot is outside the signature; the signed orderer metadata disagrees.
    check(
        &f,
        "LAST_CONFIG slot changed",
        |b| {
            let slot = crate::proto::common::BlockMetadataIndex::LastConfig as usize;
            let value = crate::proto::LastConfig { index: 1 }.encode_to_vec();
            b[2].metadata.as_mut().unwrap().metadata[slot] =
                crate::proto::Metadata { value: value.into(), signatures: Vec::new() }.encode_to_vec().into();
        },
        Err((2, |e| *e == Fault::LastConfig { slot: Some(1), signed: Some(0) })),
    );
}

#[test]
fn only_members_of_the_orderer_organisations_sign() {
    let f = fixture();
    let blocks = chain(&f.stranger, 2);
    let bad = verify(&f.orgs, &blocks).unwrap_err();
    assert_eq!(bad.number, 1);
    assert!(
        matches!(&bad.fault, Fault::NotOrderer { reason, .. } if reason.contains("is not an orderer organisation")),
        "{bad}"
    );
    // Any member of an orderer organisation, as Fabric's default BlockValidation policy (ANY
    // Writers of the orderer organisations) has it.
    assert_eq!(verify(&f.orgs, &chain(&f.client, 2)), Ok(3));
    // The stranger's certificate claiming the orderer MSP ID does not chain to its CA.
    let mut forged = f.stranger.serialized().to_vec();
    let mut id = crate::proto::msp::SerializedIdentity::decode(&forged[..]).unwrap();
    id.mspid = "OrdererMSP".into();
    forged = id.encode_to_vec();
    let mut blocks = chain(&f.orderer, 1);
    let block = &mut blocks[1];
    let mut m = slot(block);
    m.signatures.clear();
    set_slot(block, m);
    let header: Bytes = SignatureHeader { creator: forged.into(), nonce: Bytes::new() }.encode_to_vec().into();
    let input = crate::core::block::block_signing_input(block, &header).unwrap();
    crate::core::block::add_signature(block, header, f.stranger.sign(&input).into());
    let bad = verify(&f.orgs, &blocks).unwrap_err();
    assert!(matches!(&bad.fault, Fault::NotOrderer { reason, .. } if reason.contains("not issued")), "{bad}");
}

#[test]
fn signing_changes_only_the_signatures() {
    let f = fixture();
    let unsigned = genesis();
    let (mut a, mut b) = (unsigned.clone(), unsigned.clone());
    f.orderer.sign_block(&mut a);
    f.stranger.sign_block(&mut b);
    assert_eq!(a.header, unsigned.header);
    assert_eq!(a.data, unsigned.data);
    let (ma, mb) = (a.metadata.as_ref().unwrap(), b.metadata.as_ref().unwrap());
    let sig = crate::proto::common::BlockMetadataIndex::Signatures as usize;
    for i in 0..ma.metadata.len() {
        if i != sig {
            assert_eq!(ma.metadata[i], unsigned.metadata.as_ref().unwrap().metadata[i], "slot {i}");
            assert_eq!(ma.metadata[i], mb.metadata[i], "slot {i}");
        }
    }
    assert_eq!(signatures_metadata(&a).unwrap().value, signatures_metadata(&unsigned).unwrap().value);
    let sh = SignatureHeader::decode(signatures_metadata(&a).unwrap().signatures[0].signature_header.clone()).unwrap();
    assert_eq!(sh.creator, f.orderer.serialized());
    assert_eq!(sh.nonce.len(), crate::identity::BLOCK_NONCE_LEN);
}

#[test]
fn resumes_after_a_trusted_block() {
    let f = fixture();
    let blocks = chain(&f.orderer, 4);
    let mut v = ChainVerifier::resume(f.orgs.clone(), 3, header_hash(blocks[2].header.as_ref().unwrap()).into());
    v.check(&blocks[3]).unwrap();
    v.check(&blocks[4]).unwrap();
    assert_eq!(v.next_number(), 5);
    let bad = ChainVerifier::resume(f.orgs.clone(), 3, Bytes::from_static(b"x")).check(&blocks[3]).unwrap_err();
    assert_eq!(
        bad.to_string(),
        "block 3 is bad: header link broken: its previous hash is not the header hash of block 2"
    );
}

/// The signers are remembered and their keys move to tables after a few blocks: a long chain
/// still verifies, and a bad signature or a stranger late in it is still found, at its block.
#[test]
fn a_long_chain_is_judged_alike_after_its_signers_are_remembered() {
    let f = fixture();
    let n = 4 * u64::from(crate::core::p256::PREPARE_AFTER);
    assert_eq!(verify(&f.orgs, &chain(&f.orderer, n)), Ok(n + 1));

    let mut blocks = chain(&f.orderer, n);
    let late = blocks.len() - 2;
    let mut m = slot(&mut blocks[late]);
    let other = slot(&mut blocks[late - 1]).signatures[0].signature.clone();
    m.signatures[0].signature = other;
    set_slot(&mut blocks[late], m);
    let bad = verify(&f.orgs, &blocks).unwrap_err();
    assert_eq!(bad.number, late as u64);
    assert!(matches!(bad.fault, Fault::BadSignature { error: SignatureError::Invalid, .. }), "{bad}");

    // The stranger signs the last block: known signers do not vouch for a new one.
    let mut blocks = chain(&f.orderer, n);
    let last = blocks.len() - 1;
    let mut m = slot(&mut blocks[last]);
    m.signatures.clear();
    set_slot(&mut blocks[last], m);
    f.stranger.sign_block(&mut blocks[last]);
    let bad = verify(&f.orgs, &blocks).unwrap_err();
    assert_eq!(bad.number, last as u64);
    assert!(matches!(&bad.fault, Fault::NotOrderer { .. }), "{bad}");
}
