//! The `osn` binary: parse the command line, run the subcommand.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = osn::cli::Cli::parse();
    cli.init_logging();
    actix_rt::System::new().block_on(cli.run())
}
