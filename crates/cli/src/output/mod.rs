//! Output for people and for scripts: human lines or NDJSON on stdout, progress bars only when
//! stderr is a terminal. The one place that prints (logs go to stderr through
//! [`crate::logging`]).

mod connection;
pub mod contract;

use std::io::{IsTerminal, Write};

use serde::Serialize;

pub use contract::{Envelope, PayloadJson, exit};

/// `--output` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Sentences for people.
    #[default]
    Text,
    /// One JSON object per line: `{"type": ..., "data": ...}`.
    Json,
}

/// Prints events on stdout in the chosen format.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    format: Format,
}

impl Output {
    /// An output in `format`.
    pub fn new(format: Format) -> Self {
        Output { format }
    }

    /// Makes this output where every session the process opens reports its connection events
    /// (JSON format only; see `connection.rs`). Agents call it once in `main`; iot-sim only for
    /// `pub`, since its cloud sides' own sessions are not the user's connection.
    #[must_use]
    pub fn with_connection_events(self) -> Self {
        if self.format == Format::Json {
            connection::install(self);
        }
        self
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Prints one event: as NDJSON `{"type": kind, "data": data}`, or as the human `text`.
    /// A closed stdout (`| head`) is not an error.
    pub fn event<T: Serialize>(&self, kind: &str, data: &T, text: impl FnOnce() -> String) {
        let line = match self.format {
            Format::Json => match serde_json::to_value(Envelope { kind, data }) {
                Ok(mut v) => {
                    json_payloads(&mut v);
                    v.to_string()
                }
                Err(e) => {
                    tracing::error!("cannot encode {kind} event: {e}");
                    return;
                }
            },
            Format::Text => text(),
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }

    /// A progress bar for `len` steps, drawn on stderr only for a terminal in text mode.
    pub fn progress(&self, len: u64, what: &str) -> indicatif::ProgressBar {
        if self.format == Format::Text && std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(len);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what.to_owned());
            bar
        } else {
            indicatif::ProgressBar::hidden()
        }
    }
}

/// Shows a payload that is itself valid JSON as `{"json": <value>}` instead of an escaped
/// string, so consumers parse once. Payloads reach events as [`PayloadJson`] (`{"text": ...}`
/// or `{"bytes": ...}`); any object whose only key is `text` and whose string parses as JSON is
/// rewritten, at any depth. Other text and bytes stay as they are.
pub fn json_payloads(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            if map.len() == 1
                && let Some(Value::String(text)) = map.get("text")
                && let Ok(parsed) = serde_json::from_str::<Value>(text)
            {
                map.clear();
                map.insert("json".to_owned(), parsed);
                return;
            }
            map.values_mut().for_each(json_payloads);
        }
        Value::Array(items) => items.iter_mut().for_each(json_payloads),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn shown(payload: &[u8]) -> serde_json::Value {
        let mut v = json!({"type": "message", "data": {"topic": "t", "payload": PayloadJson::from_bytes(payload)}});
        json_payloads(&mut v);
        v["data"]["payload"].clone()
    }

    #[test]
    fn a_json_payload_is_shown_as_json_other_text_and_bytes_as_before() {
        assert_eq!(
            shown(br#"{"name": "dim", "value": 50}"#),
            json!({"json": {"name": "dim", "value": 50}})
        );
        assert_eq!(shown(b"[1, 2]"), json!({"json": [1, 2]}));
        assert_eq!(shown(b"21.5"), json!({"json": 21.5}));
        assert_eq!(shown(b"hello"), json!({"text": "hello"}));
        assert_eq!(shown(b"{broken"), json!({"text": "{broken"}));
        assert_eq!(shown(&[0xff, 0]), json!({"bytes": "/wA="}));
    }

    #[test]
    fn payloads_inside_lists_are_rewritten_and_other_objects_are_not() {
        let mut v =
            json!({"messages": [{"text": "{}"}, {"text": "x"}], "note": {"text": "1", "other": 2}});
        json_payloads(&mut v);
        assert_eq!(
            v,
            json!({"messages": [{"json": {}}, {"text": "x"}], "note": {"text": "1", "other": 2}})
        );
    }
}
