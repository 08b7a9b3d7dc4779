//! `--profile hdm`: every device is HDM's own agent loop ([`hdm::agent::run::run`], the loop
//! behind `hdm-telemetry run`): the classic shadow synced first (get, created by reporting when
//! missing, deltas followed) and gating telemetry, camelCase envelopes with fresh UUIDs and
//! increasing timestamps sent to AWS basic ingest at QoS 1. The fleet gives each device only
//! its identity (a thing name, a certificate with that CN) and its pacing, and counts what the
//! agent reports.

use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hdm::agent::run::{Plan, ShadowPlan};
use hdm::agent::{AgentError, Event, EventSource, Provisioned, Reporter, TelemetryPlan};
use hdm::protocol::envelope::Header;
use hdm::protocol::shadow::device::DeviceConfig;
use hdm::protocol::shadow::gate::initial_state;
use tokio::sync::watch;
use transport::session::StartError;
use transport::{Outbox, Outcome, SessionOptions};

use crate::stats::Counters;
use crate::{Ctx, FleetError, HdmProfile, Retry, device_options, event_hook};

/// `eventType` and `eventSubType` of the fleet's events, so a backend can tell load-test
/// traffic from a press's.
pub const EVENT_TYPE: &str = "edgewire-fleet";
/// See [`EVENT_TYPE`].
pub const EVENT_SUBTYPE: &str = "load-test";
/// How long a device's first shadow sync may take before it sends telemetry anyway.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// Checks what the profile needs before any device starts.
pub(crate) fn check(opts: &crate::FleetOptions, p: &HdmProfile) -> Result<String, FleetError> {
    if !matches!(opts.identity, crate::Identity::Issued { .. }) {
        return Err(FleetError::Invalid(
            "--profile hdm needs --issuer-cert and --issuer-key: AWS IoT (and iot-sim) take an HDM device's client id only with a certificate whose CN is that thing name".into(),
        ));
    }
    hdm::protocol::topics::telemetry_topic(&p.stage)
        .map_err(|e| FleetError::Invalid(format!("--hdm-stage: {e}")))
}

/// Device `id`'s session options as the HDM agent connects (`hdm::agent::connect`): client id
/// = thing name = its certificate's CN, the reference client's keep-alive, ALPN on port 443.
fn session_options(ctx: &Ctx, id: u64) -> Result<SessionOptions, FleetError> {
    let mut so = device_options(&ctx.opts, id)?;
    // The device's certificate is issued in memory (`TlsShare::apply`): no files to name.
    let device = Provisioned {
        dir: std::path::PathBuf::new(),
        thing: so.client_id.clone(),
        root_ca: so.tls.ca_files.first().cloned().unwrap_or_default(),
        cert: std::path::PathBuf::new(),
        key: std::path::PathBuf::new(),
        org_id: None,
        properties: None,
    };
    hdm::agent::connect::complete(&mut so, &device, false);
    (so.tls.client_cert, so.tls.client_key) = (None, None);
    so.keep_alive = hdm::agent::connect::KEEP_ALIVE;
    ctx.tls.apply(&mut so, id)?;
    Ok(so)
}

/// What device `id` runs: the shadow (unless switched off) and telemetry at the fleet's rate.
fn plan(ctx: &Ctx, p: &HdmProfile, topic: &str, thing: &str, id: u64) -> Plan {
    let opts = &ctx.opts;
    let count = match (opts.count, opts.rate > 0.0) {
        (Some(0), _) | (None, false) => None,
        (Some(n), _) => Some(Some(n)),
        (None, true) => Some(None),
    };
    let mut header = Header::defaults(thing);
    header.event_type = Some(EVENT_TYPE.into());
    header.event_subtype = Some(EVENT_SUBTYPE.into());
    let telemetry = count.map(|count| TelemetryPlan {
        topic: topic.to_owned(),
        header: header.into(),
        source: EventSource::Repeat(serde_json::json!({
            "device": id,
            "data": "x".repeat(opts.size),
        })),
        count,
        interval: (opts.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / opts.rate)),
        confirm_timeout: Duration::from_secs(30),
    });
    // Held (deltas followed) while a --duration runs or telemetry goes on forever; otherwise
    // the device ends when its events are confirmed (or, without telemetry, once synced).
    let follow = opts.duration.is_some() || matches!(count, Some(None));
    Plan {
        shadow: p.shadow.then(|| ShadowPlan {
            follow,
            sync_timeout: SYNC_TIMEOUT,
            config: DeviceConfig::default(),
            initial_state: initial_state(),
        }),
        telemetry,
    }
}

/// Counts what one device's agent reports; the connecting slot goes back once connected.
struct Counting<'a> {
    c: &'a Counters,
    id: u64,
    permit: Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
}

impl Reporter for Counting<'_> {
    fn report(&self, e: Event) {
        match e {
            Event::Connected { .. } => {
                self.permit
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
            }
            Event::Sent { .. } => {
                self.c.published.fetch_add(1, Relaxed);
            }
            Event::Refused { reason } => {
                self.c.publish_errors.fetch_add(1, Relaxed);
                tracing::debug!("device {}: {reason}", self.id);
            }
            _ => {}
        }
    }

    fn confirmed(&self, latency: Duration) {
        self.c.latency(latency);
    }
}

/// Runs device `id` until its plan is done, it fails for good or the fleet stops. The first
/// connection is retried like a raw device's (each failure counted by cause); after it, the
/// agent's session reconnects by itself.
pub(crate) async fn run_device(
    ctx: &Ctx,
    p: &HdmProfile,
    topic: &str,
    id: u64,
    stop: &mut watch::Receiver<bool>,
) {
    let c = &ctx.counters;
    let mut retry = Retry::new(ctx);
    let mut base = None;
    loop {
        let Some(permit) = crate::connect_slot(ctx, stop).await else {
            return;
        };
        if base.is_none() {
            match session_options(ctx, id) {
                Ok(so) => base = Some(so),
                Err(e) => {
                    tracing::warn!("device {id}: {e}");
                    c.failed.fetch_add(1, Relaxed);
                    return;
                }
            }
        }
        let Some(mut so) = base.clone() else { return };
        so.on_event = Some(event_hook(ctx));
        let thing = so.client_id.clone();
        let plan = plan(ctx, p, topic, &thing, id);
        // The connecting slot is given back once connected (the agent reports it first).
        let reporter = Counting {
            c,
            id,
            permit: Mutex::new(Some(permit)),
        };
        let mut stopped = stop.clone();
        let outbox = Outbox::memory(usize::from(ctx.opts.settings.inflight).max(16) * 2);
        let r = hdm::agent::run::run(
            so,
            outbox,
            plan,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
            &reporter,
        )
        .await;
        drop(reporter);
        let err = match r {
            Ok(s) => {
                c.confirmed.fetch_add(s.events_confirmed, Relaxed);
                if s.outcome() != Outcome::Ok && !s.interrupted {
                    tracing::warn!(
                        "device {id} ({thing}) ended short: {} sent, {} confirmed, {} blocked, {} refused{}",
                        s.events_sent,
                        s.events_confirmed,
                        s.events_blocked,
                        s.events_refused,
                        s.shadow_error
                            .map(|e| format!("; shadow: {e}"))
                            .unwrap_or_default()
                    );
                    c.failed.fetch_add(1, Relaxed);
                }
                return;
            }
            Err(AgentError::Connect(StartError::Connect(e))) => e,
            Err(e) => {
                tracing::warn!("device {id} ({thing}): {e}");
                c.failed.fetch_add(1, Relaxed);
                return;
            }
        };
        if !retry.again(ctx, id, &err, stop).await {
            return;
        }
    }
}
