//! `osn channel list`, `osn channel info` and `osn channel config`: what channels an OSN serves,
//! where each stands, and the configuration in force.

use std::time::Duration;

use super::client::{get_message, get_message_as, read_authorization, Endpoint, IdentityArgs};
use crate::core::msp::Certificate;
use crate::core::policy::Policy;
use crate::proto::osn::{channel_info, ChannelConfig, ChannelInfo, ChannelList, Organization};

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
    /// The channel's configuration in force: organisations, policies, batch size (asked as a
    /// reader of the channel, signed with --identity).
    Config {
        /// The channel.
        channel: String,
        #[command(flatten)]
        identity: IdentityArgs,
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
        ChannelCommand::Config { channel, identity } => {
            let authorization = read_authorization(&identity.load()?, &channel);
            let url = format!("{base}/v1/channels/{channel}/config");
            let config: ChannelConfig = get_message_as(&client, &url, Some(&authorization)).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&config)?);
                return Ok(());
            }
            print_config(&channel, &config);
        }
    }
    Ok(())
}

fn print_config(channel: &str, config: &ChannelConfig) {
    let bs = config.batch_size.unwrap_or_default();
    println!("channel        {channel} (configuration sequence {})", config.sequence);
    println!(
        "batch size     {} messages, {} bytes preferred, {} bytes absolute max",
        bs.max_message_count, bs.preferred_max_bytes, bs.absolute_max_bytes
    );
    let orgs = |list: &[Organization]| {
        for org in list {
            let roots: Vec<String> = org
                .root_certs
                .iter()
                .map(|pem| {
                    Certificate::from_pem(pem).map(|c| c.subject).unwrap_or_else(|e| format!("(unreadable: {e})"))
                })
                .collect();
            println!("  {:<24} roots: {}", org.msp_id, roots.join("; "));
        }
    };
    println!("organisations");
    orgs(&config.organizations);
    let policy = |name: &str, p: &Option<crate::proto::osn::Policy>, default: &str| {
        let text = match p {
            None => format!("{default} (the default)"),
            Some(p) => Policy::from_proto(p).map(|p| p.to_string()).unwrap_or_else(|e| format!("invalid: {e}")),
        };
        println!("{name:<14} {text}");
    };
    let members = "a member of one of the channel's organisations";
    policy("writers", &config.writers, members);
    policy("readers", &config.readers, members);
    policy("admins", &config.admins, "admins of a majority of the channel's organisations");
    println!("orderers");
    orgs(&config.orderer_organizations);
}
