//! What a user hands the agent besides flags: `--data FILE|-` payloads and JSON flag values
//! (`--value '{"level": 80}'`), read and parsed with errors that name the file or flag.

use std::io::Read;
use std::path::PathBuf;

use serde_json::Value;

use crate::protocol::{MetaEntry, MetaList, PayloadError};

/// Most bytes read from `--data` (the transport refuses packets over 256 KiB anyway).
pub const MAX_DATA: u64 = 256 * 1024;

/// Why input could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The file (or stdin) could not be read.
    #[error("cannot read --data `{}`: {reason}", .path.display())]
    Read {
        /// The file, or `-` for stdin.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// Larger than [`MAX_DATA`].
    #[error("--data `{}` is larger than {MAX_DATA} bytes", .0.display())]
    TooLarge(PathBuf),
    /// The payload is not what the message type needs.
    #[error("--data `{}`: {source}", .path.display())]
    Payload {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: PayloadError,
    },
    /// A flag that takes JSON got something else.
    #[error("{flag} `{value}` is not JSON: {detail}")]
    Json {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
        /// What the parser said.
        detail: String,
    },
    /// A `name=value` argument.
    #[error(transparent)]
    Assignment(#[from] crate::protocol::meta::AssignmentError),
}

/// Reads `--data`: a file, or standard input for `-`.
pub fn read_data(path: &std::path::Path) -> Result<Vec<u8>, InputError> {
    let err = |e: std::io::Error| InputError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_DATA + 1)
            .read_to_end(&mut buf)
            .map_err(err)?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_DATA + 1).read_to_end(&mut buf))
            .map_err(err)?;
    }
    if buf.len() as u64 > MAX_DATA {
        return Err(InputError::TooLarge(path.to_owned()));
    }
    Ok(buf)
}

/// A meta list from `--data` bytes: an array of meta objects, or one object (sent as a list of one).
pub fn meta_from_data(path: &std::path::Path, bytes: &[u8]) -> Result<MetaList, InputError> {
    let wrap = |source| InputError::Payload {
        path: path.to_owned(),
        source,
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        wrap(PayloadError::NotJson {
            what: "meta list",
            detail: e.to_string(),
        })
    })?;
    let v = if v.is_object() {
        Value::Array(vec![v])
    } else {
        v
    };
    MetaList::from_value(&v).map_err(wrap)
}

/// Decodes `--data` bytes with `decode` (e.g. `Action::decode`), naming the file on failure.
pub fn decode_data<T>(
    path: &std::path::Path,
    bytes: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<T, PayloadError>,
) -> Result<T, InputError> {
    decode(bytes).map_err(|source| InputError::Payload {
        path: path.to_owned(),
        source,
    })
}

/// A meta list from `name=value` arguments.
pub fn meta_from_assignments(args: &[String]) -> Result<MetaList, InputError> {
    args.iter()
        .map(|a| MetaEntry::parse_assignment(a).map_err(InputError::from))
        .collect::<Result<Vec<_>, _>>()
        .map(MetaList)
}

/// Parses the JSON value of `flag`.
pub fn json_arg(flag: &'static str, value: &str) -> Result<Value, InputError> {
    serde_json::from_str(value).map_err(|e| InputError::Json {
        flag,
        value: value.chars().take(80).collect(),
        detail: e.to_string(),
    })
}

/// The current time in Gooee's timestamp format (`2016-08-09T20:00:47.539000Z`).
pub fn now_timestamp() -> String {
    crate::protocol::format_timestamp(time::OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_files_are_read_and_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        std::fs::write(&p, br#"{"name":"als","value":3}"#).unwrap();
        let list = meta_from_data(&p, &read_data(&p).unwrap()).unwrap();
        assert_eq!(list.0.len(), 1);
        let missing = dir.path().join("nope.json");
        let e = read_data(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.json"), "{e}");
        let e = meta_from_data(&p, b"[1]").unwrap_err().to_string();
        assert!(e.contains("m.json") && e.contains("[0]"), "{e}");
        assert!(
            json_arg("--value", "{")
                .unwrap_err()
                .to_string()
                .contains("--value")
        );
    }
}
