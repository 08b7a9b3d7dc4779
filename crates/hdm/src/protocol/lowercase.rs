//! The gen-3 telemetry envelope: the reference client's JSON schema `header/3/header.schema.json`
//! (draft-07, `additionalProperties: false`, all-lowercase keys; `event_validator/header/3/` of the HDM IoT reference client, <https://github.com/hdm-master/iot-reference-client>). Required:
//! `assetid`, `assetserial`, `assettimestamp`, `assettype`, `eventsubtype`, `eventtype`,
//! `headerversion` (3), `sendereventuuid`, `sendertype`, `sendertimestamp`, `payloadversion`
//! (an integer), `payload`; optional: `assethardwareversion`, `assetmanufacturername`,
//! `assetname`, `assetsoftwareversion`, `assetsubtype`, `sendername`, `sendersoftwareversion`,
//! `siteid`, `sitename`. `eventtype`, `sendertype` and `assettype` are the schema's enums. Any
//! other key is refused, as the schema refuses it. The agent builds and encodes; the cloud's
//! basic-ingest recorder decodes and checks. Pure: UUID and time are arguments.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::protocol::envelope::{
    EnvelopeError, check_size, encode_limited, envelope_object, format_timestamp,
};
use crate::protocol::json::{FieldError, Fields, kind};

/// The header schema version this client sends.
pub const HEADER_VERSION: u64 = 3;
/// `eventtype` values of header schema 3.
pub const EVENT_TYPES: [&str; 6] = [
    "prinect.xjmf",
    "prinect.interval",
    "presscenter.oda",
    "presscenter.cle",
    "generic.signal",
    "smoke-test",
];
/// `sendertype` values of header schema 3.
pub const SENDER_TYPES: [&str; 5] = ["prinect", "system", "press", "ctp", "postpress"];
/// `assettype` values of header schema 3.
pub const ASSET_TYPES: [&str; 20] = [
    "DigitalPrinter",
    "SheetfedPress",
    "Cutter",
    "SheetFolder",
    "ShapeCutter",
    "BoxMaker",
    "Gatherer",
    "Stitcher",
    "AdhesiveBinder",
    "AdhesiveBinderLine",
    "Trimmer",
    "ThreadSewer",
    "CaseMaker",
    "BookProductionLine",
    "BoxPacker",
    "ManualPrePress",
    "ManualPress",
    "ManualPostPress",
    "PostPressExternal",
    "Workflow",
];
/// The optional string attributes of header schema 3.
pub const OPTIONAL_KEYS: [&str; 9] = [
    "assethardwareversion",
    "assetmanufacturername",
    "assetname",
    "assetsoftwareversion",
    "assetsubtype",
    "sendername",
    "sendersoftwareversion",
    "siteid",
    "sitename",
];
/// The reference gen-3 demo's event: `generic.signal` / `Status`, payload version 2.
pub const DEMO_EVENT_TYPE: &str = "generic.signal";
/// The reference gen-3 demo's event subtype.
pub const DEMO_EVENT_SUBTYPE: &str = "Status";
/// The reference gen-3 demo's payload version.
pub const DEMO_PAYLOAD_VERSION: u64 = 2;

const WHAT: &str = "telemetry event (header schema 3)";
const REQUIRED_STRINGS: [&str; 8] = [
    "assetid",
    "assetserial",
    "assettimestamp",
    "assettype",
    "eventsubtype",
    "eventtype",
    "sendereventuuid",
    "sendertype",
];

/// A `generic.signal`/`Status` payload of version 2 (the reference demo's), valid against its
/// schema: `signalstatus.deviceinfo` with `speed`, `status`, `statusdetails`,
/// `totalproductioncounter`.
pub fn demo_payload() -> Value {
    serde_json::json!({
        "signalstatus": {
            "deviceinfo": {
                "speed": 0,
                "status": "Idle",
                "statusdetails": "hdm-telemetry demo",
                "totalproductioncounter": 0
            }
        }
    })
}

/// One event in the lowercase dialect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LowerEnvelope {
    /// Always [`HEADER_VERSION`].
    pub headerversion: u64,
    /// Version of the payload schema.
    pub payloadversion: u64,
    /// The asset.
    pub assetid: String,
    /// The asset's serial number.
    pub assetserial: String,
    /// One of [`ASSET_TYPES`].
    pub assettype: String,
    /// When the asset produced the data (strictly increasing per sender).
    pub assettimestamp: String,
    /// One of [`EVENT_TYPES`].
    pub eventtype: String,
    /// e.g. `Status`.
    pub eventsubtype: String,
    /// A UUID per event.
    pub sendereventuuid: String,
    /// One of [`SENDER_TYPES`].
    pub sendertype: String,
    /// When the sender sent it.
    pub sendertimestamp: String,
    /// The optional attributes that are set ([`OPTIONAL_KEYS`]).
    #[serde(flatten)]
    pub optional: BTreeMap<String, String>,
    /// The event.
    pub payload: Map<String, Value>,
}

/// Header values for events built from a bare payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowerHeader {
    /// `payloadversion`.
    pub payloadversion: u64,
    /// `assetid`.
    pub assetid: String,
    /// `assetserial`.
    pub assetserial: String,
    /// `assettype`.
    pub assettype: String,
    /// `eventtype` (required unless the input carries it).
    pub eventtype: Option<String>,
    /// `eventsubtype` (required unless the input carries it).
    pub eventsubtype: Option<String>,
    /// `sendertype`.
    pub sendertype: String,
    /// Optional attributes to send (e.g. `siteid`, `sendername`).
    pub optional: BTreeMap<String, String>,
}

impl LowerHeader {
    /// Defaults for a provisioned gen-3 device: `thing` as asset id and serial, a digital
    /// printer (the machine kind gen 3 registers), sender type `system` (the reference demo's),
    /// `siteid` when known, `sendername`/`sendersoftwareversion` naming this client.
    pub fn defaults(thing: &str, site_id: Option<&str>) -> Self {
        let mut optional = BTreeMap::new();
        optional.insert("sendername".into(), "hdm-telemetry".into());
        optional.insert(
            "sendersoftwareversion".into(),
            env!("CARGO_PKG_VERSION").into(),
        );
        if let Some(s) = site_id {
            optional.insert("siteid".into(), s.to_owned());
        }
        LowerHeader {
            payloadversion: 1,
            assetid: thing.to_owned(),
            assetserial: thing.to_owned(),
            assettype: "DigitalPrinter".into(),
            eventtype: None,
            eventsubtype: None,
            sendertype: "system".into(),
            optional,
        }
    }
}

fn one_of(
    f: &Fields<'_>,
    key: &str,
    allowed: &[&str],
    expected: &'static str,
) -> Result<String, FieldError> {
    let v = f.str(key, expected)?;
    if allowed.contains(&v) {
        Ok(v.to_owned())
    } else {
        Err(f.error(key, expected, format!("`{v}`")))
    }
}

fn timestamp(f: &Fields<'_>, key: &str) -> Result<String, FieldError> {
    const TS: &str = "an RFC 3339 timestamp with milliseconds, e.g. 2020-03-19T08:00:00.123+00:00";
    let v = f.str(key, TS)?;
    if OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).is_ok() {
        Ok(v.to_owned())
    } else {
        Err(f.error(key, TS, format!("`{v}`")))
    }
}

fn integer(f: &Fields<'_>, key: &str, expected: &'static str) -> Result<u64, FieldError> {
    match f.get(key) {
        Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64().unwrap_or_default()),
        Some(v) => Err(f.error(key, expected, kind(v))),
        None => Err(f.error(key, expected, "nothing (missing)")),
    }
}

impl LowerEnvelope {
    /// Whether an input is a whole envelope (an object with `payload` and a lowercase header
    /// attribute) rather than a bare payload.
    pub fn is_envelope_input(input: &Value) -> bool {
        input.as_object().is_some_and(|o| {
            o.contains_key("payload")
                && (REQUIRED_STRINGS.iter().any(|k| o.contains_key(*k))
                    || o.contains_key("headerversion")
                    || o.contains_key("payloadversion"))
        })
    }

    /// Builds an event from `input` (a bare payload, or a whole envelope whose missing header
    /// fields come from `header`); a missing UUID and timestamps are `uuid` and `now`.
    pub fn build(
        header: &LowerHeader,
        input: Value,
        uuid: &str,
        now: OffsetDateTime,
    ) -> Result<LowerEnvelope, EnvelopeError> {
        let is_envelope = LowerEnvelope::is_envelope_input(&input);
        let mut obj = envelope_object(input, is_envelope)?;
        let stamp = format_timestamp(now);
        let s = |v: &str| Value::String(v.to_owned());
        let mut fill = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                obj.entry(key.to_owned()).or_insert(v);
            }
        };
        fill("headerversion", Some(Value::from(HEADER_VERSION)));
        fill("payloadversion", Some(Value::from(header.payloadversion)));
        fill("assetid", Some(s(&header.assetid)));
        fill("assetserial", Some(s(&header.assetserial)));
        fill("assettype", Some(s(&header.assettype)));
        fill("assettimestamp", Some(s(&stamp)));
        fill("eventtype", header.eventtype.as_deref().map(s));
        fill("eventsubtype", header.eventsubtype.as_deref().map(s));
        fill("sendereventuuid", Some(s(uuid)));
        fill("sendertype", Some(s(&header.sendertype)));
        fill("sendertimestamp", Some(s(&stamp)));
        for (k, v) in &header.optional {
            fill(k, Some(s(v)));
        }
        Ok(LowerEnvelope::from_object(&obj)?)
    }

    fn from_object(obj: &Map<String, Value>) -> Result<LowerEnvelope, FieldError> {
        let f = Fields::new(WHAT, "", obj);
        if let Some(k) = obj.keys().find(|k| {
            !REQUIRED_STRINGS.contains(&k.as_str())
                && !OPTIONAL_KEYS.contains(&k.as_str())
                && !matches!(
                    k.as_str(),
                    "headerversion" | "payloadversion" | "sendertimestamp" | "payload"
                )
        }) {
            return Err(f.error(
                k,
                "absent: header schema 3 allows no other attributes (additionalProperties: false)",
                "an attribute",
            ));
        }
        let headerversion = integer(&f, "headerversion", "the integer 3")?;
        if headerversion != HEADER_VERSION {
            return Err(f.error("headerversion", "the integer 3", headerversion.to_string()));
        }
        let non_empty = |key: &str| -> Result<String, FieldError> {
            let v = f.str(key, "a non-empty string")?;
            if v.trim().is_empty() {
                Err(f.error(key, "a non-empty string", "an empty string"))
            } else {
                Ok(v.to_owned())
            }
        };
        let uuid = non_empty("sendereventuuid")?;
        if uuid::Uuid::parse_str(&uuid).is_err() {
            return Err(f.error(
                "sendereventuuid",
                "a UUID like ed7335bc-9cf8-49b0-8673-60497f1e54a6",
                format!("`{uuid}`"),
            ));
        }
        let mut optional = BTreeMap::new();
        for k in OPTIONAL_KEYS {
            if let Some(v) = f.opt_str(k, "a string")? {
                optional.insert(k.to_owned(), v.to_owned());
            }
        }
        f.object("payload", "payload")?;
        let Some(Value::Object(payload)) = obj.get("payload") else {
            return Err(f.error("payload", "an object", "nothing (missing)"));
        };
        Ok(LowerEnvelope {
            headerversion,
            payloadversion: integer(&f, "payloadversion", "an integer, e.g. 1")?,
            assetid: non_empty("assetid")?,
            assetserial: non_empty("assetserial")?,
            assettype: one_of(
                &f,
                "assettype",
                &ASSET_TYPES,
                "an asset type of header schema 3 (DigitalPrinter, SheetfedPress, Cutter, ... Workflow)",
            )?,
            assettimestamp: timestamp(&f, "assettimestamp")?,
            eventtype: one_of(
                &f,
                "eventtype",
                &EVENT_TYPES,
                "one of prinect.xjmf, prinect.interval, presscenter.oda, presscenter.cle, generic.signal, smoke-test",
            )?,
            eventsubtype: non_empty("eventsubtype")?,
            sendereventuuid: uuid,
            sendertype: one_of(
                &f,
                "sendertype",
                &SENDER_TYPES,
                "one of prinect, system, press, ctp, postpress",
            )?,
            sendertimestamp: timestamp(&f, "sendertimestamp")?,
            optional,
            payload: payload.clone(),
        })
    }

    /// Encodes the event, refusing it over
    /// [`MAX_MESSAGE_BYTES`](crate::protocol::envelope::MAX_MESSAGE_BYTES).
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        encode_limited(self)
    }

    /// Decodes and checks a received event (the cloud side).
    pub fn decode(bytes: &[u8]) -> Result<LowerEnvelope, EnvelopeError> {
        check_size(bytes.len())?;
        Ok(LowerEnvelope::from_object(&Fields::parse(WHAT, bytes)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const UUID: &str = "ed7335bc-9cf8-49b0-8673-60497f1e54a6";

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2020-03-19 08:00:00.123 UTC)
    }

    fn header() -> LowerHeader {
        let mut h = LowerHeader::defaults("hdm-1", Some("site-1"));
        h.eventtype = Some(DEMO_EVENT_TYPE.into());
        h.eventsubtype = Some(DEMO_EVENT_SUBTYPE.into());
        h.payloadversion = DEMO_PAYLOAD_VERSION;
        h
    }

    #[test]
    fn the_demo_event_has_every_required_key_in_lower_case() {
        let e = LowerEnvelope::build(&header(), demo_payload(), UUID, now()).unwrap();
        let v: Value = serde_json::from_slice(&e.encode().unwrap()).unwrap();
        for k in REQUIRED_STRINGS.iter().chain(&[
            "headerversion",
            "payloadversion",
            "sendertimestamp",
            "payload",
        ]) {
            assert!(v.get(*k).is_some(), "{k} missing in {v}");
        }
        assert_eq!(v["headerversion"], 3);
        assert_eq!(v["payloadversion"], 2);
        assert_eq!(v["siteid"], "site-1");
        assert_eq!(v["assettimestamp"], "2020-03-19T08:00:00.123+00:00");
        assert!(
            v.as_object()
                .unwrap()
                .keys()
                .all(|k| k == &k.to_lowercase()),
            "{v}"
        );
        assert_eq!(LowerEnvelope::decode(&e.encode().unwrap()).unwrap(), e);
    }

    #[test]
    fn schema_rules_name_the_field() {
        let mut h = header();
        h.eventtype = Some("ODA".into());
        let e = LowerEnvelope::build(&h, json!({}), UUID, now()).unwrap_err();
        assert!(
            e.to_string().contains("`eventtype`") && e.to_string().contains("generic.signal"),
            "{e}"
        );
        let mut h = header();
        h.assettype = "Press".into();
        let e = LowerEnvelope::build(&h, json!({}), UUID, now()).unwrap_err();
        assert!(e.to_string().contains("`assettype`"), "{e}");
        let e = LowerEnvelope::build(
            &header(),
            json!({"payload": {}, "eventtype": "smoke-test", "eventType": "x"}),
            UUID,
            now(),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("`eventType`") && e.to_string().contains("additionalProperties"),
            "{e}"
        );
        let e = LowerEnvelope::build(
            &header(),
            json!({"payload": {}, "payloadversion": "2"}),
            UUID,
            now(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`payloadversion`"), "{e}");
        let e = LowerEnvelope::decode(br#"{"headerversion": 2}"#).unwrap_err();
        assert!(e.to_string().contains("`headerversion`"), "{e}");
    }

    #[test]
    fn whole_envelope_inputs_keep_their_fields() {
        let input = json!({"payload": {"a": 1}, "eventtype": "smoke-test", "eventsubtype": "x", "sitename": "Berlin"});
        assert!(LowerEnvelope::is_envelope_input(&input));
        assert!(!LowerEnvelope::is_envelope_input(&json!({"payload": 1})));
        let e = LowerEnvelope::build(&header(), input, UUID, now()).unwrap();
        assert_eq!(e.eventtype, "smoke-test");
        assert_eq!(e.optional["sitename"], "Berlin");
        assert_eq!(e.payload["a"], 1);
    }

    proptest! {
        #[test]
        fn hostile_bodies_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = LowerEnvelope::decode(&bytes);
        }

        #[test]
        fn round_trips(sub in "[A-Za-z]{1,12}", serial in "[A-Z0-9]{1,12}", pv in 0u64..1000) {
            let mut h = header();
            h.eventsubtype = Some(sub);
            h.assetserial = serial;
            h.payloadversion = pv;
            let e = LowerEnvelope::build(&h, json!({"x": [1, 2]}), UUID, now()).unwrap();
            prop_assert_eq!(LowerEnvelope::decode(&e.encode().unwrap()).unwrap(), e);
        }
    }
}
