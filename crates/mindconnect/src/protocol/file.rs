//! Small files (`o/mc_v3/f`): `{"file": {"name", "creationDate", "content"}}` with the content
//! in standard, padded base64. The sample cuts the last two base64 characters off, which breaks
//! the padding and loses data; we encode correctly, and the platform side refuses content that
//! is not valid base64. Pure.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// `{"file": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMessage {
    /// The file.
    pub file: FileUpload,
}

/// A file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileUpload {
    /// Name.
    pub name: String,
    /// RFC 3339 UTC.
    pub creation_date: String,
    /// Standard base64 with padding.
    pub content: String,
}

/// Content that is not standard padded base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file `{name}`: content is not standard padded base64 ({reason})")]
pub struct ContentError {
    /// The file's name.
    pub name: String,
    /// What the decoder said.
    pub reason: String,
}

impl FileMessage {
    /// A file message carrying `bytes`.
    pub fn new(name: String, creation_date: String, bytes: &[u8]) -> Self {
        FileMessage {
            file: FileUpload {
                name,
                creation_date,
                content: STANDARD.encode(bytes),
            },
        }
    }

    /// The decoded content.
    pub fn content(&self) -> Result<Vec<u8>, ContentError> {
        STANDARD
            .decode(&self.file.content)
            .map_err(|e| ContentError {
                name: self.file.name.chars().take(80).collect(),
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::super::envelope::{decode, encode, strategies};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_samples_truncated_base64_is_refused() {
        let text = b"2023-07-05T10:11:12.123456Z INFO: Sent File Upload.";
        let good = FileMessage::new(
            "Daily Execution Log : 1".into(),
            "2023-07-05T10:11:12.123Z".into(),
            text,
        );
        assert_eq!(good.content().unwrap(), text);
        let mut cut = good.clone();
        cut.file.content.truncate(cut.file.content.len() - 2); // what the sample sends
        assert!(cut.content().is_err());
    }

    proptest! {
        #[test]
        fn roundtrips(name in strategies::text(), bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let m = FileMessage::new(name, "2020-01-01T00:00:00.000Z".into(), &bytes);
            let back = decode::<FileMessage>("file", &encode(&m)).unwrap();
            prop_assert_eq!(back.content().unwrap(), bytes);
            prop_assert_eq!(back, m);
        }

        #[test]
        fn hostile_input_never_panics(bytes in strategies::hostile()) {
            if let Ok(m) = decode::<FileMessage>("file", &bytes) { let _ = m.content(); }
        }
    }
}
