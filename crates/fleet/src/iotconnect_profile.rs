//! `--profile iotconnect`: every device is IoTConnect's own agent, as `iotc-send run` runs it:
//! the HTTPS bootstrap ([`iotconnect::agent::setup::setup`]: discovery and identity for message
//! protocol 2.1, discovery and sync for 1.0), [`iotconnect::agent::Agent::start`], then
//! [`iotconnect::agent::Agent::run`] fed with telemetry records at the fleet's rate, commands
//! acknowledged automatically. The fleet gives each device its unique id (the client id
//! pattern), its identity (a certificate with that CN, auth type 2, or a primary key derived
//! from a group key, auth type 5) and its pacing, and counts what the agent reports: each
//! `reporting` message accepted and, through [`RunOptions::on_confirmed`], each confirmed with
//! its publish-to-PUBACK latency.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use iotconnect::agent::setup::{Setup, setup};
use iotconnect::agent::source::{Catalog, Input};
use iotconnect::agent::{AgentError, Event, Reporter, RunOptions, RunOutcome};
use iotconnect::config::Config;
use iotconnect::protocol::input::InputRecord;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use transport::auth::{ExposeSecret, PasswordSource};
use transport::session::StartError;
use transport::{ConnectSettings, SessionOptions};

use crate::stats::Counters;
use crate::{Ctx, FleetError, FleetOptions, Identity, Retry, device_settings};

/// The message protocol the devices speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IotcProtocol {
    /// 2.1: discovery and identity, the per-kind topics (what the vendor runs today).
    #[default]
    V21,
    /// 1.0: discovery and sync, one D2C topic.
    V10,
}

/// Where the group key of auth type 5 devices comes from (never a flag's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// This environment variable.
    Env(String),
    /// This file (one trailing newline removed).
    File(PathBuf),
}

/// The SAS token lifetime of `iotc-send` and of the profile by default (an hour, as Azure's
/// device SDKs).
pub const SAS_LIFETIME: Duration = iotconnect::agent::bootstrap::SAS_LIFETIME;

/// The IoTConnect profile's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IotcProfile {
    /// Company id (`cpId`).
    pub cp_id: String,
    /// Environment (`env`).
    pub env: String,
    /// Message protocol.
    pub protocol: IotcProtocol,
    /// The discovery service (iot-sim: `{EDGEWIRE_SIM_HTTPS}/iotconnect`).
    pub discovery_url: String,
    /// Auth type 5: the group key each device's primary key is derived from, as Azure DPS
    /// group enrolments derive them; `None`: certificates (auth type 2).
    pub group_key: Option<KeySource>,
    /// Auth type 5: how long each SAS token a device signs is valid (renewed, with a new
    /// session, at five sixths of it); default [`SAS_LIFETIME`], as `iotc-send`.
    pub sas_lifetime: Duration,
}

impl Default for IotcProfile {
    /// iot-sim's company, IoTConnect's discovery service.
    fn default() -> Self {
        IotcProfile {
            cp_id: "EDGEWIRE".into(),
            env: "DEV".into(),
            protocol: IotcProtocol::V21,
            discovery_url: iotconnect::protocol::v1::sync::DEFAULT_DISCOVERY_URL.into(),
            group_key: None,
            sas_lifetime: SAS_LIFETIME,
        }
    }
}

/// What the check found, for every device.
pub(crate) struct Prepared {
    profile: IotcProfile,
    /// The group key, read once.
    group_key: Option<String>,
}

fn invalid(s: impl std::fmt::Display) -> FleetError {
    FleetError::Invalid(format!("--profile iotconnect: {s}"))
}

/// Checks what the profile needs before any device connects: one identity, the group key
/// readable, and the first device known to the platform with the auth type its identity
/// serves (that device's HTTPS bootstrap, no MQTT). Returns what the devices share and the
/// broker the platform points them at.
pub(crate) async fn check(
    opts: &FleetOptions,
    p: &IotcProfile,
    first: u64,
) -> Result<(Prepared, Option<String>), FleetError> {
    let issued = matches!(opts.identity, Identity::Issued { .. });
    let group_key = match (&p.group_key, issued) {
        (None, false) => {
            return Err(invalid(
                "each device needs an identity: --issuer-cert and --issuer-key (auth type 2, a certificate per device with CN = its unique id) or --iotc-group-key-env/--iotc-group-key-file (auth type 5, keys derived from the group key)",
            ));
        }
        (Some(_), true) => {
            return Err(invalid(
                "--issuer-cert and --iotc-group-key-env/--iotc-group-key-file exclude each other: the devices use certificates (auth type 2) or keys (auth type 5)",
            ));
        }
        (None, true) => None,
        (Some(source), false) => {
            let (flag, source) = match source {
                KeySource::Env(v) => ("--iotc-group-key-env", PasswordSource::Env(v.clone())),
                KeySource::File(f) => ("--iotc-group-key-file", PasswordSource::File(f.clone())),
            };
            let key = source
                .read()
                .map_err(|e| invalid(format!("{flag}: {e}")))?
                .expose_secret()
                .to_owned();
            iotconnect::protocol::sas::derive_device_key(&key, "")
                .map_err(|e| invalid(format!("{flag}: the group key: {e}")))?;
            Some(key)
        }
    };
    let prepared = Prepared {
        profile: p.clone(),
        group_key,
    };
    let settings = device_settings(opts, first);
    let unique_id = settings.client_id.clone().unwrap_or_default();
    let s = bootstrap(opts, &prepared, &settings)
        .await
        .map_err(|e| invalid(format!("device `{unique_id}`: {e}")))?;
    let at = s.sync.at.unwrap_or(2);
    match (at, prepared.group_key.is_some()) {
        (2 | 3, false) | (5, true) => {}
        (2 | 3, true) => {
            return Err(invalid(format!(
                "device `{unique_id}` uses auth type {at} (X.509 certificate): give --issuer-cert and --issuer-key instead of a group key"
            )));
        }
        (5, false) => {
            return Err(invalid(format!(
                "device `{unique_id}` uses auth type 5 (symmetric key): give --iotc-group-key-env or --iotc-group-key-file instead of --issuer-cert"
            )));
        }
        (n, _) => {
            return Err(invalid(format!(
                "device `{unique_id}` uses auth type {n}; the fleet's devices use 2 (--issuer-cert/--issuer-key) or 5 (--iotc-group-key-env/--iotc-group-key-file)"
            )));
        }
    }
    Ok((prepared, iotconnect::agent::bootstrap::broker_url(&s.sync)))
}

/// Device `unique_id`'s config, as `iotconnect.json` would hold it (no offline storage: a
/// load test counts what the broker took, and the SDK drops messages made while offline).
fn config(p: &Prepared, unique_id: &str) -> Result<Config, AgentError> {
    let text = json!({
        "cpId": p.profile.cp_id,
        "uniqueId": unique_id,
        "env": p.profile.env,
        "discoveryUrl": p.profile.discovery_url,
        "protocol": match p.profile.protocol {
            IotcProtocol::V21 => "2.1",
            IotcProtocol::V10 => "1.0",
        },
        "sdkOptions": {"offlineStorage": {"disabled": true}},
    });
    let mut c = Config::parse(
        std::path::Path::new(&format!("<fleet device {unique_id}>")),
        &text.to_string(),
    )?;
    if let Some(group) = &p.group_key {
        c.device_primary_key = Some(iotconnect::protocol::sas::derive_device_key(
            group, unique_id,
        )?);
    }
    c.sas_lifetime = p.profile.sas_lifetime;
    Ok(c)
}

/// The HTTPS half, as `iotc-send` starts: the fleet's rate decides, not the platform's `df`.
async fn bootstrap(
    opts: &FleetOptions,
    p: &Prepared,
    settings: &ConnectSettings,
) -> Result<Setup, AgentError> {
    let unique_id = settings.client_id.clone().unwrap_or_default();
    let quiet = |_: Event| {};
    setup(
        config(p, &unique_id)?,
        settings,
        Some(Duration::ZERO),
        opts.settings.connect_timeout.max(Duration::from_secs(10)),
        &quiet,
    )
    .await
}

/// Counts what one device's agent reports.
struct Counting {
    c: Arc<Counters>,
    id: u64,
}

impl Reporter for Counting {
    fn event(&self, e: Event) {
        match e {
            Event::Published { kind, .. } if kind == "reporting" => {
                self.c.published.fetch_add(1, Relaxed);
            }
            Event::DroppedOffline { .. } | Event::Throttled { .. } => {
                self.c.publish_errors.fetch_add(1, Relaxed);
            }
            Event::Warning { message } => tracing::debug!("device {}: {message}", self.id),
            _ => {}
        }
    }
}

/// Device `id`'s session options: the agent's (broker, client id = unique id, the IoT Hub
/// username, the SAS token of auth type 5) with the fleet's tuning and TLS set-up (an issued
/// certificate, or the shared config).
fn session_options(ctx: &Ctx, s: &Setup, id: u64) -> Result<SessionOptions, FleetError> {
    let settings = device_settings(&ctx.opts, id);
    // An issued certificate is made here, in memory, with the device's TLS config.
    let tls = ctx.tls.config(&settings.tls.alpn, id)?;
    let mut so = s
        .session_options(&settings, tls)
        .map_err(|e| invalid(format!("device {id}: {e}")))?;
    crate::tune(&ctx.opts, &mut so, id);
    so.on_event = Some(crate::event_hook(ctx));
    Ok(so)
}

/// Runs device `id` until its records are confirmed (and a `--duration` is over), it fails or
/// the fleet stops. The first connection (bootstrap included) is retried like a raw device's.
pub(crate) async fn run_device(ctx: &Ctx, p: &Prepared, id: u64, stop: &mut watch::Receiver<bool>) {
    let c = &ctx.counters;
    let mut retry = Retry::new(ctx);
    let settings = device_settings(&ctx.opts, id);
    let reporter: Arc<dyn Reporter> = Arc::new(Counting { c: c.clone(), id });
    let mut base: Option<SessionOptions> = None;
    let (agent, platform, config) = loop {
        let Some(permit) = crate::connect_slot(ctx, stop).await else {
            return;
        };
        let attempt = async {
            let s = bootstrap(&ctx.opts, p, &settings).await?;
            // Made (and the certificate issued) once; a retry syncs again but keeps it.
            let so = match &base {
                Some(so) => so.clone(),
                None => {
                    session_options(ctx, &s, id).map_err(|e| AgentError::Input(e.to_string()))?
                }
            };
            base = Some(so.clone());
            s.start(so, None, reporter.clone()).await
        };
        let r = tokio::select! {
            r = attempt => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        drop(permit);
        let err = match r {
            Ok(started) => break started,
            Err(AgentError::Start(StartError::Connect(e))) => e,
            Err(e)
                if iotconnect::agent::setup::is_transient(&e)
                    && retry.first_try.elapsed() < ctx.give_up =>
            {
                c.connect_error("http");
                tracing::debug!("device {id}: {e}");
                tokio::select! {
                    () = tokio::time::sleep(retry.backoff.next_delay(fastrand::f64())) => continue,
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            Err(e) => {
                tracing::warn!("device {id}: {e}");
                c.failed.fetch_add(1, Relaxed);
                return;
            }
        };
        if !retry.again(ctx, id, &err, stop).await {
            return;
        }
    };
    let unique_id = config.unique_id.clone();
    let sas_lifetime = config.sas_lifetime;
    let v21 = agent.device().is_v21();
    // A re-sync's new session keeps the device's TLS config (and so its certificate) and its
    // event hook, so that the device's counts go on.
    let tls = base.as_ref().and_then(|so| so.tls_config.clone());
    let hook = base.as_ref().and_then(|so| so.on_event.clone());
    let (tx, rx) = mpsc::channel::<Input>(4);
    let (catalog_tx, catalog_rx) = watch::channel(None);
    let opts = &ctx.opts;
    let endless = opts.count.is_none() && opts.rate > 0.0;
    let counters = c.clone();
    let run = RunOptions {
        auto_ack: true,
        platform: Some((platform, config.clone())),
        // A 0x12 re-sync's new broker: the agent's options, with the fleet's pacing.
        reconnect: Some({
            let settings = settings.clone();
            let fleet = opts.clone();
            Arc::new(move |sync| {
                let mut so = iotconnect::agent::bootstrap::session_options_with_tls(
                    &settings,
                    &config,
                    sync,
                    tls.clone(),
                )?;
                crate::tune(&fleet, &mut so, id);
                so.on_event.clone_from(&hook);
                Ok(so)
            })
        }),
        // Auth type 5: this agent signs its SAS token, so it renews it, as iotc-send does.
        renew_credentials: p
            .group_key
            .as_ref()
            .map(|_| iotconnect::agent::bootstrap::renew_after(sas_lifetime)),
        catalog: Some(catalog_tx),
        answer_desired: v21,
        exit_after_input: opts.duration.is_none() && !endless,
        on_confirmed: Some(Arc::new(move |kind, latency| {
            if kind == "reporting" {
                counters.confirmed.fetch_add(1, Relaxed);
                counters.latency(latency);
            }
        })),
        ..RunOptions::default()
    };
    let mut stopped = stop.clone();
    let shutdown = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let (r, ()) = tokio::join!(
        agent.run(rx, run, shutdown),
        feed(ctx, &unique_id, tx, catalog_rx, stop.clone())
    );
    match r {
        Ok(RunOutcome::Shutdown | RunOutcome::InputDone) => {}
        Ok(RunOutcome::Barred) => {
            tracing::warn!("device {id} ({unique_id}): the platform stopped it (0x99)");
            c.failed.fetch_add(1, Relaxed);
        }
        Err(e) => {
            tracing::warn!("device {id} ({unique_id}): {e}");
            c.failed.fetch_add(1, Relaxed);
        }
    }
}

/// Sends the device's records at the fleet's rate, once the device has its attributes (2.1
/// drops data before the 201 answer); holds the input open while a `--duration` runs.
async fn feed(
    ctx: &Ctx,
    unique_id: &str,
    tx: mpsc::Sender<Input>,
    mut catalog: watch::Receiver<Option<Catalog>>,
    mut stop: watch::Receiver<bool>,
) {
    let opts = &ctx.opts;
    let count = match (opts.count, opts.rate > 0.0) {
        (Some(n), _) => n,
        (None, true) => u64::MAX,
        (None, false) => 0,
    };
    if count > 0 {
        tokio::select! {
            r = catalog.wait_for(Option::is_some) => if r.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
    let period = (opts.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / opts.rate));
    let mut ticker = period.map(|p| {
        let mut t = tokio::time::interval_at(Instant::now() + p.mul_f64(fastrand::f64()), p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    for n in 0..count {
        if let Some(t) = ticker.as_mut() {
            tokio::select! {
                _ = t.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        } else if *stop.borrow() {
            return;
        }
        if tx
            .send(Input::Records(vec![record(unique_id, n, opts.size)]))
            .await
            .is_err()
        {
            return;
        }
    }
    if opts.duration.is_some() {
        let _ = stop.wait_for(|s| *s).await;
    }
}

/// One reading of the platform's `basic` template (iot-sim's fleet devices): a temperature in
/// its range that moves with each record, and `--size` bytes of padding in `label`.
fn record(unique_id: &str, n: u64, size: usize) -> InputRecord {
    let mut data = serde_json::Map::new();
    data.insert("temperature".into(), json!(20 + (n % 50)));
    data.insert("label".into(), json!("x".repeat(size)));
    InputRecord {
        unique_id: unique_id.to_owned(),
        time: None,
        data,
    }
}
