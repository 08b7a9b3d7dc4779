//! The device-shadow documents (device-shadow-document-syntax.md): the request state document
//! (`state.desired`/`state.reported`, `clientToken`, `version`), the response documents of
//! `accepted`, `delta`, `documents` and `delete/accepted`, and the error document. Each type
//! encodes and decodes; the update request's decoder is the strict one the shadow service uses,
//! answering with AWS's codes and messages (device-shadow-error-messages.html). Pure.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::protocol::json::{FieldError, depth};
use crate::protocol::shadow::state::has_null_in_array;

/// Longest `clientToken`, in bytes.
pub const MAX_CLIENT_TOKEN: usize = 64;
/// Deepest nesting of a `desired` or `reported` section.
pub const MAX_DEPTH: usize = 6;
/// Largest state (desired + reported, metadata excluded), in bytes.
pub const MAX_STATE_BYTES: usize = 8 * 1024;

/// An AWS shadow error: HTTP-like code and message, echoing the request's `clientToken`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {message}")]
pub struct Rejection {
    /// 400, 404, 409, 413, 415, ...
    pub code: u16,
    /// AWS's message.
    pub message: String,
    /// The request's token, when it had a valid one.
    pub client_token: Option<String>,
}

impl Rejection {
    fn new(code: u16, message: &str, client_token: Option<&str>) -> Self {
        Rejection {
            code,
            message: message.to_owned(),
            client_token: client_token.map(str::to_owned),
        }
    }
}

/// One section of an update request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Section {
    /// Not in the request.
    #[default]
    Absent,
    /// `null`: remove the whole section.
    Clear,
    /// Fields to merge (`null` members delete).
    Set(Map<String, Value>),
}

impl Section {
    fn to_value(&self) -> Option<Value> {
        match self {
            Section::Absent => None,
            Section::Clear => Some(Value::Null),
            Section::Set(m) => Some(Value::Object(m.clone())),
        }
    }
}

/// A request state document (what `/update` carries).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateRequest {
    /// `state.desired`.
    pub desired: Section,
    /// `state.reported`.
    pub reported: Section,
    /// `clientToken`.
    pub client_token: Option<String>,
    /// `version`: apply only if the shadow is at this version.
    pub version: Option<u64>,
}

impl UpdateRequest {
    /// The JSON body.
    pub fn encode(&self) -> Vec<u8> {
        let mut state = Map::new();
        if let Some(v) = self.desired.to_value() {
            state.insert("desired".into(), v);
        }
        if let Some(v) = self.reported.to_value() {
            state.insert("reported".into(), v);
        }
        let mut doc = Map::new();
        doc.insert("state".into(), Value::Object(state));
        if let Some(t) = &self.client_token {
            doc.insert("clientToken".into(), Value::String(t.clone()));
        }
        if let Some(v) = self.version {
            doc.insert("version".into(), Value::from(v));
        }
        serde_json::to_vec(&Value::Object(doc)).unwrap_or_default()
    }

    /// Decodes and checks a request as the shadow service does.
    pub fn decode(bytes: &[u8]) -> Result<UpdateRequest, Rejection> {
        let text = std::str::from_utf8(bytes).map_err(|_| {
            Rejection::new(
                415,
                "Unsupported documented encoding; supported encoding is UTF-8",
                None,
            )
        })?;
        let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(text) else {
            return Err(Rejection::new(400, "Invalid JSON", None));
        };
        let token = match doc.get("clientToken") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if t.len() <= MAX_CLIENT_TOKEN => Some(t.as_str()),
            Some(_) => return Err(Rejection::new(400, "Invalid clientToken", None)),
        };
        let reject = |code, message: &str| Rejection::new(code, message, token);
        let version = match doc.get("version") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => {
                Some(n.as_u64().ok_or_else(|| reject(400, "Invalid version"))?)
            }
            Some(_) => return Err(reject(400, "Invalid version")),
        };
        let state = match doc.get("state") {
            None => return Err(reject(400, "Missing required node: state")),
            Some(Value::Object(s)) => s,
            Some(_) => return Err(reject(400, "State node must be an object")),
        };
        if state.keys().any(|k| k != "desired" && k != "reported") {
            return Err(reject(400, "State contains an invalid node"));
        }
        let section = |key: &str, message: &str| -> Result<Section, Rejection> {
            match state.get(key) {
                None => Ok(Section::Absent),
                Some(Value::Null) => Ok(Section::Clear),
                Some(v @ Value::Object(m)) => {
                    if depth(v) > MAX_DEPTH {
                        return Err(reject(
                            400,
                            "JSON contains too many levels of nesting; maximum is 6",
                        ));
                    }
                    if has_null_in_array(v) {
                        return Err(reject(400, "State contains an invalid node"));
                    }
                    Ok(Section::Set(m.clone()))
                }
                Some(_) => Err(reject(400, message)),
            }
        };
        let desired = section("desired", "Desired node must be an object")?;
        let reported = section("reported", "Reported node must be an object")?;
        if serde_json::to_vec(state).map_or(0, |b| b.len()) > MAX_STATE_BYTES {
            return Err(reject(413, "The payload exceeds the maximum size allowed"));
        }
        Ok(UpdateRequest {
            desired,
            reported,
            client_token: token.map(str::to_owned),
            version,
        })
    }
}

/// The optional body of `/get` and `/delete`: only a `clientToken` matters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenRequest {
    /// Echoed in the answer.
    #[serde(
        rename = "clientToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_token: Option<String>,
}

impl TokenRequest {
    /// The body (`{}` or `{"clientToken": …}`).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The token of a `/get` or `/delete` body; anything unreadable means none (AWS ignores
    /// the content of these requests).
    pub fn token_of(bytes: &[u8]) -> Option<String> {
        serde_json::from_slice::<TokenRequest>(bytes)
            .ok()
            .and_then(|t| t.client_token)
            .filter(|t| t.len() <= MAX_CLIENT_TOKEN)
    }
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// `state` of a response: sections present only when they have data (`null` kept as given in
/// an `update/accepted`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StateDoc {
    /// `desired`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub desired: Option<Value>,
    /// `reported`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub reported: Option<Value>,
    /// `delta` (in `get/accepted` only).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub delta: Option<Value>,
}

macro_rules! codec {
    ($t:ty, $what:literal) => {
        impl $t {
            /// The JSON body.
            pub fn encode(&self) -> Vec<u8> {
                serde_json::to_vec(self).unwrap_or_default()
            }

            /// Decodes a body.
            pub fn decode(bytes: &[u8]) -> Result<Self, FieldError> {
                serde_json::from_slice(bytes).map_err(|e| FieldError {
                    what: $what,
                    field: "(document)".into(),
                    expected: concat!("a ", $what),
                    found: e.to_string(),
                })
            }
        }
    };
}

/// `get/accepted` and `update/accepted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseDoc {
    /// The state (whole for get; the request's fields for update).
    pub state: StateDoc,
    /// Timestamps per attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Shadow version.
    pub version: u64,
    /// Epoch seconds.
    pub timestamp: i64,
    /// The request's token.
    #[serde(
        rename = "clientToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_token: Option<String>,
}
codec!(ResponseDoc, "shadow response document");

/// `update/delta`: the flat state of desired attributes differing from reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaDoc {
    /// Differing desired attributes.
    pub state: Map<String, Value>,
    /// Their timestamps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Shadow version.
    pub version: u64,
    /// Epoch seconds.
    pub timestamp: i64,
    /// Token of the update that caused it.
    #[serde(
        rename = "clientToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_token: Option<String>,
}
codec!(DeltaDoc, "shadow delta document");

/// Error document on `…/rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDoc {
    /// HTTP-like code.
    pub code: u16,
    /// Message.
    pub message: String,
    /// Epoch seconds (not always present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// The request's token.
    #[serde(
        rename = "clientToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_token: Option<String>,
}
codec!(ErrorDoc, "shadow error document");

impl ErrorDoc {
    /// The document for a rejection.
    pub fn from_rejection(r: &Rejection, timestamp: i64) -> Self {
        ErrorDoc {
            code: r.code,
            message: r.message.clone(),
            timestamp: Some(timestamp),
            client_token: r.client_token.clone(),
        }
    }
}

/// One side of `update/documents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Desired and reported.
    pub state: StateDoc,
    /// Timestamps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Version.
    pub version: u64,
}

/// `update/documents`: the shadow before and after an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentsDoc {
    /// Before (absent when the update created the shadow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Snapshot>,
    /// After.
    pub current: Snapshot,
    /// Epoch seconds.
    pub timestamp: i64,
    /// The update's token.
    #[serde(
        rename = "clientToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_token: Option<String>,
}
codec!(DocumentsDoc, "shadow documents document");

/// `delete/accepted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteAcceptedDoc {
    /// Version of the deleted shadow.
    pub version: u64,
    /// Epoch seconds.
    pub timestamp: i64,
    /// The request's token.
    #[serde(
        rename = "clientToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_token: Option<String>,
}
codec!(DeleteAcceptedDoc, "shadow delete response");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn rej(body: &str) -> (u16, String) {
        let r = UpdateRequest::decode(body.as_bytes()).unwrap_err();
        (r.code, r.message)
    }

    #[test]
    fn documented_error_messages() {
        assert_eq!(rej("{"), (400, "Invalid JSON".into()));
        assert_eq!(rej("{}"), (400, "Missing required node: state".into()));
        assert_eq!(
            rej(r#"{"state":1}"#),
            (400, "State node must be an object".into())
        );
        assert_eq!(
            rej(r#"{"state":{"desired":[1]}}"#),
            (400, "Desired node must be an object".into())
        );
        assert_eq!(
            rej(r#"{"state":{"reported":"x"}}"#),
            (400, "Reported node must be an object".into())
        );
        assert_eq!(
            rej(r#"{"state":{},"version":-1}"#),
            (400, "Invalid version".into())
        );
        assert_eq!(
            rej(&format!(
                r#"{{"state":{{}},"clientToken":"{}"}}"#,
                "x".repeat(65)
            )),
            (400, "Invalid clientToken".into())
        );
        assert_eq!(
            rej(r#"{"state":{"desired":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}}}"#),
            (
                400,
                "JSON contains too many levels of nesting; maximum is 6".into()
            )
        );
        assert_eq!(
            rej(r#"{"state":{"desired":{"colors":[null,"RED"]}}}"#),
            (400, "State contains an invalid node".into())
        );
        assert_eq!(
            rej(r#"{"state":{"delta":{}}}"#),
            (400, "State contains an invalid node".into())
        );
        let big = format!(
            r#"{{"state":{{"reported":{{"x":"{}"}}}}}}"#,
            "y".repeat(9000)
        );
        assert_eq!(rej(&big).0, 413);
        let r = UpdateRequest::decode(&[0xff, 0xfe]).unwrap_err();
        assert_eq!(r.code, 415);
    }

    #[test]
    fn rejections_echo_a_valid_token() {
        let r = UpdateRequest::decode(br#"{"clientToken":"t1","state":3}"#).unwrap_err();
        assert_eq!(r.client_token.as_deref(), Some("t1"));
    }

    #[test]
    fn six_levels_are_allowed() {
        let ok = r#"{"state":{"desired":{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}}}"#;
        assert!(UpdateRequest::decode(ok.as_bytes()).is_ok());
    }

    #[test]
    fn update_accepted_keeps_nulls() {
        let d = ResponseDoc {
            state: StateDoc {
                desired: Some(json!({"engine": null})),
                reported: Some(Value::Null),
                delta: None,
            },
            metadata: None,
            version: 3,
            timestamp: 1,
            client_token: None,
        };
        assert_eq!(ResponseDoc::decode(&d.encode()).unwrap(), d);
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-z]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                proptest::collection::btree_map("[a-c]", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_map() -> impl Strategy<Value = Map<String, Value>> {
        // Members may be null (a delete); arrays never hold null.
        proptest::collection::btree_map(
            "[a-e]{1,3}",
            prop_oneof![Just(Value::Null), arb_value()],
            0..4,
        )
        .prop_map(|m| m.into_iter().collect())
    }

    fn arb_section() -> impl Strategy<Value = Section> {
        prop_oneof![
            Just(Section::Absent),
            Just(Section::Clear),
            arb_map().prop_map(Section::Set)
        ]
    }

    fn arb_state() -> impl Strategy<Value = StateDoc> {
        let v = proptest::option::of(prop_oneof![Just(Value::Null), arb_value()]);
        (v.clone(), v.clone(), v).prop_map(|(desired, reported, delta)| StateDoc {
            desired,
            reported,
            delta,
        })
    }

    fn token() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[A-Za-z0-9-]{0,64}")
    }

    proptest! {
        #[test]
        fn update_requests_round_trip(
            desired in arb_section(), reported in arb_section(),
            client_token in token(), version in proptest::option::of(any::<u64>()),
        ) {
            let r = UpdateRequest { desired, reported, client_token, version };
            prop_assert_eq!(UpdateRequest::decode(&r.encode()).unwrap(), r);
        }

        #[test]
        fn response_documents_round_trip(
            state in arb_state(), version in any::<u64>(), timestamp in any::<i64>(),
            client_token in token(), delta in arb_map(), code in 400u16..600, message in "[ -~]{0,40}",
        ) {
            let r = ResponseDoc { state: state.clone(), metadata: Some(json!({"x": {"timestamp": 1}})), version, timestamp, client_token: client_token.clone() };
            prop_assert_eq!(ResponseDoc::decode(&r.encode()).unwrap(), r);
            let d = DeltaDoc { state: delta, metadata: None, version, timestamp, client_token: client_token.clone() };
            prop_assert_eq!(DeltaDoc::decode(&d.encode()).unwrap(), d);
            let e = ErrorDoc { code, message, timestamp: Some(timestamp), client_token: client_token.clone() };
            prop_assert_eq!(ErrorDoc::decode(&e.encode()).unwrap(), e);
            let snap = Snapshot { state, metadata: None, version };
            let docs = DocumentsDoc { previous: Some(snap.clone()), current: snap, timestamp, client_token: client_token.clone() };
            prop_assert_eq!(DocumentsDoc::decode(&docs.encode()).unwrap(), docs);
            let del = DeleteAcceptedDoc { version, timestamp, client_token: client_token.clone() };
            prop_assert_eq!(DeleteAcceptedDoc::decode(&del.encode()).unwrap(), del);
            let t = TokenRequest { client_token };
            prop_assert_eq!(TokenRequest::token_of(&t.encode()), t.client_token);
        }

        #[test]
        fn hostile_documents_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = UpdateRequest::decode(&bytes);
            let _ = ResponseDoc::decode(&bytes);
            let _ = DeltaDoc::decode(&bytes);
            let _ = ErrorDoc::decode(&bytes);
            let _ = DocumentsDoc::decode(&bytes);
            let _ = DeleteAcceptedDoc::decode(&bytes);
            let _ = TokenRequest::token_of(&bytes);
        }
    }

    #[test]
    fn token_of_get_bodies() {
        assert_eq!(TokenRequest::token_of(b""), None);
        assert_eq!(
            TokenRequest::token_of(br#"{"clientToken":"a"}"#).as_deref(),
            Some("a")
        );
        assert_eq!(TokenRequest::token_of(b"garbage"), None);
    }
}
