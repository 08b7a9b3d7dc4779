//! What the agent reports while it runs: typed events handed to a [`Reporter`] the caller
//! chooses (any `Fn(Event)` is one). The binary prints them through its output (text, or
//! NDJSON `{"type": ..., "data": ...}`); tests collect them with [`Collect`].

use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// Discovery and sync done.
    Synced {
        /// Company id.
        cp_id: String,
        /// Device.
        unique_id: String,
        /// Devices (gateway and children).
        devices: usize,
        /// Attributes.
        attributes: usize,
        /// Edge device.
        edge: bool,
        /// Data frequency, seconds.
        df: u64,
        /// Auth type.
        auth_type: i64,
        /// Broker URL used.
        broker: String,
    },
    /// Connected to the broker.
    Connected {
        /// Connection number.
        connection: u64,
    },
    /// The broker confirmed the subscriptions: commands and twin answers can arrive.
    Subscribed {
        /// The filters.
        filters: Vec<String>,
    },
    /// Lost the broker.
    Disconnected {
        /// Why.
        reason: String,
    },
    /// A message was accepted for sending.
    Published {
        /// `reporting`, `faulty`, `edge`, `rule`, `command-ack`, `ota-ack`, `twin-report`, ...
        kind: String,
        /// Topic.
        topic: String,
        /// Device entries.
        devices: usize,
        /// Values.
        values: usize,
        /// Sent while offline: stored and replayed with `"od": 1`.
        offline: bool,
    },
    /// Offline storage is disabled and the broker is unreachable: the message was dropped.
    DroppedOffline {
        /// Message kind.
        kind: String,
    },
    /// The full offline store dropped its oldest messages.
    OfflineFull {
        /// Messages lost.
        count: u64,
    },
    /// A `SendData` inside the `df` window was discarded.
    Throttled {
        /// Records discarded.
        records: usize,
        /// Milliseconds until sends pass again.
        retry_in_ms: u64,
    },
    /// A device command arrived (or an edge rule fired one).
    Command {
        /// `0x01`, or `rule` for an edge rule's command.
        cmd_type: String,
        /// Target device.
        unique_id: String,
        /// Command text.
        command: String,
        /// Acknowledgement id, if one is expected.
        ack_id: Option<String>,
    },
    /// An acknowledgement was sent.
    Acked {
        /// `command` or `ota`.
        kind: String,
        /// Acknowledgement id.
        ack_id: String,
        /// Status (4 failed, 6 command done, 7 OTA done).
        st: u8,
        /// Message.
        msg: String,
        /// Child id (a child's OTA).
        child_id: String,
    },
    /// An OTA file was downloaded and verified.
    OtaDownloaded {
        /// Target device.
        unique_id: String,
        /// Where it was written.
        path: String,
        /// Size.
        bytes: u64,
        /// SHA-256, hex.
        sha256: String,
    },
    /// A desired-property patch or the full twin.
    Twin {
        /// `{"desired", "uniqueId"}` or `{"desired", "reported", "uniqueId"}`.
        twin: Value,
    },
    /// The locally made 0x16.
    ConnectionStatus {
        /// Its data.
        data: Value,
    },
    /// A section was synced again.
    Resynced {
        /// Which.
        scope: String,
    },
    /// 2.1 heartbeat started (every `every_secs`, ct 110) or stopped (ct 111).
    Heartbeat {
        /// Seconds between beats; `None`: stopped.
        every_secs: Option<u64>,
    },
    /// The answer to a child create (221) or delete (222).
    Child {
        /// 221 or 222.
        ct: i64,
        /// `ec`.
        ec: i64,
        /// As a sentence.
        message: String,
    },
    /// DPS attested the TPM and assigned the device to a hub (auth type 4).
    Provisioned {
        /// The DPS registration id.
        registration_id: String,
        /// The assigned IoT hub.
        hub: String,
        /// The device id there.
        device_id: String,
    },
    /// The agent signed a fresh SAS token and reconnected with it, before the old one expired.
    CredentialsRenewed {
        /// Seconds the new token is valid.
        valid_secs: u64,
    },
    /// `df` changed.
    DfChanged {
        /// Seconds.
        df: u64,
    },
    /// 0x99: stopped by the platform.
    Barred {
        /// Offline files removed.
        offline_files_removed: usize,
    },
    /// Something worth knowing that was not acted on.
    Warning {
        /// What.
        message: String,
    },
    /// The end of a run.
    Summary {
        /// Messages accepted.
        published: u64,
        /// Of them, sent while offline.
        offline: u64,
        /// `SendData` calls discarded by `df`.
        throttled: u64,
        /// Acknowledgements sent.
        acks: u64,
        /// Messages still unconfirmed at the end (kept in the offline store when enabled).
        unconfirmed: u64,
    },
}

impl Event {
    /// The event's type name.
    pub fn kind(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default()
    }

    /// The event's data without its `type` tag: what an NDJSON envelope carries under `data`.
    pub fn data(&self) -> Value {
        let v = serde_json::to_value(self).unwrap_or(Value::Null);
        v.get("data").cloned().unwrap_or(Value::Null)
    }

    /// A sentence for people.
    pub fn text(&self) -> String {
        match self {
            Event::Synced {
                cp_id,
                unique_id,
                devices,
                attributes,
                edge,
                df,
                auth_type,
                broker,
            } => format!(
                "synced {cp_id}/{unique_id}: {devices} device(s), {attributes} attribute(s), {}df {df} s, auth type {auth_type}, broker {broker}",
                if *edge { "edge, " } else { "" }
            ),
            Event::Connected { connection } => format!("connected (connection {connection})"),
            Event::Subscribed { filters } => format!("subscribed to {}", filters.join(", ")),
            Event::Disconnected { reason } => format!("disconnected: {reason}"),
            Event::Published {
                kind,
                devices,
                values,
                offline,
                ..
            } => format!(
                "sent {kind}: {devices} device(s), {values} value(s){}",
                if *offline {
                    " (offline: stored, replayed with od=1)"
                } else {
                    ""
                }
            ),
            Event::DroppedOffline { kind } => format!(
                "offline storage is disabled and the broker is unreachable: {kind} message dropped"
            ),
            Event::OfflineFull { count } => {
                format!("offline storage full: {count} oldest message(s) dropped")
            }
            Event::Throttled {
                records,
                retry_in_ms,
            } => {
                format!("df: {records} record(s) discarded; sends pass again in {retry_in_ms} ms")
            }
            Event::Command {
                cmd_type,
                unique_id,
                command,
                ack_id,
            } => format!(
                "command {cmd_type} for {unique_id}: `{command}`{}",
                ack_id
                    .as_ref()
                    .map(|a| format!(" (ackId {a})"))
                    .unwrap_or_default()
            ),
            Event::Acked {
                kind,
                ack_id,
                st,
                msg,
                child_id,
            } => format!(
                "acknowledged {kind} {ack_id}: st {st}{}{}",
                if msg.is_empty() {
                    String::new()
                } else {
                    format!(" `{msg}`")
                },
                if child_id.is_empty() {
                    String::new()
                } else {
                    format!(" for child {child_id}")
                }
            ),
            Event::OtaDownloaded {
                unique_id,
                path,
                bytes,
                sha256,
            } => {
                format!("OTA for {unique_id}: {bytes} bytes in {path} (sha256 {sha256})")
            }
            Event::Twin { twin } => format!("twin: {twin}"),
            Event::ConnectionStatus { data } => format!(
                "0x16 connection status: {}",
                data.get("command").unwrap_or(&Value::Null)
            ),
            Event::Resynced { scope } => format!("synced {scope} again"),
            Event::Heartbeat { every_secs } => match every_secs {
                Some(s) => format!("heartbeat every {s} s"),
                None => "heartbeat stopped".into(),
            },
            Event::Child { ct, ec, message } => format!("child request {ct}: {message} (ec {ec})"),
            Event::Provisioned {
                registration_id,
                hub,
                device_id,
            } => format!(
                "DPS attested the TPM of {registration_id} and assigned device {device_id} on {hub}"
            ),
            Event::CredentialsRenewed { valid_secs } => {
                format!("renewed the SAS token (valid {valid_secs} s) and reconnected")
            }
            Event::DfChanged { df } => format!("data frequency is now {df} s"),
            Event::Barred {
                offline_files_removed,
            } => format!(
                "the platform stopped this device (0x99, device barred): offline data cleared ({offline_files_removed} file(s)); exiting"
            ),
            Event::Warning { message } => format!("warning: {message}"),
            Event::Summary {
                published,
                offline,
                throttled,
                acks,
                unconfirmed,
            } => format!(
                "done: {published} message(s) sent ({offline} offline), {throttled} discarded by df, {acks} ack(s), {unconfirmed} unconfirmed"
            ),
        }
    }
}

/// Where events go.
pub trait Reporter: Send + Sync {
    /// Reports one event.
    fn event(&self, e: Event);
}

impl<F: Fn(Event) + Send + Sync> Reporter for F {
    fn event(&self, e: Event) {
        self(e);
    }
}

/// Collects events (tests, the demo).
#[derive(Debug, Default)]
pub struct Collect(pub Mutex<Vec<Event>>);

impl Collect {
    /// A copy of what was collected.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Reporter for Collect {
    fn event(&self, e: Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(e);
        }
    }
}
