//! The envelope every request and platform answer shares: requests carry a client-chosen `id`
//! and `data`; platform messages carry their own `id`, a `correlationId` and the `requestId` of
//! the request they answer. Plus the strict JSON decoder used for every inbound payload and the
//! `Scalar` type for fields that the docs send as strings but others send as numbers.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest payload any decoder accepts (the 128 KB Asset Modeler limit, with headroom for
/// base64 files within the 256 KiB packet limit of the transport).
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// A request: `{"id": ..., "data": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request<T> {
    /// Client-chosen request id (the sample uses uuid4 strings).
    pub id: String,
    /// The body.
    pub data: T,
}

/// A platform answer: `{"id", "correlationId", "requestId", "data"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply<T> {
    /// Platform message id.
    pub id: String,
    /// Platform correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The `id` of the request this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The body.
    pub data: T,
}

/// An inbound payload that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Larger than [`MAX_PAYLOAD`].
    #[error("{what} of {size} bytes is larger than the {MAX_PAYLOAD}-byte limit")]
    TooLarge {
        /// What was expected.
        what: &'static str,
        /// Size.
        size: usize,
    },
    /// Not UTF-8 JSON of the expected shape; `reason` names the field.
    #[error("{what} is not valid: {reason}")]
    Invalid {
        /// What was expected, e.g. "token response".
        what: &'static str,
        /// serde's message: the missing or mistyped field and where.
        reason: String,
    },
}

/// Decodes `payload` as `T`, describing it as `what` in errors. Never panics.
pub fn decode<T: DeserializeOwned>(what: &'static str, payload: &[u8]) -> Result<T, DecodeError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(DecodeError::TooLarge {
            what,
            size: payload.len(),
        });
    }
    serde_json::from_slice(payload).map_err(|e| DecodeError::Invalid {
        what,
        reason: e.to_string(),
    })
}

/// Encodes a payload. Our types contain only strings, numbers, maps and vectors with string
/// keys, so encoding cannot fail; should it anyway, the result is `{}` and a log line.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|e| {
        tracing::error!("cannot encode a MindConnect payload: {e}");
        b"{}".to_vec()
    })
}

/// A JSON scalar in a field the docs send as a string (`"value": "31"`, `"qualityCode": "0"`,
/// `"severity": "20"`) and other clients send as a number or boolean. Kept as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A string (the documented form).
    Text(String),
    /// A number.
    Number(serde_json::Number),
    /// A boolean.
    Bool(bool),
}

impl Scalar {
    /// The value as text (numbers and booleans in their JSON spelling).
    pub fn as_text(&self) -> String {
        match self {
            Scalar::Text(s) => s.clone(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }

    /// The value as a number, when it is one or a string holding one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Text(s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
            Scalar::Number(n) => n.as_f64(),
            Scalar::Bool(_) => None,
        }
    }

    /// The value as an integer, when it is one (or a string holding one).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Scalar::Text(s) => s.trim().parse().ok(),
            Scalar::Number(n) => n.as_i64(),
            Scalar::Bool(_) => None,
        }
    }
}

impl From<&str> for Scalar {
    fn from(s: &str) -> Self {
        Scalar::Text(s.to_owned())
    }
}

impl From<String> for Scalar {
    fn from(s: String) -> Self {
        Scalar::Text(s)
    }
}

#[cfg(test)]
pub(crate) mod strategies {
    //! proptest strategies shared by the payload modules' tests.
    use super::Scalar;
    use proptest::prelude::*;

    /// Printable text including quotes, backslashes and non-ASCII.
    pub fn text() -> impl Strategy<Value = String> {
        "\\PC{0,24}"
    }

    /// Any scalar.
    pub fn scalar() -> impl Strategy<Value = Scalar> {
        prop_oneof![
            text().prop_map(Scalar::Text),
            any::<i64>().prop_map(|n| Scalar::Number(n.into())),
            // Binary fractions survive serde_json's float parsing exactly.
            (-1_000_000_000i64..1_000_000_000)
                .prop_filter_map("finite", |n| serde_json::Number::from_f64(n as f64 / 8.0))
                .prop_map(Scalar::Number),
            any::<bool>().prop_map(Scalar::Bool),
        ]
    }

    /// Arbitrary bytes, often JSON-looking.
    pub fn hostile() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            "\\PC{0,200}".prop_map(String::into_bytes),
            r#"\{"(id|data|requestId|timeseries|events|file)": ?(null|1|"x"|\[\]|\{\}|\{"[a-zA-Z]{1,12}": ?(null|1|"x"|\[\]|\{\})\})\}"#
                .prop_map(String::into_bytes),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_reads_documented_strings_and_numbers() {
        let v: Vec<Scalar> = serde_json::from_str(r#"["600", 1.5, true, "-1"]"#).unwrap();
        assert_eq!(v[0].as_f64(), Some(600.0));
        assert_eq!(v[1].as_text(), "1.5");
        assert_eq!(v[2].as_f64(), None);
        assert_eq!(v[3].as_i64(), Some(-1));
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"["600",1.5,true,"-1"]"#
        );
    }

    #[test]
    fn decode_names_the_missing_field_and_refuses_huge_payloads() {
        let e =
            decode::<Request<serde_json::Value>>("token request", br#"{"data":1}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("token request is not valid: missing field `id`"),
            "{e}"
        );
        let big = vec![b' '; MAX_PAYLOAD + 1];
        assert!(matches!(
            decode::<Request<()>>("x", &big),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}
