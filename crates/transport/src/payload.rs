//! How a message payload reads in JSON: UTF-8 text under `text`, anything else base64 under
//! `bytes` (the convention of ripgrep's JSON printer). Agents put payloads in their events this
//! way; the front end's NDJSON envelope (`cli::output`) carries those events unchanged.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// A payload in JSON: UTF-8 text under `text`, anything else base64 under `bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}
