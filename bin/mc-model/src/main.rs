//! `mc-model`: publish and instantiate an Insights Hub asset model over MindConnect MQTT, and
//! show the filled payloads without sending (replaces the seed's `AssetModelCreator.py`, a Tk
//! GUI). Parses flags, asks on a terminal, calls `mindconnect::agent::model`, maps the result
//! to an exit code.

mod cmd;
mod prompt;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::args::OutputArgs;
use cli::output::Output;
use mindconnect_cli::{ConfigArgs, fail};

/// Publish and instantiate an Insights Hub asset model (MindConnect MQTT, Asset Modeler v3).
#[derive(Debug, Parser)]
#[command(name = "mc-model", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    output: OutputArgs,
    /// Do not ask; send right away (for scripts).
    #[arg(long, short = 'y', global = true)]
    yes: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fill the model template and publish it to o/amo_v3/m; wait for Success or Failed on i/amo_v3/ms.
    Publish {
        #[command(flatten)]
        config: ConfigArgs,
        /// Model file (default: asset_model.json of the templates folder; asked on a terminal).
        file: Option<PathBuf>,
        /// Send even when the local checks find problems (the platform then answers Failed).
        #[arg(long, help_heading = "Model")]
        no_check: bool,
    },
    /// Fill the instance template and publish it to o/amo_v3/i; on Success write instance.conf.
    Instantiate {
        #[command(flatten)]
        config: ConfigArgs,
        /// Instance file (default: instance.json of the templates folder).
        file: Option<PathBuf>,
        /// Instantiate even when instance.conf says CREATED.
        #[arg(long, help_heading = "Model")]
        force: bool,
    },
    /// v4 model synchronisation (the 2024 sample): download the cloud model (o/amo_v4/m), send
    /// only what is missing with the cloud's referenceIds (o/amo_v4/mi), wait for i/amo_v4/mip,
    /// record it in agent.ini; nothing is sent while agent.ini's sha matches the local model.
    Sync {
        #[command(flatten)]
        config: ConfigArgs,
        /// Synchronise even when agent.ini says the local model is in sync.
        #[arg(long, help_heading = "Model")]
        force: bool,
    },
    /// Register the custom topic (the custom data format) at GW_URL with the agent token and
    /// add its JMESPath mappings; safe to run again (409s are taken as "already there").
    RegisterTopic {
        #[command(flatten)]
        config: ConfigArgs,
        /// The topic (default: CUSTOM_TOPIC of the config); it must contain the client id.
        #[arg(long, value_name = "TOPIC", help_heading = "Custom data")]
        topic: Option<String>,
        /// JSON array of mappings {assetId, aspectName, variableName, variableValueExpression,
        /// variableTimestampExpression, timeConverter}.
        #[arg(long, value_name = "FILE", help_heading = "Custom data")]
        mappings: Option<PathBuf>,
    },
    /// Print the filled model and instance payloads and their problems; send nothing.
    Show {
        #[command(flatten)]
        config: ConfigArgs,
        /// Model file (default: asset_model.json of the templates folder).
        #[arg(long, help_heading = "Model")]
        model: Option<PathBuf>,
        /// Instance file (default: instance.json of the templates folder).
        #[arg(long, help_heading = "Model")]
        instance: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli: Cli = cli::parse();
    cli::logging::init(cli.output.verbose, cli.output.quiet);
    let out = Output::new(cli.output.output).with_connection_events();
    cli::runtime::block_on(async move {
        match cmd::run(&cli, out).await {
            Ok(code) => code,
            Err(e) => fail(out, &e),
        }
    })
}

#[cfg(test)]
mod tests;
