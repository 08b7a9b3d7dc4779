//! `iot-sim fleet` (many devices in one process) and `iot-sim fleet-report` (merge the
//! summaries of several runs or shards): flags to `fleet::FleetOptions`, snapshots to a
//! progress bar and NDJSON `stats` events, the summary to an exit code.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use cli::args::{AuthArgs, BrokerArgs, TlsArgs, parse_duration, parse_qos};
use cli::output::{Output, exit};
use fleet::{FleetOptions, Identity, Shard, Snapshot, Summary};
use transport::Qos;

/// What each device runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// Plain MQTT: connect, publish `--size` bytes on `-t` at `--rate`.
    Raw,
    /// HDM on AWS IoT: each device runs hdm-telemetry's agent loop (shadow sync, then
    /// camelCase events to basic ingest at `--rate`); needs --issuer-cert/--issuer-key (CN =
    /// thing name = client id, default `hdm-fleet-%i`).
    Hdm,
    /// Gooee: each device runs gooee-pub's agent (login as `authorization` with the API token
    /// from GOOEE_TOKEN or --password-env/--password-file; its meta list on
    /// `devices/{client id}/meta` at `--rate`, checked against the topic table and confirmed).
    Gooee,
    /// IoTConnect: each device runs iotc-send's agent (discovery and identity over HTTPS, or
    /// sync with --iotc-protocol 1.0; the broker the platform names; telemetry records at
    /// `--rate`; commands acknowledged); unique id = client id (default `iotc-fleet-%i`);
    /// needs --issuer-cert/--issuer-key (auth type 2, CN = unique id) or --iotc-group-key-env /
    /// --iotc-group-key-file (auth type 5, default ids `iotc-fleet-key-%i`).
    Iotconnect,
    /// Siemens Insights Hub MindConnect: each device runs mc-agent's agent loop (client id
    /// `{--mc-tenant}_{--mc-device}`, certificate CN = --mc-device from --issuer-cert/--issuer-key;
    /// the model instantiated (v3) or synchronised (v4) once, then simulated timeseries at
    /// `--rate`, commands answered, every publish confirmed).
    Mindconnect,
}

fn mc_model_api(s: &str) -> Result<fleet::McModelApi, String> {
    fleet::McModelApi::parse(s)
        .ok_or_else(|| format!("`{s}` is not an asset model generation; use v3 or v4"))
}

#[derive(Debug, Args)]
pub struct FleetArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    auth: AuthArgs,
    /// What each device speaks.
    #[arg(long, value_enum, default_value = "raw", help_heading = "Fleet")]
    profile: Profile,
    /// Devices in the whole fleet (all shards together).
    #[arg(
        long,
        short = 'n',
        value_name = "N",
        default_value_t = 10,
        help_heading = "Fleet"
    )]
    devices: u64,
    /// First connections started per second (0 = as fast as --connecting allows).
    #[arg(long, value_name = "R", default_value_t = 0.0, help_heading = "Fleet")]
    connect_rate: f64,
    /// Connection attempts (TCP + TLS + CONNECT) in progress at once, at most. More than the
    /// broker's listen backlog (mosquitto's is 100) makes its kernel drop connects, which wait
    /// a second to try again; raise it for a distant broker (in flight = rate x handshake time).
    #[arg(long, value_name = "N", default_value_t = fleet::DEFAULT_MAX_CONNECTING as u64, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Fleet")]
    connecting: u64,
    /// Messages per device per second (0 = none, unless --count asks for some).
    #[arg(long, value_name = "M", default_value_t = 0.0, help_heading = "Fleet")]
    rate: f64,
    /// Payload size in bytes.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 16,
        help_heading = "Fleet"
    )]
    size: usize,
    /// QoS: 0 or 1 (latency is measured to the PUBACK at 1).
    #[arg(long, short = 'q', value_name = "QOS", default_value = "1", value_parser = parse_qos, help_heading = "Fleet")]
    qos: Qos,
    /// Topic; `%i` is the device number.
    #[arg(
        long,
        short = 't',
        value_name = "TOPIC",
        default_value = "fleet/%i",
        help_heading = "Fleet"
    )]
    topic: String,
    /// Messages per device; then it disconnects (unless --duration holds it).
    #[arg(long, short = 'C', value_name = "N", help_heading = "Fleet")]
    count: Option<u64>,
    /// Stop after this long (e.g. 30s, 5m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Fleet")]
    duration: Option<Duration>,
    /// Issue each device its own certificate from this CA certificate (PEM)...
    #[arg(
        long,
        value_name = "PEM",
        requires = "issuer_key",
        help_heading = "Fleet identity"
    )]
    issuer_cert: Option<PathBuf>,
    /// ...signed with this CA key (PEM).
    #[arg(
        long,
        value_name = "PEM",
        requires = "issuer_cert",
        help_heading = "Fleet identity"
    )]
    issuer_key: Option<PathBuf>,
    /// Common name of the issued certificates; `%i` is the device number (default: the
    /// client id pattern; with --profile mindconnect, --mc-device).
    #[arg(long, value_name = "PATTERN", help_heading = "Fleet identity")]
    cn: Option<String>,
    /// Run shard K of N: this process takes the K-th of N equal slices of --devices, so N
    /// processes (on N hosts) form one fleet with distinct ids.
    #[arg(long, value_name = "K/N", help_heading = "Fleet")]
    shard: Option<Shard>,
    /// Added to every device number (`%i`).
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Fleet")]
    id_offset: u64,
    /// How often to print a `stats` line (0 = never).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration, help_heading = "Fleet")]
    stats_interval: Duration,
    /// Source addresses for the devices' connections, used in turn (e.g.
    /// 127.0.0.2,127.0.0.3): each is good for about one ephemeral port range of connections.
    #[arg(
        long,
        value_name = "ADDR,...",
        value_delimiter = ',',
        help_heading = "Fleet"
    )]
    bind: Vec<std::net::IpAddr>,
    /// `--profile hdm`: the stage of the basic-ingest rule
    /// `$aws/rules/iot_data_platform_telemetry_{stage}`.
    #[arg(
        long,
        value_name = "STAGE",
        default_value = "dev",
        help_heading = "Fleet profiles"
    )]
    hdm_stage: String,
    /// `--profile hdm`: leave the device shadow alone (no sync, no gate).
    #[arg(long, help_heading = "Fleet profiles")]
    no_shadow: bool,
    /// `--profile iotconnect`: the company id (cpId).
    #[arg(
        long,
        value_name = "CPID",
        default_value = "EDGEWIRE",
        help_heading = "Fleet profiles"
    )]
    iotc_cp_id: String,
    /// `--profile iotconnect`: the environment.
    #[arg(
        long,
        value_name = "ENV",
        default_value = "DEV",
        help_heading = "Fleet profiles"
    )]
    iotc_env: String,
    /// `--profile iotconnect`: the message protocol, 2.1 or 1.0.
    #[arg(long, value_name = "VERSION", default_value = "2.1", value_parser = ["2.1", "1.0"], help_heading = "Fleet profiles")]
    iotc_protocol: String,
    /// `--profile iotconnect`: the discovery service (default: `$EDGEWIRE_SIM_HTTPS/iotconnect`
    /// when that is set, as `iot-sim env` sets it; else IoTConnect's).
    #[arg(long, value_name = "URL", help_heading = "Fleet profiles")]
    iotc_discovery_url: Option<String>,
    /// `--profile iotconnect`, auth type 5: read the group key (base64) from this environment
    /// variable; each device's key is derived from it as Azure DPS group enrolments do.
    #[arg(
        long,
        value_name = "VAR",
        conflicts_with = "iotc_group_key_file",
        help_heading = "Fleet profiles"
    )]
    iotc_group_key_env: Option<String>,
    /// `--profile iotconnect`, auth type 5: read the group key from this file.
    #[arg(long, value_name = "PATH", help_heading = "Fleet profiles")]
    iotc_group_key_file: Option<PathBuf>,
    /// `--profile iotconnect`, auth type 5: seconds each device's SAS token is valid; it is
    /// renewed, with a new session, at five sixths of that (the devices' reconnect load).
    #[arg(long, value_name = "SECS", default_value_t = fleet::IOTC_SAS_LIFETIME.as_secs(),
          value_parser = clap::value_parser!(u64).range(2..), help_heading = "Fleet profiles")]
    iotc_sas_lifetime: u64,
    /// `--profile mindconnect`: the tenant (client ids are `{tenant}_{agent name}`).
    #[arg(
        long,
        value_name = "TENANT",
        default_value = "edgewire",
        help_heading = "Fleet profiles"
    )]
    mc_tenant: String,
    /// `--profile mindconnect`: the agent names (certificate CN); `%i` is the device number.
    #[arg(
        long,
        value_name = "PATTERN",
        default_value = "mc-fleet-%i",
        help_heading = "Fleet profiles"
    )]
    mc_device: String,
    /// `--profile mindconnect`: asset model generation, v3 (the tenant's model published once,
    /// then instantiated by each agent; mc-agent's choice without agent.ini) or v4 (each agent
    /// synchronises the shipped local model).
    #[arg(long, value_name = "v3|v4", default_value = "v3", value_parser = mc_model_api, help_heading = "Fleet profiles")]
    mc_model_api: fleet::McModelApi,
    /// Also write the summary (JSON) to this file, for `iot-sim fleet-report`.
    #[arg(long, value_name = "PATH", help_heading = "Fleet")]
    summary_file: Option<PathBuf>,
}

pub async fn run(args: FleetArgs, out: Output) -> u8 {
    if args.issuer_cert.is_some() && args.tls.cert.is_some() {
        tracing::error!(
            "--issuer-cert and --cert exclude each other: issue a certificate per device, or share one"
        );
        return exit::USAGE;
    }
    let mut settings = args.broker.settings(&args.tls, &args.auth);
    if settings.client_id.is_none() {
        settings.client_id = Some(match args.profile {
            Profile::Raw => "fleet-%i".into(),
            // HDM's broker rules take `hdm-…` thing names.
            Profile::Hdm => "hdm-fleet-%i".into(),
            Profile::Gooee => "gooee-fleet-%i".into(),
            // iot-sim's bulk devices (configs/iotconnect/template.json).
            Profile::Iotconnect
                if args.iotc_group_key_env.is_some() || args.iotc_group_key_file.is_some() =>
            {
                "iotc-fleet-key-%i".into()
            }
            Profile::Iotconnect => "iotc-fleet-%i".into(),
            // MindConnect's identity rule: `{tenant}_{certificate CN}`.
            Profile::Mindconnect => format!("{}_{}", args.mc_tenant, args.mc_device),
        });
    }
    let identity = match (args.issuer_cert, args.issuer_key) {
        (Some(cert), Some(key)) => Identity::Issued {
            cert,
            key,
            cn_pattern: args
                .cn
                .clone()
                .or_else(|| (args.profile == Profile::Mindconnect).then(|| args.mc_device.clone()))
                .or_else(|| settings.client_id.clone())
                .unwrap_or_default(),
        },
        _ => Identity::Shared,
    };
    let profile = match args.profile {
        Profile::Raw => fleet::Profile::Raw,
        Profile::Gooee => fleet::Profile::Gooee,
        Profile::Mindconnect => fleet::Profile::Mindconnect(fleet::McProfile {
            tenant: args.mc_tenant,
            model_api: args.mc_model_api,
        }),
        Profile::Hdm => fleet::Profile::Hdm(fleet::HdmProfile {
            stage: args.hdm_stage,
            shadow: !args.no_shadow,
        }),
        Profile::Iotconnect => fleet::Profile::Iotconnect(fleet::IotcProfile {
            sas_lifetime: Duration::from_secs(args.iotc_sas_lifetime),
            ..iotc_profile(
                args.iotc_cp_id,
                args.iotc_env,
                &args.iotc_protocol,
                args.iotc_discovery_url,
                args.iotc_group_key_env,
                args.iotc_group_key_file,
            )
        }),
    };
    let opts = FleetOptions {
        profile,
        bind: args.bind,
        settings,
        identity,
        devices: args.devices,
        shard: args.shard,
        id_offset: args.id_offset,
        connect_rate: args.connect_rate,
        max_connecting: usize::try_from(args.connecting).unwrap_or(usize::MAX),
        rate: args.rate,
        size: args.size,
        qos: args.qos,
        topic: args.topic,
        count: args.count,
        duration: args.duration,
        tick: Duration::from_millis(250),
    };
    let bar = out.progress(args.devices, "connected");
    let stats_every = args.stats_interval;
    let mut last_stats = Instant::now();
    let mut last_pub = (Instant::now(), 0u64);
    let on_tick = |s: &Snapshot| {
        let (t, n) = last_pub;
        let dt = t.elapsed().as_secs_f64();
        if dt >= 1.0 {
            bar.set_message(format!(
                "connected ({:.0} msg/s, {} connect errors, {} failed)",
                (s.published - n) as f64 / dt,
                s.connect_errors.values().sum::<u64>(),
                s.failed
            ));
            last_pub = (Instant::now(), s.published);
        }
        bar.set_length(s.devices);
        bar.set_position(s.connected);
        if !stats_every.is_zero() && last_stats.elapsed() >= stats_every {
            last_stats = Instant::now();
            bar.suspend(|| {
                out.event("stats", s, || {
                    format!(
                        "{:.1} s: {} of {} connected, {} published, {} confirmed, {} failed",
                        s.elapsed_s, s.connected, s.devices, s.published, s.confirmed, s.failed
                    )
                });
            });
        }
    };
    let summary = match fleet::run(opts, cli::signal::shutdown_signal(), on_tick).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return exit::of(e.outcome());
        }
    };
    bar.finish_and_clear();
    if let Some(path) = &args.summary_file {
        let written = serde_json::to_vec_pretty(&summary)
            .map_err(|e| e.to_string())
            .and_then(|b| std::fs::write(path, b).map_err(|e| e.to_string()));
        if let Err(e) = written {
            tracing::error!("cannot write the summary to `{}`: {e}", path.display());
        }
    }
    print_summary(out, &summary);
    if summary.failed > 0 {
        exit::FAILURE
    } else {
        exit::OK
    }
}

fn iotc_profile(
    cp_id: String,
    env: String,
    protocol: &str,
    discovery_url: Option<String>,
    key_env: Option<String>,
    key_file: Option<PathBuf>,
) -> fleet::IotcProfile {
    let defaults = fleet::IotcProfile::default();
    let sim = std::env::var("EDGEWIRE_SIM_HTTPS")
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| format!("{}/iotconnect", u.trim_end_matches('/')));
    fleet::IotcProfile {
        cp_id,
        env,
        protocol: if protocol == "1.0" {
            fleet::IotcProtocol::V10
        } else {
            fleet::IotcProtocol::V21
        },
        discovery_url: discovery_url.or(sim).unwrap_or(defaults.discovery_url),
        group_key: key_env
            .map(fleet::KeySource::Env)
            .or(key_file.map(fleet::KeySource::File)),
        sas_lifetime: defaults.sas_lifetime,
    }
}

fn print_summary(out: Output, s: &Summary) {
    out.event("summary", s, || {
        let errors = if s.connect_errors.is_empty() {
            "none".to_owned()
        } else {
            s.connect_errors
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{} device(s): {} connected ({:.1}/s), {} failed, connect errors: {errors}; {} reconnect(s); {} published, {} confirmed; latency ms p50 {} p90 {} p99 {} max {}; peak RSS {:.1} MiB; {:.1} s{}",
            s.devices,
            s.connected,
            s.connects_per_s,
            s.failed,
            s.reconnects,
            s.published,
            s.confirmed,
            s.latency_ms.p50,
            s.latency_ms.p90,
            s.latency_ms.p99,
            s.latency_ms.max,
            s.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            s.elapsed_s,
            if s.interrupted { " (interrupted)" } else { "" },
        )
    });
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Summary files: a `--summary-file`, or the NDJSON output of `--output json` (its last
    /// `summary` line is taken).
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

pub fn report(args: &ReportArgs, out: Output) -> u8 {
    let mut parts = Vec::new();
    for path in &args.files {
        match read_summary(path) {
            Ok(s) => parts.push((path.display().to_string(), s)),
            Err(e) => {
                tracing::error!("{e}");
                return exit::USAGE;
            }
        }
    }
    match Summary::merge(&parts) {
        Ok(s) => {
            print_summary(out, &s);
            if s.failed > 0 {
                exit::FAILURE
            } else {
                exit::OK
            }
        }
        Err(e) => {
            tracing::error!("{e}");
            exit::USAGE
        }
    }
}

fn read_summary(path: &std::path::Path) -> Result<Summary, String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read `{name}`: {e}"))?;
    // A whole summary object (a --summary-file)...
    if let Ok(s) = serde_json::from_str::<Summary>(&text) {
        return Ok(s);
    }
    // ...or NDJSON output, whose last `summary` event counts.
    let mut found = None;
    for (n, line) in text.lines().enumerate() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v.get("type").and_then(|t| t.as_str()) == Some("summary") {
            let data = v.get("data").cloned().unwrap_or_default();
            found = Some(
                serde_json::from_value::<Summary>(data)
                    .map_err(|e| format!("`{name}` line {}: not a fleet summary: {e}", n + 1))?,
            );
        }
    }
    found.ok_or_else(|| {
        format!(
            "`{name}` holds no fleet summary (expected a --summary-file or `iot-sim --output json fleet` output)"
        )
    })
}
