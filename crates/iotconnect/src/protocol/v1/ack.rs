//! Acknowledgements (message 1.0), both directions: `mt` 5 for a device command (0x01), `mt` 11
//! for an OTA (0x02); `st` 4 failed, 6 command done, 7 OTA done; `childId` names the child for a
//! gateway child's OTA (empty otherwise).
//!
//! ```json
//! {"cpId":"CPID","uniqueId":"gw","t":"2021-04-14T10:06:17.000Z","mt":11,
//!  "d":{"ackId":"…","st":7,"msg":"OTA updated successfully..!!","childId":"child01"},
//!  "sdk":{"l":"M_PYTHON","v":"2.0","e":"PROD"}}
//! ```

use serde::{Deserialize, Serialize};

use super::envelope::{MessageType, SdkInfo};

/// `st` values.
pub mod status {
    /// Failed (command or OTA).
    pub const FAILED: u8 = 4;
    /// Device command executed.
    pub const COMMAND_OK: u8 = 6;
    /// OTA applied.
    pub const OTA_OK: u8 = 7;
}

/// The `d` of an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckData {
    /// The command's `ackId`.
    #[serde(rename = "ackId")]
    pub ack_id: String,
    /// Status.
    pub st: u8,
    /// Free text.
    #[serde(default)]
    pub msg: String,
    /// Child unique id for a child's OTA; empty otherwise.
    #[serde(rename = "childId", default)]
    pub child_id: String,
}

/// A whole acknowledgement message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckMessage {
    /// Company id.
    #[serde(rename = "cpId")]
    pub cp_id: String,
    /// The connected device (the gateway).
    #[serde(rename = "uniqueId")]
    pub unique_id: String,
    /// Send time.
    pub t: String,
    /// 5 or 11.
    pub mt: MessageType,
    /// The acknowledgement.
    pub d: AckData,
    /// SDK info.
    pub sdk: SdkInfo,
    /// 1 when replayed from offline storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub od: Option<u8>,
}

impl AckMessage {
    /// The JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Which kind of command an acknowledgement answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    /// 0x01, `mt` 5.
    Command,
    /// 0x02, `mt` 11.
    Ota,
    /// A 2.1 module command (ct 2, ack `type` 2); sent as a command ack on 1.0.
    Module,
}

impl AckKind {
    /// The message type.
    pub fn mt(self) -> MessageType {
        match self {
            AckKind::Command | AckKind::Module => MessageType::CommandAck,
            AckKind::Ota => MessageType::OtaAck,
        }
    }

    /// The success status.
    pub fn success(self) -> u8 {
        match self {
            AckKind::Command | AckKind::Module => status::COMMAND_OK,
            AckKind::Ota => status::OTA_OK,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_example_roundtrips() {
        let raw = json!({"cpId":"CPID","uniqueId":"gw","t":"2021-04-14T10:06:17.000Z","mt":11,
            "d":{"ackId":"a","st":7,"msg":"OTA updated successfully..!!","childId":"child01"},
            "sdk":{"l":"M_PYTHON","v":"2.0","e":"PROD"}});
        let a: AckMessage = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(a.mt, MessageType::OtaAck);
        assert_eq!(serde_json::to_value(&a).unwrap(), raw);
    }

    #[test]
    fn c_library_ack_without_child_id_parses() {
        // [C10] tests/event.c output: no childId.
        let a: AckMessage = serde_json::from_str(
            r#"{"mt":11,"t":"2020-07-29T18:15:58.000Z","uniqueId":"my-device-id","cpId":"MyCpid","sdk":{"l":"M_C","v":"2.0","e":"avnetpoc"},"d":{"ackId":"8a45","msg":"","st":7}}"#,
        )
        .unwrap();
        assert_eq!(a.d.child_id, "");
        assert_eq!(AckKind::Ota.success(), a.d.st);
    }
}
