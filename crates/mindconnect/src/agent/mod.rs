//! The device side of MindConnect MQTT on `transport`: publishing and instantiating the asset
//! model ([`model`], `mc-model`), the agent loop ([`run`], `mc-agent run`) that drives the
//! protocol's state machine, and the one-shot steps ([`oneshot`]). Reports through a
//! caller-supplied [`Reporter`]; never prints. `AgentError::exit_code` maps every failure to
//! the documented exit codes.

pub mod commands;
pub mod custom;
pub mod datalake;
pub mod events;
pub mod model;
pub mod oneshot;
pub mod run;
pub mod source;
pub mod sync;

use std::path::{Path, PathBuf};
use std::time::Duration;

use transport::Outcome;
use transport::session::{Incoming, PublishError, StartError, SubscribeError};
use transport::{Message, Outbox, Qos, Session};

pub use events::{Event, Reporter, silent};

use crate::config::{ConfigError, Settings};
use crate::protocol::model::JobError;
use crate::protocol::topic::Channel;
use crate::templates::TemplateLoadError;

/// Why the agent could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Templates.
    #[error(transparent)]
    Template(#[from] TemplateLoadError),
    /// Input files or values.
    #[error("{0}")]
    Input(String),
    /// Connecting failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// SUBACK refused or missing.
    #[error("cannot subscribe to {filters}: {source}")]
    Subscribe {
        /// Filters.
        filters: String,
        /// Why.
        source: SubscribeError,
    },
    /// The session did not take a message.
    #[error("cannot publish the {what} to `{topic}`: {source}")]
    Publish {
        /// What.
        what: &'static str,
        /// Topic.
        topic: String,
        /// Why.
        source: PublishError,
    },
    /// The broker did not confirm in time.
    #[error("the broker did not confirm the {what} on `{topic}` within {} s; MindConnect sends no other acknowledgement for it", .waited.as_secs())]
    NotConfirmed {
        /// What.
        what: &'static str,
        /// Topic.
        topic: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The platform did not answer.
    #[error("no answer to the {what} request on `{topic}` within {} s; is the platform side running (iot-sim up) and is this agent onboarded?", .waited.as_secs())]
    NoAnswer {
        /// What.
        what: &'static str,
        /// Where the answer was expected.
        topic: String,
        /// How long.
        waited: Duration,
    },
    /// The platform answered `Failed`.
    #[error("the platform refused the {what}{}: {}", message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default(), if errors.is_empty() { "no errors given".to_owned() } else { errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ") })]
    Rejected {
        /// What.
        what: &'static str,
        /// Its errors.
        errors: Vec<JobError>,
        /// Its message.
        message: Option<String>,
    },
    /// A local check refused a payload before sending.
    #[error("{what} `{file}` has problems, nothing was sent (use --no-check to send anyway):\n  {}", issues.join("\n  "))]
    Invalid {
        /// What.
        what: &'static str,
        /// File.
        file: String,
        /// Problems.
        issues: Vec<String>,
    },
    /// An HTTPS step failed.
    #[error("datalake upload: {step} ({url}) failed: {reason}")]
    Http {
        /// Step.
        step: &'static str,
        /// URL.
        url: String,
        /// Why.
        reason: String,
        /// HTTP status, when the server answered.
        status: Option<u16>,
    },
    /// A file of ours could not be written.
    #[error("cannot write `{path}`: {source}")]
    Write {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The session ended under us.
    #[error("the connection ended: {0}")]
    Ended(String),
    /// Some publishes were never confirmed.
    #[error("{0} message(s) were not confirmed by the broker before the end")]
    Unconfirmed(u64),
}

impl AgentError {
    /// The class of this error (for the documented exit codes).
    pub fn outcome(&self) -> Outcome {
        match self {
            AgentError::Config(_)
            | AgentError::Template(_)
            | AgentError::Input(_)
            | AgentError::Invalid { .. }
            | AgentError::Start(StartError::Options(_)) => Outcome::Usage,
            AgentError::Rejected { .. } => Outcome::Rejected,
            AgentError::Http {
                status: Some(s), ..
            } if (400..500).contains(s) => Outcome::Rejected,
            _ => Outcome::Failure,
        }
    }
}

/// Connects as the agent; `persistent` turns clean session off (the sample's agent does that,
/// its model publisher does not).
pub async fn connect(
    settings: &Settings,
    persistent: bool,
    outbox: Outbox,
    report: &Reporter,
) -> Result<(Session, Incoming), AgentError> {
    let mut o = settings.session.clone();
    // `--persistent` asks for a kept session everywhere; `run` always keeps it.
    o.clean_session = o.clean_session && !persistent;
    if matches!(outbox, Outbox::Disk(_)) {
        o.start_mode = transport::StartMode::Background;
    }
    let clean = o.clean_session;
    let broker = o.endpoint.to_string();
    let client_id = o.client_id.clone();
    let pair = Session::start(o, outbox).await?;
    report(&Event::Connected {
        broker,
        client_id,
        persistent: !clean,
    });
    Ok(pair)
}

/// Subscribes to `channels` of this agent (QoS 1, one SUBSCRIBE, waits for the SUBACK).
pub async fn subscribe(
    session: &Session,
    settings: &Settings,
    channels: &[Channel],
    report: &Reporter,
) -> Result<(), AgentError> {
    let topics: Vec<String> = channels.iter().map(|c| settings.topics.topic(*c)).collect();
    let filters: Vec<(String, Qos)> = topics
        .iter()
        .map(|t| (t.clone(), Qos::AtLeastOnce))
        .collect();
    session
        .subscribe(&filters)
        .await
        .map_err(|source| AgentError::Subscribe {
            filters: topics.join(", "),
            source,
        })?;
    report(&Event::Subscribed { topics });
    Ok(())
}

/// Publishes and waits for the broker's confirmation (PUBACK for QoS 1) within `timeout`.
pub async fn publish_confirmed(
    session: &Session,
    msg: Message,
    what: &'static str,
    timeout: Duration,
    report: &Reporter,
) -> Result<(), AgentError> {
    let (topic, bytes) = (msg.topic.clone(), msg.payload.len());
    let sent = tokio::time::Instant::now();
    let d = session
        .publish(msg)
        .await
        .map_err(|source| AgentError::Publish {
            what,
            topic: topic.clone(),
            source,
        })?;
    match tokio::time::timeout(timeout, d.confirmed()).await {
        Ok(Ok(())) => {
            report(&Event::Published {
                what: what.into(),
                topic,
                bytes,
                latency: Some(sent.elapsed()),
            });
            Ok(())
        }
        _ => Err(AgentError::NotConfirmed {
            what,
            topic,
            waited: timeout,
        }),
    }
}

/// Whether `instance.conf` says the instance exists (its first line contains `CREATED`, like
/// the sample checks). A missing file means no.
pub fn instance_created(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .is_ok_and(|t| t.lines().next().is_some_and(|l| l.contains("CREATED")))
}

/// Records the created instance (`CREATED`, as the sample writes it).
pub fn mark_instance_created(path: &Path) -> Result<(), AgentError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| AgentError::Write {
            path: dir.to_owned(),
            source,
        })?;
    }
    std::fs::write(path, "CREATED").map_err(|source| AgentError::Write {
        path: path.to_owned(),
        source,
    })
}

/// A new request id (uuid4, as the sample uses).
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_conf_follows_the_sample() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/instance.conf");
        assert!(!instance_created(&p));
        mark_instance_created(&p).unwrap();
        assert!(instance_created(&p));
        std::fs::write(&p, "\nCREATED").unwrap();
        assert!(
            !instance_created(&p),
            "the sample reads the first line only"
        );
    }

    #[test]
    fn outcomes_follow_the_contract() {
        assert_eq!(
            AgentError::Rejected {
                what: "x",
                errors: vec![],
                message: None
            }
            .outcome(),
            Outcome::Rejected
        );
        assert_eq!(AgentError::Input("x".into()).outcome(), Outcome::Usage);
        assert_eq!(
            AgentError::NoAnswer {
                what: "x",
                topic: "t".into(),
                waited: Duration::from_secs(1)
            }
            .outcome(),
            Outcome::Failure
        );
        assert_eq!(
            AgentError::Http {
                step: "s",
                url: "u".into(),
                reason: "r".into(),
                status: Some(401)
            }
            .outcome(),
            Outcome::Rejected
        );
    }
}
