//! The device loop behind `send`, `shadow` and `run`, in named steps: **connect** (one session),
//! **bootstrap** (the shadow machine and the telemetry producer from the plan), **subscribe**
//! (with a shadow, its response topics; SUBACK awaited before `get`), **serve** (one `select!`
//! over incoming shadow messages, the shadow machine's deadline, session events — a reconnect
//! re-gets the shadow —, the next telemetry event, confirmations and shutdown, each handled by a
//! method of its own) and **shut down** (flush, close, count what was confirmed). Telemetry waits
//! for the first sync (or the sync timeout) and every event passes the shadow's gate
//! (`event_publishing_enabled`, `event_type_blacklist`). Telemetry is published at QoS 1, never
//! retained.
//!
//! The failure policy lives in one place, `Loop::serve`: a handler that returns an error ends
//! the run with it; events that cannot be built or are held back by the shadow are counted and
//! reported, and the run goes on.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use transport::session::Incoming;
use transport::session::StartError;
use transport::{Message, Outbox, Outcome, Qos, Session, SessionEvent, SessionOptions, Status};

use crate::agent::telemetry::{Clock, EventHeader, Item, Producer, build_event};
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

/// Whether the run goes on after a step.
enum Flow {
    Continue,
    Stop,
}

/// The telemetry half of a run, once started.
struct Telemetry {
    topic: String,
    header: EventHeader,
    clock: Clock,
    interval: Option<Duration>,
    count: Option<u64>,
    confirm_timeout: Duration,
    producer: Producer,
    /// When the next event may be taken (after `interval`).
    next_at: Option<tokio::time::Instant>,
    produced: u64,
}

struct Loop<'a> {
    session: &'a Session,
    reporter: &'a dyn Reporter,
    endpoint: String,
    first: Status,
    events: broadcast::Receiver<SessionEvent>,
    events_open: bool,
    summary: Summary,
    machine: Option<DeviceShadow>,
    telemetry: Option<Telemetry>,
    /// Each telemetry event's time to its PUBACK (`None`: not confirmed).
    deliveries: JoinSet<Option<Duration>>,
    sync_deadline: Option<tokio::time::Instant>,
    sync_waived: bool,
    subscribing: bool,
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
    tokio::pin!(shutdown);
    // A long-running start waits for the broker as long as it takes; a signal ends the wait.
    let (session, mut incoming) = tokio::select! {
        r = connect(opts, outbox) => r?,
        () = &mut shutdown => {
            return Ok(Summary {
                interrupted: true,
                follow: plan.shadow.as_ref().is_some_and(|s| s.follow),
                elapsed_s: start.elapsed().as_secs_f64(),
                ..Summary::default()
            });
        }
    };
    let mut lp = Loop::bootstrap(&session, reporter, endpoint, &thing, plan)?;
    let outcome = lp.serve(&mut incoming, shutdown.as_mut()).await;
    lp.shut_down(outcome, start, shutdown).await
}

/// Starts the session (it reconnects by itself from here on).
async fn connect(opts: SessionOptions, outbox: Outbox) -> Result<(Session, Incoming), AgentError> {
    Session::start(opts, outbox).await.map_err(|e| match e {
        StartError::Options(o) => AgentError::Options(o),
        other => AgentError::Connect(other),
    })
}

impl<'a> Loop<'a> {
    /// The shadow machine and the telemetry producer from `plan`; reports the first connection.
    fn bootstrap(
        session: &'a Session,
        reporter: &'a dyn Reporter,
        endpoint: String,
        thing: &str,
        plan: Plan,
    ) -> Result<Self, AgentError> {
        let first = session.status();
        if first.connected {
            reporter.report(Event::Connected {
                endpoint: endpoint.clone(),
                connection: first.connections,
            });
        }
        let Plan { shadow, telemetry } = plan;
        let follow = shadow.as_ref().is_some_and(|s| s.follow);
        let machine = match &shadow {
            Some(s) => Some(DeviceShadow::new(
                ShadowTopics::new(thing, None)?,
                s.initial_state.clone(),
                &format!(
                    "{}-{:08x}",
                    thing.chars().take(24).collect::<String>(),
                    fastrand::u32(..)
                ),
                s.config,
            )),
            None => None,
        };
        Ok(Loop {
            session,
            reporter,
            endpoint,
            events: session.events(),
            events_open: true,
            summary: Summary {
                shadow_synced: shadow.as_ref().map(|_| false),
                wants_sync: shadow.as_ref().is_some_and(|s| !s.follow),
                telemetry_done: telemetry.is_none(),
                follow,
                ..Summary::default()
            },
            subscribing: machine.is_some(),
            machine,
            telemetry: telemetry.map(|t| Telemetry {
                topic: t.topic,
                header: t.header,
                clock: Clock::default(),
                interval: t.interval,
                count: t.count,
                confirm_timeout: t.confirm_timeout,
                producer: Producer::new(t.source),
                next_at: None,
                produced: 0,
            }),
            deliveries: JoinSet::new(),
            sync_deadline: shadow
                .as_ref()
                .map(|s| tokio::time::Instant::now() + s.sync_timeout),
            sync_waived: false,
            first,
        })
    }

    /// Subscribes (with a shadow) and serves until the plan is done, the shadow's verdict, a
    /// failure or `shutdown`. Every handler's error ends the run here, and only here.
    async fn serve(
        &mut self,
        incoming: &mut Incoming,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), AgentError> {
        let filters: Vec<(String, Qos)> = self
            .machine
            .as_ref()
            .map(|m| {
                m.subscriptions()
                    .into_iter()
                    .map(|f| (f, Qos::AtLeastOnce))
                    .collect()
            })
            .unwrap_or_default();
        let session = self.session;
        let subscribe = session.subscribe(&filters);
        tokio::pin!(subscribe);
        loop {
            if self.done() {
                return Ok(());
            }
            let synced = self.synced();
            let tele_ready = self.telemetry.is_some()
                && !self.summary.telemetry_done
                && (synced || self.sync_waived || self.summary.shadow_rejected);
            let deadline = self.machine.as_ref().and_then(DeviceShadow::next_deadline);
            let tick_at = deadline.map_or_else(far, tokio::time::Instant::from_std);
            let sync_pending = self.sync_deadline.is_some() && !synced && !self.sync_waived;
            let sync_at = self.sync_deadline.unwrap_or_else(far);
            let next_at = self.telemetry.as_ref().and_then(|t| t.next_at);
            let step = tokio::select! {
                () = &mut shutdown => {
                    self.summary.interrupted = true;
                    Ok(Flow::Stop)
                }
                r = &mut subscribe, if self.subscribing => self.on_subscribed(r).await,
                msg = incoming.recv() => self.on_message(msg).await,
                ev = self.events.recv(), if self.events_open => self.on_session_event(ev).await,
                () = tokio::time::sleep_until(tick_at), if deadline.is_some() => self.on_tick().await,
                () = tokio::time::sleep_until(sync_at), if sync_pending => Ok(Flow::Continue),
                Some(done) = self.deliveries.join_next(), if !self.deliveries.is_empty() => {
                    self.delivered(done.ok().flatten());
                    Ok(Flow::Continue)
                }
                item = next_input(self.telemetry.as_mut(), next_at), if tele_ready => {
                    self.on_input(item).await
                }
            };
            match step {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    fn synced(&self) -> bool {
        self.machine.as_ref().is_none_or(DeviceShadow::is_synced)
    }

    /// Whether the plan is complete; waives the first sync once its deadline passed.
    fn done(&mut self) -> bool {
        let synced = self.synced();
        if !self.sync_waived
            && !synced
            && self
                .sync_deadline
                .is_some_and(|d| tokio::time::Instant::now() >= d)
        {
            self.sync_waived = true;
            self.summary.shadow_error = Some("the shadow was not synced in time".into());
            if self.telemetry.is_none() {
                return true;
            }
            tracing::warn!(
                "the shadow was not synced in time; sending telemetry with the device's current state"
            );
        }
        let has_telemetry = self.telemetry.is_some();
        if self.summary.telemetry_done
            && (self.machine.is_none() || (!self.summary.follow && has_telemetry))
        {
            return true;
        }
        self.machine.is_some()
            && !has_telemetry
            && !self.summary.follow
            && (synced || self.summary.shadow_rejected)
    }

    /// The SUBACK: the shadow machine starts (`get`). When the broker refuses the shadow
    /// topics and there is telemetry to send, the run goes on without the shadow (the HDM
    /// platform's policy granted none), said once.
    async fn on_subscribed(
        &mut self,
        r: Result<(), transport::session::SubscribeError>,
    ) -> Result<Flow, AgentError> {
        self.subscribing = false;
        match r {
            Err(e @ transport::session::SubscribeError::Refused(_)) if self.telemetry.is_some() => {
                self.machine = None;
                self.sync_deadline = None;
                self.summary.shadow_synced = None;
                self.summary.wants_sync = false;
                self.summary.shadow_error = Some(e.to_string());
                self.reporter.report(Event::ShadowUnavailable {
                    reason: e.to_string(),
                });
                return Ok(Flow::Continue);
            }
            r => r?,
        }
        let actions = self
            .machine
            .as_mut()
            .map(|m| m.start(Instant::now()))
            .unwrap_or_default();
        self.execute(actions).await
    }

    /// A shadow response (anything else is the machine's to ignore).
    async fn on_message(&mut self, msg: Option<transport::Received>) -> Result<Flow, AgentError> {
        let Some(msg) = msg else {
            let st = self.session.status();
            let why = st
                .last_error
                .map(|e| e.to_string())
                .or(st.ended)
                .unwrap_or_else(|| "closed".into());
            return Err(AgentError::Ended(why));
        };
        let actions = match self
            .machine
            .as_mut()
            .map(|m| m.on_message(&msg.topic, &msg.payload, Instant::now()))
        {
            Some(Ok(a)) => a,
            Some(Err(e)) => {
                tracing::warn!("{e}");
                Vec::new()
            }
            None => Vec::new(),
        };
        self.execute(actions).await
    }

    /// Connection changes: a reconnect re-gets the shadow; a permanent failure ends the run.
    async fn on_session_event(
        &mut self,
        ev: Result<SessionEvent, broadcast::error::RecvError>,
    ) -> Result<Flow, AgentError> {
        match ev {
            Ok(SessionEvent::Connected { connection, .. })
                if connection > self.first.connections =>
            {
                self.reporter.report(Event::Connected {
                    endpoint: self.endpoint.clone(),
                    connection,
                });
                if !self.subscribing {
                    let actions = self
                        .machine
                        .as_mut()
                        .map(|m| m.on_reconnect(Instant::now()))
                        .unwrap_or_default();
                    return self.execute(actions).await;
                }
            }
            Ok(SessionEvent::Disconnected { reason }) => {
                self.reporter.report(Event::Disconnected { reason });
            }
            Ok(SessionEvent::Failed { reason }) => return Err(AgentError::Ended(reason)),
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => self.events_open = false,
        }
        Ok(Flow::Continue)
    }

    /// The shadow machine's deadline.
    async fn on_tick(&mut self) -> Result<Flow, AgentError> {
        let actions = self
            .machine
            .as_mut()
            .map(|m| m.on_tick(Instant::now()))
            .unwrap_or_default();
        self.execute(actions).await
    }

    /// One telemetry input: built, gated by the shadow, published.
    async fn on_input(&mut self, item: Option<Item>) -> Result<Flow, AgentError> {
        let Some(t) = self.telemetry.as_mut() else {
            return Ok(Flow::Continue);
        };
        t.next_at = t.interval.map(|i| tokio::time::Instant::now() + i);
        t.produced += 1;
        if t.count.is_some_and(|c| t.produced >= c) {
            self.summary.telemetry_done = true;
        }
        let input = match item {
            None => {
                self.summary.telemetry_done = true;
                return Ok(Flow::Continue);
            }
            Some(Item::Bad(reason)) => {
                self.refused(reason);
                return Ok(Flow::Continue);
            }
            Some(Item::Input(v)) => v,
        };
        let now = t.clock.next(time::OffsetDateTime::now_utc());
        let built = match build_event(&t.header, input, now) {
            Ok(b) => b,
            Err(e) => {
                self.refused(e.to_string());
                return Ok(Flow::Continue);
            }
        };
        if let Some(m) = &self.machine
            && let Err(why) = m.gate().check(&built.event_type)
        {
            self.summary.events_blocked += 1;
            self.reporter.report(Event::Blocked {
                event_type: built.event_type,
                reason: why.to_string(),
            });
            return Ok(Flow::Continue);
        }
        let d = self
            .session
            .publish(Message::new(t.topic.clone(), built.bytes))
            .await?;
        self.summary.events_sent += 1;
        let at = Instant::now();
        self.deliveries
            .spawn(async move { d.confirmed().await.ok().map(|()| at.elapsed()) });
        self.reporter.report(Event::Sent {
            n: self.summary.events_sent,
            event_type: built.event_type,
            uuid: built.uuid,
        });
        Ok(Flow::Continue)
    }

    fn delivered(&mut self, latency: Option<Duration>) {
        if let Some(l) = latency {
            self.summary.events_confirmed += 1;
            self.reporter.confirmed(l);
        }
    }

    fn refused(&mut self, reason: String) {
        self.summary.events_refused += 1;
        self.reporter.report(Event::Refused { reason });
    }

    /// Performs the shadow machine's actions.
    async fn execute(&mut self, actions: Vec<Action>) -> Result<Flow, AgentError> {
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
        Ok(Flow::Continue)
    }

    /// Waits for the last confirmations (unless interrupted or failed; `shutdown` cuts the
    /// wait short), disconnects and completes the summary.
    async fn shut_down(
        mut self,
        outcome: Result<(), AgentError>,
        start: Instant,
        shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<Summary, AgentError> {
        if let Some(t) = &self.telemetry
            && !self.summary.interrupted
            && outcome.is_ok()
        {
            tokio::select! {
                _ = self.session.flush(t.confirm_timeout) => {}
                () = shutdown => self.summary.interrupted = true,
            }
        }
        self.telemetry = None;
        let closed = self.session.close(Duration::from_secs(2)).await;
        while let Some(done) = self.deliveries.join_next().await {
            self.delivered(done.ok().flatten());
        }
        outcome?;
        let mut summary = self.summary;
        summary.unacked = closed.unacked;
        summary.spooled = closed.spooled;
        summary.dropped = closed.dropped;
        summary.shadow_version = self
            .machine
            .as_ref()
            .and_then(DeviceShadow::version)
            .or(summary.shadow_version);
        summary.elapsed_s = start.elapsed().as_secs_f64();
        Ok(summary)
    }
}

/// Waits out `next_at`, then takes the next input (`None` when the source ended).
async fn next_input(
    telemetry: Option<&mut Telemetry>,
    next_at: Option<tokio::time::Instant>,
) -> Option<Item> {
    if let Some(t) = next_at {
        tokio::time::sleep_until(t).await;
    }
    match telemetry {
        Some(t) => t.producer.next().await,
        None => None,
    }
}
