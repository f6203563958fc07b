//! `osn ledger verify`: checks an OSN's RocksDB ledger offline, channel by channel, block 0 to the
//! last: numbers, header links, data hashes and orderer signatures ([`ChainVerifier`]). Opens the
//! database read-only, so it may run while the OSN does (it sees the blocks written by then).

use std::path::{Path, PathBuf};

use anyhow::bail;

use super::verify::{report, OrdererMspArgs};
use crate::core::msp::Organization;
use crate::core::verify_chain::{BadBlock, ChainVerifier, Fault};
use crate::ledger::rocks::RocksStore;
use crate::ledger::{ChannelStore, Store};

#[derive(clap::Args, Debug)]
pub struct LedgerArgs {
    #[command(subcommand)]
    pub command: LedgerCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum LedgerCommand {
    /// Check the hash chain and the block signatures of a ledger; exits non-zero on a bad block.
    Verify {
        /// The ledger directory (`ledger.path` of the OSN's configuration).
        #[arg(long)]
        ledger: PathBuf,
        /// Only this channel (default: every channel of the ledger).
        #[arg(long)]
        channel: Option<String>,
        #[command(flatten)]
        orderers: OrdererMspArgs,
    },
}

pub async fn run(args: LedgerArgs) -> anyhow::Result<()> {
    match args.command {
        LedgerCommand::Verify { ledger, channel, orderers } => {
            let orgs = orderers.load()?;
            let results = verify_ledger(&ledger, channel.as_deref(), &orgs)?;
            let mut bad = 0;
            for (channel, result) in &results {
                println!("{}", report(channel, result));
                bad += result.is_err() as usize;
            }
            if bad > 0 {
                bail!("{bad} of {} channel(s) have a bad block", results.len());
            }
            Ok(())
        }
    }
}

/// Checks one channel (or every channel) of the ledger at `path`: per channel, the number of
/// blocks or its first bad block.
pub fn verify_ledger(
    path: &Path,
    channel: Option<&str>,
    orgs: &[Organization],
) -> anyhow::Result<Vec<(String, Result<u64, BadBlock>)>> {
    let store = RocksStore::open_read_only(path)?;
    let channels = store.channels()?;
    let channels = match channel {
        None if channels.is_empty() => bail!("the ledger in {} holds no channel", path.display()),
        None => channels,
        Some(ch) if channels.iter().any(|c| c == ch) => vec![ch.to_owned()],
        Some(ch) => bail!("the ledger in {} has no channel '{ch}' (it has: {})", path.display(), channels.join(", ")),
    };
    channels
        .into_iter()
        .map(|ch| {
            let result = verify_channel(&*store.channel(&ch)?, orgs)?;
            Ok((ch, result))
        })
        .collect()
}

/// Checks one channel's blocks, 0 to the last stored; storage errors are errors, bad blocks are
/// results.
pub fn verify_channel(store: &dyn ChannelStore, orgs: &[Organization]) -> anyhow::Result<Result<u64, BadBlock>> {
    let mut verifier = ChainVerifier::new(orgs.to_vec());
    let Some((last, _)) = store.last()? else { return Ok(Ok(0)) };
    for number in 0..=last {
        let Some(raw) = store.get(number)? else {
            return Ok(Err(BadBlock { number, fault: Fault::Missing }));
        };
        if let Err(bad) = verifier.check_bytes(raw) {
            return Ok(Err(bad));
        }
    }
    Ok(Ok(verifier.next_number()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use prost::Message as _;

    use super::*;
    use crate::core::chain::Chain;
    use crate::identity::{create_ca, issue, load_org_msp, Role, SigningIdentity, Validity};
    use crate::ledger::Ledger;
    use crate::proto::{kafka_message_regular::Class, BatchSize, Envelope, KafkaMessage};

    /// A RocksDB ledger at `path` with channel "ch" of `blocks` blocks signed by a fresh orderer,
    /// and that orderer's organisation.
    fn signed_ledger(path: &Path, crypto: &Path, blocks: u64) -> Organization {
        create_ca("OrdererMSP", crypto, Default::default(), Validity::ca_default()).unwrap();
        let id = issue(crypto, "osn", Role::Orderer, Default::default(), Validity::leaf_default()).unwrap();
        let signer = SigningIdentity::load(&id).unwrap();
        let store: Arc<dyn Store> = Arc::new(RocksStore::open(path, true).unwrap());
        let batch = BatchSize { max_message_count: 1, absolute_max_bytes: 1000, preferred_max_bytes: 500 };
        let ledger =
            Ledger::open("ch", store.channel("ch").unwrap(), &crate::core::genesis::bare_genesis("ch", batch)).unwrap();
        let mut chain = Chain::with_batch_size("ch", ledger.tip(), batch);
        for offset in 0..blocks as i64 - 1 {
            let env = Envelope { payload: vec![offset as u8; 8].into(), signature: Bytes::new() };
            let record = KafkaMessage::regular(env.encode_to_vec().into(), 0, Class::Normal).encode_to_vec();
            for mut block in chain.consume(offset, &record).blocks {
                signer.sign_block(&mut block);
                ledger.append(&block).unwrap();
            }
        }
        assert_eq!(ledger.height(), blocks);
        let msp = load_org_msp(&crypto.join("msp")).unwrap();
        Organization::from_pem(&msp.msp_id, &msp.root_certs_pem, &msp.intermediate_certs_pem).unwrap()
    }

    #[test]
    fn a_signed_ledger_verifies_and_a_corrupted_block_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let org = signed_ledger(&path, &dir.path().join("org"), 6);
        let orgs = [org];
        let results = verify_ledger(&path, None, &orgs).unwrap();
        assert_eq!(results, vec![("ch".to_string(), Ok(6))]);
        assert_eq!(report("ch", &results[0].1), "channel ch: 6 blocks, hash chain and signatures OK");

        // Change one byte of block 3's data, through RocksDB itself.
        {
            let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &path, [RocksStore::cf_name("ch")]).unwrap();
            let cf = db.cf_handle(&RocksStore::cf_name("ch")).unwrap();
            let key = 3u64.to_be_bytes();
            let mut block = crate::proto::Block::decode(&db.get_cf(cf, key).unwrap().unwrap()[..]).unwrap();
            let mut data = block.data.as_ref().unwrap().data[0].to_vec();
            data[2] ^= 0xff;
            block.data.as_mut().unwrap().data[0] = data.into();
            db.put_cf(cf, key, block.encode_to_vec()).unwrap();
        }
        let results = verify_ledger(&path, Some("ch"), &orgs).unwrap();
        assert_eq!(report("ch", &results[0].1), "channel ch: block 3 is bad: data hash does not match its data");
        assert!(verify_ledger(&path, Some("nope"), &orgs).unwrap_err().to_string().contains("no channel 'nope'"));
    }

    #[test]
    fn read_only_open_works_while_the_ledger_is_open_for_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let org = signed_ledger(&path, &dir.path().join("org"), 3);
        let _writer = RocksStore::open(&path, true).unwrap();
        let results = verify_ledger(&path, None, &[org]).unwrap();
        assert_eq!(results, vec![("ch".to_string(), Ok(3))]);
    }
}
