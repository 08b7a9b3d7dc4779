//! The IoTConnect device agent: discovery and sync over HTTPS ([`bootstrap`]), then an MQTT
//! session that carries what the [`Device`] state machine decides. [`Agent`] holds the session
//! and the device; its one-shot methods serve `iotc-send data|twin|ack`, and [`Agent::run`]
//! (in `run.rs`) is the long-running loop of `iotc-send run`: input, commands, OTA, twin, edge
//! windows, offline storage, the 0x99 hard stop.
//!
//! Offline storage: with `offlineStorage` enabled every message goes through the transport's
//! disk spool (its size and file-count caps are the SDK's semantics). A message created while the
//! broker is unreachable is written with `"od": 1`, so its later replay is marked offline. A
//! message created while connected but lost with the connection is resent by the transport
//! unchanged (without `od`); see `docs/iotconnect.md`. With offline storage disabled, messages
//! made while disconnected are dropped (and reported), as the SDK does.

pub mod bootstrap;
pub mod dps;
pub mod events;
pub mod hook;
pub mod ota;
mod run;
pub mod setup;
pub mod source;

/// Why auth type 4 is refused by a build without the `tpm` feature, and what to do.
pub const NO_TPM_FEATURE: &str = "this iotc-send was built without the `tpm` feature, which auth type 4 needs (docs/iotconnect.md, \"TPM (auth type 4, Azure DPS)\", says how to build it)";
#[cfg(feature = "tpm")]
pub mod tpm;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use transport::session::{Incoming, PublishError, ResendHook, StartError, SubscribeError};
use transport::settings::SettingsError;
use transport::{Message, Outbox, Outcome, Qos, Session, SessionOptions, SpoolConfig, StartMode};

pub use events::{Collect, Event, Reporter};
pub use run::{Confirmed, Reconnect, RunOptions, RunOutcome};

use crate::config::ConfigError;
use crate::protocol::device::{Action, Device, DeviceError, OutKind, Outgoing};
use crate::protocol::sas::SasError;
use crate::protocol::v1::ack::{AckData, AckKind};
use crate::protocol::v1::envelope::mark_offline;
use crate::protocol::v1::sync::SyncError;
use crate::protocol::{Mono, input::InputRecord};

/// Why the agent stopped or could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The config file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Discovery or sync answered badly or refused.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// A 2.1 discovery or identity answer is bad or refused (`ec` as a sentence).
    #[error(transparent)]
    V2(#[from] crate::protocol::v2::V2Error),
    /// The sync answer cannot drive the device.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// An HTTPS request failed.
    #[error("{what} request to {url} failed: {reason}")]
    Http {
        /// `discovery`, `sync`.
        what: &'static str,
        /// URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Connection settings (broker URL, password source).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The MQTT session could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A subscription was refused.
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
    /// A publish was refused.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The broker did not confirm a message.
    #[error("the broker did not confirm the {kind} message within {secs} s")]
    NotConfirmed {
        /// Message kind.
        kind: String,
        /// Wait.
        secs: u64,
    },
    /// The offline store.
    #[error(transparent)]
    Outbox(#[from] transport::outbox::OutboxError),
    /// A SAS token could not be made.
    #[error(transparent)]
    Sas(#[from] SasError),
    /// DPS refused the registration or answered badly.
    #[error(transparent)]
    Dps(#[from] crate::protocol::dps::DpsError),
    /// The TPM (auth type 4).
    #[error("TPM: {0}")]
    Tpm(String),
    /// Something this agent does not do.
    #[error("{0}")]
    Unsupported(String),
    /// Input data or a value given on the command line.
    #[error("{0}")]
    Input(String),
    /// The session ended for good.
    #[error("the MQTT session ended: {0}")]
    Ended(String),
}

impl AgentError {
    /// The class of this error (for the documented exit codes).
    pub fn outcome(&self) -> Outcome {
        match self {
            AgentError::Config(_)
            | AgentError::Settings(_)
            | AgentError::Unsupported(_)
            | AgentError::Sas(_)
            | AgentError::Input(_) => Outcome::Usage,
            AgentError::Sync(SyncError::Refused { .. } | SyncError::Status { .. })
            | AgentError::Dps(crate::protocol::dps::DpsError::Refused { .. })
            | AgentError::V2(
                crate::protocol::v2::V2Error::Refused { .. }
                | crate::protocol::v2::V2Error::Code { .. },
            ) => Outcome::Rejected,
            _ => Outcome::Failure,
        }
    }
}

/// Counters of one agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages accepted.
    pub published: u64,
    /// Of them, made while offline.
    pub offline: u64,
    /// `SendData` calls discarded by `df`.
    pub throttled: u64,
    /// Acknowledgements sent.
    pub acks: u64,
}

/// A connected (or, with offline storage, connecting) device.
pub struct Agent {
    session: Session,
    incoming: Incoming,
    device: Device,
    origin: tokio::time::Instant,
    reporter: Arc<dyn Reporter>,
    spool: Option<SpoolConfig>,
    counters: Counters,
    /// Counts sessions (a 0x12 re-sync with new broker parameters opens a new one).
    generation: u64,
    /// Publishes waiting for their PUBACK to tell `RunOptions::on_confirmed`: apart from the
    /// other background work, so that a shutdown, which aborts that, still lets them finish
    /// while the session flushes.
    confirming: tokio::task::JoinSet<()>,
}

impl Agent {
    /// Starts the MQTT session. With `offline` (the spool) it returns at once and keeps trying
    /// in the background; without, it returns once connected.
    pub async fn start(
        mut opts: SessionOptions,
        offline: Option<SpoolConfig>,
        device: Device,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Agent, AgentError> {
        let (session, incoming) = open_session(&mut opts, offline.as_ref()).await?;
        Ok(Agent {
            session,
            incoming,
            device,
            origin: tokio::time::Instant::now(),
            reporter,
            spool: offline,
            counters: Counters::default(),
            generation: 1,
            confirming: tokio::task::JoinSet::new(),
        })
    }

    /// Closes the session and opens a new one with `opts` (after 0x12 changed the broker
    /// parameters); the offline store is reopened, so nothing unconfirmed is lost.
    pub async fn reconnect(&mut self, mut opts: SessionOptions) -> Result<(), AgentError> {
        self.session.close(Duration::from_secs(2)).await;
        let (session, incoming) = open_session(&mut opts, self.spool.as_ref()).await?;
        self.session = session;
        self.incoming = incoming;
        self.generation += 1;
        Ok(())
    }

    /// The monotonic clock the device runs on.
    fn now(&self) -> Mono {
        self.origin.elapsed()
    }

    /// The device state machine.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Counters so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Subscribes to commands, desired properties and twin answers (waits for the SUBACK).
    pub async fn subscribe(&self) -> Result<(), AgentError> {
        let filters: Vec<(String, Qos)> = self
            .device
            .subscriptions()
            .into_iter()
            .map(|f| (f, Qos::AtLeastOnce))
            .collect();
        self.session.subscribe(&filters).await?;
        Ok(())
    }

    /// Accepts one outgoing message: marked `"od": 1` when made offline with storage on,
    /// dropped when made offline with storage off.
    async fn publish(
        &mut self,
        out: Outgoing,
    ) -> Result<Option<transport::session::Delivery>, AgentError> {
        let connected = self.session.status().connected;
        let kind = out.kind.name().to_owned();
        if !connected && self.spool.is_none() {
            self.reporter.event(Event::DroppedOffline { kind });
            return Ok(None);
        }
        // Only D2C messages carry `od`; twin patches are properties, not messages.
        let offline = !connected && matches!(out.kind, OutKind::Message(_));
        // 2.1: telemetry made while offline goes to the `od` topic.
        let topic = match self.device.offline_topic(out.kind) {
            Some(od) if offline => od,
            _ => out.topic,
        };
        let payload = if offline {
            mark_offline(&out.payload).unwrap_or(out.payload)
        } else {
            out.payload
        };
        let delivery = self
            .session
            .publish(Message::new(topic.clone(), payload))
            .await?;
        self.counters.published += 1;
        self.counters.offline += u64::from(offline);
        self.reporter.event(Event::Published {
            kind,
            topic,
            devices: out.devices,
            values: out.values,
            offline,
        });
        Ok(Some(delivery))
    }

    /// `SendData` once and waits up to `wait` for the broker's confirmations; returns the
    /// actions that were not publishes (throttling, ignored records).
    pub async fn send_data(
        &mut self,
        records: &[InputRecord],
        wait: Duration,
    ) -> Result<Vec<Action>, AgentError> {
        let now = self.now();
        let actions = self
            .device
            .send_data(records, now, time::OffsetDateTime::now_utc());
        let mut rest = Vec::new();
        let mut pending = Vec::new();
        for a in actions {
            match a {
                Action::Publish(out) => {
                    let kind = out.kind.name().to_owned();
                    if let Some(d) = self.publish(out).await? {
                        pending.push((kind, d));
                    }
                }
                other => rest.push(other),
            }
        }
        for (kind, d) in pending {
            confirm(d, &kind, wait).await?;
        }
        Ok(rest)
    }

    /// Sends an acknowledgement and waits for its confirmation.
    pub async fn ack(
        &mut self,
        kind: AckKind,
        data: AckData,
        wait: Duration,
    ) -> Result<(), AgentError> {
        let out = self
            .device
            .ack(kind, data.clone(), time::OffsetDateTime::now_utc());
        if let Some(d) = self.publish(out).await? {
            confirm(d, kind.mt().name(), wait).await?;
        }
        self.counters.acks += 1;
        self.reporter.event(acked(kind, &data));
        Ok(())
    }

    /// 2.1: subscribes, sends the identity requests `has` calls for and waits up to `wait` for
    /// the attributes (201) and children (204). 1.0: nothing to do.
    pub async fn identify(&mut self, wait: Duration) -> Result<(), AgentError> {
        if !self.device.is_v21() {
            return Ok(());
        }
        self.subscribe().await?;
        for a in self.device.identity_requests() {
            if let Action::Publish(out) = a {
                self.publish(out).await?;
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        while self.device.awaiting_identity() {
            let msg = tokio::time::timeout_at(deadline, self.incoming.recv()).await;
            let Ok(Some(msg)) = msg else {
                return Err(AgentError::NotConfirmed {
                    kind: "attribute (201) or child (204) answer".into(),
                    secs: wait.as_secs(),
                });
            };
            let now = self.now();
            for a in self.device.on_message_at(&msg.topic, &msg.payload, now) {
                match a {
                    Action::Refreshed(scope) => self.reporter.event(Event::Resynced { scope }),
                    Action::Ignored(message) => self.reporter.event(Event::Warning { message }),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// 2.1 gateways: creates (`add` = display name and tag; 221) or deletes (222) the child
    /// `id` and waits up to `wait` for the platform's answer; an `ec` other than 0 is an error
    /// with its meaning.
    pub async fn child(
        &mut self,
        add: Option<(&str, &str)>,
        id: &str,
        wait: Duration,
    ) -> Result<String, AgentError> {
        self.identify(wait).await?;
        let out = self
            .device
            .child_request(add, id)
            .map_err(AgentError::Unsupported)?;
        self.send(out, wait).await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.incoming.recv()).await;
            let Ok(Some(msg)) = msg else {
                return Err(AgentError::NotConfirmed {
                    kind: "child request answer (221/222)".into(),
                    secs: wait.as_secs(),
                });
            };
            let now = self.now();
            for a in self.device.on_message_at(&msg.topic, &msg.payload, now) {
                if let Action::ChildResult { ct, ec, message } = a {
                    if ec == 0 {
                        return Ok(message);
                    }
                    return Err(crate::protocol::v2::V2Error::Code {
                        what: if ct == 221 {
                            "child create"
                        } else {
                            "child delete"
                        },
                        ec,
                        meaning: if ct == 221 {
                            crate::protocol::v2::child_create_ec(ec)
                        } else {
                            "the platform did not delete the child"
                        },
                        unique_id: id.to_owned(),
                    }
                    .into());
                }
            }
        }
    }

    /// Publishes one message the device made and waits for its confirmation.
    pub async fn send(&mut self, out: Outgoing, wait: Duration) -> Result<(), AgentError> {
        let kind = out.kind.name().to_owned();
        if let Some(d) = self.publish(out).await? {
            confirm(d, &kind, wait).await?;
        }
        Ok(())
    }

    /// Reports one twin property and waits for its confirmation.
    pub async fn twin_report(
        &mut self,
        key: &str,
        value: Value,
        wait: Duration,
    ) -> Result<(), AgentError> {
        let out = self.device.twin_report(key, value);
        if let Some(d) = self.publish(out).await? {
            confirm(d, "twin-report", wait).await?;
        }
        Ok(())
    }

    /// Asks for the full twin and waits up to `wait` for it (needs [`Agent::subscribe`] first).
    pub async fn twin_get(&mut self, wait: Duration) -> Result<Option<Value>, AgentError> {
        let out = self.device.twin_get();
        self.publish(out).await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.incoming.recv()).await;
            let Ok(Some(msg)) = msg else { return Ok(None) };
            for a in self.device.on_message(&msg.topic, &msg.payload) {
                if let Action::TwinFull(v) = a {
                    return Ok(Some(v));
                }
            }
        }
    }

    /// Waits up to `grace` for confirmations and disconnects; returns what stayed unconfirmed.
    pub async fn close(self, grace: Duration) -> u64 {
        self.session.close(grace).await.unacked
    }
}

/// The payload a resent message carries: D2C messages get `"od": 1`, twin patches (properties,
/// not messages) are sent unchanged.
fn replay_payload(m: &Message) -> Option<bytes::Bytes> {
    if m.topic.starts_with("$iothub/") || m.topic.starts_with("$aws/things/") {
        return None;
    }
    mark_offline(&m.payload).map(bytes::Bytes::from)
}

async fn open_session(
    opts: &mut SessionOptions,
    offline: Option<&SpoolConfig>,
) -> Result<(Session, Incoming), AgentError> {
    let outbox = match offline {
        Some(cfg) => {
            opts.start_mode = StartMode::Background;
            Outbox::disk(cfg.clone())?
        }
        None => Outbox::memory(1000),
    };
    // A message sent again (in flight when the connection dropped, or left in the offline
    // store by an earlier run) is a replay, as the SDK's offline data is: mark it `"od": 1`.
    opts.on_resend = Some(ResendHook(Arc::new(replay_payload)));
    let (session, incoming) = Session::start(opts.clone(), outbox).await?;
    if offline.is_some() {
        // Background start: let the first attempt finish, so messages made in the first
        // moments are not taken for offline ones while the connection is merely coming up.
        let mut status = session.watch_status();
        let first = status.wait_for(|s| s.connected || s.last_error.is_some() || s.ended.is_some());
        let _ = tokio::time::timeout(opts.connect_timeout + Duration::from_secs(1), first).await;
    }
    Ok((session, incoming))
}

async fn confirm(
    d: transport::session::Delivery,
    kind: &str,
    wait: Duration,
) -> Result<(), AgentError> {
    let not = || AgentError::NotConfirmed {
        kind: kind.to_owned(),
        secs: wait.as_secs(),
    };
    match tokio::time::timeout(wait, d.confirmed()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(not()),
    }
}

fn acked(kind: AckKind, data: &AckData) -> Event {
    Event::Acked {
        kind: match kind {
            AckKind::Command => "command".into(),
            AckKind::Ota => "ota".into(),
            AckKind::Module => "module".into(),
        },
        ack_id: data.ack_id.clone(),
        st: data.st,
        msg: data.msg.clone(),
        child_id: data.child_id.clone(),
    }
}

#[cfg(test)]
mod replay_tests {
    use super::*;

    #[test]
    fn resent_messages_are_marked_offline_but_twin_patches_are_not() {
        let d2c = Message::new("devices/gw/messages/events/", r#"{"mt":0,"d":[]}"#);
        let marked = replay_payload(&d2c).expect("a D2C object is marked");
        let v: Value = serde_json::from_slice(&marked).unwrap();
        assert_eq!(v["od"], 1);
        assert_eq!(v["mt"], 0);
        let twin = Message::new(
            "$iothub/twin/PATCH/properties/reported/?$rid=1",
            r#"{"firmware":"1.0"}"#,
        );
        assert_eq!(replay_payload(&twin), None);
    }
}
