//! Head counts on `areas|spaces|buildings/(:id)/meta/head_count|headcount_in|headcount_out`:
//! `{"name": "headcount", "value": 2}`. Note the documentation's examples name the payload of
//! `head_count` topics `headcount` (no underscore) and those of the in/out topics after the topic.
//! Encode and decode side by side. The value is a non-negative integer (inferred from the
//! examples: 2, 5, 20). Pure.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::error::{PayloadError, extra_fields, kind_of, parse_json, req_string};
use super::topics::HeadCountKind;

/// A head count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeadCount {
    /// `headcount`, `headcount_in` or `headcount_out`.
    pub name: String,
    /// People counted.
    pub value: u64,
    /// Other fields, kept as received.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl HeadCount {
    /// The documented payload for `kind`: its name and `value`.
    pub fn new(kind: HeadCountKind, value: u64) -> Self {
        HeadCount {
            name: kind.payload_name().to_owned(),
            value,
            extra: BTreeMap::new(),
        }
    }

    /// The JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a head count: a string `name` and a non-negative integer `value`.
    pub fn decode(bytes: &[u8]) -> Result<HeadCount, PayloadError> {
        let v = parse_json("head count", bytes)?;
        let obj = v.as_object().ok_or_else(|| PayloadError::WrongShape {
            position: String::new(),
            expected: "an object like {\"name\": \"headcount\", \"value\": 2}",
            found: kind_of(&v),
        })?;
        let value = match obj.get("value") {
            None => {
                return Err(PayloadError::Missing {
                    position: "/".into(),
                    field: "value",
                });
            }
            Some(n) => n.as_u64().ok_or_else(|| PayloadError::WrongShape {
                position: "/value".into(),
                expected: "a whole number of people (0 or more)",
                found: kind_of(n),
            })?,
        };
        Ok(HeadCount {
            name: req_string(obj, "name", "")?,
            value,
            extra: extra_fields(obj, &["name", "value"]),
        })
    }

    /// Checks that the name is the one documented for the topic's `kind`.
    pub fn validate(&self, kind: HeadCountKind) -> Result<(), PayloadError> {
        if self.name == kind.payload_name() {
            Ok(())
        } else {
            Err(PayloadError::Invalid {
                position: "/name".into(),
                problem: format!(
                    "`{}` on a `{}` topic; the documented name is `{}`",
                    self.name.chars().take(80).collect::<String>(),
                    kind.level(),
                    kind.payload_name()
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_count_topic_carries_headcount() {
        let h = HeadCount::new(HeadCountKind::HeadCount, 2);
        assert_eq!(h.encode(), br#"{"name":"headcount","value":2}"#);
        assert!(h.validate(HeadCountKind::HeadCount).is_ok());
        assert!(h.validate(HeadCountKind::In).is_err());
        assert!(HeadCount::decode(br#"{"name":"headcount","value":-1}"#).is_err());
    }
}
