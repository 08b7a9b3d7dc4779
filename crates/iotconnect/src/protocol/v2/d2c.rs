//! 2.1 device-to-cloud payloads. The message kind lives in the topic, not in the payload.
//!
//! ```json
//! {"dt":"2024-10-25T20:57:57.481Z","d":[{"id":"child01","tg":"sensor","dt":"…","d":{"temp":21.5}}]}
//! {"dt":"2024-10-25T20:58:00.000Z","d":{"ack":"<ack id>","type":1,"st":3,"msg":"text","cid":"child01"}}
//! {"mt":201}
//! ```

use serde_json::{Map, Value, json};

/// Ack `st` values in 2.1 (`iotconnect-lib`, `iotc-c-lib`).
pub mod status {
    /// Command failed.
    pub const COMMAND_FAILED: u8 = 1;
    /// Command executed.
    pub const COMMAND_OK: u8 = 2;
    /// OTA failed or rejected.
    pub const OTA_FAILED: u8 = 1;
    /// OTA downloading (an intermediate step).
    pub const OTA_DOWNLOADING: u8 = 2;
    /// OTA downloaded, and the new firmware runs.
    pub const OTA_DONE: u8 = 3;
    /// OTA download or apply failed.
    pub const OTA_DOWNLOAD_FAILED: u8 = 4;
}

/// Ack `type`: the `ct` being acknowledged.
pub mod ack_type {
    /// A device command (ct 0).
    pub const COMMAND: u8 = 0;
    /// An OTA (ct 1).
    pub const OTA: u8 = 1;
    /// A module command (ct 2).
    pub const MODULE: u8 = 2;
}

/// One device's entry of a telemetry message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entry {
    /// Unique id (gateways and children only).
    pub id: Option<String>,
    /// Tag (gateways and children only).
    pub tg: Option<String>,
    /// Record time.
    pub dt: Option<String>,
    /// Values.
    pub d: Map<String, Value>,
    /// Rule matches: `cv`, `rg`, `ct`, `sg` (edge rules).
    pub rule: Option<Map<String, Value>>,
}

/// `{"dt", "d":[…]}`.
pub fn telemetry(dt: &str, entries: &[Entry]) -> Vec<u8> {
    let d: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut m = Map::new();
            if let Some(id) = &e.id {
                m.insert("id".into(), json!(id));
            }
            if let Some(tg) = &e.tg {
                m.insert("tg".into(), json!(tg));
            }
            if let Some(dt) = &e.dt {
                m.insert("dt".into(), json!(dt));
            }
            match &e.rule {
                // Rule matches carry `d` as a one-object array, as the 2.1 SDK sends them.
                Some(r) => {
                    m.extend(r.clone());
                    m.insert("d".into(), json!([e.d]));
                }
                None => {
                    m.insert("d".into(), Value::Object(e.d.clone()));
                }
            }
            Value::Object(m)
        })
        .collect();
    serde_json::to_vec(&json!({"dt": dt, "d": d})).unwrap_or_default()
}

/// An acknowledgement.
pub fn ack(dt: &str, ack: &str, kind: u8, st: u8, msg: &str, cid: Option<&str>) -> Vec<u8> {
    let mut d = json!({"ack": ack, "type": kind, "st": st, "msg": msg});
    if let Some(c) = cid.filter(|c| !c.is_empty()) {
        d["cid"] = json!(c);
    }
    serde_json::to_vec(&json!({"dt": dt, "d": d})).unwrap_or_default()
}

/// An identity request on `di`: `{"mt": 200…209}`.
pub fn identity_request(mt: u16) -> Vec<u8> {
    serde_json::to_vec(&json!({ "mt": mt })).unwrap_or_default()
}

/// Create a child (221): gateway guid, display name, unique id, tag.
pub fn child_create(gateway_guid: &str, name: &str, id: &str, tg: &str) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"mt": 221, "d": {"g": gateway_guid, "dn": name, "id": id, "tg": tg}}),
    )
    .unwrap_or_default()
}

/// Delete a child (222).
pub fn child_delete(id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"mt": 222, "d": {"id": id}})).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_as_documented() {
        let mut d = Map::new();
        d.insert("temp".into(), json!(21.5));
        let t = telemetry(
            "2024-10-25T20:57:57.481Z",
            &[Entry {
                id: Some("child01".into()),
                tg: Some("sensor".into()),
                d,
                ..Entry::default()
            }],
        );
        let v: Value = serde_json::from_slice(&t).unwrap();
        assert_eq!(
            v,
            json!({"dt":"2024-10-25T20:57:57.481Z","d":[{"id":"child01","tg":"sensor","d":{"temp":21.5}}]})
        );
        let a: Value = serde_json::from_slice(&ack("T", "ABCDEFG", 1, 3, "Test", None)).unwrap();
        assert_eq!(
            a,
            json!({"dt":"T","d":{"ack":"ABCDEFG","type":1,"st":3,"msg":"Test"}})
        );
        assert_eq!(identity_request(201), br#"{"mt":201}"#);
    }
}
