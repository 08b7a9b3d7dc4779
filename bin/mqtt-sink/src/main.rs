//! `mqtt-sink`: subscribe to MQTT topics and store JSON readings in SQLite, PostgreSQL or
//! MariaDB, acknowledging each message only after its COMMIT. Also `simulate` (the seed's
//! ESP32 as a publisher) and `bridge-config` (a mosquitto bridge section for AWS IoT).
//! This file parses the command line and maps results to exit codes; the work is in `sink`.

mod bridge_cmd;
mod simulate_cmd;
mod sink_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::args::OutputArgs;
use cli::output::{self, exit};

/// Store MQTT readings in SQL, nothing lost: messages are acknowledged only after the COMMIT
/// that stored them.
///
/// Without a subcommand, runs the sink, e.g.:
///   mqtt-sink --preset esp32 --create-table
///   mqtt-sink -b mqtts://broker:8883 --cafile ca.pem --cert c.pem --key k.pem -t 'sensors/#'
///     --db postgres://sink@db/iot --db-password-env PGPASSWORD
///     --map temperature=/Temperature --map 'data_hora=/Data Hora' --create-table -i sink-1
#[derive(Debug, Parser)]
#[command(name = "mqtt-sink", version, about, verbatim_doc_comment)]
#[command(subcommand_negates_reqs = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    sink: Box<sink_cmd::SinkArgs>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish the seed's ESP32 readings ({"Temperature": .., "Data Hora": ..}) at a rate.
    Simulate(simulate_cmd::SimulateArgs),
    /// Print a mosquitto bridge section that forwards local topics to AWS IoT Core.
    BridgeConfig(bridge_cmd::BridgeArgs),
}

/// Marks errors in the user's arguments or files (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Maps an error to its exit code after logging it.
pub fn fail(e: &anyhow::Error) -> u8 {
    tracing::error!("{e:#}");
    let usage = e.downcast_ref::<Usage>().is_some()
        || e.downcast_ref::<sink::SinkError>()
            .is_some_and(sink::SinkError::is_usage);
    if usage { exit::USAGE } else { exit::FAILURE }
}

fn main() -> ExitCode {
    let cli: Cli = cli::parse();
    cli::logging::init(cli.output.verbose, cli.output.quiet);
    let out = output::Output::new(cli.output.output).with_connection_events();
    if let Some(Command::BridgeConfig(args)) = &cli.command {
        return ExitCode::from(bridge_cmd::run(args, out));
    }
    cli::runtime::block_on(async {
        let result = match cli.command {
            Some(Command::Simulate(args)) => simulate_cmd::run(args, out).await,
            Some(Command::BridgeConfig(_)) => Ok(exit::OK),
            None => sink_cmd::run(*cli.sink, out).await,
        };
        result.unwrap_or_else(|e| fail(&e))
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

    #[test]
    fn the_bench_command_line_parses() {
        let cli = Cli::try_parse_from([
            "mqtt-sink",
            "--broker",
            "127.0.0.1:18830",
            "--topic",
            "esp32/pub",
            "--db",
            "postgresql://postgres@127.0.0.1:5432/bench_sink",
            "--table",
            "readings",
            "--create-table",
            "--map",
            "temperature=/Temperature",
            "--map",
            "data_hora=/Data Hora",
            "--client-id",
            "bench-1",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.sink.map.len(), 2);
        let cli = Cli::try_parse_from(["mqtt-sink", "simulate", "--count", "5"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Simulate(_))));
        assert!(Cli::try_parse_from(["mqtt-sink", "--batch", "0"]).is_err());
    }

    #[test]
    fn no_flag_takes_a_secret_value() {
        for arg in Cli::command().get_arguments() {
            let id = arg.get_id().as_str();
            if ["password", "token", "secret"]
                .iter()
                .any(|w| id.contains(w))
            {
                assert!(
                    id.ends_with("_env") || id.ends_with("_file") || arg.get_env().is_some(),
                    "argument `{id}` would take a secret on the command line"
                );
            }
        }
    }
}
