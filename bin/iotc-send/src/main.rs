//! `iotc-send`: the IoTConnect device agent (message protocol 1.0 or 2.1, picked by the config
//! file) on the command line. Parses flags, loads `iotconnect.json` (or the lite SDK's
//! `iotcDeviceConfig.json`), runs discovery and sync (1.0) or identity (2.1), then hands over to the library
//! (`iotconnect::agent`) for the subcommand; maps the result to an exit code.

mod args;
mod cmd;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cli::output::{Output, exit};
use iotconnect::agent::setup::{Retry, setup, setup_retrying};
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
    let http_timeout = Duration::from_secs(cli.http_timeout);
    // `run` is long-running: a platform not reachable yet, or `rc` 2 while the device is being
    // registered, is waited out with back-off as the SDK does. One-shot commands fail fast.
    let setup = if matches!(cli.cmd, Cmd::Run(_)) {
        setup_retrying(
            config,
            &settings,
            df,
            http_timeout,
            reporter.as_ref(),
            Retry::default(),
        )
        .await?
    } else {
        setup(config, &settings, df, http_timeout, reporter.as_ref()).await?
    };
    match cli.cmd {
        Cmd::Attributes => cmd::attributes(setup, &settings, reporter, out, http_timeout).await,
        Cmd::Run(a) => {
            // The variables this agent reads its own secrets from never reach a hook.
            let secret_vars: Vec<String> = [&cli.device_key_env, &cli.auth.password_env]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            cmd::run(setup, &settings, a, &secret_vars, reporter).await
        }
        Cmd::Data(a) => cmd::data(setup, &settings, a, reporter).await,
        Cmd::Twin(a) => cmd::twin(setup, &settings, a, reporter, out).await,
        Cmd::Ack(a) => cmd::ack(setup, &settings, a, reporter).await,
        Cmd::Child(c) => cmd::child(setup, &settings, c, reporter, out).await,
    }
}
