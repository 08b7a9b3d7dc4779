//! What the agent reports while it works. The binaries render each [`Event`] as a sentence or
//! as NDJSON `{"type": kind, "data": ...}` (the front end's `cli::output`); tests and the demo collect
//! them. No I/O here.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

/// Where events go.
pub type Reporter = Arc<dyn Fn(&Event) + Send + Sync>;

/// A reporter that drops everything.
pub fn silent() -> Reporter {
    Arc::new(|_| {})
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Event {
    /// Connected to the broker.
    Connected {
        /// Broker URL.
        broker: String,
        /// Client id.
        client_id: String,
        /// Whether the session is kept by the broker (clean session off).
        persistent: bool,
    },
    /// Subscribed (SUBACK received).
    Subscribed {
        /// Topics.
        topics: Vec<String>,
    },
    /// A payload prepared but not sent (`mc-model show`).
    Prepared {
        /// `model`, `instance`, `timeseries`, `event`.
        what: String,
        /// Topic it would go to.
        topic: String,
        /// The filled payload.
        payload: Value,
        /// Problems found before sending.
        issues: Vec<String>,
    },
    /// A request that the platform answers was sent.
    Requested {
        /// `model`, `instantiation`, `agent token`.
        what: String,
        /// Request id.
        request_id: String,
        /// Where it went.
        topic: String,
    },
    /// An Asset Modeler job is still running.
    Progress {
        /// `model`, `instantiation`.
        what: String,
        /// Platform message.
        message: Option<String>,
    },
    /// An Asset Modeler job succeeded.
    Succeeded {
        /// `model`, `instantiation`.
        what: String,
        /// Request id.
        request_id: String,
    },
    /// `instance.conf` written.
    InstanceCreated {
        /// File.
        path: String,
    },
    /// `instance.conf` says `CREATED`; no instantiation sent.
    InstanceExists {
        /// File.
        path: String,
    },
    /// v4 model synchronisation finished (`agent.ini` says MODEL_SYNCHRONIZATION_SUCCESSFUL).
    ModelSynced {
        /// `agent.ini`.
        path: String,
        /// Whether `o/amo_v4/mi` was sent (false: the sha matched, or the cloud had it all).
        sent: bool,
        /// Elements sent.
        elements: usize,
        /// Elements that took their referenceId from the cloud model.
        reused: usize,
        /// Elements with a new referenceId.
        created: usize,
    },
    /// The asset model generation `mc-agent run` speaks, and what chose it.
    ModelApi {
        /// `v3` (`amo_v3`, `instance.conf`) or `v4` (`amo_v4`, `agent.ini`).
        api: String,
        /// `--model-api`, `MODEL_API`, `agent.ini exists` or `no agent.ini`.
        chosen_by: String,
    },
    /// The broker confirmed a publish (PUBACK for QoS 1, written for QoS 0).
    Published {
        /// `timeseries`, `event`, `file`, `command status`, ...
        what: String,
        /// Topic.
        topic: String,
        /// Payload size.
        bytes: usize,
        /// From the publish to the broker's confirmation, when the sender timed it (not part
        /// of the NDJSON: a load test reads it, `iot-sim fleet --profile mindconnect`).
        #[serde(skip)]
        latency: Option<std::time::Duration>,
    },
    /// A new agent token (the token itself is not shown; see `mc-agent token`).
    TokenReceived {
        /// Lifetime in seconds.
        expires_in: u64,
        /// Seconds until the refresh request.
        refresh_in: u64,
    },
    /// The agent token, for `mc-agent token`.
    Token {
        /// The JWT.
        access_token: String,
        /// `Bearer`.
        token_type: String,
        /// Lifetime in seconds.
        expires_in: u64,
    },
    /// An object was uploaded to the datalake.
    Uploaded {
        /// Object path.
        path: String,
        /// Size.
        bytes: usize,
    },
    /// A custom topic is registered and its mappings are in place.
    CustomTopic {
        /// The registration id.
        id: String,
        /// The topic.
        topic: String,
        /// `false` when it was registered before.
        created: bool,
        /// Mappings added now.
        mappings_added: usize,
        /// Mappings the platform had already.
        mappings_existing: usize,
    },
    /// A command arrived.
    CommandReceived {
        /// Job id.
        job_id: String,
        /// `commandType`.
        command_type: Option<String>,
    },
    /// A command status was sent.
    CommandStatus {
        /// Job id.
        job_id: String,
        /// `EXECUTING`, `EXECUTED`, `FAILED`.
        status: String,
        /// Response.
        response: Value,
    },
    /// Worth knowing, not fatal.
    Warning {
        /// What.
        message: String,
    },
    /// What a run did.
    Summary {
        /// Timeseries messages sent.
        timeseries: u64,
        /// Event messages sent.
        events: u64,
        /// Files sent.
        files: u64,
        /// Datalake uploads.
        datalake: u64,
        /// Commands answered.
        commands: u64,
        /// Publishes the broker did not confirm.
        unconfirmed: u64,
    },
}

impl Event {
    /// The NDJSON `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Connected { .. } => "connected",
            Event::Subscribed { .. } => "subscribed",
            Event::Prepared { .. } => "prepared",
            Event::Requested { .. } => "requested",
            Event::Progress { .. } => "progress",
            Event::Succeeded { .. } => "succeeded",
            Event::InstanceCreated { .. } => "instance_created",
            Event::InstanceExists { .. } => "instance_exists",
            Event::ModelSynced { .. } => "model_synced",
            Event::ModelApi { .. } => "model_api",
            Event::Published { .. } => "published",
            Event::TokenReceived { .. } => "token_received",
            Event::Token { .. } => "token",
            Event::Uploaded { .. } => "uploaded",
            Event::CustomTopic { .. } => "custom_topic",
            Event::CommandReceived { .. } => "command_received",
            Event::CommandStatus { .. } => "command_status",
            Event::Warning { .. } => "warning",
            Event::Summary { .. } => "summary",
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Connected {
                broker,
                client_id,
                persistent,
            } => write!(
                f,
                "connected to {broker} as {client_id}{}",
                if *persistent {
                    " (persistent session)"
                } else {
                    ""
                }
            ),
            Event::Subscribed { topics } => write!(f, "subscribed to {}", topics.join(", ")),
            Event::Prepared {
                what,
                topic,
                payload,
                issues,
            } => {
                let pretty = serde_json::to_string_pretty(payload).unwrap_or_default();
                write!(f, "{what} for {topic}:\n{pretty}")?;
                issues
                    .iter()
                    .try_for_each(|i| write!(f, "\n  problem: {i}"))
            }
            Event::Requested {
                what,
                request_id,
                topic,
            } => write!(f, "{what} request {request_id} sent to {topic}"),
            Event::Progress { what, message } => write!(
                f,
                "{what}: in progress{}",
                message
                    .as_ref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ),
            Event::Succeeded { what, request_id } => {
                write!(f, "{what}: Success (request {request_id})")
            }
            Event::InstanceCreated { path } => {
                write!(f, "instance created; wrote CREATED to {path}")
            }
            Event::InstanceExists { path } => {
                write!(f, "{path} says CREATED; not instantiating again")
            }
            Event::ModelSynced {
                path, sent: false, ..
            } => write!(f, "model in sync ({path}); nothing sent"),
            Event::ModelSynced {
                path,
                elements,
                reused,
                created,
                ..
            } => write!(
                f,
                "model synchronised: sent {elements} element(s) ({reused} referenceIds reused, {created} new); {path} updated"
            ),
            Event::ModelApi { api, chosen_by } => write!(
                f,
                "asset model {api} ({}), chosen by {chosen_by}",
                if api == "v4" {
                    "amo_v4 synchronisation, agent.ini"
                } else {
                    "amo_v3 instantiation, instance.conf"
                }
            ),
            Event::Published {
                what, topic, bytes, ..
            } => {
                write!(f, "{what} confirmed on {topic} ({bytes} bytes)")
            }
            Event::TokenReceived {
                expires_in,
                refresh_in,
            } => write!(
                f,
                "agent token received (valid {expires_in} s, refresh in {refresh_in} s)"
            ),
            Event::Token { access_token, .. } => f.write_str(access_token),
            Event::Uploaded { path, bytes } => {
                write!(f, "uploaded {bytes} bytes to the datalake as {path}")
            }
            Event::CustomTopic {
                id,
                topic,
                created,
                mappings_added,
                mappings_existing,
            } => write!(
                f,
                "custom topic {topic} {} (id {id}); {mappings_added} mappings added, {mappings_existing} already there",
                if *created {
                    "registered"
                } else {
                    "was registered already"
                }
            ),
            Event::CommandReceived {
                job_id,
                command_type,
            } => write!(
                f,
                "command {} received (job {job_id})",
                command_type.as_deref().unwrap_or("without commandType")
            ),
            Event::CommandStatus {
                job_id,
                status,
                response,
            } => write!(f, "job {job_id}: {status} {response}"),
            Event::Warning { message } => write!(f, "warning: {message}"),
            Event::Summary {
                timeseries,
                events,
                files,
                datalake,
                commands,
                unconfirmed,
            } => write!(
                f,
                "sent {timeseries} timeseries, {events} events, {files} files; {datalake} datalake uploads; {commands} commands answered{}",
                if *unconfirmed > 0 {
                    format!("; {unconfirmed} NOT confirmed by the broker")
                } else {
                    String::new()
                }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_a_kind_a_sentence_and_flat_json() {
        let e = Event::Published {
            what: "timeseries".into(),
            topic: "t".into(),
            bytes: 3,
            latency: Some(std::time::Duration::from_millis(2)),
        };
        assert_eq!(e.kind(), "published");
        assert_eq!(e.to_string(), "timeseries confirmed on t (3 bytes)");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"what":"timeseries","topic":"t","bytes":3}"#
        );
    }
}
