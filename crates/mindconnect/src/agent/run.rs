//! `mc-agent run`: the sample's agent, done right. Connects with a persistent session and
//! keep-alive 60, subscribes before publishing, then drives the protocol's state machine: it
//! performs what the machine decides (instantiate once, timeseries once instantiated, events,
//! files, the token and its refresh, datalake uploads, commands) and feeds it what arrives and
//! what finished. Ends on the machine's verdict (`--count`, `--duration`, `Failed`, no answer)
//! or on the shutdown future; then waits a bounded time for confirmations and disconnects.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use transport::{Message, Outbox, Qos, Session};

use crate::config::Settings;
use crate::protocol::command::ExecStatus;
use crate::protocol::envelope::encode;
use crate::protocol::machine::{Action, Finish, InstanceRequest, Machine, Note, Plan, Task};
use crate::protocol::template::Kind;
use crate::protocol::topic::Channel;
use crate::templates::TemplateDir;

use super::commands::CommandRunner;
use super::datalake::Datalake;
use super::source::{Next, ValueSource, Values, datalake_object, event_payload, file_payload};
use super::{
    AgentError, Event, Reporter, connect, instance_created, mark_instance_created, request_id,
    subscribe,
};

/// Everything `run` needs.
pub struct RunOptions {
    /// Resolved configuration.
    pub settings: Settings,
    /// The templates.
    pub templates: TemplateDir,
    /// `instance.conf`.
    pub instance_conf: PathBuf,
    /// Intervals and limits.
    pub plan: Plan,
    /// Timeseries values.
    pub values: ValueSource,
    /// File for the file task (default: the sample's execution log).
    pub file: Option<PathBuf>,
    /// File for the datalake task (default: a generated `sensor-map-<time>.obj`).
    pub datalake_file: Option<PathBuf>,
    /// Command type → program.
    pub hooks: BTreeMap<String, String>,
    /// Longest a hook may run.
    pub hook_timeout: Duration,
    /// The limits hooks run in (`--hook-concurrency`, `--hook-env`).
    pub hook_runner: hook::Runner,
    /// QoS of every publish.
    pub qos: Qos,
    /// Memory or disk outbox.
    pub outbox: Outbox,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Timeseries messages sent.
    pub timeseries: u64,
    /// Event messages sent.
    pub events: u64,
    /// Files sent.
    pub files: u64,
    /// Datalake uploads.
    pub datalake: u64,
    /// Commands answered.
    pub commands: u64,
    /// Publishes not confirmed at the end.
    pub unconfirmed: u64,
}

enum Done {
    Upload(Result<(String, usize), AgentError>),
    Command(Result<ExecStatus, AgentError>),
}

struct Confirmed {
    what: &'static str,
    topic: String,
    bytes: usize,
    ok: bool,
}

struct Driver {
    settings: Settings,
    session: Session,
    qos: Qos,
    report: Reporter,
    confirms: JoinSet<Confirmed>,
    work: JoinSet<Done>,
    token: Option<String>,
    summary: RunSummary,
    first_error: Option<AgentError>,
}

impl Driver {
    async fn publish(
        &mut self,
        channel: Channel,
        payload: Vec<u8>,
        what: &'static str,
    ) -> Result<(), AgentError> {
        let topic = self.settings.topics.topic(channel);
        let bytes = payload.len();
        let d = self
            .session
            .publish(Message::new(topic.clone(), payload).with_qos(self.qos))
            .await
            .map_err(|source| AgentError::Publish {
                what,
                topic: topic.clone(),
                source,
            })?;
        self.confirms.spawn(async move {
            Confirmed {
                what,
                topic,
                bytes,
                ok: d.confirmed().await.is_ok(),
            }
        });
        Ok(())
    }

    fn failed(&mut self, e: AgentError) {
        (self.report)(&Event::Warning {
            message: e.to_string(),
        });
        self.first_error.get_or_insert(e);
    }

    fn note(&self, n: Note) {
        let r = &self.report;
        let topics = &self.settings.topics;
        match n {
            Note::InstanceRequested { request_id } => r(&Event::Requested {
                what: "instantiation".into(),
                request_id,
                topic: topics.topic(Channel::Instantiate),
            }),
            Note::TokenRequested { request_id } => r(&Event::Requested {
                what: "agent token".into(),
                request_id,
                topic: topics.topic(Channel::TokenRequest),
            }),
            Note::InstanceProgress { message } => r(&Event::Progress {
                what: "instantiation".into(),
                message,
            }),
            Note::InstanceExists => {}
            Note::Ignored { topic, reason } => {
                tracing::debug!("ignored a message on {topic}: {reason}");
            }
            Note::Undecodable { topic, error } => r(&Event::Warning {
                message: format!("{error} (on {topic})"),
            }),
        }
    }
}

fn now_utc() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// Runs the agent until the plan's limits, a platform verdict, or `shutdown`.
pub async fn run(
    opts: RunOptions,
    shutdown: impl Future<Output = ()>,
    report: Reporter,
) -> Result<RunSummary, AgentError> {
    let RunOptions {
        settings,
        templates,
        instance_conf,
        plan,
        values: source,
        file,
        datalake_file,
        hooks,
        hook_timeout,
        hook_runner,
        qos,
        outbox,
    } = opts;
    let timeout = plan.answer_timeout;
    let enabled = |t: Task| plan.intervals.contains_key(&t);
    let instance = if instance_created(&instance_conf) {
        report(&Event::InstanceExists {
            path: instance_conf.display().to_string(),
        });
        None
    } else {
        let p = super::model::prepare_instance(&settings, &templates.load(Kind::Instance)?)?;
        Some(InstanceRequest {
            id: p.request_id,
            payload: encode(&p.payload),
        })
    };
    let mut values = if enabled(Task::Timeseries) {
        let t = if source == ValueSource::Simulated {
            Some(templates.load(Kind::Timeseries)?)
        } else {
            None
        };
        Some(Values::open(&source, t)?)
    } else {
        None
    };
    let event_template = if enabled(Task::Event) {
        Some(templates.load(Kind::Event)?)
    } else {
        None
    };
    if enabled(Task::File) {
        file_payload(file.as_deref(), &settings.topics, now_utc())?;
    }
    let datalake = if enabled(Task::Datalake) {
        Some(Arc::new(Datalake::new(&settings, timeout)?))
    } else {
        None
    };
    let dl_bytes = match &datalake_file {
        Some(p) if datalake.is_some() => Some(std::fs::read(p).map_err(|e| {
            AgentError::Input(format!(
                "cannot read the datalake file `{}`: {e}",
                p.display()
            ))
        })?),
        _ => None,
    };

    let (session, mut incoming) = connect(&settings, true, outbox, &report).await?;
    subscribe(&session, &settings, &Channel::AGENT_SUBSCRIPTIONS, &report).await?;
    let runner = CommandRunner {
        session: session.clone(),
        topics: settings.topics.clone(),
        hooks: Arc::new(hooks),
        hook_timeout,
        hook_runner,
        qos,
        report: report.clone(),
    };
    let mut machine = Machine::new(
        settings.topics.clone(),
        plan,
        instance,
        Box::new(request_id),
    );
    let mut d = Driver {
        settings,
        session,
        qos,
        report: report.clone(),
        confirms: JoinSet::new(),
        work: JoinSet::new(),
        token: None,
        summary: RunSummary::default(),
        first_error: None,
    };
    let mut actions: VecDeque<Action> = machine.start(Instant::now()).into();
    let mut ts_waiting = false;
    let mut outcome: Option<Result<(), AgentError>> = None;
    tokio::pin!(shutdown);
    while outcome.is_none() {
        while let Some(a) = actions.pop_front() {
            let more = match a {
                Action::Publish { channel, payload } => {
                    let what = if channel == Channel::Instantiate {
                        "instantiation"
                    } else {
                        "token request"
                    };
                    if let Err(e) = d.publish(channel, payload, what).await {
                        outcome = Some(Err(e));
                    }
                    Vec::new()
                }
                Action::Run(Task::Timeseries) => match values.as_mut().map(|v| v.next(now_utc())) {
                    Some(Ok(Next::Ready(m))) => match d
                        .publish(Channel::Timeseries, encode(&m), "timeseries")
                        .await
                    {
                        Ok(()) => {
                            d.summary.timeseries += 1;
                            machine.task_done(Task::Timeseries, Instant::now())
                        }
                        Err(e) => {
                            outcome = Some(Err(e));
                            Vec::new()
                        }
                    },
                    Some(Ok(Next::Pending)) => {
                        ts_waiting = true;
                        Vec::new()
                    }
                    Some(Err(e)) => {
                        outcome = Some(Err(e));
                        Vec::new()
                    }
                    Some(Ok(Next::Exhausted)) | None => {
                        machine.task_exhausted(Task::Timeseries, Instant::now())
                    }
                },
                Action::Run(Task::Event) => {
                    let r = match &event_template {
                        Some(t) => event_payload(t, now_utc()),
                        None => Err(AgentError::Input("no event template".into())),
                    };
                    match r {
                        Ok(p) => match d.publish(Channel::Event, p, "event").await {
                            Ok(()) => {
                                d.summary.events += 1;
                                machine.task_done(Task::Event, Instant::now())
                            }
                            Err(e) => {
                                outcome = Some(Err(e));
                                Vec::new()
                            }
                        },
                        Err(e) => {
                            outcome = Some(Err(e));
                            Vec::new()
                        }
                    }
                }
                Action::Run(Task::File) => {
                    let r = file_payload(file.as_deref(), &d.settings.topics, now_utc());
                    match r {
                        Ok(m) => match d.publish(Channel::File, encode(&m), "file").await {
                            Ok(()) => {
                                d.summary.files += 1;
                                machine.task_done(Task::File, Instant::now())
                            }
                            Err(e) => {
                                outcome = Some(Err(e));
                                Vec::new()
                            }
                        },
                        Err(e) => {
                            d.failed(e);
                            machine.task_done(Task::File, Instant::now())
                        }
                    }
                }
                Action::Run(Task::Datalake) => {
                    if let (Some(dl), Some(token)) = (datalake.clone(), d.token.clone()) {
                        let given = datalake_file.as_deref().zip(dl_bytes.as_deref());
                        let (name, bytes) = datalake_object(given, now_utc());
                        d.work.spawn(async move {
                            let size = bytes.len();
                            Done::Upload(dl.upload(&token, &name, bytes).await.map(|p| (p, size)))
                        });
                        Vec::new()
                    } else {
                        machine.task_done(Task::Datalake, Instant::now())
                    }
                }
                Action::InstanceCreated => {
                    match mark_instance_created(&instance_conf) {
                        Ok(()) => report(&Event::InstanceCreated {
                            path: instance_conf.display().to_string(),
                        }),
                        Err(e) => outcome = Some(Err(e)),
                    }
                    Vec::new()
                }
                Action::Token(t) => {
                    report(&Event::TokenReceived {
                        expires_in: t.lifetime().as_secs(),
                        refresh_in: t.refresh_after().as_secs(),
                    });
                    d.token = Some(t.access_token);
                    Vec::new()
                }
                Action::Command(c) => {
                    let r = runner.clone();
                    d.work
                        .spawn(async move { Done::Command(r.execute(c).await) });
                    Vec::new()
                }
                Action::Note(n) => {
                    d.note(n);
                    Vec::new()
                }
                Action::Finish(f) => {
                    outcome = Some(match f {
                        Finish::Done => Ok(()),
                        Finish::Rejected {
                            what,
                            errors,
                            message,
                        } => Err(AgentError::Rejected {
                            what,
                            errors,
                            message,
                        }),
                        Finish::NoAnswer {
                            what,
                            topic,
                            waited,
                        } => Err(AgentError::NoAnswer {
                            what,
                            topic,
                            waited,
                        }),
                    });
                    Vec::new()
                }
            };
            actions.extend(more);
        }
        if outcome.is_some() {
            break;
        }
        let wake = machine.next_wake().map(tokio::time::Instant::from_std);
        tokio::select! {
            () = &mut shutdown => outcome = Some(Ok(())),
            m = incoming.recv() => match m {
                Some(m) => actions.extend(machine.on_message(&m.topic, &m.payload, Instant::now())),
                None => outcome = Some(Err(AgentError::Ended(d.session.status().ended.unwrap_or_else(|| "closed".into())))),
            },
            () = tokio::time::sleep_until(wake.unwrap_or_else(tokio::time::Instant::now)), if wake.is_some() => actions.extend(machine.poll(Instant::now())),
            Some(done) = d.work.join_next(), if !d.work.is_empty() => match done {
                Ok(Done::Upload(Ok((path, bytes)))) => {
                    report(&Event::Uploaded { path, bytes });
                    d.summary.datalake += 1;
                    actions.extend(machine.task_done(Task::Datalake, Instant::now()));
                }
                Ok(Done::Upload(Err(e))) => {
                    d.failed(e);
                    actions.extend(machine.task_done(Task::Datalake, Instant::now()));
                }
                Ok(Done::Command(r)) => {
                    match r {
                        Ok(_) => d.summary.commands += 1,
                        Err(e) => d.failed(e),
                    }
                    actions.extend(machine.command_done(Instant::now()));
                }
                Err(e) => d.failed(AgentError::Ended(format!("an agent task stopped: {e}"))),
            },
            Some(Ok(c)) = d.confirms.join_next(), if !d.confirms.is_empty() => {
                if c.ok {
                    report(&Event::Published { what: c.what.into(), topic: c.topic, bytes: c.bytes });
                }
            }
            () = async { if let Some(v) = values.as_mut() { v.wait().await } else { std::future::pending().await } }, if ts_waiting => {
                ts_waiting = false;
                actions.push_back(Action::Run(Task::Timeseries));
            }
        }
    }
    finish(d, outcome.unwrap_or(Ok(())), timeout).await
}

async fn finish(
    mut d: Driver,
    outcome: Result<(), AgentError>,
    timeout: Duration,
) -> Result<RunSummary, AgentError> {
    let deadline = tokio::time::Instant::now() + timeout;
    while let Ok(Some(done)) = tokio::time::timeout_at(deadline, d.work.join_next()).await {
        match done {
            Ok(Done::Command(Ok(_))) => d.summary.commands += 1,
            Ok(Done::Upload(Ok((path, bytes)))) => {
                (d.report)(&Event::Uploaded { path, bytes });
                d.summary.datalake += 1;
            }
            Ok(Done::Command(Err(e)) | Done::Upload(Err(e))) => d.failed(e),
            Err(_) => {}
        }
    }
    d.work.abort_all();
    d.summary.unconfirmed = d.session.flush(timeout).await;
    d.session.close(Duration::from_secs(2)).await;
    while let Some(c) = d.confirms.join_next().await {
        if let Ok(c) = c
            && c.ok
        {
            (d.report)(&Event::Published {
                what: c.what.into(),
                topic: c.topic,
                bytes: c.bytes,
            });
        }
    }
    let s = d.summary.clone();
    (d.report)(&Event::Summary {
        timeseries: s.timeseries,
        events: s.events,
        files: s.files,
        datalake: s.datalake,
        commands: s.commands,
        unconfirmed: s.unconfirmed,
    });
    outcome?;
    if let Some(e) = d.first_error {
        return Err(e);
    }
    if s.unconfirmed > 0 {
        return Err(AgentError::Unconfirmed(s.unconfirmed));
    }
    Ok(s)
}
