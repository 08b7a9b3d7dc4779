//! The platform's reaction to one publish, as a pure function: validate as the documentation
//! describes, answer a rejection on the matching `.../rejected` topic, relay device meta to
//! `devices/{id}/meta/{name}` and actions to `.../actions/{type}`, count everything. Takes the
//! state, the message and the time; returns what to publish. No I/O.

use cloudkit::{Message, Report};
use time::OffsetDateTime;

use crate::protocol::topics::{self, Route};
use crate::protocol::{
    Action, Entity, FaultAlarm, HeadCount, MetaList, MetaValue, PayloadError, format_timestamp,
};

use super::rejection::rejection;

/// How many recent events the report keeps.
const KEEP_NOTES: usize = 50;

/// What the platform side remembers: its counters and recent events.
#[derive(Debug, Clone, Default)]
pub struct CloudState {
    /// Counters (see `docs/gooee.md`) and recent notes.
    pub report: Report,
}

impl CloudState {
    fn count(&mut self, counter: &str) {
        self.report.add(counter, 1);
    }
    fn note(&mut self, text: String) {
        self.report.note(text, KEEP_NOTES);
    }
}

fn reject(
    state: &mut CloudState,
    counter: &str,
    topic: &str,
    e: &PayloadError,
    payload: &[u8],
) -> Vec<Message> {
    state.count(counter);
    state.note(format!("rejected {topic}: {e}"));
    match topics::rejected_for(topic) {
        Some(rt) => vec![Message::new(rt, rejection(e, payload).encode())],
        None => Vec::new(),
    }
}

/// Handles one message that arrived on `topic`.
pub fn handle(
    state: &mut CloudState,
    topic: &str,
    payload: &[u8],
    now: OffsetDateTime,
) -> Vec<Message> {
    let Some(route) = topics::route(topic) else {
        state.count("ignored");
        return Vec::new();
    };
    match route {
        Route::DeviceMeta { device } => meta(state, topic, &device, payload, now),
        Route::Actions { entity, id } => action(state, topic, entity, &id, payload),
        Route::FaultAlarms { .. } => {
            match FaultAlarm::decode(payload).and_then(|a| a.validate().map(|()| a)) {
                Ok(_) => {
                    state.count("alarms_accepted");
                    Vec::new()
                }
                Err(e) => reject(state, "alarms_rejected", topic, &e, payload),
            }
        }
        Route::HeadCount { kind, .. } => {
            match HeadCount::decode(payload).and_then(|h| h.validate(kind)) {
                Ok(()) => state.count("headcounts_accepted"),
                Err(e) => {
                    // No rejected topic is documented for head counts: counted and noted only.
                    state.count("headcounts_invalid");
                    state.note(format!("invalid head count on {topic}: {e}"));
                }
            }
            Vec::new()
        }
    }
}

fn meta(
    state: &mut CloudState,
    topic: &str,
    device: &str,
    payload: &[u8],
    now: OffsetDateTime,
) -> Vec<Message> {
    let list = match MetaList::decode(payload).and_then(|l| l.validate().map(|()| l)) {
        Ok(l) => l,
        Err(e) => return reject(state, "meta_rejected", topic, &e, payload),
    };
    state.count("meta_accepted");
    let mut out = Vec::new();
    for entry in list.0 {
        let Ok(sub) = topics::device_meta_name(device, &entry.name) else {
            continue; // the name rule already excludes `/`, `+` and `#`
        };
        let value = MetaValue {
            name: entry.name,
            value: entry.value,
            timestamp: Some(entry.timestamp.unwrap_or_else(|| format_timestamp(now))),
            extra: std::collections::BTreeMap::new(),
        };
        state.count("meta_relayed");
        out.push(Message::new(sub, value.encode()));
    }
    out
}

fn action(
    state: &mut CloudState,
    topic: &str,
    entity: Entity,
    id: &str,
    payload: &[u8],
) -> Vec<Message> {
    let a = match Action::decode(payload).and_then(|a| a.validate().map(|()| a)) {
        Ok(a) => a,
        Err(e) => {
            // No rejected topic is documented for actions: counted and noted only.
            state.count("actions_invalid");
            state.note(format!("invalid action on {topic}: {e}"));
            return Vec::new();
        }
    };
    match topics::action_type(entity, id, &a.kind) {
        Ok(sub) => {
            state.count("actions_relayed");
            vec![Message::new(sub, a.relayed().encode())]
        }
        Err(e) => {
            state.count("actions_invalid");
            state.note(format!("invalid action on {topic}: {e}"));
            Vec::new()
        }
    }
}
