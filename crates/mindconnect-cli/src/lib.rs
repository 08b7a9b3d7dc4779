//! The front end `mc-model` and `mc-agent` share: clap argument groups both binaries flatten
//! in, so `--config` or `--timeout` mean the same in both; stage one only (parsing).
//! [`ConfigArgs::settings`] is stage two: it reads the seed-format config file and applies the
//! flags over it. The `mindconnect` library itself knows no command line.

#![deny(missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use cli::args::{AuthArgs, BrokerArgs, TlsArgs, parse_qos};
use cli::output::{Format, Output, exit};
use transport::Qos;

use mindconnect::agent::{AgentError, Event, Reporter};
use mindconnect::config::{ConfigError, ConfigFile, DEFAULT_CONFIG, Overrides, Settings};
use mindconnect::templates::{TemplateDir, TemplateLoadError};

/// The config file, its overrides and the connection flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "MindConnect")]
pub struct ConfigArgs {
    /// The seed's config file (keys IOT_HOST, CLIENT_ID, TENANT_ID, CA_PATH, DEVICE_CERT_PATH, DEVICE_KET_PATH, MODEL_NAME, GW_URL, SGW_URL, ...).
    #[arg(long, short = 'c', value_name = "FILE", default_value = DEFAULT_CONFIG, env = "MC_CONFIG")]
    pub config: PathBuf,
    /// Section of the config file (default AWS, or its only section).
    #[arg(long, value_name = "NAME")]
    pub section: Option<String>,
    /// Tenant (overrides TENANT_ID).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// Asset model name (overrides MODEL_NAME).
    #[arg(long, value_name = "NAME")]
    pub model_name: Option<String>,
    /// Folder of the JSON templates (default: example_json/ next to the config file or its folder).
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// The file that records a created instance (`CREATED`), like the sample's.
    #[arg(long, value_name = "FILE", default_value = "instance.conf")]
    pub instance_conf: PathBuf,
    /// The 2024 sample's v4 model synchronisation record (`[DEFAULT]` model-synchronization-*).
    #[arg(long, value_name = "FILE", default_value = "agent.ini")]
    pub agent_ini: PathBuf,
    /// The v4 local model (default: local_asset_model.json of the templates folder).
    #[arg(long, value_name = "FILE")]
    pub local_model: Option<PathBuf>,
    /// Gateway URL for the asset lookup (overrides GW_URL).
    #[arg(long, value_name = "URL")]
    pub gw_url: Option<String>,
    /// Southgate URL for the datalake (overrides SGW_URL).
    #[arg(long, value_name = "URL")]
    pub sgw_url: Option<String>,
    /// CA to trust for the HTTPS steps (overrides HTTP_CA_PATH; default: the system's roots).
    #[arg(long, value_name = "PEM")]
    pub http_cafile: Option<PathBuf>,
    /// Largest message to send to the broker, in KiB (a file over it is refused, naming
    /// `upload --datalake`). Default 128: the AWS IoT Core limit the Insights Hub broker most
    /// likely enforces.
    #[arg(long, value_name = "KIB", value_parser = clap::value_parser!(u32).range(1..=262_144))]
    pub max_message_kb: Option<u32>,
    /// Seconds to wait for the platform's answer or the broker's confirmation.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// QoS of every publish (the sample uses 0; 1 lets the broker confirm each message).
    #[arg(long, value_name = "0|1", default_value = "1", value_parser = parse_qos)]
    pub qos: Qos,
    /// Connection.
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// TLS (override CA_PATH, DEVICE_CERT_PATH, DEVICE_KET_PATH).
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Username/password (not used by Insights Hub EU1).
    #[command(flatten)]
    pub auth: AuthArgs,
}

impl ConfigArgs {
    /// Reads the config file and applies the flags.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let file = ConfigFile::load(&self.config, self.section.as_deref())?;
        Settings::resolve(file, &self.overrides())
    }

    /// The flags as overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            connect: self.broker.settings(&self.tls, &self.auth),
            tenant: self.tenant.clone(),
            model_name: self.model_name.clone(),
            gw_url: self.gw_url.clone(),
            sgw_url: self.sgw_url.clone(),
            http_cafile: self.http_cafile.clone(),
            max_message_kb: self.max_message_kb,
        }
    }

    /// The templates folder.
    pub fn template_dir(&self) -> Result<TemplateDir, TemplateLoadError> {
        TemplateDir::find(self.templates.as_deref(), &self.config)
    }

    /// `--local-model`, or `local_asset_model.json` of the templates folder.
    pub fn local_model(&self) -> Result<PathBuf, TemplateLoadError> {
        match &self.local_model {
            Some(p) => Ok(p.clone()),
            None => Ok(self
                .template_dir()?
                .dir()
                .join(mindconnect::agent::sync::LOCAL_MODEL)),
        }
    }

    /// `--timeout`.
    pub fn answer_timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }
}

/// A reporter that prints every event through `out` (a sentence, or NDJSON).
pub fn output_reporter(out: Output) -> Reporter {
    std::sync::Arc::new(move |e: &Event| out.event(e.kind(), e, || e.to_string()))
}

/// Reports `e` (on stderr; also as an `error` event with `--output json`) and returns its exit code.
pub fn fail(out: Output, e: &AgentError) -> u8 {
    let code = exit::of(e.outcome());
    tracing::error!("{e}");
    if out.format() == Format::Json {
        out.event(
            "error",
            &serde_json::json!({"message": e.to_string(), "exit_code": code}),
            String::new,
        );
    }
    code
}

/// Parses an interval: `60` (seconds), `500ms`, `30s`, `2m`, `1h`, or `off`.
pub fn parse_interval(s: &str) -> Result<Option<Duration>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not an interval; use e.g. 60, 500ms, 30s, 2m, 1h or off"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}`; use ms, s, m or h")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 1.0e9 {
        return Err(format!(
            "`{s}` must be more than zero (use `off` to disable)"
        ));
    }
    Ok(Some(Duration::from_secs_f64(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        cfg: ConfigArgs,
    }

    #[test]
    fn the_group_is_a_valid_command_and_defaults_to_the_seed_paths() {
        Cli::command().debug_assert();
        let c = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(c.cfg.config, PathBuf::from("configs/mqtt-config.json"));
        assert_eq!(c.cfg.instance_conf, PathBuf::from("instance.conf"));
        assert_eq!(c.cfg.qos, Qos::AtLeastOnce);
        let c = Cli::try_parse_from([
            "x", "-c", "my.json", "--qos", "0", "-i", "t_a", "--cert", "a.pem",
        ])
        .unwrap();
        assert_eq!(c.cfg.overrides().connect.client_id.as_deref(), Some("t_a"));
        assert!(Cli::try_parse_from(["x", "--qos", "2"]).is_err());
        assert!(Cli::try_parse_from(["x", "--timeout", "0"]).is_err());
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("60"), Ok(Some(Duration::from_secs(60))));
        assert_eq!(
            parse_interval("250ms"),
            Ok(Some(Duration::from_millis(250)))
        );
        assert_eq!(parse_interval("2m"), Ok(Some(Duration::from_secs(120))));
        assert_eq!(parse_interval("off"), Ok(None));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("5x").is_err());
        assert!(parse_interval("").is_err());
    }
}
