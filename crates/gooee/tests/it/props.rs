//! Property tests: every message type survives encode → decode unchanged; no decoder, topic
//! check or platform handler panics on hostile input; the meta name rule agrees with a second,
//! independent reading of the regex.

use std::collections::BTreeMap;

use gooee::cloud::{CloudState, handle};
use gooee::protocol::topics::{self, Entity, HeadCountKind, Route};
use gooee::protocol::{
    Action, FaultAlarm, HeadCount, MetaEntry, MetaList, MetaValue, Rejection, RejectionError,
    RelayedAction, check_name,
};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::vector;

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1_000_000i64..1_000_000).prop_map(|n| json!(n as f64 / 100.0)),
        "\\PC{0,12}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn extra() -> impl Strategy<Value = BTreeMap<String, Value>> {
    prop::collection::btree_map("x_[a-z]{1,5}", value(), 0..3)
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,16}"
}

fn entry() -> impl Strategy<Value = MetaEntry> {
    (
        text(),
        value(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        extra(),
    )
        .prop_map(
            |(name, value, display_name, unit_of_measure, timestamp, extra)| MetaEntry {
                name,
                value,
                display_name,
                unit_of_measure,
                timestamp,
                extra,
            },
        )
}

fn action() -> impl Strategy<Value = Action> {
    let o = || proptest::option::of(text());
    (
        o(),
        text(),
        o(),
        o(),
        proptest::option::of(value()),
        o(),
        extra(),
    )
        .prop_map(
            |(name, kind, target_type, target_id, value, created, extra)| Action {
                name,
                kind,
                target_type,
                target_id,
                value,
                created,
                extra,
            },
        )
}

fn alarm() -> impl Strategy<Value = FaultAlarm> {
    let o = || proptest::option::of(text());
    (
        (o(), text(), any::<u8>(), text(), text()),
        (o(), o(), proptest::option::of(value()), o(), extra()),
    )
        .prop_map(
            |(
                (id, timestamp, priority, level, kind),
                (device, notes, value, description, extra),
            )| FaultAlarm {
                id,
                timestamp,
                priority,
                level,
                kind,
                device,
                notes,
                value,
                description,
                extra,
            },
        )
}

/// A second reading of `^(~?)(?!.*__.*)[a-z][a-z0-9_]+$` plus the 100-character limit.
fn reference_rule(s: &str) -> bool {
    let body = s.strip_prefix('~').unwrap_or(s).as_bytes();
    body.len() >= 2
        && body[0].is_ascii_lowercase()
        && body[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && !body.windows(2).any(|w| w == b"__")
        && s.chars().count() <= 100
}

const HANDLED: [&str; 6] = [
    "devices/d/meta",
    "devices/d/actions",
    "spaces/s/actions",
    "devices/d/fault_alarms",
    "buildings/b/fault_alarms",
    "areas/a/meta/head_count",
];

fn every_decoder(bytes: &[u8]) {
    let _ = MetaList::decode(bytes).map(|l| l.validate());
    let _ = MetaValue::decode(bytes);
    let _ = Action::decode(bytes).map(|a| a.validate());
    let _ = RelayedAction::decode(bytes);
    let _ = FaultAlarm::decode(bytes).map(|a| a.validate());
    let _ = HeadCount::decode(bytes).map(|h| h.validate(HeadCountKind::In));
    let _ = Rejection::decode(bytes);
    let mut state = CloudState::default();
    for t in HANDLED {
        for m in handle(&mut state, t, bytes, time::OffsetDateTime::UNIX_EPOCH) {
            // Whatever the platform publishes is itself well-formed.
            if m.topic.ends_with("/rejected") {
                assert!(Rejection::decode(&m.payload).is_ok(), "{}", m.topic);
            }
        }
    }
}

proptest! {
    #[test]
    fn meta_list_round_trips(list in prop::collection::vec(entry(), 0..4)) {
        let list = MetaList(list);
        prop_assert_eq!(MetaList::decode(&list.encode()).unwrap(), list);
    }

    #[test]
    fn meta_value_round_trips(name in text(), value in value(), timestamp in proptest::option::of(text()), extra in extra()) {
        let v = MetaValue { name, value, timestamp, extra };
        prop_assert_eq!(MetaValue::decode(&v.encode()).unwrap(), v);
    }

    #[test]
    fn actions_round_trip(a in action()) {
        prop_assert_eq!(Action::decode(&a.encode()).unwrap(), a.clone());
        let r = a.relayed();
        prop_assert_eq!(RelayedAction::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn fault_alarms_round_trip(a in alarm()) {
        prop_assert_eq!(FaultAlarm::decode(&a.encode()).unwrap(), a);
    }

    #[test]
    fn head_counts_round_trip(name in text(), value in any::<u64>(), extra in extra()) {
        let h = HeadCount { name, value, extra };
        prop_assert_eq!(HeadCount::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn rejections_round_trip(message in text(), context in value(), data in value()) {
        let r = Rejection { error: RejectionError { message, context }, data };
        prop_assert_eq!(Rejection::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn name_rule_agrees_with_the_regex(s in "~?[a-z0-9_~A-Z. -]{0,8}") {
        prop_assert_eq!(check_name(&s).is_ok(), reference_rule(&s), "{:?}", s);
    }

    #[test]
    fn valid_names_pass(s in "~?[a-z]([a-z0-9]_?){1,20}") {
        prop_assert!(check_name(&s).is_ok(), "{:?}", s);
    }

    #[test]
    fn hostile_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        every_decoder(&bytes);
    }

    #[test]
    fn hostile_json_never_panics(v in value()) {
        every_decoder(&serde_json::to_vec(&v).unwrap());
        every_decoder(&serde_json::to_vec(&json!([v.clone(), {"name": "als", "value": v}])).unwrap());
    }

    #[test]
    fn mutated_vectors_never_panic(which in 0usize..5, at in any::<prop::sample::Index>(), bit in 0u8..8, cut in any::<bool>()) {
        let files = ["device_meta.json", "device_actions.json", "device_fault_alarms.json", "area_head_count.json", "rejected_meta.json"];
        let mut bytes = vector(files[which]);
        let i = at.index(bytes.len());
        if cut { bytes.truncate(i) } else { bytes[i] ^= 1 << bit }
        every_decoder(&bytes);
    }

    #[test]
    fn topic_checks_never_panic(t in "\\PC{0,40}", u in "[a-z/+#]{0,30}") {
        for s in [&t, &u] {
            let _ = topics::check_publish(s);
            let _ = topics::check_subscribe(s);
            let _ = topics::route(s);
            let _ = topics::rejected_for(s);
            let _ = check_name(s);
        }
    }

    #[test]
    fn built_topics_route_back(id in "[A-Za-z0-9-]{1,36}") {
        prop_assert_eq!(topics::route(&topics::device_meta(&id).unwrap()), Some(Route::DeviceMeta { device: id.clone() }));
        prop_assert_eq!(
            topics::route(&topics::head_count(Entity::Building, &id, HeadCountKind::Out).unwrap()),
            Some(Route::HeadCount { entity: Entity::Building, id: id.clone(), kind: HeadCountKind::Out })
        );
        prop_assert!(topics::check_subscribe(&topics::device_meta_name(&id, "als").unwrap()).is_ok());
    }
}
