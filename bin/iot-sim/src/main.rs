//! `iot-sim`: the local stand-in for the clouds edgewire talks to. This first part is its
//! traffic generator, `iot-sim pub`, which the tests and benchmarks drive.

mod pub_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use transport::args::OutputArgs;
use transport::output::{self, exit};

/// A local IoT cloud for edgewire's agents, and tools to exercise it.
#[derive(Debug, Parser)]
#[command(name = "iot-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish test traffic (numbered, sized or from stdin) and wait until the broker confirms it.
    Pub(pub_cmd::PubArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::init_logging(cli.output.verbose, cli.output.quiet);
    let out = output::Output::new(cli.output.output);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Pub(args) => pub_cmd::run(args, out).await,
        }
    });
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
