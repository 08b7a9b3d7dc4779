//! `iotc-send run`, in named steps. Connecting and bootstrapping (discovery, sync, the device
//! state machine, the session) happen before, in `setup`; [`Agent::run`] then reads as
//! **subscribe** (in the background, with the start-up twin report), **serve** (one `select!`
//! over shutdown, input, broker messages, the next edge window, session events and finished
//! background work — hooks, OTA downloads, re-syncs, the subscription — all of which live in one
//! `JoinSet`) and **shut down** (flush or keep the offline store, close, 0x99's clean-up, the
//! summary). The device decides; [`Agent::execute`] performs its actions, one method per kind.
//!
//! The failure policy lives in one place, the serve loop: an error from a step (a publish the
//! session refused, a failed subscription, a re-sync that cannot be applied) ends the run;
//! failures of background work (a hook, a download, a re-sync request) become acknowledgements
//! or warnings and the run goes on.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use transport::session::SessionEvent;
use transport::{Qos, SessionOptions};

use super::bootstrap::Platform;
use super::hook::{Hook, HookCall};
use super::ota::{self, Downloaded};
use super::source::{Catalog, Input};
use super::{Agent, AgentError, Event, acked};
use crate::config::Config;
use crate::protocol::device::Action;
use crate::protocol::v1::ack::{AckData, AckKind, status};
use crate::protocol::v1::sync::{SyncData, SyncScope};

/// Makes new session options after a protocol re-sync changed `p`.
pub type Reconnect = Arc<dyn Fn(&SyncData) -> Result<SessionOptions, AgentError> + Send + Sync>;

/// Told of each message the serve loop published (telemetry, edge aggregates, rule matches) once
/// the broker confirmed it: its kind (`reporting`, `edge`, ...) and the time from publish to
/// confirmation.
pub type Confirmed = Arc<dyn Fn(&str, Duration) + Send + Sync>;

/// How `run` behaves.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Program run for device commands and rule commands.
    pub command_hook: Option<Hook>,
    /// Acknowledge commands with `st` 6 when no hook is set (default on).
    pub auto_ack: bool,
    /// Folder for OTA downloads (`None`: OTAs are acknowledged as failed).
    pub ota_dir: Option<PathBuf>,
    /// Largest OTA file.
    pub ota_max_bytes: u64,
    /// Program run after an OTA's files are downloaded (decides success).
    pub ota_hook: Option<Hook>,
    /// The platform and config, for re-syncs and OTA downloads.
    pub platform: Option<(Platform, Config)>,
    /// Reported properties to send at start (`--twin key=value`).
    pub twin: Vec<(String, Value)>,
    /// Stop when the input ends (after open edge windows close and work finishes).
    pub exit_after_input: bool,
    /// New session options after 0x12, and for credential renewal.
    pub reconnect: Option<Reconnect>,
    /// Reconnect with fresh session options (a new SAS token) this often; `None` for
    /// certificates and for tokens the platform hands out (auth type 1).
    pub renew_credentials: Option<Duration>,
    /// Told the devices and attributes each time they are complete or change (2.1: after the
    /// 201/204 answers and each refresh; 1.0: at start and after a re-sync), for `--simulate`.
    pub catalog: Option<tokio::sync::watch::Sender<Option<Catalog>>>,
    /// Answer desired settings with reported ones (2.1 `run`, as the 2.1 SDK's sample does in
    /// its twin callback); each is checked against the 202 settings first.
    pub answer_desired: bool,
    /// Told of each confirmation (`iot-sim fleet` counts them and times them); `None`: the
    /// confirmations are not awaited one by one.
    pub on_confirmed: Option<Confirmed>,
}

/// Why `run` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Shutdown (Ctrl-C, SIGTERM, or the caller's future).
    Shutdown,
    /// The input ended (`exit_after_input`).
    InputDone,
    /// 0x99: the platform stopped the device; offline data was cleared.
    Barred,
}

enum Done {
    Subscribed(Result<(), transport::session::SubscribeError>),
    Acks(Vec<(AckKind, AckData)>, Vec<(String, Downloaded)>),
    /// A re-sync's answer, with the `provisioned` event when it had to register with DPS.
    Resynced(
        SyncScope,
        Box<Result<(SyncData, Option<Event>), AgentError>>,
    ),
    Nothing,
}

fn call(cmd_type: &str, command: &str, unique_id: &str, ack_id: &str, data: Value) -> HookCall {
    HookCall {
        cmd_type: cmd_type.into(),
        command: command.into(),
        unique_id: unique_id.into(),
        ack_id: ack_id.into(),
        data,
        files: Vec::new(),
    }
}

/// The loop's view of the session, renewed after a 0x12 reconnect.
struct Watch {
    events: tokio::sync::broadcast::Receiver<SessionEvent>,
    events_open: bool,
    connected: bool,
    generation: u64,
    subscribing: bool,
}

impl Agent {
    /// Runs until shutdown, the end of the input (`exit_after_input`) or 0x99.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<Input>,
        opts: RunOptions,
        shutdown: impl Future<Output = ()>,
    ) -> Result<RunOutcome, AgentError> {
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let mut watch = self.subscribe_in_background(&mut tasks, &opts).await?;
        self.tell_catalog(&opts);
        tokio::pin!(shutdown);
        let served = self
            .serve(&mut input, &mut tasks, &mut watch, &opts, shutdown)
            .await;
        tasks.abort_all();
        let outcome = served?;
        let confirming = std::mem::take(&mut self.confirming);
        self.shut_down(outcome).await;
        // The session has flushed and closed: every delivery is settled, confirmed or not.
        let _ = tokio::time::timeout(Duration::from_secs(1), confirming.join_all()).await;
        Ok(outcome)
    }

    /// Reports the first connection, starts the subscription, sends the start-up twin report.
    async fn subscribe_in_background(
        &mut self,
        tasks: &mut JoinSet<Done>,
        opts: &RunOptions,
    ) -> Result<Watch, AgentError> {
        let watch = Watch {
            events: self.session.events(),
            events_open: true,
            connected: self.session.status().connected,
            generation: self.generation,
            subscribing: true,
        };
        if watch.connected {
            self.on_connected(1);
        }
        self.spawn_subscribe(tasks);
        for (k, v) in &opts.twin {
            let out = self.device.twin_report(k, v.clone());
            self.publish(out).await?;
        }
        Ok(watch)
    }

    /// The loop: one event at a time, the device's actions executed after each.
    async fn serve(
        &mut self,
        input: &mut mpsc::Receiver<Input>,
        tasks: &mut JoinSet<Done>,
        w: &mut Watch,
        opts: &RunOptions,
        mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<RunOutcome, AgentError> {
        let mut input_open = true;
        let mut renew = opts
            .renew_credentials
            .map(|d| tokio::time::Instant::now() + d);
        loop {
            if self.device.is_barred() {
                return Ok(RunOutcome::Barred);
            }
            let busy = tasks.len() > usize::from(w.subscribing) || !self.confirming.is_empty();
            if !input_open
                && opts.exit_after_input
                && !busy
                && self.device.pending_until().is_none()
            {
                return Ok(RunOutcome::InputDone);
            }
            if w.generation != self.generation {
                // A new session after 0x12: its events, its subscriptions.
                *w = Watch {
                    events: self.session.events(),
                    events_open: true,
                    connected: self.session.status().connected,
                    generation: self.generation,
                    subscribing: true,
                };
                self.spawn_subscribe(tasks);
            }
            let wake = self.device.next_wake().map(|m| self.origin + m);
            let actions = tokio::select! {
                () = &mut shutdown => return Ok(RunOutcome::Shutdown),
                item = input.recv(), if input_open => self.on_input(item, &mut input_open),
                msg = self.incoming.recv() => match msg {
                    Some(m) => self.device.on_message_at(&m.topic, &m.payload, self.now()),
                    None => return Err(AgentError::Ended(self.session.status().ended.unwrap_or_else(|| "closed".into()))),
                },
                () = sleep_until(wake), if wake.is_some() => self.device.tick(self.now(), time::OffsetDateTime::now_utc()),
                () = sleep_until(renew), if renew.is_some() => {
                    renew = opts.renew_credentials.map(|d| tokio::time::Instant::now() + d);
                    self.renew_credentials(opts).await?
                }
                ev = w.events.recv(), if w.events_open => self.on_session_event(ev, w)?,
                Some(_) = self.confirming.join_next(), if !self.confirming.is_empty() => Vec::new(),
                Some(done) = tasks.join_next(), if !tasks.is_empty() => match done {
                    Ok(d) => {
                        w.subscribing &= !matches!(d, Done::Subscribed(_));
                        self.finish(d, opts).await?
                    }
                    Err(e) => vec![Action::Ignored(format!("background task failed: {e}"))],
                },
            };
            self.execute(actions, tasks, opts).await?;
        }
    }

    /// Hands the devices and attributes to the simulation once the device has them.
    fn tell_catalog(&self, opts: &RunOptions) {
        if let Some(tx) = &opts.catalog
            && !self.device.awaiting_identity()
        {
            let c = Catalog {
                devices: self.device.devices(),
                attributes: self.device.sync().att.clone().unwrap_or_default(),
            };
            tx.send_if_modified(|old| {
                let changed = old.as_ref() != Some(&c);
                *old = Some(c);
                changed
            });
        }
    }

    /// A SAS token signed here expires: a fresh one, and a new session with it (IoT Hub
    /// checks the token at CONNECT only, and drops the connection when it expires).
    async fn renew_credentials(&mut self, opts: &RunOptions) -> Result<Vec<Action>, AgentError> {
        let Some(make) = &opts.reconnect else {
            return Ok(Vec::new());
        };
        let new = make(self.device.sync())?;
        self.reconnect(new).await?;
        self.reporter.event(Event::CredentialsRenewed {
            valid_secs: opts
                .renew_credentials
                .map_or(super::bootstrap::SAS_LIFETIME, |d| d * 6 / 5)
                .as_secs(),
        });
        Ok(Vec::new())
    }

    /// A line of input (records to send), or its end.
    fn on_input(&mut self, item: Option<Input>, open: &mut bool) -> Vec<Action> {
        match item {
            Some(Input::Records(r)) => {
                self.device
                    .send_data(&r, self.now(), time::OffsetDateTime::now_utc())
            }
            Some(Input::Bad(e)) => vec![Action::Ignored(e.to_string())],
            Some(Input::Failed(e)) => {
                *open = false;
                vec![Action::Ignored(e)]
            }
            None => {
                *open = false;
                Vec::new()
            }
        }
    }

    /// Connection changes: reported, and told to the device (connection status messages).
    fn on_session_event(
        &mut self,
        ev: Result<SessionEvent, tokio::sync::broadcast::error::RecvError>,
        w: &mut Watch,
    ) -> Result<Vec<Action>, AgentError> {
        Ok(match ev {
            Ok(SessionEvent::Connected { connection, .. }) => {
                w.connected = true;
                self.on_connected(connection);
                Vec::new()
            }
            Ok(SessionEvent::Disconnected { reason }) if w.connected => {
                w.connected = false;
                self.reporter.event(Event::Disconnected { reason });
                vec![self.device.connection(false)]
            }
            Ok(SessionEvent::Dropped { count }) => {
                self.reporter.event(Event::OfflineFull { count });
                Vec::new()
            }
            Ok(SessionEvent::Failed { reason }) => return Err(AgentError::Ended(reason)),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                // The session is gone; `incoming` ends too and says why.
                w.events_open = false;
                Vec::new()
            }
            _ => Vec::new(),
        })
    }

    /// Flushes (or, offline with a disk store, leaves the messages there for the next run),
    /// closes, clears the offline store after 0x99, and reports the summary.
    async fn shut_down(self, outcome: RunOutcome) {
        let unconfirmed = if outcome == RunOutcome::Barred {
            self.session.close(Duration::from_secs(1)).await;
            0
        } else {
            if outcome == RunOutcome::InputDone
                || self.session.status().connected
                || self.spool.is_none()
            {
                self.session.flush(Duration::from_secs(5)).await;
            }
            self.session.close(Duration::from_secs(2)).await.unacked
        };
        if outcome == RunOutcome::Barred {
            let removed = self.spool.as_ref().map_or(0, |s| clear_dir(&s.dir));
            self.reporter.event(Event::Barred {
                offline_files_removed: removed,
            });
        }
        let c = self.counters;
        self.reporter.event(Event::Summary {
            published: c.published,
            offline: c.offline,
            throttled: c.throttled,
            acks: c.acks,
            unconfirmed,
        });
    }

    fn on_connected(&mut self, connection: u64) {
        self.reporter.event(Event::Connected { connection });
        if let Action::ConnectionStatus(data) = self.device.connection(true) {
            self.reporter.event(Event::ConnectionStatus { data });
        }
    }

    fn spawn_subscribe(&self, tasks: &mut JoinSet<Done>) {
        let filters: Vec<(String, Qos)> = self
            .device
            .subscriptions()
            .into_iter()
            .map(|f| (f, Qos::AtLeastOnce))
            .collect();
        let session = self.session.clone();
        tasks.spawn(async move { Done::Subscribed(session.subscribe(&filters).await) });
    }
    async fn finish(&mut self, done: Done, opts: &RunOptions) -> Result<Vec<Action>, AgentError> {
        match done {
            Done::Subscribed(r) => {
                r?;
                self.reporter.event(Event::Subscribed {
                    filters: self.device.subscriptions(),
                });
                // As the SDK does right after connecting: ask for the whole twin; 2.1 also
                // asks for the lists `has` names (attributes, children, rules...).
                let out = self.device.twin_get();
                self.publish(out).await?;
                for a in self.device.identity_requests() {
                    if let Action::Publish(out) = a {
                        self.publish(out).await?;
                    }
                }
            }
            Done::Acks(acks, files) => {
                for (unique_id, f) in files {
                    self.reporter.event(Event::OtaDownloaded {
                        unique_id,
                        path: f.path.display().to_string(),
                        bytes: f.bytes,
                        sha256: f.sha256,
                    });
                }
                for (kind, data) in acks {
                    let out = self
                        .device
                        .ack(kind, data.clone(), time::OffsetDateTime::now_utc());
                    self.publish(out).await?;
                    self.counters.acks += 1;
                    self.reporter.event(acked(kind, &data));
                }
            }
            Done::Resynced(scope, r) if r.is_ok() => {
                let Ok((data, provisioned)) = *r else {
                    return Ok(Vec::new());
                };
                // A new DPS assignment means a new identity key (and maybe a new hub): the
                // current connection's token was signed with the old one.
                let reassigned = provisioned.is_some();
                if let Some(p) = provisioned {
                    self.reporter.event(p);
                }
                let old_p = self.device.sync().p.clone();
                self.device.apply_sync(scope, data, self.now())?;
                for w in self.device.take_warnings() {
                    self.reporter.event(Event::Warning { message: w });
                }
                self.reporter.event(Event::Resynced {
                    scope: format!("{scope:?}").to_lowercase(),
                });
                self.tell_catalog(opts);
                if (reassigned || self.device.sync().p != old_p)
                    && let Some(make) = &opts.reconnect
                {
                    let new = make(self.device.sync())?;
                    self.reconnect(new).await?;
                }
            }
            Done::Resynced(scope, r) => {
                let e = r.err().map(|e| e.to_string()).unwrap_or_default();
                return Ok(vec![Action::Ignored(format!(
                    "re-sync of {scope:?} failed: {e}"
                ))]);
            }
            Done::Nothing => {}
        }
        Ok(Vec::new())
    }

    /// Performs the device's actions, one method per kind of work.
    async fn execute(
        &mut self,
        actions: Vec<Action>,
        tasks: &mut JoinSet<Done>,
        opts: &RunOptions,
    ) -> Result<(), AgentError> {
        for a in actions {
            match a {
                Action::Publish(out) => {
                    let kind = out.kind.name();
                    let at = tokio::time::Instant::now();
                    let delivery = self.publish(out).await?;
                    if let (Some(d), Some(told)) = (delivery, &opts.on_confirmed) {
                        // Waited for, so that the end of the input waits for it too.
                        let told = told.clone();
                        self.confirming.spawn(async move {
                            if d.confirmed().await.is_ok() {
                                told(kind, at.elapsed());
                            }
                        });
                    }
                }
                Action::Command { command, raw } => {
                    let cmd_type = if self.device.is_v21() { "0" } else { "0x01" };
                    self.on_command(&command, raw, (cmd_type, AckKind::Command), tasks, opts)
                        .await?;
                }
                Action::ModuleCommand { command, raw } => {
                    self.on_command(&command, raw, ("2", AckKind::Module), tasks, opts)
                        .await?;
                }
                Action::Heartbeat(every) => self.reporter.event(Event::Heartbeat {
                    every_secs: every.map(|d| d.as_secs()),
                }),
                Action::Refreshed(scope) => {
                    self.reporter.event(Event::Resynced { scope });
                    self.tell_catalog(opts);
                }
                Action::ChildResult { ct, ec, message } => {
                    self.reporter.event(Event::Child { ct, ec, message });
                }
                Action::RuleCommand { unique_id, raw } => {
                    self.on_rule_command(&unique_id, raw, tasks, opts);
                }
                Action::Ota { ota, raw } => self.on_ota(&ota, raw, tasks, opts).await?,
                Action::ModuleUpdate(v) => self.reporter.event(Event::Warning {
                    message: format!("0x03 module update received and not acted on: {v}"),
                }),
                Action::Resync(scope) => self.on_resync(scope, tasks, opts),
                Action::DfChanged(df) => self.reporter.event(Event::DfChanged { df: df.as_secs() }),
                Action::TwinDesired(twin) if opts.answer_desired => {
                    let answers = self.device.answer_desired(&twin);
                    self.reporter.event(Event::Twin { twin });
                    for a in answers {
                        match a {
                            Action::Publish(out) => {
                                self.publish(out).await?;
                            }
                            Action::Ignored(message) => {
                                self.reporter.event(Event::Warning { message });
                            }
                            _ => {}
                        }
                    }
                }
                Action::TwinDesired(twin) | Action::TwinFull(twin) => {
                    self.reporter.event(Event::Twin { twin });
                }
                Action::ConnectionStatus(data) => {
                    self.reporter.event(Event::ConnectionStatus { data });
                }
                Action::Barred => {}
                Action::Throttled { records, until } => {
                    self.counters.throttled += 1;
                    let retry_in_ms = until.saturating_sub(self.now()).as_millis() as u64;
                    self.reporter.event(Event::Throttled {
                        records,
                        retry_in_ms,
                    });
                }
                Action::Ignored(message) => self.reporter.event(Event::Warning { message }),
            }
        }
        Ok(())
    }

    /// 0x01 (2.1: ct 0, or ct 2 for a module): the hook in the background (its exit status
    /// becomes the ack), or an automatic ack.
    async fn on_command(
        &mut self,
        command: &crate::protocol::v1::c2d::DeviceCommand,
        raw: Value,
        (cmd_type, kind): (&str, AckKind),
        tasks: &mut JoinSet<Done>,
        opts: &RunOptions,
    ) -> Result<(), AgentError> {
        let ack_id = command.ack_id.clone();
        self.reporter.event(Event::Command {
            cmd_type: cmd_type.into(),
            unique_id: command.unique_id.clone(),
            command: command.command.clone(),
            ack_id: ack_id.clone(),
        });
        let c = call(
            cmd_type,
            &command.command,
            &command.unique_id,
            ack_id.as_deref().unwrap_or(""),
            raw,
        );
        match (&opts.command_hook, ack_id) {
            (Some(hook), ack_id) => {
                let hook = hook.clone();
                tasks.spawn(async move {
                    let r = hook.run(&c).await;
                    let st = if r.ok {
                        status::COMMAND_OK
                    } else {
                        status::FAILED
                    };
                    let acks = ack_id
                        .map(|ack_id| (kind, ack(ack_id, st, r.msg, String::new())))
                        .into_iter()
                        .collect();
                    Done::Acks(acks, Vec::new())
                });
            }
            (None, Some(ack_id)) if opts.auto_ack => {
                let data = ack(ack_id, status::COMMAND_OK, "received".into(), String::new());
                self.finish(Done::Acks(vec![(kind, data)], Vec::new()), opts)
                    .await?;
            }
            (None, _) => {}
        }
        Ok(())
    }

    /// An edge rule's command: reported, and the hook run in the background (no ack).
    fn on_rule_command(
        &self,
        unique_id: &str,
        raw: Value,
        tasks: &mut JoinSet<Done>,
        opts: &RunOptions,
    ) {
        let command = raw
            .get("command")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        self.reporter.event(Event::Command {
            cmd_type: "rule".into(),
            unique_id: unique_id.to_owned(),
            command: command.clone(),
            ack_id: None,
        });
        if let Some(hook) = opts.command_hook.clone() {
            let c = call("rule", &command, unique_id, "", raw);
            tasks.spawn(async move {
                hook.run(&c).await;
                Done::Nothing
            });
        }
    }

    /// 0x02 (2.1: ct 1): downloads (and the OTA hook) in the background, one ack per target.
    /// 2.1 first acknowledges "downloading" (`st` 2), as `iotconnect-lib` and the C library do.
    async fn on_ota(
        &mut self,
        ota: &crate::protocol::v1::c2d::OtaCommand,
        raw: Value,
        tasks: &mut JoinSet<Done>,
        opts: &RunOptions,
    ) -> Result<(), AgentError> {
        let v21 = self.device.is_v21();
        self.reporter.event(Event::Command {
            cmd_type: if v21 { "1" } else { "0x02" }.into(),
            unique_id: ota.command.unique_id.clone(),
            command: ota.command.command.clone(),
            ack_id: ota.command.ack_id.clone(),
        });
        if v21 && let Some(ack_id) = &ota.command.ack_id {
            let data = ack(
                ack_id.clone(),
                crate::protocol::v2::d2c::status::OTA_DOWNLOADING,
                "downloading".into(),
                String::new(),
            );
            self.finish(Done::Acks(vec![(AckKind::Ota, data)], Vec::new()), opts)
                .await?;
        }
        let job = OtaJob {
            targets: ota::targets(
                ota,
                &self.device.devices(),
                &self.device.identity().unique_id,
            ),
            http: opts.platform.as_ref().map(|(p, _)| p.http.clone()),
            dir: opts.ota_dir.clone().map(|d| {
                d.join(ota::safe_name(
                    ota.command.ack_id.as_deref().unwrap_or(&ota.command.guid),
                    "ota",
                ))
            }),
            hook: opts.ota_hook.clone(),
            max_bytes: opts.ota_max_bytes.max(1),
            ack_id: ota.command.ack_id.clone(),
            raw,
        };
        tasks.spawn(job.run());
        Ok(())
    }

    /// A re-sync the device asked for, in the background.
    fn on_resync(&self, scope: SyncScope, tasks: &mut JoinSet<Done>, opts: &RunOptions) {
        match &opts.platform {
            Some((platform, cfg)) => {
                let (platform, cfg) = (platform.clone(), cfg.clone());
                tasks.spawn(async move {
                    let r = super::setup::sync_registered(&cfg, &platform, scope).await;
                    Done::Resynced(scope, Box::new(r))
                });
            }
            None => self.reporter.event(Event::Warning {
                message: format!("re-sync of {scope:?} asked for, but no platform connection"),
            }),
        }
    }
}

fn ack(ack_id: String, st: u8, msg: String, child_id: String) -> AckData {
    AckData {
        ack_id,
        st,
        msg,
        child_id,
    }
}

/// One OTA's background work: download each target's files, run the OTA hook, ack each.
struct OtaJob {
    targets: Vec<ota::OtaTarget>,
    http: Option<transport::http::Http>,
    dir: Option<PathBuf>,
    hook: Option<Hook>,
    max_bytes: u64,
    ack_id: Option<String>,
    raw: Value,
}

impl OtaJob {
    async fn run(self) -> Done {
        let mut acks = Vec::new();
        let mut files = Vec::new();
        for t in &self.targets {
            let (st, msg) = match self.download(t).await {
                Ok(got) => {
                    let mut c = call(
                        "0x02",
                        "ota",
                        &t.unique_id,
                        self.ack_id.as_deref().unwrap_or(""),
                        self.raw.clone(),
                    );
                    c.files = got.iter().map(|f| f.path.clone()).collect();
                    files.extend(got.into_iter().map(|f| (t.unique_id.clone(), f)));
                    match &self.hook {
                        Some(h) => {
                            let r = h.run(&c).await;
                            (if r.ok { status::OTA_OK } else { status::FAILED }, r.msg)
                        }
                        None => (
                            status::OTA_OK,
                            format!("downloaded {} file(s)", c.files.len()),
                        ),
                    }
                }
                Err(e) => (status::FAILED, e),
            };
            if let Some(ack_id) = &self.ack_id {
                acks.push((
                    AckKind::Ota,
                    ack(ack_id.clone(), st, msg, t.child_id.clone()),
                ));
            }
        }
        Done::Acks(acks, files)
    }

    async fn download(&self, t: &ota::OtaTarget) -> Result<Vec<Downloaded>, String> {
        match (&self.http, &self.dir) {
            (Some(http), Some(dir)) => ota::download(http, dir, t, self.max_bytes).await,
            _ => Err("OTA downloads are not enabled (no --ota-dir)".to_owned()),
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Removes every file in the offline folder (0x99); returns how many.
fn clear_dir(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.path().is_file() && std::fs::remove_file(e.path()).is_ok())
        .count()
}
