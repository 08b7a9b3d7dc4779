//! Stage two of the command line: resolve the env file, the store and the connection from the
//! flags, call the `hdm` library, print its events and summary, return the exit code.

use std::path::Path;
use std::time::Duration;

use cli::args::{AuthArgs, SpoolArgs};
use cli::output::{Format, Output, exit};
use hdm::agent::api::ApiOptions;
use hdm::agent::config::{env_path, load_env};
use hdm::agent::provision::{ProvisionOptions, provision as provision_device};
use hdm::agent::run::{Plan, ShadowPlan, Summary, run as run_device};
use hdm::agent::telemetry::{
    EventHeader, check_input, default_input, parse_inline, read_input_file, stdin_source, topic_for,
};
use hdm::agent::{AgentError, Event, EventSource, Provisioned, Store, TelemetryPlan, connect};
use hdm::protocol::env::{EnvFile, LogLevel};
use hdm::protocol::envelope::{DEMO_EVENT_SUBTYPE, DEMO_EVENT_TYPE, Header, PayloadVersion};
use hdm::protocol::generation::Generation;
use hdm::protocol::lowercase::{self, LowerHeader};
use hdm::protocol::shadow::device::DeviceConfig;
use hdm::protocol::shadow::gate::initial_state;
use transport::{Outbox, SessionOptions, StartMode};

use crate::args::{
    Cli, Command, ConnArgs, EnvArgs, EventArgs, ProvisionArgs, RunArgs, SendArgs, ShadowArgs,
    ShadowOpts,
};

/// `-v`/`-q`, or the env file's `loglevel` when neither is given.
pub fn verbosity(cli: &Cli) -> (u8, bool) {
    let (v, q) = (cli.output.verbose, cli.output.quiet);
    if v > 0 || q {
        return (v, q);
    }
    let env = match &cli.command {
        Command::Provision(a) => Some(&a.env),
        Command::Send(a) => Some(&a.env),
        Command::Run(a) => Some(&a.env),
        Command::Shadow(_) => None,
    };
    let level = env.and_then(|e| read_env(e).ok()).and_then(|e| e.loglevel);
    match level {
        Some(LogLevel::Debug) => (2, false),
        Some(LogLevel::Info) => (1, false),
        Some(LogLevel::Error) => (0, true),
        Some(LogLevel::Warning) | None => (0, false),
    }
}

fn read_env(e: &EnvArgs) -> Result<EnvFile, AgentError> {
    let path = env_path(e.env_file.as_deref(), e.stage.as_deref(), Path::new("."))?;
    load_env(&path, e.stage.as_deref(), e.token_file.clone())
}

fn finish(result: Result<u8, AgentError>) -> u8 {
    result.unwrap_or_else(|e| {
        tracing::error!("{e}");
        exit::of(e.outcome())
    })
}

fn print(out: Output, e: &Event) {
    out.event(e.kind(), e, || e.text());
}

/// `hdm-telemetry provision`.
pub async fn provision(args: ProvisionArgs, out: Output) -> u8 {
    finish(
        async {
            let opts = ProvisionOptions {
                env: read_env(&args.env)?,
                store: args.store.store,
                csr: args.csr,
                force: args.force,
                api: ApiOptions {
                    https_ca: args.cafile,
                    timeout: Duration::from_secs(args.timeout.max(1)),
                    allow_plaintext: false,
                },
            };
            provision_device(&opts, &move |e: Event| print(out, &e)).await?;
            Ok(exit::OK)
        }
        .await,
    )
}

fn session_options(conn: &ConnArgs, device: &Provisioned) -> Result<SessionOptions, AgentError> {
    let default = match conn.broker.broker {
        Some(_) => None,
        None => Some(connect::broker_url(device, conn.port)?),
    };
    let mut opts = conn
        .broker
        .to_options(&conn.tls, &AuthArgs::default(), default.as_deref())
        .map_err(|e| AgentError::Config(e.to_string()))?;
    if let (Some(p), Some(_)) = (conn.port, &conn.broker.broker) {
        let ep = &opts.endpoint;
        opts.endpoint = transport::Endpoint::new(ep.scheme(), ep.host(), p, ep.path());
    }
    connect::complete(&mut opts, device, conn.broker.client_id.is_some());
    Ok(opts)
}

/// The outbox; a long-running mode (`long`) without a durable spool waits for its first
/// connection retrying every failure, with one it starts at once (the failure policy).
fn outbox(
    spool: Option<&SpoolArgs>,
    opts: &mut SessionOptions,
    long: bool,
) -> Result<Outbox, AgentError> {
    if long {
        opts.start_mode = StartMode::WaitForConnection;
    }
    let Some(spool) = spool else {
        return Ok(Outbox::memory(10_000));
    };
    let outbox = spool
        .open(10_000)
        .map_err(|e| AgentError::Config(e.to_string()))?;
    if outbox.is_durable() {
        opts.start_mode = StartMode::Background;
    }
    Ok(outbox)
}

/// The header of bare payloads in the generation's dialect, from the flags.
fn event_header(
    ev: &EventArgs,
    generation: Generation,
    device: &Provisioned,
) -> Result<EventHeader, AgentError> {
    let thing = device.thing.as_str();
    if generation != Generation::Gen3 {
        return Ok(EventHeader::CamelCase(Header {
            payload_version: PayloadVersion::Text(
                ev.payload_version.clone().unwrap_or_else(|| "1".into()),
            ),
            asset_type: ev.asset_type.clone().unwrap_or_else(|| "Press".into()),
            sender_type: ev.sender_type.clone().unwrap_or_else(|| "prinect".into()),
            event_type: ev
                .event_type
                .clone()
                .or_else(|| ev.demo.then(|| DEMO_EVENT_TYPE.to_owned())),
            event_subtype: ev
                .event_subtype
                .clone()
                .or_else(|| ev.demo.then(|| DEMO_EVENT_SUBTYPE.to_owned())),
            asset_id: ev.asset_id.clone().unwrap_or_else(|| thing.to_owned()),
            sender_id: ev.sender_id.clone().unwrap_or_else(|| thing.to_owned()),
            connection_device_id: ev.connection_device_id.clone(),
        }));
    }
    let site = device
        .properties
        .as_ref()
        .and_then(|p| p.site_id.as_deref());
    let mut h = LowerHeader::defaults(thing, site);
    h.payloadversion = match &ev.payload_version {
        Some(v) => v.parse().map_err(|_| {
            AgentError::Config(format!(
                "--payload-version `{v}`: generation 3's payloadversion is an integer"
            ))
        })?,
        None if ev.demo => lowercase::DEMO_PAYLOAD_VERSION,
        None => 1,
    };
    if let Some(v) = &ev.asset_id {
        h.assetid.clone_from(v);
    }
    if let Some(v) = &ev.asset_serial {
        h.assetserial.clone_from(v);
    }
    if let Some(v) = &ev.asset_type {
        h.assettype.clone_from(v);
    }
    if let Some(v) = &ev.sender_type {
        h.sendertype.clone_from(v);
    }
    h.eventtype = ev
        .event_type
        .clone()
        .or_else(|| ev.demo.then(|| lowercase::DEMO_EVENT_TYPE.to_owned()));
    h.eventsubtype = ev
        .event_subtype
        .clone()
        .or_else(|| ev.demo.then(|| lowercase::DEMO_EVENT_SUBTYPE.to_owned()));
    Ok(EventHeader::Lowercase(h))
}

fn telemetry_plan(
    ev: &EventArgs,
    env: &EnvFile,
    device: &Provisioned,
) -> Result<TelemetryPlan, AgentError> {
    let generation = env.generation()?;
    let header = event_header(ev, generation, device)?;
    let lower = generation == Generation::Gen3;
    let source = if let Some(p) = &ev.payload {
        EventSource::Repeat(parse_inline(p)?)
    } else if let Some(f) = &ev.payload_file {
        EventSource::Repeat(read_input_file(f)?)
    } else if ev.stdin {
        stdin_source()
    } else if ev.demo && lower {
        EventSource::Repeat(lowercase::demo_payload())
    } else {
        EventSource::Repeat(default_input(ev.demo))
    };
    if let EventSource::Repeat(v) = &source {
        // The same input every time: refuse a bad one before connecting.
        let carries = |k: &str| header.is_envelope_input(v) && v.get(k).is_some();
        let (has_type, has_subtype) = match &header {
            EventHeader::CamelCase(h) => (h.event_type.is_some(), h.event_subtype.is_some()),
            EventHeader::Lowercase(h) => (h.eventtype.is_some(), h.eventsubtype.is_some()),
        };
        let (t, st) = if lower {
            ("eventtype", "eventsubtype")
        } else {
            ("eventType", "eventSubtype")
        };
        for (field, flag, set) in [
            (t, "--event-type TYPE", has_type),
            (st, "--event-subtype SUBTYPE", has_subtype),
        ] {
            if !set && !carries(field) {
                return Err(AgentError::Config(format!(
                    "no {field} for the events: pass {flag}, or --demo for the reference demo"
                )));
            }
        }
        check_input(&header, v)?;
    }
    let count = match ev.count {
        Some(0) => None,
        Some(n) => Some(n),
        None if ev.stdin => None,
        None => Some(if ev.demo { 3 } else { 1 }),
    };
    Ok(TelemetryPlan {
        topic: topic_for(
            generation,
            env.stage.as_ref().map(|l| l.value.as_str()),
            device,
        )?,
        header,
        source,
        count,
        interval: ev
            .interval
            .or(ev.demo.then_some(0.5))
            .map(Duration::from_secs_f64),
        confirm_timeout: Duration::from_secs(ev.confirm_timeout),
    })
}

fn shadow_plan(s: &ShadowOpts) -> ShadowPlan {
    ShadowPlan {
        follow: s.follow,
        sync_timeout: Duration::from_secs(s.sync_timeout.max(1)),
        config: DeviceConfig::default(),
        initial_state: initial_state(),
    }
}

fn summary_text(s: &Summary) -> String {
    let mut t = format!(
        "{} event(s) sent, {} confirmed by the broker",
        s.events_sent, s.events_confirmed
    );
    if s.events_blocked > 0 {
        t.push_str(&format!(", {} held back by the shadow", s.events_blocked));
    }
    if s.events_refused > 0 {
        t.push_str(&format!(", {} refused before sending", s.events_refused));
    }
    if s.unacked > 0 {
        let place = if s.spooled {
            "wait in the spool for the next start"
        } else {
            "were not confirmed"
        };
        t.push_str(&format!("; {} message(s) {place}", s.unacked));
    }
    if let Some(synced) = s.shadow_synced {
        t.push_str(&format!(
            "; shadow {}{}",
            if synced { "in sync" } else { "not in sync" },
            s.shadow_version
                .map(|v| format!(" at version {v}"))
                .unwrap_or_default()
        ));
    }
    if let Some(e) = &s.shadow_error {
        t.push_str(&format!(" ({e})"));
    }
    t
}

async fn drive(
    out: Output,
    store: &Path,
    conn: &ConnArgs,
    spool: Option<&SpoolArgs>,
    long: bool,
    plan: impl FnOnce(&Provisioned) -> Result<Plan, AgentError>,
) -> Result<u8, AgentError> {
    let device = Store::new(store).load()?;
    let mut opts = session_options(conn, &device)?;
    let plan = plan(&device)?;
    let total = plan.telemetry.as_ref().and_then(|t| t.count).unwrap_or(0);
    let outbox = outbox(spool, &mut opts, long)?;
    let bar = out.progress(total, "sending");
    let b = bar.clone();
    let reporter = move |e: Event| {
        if let Event::Sent { n, .. } = &e {
            b.set_position(*n);
            if out.format() == Format::Text {
                return;
            }
        }
        b.suspend(|| print(out, &e));
    };
    let summary = run_device(
        opts,
        outbox,
        plan,
        cli::signal::shutdown_signal(),
        &reporter,
    )
    .await?;
    bar.finish_and_clear();
    out.event("summary", &summary, || summary_text(&summary));
    Ok(exit::of(summary.outcome()))
}

/// `hdm-telemetry send`.
pub async fn send(args: SendArgs, out: Output) -> u8 {
    finish(
        async {
            let env = read_env(&args.env)?;
            drive(
                out,
                &args.store.store,
                &args.conn,
                Some(&args.spool),
                false,
                |d| {
                    Ok(Plan {
                        shadow: None,
                        telemetry: Some(telemetry_plan(&args.events, &env, d)?),
                    })
                },
            )
            .await
        }
        .await,
    )
}

/// `hdm-telemetry shadow`.
pub async fn shadow(args: ShadowArgs, out: Output) -> u8 {
    finish(
        drive(
            out,
            &args.store.store,
            &args.conn,
            None,
            args.shadow.follow,
            |_| {
                Ok(Plan {
                    shadow: Some(shadow_plan(&args.shadow)),
                    telemetry: None,
                })
            },
        )
        .await,
    )
}

/// `hdm-telemetry run`.
pub async fn run(args: RunArgs, out: Output) -> u8 {
    finish(
        async {
            let env = read_env(&args.env)?;
            drive(
                out,
                &args.store.store,
                &args.conn,
                Some(&args.spool),
                true,
                |d| {
                    Ok(Plan {
                        shadow: Some(shadow_plan(&args.shadow)),
                        telemetry: Some(telemetry_plan(&args.events, &env, d)?),
                    })
                },
            )
            .await
        }
        .await,
    )
}
