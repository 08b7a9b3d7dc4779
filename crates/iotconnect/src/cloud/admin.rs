//! How an operator (or a test, or the demo) makes the emulated platform act: requests published
//! on the loopback listener to `iotconnect-sim/request/<kind>` (`command`, `ota`, `twin`, `stop`,
//! `df`, `resync`), which the cloud side turns into C2D messages; what happened comes back on
//! `iotconnect-sim/events/<kind>` (`sent` with the `ackId`, `ack` when the device answers).
//! [`send`] is the client half: publish a request, wait for the device's acknowledgements.
//! `iot-sim iotconnect command|ota|twin|stop` is meant to call it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use transport::{Message, Outbox, Qos, Session, SessionOptions};

/// Prefix of requests.
pub const REQUEST_PREFIX: &str = "iotconnect-sim/request/";
/// Filter the cloud side listens on.
pub const REQUEST_FILTER: &str = "iotconnect-sim/request/#";
/// Where a sent command is announced.
pub const EVENT_SENT: &str = "iotconnect-sim/events/sent";
/// Where acknowledgements are announced.
pub const EVENT_ACK: &str = "iotconnect-sim/events/ack";
/// Where refused requests are announced.
pub const EVENT_ERROR: &str = "iotconnect-sim/events/error";

/// An OTA file for a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OtaFile {
    /// Download URL.
    pub url: String,
    /// Target child (the SDK's shape).
    #[serde(rename = "uniqueId", default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
    /// Target tag (the documented shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// A request to the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    /// 0x01 to a device or child.
    Command {
        /// Target (a child is reached through its gateway).
        #[serde(rename = "uniqueId")]
        unique_id: String,
        /// Command text.
        command: String,
    },
    /// 0x02.
    Ota {
        /// The gateway or device.
        #[serde(rename = "uniqueId")]
        unique_id: String,
        /// Software version.
        #[serde(default)]
        sw: String,
        /// Hardware version.
        #[serde(default)]
        hw: String,
        /// Files.
        urls: Vec<OtaFile>,
    },
    /// A desired-property patch.
    Twin {
        /// Device.
        #[serde(rename = "uniqueId")]
        unique_id: String,
        /// Properties.
        desired: Map<String, Value>,
    },
    /// 0x99.
    Stop {
        /// Device.
        #[serde(rename = "uniqueId")]
        unique_id: String,
    },
    /// 0x17.
    Df {
        /// Device.
        #[serde(rename = "uniqueId")]
        unique_id: String,
        /// Seconds.
        df: u64,
    },
    /// 0x10–0x15 or `sync`.
    Resync {
        /// Device.
        #[serde(rename = "uniqueId")]
        unique_id: String,
        /// The `cmdType`.
        #[serde(rename = "cmdType")]
        cmd_type: String,
    },
    /// A 2.1 C2D message sent as given (heartbeat 110/111, stop 106-109, refresh 101-104, an
    /// unknown `ct`...) to a device that identified with 2.1.
    Message21 {
        /// Target.
        #[serde(rename = "uniqueId")]
        unique_id: String,
        /// The flat message, e.g. `{"v":"2.1","ct":110,"f":5}`.
        message: Value,
    },
}

impl Request {
    /// The request's kind (topic suffix).
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Command { .. } => "command",
            Request::Ota { .. } => "ota",
            Request::Twin { .. } => "twin",
            Request::Stop { .. } => "stop",
            Request::Df { .. } => "df",
            Request::Resync { .. } => "resync",
            Request::Message21 { .. } => "message21",
        }
    }

    /// The device the request is for.
    pub fn target(&self) -> &str {
        match self {
            Request::Command { unique_id, .. }
            | Request::Ota { unique_id, .. }
            | Request::Twin { unique_id, .. }
            | Request::Stop { unique_id }
            | Request::Df { unique_id, .. }
            | Request::Resync { unique_id, .. }
            | Request::Message21 { unique_id, .. } => unique_id,
        }
    }

    /// The message to publish.
    pub fn to_message(&self) -> Message {
        Message::new(
            format!("{REQUEST_PREFIX}{}", self.kind()),
            serde_json::to_vec(self).unwrap_or_default(),
        )
    }
}

/// `iotconnect-sim/events/sent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// Target.
    #[serde(rename = "uniqueId")]
    pub unique_id: String,
    /// `cmdType`.
    #[serde(rename = "cmdType")]
    pub cmd_type: String,
    /// Acknowledgement id (commands and OTA).
    #[serde(rename = "ackId", default)]
    pub ack_id: Option<String>,
    /// Acknowledgements expected (one per OTA target).
    pub expect: usize,
}

/// `iotconnect-sim/events/ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckSeen {
    /// Acknowledgement id.
    #[serde(rename = "ackId")]
    pub ack_id: String,
    /// The device that sent it.
    #[serde(rename = "uniqueId")]
    pub unique_id: String,
    /// `mt` (5 or 11).
    pub mt: u8,
    /// Status.
    pub st: u8,
    /// Message.
    pub msg: String,
    /// Child.
    #[serde(rename = "childId")]
    pub child_id: String,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No session.
    #[error("cannot reach the local cloud: {0}")]
    Connect(String),
    /// The cloud refused the request.
    #[error("the IoTConnect cloud side refused the request: {0}")]
    Refused(String),
    /// Timed out.
    #[error("no {what} within {secs} s")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// Wait.
        secs: u64,
    },
}

/// Sends `req` through a client of the loopback listener (`opts`) and waits up to `wait` for
/// what it announces: for commands and OTAs every acknowledgement, for the rest the `sent` note.
pub async fn send(
    opts: SessionOptions,
    req: &Request,
    wait: Duration,
) -> Result<(Sent, Vec<AckSeen>), AdminError> {
    let (session, mut incoming) = Session::start(opts, Outbox::memory(16))
        .await
        .map_err(|e| AdminError::Connect(e.to_string()))?;
    let filters = [
        (EVENT_SENT.to_owned(), Qos::AtLeastOnce),
        (EVENT_ACK.to_owned(), Qos::AtLeastOnce),
        (EVENT_ERROR.to_owned(), Qos::AtLeastOnce),
    ];
    let result = async {
        session
            .subscribe(&filters)
            .await
            .map_err(|e| AdminError::Connect(e.to_string()))?;
        session
            .publish(req.to_message())
            .await
            .map_err(|e| AdminError::Connect(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + wait;
        let timeout = |what| AdminError::Timeout {
            what,
            secs: wait.as_secs(),
        };
        let mut sent: Option<Sent> = None;
        let mut acks = Vec::new();
        loop {
            if let Some(s) = &sent
                && (s.ack_id.is_none() || acks.len() >= s.expect)
            {
                return Ok((s.clone(), acks));
            }
            let what = if sent.is_some() {
                "acknowledgement"
            } else {
                "answer from the IoTConnect cloud side"
            };
            let msg = tokio::time::timeout_at(deadline, incoming.recv())
                .await
                .map_err(|_| timeout(what))?
                .ok_or(AdminError::Connect("the session ended".into()))?;
            match msg.topic.as_str() {
                EVENT_SENT if sent.is_none() => {
                    sent = serde_json::from_slice::<Sent>(&msg.payload)
                        .ok()
                        .filter(|s| s.unique_id == req.target());
                }
                EVENT_ERROR if sent.is_none() => {
                    return Err(AdminError::Refused(
                        String::from_utf8_lossy(&msg.payload).into_owned(),
                    ));
                }
                EVENT_ACK => {
                    if let Ok(a) = serde_json::from_slice::<AckSeen>(&msg.payload)
                        && sent
                            .as_ref()
                            .is_some_and(|s| s.ack_id.as_deref() == Some(a.ack_id.as_str()))
                    {
                        acks.push(a);
                    }
                }
                _ => {}
            }
        }
    }
    .await;
    session.close(Duration::from_secs(1)).await;
    result
}
