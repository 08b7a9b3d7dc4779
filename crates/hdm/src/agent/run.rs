//! The device loop behind `send`, `shadow` and `run`: one session, one `select!` over incoming
//! shadow messages, the shadow machine's deadline, session events (a reconnect re-gets the
//! shadow), the next telemetry event, confirmations and shutdown. With a shadow, its response
//! topics are subscribed (SUBACK awaited) before `get`, telemetry waits for the first sync (or
//! the sync timeout) and every event passes the shadow's gate (`event_publishing_enabled`,
//! `event_type_blacklist`). Telemetry is published at QoS 1, never retained.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::task::JoinSet;
use transport::session::StartError;
use transport::{Message, Outbox, Outcome, Qos, Session, SessionEvent, SessionOptions};

use crate::agent::telemetry::{Item, Producer, build_event};
use crate::agent::{AgentError, Event, Reporter, TelemetryPlan};
use crate::protocol::shadow::device::{Action, DeviceConfig, DeviceShadow, ShadowEvent};
use crate::protocol::topics::ShadowTopics;

/// The shadow part of a run.
#[derive(Debug, Clone)]
pub struct ShadowPlan {
    /// Keep following `update/delta` until shutdown (otherwise stop once synced).
    pub follow: bool,
    /// How long the first sync may take (`shadow` fails after it; `run` then sends anyway).
    pub sync_timeout: Duration,
    /// Timeouts and retries.
    pub config: DeviceConfig,
    /// The device state before the shadow is applied.
    pub initial_state: Map<String, Value>,
}

/// What to do.
#[derive(Debug, Default)]
pub struct Plan {
    /// Keep the shadow in sync.
    pub shadow: Option<ShadowPlan>,
    /// Send telemetry.
    pub telemetry: Option<TelemetryPlan>,
}

/// How a run ended.
// The flags are independent facts about the run, reported as they are.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Telemetry events accepted for sending.
    pub events_sent: u64,
    /// Of those, confirmed by the broker (PUBACK).
    pub events_confirmed: u64,
    /// Held back by the shadow's state.
    pub events_blocked: u64,
    /// Refused before sending (bad input, over 128 KB).
    pub events_refused: u64,
    /// Messages still unconfirmed at the end (telemetry and shadow requests).
    pub unacked: u64,
    /// Whether those wait in a disk spool.
    pub spooled: bool,
    /// Dropped by a full spool.
    pub dropped: u64,
    /// Stopped by a signal.
    pub interrupted: bool,
    /// Whether the shadow was synced (absent without a shadow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_synced: Option<bool>,
    /// Shadow version at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_version: Option<u64>,
    /// The shadow service's last refusal, or why the sync did not finish.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_error: Option<String>,
    /// Seconds from start to end.
    pub elapsed_s: f64,
    #[serde(skip)]
    telemetry_done: bool,
    #[serde(skip)]
    shadow_rejected: bool,
    #[serde(skip)]
    wants_sync: bool,
    #[serde(skip)]
    follow: bool,
}

impl Summary {
    /// How the run ended: usage for refused events, rejected for a shadow refusal, failure for
    /// unconfirmed or dropped events, a sync that did not finish, or a send cut short (a
    /// signal is the normal end of a `--follow` run).
    pub fn outcome(&self) -> Outcome {
        if self.events_refused > 0 {
            Outcome::Usage
        } else if self.shadow_rejected {
            Outcome::Rejected
        } else if (self.wants_sync && self.shadow_synced != Some(true))
            || self.unacked > 0
            || self.dropped > 0
            || (!self.telemetry_done && !self.follow)
        {
            Outcome::Failure
        } else {
            Outcome::Ok
        }
    }
}

struct Loop<'a> {
    session: &'a Session,
    reporter: &'a dyn Reporter,
    summary: Summary,
    machine: Option<DeviceShadow>,
}

impl Loop<'_> {
    async fn execute(&mut self, actions: Vec<Action>) -> Result<(), AgentError> {
        for a in actions {
            match a {
                Action::Publish(o) => {
                    self.session
                        .publish(Message::new(o.topic, o.payload))
                        .await?;
                }
                Action::Event(e) => {
                    match &e {
                        ShadowEvent::Synced { version, .. } => {
                            self.summary.shadow_synced = Some(true);
                            self.summary.shadow_version = Some(*version);
                            self.summary.shadow_error = None;
                        }
                        ShadowEvent::Rejected { op, code, message } => {
                            self.summary.shadow_rejected = true;
                            self.summary.shadow_error =
                                Some(format!("{} rejected with {code}: {message}", op.as_str()));
                        }
                        _ => {}
                    }
                    self.reporter.report(Event::Shadow(e));
                }
            }
        }
        Ok(())
    }
}

fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400)
}

/// Connects with `opts` over `outbox` and runs `plan` until it is done or `shutdown` resolves.
pub async fn run(
    opts: SessionOptions,
    outbox: Outbox,
    plan: Plan,
    shutdown: impl Future<Output = ()>,
    reporter: &dyn Reporter,
) -> Result<Summary, AgentError> {
    let start = Instant::now();
    let endpoint = opts.endpoint.to_string();
    let thing = opts.client_id.clone();
    let (session, mut incoming) = Session::start(opts, outbox).await.map_err(|e| match e {
        StartError::Options(o) => AgentError::Options(o),
        other => AgentError::Connect(other),
    })?;
    let mut events = session.events();
    let first = session.status();
    if first.connected {
        reporter.report(Event::Connected {
            endpoint: endpoint.clone(),
            connection: first.connections,
        });
    }
    let Plan { shadow, telemetry } = plan;
    let follow = shadow.as_ref().is_some_and(|s| s.follow);
    let sync_deadline = shadow
        .as_ref()
        .map(|s| tokio::time::Instant::now() + s.sync_timeout);
    let mut lp = Loop {
        session: &session,
        reporter,
        summary: Summary {
            shadow_synced: shadow.as_ref().map(|_| false),
            wants_sync: shadow.as_ref().is_some_and(|s| !s.follow),
            telemetry_done: telemetry.is_none(),
            follow,
            ..Summary::default()
        },
        machine: match &shadow {
            Some(s) => Some(DeviceShadow::new(
                ShadowTopics::new(&thing, None)?,
                s.initial_state.clone(),
                &format!(
                    "{}-{:08x}",
                    thing.chars().take(24).collect::<String>(),
                    fastrand::u32(..)
                ),
                s.config,
            )),
            None => None,
        },
    };
    let filters: Vec<(String, Qos)> = lp
        .machine
        .as_ref()
        .map(|m| {
            m.subscriptions()
                .into_iter()
                .map(|f| (f, Qos::AtLeastOnce))
                .collect()
        })
        .unwrap_or_default();
    let subscribe = session.subscribe(&filters);
    tokio::pin!(subscribe);
    let mut subscribing = lp.machine.is_some();
    let (topic, header, interval, count, confirm_timeout, mut producer) = match telemetry {
        Some(t) => (
            t.topic,
            Some(t.header),
            t.interval,
            t.count,
            t.confirm_timeout,
            Some(Producer::new(t.source)),
        ),
        None => (String::new(), None, None, None, Duration::ZERO, None),
    };
    let mut next_at: Option<tokio::time::Instant> = None;
    let mut produced = 0u64;
    let mut sync_waived = false;
    let mut deliveries: JoinSet<bool> = JoinSet::new();
    let mut events_open = true;
    tokio::pin!(shutdown);
    let outcome: Result<(), AgentError> = loop {
        let synced = lp.machine.as_ref().is_none_or(DeviceShadow::is_synced);
        if !sync_waived
            && !synced
            && sync_deadline.is_some_and(|d| tokio::time::Instant::now() >= d)
        {
            sync_waived = true;
            lp.summary.shadow_error = Some("the shadow was not synced in time".into());
            if producer.is_none() {
                break Ok(());
            }
            tracing::warn!(
                "the shadow was not synced in time; sending telemetry with the device's current state"
            );
        }
        let tele_ready = producer.is_some()
            && !lp.summary.telemetry_done
            && (synced || sync_waived || lp.summary.shadow_rejected);
        if lp.summary.telemetry_done && (lp.machine.is_none() || (!follow && producer.is_some())) {
            break Ok(());
        }
        if lp.machine.is_some()
            && producer.is_none()
            && !follow
            && (synced || lp.summary.shadow_rejected)
        {
            break Ok(());
        }
        let deadline = lp.machine.as_ref().and_then(DeviceShadow::next_deadline);
        let tick_at = deadline.map_or_else(far, tokio::time::Instant::from_std);
        let sync_pending = sync_deadline.is_some() && !synced && !sync_waived;
        let sync_at = sync_deadline.unwrap_or_else(far);
        tokio::select! {
            () = &mut shutdown => {
                lp.summary.interrupted = true;
                break Ok(());
            }
            r = &mut subscribe, if subscribing => {
                subscribing = false;
                if let Err(e) = r {
                    break Err(e.into());
                }
                let actions = lp.machine.as_mut().map(|m| m.start(Instant::now())).unwrap_or_default();
                if let Err(e) = lp.execute(actions).await {
                    break Err(e);
                }
            }
            msg = incoming.recv() => {
                let Some(msg) = msg else {
                    let st = session.status();
                    let why = st.last_error.map(|e| e.to_string()).or(st.ended).unwrap_or_else(|| "closed".into());
                    break Err(AgentError::Ended(why));
                };
                let actions = match lp.machine.as_mut().map(|m| m.on_message(&msg.topic, &msg.payload, Instant::now())) {
                    Some(Ok(a)) => a,
                    Some(Err(e)) => {
                        tracing::warn!("{e}");
                        Vec::new()
                    }
                    None => Vec::new(),
                };
                if let Err(e) = lp.execute(actions).await {
                    break Err(e);
                }
            }
            ev = events.recv(), if events_open => {
                match ev {
                    Ok(SessionEvent::Connected { connection, .. }) if connection > first.connections => {
                        reporter.report(Event::Connected { endpoint: endpoint.clone(), connection });
                        if !subscribing {
                            let actions = lp.machine.as_mut().map(|m| m.on_reconnect(Instant::now())).unwrap_or_default();
                            if let Err(e) = lp.execute(actions).await {
                                break Err(e);
                            }
                        }
                    }
                    Ok(SessionEvent::Disconnected { reason }) => reporter.report(Event::Disconnected { reason }),
                    Ok(SessionEvent::Failed { reason }) => break Err(AgentError::Ended(reason)),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => events_open = false,
                }
            }
            () = tokio::time::sleep_until(tick_at), if deadline.is_some() => {
                let actions = lp.machine.as_mut().map(|m| m.on_tick(Instant::now())).unwrap_or_default();
                if let Err(e) = lp.execute(actions).await {
                    break Err(e);
                }
            }
            () = tokio::time::sleep_until(sync_at), if sync_pending => {}
            Some(done) = deliveries.join_next(), if !deliveries.is_empty() => {
                if done.unwrap_or(false) {
                    lp.summary.events_confirmed += 1;
                }
            }
            item = async {
                if let Some(t) = next_at {
                    tokio::time::sleep_until(t).await;
                }
                match producer.as_mut() {
                    Some(p) => p.next().await,
                    None => None,
                }
            }, if tele_ready => {
                next_at = interval.map(|i| tokio::time::Instant::now() + i);
                produced += 1;
                if count.is_some_and(|c| produced >= c) {
                    lp.summary.telemetry_done = true;
                }
                let input = match item {
                    None => {
                        lp.summary.telemetry_done = true;
                        continue;
                    }
                    Some(Item::Bad(reason)) => {
                        lp.summary.events_refused += 1;
                        reporter.report(Event::Refused { reason });
                        continue;
                    }
                    Some(Item::Input(v)) => v,
                };
                let Some(header) = header.as_ref() else { continue };
                let (env, bytes) = match build_event(header, input, time::OffsetDateTime::now_utc()) {
                    Ok(b) => b,
                    Err(e) => {
                        lp.summary.events_refused += 1;
                        reporter.report(Event::Refused { reason: e.to_string() });
                        continue;
                    }
                };
                if let Some(m) = &lp.machine
                    && let Err(why) = m.gate().check(&env.event_type)
                {
                    lp.summary.events_blocked += 1;
                    reporter.report(Event::Blocked { event_type: env.event_type, reason: why.to_string() });
                    continue;
                }
                match session.publish(Message::new(topic.clone(), bytes)).await {
                    Ok(d) => {
                        lp.summary.events_sent += 1;
                        deliveries.spawn(async move { d.confirmed().await.is_ok() });
                        reporter.report(Event::Sent {
                            n: lp.summary.events_sent,
                            event_type: env.event_type,
                            uuid: env.sender_event_uuid,
                        });
                    }
                    Err(e) => break Err(e.into()),
                }
            }
        }
    };
    if producer.is_some() && !lp.summary.interrupted && outcome.is_ok() {
        tokio::select! {
            _ = session.flush(confirm_timeout) => {}
            () = &mut shutdown => lp.summary.interrupted = true,
        }
    }
    drop(producer);
    let closed = session.close(Duration::from_secs(2)).await;
    while let Some(done) = deliveries.join_next().await {
        if done.unwrap_or(false) {
            lp.summary.events_confirmed += 1;
        }
    }
    outcome?;
    let mut summary = lp.summary;
    summary.unacked = closed.unacked;
    summary.spooled = closed.spooled;
    summary.dropped = closed.dropped;
    summary.shadow_version = lp
        .machine
        .as_ref()
        .and_then(DeviceShadow::version)
        .or(summary.shadow_version);
    summary.elapsed_s = start.elapsed().as_secs_f64();
    Ok(summary)
}
