//! `hdm-telemetry`: the HDM IoT device agent for AWS IoT — `provision` into
//! `certificate_store/`, `send` telemetry to basic ingest, `shadow` sync, and `run` (both, the
//! shadow gating telemetry). Parses the command line and hands over to the `hdm` library.

mod args;
mod cmd;

use std::process::ExitCode;

use cli::output;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let cli: Cli = cli::parse();
    let (verbose, quiet) = cmd::verbosity(&cli);
    cli::logging::init(verbose, quiet);
    let out = output::Output::new(cli.output.output).with_connection_events();
    cli::runtime::block_on(async {
        match cli.command {
            Command::Provision(args) => cmd::provision(args, out).await,
            Command::Send(args) => cmd::send(args, out).await,
            Command::Shadow(args) => cmd::shadow(args, out).await,
            Command::Run(args) => cmd::run(args, out).await,
        }
    })
}
