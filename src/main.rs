//! The `osn` binary: parse the command line, run the subcommand, report a failure as one
//! readable error chain and a non-zero exit code.

use clap::Parser;

fn main() {
    let cli = osn::cli::Cli::parse();
    cli.init_logging();
    if let Err(e) = actix_rt::System::new().block_on(cli.run()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
