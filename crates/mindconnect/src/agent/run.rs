//! `mc-agent run`: the sample's agent, done right, in named steps. [`run`] reads as them:
//! **bootstrap** (local inputs: the instance request unless `instance.conf` says CREATED,
//! values, templates, files), **connect** (persistent session, keep-alive 60), **subscribe**
//! (before anything is published), **serve** (drive the protocol's state machine: perform what
//! it decides — instantiate once, timeseries once instantiated, events, files, the token and its
//! refresh, datalake uploads, commands — and feed it what arrives and what finished) and
//! **shut down** (wait a bounded time for work and confirmations, disconnect, report). Serving
//! ends on the machine's verdict (`--count`, `--duration`, `Failed`, no answer) or on the
//! shutdown future.
//!
//! The failure policy lives in one place, `Driver::settle`: a failure of a periodic task that
//! can be retried on its next turn (a file that cannot be read, a datalake upload, a command) is
//! reported and remembered, and the run goes on; anything else (a publish the session refused,
//! unusable values, `instance.conf` not writable) ends the run with that error.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use transport::session::Incoming;
use transport::{Message, Outbox, Qos, Session};

use crate::config::Settings;
use crate::protocol::command::ExecStatus;
use crate::protocol::envelope::encode;
use crate::protocol::machine::{Action, Finish, InstanceRequest, Machine, Note, Plan, Task};
use crate::protocol::template::{Kind, Template};
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
    /// `instance.conf`; `None` keeps the instance state in memory for this run only (a fleet's
    /// simulated devices each start uninstantiated and write no file).
    pub instance_conf: Option<PathBuf>,
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
    /// The asset already exists (made in Asset Manager, or by another tool): write
    /// `instance.conf` as `CREATED` instead of asking the platform to instantiate the model.
    pub assume_instantiated: bool,
    /// v4 model synchronisation instead of the v3 instantiation (`agent.ini` exists): the
    /// model is synchronised after subscribing and before the tasks start; `instance.conf` is
    /// neither read nor written.
    pub model_sync: Option<super::sync::SyncOptions>,
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
    /// From the publish to its confirmation.
    latency: Duration,
}

/// What a step decided about the run.
enum Flow {
    /// Go on with these actions.
    Continue(Vec<Action>),
    /// End the run with this outcome.
    Stop(Result<(), AgentError>),
}

/// How much a failure matters (see the module's failure policy).
#[derive(Clone, Copy)]
enum Severity {
    /// The task is retried on its next turn: report it, keep the first for the exit code.
    Retry,
    /// The run cannot go on.
    Fatal,
}

/// The local inputs the tasks use, read once before connecting.
struct Inputs {
    instance: Option<InstanceRequest>,
    values: Option<Values>,
    event_template: Option<Template>,
    file: Option<PathBuf>,
    datalake: Option<Arc<Datalake>>,
    datalake_file: Option<(PathBuf, Vec<u8>)>,
}

struct Driver {
    settings: Settings,
    session: Session,
    qos: Qos,
    report: Reporter,
    inputs: Inputs,
    instance_conf: Option<PathBuf>,
    commands: CommandRunner,
    confirms: JoinSet<Confirmed>,
    work: JoinSet<Done>,
    token: Option<String>,
    summary: RunSummary,
    first_error: Option<AgentError>,
    /// The value source had nothing yet; the timeseries task runs again once it has.
    values_pending: bool,
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
    let timeout = opts.plan.answer_timeout;
    let inputs = bootstrap(&opts, &report)?;
    let (session, mut incoming) = connect(&opts.settings, true, opts.outbox, &report).await?;
    let mut channels = Channel::AGENT_SUBSCRIPTIONS.to_vec();
    if opts.model_sync.is_some() {
        channels.extend(Channel::V4_SUBSCRIPTIONS);
    }
    subscribe(&session, &opts.settings, &channels, &report).await?;
    let mut machine = Machine::new(
        opts.settings.topics.clone(),
        opts.plan,
        inputs.instance.clone(),
        Box::new(request_id),
    );
    let mut early = Vec::new();
    if let Some(sync) = &opts.model_sync {
        let synced = super::sync::sync_on(
            &session,
            &mut incoming,
            &opts.settings,
            sync,
            &report,
            &mut early,
        )
        .await;
        if let Err(e) = synced {
            // Like a refused v3 instantiation: reported, timeseries held back (the platform
            // has no mapping for them), the rest goes on, and the next start tries again.
            let (errors, message) = match e {
                AgentError::Rejected {
                    errors, message, ..
                } => (errors, message),
                other => (
                    vec![crate::protocol::model::JobError {
                        code: None,
                        message: other.to_string(),
                    }],
                    None,
                ),
            };
            let refused = AgentError::Rejected {
                what: "model synchronisation",
                errors: errors.clone(),
                message: message.clone(),
            };
            report(&Event::Warning {
                message: format!(
                    "{refused}; timeseries are held back, events, files and commands go on, and the next start tries again"
                ),
            });
            machine.refuse_instance("model synchronisation", errors, message);
        }
    }
    let mut d = Driver {
        commands: CommandRunner {
            session: session.clone(),
            topics: opts.settings.topics.clone(),
            hooks: Arc::new(opts.hooks),
            hook_timeout: opts.hook_timeout,
            hook_runner: opts.hook_runner,
            qos: opts.qos,
            report: report.clone(),
        },
        settings: opts.settings,
        session,
        qos: opts.qos,
        report,
        inputs,
        instance_conf: opts.instance_conf,
        confirms: JoinSet::new(),
        work: JoinSet::new(),
        token: None,
        summary: RunSummary::default(),
        first_error: None,
        values_pending: false,
    };
    let outcome = d.serve(&mut machine, incoming, early, shutdown).await;
    d.shut_down(outcome, timeout).await
}

/// Reads every local input the enabled tasks need, so a missing template or file fails
/// before connecting; the instance request only while `instance.conf` does not say CREATED.
fn bootstrap(opts: &RunOptions, report: &Reporter) -> Result<Inputs, AgentError> {
    let enabled = |t: Task| opts.plan.intervals.contains_key(&t);
    if let Some(topic) = &opts.settings.file.custom_topic {
        report(&Event::Warning {
            message: format!(
                "USE_CUSTOM_TIMESERIES is \"True\": `mc-agent run` still sends standard mc_v3 timeseries; publish custom data to `{topic}` with `mc-agent custom`"
            ),
        });
    }
    let conf = opts.instance_conf.as_deref();
    if let Some(conf) = conf
        && opts.assume_instantiated
        && !instance_created(conf)
    {
        mark_instance_created(conf)?;
    }
    let created = opts.assume_instantiated || conf.is_some_and(instance_created);
    let instance = if opts.model_sync.is_some() {
        None
    } else if created {
        report(&Event::InstanceExists {
            path: conf.map_or_else(|| "(memory)".into(), |c| c.display().to_string()),
        });
        None
    } else {
        let template = opts.templates.load(Kind::Instance)?;
        let p = super::model::prepare_instance(&opts.settings, &template)?;
        Some(InstanceRequest {
            id: p.request_id,
            payload: encode(&p.payload),
        })
    };
    let values = if enabled(Task::Timeseries) {
        let t = if opts.values == ValueSource::Simulated {
            Some(opts.templates.load(Kind::Timeseries)?)
        } else {
            None
        };
        Some(Values::open(&opts.values, t)?)
    } else {
        None
    };
    let event_template = if enabled(Task::Event) {
        Some(opts.templates.load(Kind::Event)?)
    } else {
        None
    };
    if enabled(Task::File) {
        file_payload(
            opts.file.as_deref(),
            &opts.settings.topics,
            opts.settings.max_message_bytes,
            now_utc(),
        )?;
    }
    let datalake = if enabled(Task::Datalake) {
        let timeout = opts.plan.answer_timeout;
        Some(Arc::new(Datalake::new(&opts.settings, timeout)?))
    } else {
        None
    };
    let datalake_file = match &opts.datalake_file {
        Some(p) if datalake.is_some() => {
            let bytes = std::fs::read(p).map_err(|e| {
                AgentError::Input(format!(
                    "cannot read the datalake file `{}`: {e}",
                    p.display()
                ))
            })?;
            Some((p.clone(), bytes))
        }
        _ => None,
    };
    Ok(Inputs {
        instance,
        values,
        event_template,
        file: opts.file.clone(),
        datalake,
        datalake_file,
    })
}

/// Resolves when the value source has a value again (never without one).
async fn wait_values(values: Option<&mut Values>) {
    match values {
        Some(v) => v.wait().await,
        None => std::future::pending().await,
    }
}

/// The run's end as the machine decided it.
fn verdict(f: Finish) -> Result<(), AgentError> {
    match f {
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
    }
}

impl Driver {
    /// Performs what the machine decides and feeds it what happens, until it (or `shutdown`)
    /// ends the run.
    async fn serve(
        &mut self,
        machine: &mut Machine,
        mut incoming: Incoming,
        early: Vec<transport::Received>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), AgentError> {
        let mut actions: VecDeque<Action> = machine.start(Instant::now()).into();
        // What arrived while the model was being synchronised (a command, the token answer).
        for m in early {
            actions.extend(machine.on_message(&m.topic, &m.payload, Instant::now()));
        }
        tokio::pin!(shutdown);
        loop {
            while let Some(a) = actions.pop_front() {
                match self.perform(a, machine).await {
                    Flow::Continue(more) => actions.extend(more),
                    Flow::Stop(outcome) => return outcome,
                }
            }
            let wake = machine.next_wake().map(tokio::time::Instant::from_std);
            let values_pending = self.values_pending;
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                m = incoming.recv() => {
                    let Some(m) = m else {
                        let why = self.session.status().ended.unwrap_or_else(|| "closed".into());
                        return Err(AgentError::Ended(why));
                    };
                    actions.extend(machine.on_message(&m.topic, &m.payload, Instant::now()));
                }
                () = tokio::time::sleep_until(wake.unwrap_or_else(tokio::time::Instant::now)), if wake.is_some() => {
                    actions.extend(machine.poll(Instant::now()));
                }
                Some(done) = self.work.join_next(), if !self.work.is_empty() => {
                    actions.extend(self.finished(done, machine));
                }
                Some(Ok(c)) = self.confirms.join_next(), if !self.confirms.is_empty() => self.confirmed(c),
                () = wait_values(self.inputs.values.as_mut()), if values_pending => {
                    self.values_pending = false;
                    actions.push_back(Action::Run(Task::Timeseries));
                }
            }
        }
    }

    /// One action of the machine.
    async fn perform(&mut self, action: Action, machine: &mut Machine) -> Flow {
        match action {
            Action::Publish { channel, payload } => {
                let what = if channel == Channel::Instantiate {
                    "instantiation"
                } else {
                    "token request"
                };
                let sent = self.publish(channel, payload, what).await;
                self.settle(sent, Severity::Fatal, Vec::new())
            }
            Action::Run(task) => self.run_task(task, machine).await,
            Action::InstanceCreated => {
                let marked = self
                    .instance_conf
                    .as_deref()
                    .map_or(Ok(()), mark_instance_created);
                if marked.is_ok() {
                    (self.report)(&Event::InstanceCreated {
                        path: self
                            .instance_conf
                            .as_ref()
                            .map_or_else(|| "(memory)".into(), |c| c.display().to_string()),
                    });
                }
                self.settle(marked, Severity::Fatal, Vec::new())
            }
            Action::Token(t) => {
                (self.report)(&Event::TokenReceived {
                    expires_in: t.lifetime().as_secs(),
                    refresh_in: t.refresh_after().as_secs(),
                });
                self.token = Some(t.access_token);
                Flow::Continue(Vec::new())
            }
            Action::Command(c) => {
                let r = self.commands.clone();
                self.work
                    .spawn(async move { Done::Command(r.execute(c).await) });
                Flow::Continue(Vec::new())
            }
            Action::Note(n) => {
                self.note(n);
                Flow::Continue(Vec::new())
            }
            Action::Finish(f) => Flow::Stop(verdict(f)),
        }
    }

    /// One turn of a periodic task: build its message and publish it (the datalake task
    /// uploads in the background instead).
    async fn run_task(&mut self, task: Task, machine: &mut Machine) -> Flow {
        let now = now_utc();
        let message = match task {
            Task::Timeseries => match self.inputs.values.as_mut().map(|v| v.next(now)) {
                Some(Ok(Next::Ready(m))) => Ok((Channel::Timeseries, encode(&m), "timeseries")),
                Some(Ok(Next::Pending)) => {
                    self.values_pending = true;
                    return Flow::Continue(Vec::new());
                }
                Some(Err(e)) => Err(e),
                Some(Ok(Next::Exhausted)) | None => {
                    return Flow::Continue(machine.task_exhausted(task, Instant::now()));
                }
            },
            Task::Event => match &self.inputs.event_template {
                Some(t) => event_payload(t, now).map(|p| (Channel::Event, p, "event")),
                None => Err(AgentError::Input("no event template".into())),
            },
            Task::File => {
                match file_payload(
                    self.inputs.file.as_deref(),
                    &self.settings.topics,
                    self.settings.max_message_bytes,
                    now,
                ) {
                    Ok(m) => Ok((Channel::File, encode(&m), "file")),
                    Err(e) => {
                        let next = machine.task_done(task, Instant::now());
                        return self.settle(Err(e), Severity::Retry, next);
                    }
                }
            }
            Task::Datalake => return Flow::Continue(self.upload(machine)),
        };
        let sent = match message {
            Ok((channel, payload, what)) => self.publish(channel, payload, what).await,
            Err(e) => Err(e),
        };
        if sent.is_ok() {
            self.summary.count(task);
            return Flow::Continue(machine.task_done(task, Instant::now()));
        }
        self.settle(sent, Severity::Fatal, Vec::new())
    }

    /// Starts a datalake upload in the background once a token is there; without one the turn
    /// is skipped.
    fn upload(&mut self, machine: &mut Machine) -> Vec<Action> {
        let (Some(dl), Some(token)) = (self.inputs.datalake.clone(), self.token.clone()) else {
            return machine.task_done(Task::Datalake, Instant::now());
        };
        let given = self
            .inputs
            .datalake_file
            .as_ref()
            .map(|(p, b)| (p.as_path(), b.as_slice()));
        let (name, bytes) = datalake_object(given, now_utc());
        self.work.spawn(async move {
            let size = bytes.len();
            Done::Upload(dl.upload(&token, &name, bytes).await.map(|p| (p, size)))
        });
        Vec::new()
    }

    /// Background work that finished: counted, reported, and handed back to the machine.
    fn finished(
        &mut self,
        done: Result<Done, tokio::task::JoinError>,
        machine: &mut Machine,
    ) -> Vec<Action> {
        match done {
            Ok(Done::Upload(r)) => {
                match r {
                    Ok((path, bytes)) => {
                        (self.report)(&Event::Uploaded { path, bytes });
                        self.summary.datalake += 1;
                    }
                    Err(e) => self.failed(e),
                }
                machine.task_done(Task::Datalake, Instant::now())
            }
            Ok(Done::Command(r)) => {
                match r {
                    Ok(_) => self.summary.commands += 1,
                    Err(e) => self.failed(e),
                }
                machine.command_done(Instant::now())
            }
            Err(e) => {
                self.failed(AgentError::Ended(format!("an agent task stopped: {e}")));
                Vec::new()
            }
        }
    }

    /// The failure policy, in one place: `Retry` failures are reported and remembered (the
    /// first decides the exit code) and the run goes on with `next`; `Fatal` ones end it.
    fn settle(
        &mut self,
        result: Result<(), AgentError>,
        severity: Severity,
        next: Vec<Action>,
    ) -> Flow {
        match (result, severity) {
            (Ok(()), _) => Flow::Continue(next),
            (Err(e), Severity::Retry) => {
                self.failed(e);
                Flow::Continue(next)
            }
            (Err(e), Severity::Fatal) => Flow::Stop(Err(e)),
        }
    }

    async fn publish(
        &mut self,
        channel: Channel,
        payload: Vec<u8>,
        what: &'static str,
    ) -> Result<(), AgentError> {
        let topic = self.settings.topics.topic(channel);
        let bytes = payload.len();
        let sent = tokio::time::Instant::now();
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
                latency: sent.elapsed(),
            }
        });
        Ok(())
    }

    fn confirmed(&self, c: Confirmed) {
        if c.ok {
            (self.report)(&Event::Published {
                what: c.what.into(),
                topic: c.topic,
                bytes: c.bytes,
                latency: Some(c.latency),
            });
        }
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
            Note::InstanceRefused { errors, message } => {
                let refused = AgentError::Rejected {
                    what: "instantiation",
                    errors,
                    message,
                };
                r(&Event::Warning {
                    message: format!(
                        "{refused}; timeseries are held back (the platform would drop them), events, files and commands go on, and the next start asks again"
                    ),
                });
            }
            Note::Ignored { topic, reason } => {
                tracing::debug!("ignored a message on {topic}: {reason}");
            }
            Note::Undecodable { topic, error } => r(&Event::Warning {
                message: format!("{error} (on {topic})"),
            }),
        }
    }

    /// Waits a bounded time for background work and confirmations, disconnects, reports the
    /// summary; the first error (the run's own, then a remembered task failure, then anything
    /// left unconfirmed) decides the result.
    async fn shut_down(
        mut self,
        outcome: Result<(), AgentError>,
        timeout: Duration,
    ) -> Result<RunSummary, AgentError> {
        let deadline = tokio::time::Instant::now() + timeout;
        while let Ok(Some(done)) = tokio::time::timeout_at(deadline, self.work.join_next()).await {
            match done {
                Ok(Done::Command(Ok(_))) => self.summary.commands += 1,
                Ok(Done::Upload(Ok((path, bytes)))) => {
                    (self.report)(&Event::Uploaded { path, bytes });
                    self.summary.datalake += 1;
                }
                Ok(Done::Command(Err(e)) | Done::Upload(Err(e))) => self.failed(e),
                Err(_) => {}
            }
        }
        self.work.abort_all();
        self.summary.unconfirmed = self.session.flush(timeout).await;
        self.session.close(Duration::from_secs(2)).await;
        while let Some(c) = self.confirms.join_next().await {
            if let Ok(c) = c {
                self.confirmed(c);
            }
        }
        let s = self.summary.clone();
        (self.report)(&Event::Summary {
            timeseries: s.timeseries,
            events: s.events,
            files: s.files,
            datalake: s.datalake,
            commands: s.commands,
            unconfirmed: s.unconfirmed,
        });
        outcome?;
        if let Some(e) = self.first_error {
            return Err(e);
        }
        if s.unconfirmed > 0 {
            return Err(AgentError::Unconfirmed(s.unconfirmed));
        }
        Ok(s)
    }
}

impl RunSummary {
    /// Counts one message of a periodic task.
    fn count(&mut self, task: Task) {
        match task {
            Task::Timeseries => self.timeseries += 1,
            Task::Event => self.events += 1,
            Task::File => self.files += 1,
            Task::Datalake => self.datalake += 1,
        }
    }
}
