//! Where the agent's data comes from: timeseries values from the built-in sensor simulation
//! (filling `timeseries.json`, like the sample), from a file of JSON lines, or from stdin as
//! lines arrive; the event from `event.json`; the file from disk or the sample's execution log.
//! A line is either `{"<dataPointId>": value, ...}` (one sampling, now) or a whole MindConnect
//! timeseries message.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::protocol::envelope::{Scalar, encode};
use crate::protocol::file::FileMessage;
use crate::protocol::template::{Placeholder, Template, Values as Fill};
use crate::protocol::timeseries::TimeseriesMessage;
use crate::protocol::timestamp;
use crate::protocol::topic::{Channel, Topics};

use super::AgentError;

/// The default largest message (the encoded payload) sent to the broker: 128 KiB, the AWS IoT
/// Core message limit Insights Hub's MQTT broker is most likely held to (MindConnect documents
/// no `mc_v3` size limit; its Asset Modeler documents 128 KB bodies).
pub const DEFAULT_MAX_MESSAGE: usize = 128 * 1024;

/// Where timeseries values come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ValueSource {
    /// The built-in simulation filling `timeseries.json` (temperature 30–32, humidity 50–55).
    #[default]
    Simulated,
    /// A file of JSON lines, one message per line.
    File(PathBuf),
    /// JSON lines from stdin, sent as they arrive.
    Stdin,
    /// One message with these data point values (`--value temperature=31.5`).
    Points(Vec<(String, String)>),
}

/// What the source has now.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// A message.
    Ready(TimeseriesMessage),
    /// Nothing yet (stdin); ask again when [`Values::wait`] resolves.
    Pending,
    /// No more.
    Exhausted,
}

/// A value source in use.
pub struct Values {
    inner: Inner,
}

enum Inner {
    Simulated(Template),
    Lines(std::vec::IntoIter<Value>),
    Stdin {
        rx: mpsc::Receiver<Result<Value, String>>,
        buffered: Option<Value>,
        closed: bool,
        reader: tokio::task::JoinHandle<()>,
    },
}

impl Drop for Values {
    fn drop(&mut self) {
        if let Inner::Stdin { reader, .. } = &self.inner {
            reader.abort();
        }
    }
}

/// Parses one JSON line (`what` names it in errors); `Ok(None)` for a blank line.
pub fn parse_line(line: &str, what: &str) -> Result<Option<Value>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(line).map_err(|e| format!("{what}: not JSON ({e})"))?;
    let Value::Object(map) = &v else {
        return Err(format!(
            "{what}: expected {{\"<dataPointId>\": value, ...}} or {{\"timeseries\": [...]}}"
        ));
    };
    if map.contains_key("timeseries") {
        serde_json::from_value::<TimeseriesMessage>(v.clone())
            .map_err(|e| format!("{what}: not a timeseries message ({e})"))?;
    } else if let Some((k, _)) = map
        .iter()
        .find(|(_, x)| !(x.is_string() || x.is_number() || x.is_boolean()))
    {
        return Err(format!(
            "{what}: the value of `{k}` must be a string, number or boolean"
        ));
    }
    Ok(Some(v))
}

/// The message for a parsed line at `now`.
pub fn message_of(line: &Value, now: time::OffsetDateTime) -> TimeseriesMessage {
    if let Ok(m) = serde_json::from_value::<TimeseriesMessage>(line.clone()) {
        return m;
    }
    let values: Vec<(String, String)> = line
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    serde_json::from_value::<Scalar>(v.clone())
                        .ok()
                        .map(|s| (k.clone(), s.as_text()))
                })
                .collect()
        })
        .unwrap_or_default();
    TimeseriesMessage::single(
        timestamp::format(now),
        values.iter().map(|(k, v)| (k.as_str(), v.clone())),
    )
}

impl Values {
    /// Opens `source`; the simulation needs the timeseries template. A file is read and checked
    /// completely now, so a bad line is reported (with its number) before anything is sent.
    pub fn open(source: &ValueSource, template: Option<Template>) -> Result<Values, AgentError> {
        let inner =
            match source {
                ValueSource::Simulated => Inner::Simulated(template.ok_or_else(|| {
                    AgentError::Input("the simulation needs timeseries.json".into())
                })?),
                ValueSource::File(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        AgentError::Input(format!(
                            "cannot read the values file `{}`: {e}",
                            path.display()
                        ))
                    })?;
                    let mut lines = Vec::new();
                    for (i, l) in text.lines().enumerate() {
                        if let Some(v) = parse_line(l, &format!("{}:{}", path.display(), i + 1))
                            .map_err(AgentError::Input)?
                        {
                            lines.push(v);
                        }
                    }
                    Inner::Lines(lines.into_iter())
                }
                ValueSource::Points(points) => {
                    let obj: serde_json::Map<String, Value> = points
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect();
                    Inner::Lines(vec![Value::Object(obj)].into_iter())
                }
                ValueSource::Stdin => {
                    let (tx, rx) = mpsc::channel(64);
                    let reader = tokio::spawn(read_stdin(tx));
                    Inner::Stdin {
                        rx,
                        buffered: None,
                        closed: false,
                        reader,
                    }
                }
            };
        Ok(Values { inner })
    }

    /// The next message at `now`.
    pub fn next(&mut self, now: time::OffsetDateTime) -> Result<Next, AgentError> {
        match &mut self.inner {
            Inner::Simulated(t) => {
                let mut fill = Fill::new().with(Placeholder::CurrDateTime, timestamp::format(now));
                for dp in t.data_points() {
                    fill = fill.with_point(dp, simulate(dp));
                }
                let (_, m) = t
                    .fill_as::<TimeseriesMessage>(&fill, "timeseries message")
                    .map_err(|e| AgentError::Input(e.to_string()))?;
                Ok(Next::Ready(m))
            }
            Inner::Lines(it) => Ok(it
                .next()
                .map_or(Next::Exhausted, |v| Next::Ready(message_of(&v, now)))),
            Inner::Stdin {
                rx,
                buffered,
                closed,
                ..
            } => {
                if let Some(v) = buffered.take() {
                    return Ok(Next::Ready(message_of(&v, now)));
                }
                loop {
                    match rx.try_recv() {
                        Ok(Ok(v)) => return Ok(Next::Ready(message_of(&v, now))),
                        Ok(Err(e)) => tracing::warn!("{e}; line skipped"),
                        Err(mpsc::error::TryRecvError::Empty) => return Ok(Next::Pending),
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            *closed = true;
                            return Ok(Next::Exhausted);
                        }
                    }
                }
            }
        }
    }

    /// Resolves when a stdin line (or its end) is available; never for other sources.
    pub async fn wait(&mut self) {
        match &mut self.inner {
            Inner::Stdin {
                rx,
                buffered,
                closed,
                ..
            } if !*closed && buffered.is_none() => match rx.recv().await {
                Some(Ok(v)) => *buffered = Some(v),
                Some(Err(e)) => tracing::warn!("{e}; line skipped"),
                None => *closed = true,
            },
            _ => std::future::pending().await,
        }
    }
}

async fn read_stdin(tx: mpsc::Sender<Result<Value, String>>) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut n = 0;
    while let Ok(Some(line)) = lines.next_line().await {
        n += 1;
        let parsed = parse_line(&line, &format!("stdin line {n}"));
        let item = match parsed {
            Ok(Some(v)) => Ok(v),
            Ok(None) => continue,
            Err(e) => Err(e),
        };
        if tx.send(item).await.is_err() {
            break;
        }
    }
}

/// A simulated reading for `data_point` (the sample's ranges for its two sensors).
fn simulate(data_point: &str) -> String {
    let (lo, hi) = match data_point {
        "temperature" => (30.0, 32.0),
        "humidity" => (50.0, 55.0),
        _ => (0.0, 100.0),
    };
    format!("{:.1}", lo + fastrand::f64() * (hi - lo))
}

/// The filled `event.json` at `now` (random severity 20/30/40, like the sample).
pub fn event_payload(
    template: &Template,
    now: time::OffsetDateTime,
) -> Result<Vec<u8>, AgentError> {
    let fill = Fill::new()
        .with_uuid(uuid::Uuid::new_v4())
        .with(Placeholder::CurrDateTime, timestamp::format(now))
        .with(
            Placeholder::Severity,
            (fastrand::u8(2..=4) * 10).to_string(),
        );
    let (v, _) = template
        .fill_as::<crate::protocol::event::EventsMessage>(&fill, "event message")
        .map_err(|e| AgentError::Input(e.to_string()))?;
    Ok(encode(&v))
}

/// The file message: `path`'s bytes, or the sample's execution log when `None`.
///
/// A file whose message would be over `max_message` bytes is refused, not split: the file
/// message has no part numbers, so the platform would store the pieces as unrelated files.
pub fn file_payload(
    path: Option<&Path>,
    topics: &Topics,
    max_message: usize,
    now: time::OffsetDateTime,
) -> Result<FileMessage, AgentError> {
    let ts = timestamp::format(now);
    let Some(p) = path else {
        let lines = [
            "INFO: Connection established to the MindConnect MQTT broker".to_owned(),
            format!(
                "INFO: Subscribed to topic : {}",
                topics.topic(Channel::Command)
            ),
            "INFO: Checking and creating asset model instance.".to_owned(),
            "INTERRUPT : Infrared Sensor Event Triggered".to_owned(),
            "INFO: File Upload Event Triggered".to_owned(),
        ];
        let log: String = lines
            .iter()
            .flat_map(|l| [ts.as_str(), " ", l.as_str(), "\n"])
            .collect();
        let name = format!("Daily Execution Log : {}", uuid::Uuid::new_v4().simple());
        return Ok(FileMessage::new(name, ts, log.as_bytes()));
    };
    let bytes = std::fs::read(p).map_err(|e| {
        AgentError::Input(format!(
            "cannot read the file to upload `{}`: {e}",
            p.display()
        ))
    })?;
    let msg = FileMessage::new(file_name(p), ts, &bytes);
    let wire = encode(&msg).len();
    if wire > max_message {
        return Err(AgentError::Input(format!(
            "`{}` has {} bytes, {wire} bytes as a file message (base64 in JSON): over the broker's message limit of {max_message} bytes (--max-message-kb {}); upload it with `mc-agent upload --datalake`, or raise --max-message-kb if your broker takes more",
            p.display(),
            bytes.len(),
            max_message / 1024
        )));
    }
    Ok(msg)
}

/// The last component of `p` (for object and file names).
pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| "upload.bin".into(), |n| n.to_string_lossy().into_owned())
}

/// The datalake object for the run's datalake task: the given file, or a generated
/// `sensor-map-<time>.obj` (the sample uploads a sensor map).
pub fn datalake_object(
    file: Option<(&Path, &[u8])>,
    now: time::OffsetDateTime,
) -> (String, Vec<u8>) {
    if let Some((p, bytes)) = file {
        return (file_name(p), bytes.to_vec());
    }
    let ts = timestamp::format(now).replace([':', '-', '.'], "");
    let body = format!("# sensor map {ts}\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n");
    (format!("sensor-map-{ts}.obj"), body.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::template::{Kind, builtin};

    fn now() -> time::OffsetDateTime {
        time::macros::datetime!(2024-01-01 00:00 UTC)
    }

    #[test]
    fn lines_are_points_or_whole_messages() {
        let v = parse_line(r#"{"temperature": 31.5, "on": true}"#, "l")
            .unwrap()
            .unwrap();
        let m = message_of(&v, now());
        assert_eq!(m.timeseries[0].timestamp, "2024-01-01T00:00:00.000Z");
        assert_eq!(
            m.timeseries[0]
                .values
                .iter()
                .map(|x| x.value.as_text())
                .collect::<Vec<_>>(),
            ["true", "31.5"]
        );
        let v = parse_line(
            r#"{"timeseries":[{"timestamp":"2020-08-01T00:15:10.100Z","values":[]}]}"#,
            "l",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            message_of(&v, now()).timeseries[0].timestamp,
            "2020-08-01T00:15:10.100Z"
        );
        assert_eq!(parse_line("  ", "l"), Ok(None));
        assert!(
            parse_line("[1]", "f:3")
                .unwrap_err()
                .starts_with("f:3: expected")
        );
        assert!(
            parse_line(r#"{"a":{"b":1}}"#, "f:4")
                .unwrap_err()
                .contains("`a`")
        );
    }

    #[test]
    fn a_bad_values_file_names_the_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("v.jsonl");
        std::fs::write(&p, "{\"temperature\": 1}\n\nnot json\n").unwrap();
        let e = Values::open(&ValueSource::File(p), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("v.jsonl:3: not JSON"), "{e}");
    }

    #[test]
    fn the_simulation_fills_the_template() {
        let t = Template::parse(Kind::Timeseries, "ts", builtin(Kind::Timeseries)).unwrap();
        let mut v = Values::open(&ValueSource::Simulated, Some(t)).unwrap();
        let Next::Ready(m) = v.next(now()).unwrap() else {
            panic!()
        };
        let t: f64 = m.timeseries[0].values[0].value.as_f64().unwrap();
        assert!((30.0..=32.0).contains(&t), "{t}");
    }

    #[test]
    fn files_are_encoded_whole() {
        let m = file_payload(
            None,
            &Topics::new("t", "t_a").unwrap(),
            DEFAULT_MAX_MESSAGE,
            now(),
        )
        .unwrap();
        assert!(
            String::from_utf8(m.content().unwrap())
                .unwrap()
                .ends_with("Triggered\n")
        );
        let e = event_payload(
            &Template::parse(Kind::Event, "e", builtin(Kind::Event)).unwrap(),
            now(),
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&e).unwrap();
        assert!(["20", "30", "40"].contains(&v["events"][0]["severity"].as_str().unwrap()));
    }
}
