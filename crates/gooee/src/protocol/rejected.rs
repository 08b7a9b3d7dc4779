//! Rejected messages on `.../rejected` topics: `{"error": {"message", "context"}, "data"}`, the
//! platform's only feedback on a publish it did not accept. The platform side encodes them, the
//! agent decodes them. Pure.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{PayloadError, kind_of, parse_json};

/// The `error` object of a rejection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionError {
    /// What went wrong, e.g. `Invalid payload due to regex pattern not matching. …`.
    pub message: String,
    /// The constraint that failed (a JSON-schema fragment in the documentation's example).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub context: Value,
}

/// A rejected publish: the error and the data that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Why.
    pub error: RejectionError,
    /// What was published (as the platform parsed it).
    #[serde(default)]
    pub data: Value,
}

impl Rejection {
    /// The JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a rejection; `error.message` must be a string, `context` and `data` may be anything.
    pub fn decode(bytes: &[u8]) -> Result<Rejection, PayloadError> {
        let v = parse_json("rejection", bytes)?;
        let error = v.get("error").ok_or_else(|| PayloadError::Missing {
            position: "/".into(),
            field: "error",
        })?;
        let message = match error.get("message") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(PayloadError::WrongShape {
                    position: "/error/message".into(),
                    expected: "a string",
                    found: kind_of(other),
                });
            }
            None => {
                return Err(PayloadError::Missing {
                    position: "/error".into(),
                    field: "message",
                });
            }
        };
        Ok(Rejection {
            error: RejectionError {
                message,
                context: error.get("context").cloned().unwrap_or(Value::Null),
            },
            data: v.get("data").cloned().unwrap_or(Value::Null),
        })
    }

    /// Whether `data` is what `sent` (JSON bytes) held.
    pub fn is_about(&self, sent: &[u8]) -> bool {
        serde_json::from_slice::<Value>(sent).is_ok_and(|v| v == self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_required_and_must_be_text() {
        assert!(Rejection::decode(br#"{"error":{"message":"m"}}"#).is_ok());
        assert!(Rejection::decode(br#"{"error":{}}"#).is_err());
        assert!(Rejection::decode(br#"{"error":{"message":1}}"#).is_err());
        assert!(Rejection::decode(b"[]").is_err());
        assert!(Rejection::decode(br#"{"name":"rejected","value":1}"#).is_err());
    }
}
