//! `mc-agent`: the Insights Hub MindConnect MQTT agent (replaces the seed's
//! `MindConnectClient.py`): `run` (instance once, timeseries, events, files, token, datalake,
//! commands), and one-shot `timeseries`, `event`, `upload FILE`, `token` for scripts. Parses
//! flags, calls `mindconnect::agent`, maps the result to an exit code.

mod cmd;
mod run_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::args::OutputArgs;
use cli::output::Output;
use mindconnect_cli::{ConfigArgs, fail};

/// The Insights Hub MindConnect MQTT agent.
#[derive(Debug, Parser)]
#[command(name = "mc-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent: instantiate once, then timeseries, events, files, token, datalake, commands.
    Run {
        #[command(flatten)]
        config: Box<ConfigArgs>,
        #[command(flatten)]
        run: Box<run_cmd::RunArgs>,
    },
    /// Send timeseries once (simulated, --value, or --values FILE|-) and wait for the broker's confirmation.
    Timeseries {
        #[command(flatten)]
        config: Box<ConfigArgs>,
        #[command(flatten)]
        values: run_cmd::ValueArgs,
    },
    /// Send an event (--type, --severity, --description, --details), or one per line of
    /// --events FILE|-, or without either the sample's event.json; each waits for the broker's
    /// confirmation.
    Event {
        #[command(flatten)]
        config: Box<ConfigArgs>,
        #[command(flatten)]
        event: run_cmd::EventArgs,
    },
    /// Send FILE (base64, over MQTT), or with --datalake upload it over HTTPS with the agent token.
    Upload {
        #[command(flatten)]
        config: Box<ConfigArgs>,
        /// The file.
        file: PathBuf,
        /// Upload to the datalake (asset lookup, generateUploadObjectUrls, PUT) instead of MQTT.
        #[arg(long, help_heading = "Upload")]
        datalake: bool,
    },
    /// Publish JSON unchanged to the custom topic (the custom data format; register it first
    /// with `mc-model register-topic`): FILE as one message, or `-` one per line of stdin.
    Custom {
        #[command(flatten)]
        config: Box<ConfigArgs>,
        /// The topic (default: CUSTOM_TOPIC of the config).
        #[arg(long, value_name = "TOPIC", help_heading = "Custom data")]
        topic: Option<String>,
        /// The JSON to send: a file (one message) or `-` (one message per stdin line).
        #[arg(long, value_name = "FILE|-", help_heading = "Custom data")]
        data: PathBuf,
    },
    /// Request an agent token and print it (text: the JWT alone on stdout).
    Token {
        #[command(flatten)]
        config: Box<ConfigArgs>,
    },
}

fn main() -> ExitCode {
    let cli: Cli = cli::parse();
    cli::logging::init(cli.output.verbose, cli.output.quiet);
    let out = Output::new(cli.output.output).with_connection_events();
    cli::runtime::block_on(async move {
        match cmd::run(cli, out).await {
            Ok(code) => code,
            Err(e) => fail(out, &e),
        }
    })
}

#[cfg(test)]
mod tests;
