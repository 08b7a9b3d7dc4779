//! Message protocol 1.0 on the wire (the TPM SDK 3.0.1 and the std SDK 3.0.5): [`sync`]
//! (discovery and sync), [`envelope`] (D2C telemetry), [`ack`] (acknowledgements), [`c2d`]
//! (commands), [`topics`] (topic names), and the twin payloads below.

pub mod ack;
pub mod c2d;
pub mod envelope;
pub mod sync;
pub mod topics;

use serde_json::{Map, Value, json};

/// What the device callback gets for a desired-property patch: `{"desired": patch, "uniqueId"}`.
pub fn twin_desired_event(patch: Value, unique_id: &str) -> Value {
    let mut m = Map::new();
    m.insert("desired".into(), patch);
    m.insert("uniqueId".into(), Value::from(unique_id));
    Value::Object(m)
}

/// What the device callback gets for a full twin: `{"desired", "reported", "uniqueId"}`.
pub fn twin_full_event(twin: &Value, unique_id: &str) -> Value {
    let mut m = Map::new();
    m.insert(
        "desired".into(),
        twin.get("desired").cloned().unwrap_or_else(|| json!({})),
    );
    m.insert(
        "reported".into(),
        twin.get("reported").cloned().unwrap_or_else(|| json!({})),
    );
    m.insert("uniqueId".into(), Value::from(unique_id));
    Value::Object(m)
}

/// A reported-property patch: one key per call, as `UpdateTwin(key, value)` sends it.
pub fn twin_report(key: &str, value: Value) -> Value {
    let mut m = Map::new();
    m.insert(key.to_owned(), value);
    Value::Object(m)
}
