//! `gooee-pub`: publish and subscribe on Gooee's MQTT broker (TLS on 8883 or WebSockets on 443,
//! username `authorization`, the API token from `GOOEE_TOKEN` or `--password-file`), with the
//! topic table and payload rules checked before anything is sent and the platform's rejected
//! topics watched on request. Exit codes: 0 ok, 1 failure, 2 usage, 3 rejected by the platform.

mod args;
mod build;
mod commands;
mod run;
#[cfg(test)]
mod tests;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::args::OutputArgs;
use cli::output;

/// Publish and subscribe on Gooee's PubSub broker.
#[derive(Debug, Parser)]
#[command(name = "gooee-pub", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish device meta values to devices/ID/meta.
    Meta(commands::MetaArgs),
    /// Publish an action to devices/ID/actions or spaces/ID/actions.
    Action(commands::ActionArgs),
    /// Publish a fault alarm to devices/ID/fault_alarms or buildings/ID/fault_alarms.
    Alarm(commands::AlarmArgs),
    /// Publish a head count of an area, space or building.
    Headcount(commands::HeadcountArgs),
    /// Subscribe and print messages until --count or Ctrl-C.
    Sub(args::SubArgs),
}

fn main() -> ExitCode {
    let cli: Cli = cli::parse();
    cli::logging::init(cli.output.verbose, cli.output.quiet);
    let out = output::Output::new(cli.output.output).with_connection_events();
    cli::runtime::block_on(async {
        match cli.command {
            Command::Meta(a) => run::meta(a, out).await,
            Command::Action(a) => run::action(a, out).await,
            Command::Alarm(a) => run::alarm(a, out).await,
            Command::Headcount(a) => run::headcount(a, out).await,
            Command::Sub(a) => run::sub(a, out).await,
        }
    })
}
