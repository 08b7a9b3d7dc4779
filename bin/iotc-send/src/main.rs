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

/// `tpm ek`: what an operator enrols (no platform needed; the config only names the ids).
#[cfg(feature = "tpm")]
fn tpm_ek(cli: &Cli, out: Output) -> Result<u8, AgentError> {
    use iotconnect::agent::tpm::{TpmOptions, endorsement};
    let (ek, ek_id) = endorsement(&TpmOptions {
        tcti: cli.tpm.clone(),
    })
    .map_err(|e| AgentError::Tpm(e.to_string()))?;
    let iotc = Config::load(&cli.config)
        .ok()
        .map(|c| iotconnect::protocol::dps::iotconnect_registration_id(&c.cp_id, &c.unique_id));
    let data = std::collections::BTreeMap::from([
        ("endorsement_key", Some(ek.clone())),
        ("registration_id", iotc.clone()),
        ("ek_registration_id", Some(ek_id.clone())),
    ]);
    out.event("tpm_ek", &data, || {
        format!(
            "endorsement key (base64): {ek}\nregistration id (IoTConnect, cpId-uniqueId): {}\nregistration id (derived from the EK, Azure SDKs' default): {ek_id}",
            iotc.as_deref().unwrap_or("(no config file)")
        )
    });
    Ok(exit::OK)
}

#[cfg(not(feature = "tpm"))]
fn tpm_ek(_: &Cli, _: Output) -> Result<u8, AgentError> {
    Err(AgentError::Unsupported(
        iotconnect::agent::NO_TPM_FEATURE.into(),
    ))
}

/// The TPM of auth type 4 (opened only if the device provisions or signs); `None` without the
/// `tpm` feature, which makes auth type 4 refused with a sentence.
#[cfg(feature = "tpm")]
#[allow(clippy::unnecessary_wraps)] // the same signature as without the feature
fn attestation(cli: &Cli) -> Option<iotconnect::agent::dps::Attestation> {
    use iotconnect::agent::tpm::{TpmAttestor, TpmOptions};
    Some(iotconnect::agent::dps::Attestation(Arc::new(
        TpmAttestor::new(TpmOptions {
            tcti: cli.tpm.clone(),
        }),
    )))
}

#[cfg(not(feature = "tpm"))]
fn attestation(_: &Cli) -> Option<iotconnect::agent::dps::Attestation> {
    None
}

async fn run(cli: Cli, out: Output) -> Result<u8, AgentError> {
    if matches!(cli.cmd, Cmd::Tpm(args::TpmCmd::Ek)) {
        return tpm_ek(&cli, out);
    }
    let mut config = Config::load(&cli.config)?;
    config.tpm = attestation(&cli);
    config.dps_url.clone_from(&cli.dps_url);
    config.sas_lifetime = Duration::from_secs(cli.sas_lifetime);
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
        // Answered above, before a config file or a platform was needed.
        Cmd::Tpm(_) => Ok(exit::OK),
    }
}
