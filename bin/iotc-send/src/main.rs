//! `iotc-send`: the IoTConnect device agent (message protocol 1.0) on the command line. Parses
//! flags, loads `iotconnect.json`, runs discovery and sync, then hands over to the library
//! (`iotconnect::agent`) for the subcommand; maps the result to an exit code.

mod args;
mod cmd;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cli::output::{Output, exit};
use iotconnect::agent::setup::setup;
use iotconnect::agent::{AgentError, Event, Reporter};
use iotconnect::config::Config;
use transport::auth::PasswordSource;

use args::{Cli, Cmd};

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = cli::parse();
    cli::logging::init(cli.output.verbose, cli.output.quiet);
    let out = Output::new(cli.output.output).with_connection_events();
    let code = match run(cli, out).await {
        Ok(code) => code,
        Err(e) => {
            let message = e.to_string();
            let data = std::collections::BTreeMap::from([("message", message.clone())]);
            out.event("error", &data, || format!("error: {message}"));
            exit::of(e.outcome())
        }
    };
    ExitCode::from(code)
}

fn device_key(cli: &Cli) -> Result<Option<String>, AgentError> {
    let source = match (&cli.device_key_env, &cli.device_key_file) {
        (Some(var), _) => PasswordSource::Env(var.clone()),
        (None, Some(path)) => PasswordSource::File(path.clone()),
        (None, None) => return Ok(None),
    };
    source
        .read()
        .map(|s| Some(transport::auth::ExposeSecret::expose_secret(&s).to_owned()))
        .map_err(|e| AgentError::Input(format!("device key: {e}")))
}

async fn run(cli: Cli, out: Output) -> Result<u8, AgentError> {
    let mut config = Config::load(&cli.config)?;
    if let Some(key) = device_key(&cli)? {
        config.device_primary_key = Some(key);
    }
    let reporter: Arc<dyn Reporter> =
        Arc::new(move |e: Event| out.event(&e.kind(), &e.data(), || e.text()));
    let df = match &cli.cmd {
        Cmd::Run(r) => r.df.map(Duration::from_secs),
        _ => Some(Duration::ZERO),
    };
    let settings = cli.broker.settings(&cli.tls, &cli.auth);
    let setup = setup(
        config,
        &settings,
        df,
        Duration::from_secs(cli.http_timeout),
        reporter.as_ref(),
    )
    .await?;
    match cli.cmd {
        Cmd::Attributes => {
            let attributes = setup.device.attributes();
            out.event("attributes", &attributes, || format!("{attributes:#}"));
            Ok(exit::OK)
        }
        Cmd::Run(a) => cmd::run(setup, &settings, a, reporter).await,
        Cmd::Data(a) => cmd::data(setup, &settings, a, reporter).await,
        Cmd::Twin(a) => cmd::twin(setup, &settings, a, reporter, out).await,
        Cmd::Ack(a) => cmd::ack(setup, &settings, a, reporter).await,
    }
}
