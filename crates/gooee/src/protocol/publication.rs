//! A publish ready to send: topic (checked against the table), payload bytes (checked, unless
//! the caller asks to let the platform judge), and the rejected topic that reports on it. The
//! agent sends these; nothing here does I/O.

use super::action::Action;
use super::alarm::FaultAlarm;
use super::error::PayloadError;
use super::headcount::HeadCount;
use super::meta::MetaList;
use super::topics::{self, Entity, HeadCountKind, TopicError};

/// How much to check before sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Check {
    /// The topic table and the payload rules (name rule, known meta types, required fields).
    #[default]
    Full,
    /// The topic table only (a topic outside it would drop the connection); the payload goes
    /// as given, so the platform's own verdict can be seen on the rejected topic.
    TopicOnly,
}

/// Why a publication could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublicationError {
    /// Bad id or a topic the table refuses.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The payload breaks a documented rule.
    #[error("{what} for `{topic}` refused before sending: {source}")]
    Payload {
        /// `meta`, `action`, `fault alarm`, `head count`.
        what: &'static str,
        /// Where it was going.
        topic: String,
        /// What is wrong.
        source: Box<PayloadError>,
    },
}

/// A message for Gooee's broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// Topic (allowed for publishing by the table).
    pub topic: String,
    /// JSON payload.
    pub payload: Vec<u8>,
    /// Where the platform reports a rejection of it, if the table has such a topic.
    pub rejected_topic: Option<String>,
}

fn build(
    topic: String,
    what: &'static str,
    check: Check,
    validate: impl FnOnce() -> Result<(), PayloadError>,
    payload: impl FnOnce() -> Vec<u8>,
) -> Result<Publication, PublicationError> {
    topics::check_publish(&topic).map_err(TopicError::from)?;
    if check == Check::Full {
        validate().map_err(|source| PublicationError::Payload {
            what,
            topic: topic.clone(),
            source: Box::new(source),
        })?;
    }
    Ok(Publication {
        rejected_topic: topics::rejected_for(&topic),
        payload: payload(),
        topic,
    })
}

impl Publication {
    /// Device meta on `devices/{device}/meta`.
    pub fn meta(device: &str, list: &MetaList, check: Check) -> Result<Self, PublicationError> {
        build(
            topics::device_meta(device)?,
            "meta",
            check,
            || list.validate(),
            || list.encode(),
        )
    }

    /// An action on `devices|spaces|buildings/{id}/actions` (the table refuses buildings).
    pub fn action(
        entity: Entity,
        id: &str,
        action: &Action,
        check: Check,
    ) -> Result<Self, PublicationError> {
        build(
            topics::actions(entity, id)?,
            "action",
            check,
            || action.validate(),
            || action.encode(),
        )
    }

    /// A fault alarm on `devices|buildings/{id}/fault_alarms`.
    pub fn fault_alarm(
        entity: Entity,
        id: &str,
        alarm: &FaultAlarm,
        check: Check,
    ) -> Result<Self, PublicationError> {
        build(
            topics::fault_alarms(entity, id)?,
            "fault alarm",
            check,
            || alarm.validate(),
            || alarm.encode(),
        )
    }

    /// A head count on `areas|spaces|buildings/{id}/meta/{kind}`.
    pub fn head_count(
        entity: Entity,
        id: &str,
        kind: HeadCountKind,
        count: &HeadCount,
        check: Check,
    ) -> Result<Self, PublicationError> {
        build(
            topics::head_count(entity, id, kind)?,
            "head count",
            check,
            || count.validate(kind),
            || count.encode(),
        )
    }

    /// Payload bytes as given (e.g. `--data` with `--no-local-check`), to a topic the table allows.
    pub fn raw(topic: String, payload: Vec<u8>) -> Result<Self, PublicationError> {
        build(topic, "payload", Check::TopicOnly, || Ok(()), || payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::meta::MetaEntry;

    #[test]
    fn invalid_names_are_refused_unless_only_the_topic_is_checked() {
        let list = MetaList(vec![MetaEntry::new("Meta_New", serde_json::json!(10))]);
        let e = Publication::meta("d1", &list, Check::Full)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Meta_New") && e.contains("devices/d1/meta"),
            "{e}"
        );
        let p = Publication::meta("d1", &list, Check::TopicOnly).unwrap();
        assert_eq!(
            p.rejected_topic.as_deref(),
            Some("devices/d1/meta/rejected")
        );
    }

    #[test]
    fn building_actions_are_refused_with_alternatives() {
        let a = Action::decode(br#"{"type":"off"}"#).unwrap();
        let e = Publication::action(Entity::Building, "b1", &a, Check::Full)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("subscribe-only") && e.contains("buildings/b1/fault_alarms"),
            "{e}"
        );
    }
}
