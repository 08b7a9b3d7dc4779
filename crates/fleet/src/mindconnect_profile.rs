//! `--profile mindconnect`: every device is mc-agent's agent loop ([`mindconnect::agent::run::run`],
//! the code behind `mc-agent run`): a persistent session as `{tenant}_{agent}` with a
//! certificate whose CN is the agent name, the agent's subscriptions, once per device the v3
//! instantiation of the shared model (its state kept in memory, no `instance.conf`) or the v4
//! model synchronisation (`agent.ini` per device), then simulated timeseries from the shared
//! template at the fleet's rate, commands answered, and every publish confirmed before the
//! agent ends. The fleet gives each agent its identity and pacing and counts what it reports.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mindconnect::agent::model::{SendOptions, prepare_model, send};
use mindconnect::agent::run::{RunOptions, run};
use mindconnect::agent::source::ValueSource;
use mindconnect::agent::sync::{LOCAL_MODEL, SyncOptions, builtin_local_model};
use mindconnect::agent::{AgentError, Event, Reporter};
use mindconnect::config::{ModelApi, Settings};
use mindconnect::protocol::machine::{Plan, Task};
use mindconnect::protocol::template::Kind;
use mindconnect::templates::{TemplateDir, write_builtin};
use tokio::sync::{OwnedSemaphorePermit, watch};
use transport::session::StartError;
use transport::{Outbox, Qos};

use crate::stats::Counters;
use crate::{Ctx, FleetError, FleetOptions, Identity, McProfile, Retry, device_options, expand};

/// How long an agent waits for each of the platform's answers (instantiation, model sync).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// What the fleet's agents share: the templates (and v4 local model) written once, the model's
/// name, and a folder for each device's `agent.ini`.
pub(crate) struct Shared {
    templates: TemplateDir,
    model_name: String,
    local_model: PathBuf,
    dir: tempfile::TempDir,
}

/// The agent name (certificate CN) of device `id`.
fn agent_name(opts: &FleetOptions, id: u64) -> Option<String> {
    match &opts.identity {
        Identity::Issued { cn_pattern, .. } => Some(expand(cn_pattern, id)),
        Identity::Shared => None,
    }
}

/// Checks what the profile needs before any device starts: a certificate per device, and a
/// client id that is `{tenant}_{CN}` (the platform refuses any other).
pub(crate) fn check(opts: &FleetOptions, p: &McProfile, first: u64) -> Result<(), FleetError> {
    let Some(agent) = agent_name(opts, first) else {
        return Err(FleetError::Invalid(
            "--profile mindconnect needs --issuer-cert and --issuer-key: MindConnect takes an agent only with a certificate (CN = agent name) from the tenant's CA, which iot-sim up keeps as its CA (EDGEWIRE_SIM_CA, with ca.key next to it)".into(),
        ));
    };
    let client_id = expand(opts.settings.client_id.as_deref().unwrap_or(""), first);
    let expected = format!("{}_{agent}", p.tenant);
    if client_id != expected {
        return Err(FleetError::Invalid(format!(
            "--profile mindconnect: the client id of device {first} is `{client_id}` but MindConnect expects `{{tenant}}_{{agent name}}` = `{expected}` (--mc-tenant `{}`, --cn `{agent}`); leave --client-id and --cn out and name the agents with --mc-device",
            p.tenant
        )));
    }
    mindconnect::protocol::topic::Topics::new(&p.tenant, &client_id)
        .map_err(|e| FleetError::Invalid(format!("--mc-tenant: {e}")))?;
    Ok(())
}

/// Device `id`'s settings as mc-agent resolves them from its config file, made from the fleet's
/// identity instead.
fn settings(
    ctx: &Ctx,
    p: &McProfile,
    model_name: Option<String>,
    id: u64,
) -> Result<Settings, FleetError> {
    let mut so = device_options(&ctx.opts, id)?;
    ctx.tls.apply(&mut so, id)?;
    let agent = agent_name(&ctx.opts, id).unwrap_or_default();
    let mut settings = Settings::for_agent(&p.tenant, &agent, so, model_name)
        .map_err(|e| FleetError::Invalid(format!("--profile mindconnect: {e}")))?;
    // The v4 cloud model is downloaded over HTTPS from the platform; --cafile is trusted for it
    // as for the broker (iot-sim serves both with one CA).
    settings
        .http_tls
        .ca_files
        .clone_from(&ctx.opts.settings.tls.ca_files);
    Ok(settings)
}

/// Writes the shared templates once and, for v3, publishes the asset model for the tenant as
/// `mc-model publish` does (as the fleet's first agent): every device's instantiation refers to
/// it.
pub(crate) async fn prepare(ctx: &Ctx, p: &McProfile, first: u64) -> Result<Shared, FleetError> {
    let dir = tempfile::tempdir().map_err(|e| FleetError::Io(format!("temporary folder: {e}")))?;
    let templates = dir.path().join("example_json");
    write_builtin(&templates)
        .map_err(|e| FleetError::Io(format!("cannot write the templates: {e}")))?;
    let local_model = templates.join(LOCAL_MODEL);
    std::fs::write(&local_model, builtin_local_model())
        .map_err(|e| FleetError::Io(format!("cannot write the local model: {e}")))?;
    let templates = TemplateDir::at(templates);
    let invalid = |e: AgentError| FleetError::Invalid(format!("--profile mindconnect: {e}"));
    let publisher = settings(ctx, p, None, first)?;
    let model = prepare_model(
        &publisher,
        &templates.load(Kind::Model).map_err(|e| invalid(e.into()))?,
    )
    .map_err(invalid)?;
    let model_name = model.payload["data"]["externalId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if p.model_api == ModelApi::V3 {
        let opts = SendOptions {
            timeout: ANSWER_TIMEOUT,
            qos: Qos::AtLeastOnce,
            instance_conf: None,
        };
        send(&publisher, &model, &opts, &mindconnect::agent::silent())
            .await
            .map_err(|e| FleetError::Platform {
                message: format!(
                    "--profile mindconnect: publishing the asset model `{model_name}` as `{}` failed: {e}",
                    publisher.session.client_id
                ),
                outcome: e.outcome(),
            })?;
    }
    Ok(Shared {
        templates,
        model_name,
        local_model,
        dir,
    })
}

/// What device `id` runs: timeseries at the fleet's rate (`--count` of them, or until the fleet
/// stops), nothing else periodic.
fn plan(opts: &FleetOptions) -> Plan {
    let interval = if opts.rate > 0.0 {
        Some(Duration::from_secs_f64(1.0 / opts.rate))
    } else if opts.count.is_some_and(|n| n > 0) {
        // As fast as the agent's turn allows.
        Some(Duration::from_millis(1))
    } else {
        None
    };
    Plan {
        intervals: interval
            .map(|i| (Task::Timeseries, i))
            .into_iter()
            .collect(),
        count: opts.count.filter(|n| *n > 0),
        duration: None,
        wait_commands: 0,
        answer_timeout: ANSWER_TIMEOUT,
    }
}

/// Counts what one agent reports; the connecting slot goes back once connected.
fn reporter(c: Arc<Counters>, id: u64, permit: OwnedSemaphorePermit) -> Reporter {
    let permit = Mutex::new(Some(permit));
    // Timeseries of this agent already counted as published (at their confirmation).
    let counted = std::sync::atomic::AtomicU64::new(0);
    Arc::new(move |e: &Event| match e {
        Event::Connected { .. } => {
            permit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
        }
        Event::Published { what, latency, .. } if what == "timeseries" => {
            // The agent says what it sent only in its summary, at its end: until then a
            // confirmed timeseries counts as published too, so that live stats move.
            counted.fetch_add(1, Relaxed);
            c.published.fetch_add(1, Relaxed);
            c.confirmed.fetch_add(1, Relaxed);
            if let Some(l) = latency {
                c.latency(*l);
            }
        }
        Event::Summary { timeseries, .. } => {
            // What was sent but never confirmed.
            let unconfirmed = timeseries.saturating_sub(counted.swap(*timeseries, Relaxed));
            c.published.fetch_add(unconfirmed, Relaxed);
        }
        Event::Warning { message } => tracing::debug!("device {id}: {message}"),
        _ => {}
    })
}

/// Runs device `id` until its timeseries are confirmed, it fails for good or the fleet stops.
/// The first connection is retried like a raw device's (each failure counted by cause); after
/// it, the agent's session reconnects by itself.
pub(crate) async fn run_device(
    ctx: &Ctx,
    p: &McProfile,
    shared: &Shared,
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
            match settings(ctx, p, Some(shared.model_name.clone()), id) {
                Ok(s) => base = Some(s),
                Err(e) => {
                    tracing::warn!("device {id}: {e}");
                    c.failed.fetch_add(1, Relaxed);
                    return;
                }
            }
        }
        let Some(mut settings) = base.clone() else {
            return;
        };
        settings.session.on_event = Some(crate::event_hook(ctx));
        let client_id = settings.session.client_id.clone();
        // Its own folder: the downloaded cloud model is saved next to `agent.ini`.
        let agent_dir = shared.dir.path().join(format!("agent-{id}"));
        if p.model_api == ModelApi::V4
            && let Err(e) = std::fs::create_dir_all(&agent_dir)
        {
            tracing::warn!("device {id}: cannot make `{}`: {e}", agent_dir.display());
            c.failed.fetch_add(1, Relaxed);
            return;
        }
        let model_sync = (p.model_api == ModelApi::V4).then(|| SyncOptions {
            local_model: shared.local_model.clone(),
            agent_ini: agent_dir.join("agent.ini"),
            timeout: ANSWER_TIMEOUT,
            qos: Qos::AtLeastOnce,
            force: false,
        });
        let opts = RunOptions {
            settings,
            templates: shared.templates.clone(),
            instance_conf: None,
            plan: plan(&ctx.opts),
            values: ValueSource::Simulated,
            file: None,
            datalake_file: None,
            hooks: std::collections::BTreeMap::new(),
            hook_timeout: Duration::from_secs(10),
            hook_runner: hook::Runner::default(),
            qos: ctx.opts.qos,
            outbox: Outbox::memory(usize::from(ctx.opts.settings.inflight).max(16) * 2),
            assume_instantiated: false,
            model_sync,
        };
        let report = reporter(ctx.counters.clone(), id, permit);
        let mut stopped = stop.clone();
        let r = run(
            opts,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
            report,
        )
        .await;
        let err = match r {
            Ok(s) => {
                tracing::debug!("device {id} ({client_id}): {s:?}");
                if ctx.opts.duration.is_some() {
                    let _ = stop.wait_for(|s| *s).await;
                }
                return;
            }
            Err(AgentError::Start(StartError::Connect(e))) => e,
            Err(e) => {
                if matches!(e, AgentError::Publish { .. }) {
                    c.publish_errors.fetch_add(1, Relaxed);
                }
                tracing::warn!("device {id} ({client_id}): {e}");
                c.failed.fetch_add(1, Relaxed);
                return;
            }
        };
        if !retry.again(ctx, id, &err, stop).await {
            return;
        }
    }
}
