//! `iot-sim`: the local stand-in for the clouds edgewire talks to (`certs`, `up`, `demo`,
//! `status`) and a traffic generator (`pub`) for tests and benchmarks.

mod fleet_cmd;
mod pub_cmd;
mod sim_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::args::OutputArgs;
use cli::output;

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
    /// Write a development PKI: root CA, broker certificate, one client certificate per agent.
    Certs(sim_cmd::CertsArgs),
    /// Start the local cloud (embedded broker and every vendor's platform side) until Ctrl-C.
    Up(sim_cmd::UpArgs),
    /// Stop the `iot-sim up` of a state folder (started with --detach); nothing running is fine.
    Down(sim_cmd::DownArgs),
    /// Print the running local cloud's endpoints and CA as environment variables.
    Env(sim_cmd::EnvArgs),
    /// Start the local cloud, run every agent against it, print what each achieved.
    Demo(sim_cmd::DemoArgs),
    /// What a running `iot-sim up` has received, per vendor.
    Status(sim_cmd::StatusArgs),
    /// Publish test traffic (numbered, sized or from stdin) and wait until the broker confirms it.
    Pub(pub_cmd::PubArgs),
    /// Run many devices in one process (load tests): paced connects, traffic, a summary.
    Fleet(Box<fleet_cmd::FleetArgs>),
    /// Merge the summaries of fleet runs or shards (histograms merged, not averaged).
    FleetReport(fleet_cmd::ReportArgs),
}

fn main() -> ExitCode {
    let cli: Cli = cli::parse();
    cli::logging::init(cli.output.verbose, cli.output.quiet);
    let out = output::Output::new(cli.output.output);
    cli::runtime::block_on(async {
        match cli.command {
            Command::Certs(args) => sim_cmd::certs(&args, out),
            Command::Up(args) => sim_cmd::up(&args, out).await,
            Command::Down(args) => sim_cmd::down(&args, out),
            Command::Env(args) => sim_cmd::env(&args, out),
            Command::Demo(args) => sim_cmd::demo(&args, out).await,
            Command::Status(args) => sim_cmd::status(&args, out),
            Command::Pub(args) => pub_cmd::run(args, out.with_connection_events()).await,
            Command::Fleet(args) => fleet_cmd::run(*args, out).await,
            Command::FleetReport(args) => fleet_cmd::report(&args, out),
        }
    })
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
