//! `osn ledger verify` on a ledger written by the library and signed by an orderer: OK, then a
//! block whose data, header or signature was altered on disk through RocksDB is named by number,
//! with a non-zero exit.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use osn::core::chain::Chain;
use osn::identity::{create_ca, issue, Role, SigningIdentity, Validity};
use osn::ledger::rocks::RocksStore;
use osn::ledger::{Ledger, Store};
use osn::proto::{kafka_message_regular::Class, BatchSize, Block, Envelope, KafkaMessage};
use prost::Message as _;

/// Writes channel `ch` with a genesis block and `blocks - 1` one-envelope blocks, signed by `signer`.
fn write_ledger(path: &Path, signer: &SigningIdentity, blocks: u64) {
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(path, true).unwrap());
    let batch = BatchSize { max_message_count: 1, absolute_max_bytes: 1000, preferred_max_bytes: 500 };
    let ledger =
        Ledger::open("ch", store.channel("ch").unwrap(), &osn::core::genesis::bare_genesis("ch", batch)).unwrap();
    let mut chain = Chain::with_batch_size("ch", ledger.tip(), batch);
    for offset in 0..blocks as i64 - 1 {
        let env = Envelope { payload: vec![offset as u8; 16].into(), signature: Bytes::new() };
        let record = KafkaMessage::regular(env.encode_to_vec().into(), 0, Class::Normal).encode_to_vec();
        for mut block in chain.consume(offset, &record).blocks {
            signer.sign_block(&mut block);
            ledger.append(&block).unwrap();
        }
    }
    assert_eq!(ledger.height(), blocks);
}

/// Rewrites block `n` of channel `ch` on disk, changed by `change`.
fn tamper(ledger: &Path, n: u64, change: impl FnOnce(&mut Block)) {
    let cf_name = RocksStore::cf_name("ch");
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), ledger, [&cf_name]).unwrap();
    let cf = db.cf_handle(&cf_name).unwrap();
    let key = n.to_be_bytes();
    let mut block = Block::decode(&db.get_cf(cf, key).unwrap().unwrap()[..]).unwrap();
    change(&mut block);
    db.put_cf(cf, key, block.encode_to_vec()).unwrap();
}

fn ledger_verify(ledger: &Path, msp: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_osn"))
        .args(["ledger", "verify", "--ledger"])
        .arg(ledger)
        .arg("--orderer-msp")
        .arg(msp)
        .env("OSN_DEV_CRYPTO", ledger.join("no-dev-crypto"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn ledger_verify_names_the_corrupted_block() {
    let dir = tempfile::tempdir().unwrap();
    let (org, ledger) = (dir.path().join("orderer-org"), dir.path().join("ledger"));
    create_ca("OrdererMSP", &org, Default::default(), Validity::ca_default()).unwrap();
    let signer = SigningIdentity::load(
        &issue(&org, "osn", Role::Orderer, Default::default(), Validity::leaf_default()).unwrap(),
    )
    .unwrap();
    write_ledger(&ledger, &signer, 10);

    let (ok, text) = ledger_verify(&ledger, &org.join("msp"));
    assert!(ok, "{text}");
    assert!(text.contains("channel ch: 10 blocks, hash chain and signatures OK"), "{text}");

    // One byte of block 7's first envelope, changed on disk.
    tamper(&ledger, 7, |block| {
        let mut data = block.data.as_ref().unwrap().data[0].to_vec();
        let last = data.len() - 1;
        data[last] ^= 0x01;
        block.data.as_mut().unwrap().data[0] = data.into();
    });
    let (ok, text) = ledger_verify(&ledger, &org.join("msp"));
    assert!(!ok, "a corrupted ledger must fail: {text}");
    assert!(text.contains("channel ch: block 7 is bad: data hash does not match its data"), "{text}");

    // Block 4's header (its previous hash), changed on disk in a fresh copy of the ledger.
    let ledger2 = dir.path().join("ledger2");
    write_ledger(&ledger2, &signer, 10);
    tamper(&ledger2, 4, |block| {
        let header = block.header.as_mut().unwrap();
        let mut previous = header.previous_hash.to_vec();
        previous[0] ^= 0x80;
        header.previous_hash = previous.into();
    });
    let (ok, text) = ledger_verify(&ledger2, &org.join("msp"));
    assert!(!ok, "{text}");
    assert!(text.contains("channel ch: block 4 is bad: header link broken"), "{text}");

    // Block 5's signature bytes, changed on disk.
    let ledger3 = dir.path().join("ledger3");
    write_ledger(&ledger3, &signer, 10);
    tamper(&ledger3, 5, |block| {
        let slot = osn::proto::common::BlockMetadataIndex::Signatures as usize;
        let meta = &mut block.metadata.as_mut().unwrap().metadata[slot];
        let mut metadata = osn::proto::Metadata::decode(meta.clone()).unwrap();
        let mut sig = metadata.signatures[0].signature.to_vec();
        sig[10] ^= 0x01;
        metadata.signatures[0].signature = sig.into();
        *meta = metadata.encode_to_vec().into();
    });
    let (ok, text) = ledger_verify(&ledger3, &org.join("msp"));
    assert!(!ok, "{text}");
    assert!(text.contains("channel ch: block 5 is bad: signature 0: signature invalid"), "{text}");

    // Another organisation's CA does not vouch for this OSN's signatures.
    let other = dir.path().join("other-org");
    create_ca("OtherMSP", &other, Default::default(), Validity::ca_default()).unwrap();
    let (ok, text) = ledger_verify(&ledger, &other.join("msp"));
    assert!(!ok);
    // (Block 0 is unsigned, as Fabric's genesis blocks are; block 1's signature covers it.)
    assert!(text.contains("block 1 is bad") && text.contains("not an orderer organisation"), "{text}");
}

#[actix_rt::test]
async fn osn_verify_checks_a_running_osns_chain_over_deliver() {
    use crate::harness::*;
    let channel = channel_name("verify");
    let broker = Broker::with_topic(&channel);
    let osn = Osn::start(OsnSpec { osn_identity: 2, ..OsnSpec::new(&channel, &broker) }).await;
    broadcast_all(&osn.broadcast_url(), &envelopes(&channel, 40, 500), 8).await;
    let height = osn.wait_for_transactions(40, std::time::Duration::from_secs(30)).await.len();

    let verify = |msp: &Path| {
        Command::new(env!("CARGO_BIN_EXE_osn"))
            .args(["verify", "--url", &osn.url, "--channel", &channel, "--orderer-msp"])
            .arg(msp)
            .arg("--identity")
            .arg(crypto().org1.join("identities").join("client"))
            .output()
            .unwrap()
    };
    let out = verify(&crypto().orderer_org.join("msp"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("{height} blocks, hash chain and signatures OK")), "{text}");

    // Org1 is no orderer organisation: the first signed block, 1, already fails.
    let out = verify(&crypto().org1.join("msp"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("block 1 is bad"), "{text}");
}
