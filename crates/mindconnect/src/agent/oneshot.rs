//! One step at a time, for scripts and CI: `mc-agent timeseries`, `event`, `upload FILE`
//! (MQTT, or `--datalake` over HTTPS) and `token`. Each connects with a clean session, does its
//! step, and fails when the other side does not answer: the broker's PUBACK for `mc_v3` data
//! (the platform has no acknowledgement topic for it), the `i/agm_v3/tr` answer for the token,
//! the HTTP statuses for the datalake.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;
use transport::session::Incoming;
use transport::{Message, Outbox, Qos, Session};

use crate::config::Settings;
use crate::protocol::envelope::{decode, encode};
use crate::protocol::event::{EventInput, EventsMessage};
use crate::protocol::template::Template;
use crate::protocol::token::{TokenData, TokenReply, TokenRequest};
use crate::protocol::topic::Channel;

use super::datalake::Datalake;
use super::source::{Next, Values, event_payload, file_payload};
use super::{
    AgentError, Event, Reporter, connect, instance_created, publish_confirmed, request_id,
    subscribe,
};

/// What every one-shot needs.
#[derive(Debug, Clone)]
pub struct OneShot {
    /// Resolved configuration.
    pub settings: Settings,
    /// How long to wait for a confirmation or an answer.
    pub timeout: Duration,
    /// QoS of the data publishes.
    pub qos: Qos,
    /// `instance.conf` (timeseries warn when it does not say `CREATED`).
    pub instance_conf: PathBuf,
}

pub(crate) async fn with_session<T>(
    o: &OneShot,
    report: &Reporter,
    f: impl AsyncFnOnce(&Session, &mut Incoming) -> Result<T, AgentError>,
) -> Result<T, AgentError> {
    let (session, mut incoming) = connect(&o.settings, false, Outbox::memory(1024), report).await?;
    let r = f(&session, &mut incoming).await;
    session.close(Duration::from_secs(2)).await;
    r
}

/// Sends timeseries from `values`: at most `count` messages (all of a file or stdin when `None`).
pub async fn timeseries(
    o: &OneShot,
    values: &mut Values,
    count: Option<u64>,
    report: &Reporter,
) -> Result<u64, AgentError> {
    if !instance_created(&o.instance_conf) {
        report(&Event::Warning {
            message: format!(
                "`{}` does not say CREATED: unless the model was instantiated, the platform drops these values",
                o.instance_conf.display()
            ),
        });
    }
    let topic = o.settings.topics.topic(Channel::Timeseries);
    with_session(o, report, async |s, _| {
        let mut sent = 0;
        while count.is_none_or(|c| sent < c) {
            let msg = match values.next(time::OffsetDateTime::now_utc())? {
                Next::Ready(m) => m,
                Next::Pending => {
                    values.wait().await;
                    continue;
                }
                Next::Exhausted => break,
            };
            publish_confirmed(
                s,
                Message::new(topic.clone(), encode(&msg)).with_qos(o.qos),
                "timeseries",
                o.timeout,
                report,
            )
            .await?;
            sent += 1;
        }
        Ok(sent)
    })
    .await
}

/// Sends one event from `event.json`.
pub async fn event(o: &OneShot, template: &Template, report: &Reporter) -> Result<(), AgentError> {
    let payload = event_payload(template, time::OffsetDateTime::now_utc())?;
    let topic = o.settings.topics.topic(Channel::Event);
    with_session(o, report, async |s, _| {
        publish_confirmed(
            s,
            Message::new(topic, payload).with_qos(o.qos),
            "event",
            o.timeout,
            report,
        )
        .await
    })
    .await
}

/// Where `mc-agent event` takes its events from besides the template.
#[derive(Debug, Clone)]
pub enum EventSource {
    /// One event described by flags.
    One(EventInput),
    /// One JSON object per line (an [`EventInput`]) from a file, or from stdin for `-`; empty
    /// lines are skipped.
    Lines(PathBuf),
}

/// Sends the events of `source`, each confirmed by the broker before the next is read; returns
/// how many were sent. A line that is not a valid event stops the run with its file and line
/// number, after the lines before it were sent.
pub async fn events(
    o: &OneShot,
    source: EventSource,
    report: &Reporter,
) -> Result<u64, AgentError> {
    use tokio::io::AsyncBufReadExt;
    let topic = o.settings.topics.topic(Channel::Event);
    let send = async |s: &Session, input: EventInput| -> Result<(), AgentError> {
        let event = input
            .into_event(uuid::Uuid::new_v4(), time::OffsetDateTime::now_utc())
            .map_err(|e| AgentError::Input(e.to_string()))?;
        let msg = EventsMessage {
            events: vec![event],
        };
        publish_confirmed(
            s,
            Message::new(topic.clone(), encode(&msg)).with_qos(o.qos),
            "event",
            o.timeout,
            report,
        )
        .await
    };
    let path = match source {
        EventSource::One(input) => {
            return with_session(o, report, async |s, _| send(s, input).await.map(|()| 1)).await;
        }
        EventSource::Lines(p) => p,
    };
    let (name, reader): (String, Box<dyn tokio::io::AsyncBufRead + Unpin + Send>) =
        if path.as_os_str() == "-" {
            (
                "stdin".into(),
                Box::new(tokio::io::BufReader::new(tokio::io::stdin())),
            )
        } else {
            let f = tokio::fs::File::open(&path).await.map_err(|e| {
                AgentError::Input(format!("cannot read the events `{}`: {e}", path.display()))
            })?;
            (
                format!("`{}`", path.display()),
                Box::new(tokio::io::BufReader::new(f)),
            )
        };
    let mut lines = reader.lines();
    with_session(o, report, async |s, _| {
        let mut sent = 0;
        let mut number = 0;
        while let Some(line) = lines.next_line().await.map_err(|e| {
            AgentError::Input(format!("cannot read the events from {name}: {e}"))
        })? {
            number += 1;
            if line.trim().is_empty() {
                continue;
            }
            let input: EventInput = serde_json::from_str(&line).map_err(|e| {
                AgentError::Input(format!(
                    "{name} line {number}: not an event ({e}); expected {{\"type\": .., \"severity\": 20|30|40, \"description\": .., \"timestamp\": .., \"details\": {{..}}}}"
                ))
            })?;
            send(s, input)
                .await
                .map_err(|e| match e {
                    AgentError::Input(m) => AgentError::Input(format!(
                        "{name} line {number}: {m} ({sent} events before it were sent)"
                    )),
                    other => other,
                })?;
            sent += 1;
        }
        Ok(sent)
    })
    .await
}

/// Sends `path` (or the sample's execution log) as a file message.
pub async fn file(o: &OneShot, path: Option<&Path>, report: &Reporter) -> Result<(), AgentError> {
    let msg = file_payload(
        path,
        &o.settings.topics,
        o.settings.max_message_bytes,
        time::OffsetDateTime::now_utc(),
    )?;
    let topic = o.settings.topics.topic(Channel::File);
    with_session(o, report, async |s, _| {
        publish_confirmed(
            s,
            Message::new(topic, encode(&msg)).with_qos(o.qos),
            "file",
            o.timeout,
            report,
        )
        .await
    })
    .await
}

/// Asks for an agent token on an open session (subscribed to `i/agm_v3/tr`) and waits for it.
pub async fn request_token(
    session: &Session,
    incoming: &mut Incoming,
    settings: &Settings,
    qos: Qos,
    timeout: Duration,
    report: &Reporter,
) -> Result<TokenData, AgentError> {
    let id = request_id();
    let topic = settings.topics.topic(Channel::TokenRequest);
    let answer = settings.topics.topic(Channel::TokenResponse);
    publish_confirmed(
        session,
        Message::new(topic.clone(), encode(&TokenRequest { id: id.clone() })).with_qos(qos),
        "token request",
        timeout,
        report,
    )
    .await?;
    report(&Event::Requested {
        what: "agent token".into(),
        request_id: id.clone(),
        topic,
    });
    let deadline = Instant::now() + timeout;
    loop {
        let m = tokio::select! {
            m = incoming.recv() => m.ok_or_else(|| AgentError::Ended(session.status().ended.unwrap_or_else(|| "closed".into())))?,
            () = tokio::time::sleep_until(deadline) => return Err(AgentError::NoAnswer { what: "agent token", topic: answer, waited: timeout }),
        };
        if m.topic != answer {
            continue;
        }
        match decode::<TokenReply>("token response", &m.payload) {
            Ok(r) if r.request_id.as_deref().is_none_or(|r| r == id) => {
                report(&Event::TokenReceived {
                    expires_in: r.data.lifetime().as_secs(),
                    refresh_in: r.data.refresh_after().as_secs(),
                });
                return Ok(r.data);
            }
            Ok(_) => {}
            Err(e) => report(&Event::Warning {
                message: e.to_string(),
            }),
        }
    }
}

/// Requests an agent token.
pub async fn token(o: &OneShot, report: &Reporter) -> Result<TokenData, AgentError> {
    with_session(o, report, async |s, incoming| {
        subscribe(s, &o.settings, &[Channel::TokenResponse], report).await?;
        request_token(s, incoming, &o.settings, o.qos, o.timeout, report).await
    })
    .await
}

/// Requests a token and uploads `path` to the datalake; returns the object path.
pub async fn datalake(o: &OneShot, path: &Path, report: &Reporter) -> Result<String, AgentError> {
    let bytes = std::fs::read(path).map_err(|e| {
        AgentError::Input(format!(
            "cannot read the file to upload `{}`: {e}",
            path.display()
        ))
    })?;
    let dl = Datalake::new(&o.settings, o.timeout)?;
    let t = token(o, report).await?;
    let name = super::source::file_name(path);
    let size = bytes.len();
    let object = dl.upload(&t.access_token, &name, bytes).await?;
    report(&Event::Uploaded {
        path: object.clone(),
        bytes: size,
    });
    Ok(object)
}
