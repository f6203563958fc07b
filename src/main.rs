//! The `osn` binary: parse the command line, run the subcommand, report a failure as one
//! readable error chain and a non-zero exit code.

use clap::Parser;

fn main() {
    let cli = osn::cli::Cli::parse();
    if !cli.is_server() {
        // A client command whose output is cut short (`osn deliver … | head`) ends quietly, as a
        // command-line tool does: Rust ignores SIGPIPE, so the first write would fail with EPIPE
        // and `println!` panic. Sockets are written with MSG_NOSIGNAL (std, librdkafka), so only
        // a closed stdout or stderr raises it. The servers keep ignoring it.
        // SAFETY: setting a signal's disposition to its default, before any thread is started.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    cli.init_logging();
    if let Err(e) = actix_rt::System::new().block_on(cli.run()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
