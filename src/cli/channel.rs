//! `osn channel list` and `osn channel info`: what channels an OSN serves and where each stands.

use std::time::Duration;

use super::client::{get_message, Endpoint};
use crate::proto::osn::{channel_info, ChannelInfo, ChannelList};

#[derive(clap::Args, Debug)]
pub struct ChannelArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: ChannelCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ChannelCommand {
    /// Every channel with its height and status.
    List,
    /// One channel: height, last config block, Kafka position, batch settings, status.
    Info {
        /// The channel.
        channel: String,
    },
}

fn phase(p: i32) -> &'static str {
    channel_info::Phase::try_from(p).map(|p| p.as_str_name()).unwrap_or("UNKNOWN")
}

pub async fn run(args: ChannelArgs) -> anyhow::Result<()> {
    let client = args.endpoint.client(Duration::from_secs(10))?;
    let base = args.endpoint.base();
    match args.command {
        ChannelCommand::List => {
            let list: ChannelList = get_message(&client, &format!("{base}/v1/channels")).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            println!("{:<32} {:>10}  STATUS", "CHANNEL", "HEIGHT");
            for c in &list.channels {
                println!("{:<32} {:>10}  {}", c.name, c.height, phase(c.status));
            }
        }
        ChannelCommand::Info { channel } => {
            let info: ChannelInfo = get_message(&client, &format!("{base}/v1/channels/{channel}")).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&info)?);
                return Ok(());
            }
            let bs = info.batch_size.unwrap_or_default();
            let kafka = info.kafka.unwrap_or_default();
            println!("channel        {}", info.name);
            println!(
                "status         {}{}",
                phase(info.status),
                if info.status_reason.is_empty() { String::new() } else { format!(" ({})", info.status_reason) }
            );
            println!("height         {}", info.height);
            println!("last config    block {}", info.last_config);
            println!(
                "kafka          topic {} partition {}, last offset persisted {}",
                kafka.topic, kafka.partition, kafka.last_offset_persisted
            );
            println!(
                "batch size     {} messages, {} bytes preferred, {} bytes absolute max",
                bs.max_message_count, bs.preferred_max_bytes, bs.absolute_max_bytes
            );
            println!("batch timeout  {}", info.batch_timeout);
            println!("restarts       {}", info.restarts);
            println!("lag            {} bytes behind the partition (estimated)", info.lag_bytes);
        }
    }
    Ok(())
}
