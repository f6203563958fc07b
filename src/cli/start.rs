//! `osn start --config FILE`: an OSN against a real Kafka cluster.

use std::path::PathBuf;

use crate::config::Config;
use crate::node::Node;

#[derive(clap::Args, Debug)]
pub struct StartArgs {
    /// TOML configuration file (see config/osn.toml); OSN_* variables override it.
    #[arg(long, short, env = "OSN_CONFIG")]
    pub config: PathBuf,
}

pub async fn run(args: StartArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let node = Node::start(&config).await?;
    // One line on stdout that scripts (and the tests) wait for, after the operations listener's.
    if let Some(url) = node.operations_url() {
        println!("osn operations listening on {url}");
    }
    if let Some(addr) = node.grpc_addr() {
        println!("osn gRPC listening on {addr}");
    }
    println!("osn listening on {}", node.url());
    node.run_until_signal().await
}
