//! `osn block get`: one block of a channel, by number, `newest` or `oldest`.

use std::io::Write as _;
use std::time::Duration;

use prost::Message as _;

use super::client::{get_message_as, read_authorization, Endpoint, IdentityArgs};
use super::deliver::summary;
use crate::proto::Block;

#[derive(clap::Args, Debug)]
pub struct BlockArgs {
    #[command(subcommand)]
    pub command: BlockCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum BlockCommand {
    /// Fetch one block.
    Get {
        #[command(flatten)]
        endpoint: Endpoint,
        /// Channel to read.
        #[arg(long)]
        channel: String,
        /// Block number, `newest` or `oldest`.
        number: String,
        /// Output: the block as JSON, its protobuf bytes, or a summary line.
        #[arg(long, value_enum, default_value_t = BlockFormat::Json)]
        format: BlockFormat,
        #[command(flatten)]
        identity: IdentityArgs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BlockFormat {
    Json,
    Protobuf,
    Summary,
}

pub async fn run(args: BlockArgs) -> anyhow::Result<()> {
    let BlockCommand::Get { endpoint, channel, number, format, identity } = args.command;
    let authorization = read_authorization(&identity.load()?, &channel);
    let client = endpoint.client(Duration::from_secs(30))?;
    let url = format!("{}/v1/channels/{channel}/blocks/{number}", endpoint.base());
    let block: Block = get_message_as(&client, &url, Some(&authorization)).await?;
    match format {
        BlockFormat::Json => println!("{}", serde_json::to_string_pretty(&block)?),
        BlockFormat::Protobuf => {
            let mut out = std::io::stdout().lock();
            out.write_all(&block.encode_to_vec())?;
            out.flush()?;
        }
        BlockFormat::Summary => println!("{}", summary(&block)),
    }
    Ok(())
}
