//! Where telemetry events come from and how one becomes a message: the same input again and
//! again (flags or a file), one JSON object per line of a reader (stdin), or a channel (library
//! callers). Each input is a bare payload or a whole envelope (see
//! [`Envelope::build`](crate::protocol::envelope::Envelope::build)); each event gets a fresh
//! `senderEventUuid` and timestamps, and is refused before sending when it breaks a rule or the
//! 128 KB limit.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::agent::{AgentError, uuid_v4};
use crate::protocol::envelope::{Envelope, EnvelopeError, Header};

/// Where inputs come from.
pub enum EventSource {
    /// The same input every time.
    Repeat(Value),
    /// One JSON object per line; ends with the input.
    Lines(Box<dyn AsyncBufRead + Send + Unpin>),
    /// Inputs sent by the caller; ends when the sender is dropped.
    Channel(mpsc::Receiver<Value>),
}

impl std::fmt::Debug for EventSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventSource::Repeat(v) => f.debug_tuple("Repeat").field(v).finish(),
            EventSource::Lines(_) => f.write_str("Lines(..)"),
            EventSource::Channel(_) => f.write_str("Channel(..)"),
        }
    }
}

/// What to send.
#[derive(Debug)]
pub struct TelemetryPlan {
    /// `$aws/rules/iot_data_platform_telemetry_{stage}`.
    pub topic: String,
    /// Header values for bare payloads.
    pub header: Header,
    /// Inputs.
    pub source: EventSource,
    /// How many events (`None`: until the source ends; forever for `Repeat`).
    pub count: Option<u64>,
    /// Pause between events.
    pub interval: Option<Duration>,
    /// How long to wait for the last confirmations.
    pub confirm_timeout: Duration,
}

/// One input, or why a line was unusable.
#[derive(Debug)]
pub(crate) enum Item {
    Input(Value),
    Bad(String),
}

/// Produces inputs from a source; a reader runs in its own task, aborted on drop.
pub(crate) struct Producer {
    repeat: Option<Value>,
    rx: Option<mpsc::Receiver<Item>>,
    task: Option<JoinHandle<()>>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Producer {
    pub(crate) fn new(source: EventSource) -> Self {
        match source {
            EventSource::Repeat(v) => Producer {
                repeat: Some(v),
                rx: None,
                task: None,
            },
            EventSource::Channel(mut inputs) => {
                let (tx, rx) = mpsc::channel(16);
                let task = tokio::spawn(async move {
                    while let Some(v) = inputs.recv().await {
                        if tx.send(Item::Input(v)).await.is_err() {
                            break;
                        }
                    }
                });
                Producer {
                    repeat: None,
                    rx: Some(rx),
                    task: Some(task),
                }
            }
            EventSource::Lines(mut reader) => {
                let (tx, rx) = mpsc::channel(16);
                let task = tokio::spawn(async move {
                    let mut n = 0u64;
                    loop {
                        let mut line = String::new();
                        n += 1;
                        let item = match reader.read_line(&mut line).await {
                            Ok(0) => break,
                            Ok(_) if line.trim().is_empty() => continue,
                            Ok(_) => match serde_json::from_str::<Value>(line.trim()) {
                                Ok(v) => Item::Input(v),
                                Err(e) => Item::Bad(format!("input line {n} is not JSON: {e}")),
                            },
                            Err(e) => Item::Bad(format!("reading input line {n} failed: {e}")),
                        };
                        let stop = matches!(&item, Item::Bad(m) if m.starts_with("reading"));
                        if tx.send(item).await.is_err() || stop {
                            break;
                        }
                    }
                });
                Producer {
                    repeat: None,
                    rx: Some(rx),
                    task: Some(task),
                }
            }
        }
    }

    /// The next input; `None` when the source has ended. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Option<Item> {
        if let Some(v) = &self.repeat {
            return Some(Item::Input(v.clone()));
        }
        self.rx.as_mut()?.recv().await
    }
}

/// Builds and encodes one event from an input.
pub fn build_event(
    header: &Header,
    input: Value,
    now: OffsetDateTime,
) -> Result<(Envelope, Vec<u8>), EnvelopeError> {
    let env = Envelope::build(header, input, &uuid_v4(), now)?;
    let bytes = env.encode()?;
    Ok((env, bytes))
}

/// Reads a JSON input (payload or envelope) from a file.
pub fn read_input_file(path: &Path) -> Result<Value, AgentError> {
    let what = format!("telemetry input `{}`", path.display());
    let text = std::fs::read(path).map_err(|e| AgentError::Input {
        what: what.clone(),
        reason: e.to_string(),
    })?;
    serde_json::from_slice(&text).map_err(|e| AgentError::Input {
        what,
        reason: format!("not JSON: {e}"),
    })
}

/// Checks that `input` makes a valid event of at most 128 KB (to refuse a repeated input
/// before connecting).
pub fn check_input(header: &Header, input: &Value) -> Result<(), EnvelopeError> {
    build_event(header, input.clone(), OffsetDateTime::now_utc()).map(|_| ())
}

/// The input when none is given: `{}`, or the reference demo's `{"foo":"bar"}`.
pub fn default_input(demo: bool) -> Value {
    if demo {
        serde_json::json!({"foo": "bar"})
    } else {
        Value::Object(serde_json::Map::new())
    }
}

/// Parses a JSON input given inline (`--payload`).
pub fn parse_inline(json: &str) -> Result<Value, AgentError> {
    serde_json::from_str(json).map_err(|e| AgentError::Input {
        what: "--payload".into(),
        reason: format!("not JSON: {e}"),
    })
}

/// One input per line of standard input.
pub fn stdin_source() -> EventSource {
    EventSource::Lines(Box::new(tokio::io::BufReader::new(tokio::io::stdin())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_become_inputs_and_bad_lines_are_named() {
        let text: &[u8] = b"{\"a\":1}\n\nnot json\n{\"b\":2}\n";
        let mut p = Producer::new(EventSource::Lines(Box::new(tokio::io::BufReader::new(
            text,
        ))));
        assert!(matches!(p.next().await, Some(Item::Input(v)) if v["a"] == 1));
        assert!(matches!(p.next().await, Some(Item::Bad(m)) if m.contains("line 3")));
        assert!(matches!(p.next().await, Some(Item::Input(v)) if v["b"] == 2));
        assert!(p.next().await.is_none());
    }

    #[test]
    fn unreadable_files_are_named() {
        let e = read_input_file(Path::new("/nonexistent/p.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/p.json"), "{e}");
    }
}
