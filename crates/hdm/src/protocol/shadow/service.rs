//! The Device Shadow service as AWS documents it (device-shadow-data-flow.md,
//! device-shadow-mqtt.md, device-shadow-document.md): per thing (and named shadow) it keeps
//! `desired`, `reported`, metadata and a version; answers `get`, `update` and `delete` on the
//! `accepted`/`rejected` topics, publishes `update/delta` and `update/documents`, enforces
//! optimistic locking (409), echoes `clientToken`, and keeps the version across a delete.
//! Pure: a request in, the messages to publish out; time is an argument (epoch seconds).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::protocol::shadow::Outgoing;
use crate::protocol::shadow::docs::{
    DeleteAcceptedDoc, DeltaDoc, DocumentsDoc, ErrorDoc, MAX_STATE_BYTES, Rejection, ResponseDoc,
    Section, Snapshot, StateDoc, TokenRequest, UpdateRequest,
};
use crate::protocol::shadow::state::{
    delta, merge_patch, metadata_for, metadata_of_patch, rebuild_metadata,
};
use crate::protocol::topics::{ShadowOp, ShadowReply, ShadowTopic};

/// Which shadow: a thing and, for named shadows, the name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShadowKey {
    /// Thing name.
    pub thing: String,
    /// Shadow name (`None`: the classic shadow).
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Stored {
    desired: Map<String, Value>,
    reported: Map<String, Value>,
    meta_desired: Map<String, Value>,
    meta_reported: Map<String, Value>,
    version: u64,
}

fn non_empty(m: &Map<String, Value>) -> Option<Value> {
    (!m.is_empty()).then(|| Value::Object(m.clone()))
}

impl Stored {
    fn metadata(&self) -> Option<Value> {
        let mut meta = Map::new();
        if let Some(d) = non_empty(&self.meta_desired) {
            meta.insert("desired".into(), d);
        }
        if let Some(r) = non_empty(&self.meta_reported) {
            meta.insert("reported".into(), r);
        }
        non_empty(&meta)
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: StateDoc {
                desired: non_empty(&self.desired),
                reported: non_empty(&self.reported),
                delta: None,
            },
            metadata: self.metadata(),
            version: self.version,
        }
    }

    fn delta(&self) -> Map<String, Value> {
        delta(&self.desired, &self.reported)
    }

    fn state_bytes(&self) -> usize {
        let mut s = Map::new();
        s.insert("desired".into(), Value::Object(self.desired.clone()));
        s.insert("reported".into(), Value::Object(self.reported.clone()));
        serde_json::to_vec(&s).map_or(0, |b| b.len())
    }

    fn apply(
        section: &Section,
        state: &mut Map<String, Value>,
        meta: &mut Map<String, Value>,
        ts: i64,
    ) {
        match section {
            Section::Absent => {}
            Section::Clear => {
                state.clear();
                meta.clear();
            }
            Section::Set(patch) => {
                merge_patch(state, patch);
                *meta = rebuild_metadata(state, meta, patch, ts);
            }
        }
    }
}

/// What a request did, for counters and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Answered a get.
    Got {
        /// Version returned.
        version: u64,
    },
    /// Applied an update.
    Updated {
        /// The update created the shadow.
        created: bool,
        /// A delta was published.
        delta: bool,
        /// New version.
        version: u64,
    },
    /// Deleted the shadow.
    Deleted {
        /// Version of the deleted document.
        version: u64,
    },
    /// Refused the request.
    Rejected {
        /// Operation.
        op: ShadowOp,
        /// Error code.
        code: u16,
    },
    /// Not a request topic (a response topic, echoed back to us).
    Ignored,
}

/// The result of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Messages to publish, in order.
    pub messages: Vec<Outgoing>,
    /// What happened.
    pub effect: Effect,
}

/// The answers to publish (reply topic, body), or the rejection.
pub type Answer = Result<(Effect, Vec<(ShadowReply, Vec<u8>)>), Rejection>;

/// Every shadow of the platform.
#[derive(Debug, Clone, Default)]
pub struct ShadowService {
    live: BTreeMap<ShadowKey, Stored>,
    /// Version of deleted shadows (a re-created shadow continues from it).
    deleted: BTreeMap<ShadowKey, u64>,
}

fn out(topic: &ShadowTopic, reply: ShadowReply, payload: Vec<u8>) -> Outgoing {
    Outgoing {
        topic: topic.with_reply(reply).to_topic(),
        payload,
    }
}

impl ShadowService {
    /// An empty service.
    pub fn new() -> Self {
        ShadowService::default()
    }

    /// Handles a message on a shadow request topic.
    pub fn handle(&mut self, topic: &ShadowTopic, payload: &[u8], now: i64) -> Outcome {
        if topic.reply.is_some() {
            return Outcome {
                messages: Vec::new(),
                effect: Effect::Ignored,
            };
        }
        let key = ShadowKey {
            thing: topic.thing.clone(),
            name: topic.shadow_name.clone(),
        };
        let result = match topic.op {
            ShadowOp::Get => self.get(&key, TokenRequest::token_of(payload), now),
            ShadowOp::Update => {
                UpdateRequest::decode(payload).and_then(|r| self.update(&key, &r, now))
            }
            ShadowOp::Delete => self.delete(&key, TokenRequest::token_of(payload), now),
        };
        match result {
            Ok((effect, replies)) => Outcome {
                messages: replies
                    .into_iter()
                    .map(|(reply, body)| out(topic, reply, body))
                    .collect(),
                effect,
            },
            Err(r) => Outcome {
                messages: vec![out(
                    topic,
                    ShadowReply::Rejected,
                    ErrorDoc::from_rejection(&r, now).encode(),
                )],
                effect: Effect::Rejected {
                    op: topic.op,
                    code: r.code,
                },
            },
        }
    }

    fn not_found(key: &ShadowKey, token: Option<String>) -> Rejection {
        Rejection {
            code: 404,
            message: format!(
                "No shadow exists with name: '{}'",
                key.name.as_deref().unwrap_or(&key.thing)
            ),
            client_token: token,
        }
    }

    /// The whole document of a shadow, as `get/accepted` carries it.
    pub fn document(
        &self,
        key: &ShadowKey,
        token: Option<String>,
        now: i64,
    ) -> Option<ResponseDoc> {
        let s = self.live.get(key)?;
        let d = s.delta();
        Some(ResponseDoc {
            state: StateDoc {
                desired: non_empty(&s.desired),
                reported: non_empty(&s.reported),
                delta: non_empty(&d),
            },
            metadata: s.metadata(),
            version: s.version,
            timestamp: now,
            client_token: token,
        })
    }

    /// The current version of a shadow (0 when it never existed).
    pub fn version(&self, key: &ShadowKey) -> u64 {
        self.live
            .get(key)
            .map(|s| s.version)
            .or_else(|| self.deleted.get(key).copied())
            .unwrap_or(0)
    }

    fn get(&self, key: &ShadowKey, token: Option<String>, now: i64) -> Answer {
        let doc = self
            .document(key, token.clone(), now)
            .ok_or_else(|| Self::not_found(key, token))?;
        Ok((
            Effect::Got {
                version: doc.version,
            },
            vec![(ShadowReply::Accepted, doc.encode())],
        ))
    }

    /// Applies an update request (used for MQTT requests and by iot-sim to set `desired`).
    pub fn update(&mut self, key: &ShadowKey, req: &UpdateRequest, now: i64) -> Answer {
        let current = self.version(key);
        let token = req.client_token.clone();
        if req.version.is_some_and(|v| v != current) {
            return Err(Rejection {
                code: 409,
                message: "Version conflict".into(),
                client_token: token,
            });
        }
        let previous = self.live.get(key).cloned();
        let mut next = previous.clone().unwrap_or_default();
        Stored::apply(&req.desired, &mut next.desired, &mut next.meta_desired, now);
        Stored::apply(
            &req.reported,
            &mut next.reported,
            &mut next.meta_reported,
            now,
        );
        if next.state_bytes() > MAX_STATE_BYTES {
            return Err(Rejection {
                code: 413,
                message: "The payload exceeds the maximum size allowed".into(),
                client_token: token,
            });
        }
        next.version = current + 1;
        let mut meta = Map::new();
        let mut state = StateDoc::default();
        for (name, section, slot) in [
            ("desired", &req.desired, &mut state.desired),
            ("reported", &req.reported, &mut state.reported),
        ] {
            match section {
                Section::Absent => {}
                Section::Clear => *slot = Some(Value::Null),
                Section::Set(m) => {
                    *slot = Some(Value::Object(m.clone()));
                    meta.insert(name.into(), Value::Object(metadata_of_patch(m, now)));
                }
            }
        }
        let mut replies = vec![(
            ShadowReply::Accepted,
            ResponseDoc {
                state,
                metadata: non_empty(&meta),
                version: next.version,
                timestamp: now,
                client_token: token.clone(),
            }
            .encode(),
        )];
        let d = next.delta();
        let send_delta = matches!(req.desired, Section::Set(_)) && !d.is_empty();
        if send_delta {
            replies.push((
                ShadowReply::Delta,
                DeltaDoc {
                    metadata: non_empty(&metadata_for(&d, &next.meta_desired)),
                    state: d,
                    version: next.version,
                    timestamp: now,
                    client_token: token.clone(),
                }
                .encode(),
            ));
        }
        replies.push((
            ShadowReply::Documents,
            DocumentsDoc {
                previous: previous.as_ref().map(Stored::snapshot),
                current: next.snapshot(),
                timestamp: now,
                client_token: token,
            }
            .encode(),
        ));
        let effect = Effect::Updated {
            created: previous.is_none(),
            delta: send_delta,
            version: next.version,
        };
        self.deleted.remove(key);
        self.live.insert(key.clone(), next);
        Ok((effect, replies))
    }

    fn delete(&mut self, key: &ShadowKey, token: Option<String>, now: i64) -> Answer {
        let s = self
            .live
            .remove(key)
            .ok_or_else(|| Self::not_found(key, token.clone()))?;
        self.deleted.insert(key.clone(), s.version);
        let body = DeleteAcceptedDoc {
            version: s.version,
            timestamp: now,
            client_token: token,
        }
        .encode();
        Ok((
            Effect::Deleted { version: s.version },
            vec![(ShadowReply::Accepted, body)],
        ))
    }

    /// Number of live shadows.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no shadow exists.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
