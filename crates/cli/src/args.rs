//! clap argument groups that every binary flattens in, so `--cafile` or `--password-env` mean
//! the same everywhere; names follow mosquitto_pub where it has one (`-i`, `-k`, `-q`, `-u`,
//! `--cafile`, `--cert`, `--key`). Stage one is parsing and validation; the conversions below
//! are stage two: [`BrokerArgs::settings`] gives libraries the plain [`ConnectSettings`] they
//! fill vendor defaults into, [`BrokerArgs::to_options`] reads the password and gives
//! [`SessionOptions`], [`SpoolArgs::config`] gives a [`SpoolConfig`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use transport::auth::{Credentials, PasswordSource};
use transport::outbox::OutboxError;
use transport::settings::{
    ConnectSettings, DEFAULT_CONNECT_TIMEOUT_SECS, DEFAULT_INFLIGHT, DEFAULT_KEEP_ALIVE_SECS,
    DEFAULT_RECONNECT_MAX_SECS, SettingsError,
};
use transport::tls::TlsOptions;
use transport::{Outbox, Qos, SessionOptions, SpoolConfig, SpoolSync};

use crate::output::Format;

/// Where and how to connect.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct BrokerArgs {
    /// Broker URL: mqtt://, mqtts://, ws:// or wss://host:port/path (a bare host:port means mqtt://).
    #[arg(long, short = 'b', value_name = "URL", env = "EDGEWIRE_BROKER")]
    pub broker: Option<String>,
    /// Allow plaintext mqtt:// or ws:// to a host that is not this machine (warns).
    #[arg(long)]
    pub allow_plaintext: bool,
    /// MQTT client id (default: edgewire- plus 8 random hex digits).
    #[arg(long, short = 'i', value_name = "ID")]
    pub client_id: Option<String>,
    /// Keep-alive interval in seconds (0 = off).
    #[arg(long, short = 'k', value_name = "SECS", default_value_t = DEFAULT_KEEP_ALIVE_SECS)]
    pub keep_alive: u64,
    /// Ask the broker to keep the session (clean session off), like mosquitto_sub -c.
    #[arg(long)]
    pub persistent: bool,
    /// Most QoS 1 messages awaiting PUBACK at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_INFLIGHT, value_parser = clap::value_parser!(u16).range(1..))]
    pub inflight: u16,
    /// Seconds allowed for TCP + TLS + CONNACK.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_CONNECT_TIMEOUT_SECS)]
    pub connect_timeout: u64,
    /// Longest wait between reconnect attempts, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_RECONNECT_MAX_SECS)]
    pub reconnect_max: u64,
    /// Stop retrying after this long without a connection (e.g. 90s, 5m, 1h; default: never
    /// in long-running modes, at the first failure in one-shot ones).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub give_up_after: Option<Duration>,
    /// Largest MQTT packet sent or taken, in bytes; a larger incoming message is skipped and
    /// reported (with its topic and size), never held.
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024, value_parser = clap::value_parser!(u32).range(64..=268_435_455))]
    pub max_packet_size: u32,
}

/// Parses `90`, `90s`, `500ms`, `5m` or `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; use e.g. 90s, 500ms, 5m or 1h"))?;
    match unit.trim() {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" | "min" => Ok(Duration::from_secs(n.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(n.saturating_mul(3600))),
        other => Err(format!(
            "`{other}` in `{s}` is not a unit; use ms, s, m or h"
        )),
    }
}

/// TLS trust and identity.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsArgs {
    /// PEM file of the CA that signed the broker's certificate (repeatable; default: system roots).
    #[arg(long = "cafile", visible_alias = "ca", value_name = "PEM")]
    pub cafile: Vec<PathBuf>,
    /// Client certificate chain (PEM).
    #[arg(long, value_name = "PEM")]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM")]
    pub key: Option<PathBuf>,
    /// ALPN protocol to offer (repeatable), e.g. x-amzn-mqtt-ca for AWS IoT on port 443.
    #[arg(long = "alpn", visible_alias = "tls-alpn", value_name = "PROTO")]
    pub alpn: Vec<String>,
}

/// Username and password. The password is never a flag value: flags show in `ps`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Authentication")]
pub struct AuthArgs {
    /// MQTT username.
    #[arg(long, short = 'u', value_name = "NAME")]
    pub username: Option<String>,
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "password_file")]
    pub password_env: Option<String>,
    /// Read the password from this file (one trailing newline is ignored).
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
}

/// The disk spool.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Spool (store and forward)")]
pub struct SpoolArgs {
    /// Keep unconfirmed messages in this folder until the broker confirms them; they survive
    /// restarts and crashes and are sent first on the next start.
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Most megabytes the spool may use; when full, the oldest messages are dropped (with a warning).
    #[arg(long, value_name = "MB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub spool_max_mb: u64,
    /// Most files the spool may use (its space is split evenly between them).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub spool_files: u32,
    /// When a spooled message counts as accepted: `interval` once written (survives the agent
    /// being killed; synced to the device every --spool-sync-ms, so a power cut can lose that
    /// much), `always` once synced to the device (survives a power cut; slower).
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = SpoolSyncArg::Interval)]
    pub spool_sync: SpoolSyncArg,
    /// With `--spool-sync interval`: most milliseconds between syncs to the device.
    #[arg(long, value_name = "MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub spool_sync_ms: u64,
}

/// `--spool-sync` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SpoolSyncArg {
    /// Accepted once synced to the device.
    Always,
    /// Accepted once written; synced every --spool-sync-ms.
    Interval,
}

/// Limits for the user's hook programs (`--on-command` and the like).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Hooks")]
pub struct HookArgs {
    /// Most hooks running at once; further ones wait for a free slot.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HOOK_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..))]
    pub hook_concurrency: u16,
    /// Also pass this variable of the agent's environment to hooks (repeatable). Hooks get only
    /// PATH, HOME, LANG, LC_*, TZ, TMPDIR and the agent's documented context variables otherwise.
    #[arg(long = "hook-env", value_name = "NAME")]
    pub hook_env: Vec<String>,
}

impl HookArgs {
    /// A runner with these limits (one per agent, shared by all its hooks).
    pub fn runner(&self) -> hook::Runner {
        self.runner_withholding(std::iter::empty())
    }

    /// A runner that also never hands hooks `secret_vars`: the variables this agent reads its
    /// own secrets from (what `--password-env` and the like name), even if `--hook-env` asks.
    pub fn runner_withholding<'a>(
        &self,
        secret_vars: impl IntoIterator<Item = &'a String>,
    ) -> hook::Runner {
        hook::Runner::new(hook::Settings {
            concurrency: usize::from(self.hook_concurrency),
            pass_env: self.hook_env.clone(),
            withhold: secret_vars.into_iter().cloned().collect(),
            ..hook::Settings::default()
        })
    }
}

#[allow(clippy::cast_possible_truncation)]
const DEFAULT_HOOK_CONCURRENCY: u16 = hook::DEFAULT_CONCURRENCY as u16;

/// Logging and output format.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// More log detail on stderr (-v info, -vv debug, -vvv trace).
    #[arg(long, short = 'v', action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(long, global = true)]
    pub quiet: bool,
    /// stdout format: text for people, json for one JSON object per line.
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    pub output: Format,
}

/// Why arguments could not be turned into options.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsError {
    /// No broker, a bad URL, refused plaintext, a password source that failed.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The spool failed to open.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// Parses a `--qos` value (0 or 1).
pub fn parse_qos(s: &str) -> Result<Qos, String> {
    match s {
        "0" => Ok(Qos::AtMostOnce),
        "1" => Ok(Qos::AtLeastOnce),
        "2" => Err("QoS 2 is not supported; use 1 (at least once, confirmed and resent)".into()),
        other => Err(format!("`{other}` is not a QoS; use 0 or 1")),
    }
}

impl BrokerArgs {
    /// The connection flags as plain settings, for libraries that fill in vendor defaults.
    pub fn settings(&self, tls: &TlsArgs, auth: &AuthArgs) -> ConnectSettings {
        ConnectSettings {
            broker: self.broker.clone(),
            allow_plaintext: self.allow_plaintext,
            client_id: self.client_id.clone(),
            keep_alive: Duration::from_secs(self.keep_alive),
            persistent: self.persistent,
            inflight: self.inflight,
            connect_timeout: Duration::from_secs(self.connect_timeout),
            reconnect_max: Duration::from_secs(self.reconnect_max),
            give_up_after: self.give_up_after,
            max_packet_size: self.max_packet_size as usize,
            tls: tls.options(),
            username: auth.username.clone(),
            password: auth.source(),
        }
    }

    /// Resolves into session options. `default_broker` comes from a vendor config when the flag
    /// is absent.
    pub fn to_options(
        &self,
        tls: &TlsArgs,
        auth: &AuthArgs,
        default_broker: Option<&str>,
    ) -> Result<SessionOptions, ArgsError> {
        Ok(self.settings(tls, auth).session_options(default_broker)?)
    }
}

impl TlsArgs {
    /// The TLS flags as options.
    pub fn options(&self) -> TlsOptions {
        TlsOptions {
            ca_files: self.cafile.clone(),
            client_cert: self.cert.clone(),
            client_key: self.key.clone(),
            alpn: self.alpn.clone(),
        }
    }
}

impl AuthArgs {
    /// Where the password comes from, if a flag names a source.
    pub fn source(&self) -> Option<PasswordSource> {
        match (&self.password_env, &self.password_file) {
            (Some(var), _) => Some(PasswordSource::Env(var.clone())),
            (None, Some(path)) => Some(PasswordSource::File(path.clone())),
            (None, None) => None,
        }
    }

    /// Reads the password now, if one is configured.
    pub fn credentials(&self) -> Result<Option<Credentials>, ArgsError> {
        let settings = ConnectSettings {
            username: self.username.clone(),
            password: self.source(),
            ..ConnectSettings::default()
        };
        Ok(settings.credentials()?)
    }
}

impl SpoolArgs {
    /// The spool's configuration, when `--spool DIR` is given.
    pub fn config(&self) -> Option<SpoolConfig> {
        self.spool.as_ref().map(|dir| SpoolConfig {
            dir: dir.clone(),
            max_bytes: self.spool_max_mb.saturating_mul(1024 * 1024),
            max_files: self.spool_files,
            sync: match self.spool_sync {
                SpoolSyncArg::Always => SpoolSync::Always,
                SpoolSyncArg::Interval => {
                    SpoolSync::Interval(Duration::from_millis(self.spool_sync_ms))
                }
            },
        })
    }

    /// Opens the disk spool, or makes a memory outbox of `memory_capacity` when no folder is given.
    pub fn open(&self, memory_capacity: usize) -> Result<Outbox, ArgsError> {
        match self.config() {
            Some(cfg) => Ok(Outbox::disk(cfg)?),
            None => Ok(Outbox::memory(memory_capacity)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        broker: BrokerArgs,
        #[command(flatten)]
        tls: TlsArgs,
        #[command(flatten)]
        auth: AuthArgs,
        #[command(flatten)]
        spool: SpoolArgs,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        hooks: HookArgs,
    }

    #[test]
    fn groups_compose_into_one_valid_command() {
        Cli::command().debug_assert();
    }

    #[test]
    fn mosquitto_style_short_flags() {
        let cli = Cli::try_parse_from([
            "x",
            "-b",
            "mqtts://h",
            "-i",
            "dev1",
            "-k",
            "30",
            "-u",
            "me",
            "--cafile",
            "ca.pem",
            "--cert",
            "c.pem",
            "--key",
            "k.pem",
        ])
        .unwrap();
        assert_eq!(cli.broker.client_id.as_deref(), Some("dev1"));
        assert_eq!(cli.broker.keep_alive, 30);
        assert_eq!(cli.tls.cafile, vec![PathBuf::from("ca.pem")]);
        assert_eq!(cli.auth.username.as_deref(), Some("me"));
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

    #[test]
    fn password_needs_username_and_env_must_be_set() {
        let cli = Cli::try_parse_from(["x", "--password-env", "EDGEWIRE_TEST_PW_UNSET"]).unwrap();
        assert!(matches!(
            cli.auth.credentials(),
            Err(ArgsError::Settings(SettingsError::PasswordWithoutUser))
        ));
        let cli =
            Cli::try_parse_from(["x", "-u", "me", "--password-env", "EDGEWIRE_TEST_PW_UNSET"])
                .unwrap();
        let err = cli.auth.credentials().unwrap_err().to_string();
        assert!(err.contains("EDGEWIRE_TEST_PW_UNSET"), "{err}");
    }

    #[test]
    fn plaintext_to_remote_host_is_refused_without_opt_in() {
        let cli = Cli::try_parse_from(["x", "-b", "mqtt://broker.example.com"]).unwrap();
        let err = cli
            .broker
            .to_options(&cli.tls, &cli.auth, None)
            .unwrap_err();
        assert!(err.to_string().contains("--allow-plaintext"), "{err}");
        let cli =
            Cli::try_parse_from(["x", "-b", "mqtt://broker.example.com", "--allow-plaintext"])
                .unwrap();
        assert!(cli.broker.to_options(&cli.tls, &cli.auth, None).is_ok());
    }

    #[test]
    fn no_flags_mean_the_library_defaults() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        let mut settings = cli.broker.settings(&cli.tls, &cli.auth);
        // EDGEWIRE_BROKER may be set where the tests run.
        settings.broker = None;
        // Debug shows every field (and no secret): the same text means the same settings.
        assert_eq!(
            format!("{settings:?}"),
            format!("{:?}", ConnectSettings::default())
        );
    }

    #[test]
    fn hook_limits_and_pass_through_names() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.hooks.runner().settings(), &hook::Settings::default());
        let cli = Cli::try_parse_from([
            "x",
            "--hook-concurrency",
            "2",
            "--hook-env",
            "SITE",
            "--hook-env",
            "LINE",
        ])
        .unwrap();
        let s = cli.hooks.runner().settings().clone();
        assert_eq!(
            (s.concurrency, s.pass_env),
            (2, vec!["SITE".into(), "LINE".into()])
        );
        assert!(Cli::try_parse_from(["x", "--hook-concurrency", "0"]).is_err());
    }

    #[test]
    fn qos_parser_explains_qos2() {
        assert_eq!(parse_qos("1"), Ok(Qos::AtLeastOnce));
        assert!(parse_qos("2").unwrap_err().contains("not supported"));
    }
}
