//! The device side of the shadow as a state machine: events in (subscribed, a message on a
//! response topic, a clock tick, a reconnect), actions out (publish this, report that). It
//! follows AWS's recommended sequence (device-shadow-comms-device.md): after the SUBACK publish
//! `get`; on `get/accepted` apply `desired` and report the device state; on `get/rejected` 404
//! create the shadow by reporting; apply each `update/delta`; drop messages whose `version` is
//! older than one already applied and answers whose `clientToken` is not ours; after a 409
//! `get` again. No I/O, no clock: `now` is an argument.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::protocol::json::FieldError;
use crate::protocol::shadow::Outgoing;
use crate::protocol::shadow::docs::{
    DeltaDoc, ErrorDoc, ResponseDoc, Section, TokenRequest, UpdateRequest,
};
use crate::protocol::shadow::gate::{Applied, Invalid, TelemetryGate, apply_desired};
use crate::protocol::topics::{ShadowOp, ShadowReply, ShadowTopics};

/// Something the agent should know (and report).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ShadowEvent {
    /// `get/rejected` 404: the shadow does not exist; creating it by reporting.
    Missing,
    /// Our report was accepted.
    Synced {
        /// Shadow version now.
        version: u64,
        /// The report created the shadow.
        created: bool,
    },
    /// Desired attributes were applied to the device.
    DesiredApplied {
        /// Version they came with.
        version: u64,
        /// Attributes that changed.
        changed: Vec<String>,
        /// `get` or `delta`.
        source: &'static str,
    },
    /// A desired attribute had the wrong type and was not applied.
    InvalidDesired(Invalid),
    /// A message older than what was already applied was dropped.
    Stale {
        /// Its topic.
        topic: String,
        /// Its version.
        version: u64,
        /// The newest version applied.
        newest: u64,
    },
    /// Our update hit a version conflict (409); getting the shadow again.
    Conflict {
        /// Conflicts in a row.
        attempt: u32,
    },
    /// The service refused a request.
    Rejected {
        /// `get` or `update`.
        op: ShadowOp,
        /// Error code.
        code: u16,
        /// Error message.
        message: String,
    },
    /// Someone deleted the shadow.
    Deleted {
        /// Version of the deleted document.
        version: u64,
    },
    /// No answer in time; asking again.
    TimedOut {
        /// The unanswered request.
        op: ShadowOp,
    },
}

/// What the agent must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Publish at QoS 1, not retained.
    Publish(Outgoing),
    /// Report this.
    Event(ShadowEvent),
}

/// A message on our topics that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable message on `{topic}`: {source}")]
pub struct DecodeError {
    /// Topic.
    pub topic: String,
    /// What was wrong.
    pub source: FieldError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Get,
    Create,
    Report,
}

#[derive(Debug, Clone)]
struct Pending {
    kind: Kind,
    token: String,
    sent: Instant,
}

/// Settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceConfig {
    /// How long to wait for an answer before asking again.
    pub request_timeout: Duration,
    /// Version conflicts in a row before giving up.
    pub max_conflicts: u32,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            request_timeout: Duration::from_secs(10),
            max_conflicts: 5,
        }
    }
}

/// One device's view of its shadow.
#[derive(Debug, Clone)]
pub struct DeviceShadow {
    topics: ShadowTopics,
    config: DeviceConfig,
    state: Map<String, Value>,
    version: Option<u64>,
    pending: Vec<Pending>,
    prefix: String,
    next_token: u64,
    conflicts: u32,
    synced: bool,
}

impl DeviceShadow {
    /// A device with `state`, whose client tokens start with `token_prefix` (cut to 40 bytes).
    pub fn new(
        topics: ShadowTopics,
        state: Map<String, Value>,
        token_prefix: &str,
        config: DeviceConfig,
    ) -> Self {
        let mut prefix: String = String::new();
        for c in token_prefix.chars() {
            if prefix.len() + c.len_utf8() > 40 {
                break;
            }
            prefix.push(c);
        }
        DeviceShadow {
            topics,
            config,
            state,
            version: None,
            pending: Vec::new(),
            prefix,
            next_token: 1,
            conflicts: 0,
            synced: false,
        }
    }

    /// The topics to subscribe to (before calling [`DeviceShadow::start`]).
    pub fn subscriptions(&self) -> Vec<String> {
        self.topics.response_topics()
    }

    /// The device state.
    pub fn state(&self) -> &Map<String, Value> {
        &self.state
    }

    /// The telemetry gate of the device state.
    pub fn gate(&self) -> TelemetryGate {
        TelemetryGate::of(&self.state)
    }

    /// The newest shadow version applied.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// Whether a report has been accepted since start.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// When [`DeviceShadow::on_tick`] should next be called.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .iter()
            .map(|p| p.sent + self.config.request_timeout)
            .min()
    }

    fn token(&mut self) -> String {
        let t = format!("{}-{}", self.prefix, self.next_token);
        self.next_token += 1;
        // The prefix is at most 40 bytes and the counter at most 20 digits: always within
        // MAX_CLIENT_TOKEN (64 bytes).
        t
    }

    fn get(&mut self, now: Instant) -> Vec<Action> {
        if self.pending.iter().any(|p| p.kind == Kind::Get) {
            return Vec::new();
        }
        let token = self.token();
        let payload = TokenRequest {
            client_token: Some(token.clone()),
        }
        .encode();
        self.pending.push(Pending {
            kind: Kind::Get,
            token,
            sent: now,
        });
        vec![Action::Publish(Outgoing {
            topic: self.topics.topic(ShadowOp::Get, None),
            payload,
        })]
    }

    fn report(&mut self, kind: Kind, now: Instant) -> Action {
        let token = self.token();
        let req = UpdateRequest {
            desired: Section::Absent,
            reported: Section::Set(self.state.clone()),
            client_token: Some(token.clone()),
            version: if kind == Kind::Create {
                None
            } else {
                self.version
            },
        };
        self.pending.push(Pending {
            kind,
            token,
            sent: now,
        });
        Action::Publish(Outgoing {
            topic: self.topics.topic(ShadowOp::Update, None),
            payload: req.encode(),
        })
    }

    /// Call once the response topics are subscribed: publishes `get`.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        self.get(now)
    }

    /// Call after a reconnect: forgets unanswered requests and gets the shadow again.
    pub fn on_reconnect(&mut self, now: Instant) -> Vec<Action> {
        self.pending.clear();
        self.get(now)
    }

    /// Call at [`DeviceShadow::next_deadline`]: requests without an answer are retried as a `get`.
    pub fn on_tick(&mut self, now: Instant) -> Vec<Action> {
        let timeout = self.config.request_timeout;
        let (late, keep): (Vec<Pending>, Vec<Pending>) = self
            .pending
            .drain(..)
            .partition(|p| now >= p.sent + timeout);
        self.pending = keep;
        if late.is_empty() {
            return Vec::new();
        }
        let mut actions: Vec<Action> = late
            .iter()
            .map(|p| {
                Action::Event(ShadowEvent::TimedOut {
                    op: if p.kind == Kind::Get {
                        ShadowOp::Get
                    } else {
                        ShadowOp::Update
                    },
                })
            })
            .collect();
        actions.extend(self.get(now));
        actions
    }

    /// Takes the pending request of `kinds` this answer belongs to: the one with its token, or
    /// (an answer without a token) the oldest one of those kinds.
    fn take(&mut self, kinds: &[Kind], token: Option<&str>) -> Option<Pending> {
        let i = match token {
            Some(t) => self
                .pending
                .iter()
                .position(|p| p.token == t && kinds.contains(&p.kind))?,
            None => self.pending.iter().position(|p| kinds.contains(&p.kind))?,
        };
        Some(self.pending.remove(i))
    }

    fn applied(applied: Applied, version: u64, source: &'static str) -> Vec<Action> {
        let mut actions: Vec<Action> = applied
            .invalid
            .into_iter()
            .map(|i| Action::Event(ShadowEvent::InvalidDesired(i)))
            .collect();
        if !applied.changed.is_empty() {
            actions.push(Action::Event(ShadowEvent::DesiredApplied {
                version,
                changed: applied.changed,
                source,
            }));
        }
        actions
    }

    fn stale(&self, topic: &str, version: u64) -> Option<Action> {
        let newest = self.version?;
        (version < newest).then(|| {
            Action::Event(ShadowEvent::Stale {
                topic: topic.to_owned(),
                version,
                newest,
            })
        })
    }

    /// Handles a message on one of our response topics (others are ignored).
    pub fn on_message(
        &mut self,
        topic: &str,
        payload: &[u8],
        now: Instant,
    ) -> Result<Vec<Action>, DecodeError> {
        let Some(t) = self.topics.parse(topic) else {
            return Ok(Vec::new());
        };
        let err = |source| DecodeError {
            topic: topic.to_owned(),
            source,
        };
        match (t.op, t.reply) {
            (ShadowOp::Get, Some(ShadowReply::Accepted)) => {
                let doc = ResponseDoc::decode(payload).map_err(err)?;
                if self
                    .take(&[Kind::Get], doc.client_token.as_deref())
                    .is_none()
                {
                    return Ok(Vec::new());
                }
                if let Some(a) = self.stale(topic, doc.version) {
                    return Ok(vec![a]);
                }
                self.version = Some(doc.version);
                let desired = doc
                    .state
                    .desired
                    .as_ref()
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let applied = apply_desired(&mut self.state, &desired);
                let mut actions = Self::applied(applied, doc.version, "get");
                actions.push(self.report(Kind::Report, now));
                Ok(actions)
            }
            (ShadowOp::Get, Some(ShadowReply::Rejected)) => {
                let doc = ErrorDoc::decode(payload).map_err(err)?;
                if self
                    .take(&[Kind::Get], doc.client_token.as_deref())
                    .is_none()
                {
                    return Ok(Vec::new());
                }
                if doc.code == 404 {
                    return Ok(vec![
                        Action::Event(ShadowEvent::Missing),
                        self.report(Kind::Create, now),
                    ]);
                }
                Ok(vec![Action::Event(ShadowEvent::Rejected {
                    op: ShadowOp::Get,
                    code: doc.code,
                    message: doc.message,
                })])
            }
            (ShadowOp::Update, Some(ShadowReply::Accepted)) => {
                let doc = ResponseDoc::decode(payload).map_err(err)?;
                let Some(p) = self.take(&[Kind::Create, Kind::Report], doc.client_token.as_deref())
                else {
                    return Ok(Vec::new());
                };
                self.version = Some(self.version.map_or(doc.version, |v| v.max(doc.version)));
                self.conflicts = 0;
                self.synced = true;
                Ok(vec![Action::Event(ShadowEvent::Synced {
                    version: doc.version,
                    created: p.kind == Kind::Create,
                })])
            }
            (ShadowOp::Update, Some(ShadowReply::Rejected)) => {
                let doc = ErrorDoc::decode(payload).map_err(err)?;
                if self
                    .take(&[Kind::Create, Kind::Report], doc.client_token.as_deref())
                    .is_none()
                {
                    return Ok(Vec::new());
                }
                if doc.code == 409 && self.conflicts < self.config.max_conflicts {
                    self.conflicts += 1;
                    let mut actions = vec![Action::Event(ShadowEvent::Conflict {
                        attempt: self.conflicts,
                    })];
                    actions.extend(self.get(now));
                    return Ok(actions);
                }
                Ok(vec![Action::Event(ShadowEvent::Rejected {
                    op: ShadowOp::Update,
                    code: doc.code,
                    message: doc.message,
                })])
            }
            (ShadowOp::Update, Some(ShadowReply::Delta)) => {
                let doc = DeltaDoc::decode(payload).map_err(err)?;
                if let Some(newest) = self.version
                    && doc.version <= newest
                {
                    return Ok(vec![Action::Event(ShadowEvent::Stale {
                        topic: topic.to_owned(),
                        version: doc.version,
                        newest,
                    })]);
                }
                self.version = Some(doc.version);
                let applied = apply_desired(&mut self.state, &doc.state);
                let mut actions = Self::applied(applied, doc.version, "delta");
                actions.push(self.report(Kind::Report, now));
                Ok(actions)
            }
            (ShadowOp::Delete, Some(ShadowReply::Accepted)) => {
                let version = crate::protocol::shadow::docs::DeleteAcceptedDoc::decode(payload)
                    .map_err(err)?
                    .version;
                Ok(vec![Action::Event(ShadowEvent::Deleted { version })])
            }
            _ => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
