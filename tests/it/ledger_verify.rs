//! `osn ledger verify` on a ledger written by the library and signed by an orderer: OK, then a
//! block's bytes corrupted on disk through RocksDB are named by number, with a non-zero exit.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use osn::core::chain::Chain;
use osn::identity::{create_ca, issue, Role, SigningIdentity, Validity};
use osn::ledger::rocks::RocksStore;
use osn::ledger::{Ledger, Store};
use osn::proto::osn::ChannelConfig;
use osn::proto::{kafka_message_regular::Class, BatchSize, Block, Envelope, KafkaMessage};
use prost::Message as _;

/// Writes channel `ch` with a genesis block and `blocks - 1` one-envelope blocks, signed by `signer`.
fn write_ledger(path: &Path, signer: &SigningIdentity, blocks: u64) {
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(path, true).unwrap());
    let config = ChannelConfig {
        batch_size: Some(BatchSize { max_message_count: 1, absolute_max_bytes: 1000, preferred_max_bytes: 500 }),
        ..Default::default()
    };
    let ledger = Ledger::open("ch", store.channel("ch").unwrap(), &config, Some(signer)).unwrap();
    let mut chain = Chain::new(ledger.tip(), config.batch_size.unwrap());
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
    {
        let cf_name = RocksStore::cf_name("ch");
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &ledger, [&cf_name]).unwrap();
        let cf = db.cf_handle(&cf_name).unwrap();
        let key = 7u64.to_be_bytes();
        let mut block = Block::decode(&db.get_cf(cf, key).unwrap().unwrap()[..]).unwrap();
        let mut data = block.data.as_ref().unwrap().data[0].to_vec();
        let last = data.len() - 1;
        data[last] ^= 0x01;
        block.data.as_mut().unwrap().data[0] = data.into();
        db.put_cf(cf, key, block.encode_to_vec()).unwrap();
    }
    let (ok, text) = ledger_verify(&ledger, &org.join("msp"));
    assert!(!ok, "a corrupted ledger must fail: {text}");
    assert!(text.contains("channel ch: block 7 is bad: data hash does not match its data"), "{text}");

    // Another organisation's CA does not vouch for this OSN's signatures.
    let other = dir.path().join("other-org");
    create_ca("OtherMSP", &other, Default::default(), Validity::ca_default()).unwrap();
    let (ok, text) = ledger_verify(&ledger, &other.join("msp"));
    assert!(!ok);
    assert!(text.contains("block 0 is bad") && text.contains("not an orderer organisation"), "{text}");
}
