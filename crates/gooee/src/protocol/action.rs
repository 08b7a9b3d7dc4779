//! Actions: what a client publishes on `devices|spaces/(:id)/actions` (with its `type`) and what
//! the platform relays on `.../actions/(:type)` (the same object without `type`, as the
//! documentation's examples show). Both directions side by side. Pure: no I/O, no clock.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::error::{PayloadError, check_timestamp, extra_fields, kind_of, opt_string, parse_json};
use super::topics::check_level;

/// An action as published on `.../actions`, e.g. `{"name": "Dim Device", "type": "dim",
/// "target_type": "device", "target_id": "…", "value": {"level": 80}, "created": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// Label, e.g. `Dim Device`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Action type, e.g. `dim`, `on`, `off`, `adjust`; it names the relay topic.
    #[serde(rename = "type")]
    pub kind: String,
    /// `device` or `space`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    /// Id of the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    /// Parameters, e.g. `{"level": 80, "transition_time": 5}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// When created, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Other fields, kept as received.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

const FIELDS: [&str; 6] = [
    "name",
    "type",
    "target_type",
    "target_id",
    "value",
    "created",
];

/// An action as relayed on `.../actions/(:type)`: the action without its `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelayedAction {
    /// Label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `device` or `space`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    /// Id of the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    /// Parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// When created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Other fields, kept as received.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

fn object<'a>(
    v: &'a Value,
    expected: &'static str,
) -> Result<&'a serde_json::Map<String, Value>, PayloadError> {
    v.as_object().ok_or_else(|| PayloadError::WrongShape {
        position: String::new(),
        expected,
        found: kind_of(v),
    })
}

impl Action {
    /// An action of type `kind` with no other fields.
    pub fn new(kind: impl Into<String>) -> Self {
        Action {
            name: None,
            kind: kind.into(),
            target_type: None,
            target_id: None,
            value: None,
            created: None,
            extra: BTreeMap::new(),
        }
    }

    /// The JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads an action; `type` is required (it names the relay topic).
    pub fn decode(bytes: &[u8]) -> Result<Action, PayloadError> {
        let v = parse_json("action", bytes)?;
        let obj = object(&v, "an action object with a `type`")?;
        Ok(Action {
            name: opt_string(obj, "name", "")?,
            kind: super::error::req_string(obj, "type", "")?,
            target_type: opt_string(obj, "target_type", "")?,
            target_id: opt_string(obj, "target_id", "")?,
            value: obj.get("value").cloned(),
            created: opt_string(obj, "created", "")?,
            extra: extra_fields(obj, &FIELDS),
        })
    }

    /// Checks what the relay and the documentation need: a `type` that can be one topic level,
    /// a `value` that is an object when present, an RFC 3339 `created`.
    pub fn validate(&self) -> Result<(), PayloadError> {
        check_level("action type", &self.kind).map_err(|e| PayloadError::Invalid {
            position: "/type".into(),
            problem: e.to_string(),
        })?;
        if let Some(v) = &self.value
            && !v.is_object()
        {
            return Err(PayloadError::WrongShape {
                position: "/value".into(),
                expected: "an object, e.g. {\"level\": 80, \"transition_time\": 5}",
                found: kind_of(v),
            });
        }
        if let Some(c) = &self.created {
            check_timestamp(c, "/created".into())?;
        }
        Ok(())
    }

    /// The relayed form (without `type`).
    pub fn relayed(&self) -> RelayedAction {
        RelayedAction {
            name: self.name.clone(),
            target_type: self.target_type.clone(),
            target_id: self.target_id.clone(),
            value: self.value.clone(),
            created: self.created.clone(),
            extra: self.extra.clone(),
        }
    }
}

impl RelayedAction {
    /// The JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a relayed action.
    pub fn decode(bytes: &[u8]) -> Result<RelayedAction, PayloadError> {
        let v = parse_json("relayed action", bytes)?;
        let obj = object(&v, "an action object")?;
        Ok(RelayedAction {
            name: opt_string(obj, "name", "")?,
            target_type: opt_string(obj, "target_type", "")?,
            target_id: opt_string(obj, "target_id", "")?,
            value: obj.get("value").cloned(),
            created: opt_string(obj, "created", "")?,
            extra: extra_fields(
                obj,
                &["name", "target_type", "target_id", "value", "created"],
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_is_required_and_must_be_one_level() {
        assert!(matches!(
            Action::decode(br#"{"name":"x"}"#),
            Err(PayloadError::Missing { field: "type", .. })
        ));
        let a = Action::decode(br#"{"type":"a/b"}"#).unwrap();
        assert!(a.validate().is_err());
        let a = Action::decode(br#"{"type":"dim","value":5}"#).unwrap();
        assert!(a.validate().is_err());
    }
}
