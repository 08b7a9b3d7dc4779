//! The device side of Gooee: connect with username `authorization` and the API token, publish a
//! [`Publication`] (checked against the topic table again, so nothing outside it leaves), watch
//! the matching `.../rejected` topic for a moment when asked, and receive messages for `sub`.
//! Uses `transport` for everything on the wire; reports through a caller-supplied sink of
//! [`Event`]s and never prints.

pub mod events;
pub mod input;
pub mod options;

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use transport::session::{DeliveryError, Incoming, PublishError, StartError, SubscribeError};
use transport::{ConnectError, Message, Outbox, Qos, Received, Session, SessionOptions};

pub use events::{Event, Outcome};
pub use options::{DEFAULT_BROKER, DEFAULT_WS_HOST, TOKEN_ENV, session_options};

use crate::protocol::topics::{self, TopicRefused};
use crate::protocol::{Publication, PublicationError, Rejection};

/// Why the agent could not do what was asked. [`AgentError::outcome`] classifies each for the
/// documented exit codes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// No token anywhere.
    #[error(
        "no Gooee API token: set {TOKEN_ENV} (or name another variable with --password-env VAR) or pass --password-file PATH; the token is never a flag value"
    )]
    NoToken,
    /// Flags that cannot become connection options.
    #[error("{0}")]
    Options(String),
    /// The broker refused our login.
    #[error("Gooee's broker refused the login as `{username}` with the given API token: {source}")]
    TokenRefused {
        /// The username sent.
        username: String,
        /// What the broker said.
        source: ConnectError,
    },
    /// Any other connection failure.
    #[error(transparent)]
    Connect(ConnectError),
    /// The publication was refused locally (table or payload rules); nothing was sent.
    #[error(transparent)]
    Publication(#[from] PublicationError),
    /// A subscription the table does not allow; nothing was sent.
    #[error(transparent)]
    Refused(#[from] TopicRefused),
    /// Input (a `--data` file, a `--value`) could not be used.
    #[error(transparent)]
    Input(#[from] input::InputError),
    /// The session did not take the message.
    #[error("cannot publish to `{topic}`: {source}")]
    Publish {
        /// Topic.
        topic: String,
        /// Why.
        source: PublishError,
    },
    /// The broker did not confirm the message.
    #[error("the message to `{topic}` was not confirmed by the broker: {source}")]
    NotConfirmed {
        /// Topic.
        topic: String,
        /// Why.
        source: DeliveryError,
    },
    /// The broker refused a subscription, or the session ended first.
    #[error("cannot subscribe to {filters}: {source}")]
    Subscribe {
        /// The filters, comma-separated.
        filters: String,
        /// Why.
        source: SubscribeError,
    },
    /// The connection ended for good.
    #[error("the connection to Gooee's broker ended: {0}")]
    Ended(String),
}

impl From<topics::TopicError> for AgentError {
    fn from(e: topics::TopicError) -> Self {
        AgentError::Publication(PublicationError::Topic(e))
    }
}

impl AgentError {
    /// The class of this failure: usage errors (bad flags, local refusals, input) are
    /// `Usage`, everything that happened on the wire is `Failure`.
    pub fn outcome(&self) -> transport::Outcome {
        match self {
            AgentError::NoToken
            | AgentError::Options(_)
            | AgentError::Publication(_)
            | AgentError::Refused(_)
            | AgentError::Input(_) => transport::Outcome::Usage,
            _ => transport::Outcome::Failure,
        }
    }
}

/// How to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishOptions {
    /// QoS 1 (confirmed by PUBACK, the default) or 0.
    pub qos: Qos,
    /// Watch the rejected topic this long after the broker confirmed the publish.
    pub watch_rejected: Option<Duration>,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            qos: Qos::AtLeastOnce,
            watch_rejected: None,
        }
    }
}

/// A connection to Gooee's broker.
pub struct Agent {
    session: Session,
    incoming: Incoming,
    /// Messages that arrived while a publish watched its rejected topic, kept for `receive`.
    held: VecDeque<Received>,
}

impl Agent {
    /// Connects (TCP/TLS/WebSocket, CONNECT, CONNACK). A refused login becomes
    /// [`AgentError::TokenRefused`].
    pub async fn connect(opts: SessionOptions) -> Result<Agent, AgentError> {
        let username = opts
            .credentials
            .as_ref()
            .map(|c| c.username.clone())
            .unwrap_or_default();
        match Session::start(opts, Outbox::memory(1024)).await {
            Ok((session, incoming)) => Ok(Agent {
                session,
                incoming,
                held: VecDeque::new(),
            }),
            Err(StartError::Options(e)) => Err(AgentError::Options(e.to_string())),
            Err(StartError::Connect(source @ ConnectError::Refused { code: 4 | 5, .. })) => {
                Err(AgentError::TokenRefused { username, source })
            }
            Err(StartError::Connect(e)) => Err(AgentError::Connect(e)),
            Err(e) => Err(AgentError::Options(e.to_string())),
        }
    }

    /// Publishes `p` and waits for the broker's confirmation. With `watch_rejected`, subscribes
    /// to the matching rejected topic first, then waits up to that long for the platform's
    /// verdict: the first (non-retained) rejection there is taken as the answer. Other messages
    /// that arrive meanwhile are kept for [`Agent::receive`].
    pub async fn publish(
        &mut self,
        p: &Publication,
        opts: PublishOptions,
        report: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Outcome, AgentError> {
        topics::check_publish(&p.topic)?;
        let watch = match (opts.watch_rejected, &p.rejected_topic) {
            (Some(wait), Some(rt)) => {
                self.subscribe(std::slice::from_ref(rt), Qos::AtLeastOnce)
                    .await?;
                Some((rt.clone(), wait))
            }
            (Some(_), None) => {
                report(Event::NothingToWatch {
                    topic: p.topic.clone(),
                });
                None
            }
            (None, _) => None,
        };
        let msg = Message::new(p.topic.clone(), p.payload.clone()).with_qos(opts.qos);
        let delivery = self
            .session
            .publish(msg)
            .await
            .map_err(|source| AgentError::Publish {
                topic: p.topic.clone(),
                source,
            })?;
        delivery
            .confirmed()
            .await
            .map_err(|source| AgentError::NotConfirmed {
                topic: p.topic.clone(),
                source,
            })?;
        report(Event::Published {
            topic: p.topic.clone(),
            bytes: p.payload.len(),
            qos: opts.qos.as_u8(),
        });
        let Some((rejected_topic, wait)) = watch else {
            return Ok(Outcome::Confirmed);
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Err(_) => {
                    report(Event::NoRejection {
                        topic: p.topic.clone(),
                        rejected_topic,
                        waited_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    });
                    return Ok(Outcome::NotRejected);
                }
                Ok(None) => return Err(self.ended()),
                Ok(Some(m)) => m,
            };
            if msg.topic != rejected_topic || msg.retain {
                self.held.push_back(msg);
                continue;
            }
            match Rejection::decode(&msg.payload) {
                Ok(r) => {
                    report(Event::Rejected {
                        topic: p.topic.clone(),
                        rejected_topic,
                        message: r.error.message.clone(),
                        context: r.error.context.clone(),
                        data: r.data.clone(),
                        matches_sent: r.is_about(&p.payload),
                    });
                    return Ok(Outcome::Rejected(r));
                }
                Err(e) => tracing::debug!(
                    "ignoring a message on {rejected_topic} that is not a rejection: {e}"
                ),
            }
        }
    }

    /// Subscribes (after the table check) and waits for the SUBACK.
    pub async fn subscribe(&self, filters: &[String], qos: Qos) -> Result<(), AgentError> {
        for f in filters {
            topics::check_subscribe(f)?;
        }
        let list: Vec<(String, Qos)> = filters.iter().map(|f| (f.clone(), qos)).collect();
        self.session
            .subscribe(&list)
            .await
            .map_err(|source| AgentError::Subscribe {
                filters: filters
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                source,
            })
    }

    /// Reports every message that arrives until `count` messages were seen (if given) or
    /// `shutdown` resolves; returns how many arrived.
    pub async fn receive(
        &mut self,
        count: Option<u64>,
        shutdown: impl Future<Output = ()>,
        report: &mut (dyn FnMut(Event) + Send),
    ) -> Result<u64, AgentError> {
        let mut seen = 0;
        while count.is_none_or(|c| seen < c)
            && let Some(m) = self.held.pop_front()
        {
            seen += 1;
            report(Event::message(&m));
        }
        tokio::pin!(shutdown);
        while count.is_none_or(|c| seen < c) {
            tokio::select! {
                () = &mut shutdown => break,
                m = self.incoming.recv() => match m {
                    Some(m) => {
                        seen += 1;
                        report(Event::message(&m));
                    }
                    None => return Err(self.ended()),
                },
            }
        }
        Ok(seen)
    }

    fn ended(&self) -> AgentError {
        let status = self.session.status();
        AgentError::Ended(
            status
                .ended
                .or(status.last_error.map(|e| e.to_string()))
                .unwrap_or_else(|| "the session stopped".into()),
        )
    }

    /// Waits briefly for outstanding confirmations and disconnects.
    pub async fn close(self) {
        self.session.close(Duration::from_secs(2)).await;
    }
}
