//! `--profile gooee`: every device is Gooee's own agent ([`gooee::agent::Agent`], the code behind
//! `gooee-pub`): it logs in as user `authorization` with the API token (from `GOOEE_TOKEN`, or
//! the `--password-env`/`--password-file` source), and publishes its meta list on
//! `devices/{id}/meta`, each publication checked against the topic table and the payload rules
//! before it leaves and confirmed by the broker before the next. The fleet gives each device its
//! id (the client id) and its pacing, and times each publish to its PUBACK.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use gooee::agent::{Agent, AgentError, PublishOptions};
use gooee::protocol::{Check, MetaEntry, MetaList, Publication};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{Ctx, FleetError, Retry, device_settings, expand, tune};

/// Checks what the profile needs before any device starts: a token source, a device id the
/// topic table takes.
pub(crate) fn check(opts: &crate::FleetOptions, first: u64) -> Result<(), FleetError> {
    session_options(opts, first)?;
    Ok(())
}

/// Device `id`'s session options as `gooee-pub` makes them (username `authorization`, the
/// token source), with the fleet's tuning.
fn session_options(
    opts: &crate::FleetOptions,
    id: u64,
) -> Result<transport::SessionOptions, FleetError> {
    let mut so = gooee::agent::session_options(&device_settings(opts, id), None)
        .map_err(|e| FleetError::Invalid(format!("--profile gooee: {e}")))?;
    gooee::protocol::topics::device_meta(&so.client_id)
        .map_err(|e| FleetError::Invalid(format!("--profile gooee: --client-id: {e}")))?;
    tune(opts, &mut so, id);
    Ok(so)
}

/// Device `id`'s meta list: a temperature that moves with each publication, and a padding
/// string of `--size` bytes (a meta name the platform takes with any value).
fn meta(device: &str, n: u64, size: usize) -> Result<Publication, FleetError> {
    let list = MetaList(vec![
        MetaEntry::new(
            "temperature",
            serde_json::json!(20.0 + (n % 50) as f64 / 10.0),
        ),
        MetaEntry::new("fleet_data", serde_json::json!("x".repeat(size))),
    ]);
    Publication::meta(device, &list, Check::Full)
        .map_err(|e| FleetError::Invalid(format!("--profile gooee: {e}")))
}

/// Runs device `id` until its messages are confirmed (and a `--duration` is over), it fails or
/// the fleet stops.
pub(crate) async fn run_device(ctx: &Ctx, id: u64, stop: &mut watch::Receiver<bool>) {
    let c = &ctx.counters;
    let mut retry = Retry::new(ctx);
    let mut agent = loop {
        let Some(permit) = crate::connect_slot(ctx, stop).await else {
            return;
        };
        let so = match session_options(&ctx.opts, id)
            .and_then(|mut so| ctx.tls.apply(&mut so, id).map(|()| so))
        {
            Ok(mut so) => {
                so.on_event = Some(crate::event_hook(ctx));
                so
            }
            Err(e) => {
                tracing::warn!("device {id}: {e}");
                c.failed.fetch_add(1, Relaxed);
                return;
            }
        };
        let r = tokio::select! {
            r = Agent::connect(so) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        drop(permit);
        let err = match r {
            Ok(agent) => break agent,
            Err(AgentError::Connect(e) | AgentError::TokenRefused { source: e, .. }) => e,
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
    let ok = publish_loop(ctx, &mut agent, id, stop).await;
    if ok && ctx.opts.duration.is_some() {
        let _ = stop.wait_for(|s| *s).await;
    }
    agent.close().await;
    if !ok {
        c.failed.fetch_add(1, Relaxed);
    }
}

/// Publishes device `id`'s meta at the fleet's rate; `false` when a publish failed.
async fn publish_loop(
    ctx: &Ctx,
    agent: &mut Agent,
    id: u64,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let opts = &ctx.opts;
    let c = &ctx.counters;
    let count = match (opts.count, opts.rate > 0.0) {
        (Some(n), _) => n,
        (None, true) => u64::MAX,
        (None, false) => return true,
    };
    let device = expand(opts.settings.client_id.as_deref().unwrap_or("fleet-%i"), id);
    let period = (opts.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / opts.rate));
    let mut ticker = period.map(|p| {
        let mut t = tokio::time::interval_at(Instant::now() + p.mul_f64(fastrand::f64()), p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let publish = PublishOptions {
        qos: opts.qos,
        watch_rejected: None,
    };
    // The agent's events (each publish confirmed) are what the fleet counts itself.
    let mut ignore = |_| {};
    for n in 0..count {
        if let Some(t) = ticker.as_mut() {
            tokio::select! {
                _ = t.tick() => {}
                _ = stop.wait_for(|s| *s) => return true,
            }
        } else if *stop.borrow() {
            return true;
        }
        let p = match meta(&device, n, opts.size) {
            Ok(p) => p,
            Err(e) => {
                c.publish_errors.fetch_add(1, Relaxed);
                tracing::warn!("device {id}: {e}");
                return false;
            }
        };
        c.published.fetch_add(1, Relaxed);
        let at = Instant::now();
        let r = tokio::select! {
            r = agent.publish(&p, publish, &mut ignore) => r,
            _ = stop.wait_for(|s| *s) => return true,
        };
        match r {
            Ok(_) => {
                c.confirmed.fetch_add(1, Relaxed);
                c.latency(at.elapsed());
            }
            Err(e) => {
                c.publish_errors.fetch_add(1, Relaxed);
                tracing::warn!("device {id}: {e}");
                return false;
            }
        }
    }
    true
}
