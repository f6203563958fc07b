//! The `osn` command line: one module per subcommand.

pub mod block;
pub mod broadcast;
pub mod channel;
pub mod client;
pub mod deliver;
pub mod dev;
pub mod identity;
pub mod ledger;
pub mod load;
pub mod start;
pub mod verify;

use clap::{Parser, Subcommand};

pub use crate::logging::LogFormat;

#[derive(Parser, Debug)]
#[command(name = "osn", version, about = "A Kafka-based ordering service node for permissioned blockchains")]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "OSN_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a complete OSN with an embedded in-memory Kafka broker: nothing else to install.
    Dev(dev::DevArgs),
    /// Run an OSN against a real Kafka cluster, configured by a TOML file.
    Start(start::StartArgs),
    /// Send envelopes to a channel (one per request, in batches or over a websocket) and report how
    /// many were accepted.
    Broadcast(broadcast::BroadcastArgs),
    /// Stream blocks of a channel.
    Deliver(deliver::DeliverArgs),
    /// List the channels of an OSN, or show one.
    Channel(channel::ChannelArgs),
    /// Fetch a block.
    Block(block::BlockArgs),
    /// Create organisations (CAs) and identities, or show one (like Fabric's cryptogen).
    Identity(identity::IdentityArgs),
    /// Work on a ledger directory offline: `osn ledger verify` checks its hash chains and signatures.
    Ledger(ledger::LedgerArgs),
    /// Stream a channel's blocks from an OSN and check their hash chain and orderer signatures.
    Verify(verify::VerifyArgs),
    /// Load-test an OSN (or an `osn dev` it starts with --embedded): accepted and ordered tx/s,
    /// broadcast and delivery latency percentiles, refusals, and the channel's actor metrics.
    Load(load::LoadArgs),
}

impl Cli {
    /// Whether the command runs an OSN (`dev`, `start`) rather than a client or a tool.
    pub fn is_server(&self) -> bool {
        matches!(self.command, Command::Dev(_) | Command::Start(_))
    }

    /// Logs to stderr in the chosen format, filtered by `OSN_LOG` or the subcommand's default; the
    /// filter can be changed while the process runs (`PUT /logspec`).
    pub fn init_logging(&self) {
        let default = match self.command {
            Command::Dev(_) | Command::Start(_) => "info,rdkafka=warn,librdkafka=warn,actix_server=warn",
            _ => "warn",
        };
        crate::logging::init(self.log_format, default);
    }

    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Dev(args) => dev::run(args).await,
            Command::Start(args) => start::run(args).await,
            Command::Broadcast(args) => broadcast::run(args).await,
            Command::Deliver(args) => deliver::run(args).await,
            Command::Channel(args) => channel::run(args).await,
            Command::Block(args) => block::run(args).await,
            Command::Identity(args) => identity::run(args).await,
            Command::Ledger(args) => ledger::run(args).await,
            Command::Verify(args) => verify::run(args).await,
            Command::Load(args) => load::run(args).await,
        }
    }
}
