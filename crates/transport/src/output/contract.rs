//! The machine contract of every edgewire binary: exit codes and the NDJSON event envelope.
//! `docs/output.md` documents the same table; a test keeps the two in step.

use base64::Engine;
use serde::Serialize;

/// Exit codes.
pub mod exit {
    /// Everything asked for was done.
    pub const OK: u8 = 0;
    /// A runtime failure: the broker refused, a message was not confirmed, a database failed.
    pub const FAILURE: u8 = 1;
    /// Bad usage or configuration: a flag, a config file, a certificate file.
    pub const USAGE: u8 = 2;
    /// The platform answered and rejected what was sent (vendor-specific rejections).
    pub const REJECTED: u8 = 3;

    /// Name and meaning of each code, as documented.
    pub const TABLE: &[(u8, &str, &str)] = &[
        (OK, "OK", "everything asked for was done"),
        (
            FAILURE,
            "FAILURE",
            "runtime failure (connection, broker refusal, unconfirmed messages, database)",
        ),
        (
            USAGE,
            "USAGE",
            "usage or configuration error (flags, config files, certificate files)",
        ),
        (
            REJECTED,
            "REJECTED",
            "the platform answered and rejected what was sent",
        ),
    ];
}

/// One line of NDJSON output: `{"type": "...", "data": {...}}`.
#[derive(Debug, Serialize)]
pub struct Envelope<'a, T: Serialize> {
    /// Event type, e.g. `published`, `message`, `summary`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// Event data.
    pub data: T,
}

/// A payload in JSON: UTF-8 text under `text`, anything else base64 under `bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadJson {
    /// Valid UTF-8.
    Text(String),
    /// Base64 (standard alphabet, padded).
    Bytes(String),
}

impl PayloadJson {
    /// Chooses the representation for `payload`.
    pub fn from_bytes(payload: &[u8]) -> Self {
        match std::str::from_utf8(payload) {
            Ok(s) => PayloadJson::Text(s.to_owned()),
            Err(_) => PayloadJson::Bytes(base64::engine::general_purpose::STANDARD.encode(payload)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_text_when_utf8_and_base64_otherwise() {
        assert_eq!(
            serde_json::to_string(&PayloadJson::from_bytes(b"hi")).unwrap(),
            r#"{"text":"hi"}"#
        );
        assert_eq!(
            serde_json::to_string(&PayloadJson::from_bytes(&[0xff, 0])).unwrap(),
            r#"{"bytes":"/wA="}"#
        );
    }

    #[test]
    fn docs_table_matches_the_constants() {
        let doc = include_str!("../../../../docs/output.md");
        for (code, name, _) in exit::TABLE {
            let row = format!("| {code} | `{name}` |");
            assert!(
                doc.contains(&row),
                "docs/output.md lacks the row starting `{row}`"
            );
        }
    }
}
