//! The device state the shadow controls, and how it gates telemetry. The seed README shows two
//! attributes, `event_publishing_enabled` (bool) and `event_type_blacklist` (array of event
//! types); the reference code stored them but never used them. Here they decide whether `run`
//! sends an event. Other attributes are kept and reported back as they are. Pure.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::protocol::shadow::state::merge_patch;

/// Attribute: telemetry on or off.
pub const EVENT_PUBLISHING_ENABLED: &str = "event_publishing_enabled";
/// Attribute: event types not to send.
pub const EVENT_TYPE_BLACKLIST: &str = "event_type_blacklist";

/// The state a fresh device reports (the README's example).
pub fn initial_state() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(EVENT_PUBLISHING_ENABLED.into(), json!(true));
    m.insert(EVENT_TYPE_BLACKLIST.into(), json!([]));
    m
}

/// A desired attribute the device could not apply.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Invalid {
    /// Attribute.
    pub key: String,
    /// What it must be.
    pub expected: &'static str,
    /// What it was.
    pub found: String,
}

/// What applying a desired document changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Attributes whose value changed.
    pub changed: Vec<String>,
    /// Attributes refused (wrong type); the device keeps its value, so the delta stays open.
    pub invalid: Vec<Invalid>,
}

fn check(key: &str, v: &Value) -> Result<(), &'static str> {
    match key {
        EVENT_PUBLISHING_ENABLED if !v.is_boolean() => Err("true or false"),
        EVENT_TYPE_BLACKLIST if !v.as_array().is_some_and(|a| a.iter().all(Value::is_string)) => {
            Err("an array of event type strings")
        }
        _ => Ok(()),
    }
}

/// Applies desired attributes to the device state (merge rules as the shadow's), refusing
/// values of the wrong type for the attributes the device understands.
pub fn apply_desired(state: &mut Map<String, Value>, desired: &Map<String, Value>) -> Applied {
    let mut applied = Applied::default();
    for (k, v) in desired {
        if let Err(expected) = check(k, v) {
            applied.invalid.push(Invalid {
                key: k.clone(),
                expected,
                found: crate::protocol::json::kind(v).into(),
            });
            continue;
        }
        let before = state.get(k).cloned();
        let mut patch = Map::new();
        patch.insert(k.clone(), v.clone());
        merge_patch(state, &patch);
        if state.get(k) != before.as_ref() {
            applied.changed.push(k.clone());
        }
    }
    applied
}

/// Whether an event may be sent, from the device state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryGate {
    /// `event_publishing_enabled`.
    pub enabled: bool,
    /// `event_type_blacklist`.
    pub blacklist: BTreeSet<String>,
}

/// Why the gate held an event back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Blocked {
    /// Publishing is off.
    #[error("the shadow's desired state turned telemetry off (event_publishing_enabled = false)")]
    Disabled,
    /// The type is blacklisted.
    #[error("event type `{0}` is in the shadow's event_type_blacklist")]
    Blacklisted(String),
}

impl TelemetryGate {
    /// The gate of a device state (missing attributes: enabled, nothing blacklisted).
    pub fn of(state: &Map<String, Value>) -> Self {
        TelemetryGate {
            enabled: state
                .get(EVENT_PUBLISHING_ENABLED)
                .and_then(Value::as_bool)
                .unwrap_or(true),
            blacklist: state
                .get(EVENT_TYPE_BLACKLIST)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Checks one event type.
    pub fn check(&self, event_type: &str) -> Result<(), Blocked> {
        if !self.enabled {
            return Err(Blocked::Disabled);
        }
        if self.blacklist.contains(event_type) {
            return Err(Blocked::Blacklisted(event_type.to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(v: &Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn readme_desired_applies_and_gates() {
        let mut s = initial_state();
        let a = apply_desired(
            &mut s,
            &m(&json!({"event_publishing_enabled": true, "event_type_blacklist": ["ODA"]})),
        );
        assert_eq!(a.changed, vec![EVENT_TYPE_BLACKLIST.to_owned()]);
        let g = TelemetryGate::of(&s);
        assert_eq!(g.check("ODA"), Err(Blocked::Blacklisted("ODA".into())));
        assert_eq!(g.check("reference-client-test"), Ok(()));
        apply_desired(&mut s, &m(&json!({"event_publishing_enabled": false})));
        assert_eq!(TelemetryGate::of(&s).check("x"), Err(Blocked::Disabled));
    }

    #[test]
    fn wrong_types_are_refused_and_unknown_keys_kept() {
        let mut s = initial_state();
        let a = apply_desired(
            &mut s,
            &m(
                &json!({"event_publishing_enabled": "no", "event_type_blacklist": [1], "color": {"r": 1}}),
            ),
        );
        assert_eq!(a.invalid.len(), 2);
        assert_eq!(a.changed, vec!["color".to_owned()]);
        assert_eq!(s["event_publishing_enabled"], json!(true));
        assert_eq!(s["color"], json!({"r": 1}));
    }
}
