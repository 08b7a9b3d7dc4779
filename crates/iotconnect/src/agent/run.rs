//! `iotc-send run`: one `select!` loop over shutdown, input, broker messages, the next edge
//! window, session events and finished background work (hooks, OTA downloads, re-syncs, the
//! subscription), all of which live in one `JoinSet`. The device decides; this loop executes.

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
use super::source::Input;
use super::{Agent, AgentError, Event, acked};
use crate::config::Config;
use crate::protocol::device::Action;
use crate::protocol::v1::ack::{AckData, AckKind, status};
use crate::protocol::v1::sync::{SyncData, SyncScope};

/// Makes new session options after a protocol re-sync changed `p`.
pub type Reconnect = Arc<dyn Fn(&SyncData) -> Result<SessionOptions, AgentError> + Send + Sync>;

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
    /// New session options after 0x12.
    pub reconnect: Option<Reconnect>,
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
    Resynced(SyncScope, Box<Result<SyncData, AgentError>>),
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

impl Agent {
    /// Runs until shutdown, the end of the input (`exit_after_input`) or 0x99.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<Input>,
        opts: RunOptions,
        shutdown: impl Future<Output = ()>,
    ) -> Result<RunOutcome, AgentError> {
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let mut events = self.session.events();
        let mut seen_generation = self.generation;
        let mut events_open = true;
        let mut connected = self.session.status().connected;
        if connected {
            self.on_connected(1);
        }
        self.spawn_subscribe(&mut tasks);
        for (k, v) in &opts.twin {
            let out = self.device.twin_report(k, v.clone());
            self.publish(out).await?;
        }
        let mut input_open = true;
        let mut subscribing = true;
        tokio::pin!(shutdown);
        let outcome = loop {
            if self.device.is_barred() {
                break RunOutcome::Barred;
            }
            let busy = tasks.len() > usize::from(subscribing);
            if !input_open
                && opts.exit_after_input
                && !busy
                && self.device.pending_until().is_none()
            {
                break RunOutcome::InputDone;
            }
            if seen_generation != self.generation {
                // A new session after 0x12: its events, its subscriptions.
                seen_generation = self.generation;
                events = self.session.events();
                events_open = true;
                connected = self.session.status().connected;
                subscribing = true;
                self.spawn_subscribe(&mut tasks);
            }
            let wake = self.device.next_wake().map(|m| self.origin + m);
            let actions = tokio::select! {
                () = &mut shutdown => break RunOutcome::Shutdown,
                item = input.recv(), if input_open => match item {
                    Some(Input::Records(r)) => self.device.send_data(&r, self.now(), time::OffsetDateTime::now_utc()),
                    Some(Input::Bad(e)) => vec![Action::Ignored(e.to_string())],
                    Some(Input::Failed(e)) => {
                        input_open = false;
                        vec![Action::Ignored(e)]
                    }
                    None => {
                        input_open = false;
                        Vec::new()
                    }
                },
                msg = self.incoming.recv() => match msg {
                    Some(m) => self.device.on_message(&m.topic, &m.payload),
                    None => return Err(AgentError::Ended(self.session.status().ended.unwrap_or_else(|| "closed".into()))),
                },
                () = sleep_until(wake), if wake.is_some() => self.device.tick(self.now(), time::OffsetDateTime::now_utc()),
                ev = events.recv(), if events_open => match ev {
                    Ok(SessionEvent::Connected { connection, .. }) => {
                        connected = true;
                        self.on_connected(connection);
                        Vec::new()
                    }
                    Ok(SessionEvent::Disconnected { reason }) if connected => {
                        connected = false;
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
                        events_open = false;
                        Vec::new()
                    }
                    _ => Vec::new(),
                },
                Some(done) = tasks.join_next(), if !tasks.is_empty() => match done {
                    Ok(d) => {
                        subscribing &= !matches!(d, Done::Subscribed(_));
                        self.finish(d, &opts).await?
                    }
                    Err(e) => vec![Action::Ignored(format!("background task failed: {e}"))],
                },
            };
            self.execute(actions, &mut tasks, &opts).await?;
        };
        tasks.abort_all();
        let unconfirmed = if outcome == RunOutcome::Barred {
            self.session.close(Duration::from_secs(1)).await;
            0
        } else {
            // Stopped while offline with a disk store: the messages wait there for the next run.
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
        Ok(outcome)
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
                // As the SDK does right after connecting: ask for the whole twin.
                let out = self.device.twin_get();
                self.publish(out).await?;
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
                let Ok(data) = *r else { return Ok(Vec::new()) };
                let old_p = self.device.sync().p.clone();
                self.device.apply_sync(scope, data, self.now())?;
                for w in self.device.take_warnings() {
                    self.reporter.event(Event::Warning { message: w });
                }
                self.reporter.event(Event::Resynced {
                    scope: format!("{scope:?}").to_lowercase(),
                });
                if self.device.sync().p != old_p
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

    async fn execute(
        &mut self,
        actions: Vec<Action>,
        tasks: &mut JoinSet<Done>,
        opts: &RunOptions,
    ) -> Result<(), AgentError> {
        for a in actions {
            match a {
                Action::Publish(out) => {
                    self.publish(out).await?;
                }
                Action::Command { command, raw } => {
                    let ack_id = command.ack_id.clone();
                    self.reporter.event(Event::Command {
                        cmd_type: "0x01".into(),
                        unique_id: command.unique_id.clone(),
                        command: command.command.clone(),
                        ack_id: ack_id.clone(),
                    });
                    let c = call(
                        "0x01",
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
                                    .map(|ack_id| {
                                        (
                                            AckKind::Command,
                                            AckData {
                                                ack_id,
                                                st,
                                                msg: r.msg,
                                                child_id: String::new(),
                                            },
                                        )
                                    })
                                    .into_iter()
                                    .collect();
                                Done::Acks(acks, Vec::new())
                            });
                        }
                        (None, Some(ack_id)) if opts.auto_ack => {
                            let data = AckData {
                                ack_id,
                                st: status::COMMAND_OK,
                                msg: "received".into(),
                                child_id: String::new(),
                            };
                            self.finish(
                                Done::Acks(vec![(AckKind::Command, data)], Vec::new()),
                                opts,
                            )
                            .await?;
                        }
                        (None, _) => {}
                    }
                }
                Action::RuleCommand { unique_id, raw } => {
                    let command = raw
                        .get("command")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    self.reporter.event(Event::Command {
                        cmd_type: "rule".into(),
                        unique_id: unique_id.clone(),
                        command: command.clone(),
                        ack_id: None,
                    });
                    if let Some(hook) = opts.command_hook.clone() {
                        let c = call("rule", &command, &unique_id, "", raw);
                        tasks.spawn(async move {
                            hook.run(&c).await;
                            Done::Nothing
                        });
                    }
                }
                Action::Ota { ota, raw } => {
                    self.reporter.event(Event::Command {
                        cmd_type: "0x02".into(),
                        unique_id: ota.command.unique_id.clone(),
                        command: ota.command.command.clone(),
                        ack_id: ota.command.ack_id.clone(),
                    });
                    let targets = ota::targets(
                        &ota,
                        &self.device.devices(),
                        &self.device.identity().unique_id,
                    );
                    let http = opts.platform.as_ref().map(|(p, _)| p.http.clone());
                    let dir = opts.ota_dir.clone().map(|d| {
                        d.join(ota::safe_name(
                            ota.command.ack_id.as_deref().unwrap_or(&ota.command.guid),
                            "ota",
                        ))
                    });
                    let (hook, max) = (opts.ota_hook.clone(), opts.ota_max_bytes.max(1));
                    let ack_id = ota.command.ack_id.clone();
                    tasks.spawn(async move {
                        let mut acks = Vec::new();
                        let mut files = Vec::new();
                        for t in targets {
                            let result = match (&http, &dir) {
                                (Some(http), Some(dir)) => ota::download(http, dir, &t, max).await,
                                _ => Err("OTA downloads are not enabled (no --ota-dir)".to_owned()),
                            };
                            let (st, msg) = match result {
                                Ok(got) => {
                                    let mut c = call(
                                        "0x02",
                                        "ota",
                                        &t.unique_id,
                                        ack_id.as_deref().unwrap_or(""),
                                        raw.clone(),
                                    );
                                    c.files = got.iter().map(|f| f.path.clone()).collect();
                                    files.extend(got.into_iter().map(|f| (t.unique_id.clone(), f)));
                                    match &hook {
                                        Some(h) => {
                                            let r = h.run(&c).await;
                                            (
                                                if r.ok { status::OTA_OK } else { status::FAILED },
                                                r.msg,
                                            )
                                        }
                                        None => (
                                            status::OTA_OK,
                                            format!("downloaded {} file(s)", c.files.len()),
                                        ),
                                    }
                                }
                                Err(e) => (status::FAILED, e),
                            };
                            if let Some(ack_id) = &ack_id {
                                acks.push((
                                    AckKind::Ota,
                                    AckData {
                                        ack_id: ack_id.clone(),
                                        st,
                                        msg,
                                        child_id: t.child_id,
                                    },
                                ));
                            }
                        }
                        Done::Acks(acks, files)
                    });
                }
                Action::ModuleUpdate(v) => self.reporter.event(Event::Warning {
                    message: format!("0x03 module update received and not acted on: {v}"),
                }),
                Action::Resync(scope) => match &opts.platform {
                    Some((platform, cfg)) => {
                        let (platform, cfg) = (platform.clone(), cfg.clone());
                        tasks.spawn(async move {
                            Done::Resynced(scope, Box::new(platform.sync(&cfg, scope).await))
                        });
                    }
                    None => self.reporter.event(Event::Warning {
                        message: format!(
                            "re-sync of {scope:?} asked for, but no platform connection"
                        ),
                    }),
                },
                Action::DfChanged(df) => self.reporter.event(Event::DfChanged { df: df.as_secs() }),
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
