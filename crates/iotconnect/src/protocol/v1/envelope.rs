//! The message-1.0 D2C envelope, both directions. Telemetry-like messages (`mt` 0 reporting,
//! 1 faulty, 2 edge aggregate, 3 rule matched) carry `cpId`, `dtg`, `t`, `mt`, `sdk` and a list
//! of device entries whose `d` is an array holding one object; acknowledgements (`mt` 5 command,
//! 11 OTA) are in [`super::ack`]. Messages replayed from offline storage add `"od": 1`.
//!
//! ```json
//! {"cpId":"CPID","t":"2021-04-14T10:06:17.000Z","mt":0,"dtg":"<template guid>",
//!  "sdk":{"l":"M_PYTHON","v":"2.0","e":"PROD"},
//!  "d":[{"id":"gw01","dt":"2021-04-14T10:06:17.857Z","tg":"gw","d":[{"temp":21.5}]}]}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ack::AckMessage;
use super::sync::{SDK_LANG, SDK_VERSION};

/// Message types (`mt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    /// 0: reporting.
    Reporting,
    /// 1: faulty values.
    Faulty,
    /// 2: edge aggregates.
    EdgeAggregate,
    /// 3: edge rule matched.
    RuleMatched,
    /// 4: log (not sent by this agent).
    Log,
    /// 5: device command acknowledgement.
    CommandAck,
    /// 11: OTA acknowledgement.
    OtaAck,
}

impl MessageType {
    /// The wire number.
    pub fn code(self) -> u8 {
        match self {
            MessageType::Reporting => 0,
            MessageType::Faulty => 1,
            MessageType::EdgeAggregate => 2,
            MessageType::RuleMatched => 3,
            MessageType::Log => 4,
            MessageType::CommandAck => 5,
            MessageType::OtaAck => 11,
        }
    }

    /// From the wire number.
    pub fn from_code(n: u64) -> Option<Self> {
        Some(match n {
            0 => MessageType::Reporting,
            1 => MessageType::Faulty,
            2 => MessageType::EdgeAggregate,
            3 => MessageType::RuleMatched,
            4 => MessageType::Log,
            5 => MessageType::CommandAck,
            11 => MessageType::OtaAck,
            _ => return None,
        })
    }

    /// A short name for output.
    pub fn name(self) -> &'static str {
        match self {
            MessageType::Reporting => "reporting",
            MessageType::Faulty => "faulty",
            MessageType::EdgeAggregate => "edge",
            MessageType::RuleMatched => "rule",
            MessageType::Log => "log",
            MessageType::CommandAck => "command-ack",
            MessageType::OtaAck => "ota-ack",
        }
    }
}

impl Serialize for MessageType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.code())
    }
}

impl<'de> Deserialize<'de> for MessageType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        MessageType::from_code(n).ok_or_else(|| serde::de::Error::custom(format!("unknown mt {n}")))
    }
}

/// `sdk`: who wrote the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdkInfo {
    /// Language.
    pub l: String,
    /// Version.
    pub v: String,
    /// Environment.
    pub e: String,
}

impl SdkInfo {
    /// This agent's `sdk` object for `env`.
    pub fn new(env: &str) -> Self {
        SdkInfo {
            l: SDK_LANG.to_owned(),
            v: SDK_VERSION.to_owned(),
            e: env.to_owned(),
        }
    }
}

/// One device's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceEntry {
    /// Unique id.
    pub id: String,
    /// Reading time (input `time` verbatim) or send time.
    pub dt: String,
    /// Tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tg: Option<String>,
    /// Values: one object (aggregates as arrays for `mt` 2).
    #[serde(default)]
    pub d: Vec<Map<String, Value>>,
    /// Rule matched: the values the condition read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv: Option<Map<String, Value>>,
    /// Rule matched: rule guid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rg: Option<String>,
    /// Rule matched: the condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ct: Option<String>,
    /// Rule matched: event-subscription guid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sg: Option<String>,
}

/// A telemetry-like message (`mt` 0–3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Company id.
    #[serde(rename = "cpId")]
    pub cp_id: String,
    /// Device template guid.
    pub dtg: String,
    /// Send time.
    pub t: String,
    /// Type.
    pub mt: MessageType,
    /// SDK info.
    pub sdk: SdkInfo,
    /// Devices.
    pub d: Vec<DeviceEntry>,
    /// 1 when replayed from offline storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub od: Option<u8>,
}

impl Telemetry {
    /// The JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Number of leaf values (objects count their children).
    pub fn value_count(&self) -> usize {
        self.d
            .iter()
            .flat_map(|e| e.d.iter())
            .flat_map(|m| m.values())
            .map(|v| match v {
                Value::Object(o) => o.len(),
                _ => 1,
            })
            .sum()
    }
}

/// Any D2C message on the 1.0 topic.
#[derive(Debug, Clone, PartialEq)]
pub enum D2c {
    /// `mt` 0–3.
    Telemetry(Telemetry),
    /// `mt` 5 or 11.
    Ack(AckMessage),
}

/// Why a D2C payload was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("D2C message is not valid: {0}")]
pub struct D2cError(pub String);

impl D2c {
    /// Decodes a D2C payload, dispatching on `mt`.
    pub fn decode(payload: &[u8]) -> Result<D2c, D2cError> {
        let v: Value = serde_json::from_slice(payload).map_err(|e| D2cError(e.to_string()))?;
        let mt = v
            .get("mt")
            .and_then(Value::as_u64)
            .ok_or_else(|| D2cError("field `mt` is missing or not a number".into()))?;
        match MessageType::from_code(mt) {
            Some(MessageType::CommandAck | MessageType::OtaAck) => serde_json::from_value(v)
                .map(D2c::Ack)
                .map_err(|e| D2cError(format!("acknowledgement (mt {mt}): {e}"))),
            Some(MessageType::Log) | None => Err(D2cError(format!(
                "mt {mt} is not a message type this cloud accepts"
            ))),
            Some(_) => serde_json::from_value(v)
                .map(D2c::Telemetry)
                .map_err(|e| D2cError(format!("mt {mt}: {e}"))),
        }
    }

    /// Whether the message was replayed from offline storage.
    pub fn offline(&self) -> bool {
        match self {
            D2c::Telemetry(t) => t.od == Some(1),
            D2c::Ack(a) => a.od == Some(1),
        }
    }
}

/// Adds `"od": 1` to a JSON object payload (what offline replay sends); `None` if the payload
/// is not a JSON object.
pub fn mark_offline(payload: &[u8]) -> Option<Vec<u8>> {
    let mut v: Map<String, Value> = serde_json::from_slice(payload).ok()?;
    v.insert("od".into(), Value::from(1));
    serde_json::to_vec(&v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn telemetry_roundtrip_and_shape() {
        let raw = json!({"cpId":"CPID","t":"2021-04-14T10:06:17.000Z","mt":0,"dtg":"g",
            "sdk":{"l":"M_PYTHON","v":"2.0","e":"PROD"},
            "d":[{"id":"gw01","dt":"2021-04-14T10:06:17.857Z","tg":"gw","d":[{"temp":21.5,"gyro":{"x":-1.2}}]}]});
        let D2c::Telemetry(t) = D2c::decode(raw.to_string().as_bytes()).unwrap() else {
            panic!("not telemetry")
        };
        assert_eq!(t.value_count(), 2);
        assert_eq!(serde_json::to_value(&t).unwrap(), raw);
        assert!(!D2c::Telemetry(t).offline());
    }

    #[test]
    fn offline_marker() {
        let m = mark_offline(br#"{"mt":0}"#).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&m).unwrap(),
            json!({"mt":0,"od":1})
        );
        assert!(mark_offline(b"[1]").is_none());
    }

    #[test]
    fn unknown_or_missing_mt_is_an_error() {
        assert!(D2c::decode(br#"{"d":[]}"#).unwrap_err().0.contains("`mt`"));
        assert!(D2c::decode(br#"{"mt":42}"#).is_err());
        assert!(D2c::decode(b"\xff").is_err());
    }
}
