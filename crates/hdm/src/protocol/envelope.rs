//! The gen-1 telemetry envelope (seed README "Message"): the header attributes in camelCase at
//! the top level (`payloadVersion`, `assetType`, `senderEventUuid`, `senderType`, `eventType`,
//! `eventSubtype`, `assetTimestamp`, `assetId`, `senderId`, `senderTimestamp`, optional
//! `connectionDeviceId`) and the event under `payload`. Timestamps are RFC 3339 with an offset
//! and milliseconds; the encoded message must fit AWS IoT's 128 KB limit, checked before
//! sending. The agent builds and encodes; the cloud's basic-ingest recorder decodes and checks.
//! Pure: the UUID and the time come in as arguments.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::protocol::json::{FieldError, Fields, kind};

/// AWS IoT's largest message payload: 128 KB (AWS IoT Core quotas, <https://docs.aws.amazon.com/general/latest/gr/iot-core.html>).
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;
/// The event type the HDM monitor shows (seed README "Telemetry demo").
pub const DEMO_EVENT_TYPE: &str = "reference-client-test";
/// The event subtype the reference demo sends.
pub const DEMO_EVENT_SUBTYPE: &str = "any-sub-type";

const WHAT: &str = "telemetry event";

/// The header attributes; an input object with `payload` and any of these is a whole envelope.
pub const HEADER_KEYS: [&str; 11] = [
    "payloadVersion",
    "assetType",
    "senderEventUuid",
    "senderType",
    "eventType",
    "eventSubtype",
    "assetTimestamp",
    "assetId",
    "senderId",
    "senderTimestamp",
    "connectionDeviceId",
];
const TS_EXPECTED: &str =
    "an RFC 3339 timestamp with an offset, e.g. 2019-09-10T17:08:39.557+02:00";

/// `payloadVersion`: a string in the README sample, an integer in the reference code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PayloadVersion {
    /// `1`.
    Number(u64),
    /// `"1"`.
    Text(String),
}

/// One telemetry event as sent to basic ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Version of the payload schema.
    pub payload_version: PayloadVersion,
    /// e.g. `ID_Cutter`, `Press`.
    pub asset_type: String,
    /// A UUID per event.
    pub sender_event_uuid: String,
    /// e.g. `prinect`.
    pub sender_type: String,
    /// e.g. `ODA`, `reference-client-test`.
    pub event_type: String,
    /// e.g. `InkConsumptionSummary`.
    pub event_subtype: String,
    /// When the asset produced the data.
    pub asset_timestamp: String,
    /// The asset.
    pub asset_id: String,
    /// The sender.
    pub sender_id: String,
    /// When the sender sent it.
    pub sender_timestamp: String,
    /// The connecting device, when it is not the sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_device_id: Option<String>,
    /// The event.
    pub payload: Map<String, Value>,
    /// Further header attributes, kept as given (the reference code sends e.g. `assetSerial`).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Why an event cannot be sent or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// A header field.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// Over AWS IoT's limit.
    #[error(
        "telemetry event is {size} bytes encoded; AWS IoT accepts at most {limit} bytes (128 KB) per message, so it was not sent: make the payload smaller"
    )]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The input was not a JSON object.
    #[error(
        "telemetry input must be a JSON object (the payload, or a whole envelope: payload plus header attributes), found {found}"
    )]
    Input {
        /// What it was.
        found: String,
    },
}

/// Header values for events built from a bare payload (flags and defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `payloadVersion`.
    pub payload_version: PayloadVersion,
    /// `assetType`.
    pub asset_type: String,
    /// `senderType`.
    pub sender_type: String,
    /// `eventType` (required unless the input carries it).
    pub event_type: Option<String>,
    /// `eventSubtype` (required unless the input carries it).
    pub event_subtype: Option<String>,
    /// `assetId`.
    pub asset_id: String,
    /// `senderId`.
    pub sender_id: String,
    /// `connectionDeviceId`.
    pub connection_device_id: Option<String>,
}

impl Header {
    /// The reference client's values, with `thing` as asset and sender id.
    pub fn defaults(thing: &str) -> Self {
        Header {
            payload_version: PayloadVersion::Text("1".into()),
            asset_type: "Press".into(),
            sender_type: "prinect".into(),
            event_type: None,
            event_subtype: None,
            asset_id: thing.to_owned(),
            sender_id: thing.to_owned(),
            connection_device_id: None,
        }
    }
}

/// The object an event is built from: a whole envelope as given, or a bare payload wrapped
/// under `payload` (both dialects).
pub(crate) fn envelope_object(
    input: Value,
    is_envelope: bool,
) -> Result<Map<String, Value>, EnvelopeError> {
    let Value::Object(input) = input else {
        return Err(EnvelopeError::Input {
            found: kind(&input).into(),
        });
    };
    if is_envelope {
        return Ok(input);
    }
    let mut m = Map::new();
    m.insert("payload".into(), Value::Object(input));
    Ok(m)
}

/// Whether a message of `len` bytes fits AWS IoT's limit; the refusal names it (both dialects).
pub(crate) fn check_size(len: usize) -> Result<(), EnvelopeError> {
    if len > MAX_MESSAGE_BYTES {
        return Err(EnvelopeError::TooLarge {
            size: len,
            limit: MAX_MESSAGE_BYTES,
        });
    }
    Ok(())
}

/// Encodes `value` as a message, refused over the limit (both dialects).
pub(crate) fn encode_limited(value: &impl Serialize) -> Result<Vec<u8>, EnvelopeError> {
    let bytes = serde_json::to_vec(value).map_err(|e| EnvelopeError::Input {
        found: e.to_string(),
    })?;
    check_size(bytes.len())?;
    Ok(bytes)
}

/// Formats a timestamp the way HDM expects: `2019-09-10T17:08:39.557+02:00`.
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3][offset_hour sign:mandatory]:[offset_minute]"
    );
    t.format(&fmt).unwrap_or_default()
}

fn valid_timestamp(s: &str) -> bool {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

fn valid_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

impl Envelope {
    /// Checks every header field.
    pub fn validate(&self) -> Result<(), FieldError> {
        const NON_EMPTY: &str = "a non-empty string";
        let err = |field: &str, expected: &'static str, found: &str| FieldError {
            what: WHAT,
            field: field.to_owned(),
            expected,
            found: format!("`{found}`"),
        };
        for (field, value) in [
            ("assetType", &self.asset_type),
            ("senderType", &self.sender_type),
            ("eventType", &self.event_type),
            ("eventSubtype", &self.event_subtype),
            ("assetId", &self.asset_id),
            ("senderId", &self.sender_id),
        ] {
            if value.trim().is_empty() {
                return Err(err(field, NON_EMPTY, value));
            }
        }
        if !valid_uuid(&self.sender_event_uuid) {
            return Err(err(
                "senderEventUuid",
                "a UUID like ed7335bc-9cf8-49b0-8673-60497f1e54a6",
                &self.sender_event_uuid,
            ));
        }
        for (field, value) in [
            ("assetTimestamp", &self.asset_timestamp),
            ("senderTimestamp", &self.sender_timestamp),
        ] {
            if !valid_timestamp(value) {
                return Err(err(field, TS_EXPECTED, value));
            }
        }
        if let PayloadVersion::Text(t) = &self.payload_version
            && t.trim().is_empty()
        {
            return Err(err("payloadVersion", "a version number or string", t));
        }
        Ok(())
    }

    /// Whether an input is a whole envelope (an object with `payload` and at least one header
    /// attribute) rather than a bare payload.
    pub fn is_envelope_input(input: &Value) -> bool {
        input.as_object().is_some_and(|o| {
            o.contains_key("payload") && HEADER_KEYS.iter().any(|k| o.contains_key(*k))
        })
    }

    /// Builds an event from `input`: a bare payload object (the header from `header`), or a
    /// whole envelope ([`Envelope::is_envelope_input`]) whose missing header fields come from
    /// `header`. A missing UUID and timestamps are `uuid` and `now`.
    pub fn build(
        header: &Header,
        input: Value,
        uuid: &str,
        now: OffsetDateTime,
    ) -> Result<Envelope, EnvelopeError> {
        let is_envelope = Envelope::is_envelope_input(&input);
        let mut obj = envelope_object(input, is_envelope)?;
        let stamp = format_timestamp(now);
        let mut fill = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                obj.entry(key.to_owned()).or_insert(v);
            }
        };
        let s = |v: &str| Some(Value::String(v.to_owned()));
        fill(
            "payloadVersion",
            Some(match &header.payload_version {
                PayloadVersion::Number(n) => Value::from(*n),
                PayloadVersion::Text(t) => Value::String(t.clone()),
            }),
        );
        fill("assetType", s(&header.asset_type));
        fill("senderEventUuid", s(uuid));
        fill("senderType", s(&header.sender_type));
        fill("eventType", header.event_type.as_deref().and_then(s));
        fill("eventSubtype", header.event_subtype.as_deref().and_then(s));
        fill("assetTimestamp", s(&stamp));
        fill("assetId", s(&header.asset_id));
        fill("senderId", s(&header.sender_id));
        fill("senderTimestamp", s(&stamp));
        fill(
            "connectionDeviceId",
            header.connection_device_id.as_deref().and_then(s),
        );
        Envelope::from_object(obj)
    }

    fn from_object(obj: Map<String, Value>) -> Result<Envelope, EnvelopeError> {
        // Field by field first, so the error names the field.
        let f = Fields::new(WHAT, "", &obj);
        for key in [
            "assetType",
            "senderEventUuid",
            "senderType",
            "eventType",
            "eventSubtype",
            "assetTimestamp",
            "assetId",
            "senderId",
            "senderTimestamp",
        ] {
            f.str(key, "a string")?;
        }
        f.opt_str("connectionDeviceId", "a string")?;
        f.object("payload", "payload")?;
        match f.get("payloadVersion") {
            Some(Value::String(_)) => {}
            Some(Value::Number(n)) if n.is_u64() => {}
            Some(v) => {
                return Err(f
                    .error("payloadVersion", "a version number or string", kind(v))
                    .into());
            }
            None => {
                return Err(f
                    .error(
                        "payloadVersion",
                        "a version number or string",
                        "nothing (missing)",
                    )
                    .into());
            }
        }
        let env: Envelope = serde_json::from_value(Value::Object(obj)).map_err(|e| {
            EnvelopeError::Field(FieldError {
                what: WHAT,
                field: "(document)".into(),
                expected: "a telemetry envelope",
                found: e.to_string(),
            })
        })?;
        env.validate()?;
        Ok(env)
    }

    /// Encodes the event, refusing it when it exceeds [`MAX_MESSAGE_BYTES`].
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        encode_limited(self)
    }

    /// Decodes and checks a received event (the cloud side).
    pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        check_size(bytes.len())?;
        Envelope::from_object(Fields::parse(WHAT, bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2019-09-10 17:08:39.557 +02:00)
    }

    const UUID: &str = "ed7335bc-9cf8-49b0-8673-60497f1e54a6";

    #[test]
    fn timestamps_carry_offset_and_milliseconds() {
        assert_eq!(format_timestamp(now()), "2019-09-10T17:08:39.557+02:00");
        let utc = time::macros::datetime!(2020-01-20 08:00:00 UTC);
        assert_eq!(format_timestamp(utc), "2020-01-20T08:00:00.000+00:00");
    }

    #[test]
    fn bare_payload_gets_the_header() {
        let mut h = Header::defaults("hdm-1");
        h.event_type = Some(DEMO_EVENT_TYPE.into());
        h.event_subtype = Some(DEMO_EVENT_SUBTYPE.into());
        let e = Envelope::build(&h, json!({"foo": "bar"}), UUID, now()).unwrap();
        assert_eq!(e.event_type, "reference-client-test");
        assert_eq!(e.sender_timestamp, "2019-09-10T17:08:39.557+02:00");
        assert_eq!(e.payload["foo"], "bar");
        let text = String::from_utf8(e.encode().unwrap()).unwrap();
        assert!(
            text.starts_with(r#"{"payloadVersion":"1","assetType":"Press""#),
            "{text}"
        );
    }

    #[test]
    fn missing_event_type_is_named() {
        let h = Header::defaults("hdm-1");
        let e = Envelope::build(&h, json!({"foo": 1}), UUID, now()).unwrap_err();
        assert!(e.to_string().contains("`eventType`"), "{e}");
        let e = Envelope::build(&h, json!([1]), UUID, now()).unwrap_err();
        assert!(matches!(e, EnvelopeError::Input { .. }), "{e}");
    }

    #[test]
    fn envelope_input_keeps_its_fields_and_extras() {
        let h = Header::defaults("hdm-1");
        assert!(!Envelope::is_envelope_input(&json!({"payload": 1})));
        let input = json!({"eventType": "ODA", "eventSubtype": "X", "payload": {}, "assetSerial": "42", "payloadVersion": 1});
        let e = Envelope::build(&h, input, UUID, now()).unwrap();
        assert_eq!(e.payload_version, PayloadVersion::Number(1));
        assert_eq!(e.extra["assetSerial"], "42");
        assert_eq!(Envelope::decode(&e.encode().unwrap()).unwrap(), e);
    }

    #[test]
    fn shipped_example_event_builds() {
        let input: Value =
            serde_json::from_str(include_str!("../../../../configs/hdm/readme-event.json"))
                .unwrap();
        let e = Envelope::build(&Header::defaults("hdm-1"), input, UUID, now()).unwrap();
        assert_eq!(
            (e.event_type.as_str(), e.asset_id.as_str()),
            ("ODA", "AUTOTEST_CUT")
        );
        assert_eq!(
            e.connection_device_id.as_deref(),
            Some("LiveTestSimulator01")
        );
    }

    #[test]
    fn over_size_is_refused_naming_the_limit() {
        let mut h = Header::defaults("hdm-1");
        h.event_type = Some("t".into());
        h.event_subtype = Some("s".into());
        let big = "x".repeat(MAX_MESSAGE_BYTES);
        let e = Envelope::build(&h, json!({"blob": big}), UUID, now()).unwrap();
        let err = e.encode().unwrap_err();
        assert!(matches!(
            err,
            EnvelopeError::TooLarge { limit: 131_072, .. }
        ));
        assert!(err.to_string().contains("131072 bytes (128 KB)"), "{err}");
    }

    #[test]
    fn decode_names_bad_timestamps_and_uuids() {
        let mut v = json!({"payloadVersion":"1","assetType":"a","senderEventUuid":UUID,"senderType":"s","eventType":"e","eventSubtype":"x","assetTimestamp":"2019-09-10 17:08","assetId":"a","senderId":"s","senderTimestamp":"2019-09-10T17:08:39.557+02:00","payload":{}});
        let e = Envelope::decode(v.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("`assetTimestamp`"), "{e}");
        v["assetTimestamp"] = json!("2019-09-10T17:08:39+02:00");
        v["senderEventUuid"] = json!("nope");
        let e = Envelope::decode(v.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("`senderEventUuid`"), "{e}");
        v["senderEventUuid"] = json!(UUID);
        v["payload"] = json!("text");
        let e = Envelope::decode(v.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("`payload`"), "{e}");
    }

    fn arb_envelope() -> impl Strategy<Value = Envelope> {
        let s = "[A-Za-z0-9_.-]{1,12}";
        (
            (s, s, s, s, s, s),
            proptest::option::of(s),
            prop_oneof![
                any::<u32>().prop_map(|n| PayloadVersion::Number(u64::from(n))),
                "[0-9]{1,3}".prop_map(PayloadVersion::Text)
            ],
            proptest::collection::btree_map("[a-z]{1,6}", any::<i32>(), 0..4),
            (0i64..4_000_000_000, -12i8..=12),
        )
            .prop_map(|((at, st, et, es, ai, si), cd, pv, p, (secs, off))| {
                let offset = time::UtcOffset::from_hms(off, 0, 0).unwrap();
                let t = OffsetDateTime::from_unix_timestamp(secs)
                    .unwrap()
                    .to_offset(offset);
                Envelope {
                    payload_version: pv,
                    asset_type: at,
                    sender_event_uuid: UUID.into(),
                    sender_type: st,
                    event_type: et,
                    event_subtype: es,
                    asset_timestamp: format_timestamp(t),
                    asset_id: ai,
                    sender_id: si,
                    sender_timestamp: format_timestamp(t),
                    connection_device_id: cd,
                    payload: p.into_iter().map(|(k, v)| (k, Value::from(v))).collect(),
                    extra: BTreeMap::new(),
                }
            })
    }

    proptest! {
        #[test]
        fn round_trips(e in arb_envelope()) {
            prop_assert_eq!(Envelope::decode(&e.encode().unwrap()).unwrap(), e);
        }

        #[test]
        fn hostile_bytes_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Envelope::decode(&bytes);
        }
    }
}
