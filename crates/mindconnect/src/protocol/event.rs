//! Events (`o/mc_v3/e`): `{"events": [...]}` with id, correlation id, timestamp, severity,
//! type, description and custom `details`; and the `SensorInterruptEvent` event type the
//! sample needs registered (the payload the seed's README gives). Pure.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::envelope::Scalar;

/// `{"events": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsMessage {
    /// Events.
    pub events: Vec<Event>,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Event id (uuid4).
    pub id: String,
    /// Correlation id (the sample: the same uuid as 32 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// RFC 3339 UTC.
    pub timestamp: String,
    /// 20 (error), 30 (warning), 40 (information); a string in the sample.
    pub severity: Scalar,
    /// Event type name, e.g. `SensorInterruptEvent`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Custom fields of the event type.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
}

/// An event type definition (Event Management), for users to register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventType {
    /// Name.
    pub name: String,
    /// Parent type.
    pub parent_id: String,
    /// Days to keep.
    pub ttl: u32,
    /// `LOCAL` or `GLOBAL`.
    pub scope: String,
    /// Custom fields.
    pub fields: Vec<EventField>,
}

/// A custom field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventField {
    /// Name.
    pub name: String,
    /// Filterable.
    pub filterable: bool,
    /// Required.
    pub required: bool,
    /// Updatable.
    pub updatable: bool,
    /// `INTEGER`, `DOUBLE`, `STRING`, `BOOLEAN`, `TIMESTAMP`, ...
    #[serde(rename = "type")]
    pub field_type: String,
}

/// The base type every agent event type derives from.
pub const AGENT_BASE_EVENT: &str = "AgentBaseEvent";
/// The sample's custom event type.
pub const SENSOR_INTERRUPT_EVENT: &str = "SensorInterruptEvent";

/// The `SensorInterruptEvent` definition from the seed's README.
pub fn sensor_interrupt_event_type() -> EventType {
    let field = |name: &str, t: &str| EventField {
        name: name.into(),
        filterable: true,
        required: false,
        updatable: true,
        field_type: t.into(),
    };
    EventType {
        name: SENSOR_INTERRUPT_EVENT.into(),
        parent_id: "core.connectivity.event.type.AgentBaseEvent".into(),
        ttl: 35,
        scope: "LOCAL".into(),
        fields: vec![
            field("utilizedPercentage", "INTEGER"),
            field("measurements", "DOUBLE"),
        ],
    }
}

impl EventType {
    /// Problems of `details` against this type's fields (unknown fields, wrong types, missing
    /// required ones).
    pub fn check_details(&self, details: &Map<String, Value>) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in details {
            match self.fields.iter().find(|f| &f.name == k) {
                None => out.push(format!("`{k}` is not a field of {}", self.name)),
                Some(f) => {
                    let ok = match f.field_type.as_str() {
                        "INTEGER" | "LONG" => v.is_i64() || v.is_u64(),
                        "DOUBLE" => v.is_number(),
                        "BOOLEAN" => v.is_boolean(),
                        "STRING" | "TIMESTAMP" | "ENUM" => v.is_string(),
                        _ => true,
                    };
                    if !ok {
                        out.push(format!("`{k}` must be {} but is {v}", f.field_type));
                    }
                }
            }
        }
        for f in self.fields.iter().filter(|f| f.required) {
            if !details.contains_key(&f.name) {
                out.push(format!("required field `{}` is missing", f.name));
            }
        }
        out
    }
}

/// Whether a severity is one of the documented levels.
pub fn severity_ok(s: &Scalar) -> bool {
    matches!(s.as_i64(), Some(20 | 30 | 40))
}

/// One event as a user describes it (`mc-agent event` flags, or one line of `--events FILE`):
/// the type, severity, description, details and optionally the time; the id and correlation
/// id are made when it is sent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// Event type name (`SensorInterruptEvent`, or one registered in Event Management).
    #[serde(rename = "type")]
    pub event_type: String,
    /// 20, 30, 40, or `error`, `warning`, `information` (a number or a string).
    pub severity: Value,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// RFC 3339 UTC; the time it is sent when absent.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Custom fields of the event type.
    #[serde(default)]
    pub details: Map<String, Value>,
}

/// What is wrong with an [`EventInput`], as a sentence naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EventInputError(pub String);

/// A severity as a user writes it: 20/30/40 or error/warning/information (`info` too).
pub fn parse_severity(s: &str) -> Result<u8, EventInputError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "20" | "error" => Ok(20),
        "30" | "warning" | "warn" => Ok(30),
        "40" | "information" | "info" => Ok(40),
        other => Err(EventInputError(format!(
            "severity `{}` is not one MindConnect knows: use 20 (error), 30 (warning) or 40 (information)",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

impl EventInput {
    /// The event to send: `id` as its id (its 32 hex digits as the correlation id, as the
    /// sample does), `now` as the time unless the input has one. The severity is sent as a
    /// string, the documented form.
    pub fn into_event(
        self,
        id: uuid::Uuid,
        now: time::OffsetDateTime,
    ) -> Result<Event, EventInputError> {
        if self.event_type.trim().is_empty() {
            return Err(EventInputError(
                "the event type is empty: give the name of a registered event type".into(),
            ));
        }
        let severity = match &self.severity {
            Value::String(s) => parse_severity(s)?,
            Value::Number(n) => parse_severity(&n.to_string())?,
            other => {
                return Err(EventInputError(format!(
                    "severity must be 20, 30 or 40 (or error, warning, information), not {other}"
                )));
            }
        };
        let timestamp = match self.timestamp {
            Some(t) => {
                super::timestamp::parse(&t)
                    .map_err(|e| EventInputError(format!("field `timestamp`: {e}")))?;
                t
            }
            None => super::timestamp::format(now),
        };
        if self.event_type == SENSOR_INTERRUPT_EVENT {
            let problems = sensor_interrupt_event_type().check_details(&self.details);
            if !problems.is_empty() {
                return Err(EventInputError(format!(
                    "details do not fit {SENSOR_INTERRUPT_EVENT}: {}",
                    problems.join("; ")
                )));
            }
        }
        Ok(Event {
            id: id.to_string(),
            correlation_id: Some(id.simple().to_string()),
            timestamp,
            severity: Scalar::Text(severity.to_string()),
            event_type: self.event_type,
            description: self.description,
            details: self.details,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::envelope::{decode, encode, strategies};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_samples_event_decodes_and_fits_its_type() {
        // protocols/mindconnect.md 3.7 (the 2023 example_json/event.json, placeholders filled).
        let m: EventsMessage = decode("events", br#"{"events":[{"id":"7d1f6a64-0f4e-4ac5-9d0a-3a5b2b0e8f11","correlationId":"7d1f6a640f4e4ac59d0a3a5b2b0e8f11","timestamp":"2023-07-05T10:11:12.123456Z",
          "severity":"20","type":"SensorInterruptEvent","description":"IR Sensor Interrupt Event 7d1f6a640f4e4ac59d0a3a5b2b0e8f11",
          "details":{"utilizedPercentage":60,"measurements":5}}]}"#).unwrap();
        let e = &m.events[0];
        assert!(severity_ok(&e.severity));
        assert_eq!(
            sensor_interrupt_event_type().check_details(&e.details),
            Vec::<String>::new()
        );
    }

    fn input(json: &str) -> Result<Event, EventInputError> {
        let i: EventInput = serde_json::from_str(json).unwrap();
        i.into_event(
            uuid::Uuid::nil(),
            time::macros::datetime!(2026-12-03 10:00:00 UTC),
        )
    }

    #[test]
    fn a_described_event_gets_an_id_a_time_and_a_string_severity() {
        let e = input(r#"{"type":"DoorOpened","severity":"warning","description":"door 3","details":{"door":3}}"#).unwrap();
        assert_eq!(e.severity, Scalar::Text("30".into()));
        assert_eq!(e.timestamp, "2026-12-03T10:00:00.000Z");
        assert_eq!(
            e.correlation_id.as_deref(),
            Some("00000000000000000000000000000000")
        );
        assert_eq!(e.details["door"], 3);
        let e =
            input(r#"{"type":"DoorOpened","severity":20,"timestamp":"2026-01-02T03:04:05.6Z"}"#)
                .unwrap();
        assert_eq!(e.timestamp, "2026-01-02T03:04:05.6Z");
        assert_eq!(e.severity, Scalar::Text("20".into()));
    }

    #[test]
    fn bad_events_are_refused_naming_the_field() {
        let e = input(r#"{"type":"T","severity":25}"#).unwrap_err().0;
        assert!(
            e.contains("severity `25`") && e.contains("40 (information)"),
            "{e}"
        );
        let e = input(r#"{"type":"T","severity":20,"timestamp":"yesterday"}"#)
            .unwrap_err()
            .0;
        assert!(e.contains("field `timestamp`"), "{e}");
        let e = input(r#"{"type":" ","severity":20}"#).unwrap_err().0;
        assert!(e.contains("event type is empty"), "{e}");
        let e = input(
            r#"{"type":"SensorInterruptEvent","severity":20,"details":{"utilizedPercentage":"x"}}"#,
        )
        .unwrap_err()
        .0;
        assert!(e.contains("must be INTEGER"), "{e}");
        assert!(
            serde_json::from_str::<EventInput>(r#"{"type":"T","severity":20,"sevrity":1}"#)
                .is_err()
        );
    }

    #[test]
    fn details_are_checked() {
        let d: Map<String, Value> =
            serde_json::from_str(r#"{"utilizedPercentage":6.5,"other":1}"#).unwrap();
        let p = sensor_interrupt_event_type().check_details(&d);
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn the_event_type_matches_the_readme_payload() {
        let v: Value = serde_json::to_value(sensor_interrupt_event_type()).unwrap();
        assert_eq!(v["parentId"], "core.connectivity.event.type.AgentBaseEvent");
        assert_eq!(v["fields"][1]["type"], "DOUBLE");
    }

    proptest! {
        #[test]
        fn roundtrips(id in strategies::text(), sev in strategies::scalar(), t in strategies::text(),
                      desc in proptest::option::of(strategies::text()), n in proptest::option::of(any::<i32>())) {
            let mut details = Map::new();
            if let Some(n) = n { details.insert("utilizedPercentage".into(), n.into()); }
            let m = EventsMessage { events: vec![Event { id: id.clone(), correlation_id: Some(id), timestamp: "2020-01-01T00:00:00.000Z".into(), severity: sev, event_type: t, description: desc, details }] };
            prop_assert_eq!(decode::<EventsMessage>("events", &encode(&m)).unwrap(), m);
        }

        #[test]
        fn hostile_input_never_panics(bytes in strategies::hostile()) {
            if let Ok(m) = decode::<EventsMessage>("events", &bytes) {
                for e in &m.events { let _ = sensor_interrupt_event_type().check_details(&e.details); }
            }
        }
    }
}
