//! `osn verify`: streams a channel's blocks from an OSN, oldest to newest, over the deliver
//! websocket and checks them with [`ChainVerifier`] (numbers, header links, data hashes and
//! orderer signatures). Also what `osn ledger verify` shares: `--orderer-msp` and the report line.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use prost::Message as _;

use super::client::{deliver_over_websocket, seek_request, Endpoint, IdentityArgs};
use crate::core::msp::Organization;
use crate::core::seek;
use crate::core::verify_chain::{BadBlock, ChainVerifier};
use crate::identity::dev::default_dev_root;
use crate::identity::layout::MSP_DIR;
use crate::identity::load_org_msp;
use crate::proto::orderer::deliver_response;
use crate::proto::orderer::seek_info::{SeekBehavior, SeekErrorResponse};
use crate::proto::{DeliverResponse, SeekInfo, Status};

/// `--orderer-msp DIR`: the organisations whose orderers may sign blocks.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OrdererMspArgs {
    /// MSP directory of an orderer organisation (`mspid`, `cacerts/`, optional
    /// `intermediatecerts/`), e.g. `orderer-org/msp`; repeat for several. Blocks must be signed by
    /// members of one of them (Fabric's default BlockValidation policy). Default: the orderer
    /// organisation `osn dev` creates.
    #[arg(long = "orderer-msp", value_name = "MSP_DIR")]
    pub orderer_msp: Vec<PathBuf>,
}

impl OrdererMspArgs {
    /// The orderer organisations, parsed and checked.
    pub fn load(&self) -> anyhow::Result<Vec<Organization>> {
        let dirs = if self.orderer_msp.is_empty() {
            let dir = default_dev_root().join("orderer-org").join(MSP_DIR);
            if !dir.is_dir() {
                bail!(
                    "no orderer organisation to check signatures against: pass --orderer-msp DIR (the orderer \
                     organisation's msp directory), or run `osn dev` once, which creates {}",
                    dir.display()
                );
            }
            vec![dir]
        } else {
            self.orderer_msp.clone()
        };
        dirs.iter()
            .map(|dir| {
                let msp =
                    load_org_msp(dir).with_context(|| format!("cannot load the orderer MSP in {}", dir.display()))?;
                Organization::from_pem(&msp.msp_id, &msp.root_certs_pem, &msp.intermediate_certs_pem)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))
            })
            .collect()
    }
}

/// One channel's result, as printed: `channel ch: 12 blocks, hash chain and signatures OK` or
/// `channel ch: block 7 is bad: data hash does not match its data`.
pub fn report(channel: &str, result: &Result<u64, BadBlock>) -> String {
    match result {
        Ok(blocks) => format!("channel {channel}: {blocks} blocks, hash chain and signatures OK"),
        Err(bad) => format!("channel {channel}: {bad}"),
    }
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    /// Channel to check.
    #[arg(long)]
    pub channel: String,
    #[command(flatten)]
    pub orderers: OrdererMspArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let mut verifier = ChainVerifier::new(args.orderers.load()?);
    let signer = args.identity.load()?;
    let seek = SeekInfo {
        start: Some(seek::oldest()),
        stop: Some(seek::newest()),
        behavior: SeekBehavior::BlockUntilReady as i32,
        // The ledger is what is checked, whether the channel consumes Kafka right now or not.
        error_response: SeekErrorResponse::BestEffort as i32,
    };
    let request: Bytes = seek_request(&signer, &args.channel, &seek).encode_to_vec().into();
    deliver_over_websocket(&args.endpoint, &args.channel, request, |raw| {
        let resp = DeliverResponse::decode(raw).context("undecodable DeliverResponse")?;
        match resp.r#type {
            Some(deliver_response::Type::Block(block)) => {
                if let Err(bad) = verifier.check(&block) {
                    println!("{}", report(&args.channel, &Err(bad)));
                    bail!("channel {} has a bad block", args.channel);
                }
                Ok(None)
            }
            Some(deliver_response::Type::Status(s)) => {
                let status = Status::try_from(s).unwrap_or(Status::Unknown);
                if status != Status::Success {
                    bail!("deliver ended with status {}: {}", status.as_str_name(), resp.info);
                }
                println!("{}", report(&args.channel, &Ok(verifier.next_number())));
                Ok(Some(()))
            }
            None => bail!("empty DeliverResponse"),
        }
    })
    .await
}
