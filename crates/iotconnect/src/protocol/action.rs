//! What the device state machine returns: messages to publish ([`Outgoing`]) and the other
//! [`Action`]s its driver executes or reports. Data only.

use std::time::Duration;

use serde_json::Value;

use super::Mono;
use super::v1::c2d::{DeviceCommand, OtaCommand};
use super::v1::envelope::MessageType;
use super::v1::sync::SyncScope;

/// What an outgoing message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutKind {
    /// A D2C message of this type.
    Message(MessageType),
    /// A reported-property patch.
    TwinReport,
    /// A full-twin request.
    TwinGet,
    /// A 2.1 identity request (`{"mt": …}` on `di`).
    Identity(u16),
    /// A 2.1 heartbeat (`{}` on `hb`).
    Heartbeat,
}

impl OutKind {
    /// A short name for output.
    pub fn name(self) -> &'static str {
        match self {
            OutKind::Message(mt) => mt.name(),
            OutKind::TwinReport => "twin-report",
            OutKind::TwinGet => "twin-get",
            OutKind::Identity(_) => "identity-request",
            OutKind::Heartbeat => "heartbeat",
        }
    }
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Topic.
    pub topic: String,
    /// JSON payload.
    pub payload: Vec<u8>,
    /// What it is.
    pub kind: OutKind,
    /// Device entries in it.
    pub devices: usize,
    /// Leaf values in it.
    pub values: usize,
}

/// What the device asks its driver to do or report.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Publish this.
    Publish(Outgoing),
    /// Run a device command (0x01); acknowledge it when it has an `ackId`.
    Command {
        /// Parsed.
        command: DeviceCommand,
        /// The `data` object as received (what the SDK hands its callback).
        raw: Value,
    },
    /// A 2.1 module command (ct 2); acknowledged with `type` 2.
    ModuleCommand {
        /// Parsed.
        command: DeviceCommand,
        /// The message as received.
        raw: Value,
    },
    /// 2.1 heartbeat started (every this often, ct 110) or stopped (`None`, ct 111).
    Heartbeat(Option<Duration>),
    /// A 2.1 identity answer was applied (`attributes`, `children`, `rules`, `settings`).
    Refreshed(String),
    /// The answer to a child create (221) or delete (222).
    ChildResult {
        /// 221 or 222.
        ct: i64,
        /// `ec`.
        ec: i64,
        /// As a sentence.
        message: String,
    },
    /// A matched edge rule's command (no acknowledgement).
    RuleCommand {
        /// Target device.
        unique_id: String,
        /// The synthetic 0x01 data.
        raw: Value,
    },
    /// Download and apply an OTA (0x02), then acknowledge per device.
    Ota {
        /// Parsed.
        ota: OtaCommand,
        /// The `data` object as received.
        raw: Value,
    },
    /// 0x03, handed to the user as is.
    ModuleUpdate(Value),
    /// Sync this section again.
    Resync(SyncScope),
    /// `df` changed (0x17).
    DfChanged(Duration),
    /// A desired-property patch: `{"desired", "uniqueId"}`.
    TwinDesired(Value),
    /// The full twin: `{"desired", "reported", "uniqueId"}`.
    TwinFull(Value),
    /// The locally made 0x16 for the user.
    ConnectionStatus(Value),
    /// 0x99: stop, clear offline data, disconnect.
    Barred,
    /// A `SendData` discarded by the `df` gate.
    Throttled {
        /// Records in it.
        records: usize,
        /// When sends pass again.
        until: Mono,
    },
    /// Something not acted on, with the reason.
    Ignored(String),
}
