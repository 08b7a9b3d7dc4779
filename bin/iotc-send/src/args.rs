//! The command line of `iotc-send`: stage one only (parsing and validation). The shared
//! transport groups are flattened in, so `--cafile`, `--cert`, `--broker` mean what they mean in
//! every edgewire binary; values from `iotconnect.json` apply when a flag is absent.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use cli::args::{AuthArgs, BrokerArgs, HookArgs, OutputArgs, TlsArgs};

/// IoTConnect device agent (message protocol 1.0, or 2.1 on Azure and AWS).
#[derive(Debug, Parser)]
#[command(name = "iotc-send", version, about, long_about = None)]
pub struct Cli {
    /// The device's config file: iotconnect.json (cpId, uniqueId, env, sdkOptions, and
    /// "protocol": "2.1" with "platform": "az"|"aws"), or the lite SDK's iotcDeviceConfig.json
    /// (cpid, env, uid, disc, ver, pf, at; pass --cert, --key and --cafile with it).
    #[arg(
        long,
        short = 'c',
        global = true,
        value_name = "FILE",
        env = "IOTC_CONFIG",
        default_value = "iotconnect.json"
    )]
    pub config: PathBuf,
    /// Read the symmetric key (auth type 5) from this environment variable.
    #[arg(
        long,
        global = true,
        value_name = "VAR",
        conflicts_with = "device_key_file"
    )]
    pub device_key_env: Option<String>,
    /// Read the symmetric key (auth type 5) from this file.
    #[arg(long, global = true, value_name = "PATH")]
    pub device_key_file: Option<PathBuf>,
    /// The TPM for auth type 4, as a TCTI (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`);
    /// without it TPM2TOOLS_TCTI or TCTI, as tpm2-tools read them.
    #[arg(long, global = true, value_name = "TCTI")]
    pub tpm: Option<String>,
    /// The Device Provisioning Service for auth type 4 (Azure's global endpoint by default).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = "https://global.azure-devices-provisioning.net"
    )]
    pub dps_url: String,
    /// Seconds a SAS token this agent signs (auth types 4 and 5) is valid; it is renewed at five
    /// sixths of that.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(2..))]
    pub sas_lifetime: u64,
    /// Seconds allowed for each HTTPS request (discovery, sync, OTA).
    #[arg(long, global = true, value_name = "SECS", default_value_t = 30)]
    pub http_timeout: u64,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the device: send data, handle commands, OTA and twin until Ctrl-C.
    Run(RunArgs),
    /// Send one SendData (JSON) and wait for the broker's confirmation.
    Data(DataArgs),
    /// Print the attributes per device tag (GetAttributes) after a sync.
    Attributes,
    /// Report twin properties and/or print the whole twin.
    Twin(TwinArgs),
    /// Send an acknowledgement for a command or OTA.
    Ack(AckArgs),
    /// Create or delete a child of this gateway (message 2.1: 221/222).
    #[command(subcommand)]
    Child(ChildCmd),
    /// The TPM (auth type 4).
    #[command(subcommand)]
    Tpm(TpmCmd),
}

/// `tpm`.
#[derive(Debug, Subcommand)]
pub enum TpmCmd {
    /// Print the endorsement key (base64) and the registration ids to enrol in DPS.
    Ek,
}

/// `child`.
#[derive(Debug, Subcommand)]
pub enum ChildCmd {
    /// Create a child device under this gateway.
    Add {
        /// The child's unique id.
        #[arg(long, value_name = "ID")]
        id: String,
        /// Its tag (one of the gateway template's child tags).
        #[arg(long, value_name = "TAG")]
        tag: String,
        /// Its display name (default: the id).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Seconds to wait for the platform's answer.
        #[arg(long, value_name = "SECS", default_value_t = 10)]
        wait: u64,
    },
    /// Delete a child device.
    Remove {
        /// The child's unique id.
        #[arg(long, value_name = "ID")]
        id: String,
        /// Seconds to wait for the platform's answer.
        #[arg(long, value_name = "SECS", default_value_t = 10)]
        wait: u64,
    },
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// JSON lines to send, one SendData array per line (`-` for stdin).
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with = "simulate")]
    pub input: Option<PathBuf>,
    /// Make values for every attribute of every device from the template.
    #[arg(long)]
    pub simulate: bool,
    /// Number of simulated sends (default: until stopped).
    #[arg(long, value_name = "N", requires = "simulate")]
    pub count: Option<u64>,
    /// Seconds between sends (input lines or simulated sends).
    #[arg(long, value_name = "SECS")]
    pub interval: Option<f64>,
    /// Every Nth simulated send carries an out-of-range value.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "simulate")]
    pub faulty_every: u64,
    /// Stop when the input ends (after open edge windows close).
    #[arg(long)]
    pub exit_after_input: bool,
    /// Program run for each command (command text as last argument, JSON on stdin).
    #[arg(long, value_name = "PROGRAM")]
    pub on_command: Option<PathBuf>,
    /// Program run after an OTA's files are downloaded; exit 0 acks success.
    #[arg(long, value_name = "PROGRAM")]
    pub on_ota: Option<PathBuf>,
    /// Seconds a hook may run (stdin and output included); then its process group is killed.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub hook_timeout: u64,
    #[command(flatten)]
    pub hooks: HookArgs,
    /// Do not acknowledge commands when no --on-command is set.
    #[arg(long)]
    pub no_auto_ack: bool,
    /// Folder for OTA downloads.
    #[arg(long, value_name = "DIR", default_value = "ota")]
    pub ota_dir: PathBuf,
    /// Largest OTA file, in megabytes.
    #[arg(long, value_name = "MB", default_value_t = 256)]
    pub ota_max_mb: u64,
    /// Report a twin property at start (repeatable), e.g. --twin firmware=1.2.
    #[arg(long = "twin", value_name = "KEY=VALUE", value_parser = parse_kv)]
    pub twin: Vec<(String, String)>,
    /// Override the data frequency from sync, in seconds (0: no throttling).
    #[arg(long, value_name = "SECS")]
    pub df: Option<u64>,
    /// Offline storage folder (default: logs/offline/{cpId}_{uniqueId} beside the config).
    #[arg(long, value_name = "DIR")]
    pub offline_dir: Option<PathBuf>,
}

/// `data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// The SendData JSON (`[{"uniqueId","time","data"}]`).
    #[arg(
        long,
        short = 'd',
        value_name = "JSON",
        conflicts_with = "file",
        required_unless_present = "file"
    )]
    pub data: Option<String>,
    /// Read the SendData JSON from a file (first non-blank line).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Seconds to wait for the broker's confirmation.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub wait: u64,
}

/// `twin`.
#[derive(Debug, Args)]
pub struct TwinArgs {
    /// Report a property (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_kv)]
    pub set: Vec<(String, String)>,
    /// Print the whole twin (desired and reported).
    #[arg(long)]
    pub get: bool,
    /// Seconds to wait for confirmations and the twin.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub wait: u64,
}

/// `ack`.
#[derive(Debug, Args)]
pub struct AckArgs {
    /// The command's ackId.
    #[arg(long, value_name = "ID")]
    pub ack_id: String,
    /// What is acknowledged: command (mt 5) or ota (mt 11).
    #[arg(long = "type", value_name = "KIND", default_value = "command", value_parser = ["command", "ota"])]
    pub kind: String,
    /// ok, failed, or the st number (4 failed, 6 command done, 7 OTA done).
    #[arg(long, value_name = "STATUS", default_value = "ok")]
    pub status: String,
    /// Message.
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub msg: String,
    /// Child unique id (a gateway child's OTA).
    #[arg(long, value_name = "ID", default_value = "")]
    pub child_id: String,
    /// Seconds to wait for the broker's confirmation.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub wait: u64,
}

/// Parses `key=value`.
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse() {
        let c = Cli::try_parse_from([
            "iotc-send",
            "-c",
            "x.json",
            "run",
            "--simulate",
            "--count",
            "3",
            "--twin",
            "fw=1.2",
            "--df",
            "0",
        ])
        .unwrap();
        let Cmd::Run(r) = c.cmd else {
            panic!("not run")
        };
        assert_eq!(r.twin, vec![("fw".into(), "1.2".into())]);
        assert_eq!(r.df, Some(0));
        assert!(Cli::try_parse_from(["iotc-send", "run", "--input", "a", "--simulate"]).is_err());
        assert!(Cli::try_parse_from(["iotc-send", "data"]).is_err());
        assert!(Cli::try_parse_from(["iotc-send", "twin", "--set", "novalue"]).is_err());
        let c = Cli::try_parse_from([
            "iotc-send",
            "ack",
            "--ack-id",
            "a",
            "--type",
            "ota",
            "--status",
            "7",
            "--child-id",
            "c1",
        ])
        .unwrap();
        assert!(matches!(c.cmd, Cmd::Ack(a) if a.kind == "ota" && a.child_id == "c1"));
    }

    #[test]
    fn no_flag_takes_a_secret_value() {
        for arg in Cli::command().get_arguments() {
            let id = arg.get_id().as_str();
            if ["password", "token", "secret", "key"]
                .iter()
                .any(|w| id.contains(w))
                && id != "key"
            {
                assert!(
                    id.ends_with("_env") || id.ends_with("_file"),
                    "argument `{id}` would take a secret on the command line"
                );
            }
        }
    }
}
