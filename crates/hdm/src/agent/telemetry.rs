//! Where telemetry events come from and how one becomes a message: the same input again and
//! again (flags or a file), one JSON object per line of a reader (stdin), or a channel (library
//! callers). Each input is a bare payload or a whole envelope in the generation's dialect
//! (camelCase for gen 1 to 2b, see [`Envelope::build`]; lowercase for gen 3, see
//! [`LowerEnvelope::build`]); each event gets a fresh UUID and timestamps that strictly
//! increase (gen 3's schema asks for it), and is refused before sending when it breaks a rule or
//! the 128 KB limit. Which topic: [`topic_for`].

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::agent::{AgentError, Provisioned, uuid_v4};
use crate::protocol::envelope::{Envelope, EnvelopeError, Header};
use crate::protocol::generation::{Dialect, Generation};
use crate::protocol::lowercase::{LowerEnvelope, LowerHeader};
use crate::protocol::store::{ORG_ID, PROPERTIES};
use crate::protocol::topics::{
    RULES_PREFIX, TELEMETRY_RULE_PREFIX, org_telemetry_topic, telemetry_topic,
};

/// Header values for bare payloads, in the generation's dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventHeader {
    /// camelCase (gen 1, 2, 2b).
    CamelCase(Header),
    /// lowercase with `headerversion` (gen 3).
    Lowercase(LowerHeader),
}

impl From<Header> for EventHeader {
    fn from(h: Header) -> Self {
        EventHeader::CamelCase(h)
    }
}

impl From<LowerHeader> for EventHeader {
    fn from(h: LowerHeader) -> Self {
        EventHeader::Lowercase(h)
    }
}

impl EventHeader {
    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            EventHeader::CamelCase(_) => Dialect::CamelCase,
            EventHeader::Lowercase(_) => Dialect::Lowercase,
        }
    }

    /// Whether `input` is a whole envelope in this dialect.
    pub fn is_envelope_input(&self, input: &Value) -> bool {
        match self {
            EventHeader::CamelCase(_) => Envelope::is_envelope_input(input),
            EventHeader::Lowercase(_) => LowerEnvelope::is_envelope_input(input),
        }
    }
}

/// One event, built and encoded.
#[derive(Debug, Clone)]
pub struct Built {
    /// Its event type (`eventType` or `eventtype`).
    pub event_type: String,
    /// Its UUID (`senderEventUuid` or `sendereventuuid`).
    pub uuid: String,
    /// The message.
    pub bytes: Vec<u8>,
}

/// Timestamps that strictly increase (by at least a millisecond), whatever the clock does.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    last: Option<OffsetDateTime>,
}

impl Clock {
    /// `now`, or a millisecond after the last one if `now` is not later.
    pub fn next(&mut self, now: OffsetDateTime) -> OffsetDateTime {
        let ms = |t: OffsetDateTime| t.unix_timestamp_nanos() / 1_000_000;
        let t = match self.last {
            Some(last) if ms(now) <= ms(last) => last + time::Duration::milliseconds(1),
            _ => now,
        };
        self.last = Some(t);
        t
    }
}

/// The telemetry topic of a provisioned device: gen 1 `$aws/rules/iot_data_platform_telemetry_
/// {stage}`; gen 2+ `{telemetryTopic}/{orgId}/{clientId}` with `telemetryTopic` from
/// `properties.json` (a gen-2 store of the Python client has none: then the stage's rule topic,
/// which is what the gen-3 README names) and `orgId` from `OrgID.txt` or `properties.json`.
pub fn topic_for(
    generation: Generation,
    stage: Option<&str>,
    device: &Provisioned,
) -> Result<String, AgentError> {
    let need_stage = || {
        stage.ok_or_else(|| {
            AgentError::Config(
                "no `stage` in the env file: it names the telemetry topic $aws/rules/iot_data_platform_telemetry_{stage}".into(),
            )
        })
    };
    if !generation.has_org() {
        return Ok(telemetry_topic(need_stage()?)?);
    }
    let base = match device
        .properties
        .as_ref()
        .and_then(|p| p.telemetry_topic.clone())
    {
        Some(t) => t,
        None => format!("{RULES_PREFIX}{TELEMETRY_RULE_PREFIX}{}", need_stage()?),
    };
    let org = device.org_id.as_deref().ok_or_else(|| {
        AgentError::Config(format!(
            "certificate store `{}` holds no organisation id ({ORG_ID} or `org_id` in {PROPERTIES}), which the {generation} topic needs; provision with this env file, or use a generation 1 env file",
            device.dir.display()
        ))
    })?;
    Ok(org_telemetry_topic(&base, org, &device.thing)?)
}

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
    /// Where ([`topic_for`]).
    pub topic: String,
    /// Header values for bare payloads, in the generation's dialect.
    pub header: EventHeader,
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
    header: &EventHeader,
    input: Value,
    now: OffsetDateTime,
) -> Result<Built, EnvelopeError> {
    match header {
        EventHeader::CamelCase(h) => {
            let env = Envelope::build(h, input, &uuid_v4(), now)?;
            Ok(Built {
                bytes: env.encode()?,
                event_type: env.event_type,
                uuid: env.sender_event_uuid,
            })
        }
        EventHeader::Lowercase(h) => {
            let env = LowerEnvelope::build(h, input, &uuid_v4(), now)?;
            Ok(Built {
                bytes: env.encode()?,
                event_type: env.eventtype,
                uuid: env.sendereventuuid,
            })
        }
    }
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
pub fn check_input(header: &EventHeader, input: &Value) -> Result<(), EnvelopeError> {
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
    fn timestamps_strictly_increase() {
        let mut c = Clock::default();
        let t = time::macros::datetime!(2020-05-06 08:00:00.500 UTC);
        assert_eq!(c.next(t), t);
        assert_eq!(c.next(t), t + time::Duration::milliseconds(1));
        assert_eq!(
            c.next(t - time::Duration::seconds(1)),
            t + time::Duration::milliseconds(2),
            "a clock stepping back does not reorder"
        );
        let later = t + time::Duration::seconds(1);
        assert_eq!(c.next(later), later);
    }

    #[test]
    fn topics_per_generation() {
        let mut d = Provisioned {
            dir: "cs".into(),
            thing: "hdm-1".into(),
            root_ca: "ca".into(),
            cert: "c".into(),
            key: "k".into(),
            org_id: None,
            properties: None,
        };
        assert_eq!(
            topic_for(Generation::Gen1, Some("stg"), &d).unwrap(),
            "$aws/rules/iot_data_platform_telemetry_stg"
        );
        let e = topic_for(Generation::Gen2, Some("stg"), &d)
            .unwrap_err()
            .to_string();
        assert!(e.contains("OrgID.txt"), "{e}");
        d.org_id = Some("org-1".into());
        assert_eq!(
            topic_for(Generation::Gen2, Some("stg"), &d).unwrap(),
            "$aws/rules/iot_data_platform_telemetry_stg/org-1/hdm-1"
        );
        d.properties = Some(crate::protocol::store::Properties {
            telemetry_topic: Some("$aws/rules/x".into()),
            ..Default::default()
        });
        assert_eq!(
            topic_for(Generation::Gen3, None, &d).unwrap(),
            "$aws/rules/x/org-1/hdm-1"
        );
        assert!(topic_for(Generation::Gen1, None, &d).is_err());
    }

    #[test]
    fn unreadable_files_are_named() {
        let e = read_input_file(Path::new("/nonexistent/p.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/p.json"), "{e}");
    }
}
