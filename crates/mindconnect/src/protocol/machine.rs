//! The agent's decisions as a state machine: instance creation once (then timeseries may flow),
//! the token request and its refresh before `expires_in`, the periodic tasks and their limits
//! (`--count`, `--duration`, commands to wait for), answer timeouts, and routing of what
//! arrives. It takes events and the current time and returns actions; it never awaits, reads a
//! clock or touches the network, so every sequence is unit-tested without sleeping.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::command::CommandMessage;
use super::envelope::{DecodeError, decode, encode};
use super::model::{JobError, JobReply, JobStep, step};
use super::token::{TokenData, TokenReply, TokenRequest};
use super::topic::{Channel, Topics};

/// A periodic task the driver performs when told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Publish timeseries (only once the instance exists).
    Timeseries,
    /// Publish an event.
    Event,
    /// Publish a file.
    File,
    /// Upload to the datalake over HTTPS (only with a token).
    Datalake,
}

/// What the run should do and when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Interval per enabled task (the first run is at start).
    pub intervals: BTreeMap<Task, Duration>,
    /// Each enabled task runs at most this often; the run ends when all have.
    pub count: Option<u64>,
    /// The run ends after this long.
    pub duration: Option<Duration>,
    /// The run does not end (by count) before this many commands were answered.
    pub wait_commands: u64,
    /// How long to wait for the platform's answer to the instantiation and token requests.
    pub answer_timeout: Duration,
}

/// The instantiation to send, when `instance.conf` does not say `CREATED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRequest {
    /// The request `id` (answers are correlated on it).
    pub id: String,
    /// The filled `instance.json`.
    pub payload: Vec<u8>,
}

/// Something for the driver to do or report.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Publish this payload on this channel.
    Publish {
        /// Channel.
        channel: Channel,
        /// Payload.
        payload: Vec<u8>,
    },
    /// Perform this task now, then call [`Machine::task_done`].
    Run(Task),
    /// The platform confirmed the instantiation: write `instance.conf`.
    InstanceCreated,
    /// A new agent token.
    Token(TokenData),
    /// Execute this command (answer `EXECUTING` first), then call [`Machine::command_done`].
    Command(CommandMessage),
    /// Worth reporting.
    Note(Note),
    /// The run is over.
    Finish(Finish),
}

/// Reportable happenings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Note {
    /// The instantiation was sent.
    InstanceRequested {
        /// Request id.
        request_id: String,
    },
    /// `instance.conf` says `CREATED`; nothing sent.
    InstanceExists,
    /// The platform answered `Failed`: timeseries stay held back (the platform would drop
    /// them), the rest goes on, `instance.conf` stays as it is so the next start asks again,
    /// and a bounded run ends with [`Finish::Rejected`].
    InstanceRefused {
        /// Its errors.
        errors: Vec<JobError>,
        /// Its message.
        message: Option<String>,
    },
    /// `InProgress` (or another non-final status).
    InstanceProgress {
        /// Platform message.
        message: Option<String>,
    },
    /// A token request was sent.
    TokenRequested {
        /// Request id.
        request_id: String,
    },
    /// A message that was not for us or not expected now.
    Ignored {
        /// Topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// A message we could not decode.
    Undecodable {
        /// Topic.
        topic: String,
        /// Decoder's message.
        error: DecodeError,
    },
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Limits reached.
    Done,
    /// The platform answered `Failed`.
    Rejected {
        /// What was refused.
        what: &'static str,
        /// Its errors.
        errors: Vec<JobError>,
        /// Its message.
        message: Option<String>,
    },
    /// No answer in time.
    NoAnswer {
        /// What was asked.
        what: &'static str,
        /// Where the answer was expected.
        topic: String,
        /// How long we waited.
        waited: Duration,
    },
}

#[derive(Debug, Clone)]
enum Instance {
    Created,
    Refused {
        errors: Vec<JobError>,
        message: Option<String>,
    },
    Pending {
        id: String,
        deadline: Instant,
    },
    Unsent(InstanceRequest),
}

#[derive(Debug, Clone)]
enum Token {
    None,
    Pending {
        id: String,
        deadline: Instant,
        have_one: bool,
    },
    Valid {
        refresh_at: Instant,
    },
}

#[derive(Debug, Clone, Default)]
struct TaskState {
    next: Option<Instant>,
    runs: u64,
    running: bool,
    exhausted: bool,
}

/// The agent's state.
pub struct Machine {
    topics: Topics,
    plan: Plan,
    ids: Box<dyn FnMut() -> String + Send>,
    end: Option<Instant>,
    instance: Instance,
    token: Token,
    tasks: BTreeMap<Task, TaskState>,
    commands: u64,
    finished: bool,
    refused_what: &'static str,
}

impl Machine {
    /// A machine for `topics`; `instance` is `None` when `instance.conf` says `CREATED`;
    /// `ids` makes request ids.
    pub fn new(
        topics: Topics,
        plan: Plan,
        instance: Option<InstanceRequest>,
        ids: Box<dyn FnMut() -> String + Send>,
    ) -> Self {
        let tasks = plan
            .intervals
            .keys()
            .map(|t| (*t, TaskState::default()))
            .collect();
        Machine {
            topics,
            plan,
            ids,
            end: None,
            instance: instance.map_or(Instance::Created, Instance::Unsent),
            token: Token::None,
            tasks,
            commands: 0,
            finished: false,
            refused_what: "instantiation",
        }
    }

    /// Before [`Machine::start`]: the model is not there (a v4 synchronisation failed), so
    /// timeseries stay held back and a bounded run ends with [`Finish::Rejected`] for `what`.
    pub fn refuse_instance(
        &mut self,
        what: &'static str,
        errors: Vec<JobError>,
        message: Option<String>,
    ) {
        self.refused_what = what;
        self.instance = Instance::Refused { errors, message };
    }

    /// Call once subscribed: sends the instantiation (if needed) and the token request, and
    /// starts the tasks.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.end = self.plan.duration.map(|d| now + d);
        match std::mem::replace(&mut self.instance, Instance::Created) {
            Instance::Unsent(req) => {
                out.push(Action::Publish {
                    channel: Channel::Instantiate,
                    payload: req.payload,
                });
                out.push(Action::Note(Note::InstanceRequested {
                    request_id: req.id.clone(),
                }));
                self.instance = Instance::Pending {
                    id: req.id,
                    deadline: now + self.plan.answer_timeout,
                };
            }
            other => {
                out.push(Action::Note(Note::InstanceExists));
                self.instance = other;
            }
        }
        self.request_token(now, false, &mut out);
        for t in self.tasks.values_mut() {
            t.next = Some(now);
        }
        out.extend(self.poll(now));
        out
    }

    fn request_token(&mut self, now: Instant, have_one: bool, out: &mut Vec<Action>) {
        let id = (self.ids)();
        out.push(Action::Publish {
            channel: Channel::TokenRequest,
            payload: encode(&TokenRequest { id: id.clone() }),
        });
        out.push(Action::Note(Note::TokenRequested {
            request_id: id.clone(),
        }));
        self.token = Token::Pending {
            id,
            deadline: now + self.plan.answer_timeout,
            have_one,
        };
    }

    fn gate_open(&self, task: Task) -> bool {
        match task {
            Task::Timeseries => matches!(self.instance, Instance::Created),
            Task::Datalake => matches!(
                self.token,
                Token::Valid { .. } | Token::Pending { have_one: true, .. }
            ),
            Task::Event | Task::File => true,
        }
    }

    fn limit_reached(&self, s: &TaskState) -> bool {
        s.exhausted || self.plan.count.is_some_and(|c| s.runs >= c)
    }

    /// Whatever is due at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        if self.finished {
            return Vec::new();
        }
        let mut out = Vec::new();
        if self.end.is_some_and(|e| now >= e) {
            return self.finish_done();
        }
        if let Instance::Pending { deadline, .. } = &self.instance
            && now >= *deadline
        {
            return self.finish(Finish::NoAnswer {
                what: "instantiation",
                topic: self.topics.topic(Channel::InstanceProgress),
                waited: self.plan.answer_timeout,
            });
        }
        match &self.token {
            Token::Pending { deadline, .. } if now >= *deadline => {
                return self.finish(Finish::NoAnswer {
                    what: "agent token",
                    topic: self.topics.topic(Channel::TokenResponse),
                    waited: self.plan.answer_timeout,
                });
            }
            Token::Valid { refresh_at } if now >= *refresh_at => {
                self.request_token(now, true, &mut out);
            }
            _ => {}
        }
        let due: Vec<Task> = self
            .tasks
            .iter()
            .filter(|(t, s)| {
                !s.running
                    && !self.limit_reached(s)
                    && s.next.is_some_and(|n| now >= n)
                    && self.gate_open(**t)
            })
            .map(|(t, _)| *t)
            .collect();
        for t in due {
            if let Some(s) = self.tasks.get_mut(&t) {
                s.running = true;
            }
            out.push(Action::Run(t));
        }
        if self.complete() {
            out.extend(self.finish_done());
        }
        out
    }

    fn complete(&self) -> bool {
        let bounded = self.plan.count.is_some() || self.plan.wait_commands > 0;
        bounded
            && self
                .tasks
                .iter()
                // Timeseries never run after a refused instantiation; the rest decides.
                .filter(|(t, _)| {
                    **t != Task::Timeseries || !matches!(self.instance, Instance::Refused { .. })
                })
                .all(|(_, s)| !s.running && (self.plan.count.is_none() || self.limit_reached(s)))
            && self.commands >= self.plan.wait_commands
            && matches!(self.instance, Instance::Created | Instance::Refused { .. })
            && !matches!(self.token, Token::Pending { .. })
    }

    /// The end of a run that reached its limits: `Done`, unless the instantiation was refused.
    fn finish_done(&mut self) -> Vec<Action> {
        let f = match &self.instance {
            Instance::Refused { errors, message } => Finish::Rejected {
                what: self.refused_what,
                errors: errors.clone(),
                message: message.clone(),
            },
            _ => Finish::Done,
        };
        self.finish(f)
    }

    fn finish(&mut self, f: Finish) -> Vec<Action> {
        self.finished = true;
        vec![Action::Finish(f)]
    }

    /// The driver finished `task`.
    pub fn task_done(&mut self, task: Task, now: Instant) -> Vec<Action> {
        let interval = self.plan.intervals.get(&task).copied();
        if let Some(s) = self.tasks.get_mut(&task) {
            s.running = false;
            s.runs += 1;
            s.next = interval.map(|i| now + i);
        }
        self.poll(now)
    }

    /// The driver has nothing more for `task` (its input ended); it counts as done.
    pub fn task_exhausted(&mut self, task: Task, now: Instant) -> Vec<Action> {
        if let Some(s) = self.tasks.get_mut(&task) {
            s.running = false;
            s.exhausted = true;
            s.next = None;
        }
        self.poll(now)
    }

    /// The driver answered a command with its final status.
    pub fn command_done(&mut self, now: Instant) -> Vec<Action> {
        self.commands += 1;
        self.poll(now)
    }

    /// How often `task` has run.
    pub fn runs(&self, task: Task) -> u64 {
        self.tasks.get(&task).map_or(0, |s| s.runs)
    }

    /// Commands answered.
    pub fn commands(&self) -> u64 {
        self.commands
    }

    /// Whether the run is over.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// When [`Machine::poll`] next has something to do (`None`: only a message can wake it).
    pub fn next_wake(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        let mut w = self.end;
        let mut at = |t: Instant| w = Some(w.map_or(t, |x| x.min(t)));
        if let Instance::Pending { deadline, .. } = &self.instance {
            at(*deadline);
        }
        match &self.token {
            Token::Pending { deadline, .. } => at(*deadline),
            Token::Valid { refresh_at } => at(*refresh_at),
            Token::None => {}
        }
        for (t, s) in &self.tasks {
            if !s.running
                && !self.limit_reached(s)
                && self.gate_open(*t)
                && let Some(n) = s.next
            {
                at(n);
            }
        }
        w
    }

    /// Handles a message that arrived on `topic`.
    pub fn on_message(&mut self, topic: &str, payload: &[u8], now: Instant) -> Vec<Action> {
        if self.finished {
            return Vec::new();
        }
        let ignored = |reason: &str| {
            vec![Action::Note(Note::Ignored {
                topic: topic.to_owned(),
                reason: reason.to_owned(),
            })]
        };
        let undecodable = |error| {
            vec![Action::Note(Note::Undecodable {
                topic: topic.to_owned(),
                error,
            })]
        };
        match self.topics.route(topic) {
            Some(Channel::InstanceProgress) => {
                let reply: JobReply = match decode("instantiation answer", payload) {
                    Ok(r) => r,
                    Err(e) => return undecodable(e),
                };
                let Instance::Pending { id, .. } = &self.instance else {
                    return ignored("no instantiation is pending");
                };
                match step(&reply, id) {
                    JobStep::NotOurs => ignored("answers another request"),
                    JobStep::Progress(message) => {
                        self.instance = Instance::Pending {
                            id: id.clone(),
                            deadline: now + self.plan.answer_timeout,
                        };
                        vec![Action::Note(Note::InstanceProgress { message })]
                    }
                    JobStep::Succeeded => {
                        self.instance = Instance::Created;
                        let mut out = vec![Action::InstanceCreated];
                        out.extend(self.poll(now));
                        out
                    }
                    JobStep::Failed(errors, message) => {
                        self.instance = Instance::Refused {
                            errors: errors.clone(),
                            message: message.clone(),
                        };
                        let mut out = vec![Action::Note(Note::InstanceRefused { errors, message })];
                        out.extend(self.poll(now));
                        out
                    }
                }
            }
            Some(Channel::TokenResponse) => {
                let reply: TokenReply = match decode("token response", payload) {
                    Ok(r) => r,
                    Err(e) => return undecodable(e),
                };
                let Token::Pending { id, .. } = &self.token else {
                    return ignored("no token request is pending");
                };
                if reply.request_id.as_deref().is_some_and(|r| r != id) {
                    return ignored("answers another token request");
                }
                self.token = Token::Valid {
                    refresh_at: now + reply.data.refresh_after(),
                };
                let mut out = vec![Action::Token(reply.data)];
                out.extend(self.poll(now));
                out
            }
            Some(Channel::Command) => match decode::<CommandMessage>("command", payload) {
                Ok(c) => vec![Action::Command(c)],
                Err(e) => undecodable(e),
            },
            Some(_) => ignored("not a topic the agent subscribes to"),
            None => ignored("not this agent's topic"),
        }
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
