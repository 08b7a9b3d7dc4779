//! The HDM device agent over `transport`: read the env file ([`config`]), provision into the
//! certificate store per generation ([`provision`], with [`api`] for every HTTPS call, [`keys`]
//! for keys made here, [`oauth`] and [`directory`] for gen 3, [`store`] on disk), connect as the
//! thing ([`connect`]), and drive telemetry and the shadow ([`run`], with [`telemetry`] building
//! the events). Everything the agent does is reported as an [`Event`] to a [`Reporter`] the
//! caller passes in; nothing here prints.

pub mod api;
pub mod config;
pub mod connect;
pub mod directory;
pub mod keys;
pub mod oauth;
pub mod provision;
pub mod run;
pub mod store;
pub mod telemetry;

use std::path::PathBuf;

use serde::Serialize;
use transport::Outcome;

use crate::protocol::env::EnvError;
use crate::protocol::envelope::EnvelopeError;
use crate::protocol::generation::Generation;
use crate::protocol::json::FieldError;
use crate::protocol::shadow::device::ShadowEvent;
use crate::protocol::topics::TopicError;

pub use run::{Plan, ShadowPlan, Summary};
pub use store::{Provisioned, Store, StoreError};
pub use telemetry::{EventSource, TelemetryPlan};

/// Something the agent did or saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Event {
    /// The configuration service answered; the root CA was written.
    Configured {
        /// Broker host.
        mqtt_endpoint: String,
        /// Broker port.
        mqtt_port: u16,
        /// Where the root CA went.
        root_ca: PathBuf,
    },
    /// A new identity was stored.
    Provisioned {
        /// Thing name.
        thing: String,
        /// With a locally made key and CSR.
        csr: bool,
        /// The API generation used.
        generation: Generation,
        /// The store.
        store: PathBuf,
    },
    /// Gen 3: a person must approve this device in the Zaikio directory.
    DeviceAuthorization {
        /// Where to go.
        verification_uri: String,
        /// The same with the code filled in, if offered.
        #[serde(skip_serializing_if = "Option::is_none")]
        verification_uri_complete: Option<String>,
        /// The code to enter.
        user_code: String,
        /// Seconds the code is valid.
        expires_in: u64,
    },
    /// Gen 3: a Bearer token is at hand.
    Authorized {
        /// `stored`, `refresh` or `device flow`.
        via: &'static str,
    },
    /// Gen 3: a Zaikio directory step was done (and remembered).
    Directory {
        /// `site`, `machine` or `ownership`.
        step: &'static str,
        /// The site or machine id.
        id: String,
    },
    /// The broker refused the shadow subscription: telemetry goes on without the shadow.
    ShadowUnavailable {
        /// What the broker said.
        reason: String,
    },
    /// The store already held an identity; none was requested.
    AlreadyProvisioned {
        /// Thing name.
        thing: String,
        /// The store.
        store: PathBuf,
    },
    /// Connected to the broker.
    Connected {
        /// Broker URL.
        endpoint: String,
        /// Connections so far.
        connection: u64,
    },
    /// Lost the connection (it is retried).
    Disconnected {
        /// Why.
        reason: String,
    },
    /// A telemetry event was accepted for sending.
    Sent {
        /// Events accepted so far.
        n: u64,
        /// Its `eventType`.
        event_type: String,
        /// Its `senderEventUuid`.
        uuid: String,
    },
    /// The shadow's state held an event back.
    Blocked {
        /// Its `eventType`.
        event_type: String,
        /// Why.
        reason: String,
    },
    /// An event could not be built or was too large; it was not sent.
    Refused {
        /// Why (names the field or the limit).
        reason: String,
    },
    /// Shadow progress.
    Shadow(ShadowEvent),
}

impl Event {
    /// The NDJSON `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Configured { .. } => "configured",
            Event::Provisioned { .. } => "provisioned",
            Event::DeviceAuthorization { .. } => "device_authorization",
            Event::Authorized { .. } => "authorized",
            Event::Directory { .. } => "directory",
            Event::ShadowUnavailable { .. } => "shadow_unavailable",
            Event::AlreadyProvisioned { .. } => "already_provisioned",
            Event::Connected { .. } => "connected",
            Event::Disconnected { .. } => "disconnected",
            Event::Sent { .. } => "sent",
            Event::Blocked { .. } => "blocked",
            Event::Refused { .. } => "refused",
            Event::Shadow(_) => "shadow",
        }
    }

    /// A sentence for people.
    pub fn text(&self) -> String {
        match self {
            Event::Configured {
                mqtt_endpoint,
                mqtt_port,
                root_ca,
            } => format!(
                "configuration: broker {mqtt_endpoint}:{mqtt_port}; root CA written to {}",
                root_ca.display()
            ),
            Event::Provisioned {
                thing,
                csr,
                generation,
                store,
            } => format!(
                "provisioned as thing `{thing}` ({generation}; {}); identity stored in {}",
                if *csr {
                    "key made here, CSR signed by the service"
                } else {
                    "key made by the service"
                },
                store.display()
            ),
            Event::DeviceAuthorization {
                verification_uri,
                verification_uri_complete,
                user_code,
                expires_in,
            } => format!(
                "to authorize this device, open {} and enter the code {user_code} (valid for {} min); waiting for the approval",
                verification_uri_complete
                    .as_ref()
                    .unwrap_or(verification_uri),
                expires_in / 60
            ),
            Event::Authorized { via } => format!("Zaikio directory: authorized ({via})"),
            Event::Directory { step, id } => match *step {
                "site" => format!("Zaikio directory: using site {id}"),
                "machine" => format!("Zaikio directory: machine registered as {id}"),
                _ => format!("Zaikio directory: the machine now belongs to site {id}"),
            },
            Event::ShadowUnavailable { reason } => {
                format!("shadow unavailable ({reason}); telemetry goes on without it")
            }
            Event::AlreadyProvisioned { thing, store } => format!(
                "{} already holds the identity of `{thing}`; not provisioning again (each provisioning creates assets in the backend; --force to do it anyway)",
                store.display()
            ),
            Event::Connected {
                endpoint,
                connection,
            } => {
                format!("connected to {endpoint} (connection {connection})")
            }
            Event::Disconnected { reason } => format!("disconnected: {reason}; reconnecting"),
            Event::Sent {
                n,
                event_type,
                uuid,
            } => format!("event {n} ({event_type}) queued, senderEventUuid {uuid}"),
            Event::Blocked { event_type, reason } => {
                format!("event ({event_type}) not sent: {reason}")
            }
            Event::Refused { reason } => format!("event not sent: {reason}"),
            Event::Shadow(e) => shadow_text(e),
        }
    }
}

fn shadow_text(e: &ShadowEvent) -> String {
    match e {
        ShadowEvent::Missing => {
            "shadow: none exists yet (get/rejected 404); creating it by reporting the device state"
                .into()
        }
        ShadowEvent::Synced {
            version,
            created: true,
        } => format!("shadow: created at version {version}"),
        ShadowEvent::Synced {
            version,
            created: false,
        } => format!("shadow: reported state accepted at version {version}"),
        ShadowEvent::DesiredApplied {
            version,
            changed,
            source,
        } => format!(
            "shadow: applied desired {} from {source} (version {version})",
            changed.join(", ")
        ),
        ShadowEvent::InvalidDesired(i) => format!(
            "shadow: desired `{}` must be {}, found {}; kept the current value",
            i.key, i.expected, i.found
        ),
        ShadowEvent::Stale {
            topic,
            version,
            newest,
        } => format!(
            "shadow: dropped a stale message on {topic} (version {version}, already at {newest})"
        ),
        ShadowEvent::Conflict { attempt } => format!(
            "shadow: version conflict (409) on update, attempt {attempt}; getting the shadow again"
        ),
        ShadowEvent::Rejected { op, code, message } => {
            format!("shadow: {} rejected with {code}: {message}", op.as_str())
        }
        ShadowEvent::Deleted { version } => format!("shadow: deleted (was version {version})"),
        ShadowEvent::TimedOut { op } => {
            format!("shadow: no answer to {}; asking again", op.as_str())
        }
    }
}

/// Where the agent's events go.
pub trait Reporter: Send + Sync {
    /// Takes one event.
    fn report(&self, event: Event);

    /// A telemetry event was confirmed (PUBACK) `latency` after it was handed to the session.
    /// Load tests (`iot-sim fleet`) time them; an agent's own output has no use for it.
    fn confirmed(&self, _latency: std::time::Duration) {}
}

impl<F: Fn(Event) + Send + Sync> Reporter for F {
    fn report(&self, event: Event) {
        self(event);
    }
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The env file is wrong.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// No env file or a bad one.
    #[error("{0}")]
    Config(String),
    /// The certificate store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An HTTPS step the HTTP policy refused or that failed on the way.
    #[error(transparent)]
    Transport(#[from] transport::http::HttpError),
    /// The Zaikio authorization or directory did not give what onboarding needs.
    #[error("Zaikio: {0}")]
    Authorization(String),
    /// The configuration or provisioning service could not be reached.
    #[error("cannot reach {url}: {reason}")]
    Http {
        /// URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The service answered with an error status.
    #[error("{what} at {url} answered HTTP {status}: {message}")]
    HttpStatus {
        /// Which call.
        what: &'static str,
        /// URL.
        url: String,
        /// Status code.
        status: u16,
        /// Its message, with advice.
        message: String,
    },
    /// The service's answer was not what the protocol says.
    #[error(transparent)]
    Body(#[from] FieldError),
    /// A local key or CSR could not be made, or TLS files are wrong.
    #[error("{0}")]
    Setup(String),
    /// Bad connection settings.
    #[error(transparent)]
    Options(#[from] transport::session::OptionsError),
    /// Connecting failed.
    #[error(transparent)]
    Connect(#[from] transport::session::StartError),
    /// The broker refused the subscriptions.
    #[error("subscribing to the shadow topics failed: {0}")]
    Subscribe(#[from] transport::session::SubscribeError),
    /// A publish was not accepted.
    #[error(transparent)]
    Publish(#[from] transport::session::PublishError),
    /// Telemetry input.
    #[error("{what}: {reason}")]
    Input {
        /// Which input.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// An event cannot be sent.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// A name cannot be used in a topic.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The session ended for good.
    #[error("the connection ended: {0}")]
    Ended(String),
}

impl AgentError {
    /// The class of this error (for the documented exit codes).
    pub fn outcome(&self) -> Outcome {
        match self {
            AgentError::Env(_)
            | AgentError::Config(_)
            | AgentError::Store(_)
            | AgentError::Options(_)
            | AgentError::Input { .. }
            | AgentError::Envelope(_)
            | AgentError::Topic(_)
            | AgentError::Connect(transport::session::StartError::Options(_))
            | AgentError::Transport(
                transport::http::HttpError::Plaintext { .. } | transport::http::HttpError::Tls(_),
            )
            | AgentError::HttpStatus {
                status: 401 | 403, ..
            } => Outcome::Usage,
            _ => Outcome::Failure,
        }
    }
}

/// A random (version 4) UUID for `senderEventUuid`, lower-case hyphenated.
pub fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_v4_and_valid_envelope_ids() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(uuid_v4(), u);
    }

    #[test]
    fn events_have_kinds_and_sentences() {
        let e = Event::Blocked {
            event_type: "ODA".into(),
            reason: "off".into(),
        };
        assert_eq!(e.kind(), "blocked");
        assert!(e.text().contains("ODA"));
        let json = serde_json::to_value(Event::Shadow(ShadowEvent::Missing)).unwrap();
        assert_eq!(json["event"], "missing");
    }

    #[test]
    fn the_device_flow_code_reads_as_a_sentence_and_as_ndjson_data() {
        let e = Event::DeviceAuthorization {
            verification_uri: "https://directory.sandbox.zaikio.com/device".into(),
            verification_uri_complete: None,
            user_code: "WDJB-MJHT".into(),
            expires_in: 900,
        };
        assert_eq!(e.kind(), "device_authorization");
        let t = e.text();
        assert!(
            t.contains("https://directory.sandbox.zaikio.com/device")
                && t.contains("WDJB-MJHT")
                && t.contains("15 min"),
            "{t}"
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["user_code"], "WDJB-MJHT");
        assert!(v.get("verification_uri_complete").is_none());
    }
}
