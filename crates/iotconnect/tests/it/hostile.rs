//! Hostile input never panics: arbitrary bytes and arbitrary JSON into every decoder of network
//! or user input, and encode/decode round trips for generated commands.

use iotconnect::protocol::input::parse_line;
use iotconnect::protocol::rules;
use iotconnect::protocol::v1::c2d::{C2d, DeviceCommand, OtaCommand, OtaUrl, OtaVersion};
use iotconnect::protocol::v1::envelope::{D2c, mark_offline};
use iotconnect::protocol::v1::sync::{DiscoveryResponse, SyncData};
use iotconnect::protocol::v2::Discovery;
use iotconnect::protocol::v2::c2d::C2d21;
use iotconnect::protocol::v2::identity::IdentityAnswer;
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[ -~]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("0x01"),
            Just("0x02"),
            Just("0x17"),
            Just("0x99"),
            Just("sync"),
            Just("0x16")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("cmdType".to_owned()),
                    Just("data".to_owned()),
                    Just("urls".to_owned()),
                    Just("url".to_owned()),
                    Just("ackId".to_owned()),
                    Just("df".to_owned()),
                    Just("ver".to_owned()),
                    Just("command".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn command() -> impl Strategy<Value = DeviceCommand> {
    (
        "[ -~]{0,10}",
        "[ -~]{0,10}",
        "[ -~]{0,10}",
        "[ -~]{0,20}",
        any::<bool>(),
        proptest::option::of("[ -~]{1,10}"),
    )
        .prop_map(
            |(cp_id, guid, unique_id, command, ack, ack_id)| DeviceCommand {
                cp_id,
                guid,
                unique_id,
                command,
                ack,
                ack_id,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn decoders_survive_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = C2d::parse(&bytes);
        let _ = D2c::decode(&bytes);
        let _ = SyncData::parse_reply(&bytes);
        let _ = DiscoveryResponse::parse(&bytes);
        let _ = mark_offline(&bytes);
        let _ = parse_line(1, &String::from_utf8_lossy(&bytes));
        let _ = C2d21::parse(&bytes);
        let _ = Discovery::parse(&bytes, "d");
        let _ = IdentityAnswer::parse(&bytes, "d");
    }

    #[test]
    fn decoders_survive_arbitrary_json(v in json_value(), data in json_value(), ct in "[ -~]{0,6}") {
        let _ = C2d::parse(v.to_string().as_bytes());
        let _ = C2d::parse(json!({"cmdType": ct, "data": data}).to_string().as_bytes());
        for ct in ["0x01", "0x02", "0x17", "0x16"] {
            let _ = C2d::parse(json!({"cmdType": ct, "data": data}).to_string().as_bytes());
        }
        let _ = D2c::decode(v.to_string().as_bytes());
        let _ = SyncData::parse_reply(json!({"d": v}).to_string().as_bytes());
        let _ = parse_line(1, &v.to_string());
        // 2.1: every ct with hostile fields, identity answers with hostile parts.
        for ct in [0, 1, 2, 101, 105, 107, 110, 111, 201, 221] {
            let _ = C2d21::parse(json!({"v": 2.1, "ct": ct, "df": data, "f": data, "urls": data, "cmd": data}).to_string().as_bytes());
            let _ = C2d21::parse(json!({"d": {"ct": ct, "ec": data, "att": v}}).to_string().as_bytes());
        }
        let _ = IdentityAnswer::parse(json!({"d": {"ec": 0, "meta": v, "has": data, "p": v}}).to_string().as_bytes(), "d");
        let _ = Discovery::parse(json!({"d": v, "status": data}).to_string().as_bytes(), "d");
        let _ = iotconnect::protocol::device::attributes_21(&v);
    }

    #[test]
    fn rule_parser_survives_hostile_text(s in "[ -~]{0,80}", deep in 0usize..100) {
        let _ = rules::parse(&s);
        let nested = format!("{}a > 1{}", "(".repeat(deep), ")".repeat(deep));
        let r = rules::parse(&nested);
        prop_assert_eq!(r.is_ok(), deep <= rules::MAX_DEPTH);
        if let Ok(e) = rules::parse(&s) {
            let mut used = serde_json::Map::new();
            let _ = e.eval("", json!({"a": 1, "b": "x"}).as_object().unwrap(), &mut used);
        }
    }

    #[test]
    fn commands_roundtrip(c in command()) {
        let m = C2d::Command(c);
        prop_assert_eq!(C2d::parse(m.to_json().to_string().as_bytes()).unwrap(), m);
    }

    #[test]
    fn otas_roundtrip(c in command(), urls in prop::collection::vec(("https://[a-z]{1,8}/[a-z]{1,8}", proptest::option::of("[a-z]{1,5}"), proptest::option::of("[a-z]{1,5}")), 1..4), sw in "[0-9.]{0,5}") {
        let ota = OtaCommand {
            command: DeviceCommand { command: "ota".into(), ..c },
            ver: OtaVersion { sw, hw: "1".into() },
            urls: urls.into_iter().map(|(url, tag, unique_id)| OtaUrl { url, tag, unique_id, file_name: None }).collect(),
        };
        let m = C2d::Ota(ota);
        prop_assert_eq!(C2d::parse(m.to_json().to_string().as_bytes()).unwrap(), m);
    }
}
