//! The command line of `hdm-telemetry`: four subcommands over shared groups (env file, store,
//! connection, event header). Stage one only: parsing and validation; `cmd` resolves files.
//! Secrets are never flags (flags show in `ps`): the API key comes from the env file or
//! HDM_API_KEY, the Bearer token from the env file, HDM_AUTH_TOKEN or a token file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use cli::args::{BrokerArgs, OutputArgs, SpoolArgs, TlsArgs};

/// HDM IoT device agent for AWS IoT: provisioning into certificate_store/, telemetry to the
/// basic-ingest topic, device-shadow sync.
#[derive(Debug, Parser)]
#[command(name = "hdm-telemetry", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch the configuration (root CA, broker) and, if this store holds no identity yet,
    /// provision one. Safe to run again: it refreshes the CA and the endpoint only.
    Provision(ProvisionArgs),
    /// Send telemetry events to $aws/rules/iot_data_platform_telemetry_{stage} (QoS 1).
    Send(SendArgs),
    /// Sync the device shadow (get, apply desired, report); --follow keeps applying deltas.
    Shadow(ShadowArgs),
    /// Shadow and telemetry together: the shadow's event_publishing_enabled and
    /// event_type_blacklist decide which events are sent.
    Run(RunArgs),
}

/// Which env file (env.dev, env.stg, env.prd; gen 3 env.test, env.live).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Env file")]
pub struct EnvArgs {
    /// The env file; its keys name the API generation (gen 1 api_key, gen 2/2b auth_token,
    /// gen 3 DIRECTORY_HOST and DIRECTORY_OAUTH_CLIENT_ID, or generation=1|2|2b|3).
    #[arg(long, value_name = "PATH", conflicts_with = "stage")]
    pub env_file: Option<PathBuf>,
    /// Read ./env.STAGE (dev, stg, prd). Without either, $PIPENV_DOTENV_LOCATION is used.
    #[arg(long, value_name = "STAGE")]
    pub stage: Option<String>,
    /// A file holding the Bearer token of generation 2/2b (instead of auth_token in the env
    /// file; HDM_AUTH_TOKEN works too). Keep it chmod 600.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

/// Where the identity lives.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Certificate store")]
pub struct StoreArgs {
    /// Folder of amazonRootCA1.pem, ClientID.txt, deviceCert.cert, devicePrivateKey.pem, ...
    #[arg(long, value_name = "DIR", default_value = "certificate_store")]
    pub store: PathBuf,
}

/// How to reach the broker; by default everything comes from the store.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Connect to this port instead of the configured one; 443 offers ALPN x-amzn-mqtt-ca.
    #[arg(long, value_name = "PORT", help_heading = "Connection")]
    pub port: Option<u16>,
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Make the private key here and send a certificate signing request (generation 2b and 3
    /// always do) instead of receiving a key from the service.
    #[arg(long)]
    pub csr: bool,
    /// Provision even though the store holds an identity (creates new assets in the backend).
    #[arg(long)]
    pub force: bool,
    /// CA to trust for the configuration service (repeatable; default: system roots).
    #[arg(long = "cafile", value_name = "PEM")]
    pub cafile: Vec<PathBuf>,
    /// Seconds allowed for each HTTPS call.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
}

/// The event header (for bare payloads) and where events come from.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Events")]
pub struct EventArgs {
    /// eventType (required unless --demo or the input carries it).
    #[arg(long, value_name = "TYPE")]
    pub event_type: Option<String>,
    /// eventSubtype (required unless --demo or the input carries it).
    #[arg(long, value_name = "SUBTYPE")]
    pub event_subtype: Option<String>,
    /// assetId (default: the thing name).
    #[arg(long, value_name = "ID")]
    pub asset_id: Option<String>,
    /// assetType (default Press; generation 3: DigitalPrinter).
    #[arg(long, value_name = "TYPE")]
    pub asset_type: Option<String>,
    /// assetserial of generation 3 (default: the thing name).
    #[arg(long, value_name = "SERIAL")]
    pub asset_serial: Option<String>,
    /// senderId (default: the thing name; generation 1 to 2b).
    #[arg(long, value_name = "ID")]
    pub sender_id: Option<String>,
    /// senderType (default prinect; generation 3: system).
    #[arg(long, value_name = "TYPE")]
    pub sender_type: Option<String>,
    /// payloadVersion (default 1; an integer in generation 3).
    #[arg(long, value_name = "V")]
    pub payload_version: Option<String>,
    /// connectionDeviceId (omitted by default).
    #[arg(long, value_name = "ID")]
    pub connection_device_id: Option<String>,
    /// The payload as inline JSON (an object, or a whole envelope: payload plus header attributes).
    #[arg(long, value_name = "JSON", group = "input")]
    pub payload: Option<String>,
    /// The payload (or a whole envelope) from a JSON file.
    #[arg(long, value_name = "FILE", group = "input")]
    pub payload_file: Option<PathBuf>,
    /// One payload (or envelope) per line of standard input.
    #[arg(long, visible_alias = "lines", group = "input")]
    pub stdin: bool,
    /// Number of events (default 1, with --demo 3, with --stdin until the input ends; 0 = no limit).
    #[arg(long, short = 'C', value_name = "N")]
    pub count: Option<u64>,
    /// Seconds between events, e.g. 0.5 (default none, with --demo 0.5).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub interval: Option<f64>,
    /// The reference demo: eventType reference-client-test (what the HDM monitor shows),
    /// eventSubtype any-sub-type, payload {"foo":"bar"}, 3 events 0.5 s apart; generation 3:
    /// generic.signal/Status, payload version 2, a Status payload.
    #[arg(long)]
    pub demo: bool,
    /// Seconds to wait for the last confirmations.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub confirm_timeout: u64,
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a number of seconds from 0 to 86400")),
    }
}

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub spool: SpoolArgs,
    #[command(flatten)]
    pub events: EventArgs,
}

/// Shadow behaviour.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Shadow")]
pub struct ShadowOpts {
    /// Keep following update/delta until Ctrl-C (otherwise stop once synced).
    #[arg(long)]
    pub follow: bool,
    /// Seconds the first sync may take.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub sync_timeout: u64,
}

#[derive(Debug, Args)]
pub struct ShadowArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub shadow: ShadowOpts,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub spool: SpoolArgs,
    #[command(flatten)]
    pub events: EventArgs,
    #[command(flatten)]
    pub shadow: ShadowOpts,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("hdm-telemetry").chain(args.iter().copied()))
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn provision_flags() {
        let c = parse(&[
            "provision",
            "--stage",
            "stg",
            "--csr",
            "--force",
            "--cafile",
            "ca.pem",
        ])
        .unwrap();
        let Command::Provision(p) = c.command else {
            panic!()
        };
        assert_eq!(p.env.stage.as_deref(), Some("stg"));
        assert!(p.csr && p.force);
        assert_eq!(p.store.store, PathBuf::from("certificate_store"));
        assert!(parse(&["provision", "--stage", "stg", "--env-file", "x"]).is_err());
    }

    #[test]
    fn send_flags_and_one_input_only() {
        let c = parse(&[
            "send",
            "--env-file",
            "env.dev",
            "--event-type",
            "ODA",
            "--event-subtype",
            "X",
            "--asset-id",
            "A",
            "--count",
            "10",
            "--interval",
            "0.5",
            "--port",
            "443",
            "--spool",
            "sp",
            "--payload",
            "{\"a\":1}",
        ])
        .unwrap();
        let Command::Send(s) = c.command else {
            panic!()
        };
        assert_eq!(s.events.event_type.as_deref(), Some("ODA"));
        assert_eq!((s.events.count, s.events.interval), (Some(10), Some(0.5)));
        assert_eq!(s.conn.port, Some(443));
        assert!(parse(&["send", "--payload", "{}", "--stdin"]).is_err());
        assert!(parse(&["send", "--interval", "-1"]).is_err());
        assert!(parse(&["send", "--demo", "--output", "json"]).is_ok());
    }

    #[test]
    fn shadow_and_run_flags() {
        let c = parse(&[
            "shadow",
            "--follow",
            "--store",
            "cs",
            "-b",
            "mqtts://h:8883",
        ])
        .unwrap();
        let Command::Shadow(s) = c.command else {
            panic!()
        };
        assert!(s.shadow.follow);
        assert_eq!(s.conn.broker.broker.as_deref(), Some("mqtts://h:8883"));
        let c = parse(&[
            "run",
            "--stage",
            "dev",
            "--demo",
            "--follow",
            "--sync-timeout",
            "5",
        ])
        .unwrap();
        let Command::Run(r) = c.command else { panic!() };
        assert!(r.events.demo && r.shadow.follow);
        assert_eq!(r.shadow.sync_timeout, 5);
    }

    #[test]
    fn no_flag_takes_a_secret() {
        fn walk(cmd: &clap::Command) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                for w in ["api_key", "apikey", "password", "token", "secret"] {
                    assert!(
                        !id.contains(w) || id.ends_with("_env") || id.ends_with("_file"),
                        "`{id}` would take a secret on the command line"
                    );
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub);
            }
        }
        walk(&Cli::command());
    }
}
