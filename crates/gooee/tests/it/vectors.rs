//! The platform side and the protocol decoders fed with the raw bytes of Gooee's documentation
//! (see `tests/vectors/README.md`), not with anything our agent produced.

use gooee::cloud::{CloudState, handle};
use gooee::protocol::{
    Action, FaultAlarm, HeadCount, HeadCountKind, MetaList, MetaValue, Publication, Rejection,
    RelayedAction, topics,
};
use serde_json::Value;

use crate::vector;

const DEVICE: &str = "1de83fdc-6b4b-cff8-be07-cea1a7dd6343";

fn now() -> time::OffsetDateTime {
    time::macros::datetime!(2024-01-02 03:04:05.678 UTC)
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn every_documented_payload_decodes_and_validates() {
    MetaList::decode(&vector("device_meta.json"))
        .unwrap()
        .validate()
        .unwrap();
    for f in [
        "client_node_meta.json",
        "client_c_meta.json",
        "client_python_meta.json",
    ] {
        MetaList::decode(&vector(f)).unwrap().validate().unwrap();
    }
    MetaValue::decode(&vector("device_meta_name.json")).unwrap();
    for f in [
        "device_actions.json",
        "space_actions.json",
        "building_actions.json",
    ] {
        Action::decode(&vector(f)).unwrap().validate().unwrap();
    }
    for f in [
        "device_actions_type.json",
        "space_actions_type.json",
        "building_actions_type.json",
    ] {
        RelayedAction::decode(&vector(f)).unwrap();
    }
    for f in ["device_fault_alarms.json", "building_fault_alarms.json"] {
        FaultAlarm::decode(&vector(f)).unwrap().validate().unwrap();
    }
    for entity in ["area", "space", "building"] {
        for kind in HeadCountKind::ALL {
            let h = HeadCount::decode(&vector(&format!("{entity}_{}.json", kind.level()))).unwrap();
            h.validate(kind).unwrap();
        }
    }
    let r = Rejection::decode(&vector("rejected_meta.json")).unwrap();
    assert!(
        r.error
            .message
            .starts_with("Invalid payload due to regex pattern not matching.")
    );
}

#[test]
fn documented_meta_list_is_relayed_as_the_documented_single_values() {
    let mut state = CloudState::default();
    let topic = topics::device_meta(DEVICE).unwrap();
    let out = handle(&mut state, &topic, &vector("device_meta.json"), now());
    let topics_out: Vec<&str> = out.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics_out,
        [
            format!("devices/{DEVICE}/meta/temperature"),
            format!("devices/{DEVICE}/meta/als")
        ]
    );
    // The relay of the list example's first entry is exactly the single-value example.
    assert_eq!(
        json(&out[0].payload),
        json(&vector("device_meta_name.json"))
    );
    assert_eq!(state.report.get("meta_accepted"), 1);
    assert_eq!(state.report.get("meta_relayed"), 2);
}

#[test]
fn a_value_without_timestamp_is_stamped_with_the_platform_time() {
    let mut state = CloudState::default();
    let out = handle(
        &mut state,
        &topics::device_meta(DEVICE).unwrap(),
        &vector("client_node_meta.json"),
        now(),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(
        json(&out[0].payload),
        serde_json::json!({"name": "dim", "value": 50, "timestamp": "2024-01-02T03:04:05.678000Z"})
    );
}

#[test]
fn documented_rejection_is_reproduced_for_its_data() {
    let example = json(&vector("rejected_meta.json"));
    let data = serde_json::to_vec(&example["data"]).unwrap();
    let mut state = CloudState::default();
    let out = handle(&mut state, &format!("devices/{DEVICE}/meta"), &data, now());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].topic, format!("devices/{DEVICE}/meta/rejected"));
    assert_eq!(json(&out[0].payload), example);
    assert_eq!(state.report.get("meta_rejected"), 1);
    assert_eq!(state.report.get("meta_relayed"), 0);
}

#[test]
fn documented_actions_are_relayed_as_the_documented_per_type_payloads() {
    for (entity, file, kind) in [("devices", "device", "dim"), ("spaces", "space", "off")] {
        let mut state = CloudState::default();
        let out = handle(
            &mut state,
            &format!("{entity}/x1/actions"),
            &vector(&format!("{file}_actions.json")),
            now(),
        );
        assert_eq!(out.len(), 1, "{entity}");
        assert_eq!(out[0].topic, format!("{entity}/x1/actions/{kind}"));
        assert_eq!(
            json(&out[0].payload),
            json(&vector(&format!("{file}_actions_type.json")))
        );
    }
}

#[test]
fn subscribe_only_topics_are_not_handled() {
    let mut state = CloudState::default();
    assert!(
        handle(
            &mut state,
            "buildings/b1/actions",
            &vector("building_actions.json"),
            now()
        )
        .is_empty()
    );
    assert!(
        handle(
            &mut state,
            "devices/d/meta/temperature",
            &vector("device_meta_name.json"),
            now()
        )
        .is_empty()
    );
    assert_eq!(state.report.get("ignored"), 2);
}

#[test]
fn documented_alarms_and_head_counts_are_accepted_and_broken_ones_rejected() {
    let mut state = CloudState::default();
    for (topic, file) in [
        ("devices/d/fault_alarms", "device_fault_alarms.json"),
        ("buildings/b/fault_alarms", "building_fault_alarms.json"),
    ] {
        assert!(handle(&mut state, topic, &vector(file), now()).is_empty());
    }
    assert_eq!(state.report.get("alarms_accepted"), 2);
    let mut broken = json(&vector("building_fault_alarms.json"));
    broken["priority"] = serde_json::json!(300);
    let out = handle(
        &mut state,
        "buildings/b/fault_alarms",
        &serde_json::to_vec(&broken).unwrap(),
        now(),
    );
    assert_eq!(out[0].topic, "buildings/b/fault_alarms/rejected");
    let r = Rejection::decode(&out[0].payload).unwrap();
    assert!(r.error.message.contains("/priority"), "{}", r.error.message);
    assert_eq!(r.data, broken);
    for entity in ["areas", "spaces", "buildings"] {
        let file = &entity[..entity.len() - 1];
        for kind in HeadCountKind::ALL {
            let topic = format!("{entity}/x/meta/{}", kind.level());
            assert!(
                handle(
                    &mut state,
                    &topic,
                    &vector(&format!("{file}_{}.json", kind.level())),
                    now()
                )
                .is_empty()
            );
        }
    }
    assert_eq!(state.report.get("headcounts_accepted"), 9);
}

#[test]
fn values_of_known_metas_are_checked_by_the_platform() {
    let mut state = CloudState::default();
    let out = handle(
        &mut state,
        "devices/d/meta",
        br#"[{"name":"dim","value":150}]"#,
        now(),
    );
    let r = Rejection::decode(&out[0].payload).unwrap();
    assert_eq!(
        r.error.message,
        "Invalid payload due to value out of range.  Position: [0]/value. Value: 150."
    );
    assert_eq!(
        r.error.context,
        serde_json::json!({"type": "number", "minimum": 0, "maximum": 100})
    );
    let out = handle(
        &mut state,
        "devices/d/meta",
        br#"[{"name":"onoff","value":"on"}]"#,
        now(),
    );
    let r = Rejection::decode(&out[0].payload).unwrap();
    assert!(
        r.error.message.contains("type mismatch"),
        "{}",
        r.error.message
    );
    let out = handle(&mut state, "devices/d/meta", b"not json", now());
    let r = Rejection::decode(&out[0].payload).unwrap();
    assert_eq!(r.data, Value::String("not json".into()));
}

#[test]
fn the_agent_refuses_locally_what_the_platform_would_reject() {
    let example = json(&vector("rejected_meta.json"));
    let list = MetaList::from_value(&example["data"]).unwrap();
    let e = Publication::meta(DEVICE, &list, gooee::protocol::Check::Full)
        .unwrap_err()
        .to_string();
    assert!(e.contains("Meta_New") && e.contains("[0]/name"), "{e}");
}

#[test]
fn the_acl_in_configs_is_the_table() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/gooee/mosquitto.acl");
    let file = std::fs::read_to_string(&path).unwrap();
    let generated = topics::mosquitto_acl("authorization");
    assert!(
        file.contains(&generated),
        "{} is out of date; it must contain:\n{generated}",
        path.display()
    );
}
