//! Fault alarms on `devices|buildings/(:id)/fault_alarms`: the fields of the documentation's two
//! examples (`id`, `timestamp`, `priority`, `level`, `type`, `device`, `notes`, `value`,
//! `description`). Encode and decode side by side. Which fields are required is inferred: the
//! ones both examples carry and that give an alarm its meaning (`timestamp`, `priority`,
//! `level`, `type`); `priority` is 0–255 (the example's 255 is the top). Pure.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::error::{
    PayloadError, check_timestamp, extra_fields, kind_of, opt_string, parse_json, req_string,
};

/// A fault alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultAlarm {
    /// Alarm id (the device example has one, the building example not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When raised, RFC 3339.
    pub timestamp: String,
    /// 0–255.
    pub priority: u8,
    /// Severity, e.g. `info`.
    pub level: String,
    /// Alarm type, e.g. `high_temperature`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The device the alarm is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Free notes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Measured values, e.g. `{"temp": 100}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Human description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Other fields, kept as received.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

const FIELDS: [&str; 9] = [
    "id",
    "timestamp",
    "priority",
    "level",
    "type",
    "device",
    "notes",
    "value",
    "description",
];

impl FaultAlarm {
    /// An alarm with the required fields only.
    pub fn new(
        kind: impl Into<String>,
        level: impl Into<String>,
        priority: u8,
        timestamp: impl Into<String>,
    ) -> Self {
        FaultAlarm {
            id: None,
            timestamp: timestamp.into(),
            priority,
            level: level.into(),
            kind: kind.into(),
            device: None,
            notes: None,
            value: None,
            description: None,
            extra: BTreeMap::new(),
        }
    }

    /// The JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a fault alarm: an object with string `timestamp`, `level`, `type` and an integer
    /// `priority` from 0 to 255; optional strings `id`, `device`, `notes`, `description`.
    pub fn decode(bytes: &[u8]) -> Result<FaultAlarm, PayloadError> {
        let v = parse_json("fault alarm", bytes)?;
        let obj = v.as_object().ok_or_else(|| PayloadError::WrongShape {
            position: String::new(),
            expected: "a fault alarm object",
            found: kind_of(&v),
        })?;
        let priority = match obj.get("priority") {
            None => {
                return Err(PayloadError::Missing {
                    position: "/".into(),
                    field: "priority",
                });
            }
            Some(p) => p
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| PayloadError::WrongShape {
                    position: "/priority".into(),
                    expected: "an integer from 0 to 255",
                    found: kind_of(p),
                })?,
        };
        Ok(FaultAlarm {
            id: opt_string(obj, "id", "")?,
            timestamp: req_string(obj, "timestamp", "")?,
            priority,
            level: req_string(obj, "level", "")?,
            kind: req_string(obj, "type", "")?,
            device: opt_string(obj, "device", "")?,
            notes: opt_string(obj, "notes", "")?,
            value: obj.get("value").cloned(),
            description: opt_string(obj, "description", "")?,
            extra: extra_fields(obj, &FIELDS),
        })
    }

    /// Checks the timestamp and that `level` and `type` are not empty.
    pub fn validate(&self) -> Result<(), PayloadError> {
        check_timestamp(&self.timestamp, "/timestamp".into())?;
        for (field, v) in [("/level", &self.level), ("/type", &self.kind)] {
            if v.trim().is_empty() {
                return Err(PayloadError::Invalid {
                    position: field.into(),
                    problem: "must not be empty".into(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_must_fit_in_a_byte() {
        let base = |p: &str| {
            format!(
                r#"{{"timestamp":"2020-02-17T15:47:53.046570Z","priority":{p},"level":"info","type":"t"}}"#
            )
        };
        assert!(FaultAlarm::decode(base("255").as_bytes()).is_ok());
        for bad in ["256", "-1", "1.5", "\"1\""] {
            let e = FaultAlarm::decode(base(bad).as_bytes()).unwrap_err();
            assert_eq!(e.position(), "/priority", "{bad}");
        }
    }

    #[test]
    fn missing_level_is_named() {
        let e =
            FaultAlarm::decode(br#"{"timestamp":"2020-02-17T15:47:53Z","priority":1,"type":"t"}"#)
                .unwrap_err();
        assert_eq!(
            e,
            PayloadError::Missing {
                position: "/".into(),
                field: "level"
            }
        );
    }
}
