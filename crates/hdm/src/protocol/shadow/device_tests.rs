//! Unit tests of the device shadow state machine, fed with the documents of the seed README and
//! the AWS developer guide (`tests/vectors/`, see SOURCES.md there).

use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::protocol::shadow::gate::initial_state;

const T: &str = "$aws/things/thing-1/shadow";

fn vector(name: &str) -> Value {
    let text = match name {
        "aws_get_rejected_404" => include_str!("../../../tests/vectors/aws_get_rejected_404.json"),
        "aws_example_document" => include_str!("../../../tests/vectors/aws_example_document.json"),
        "aws_delta_example" => include_str!("../../../tests/vectors/aws_delta_example.json"),
        "aws_locking_409" => include_str!("../../../tests/vectors/aws_locking_409.json"),
        "readme_desired" => include_str!("../../../tests/vectors/readme_desired.json"),
        "readme_reported" => include_str!("../../../tests/vectors/readme_reported.json"),
        other => panic!("no vector {other}"),
    };
    serde_json::from_str(text).unwrap()
}

fn device() -> DeviceShadow {
    DeviceShadow::new(
        ShadowTopics::new("thing-1", None).unwrap(),
        initial_state(),
        "dev",
        DeviceConfig::default(),
    )
}

fn published(actions: &[Action]) -> Vec<(String, Value)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish(o) => {
                Some((o.topic.clone(), serde_json::from_slice(&o.payload).unwrap()))
            }
            Action::Event(_) => None,
        })
        .collect()
}

fn events(actions: &[Action]) -> Vec<ShadowEvent> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) => Some(e.clone()),
            Action::Publish(_) => None,
        })
        .collect()
}

fn with_token(mut v: Value, token: &Value) -> Value {
    v["clientToken"] = token.clone();
    v
}

fn feed(d: &mut DeviceShadow, suffix: &str, body: &Value, now: Instant) -> Vec<Action> {
    d.on_message(&format!("{T}/{suffix}"), body.to_string().as_bytes(), now)
        .unwrap()
}

/// Starts a device and answers its get with `get/rejected` 404, then accepts the create.
fn created(now: Instant) -> DeviceShadow {
    let mut d = device();
    d.start(now);
    feed(&mut d, "get/rejected", &vector("aws_get_rejected_404"), now);
    let tok = d.pending[0].token.clone();
    feed(
        &mut d,
        "update/accepted",
        &json!({"state": {}, "version": 1, "timestamp": 1, "clientToken": tok}),
        now,
    );
    d
}

#[test]
fn starts_with_a_get_carrying_a_client_token() {
    let mut d = device();
    assert_eq!(d.subscriptions().len(), 8);
    let p = published(&d.start(Instant::now()));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, format!("{T}/get"));
    let token = p[0].1["clientToken"].as_str().unwrap();
    assert!(token.starts_with("dev-") && token.len() <= 64);
}

#[test]
fn missing_shadow_is_created_by_reporting_the_readme_state() {
    let now = Instant::now();
    let mut d = device();
    d.start(now);
    let a = feed(&mut d, "get/rejected", &vector("aws_get_rejected_404"), now);
    assert_eq!(events(&a), vec![ShadowEvent::Missing]);
    let p = published(&a);
    assert_eq!(p[0].0, format!("{T}/update"));
    assert_eq!(p[0].1["state"], vector("readme_reported")["state"]);
    assert!(
        p[0].1.get("version").is_none(),
        "a create carries no version"
    );
    let tok = p[0].1["clientToken"].clone();
    let a = feed(
        &mut d,
        "update/accepted",
        &json!({"state": p[0].1["state"], "version": 1, "timestamp": 2, "clientToken": tok}),
        now,
    );
    assert_eq!(
        events(&a),
        vec![ShadowEvent::Synced {
            version: 1,
            created: true
        }]
    );
    assert!(d.is_synced());
}

#[test]
fn get_accepted_applies_desired_and_reports_with_its_version() {
    let now = Instant::now();
    let mut d = device();
    let tok = published(&d.start(now))[0].1["clientToken"].clone();
    let doc = vector("aws_example_document");
    // Not our token: another client's get. Ignored.
    assert!(feed(&mut d, "get/accepted", &doc, now).is_empty());
    let a = feed(&mut d, "get/accepted", &with_token(doc, &tok), now);
    let ev = events(&a);
    assert!(
        matches!(&ev[0], ShadowEvent::DesiredApplied { version: 10, source: "get", changed } if changed == &["color", "sequence"]),
        "{ev:?}"
    );
    let p = published(&a);
    assert_eq!(p[0].1["version"], 10);
    assert_eq!(p[0].1["state"]["reported"]["color"], "RED");
    assert_eq!(
        p[0].1["state"]["reported"]["sequence"],
        json!(["RED", "GREEN", "BLUE"])
    );
}

#[test]
fn deltas_apply_once_and_stale_ones_are_dropped() {
    let now = Instant::now();
    let mut d = created(now);
    let delta = vector("aws_delta_example");
    let a = feed(&mut d, "update/delta", &delta, now);
    assert!(matches!(
        &events(&a)[0],
        ShadowEvent::DesiredApplied { version: 1349, .. }
    ));
    assert_eq!(d.state()["toggle"], 0);
    assert_eq!(published(&a)[0].1["version"], 1349);
    let a = feed(&mut d, "update/delta", &delta, now);
    assert_eq!(
        events(&a),
        vec![ShadowEvent::Stale {
            topic: format!("{T}/update/delta"),
            version: 1349,
            newest: 1349
        }]
    );
    assert!(published(&a).is_empty());
}

#[test]
fn readme_desired_state_gates_telemetry() {
    let now = Instant::now();
    let mut d = created(now);
    let mut desired = vector("readme_desired")["state"]["desired"].clone();
    desired["event_type_blacklist"] = json!(["ODA"]);
    feed(
        &mut d,
        "update/delta",
        &json!({"state": desired, "version": 5, "timestamp": 3}),
        now,
    );
    assert!(d.gate().check("ODA").is_err());
    assert!(d.gate().check("reference-client-test").is_ok());
    feed(
        &mut d,
        "update/delta",
        &json!({"state": {"event_publishing_enabled": false}, "version": 6, "timestamp": 4}),
        now,
    );
    assert!(d.gate().check("reference-client-test").is_err());
}

#[test]
fn version_conflict_gets_again_then_gives_up() {
    let now = Instant::now();
    let mut d = created(now);
    let conflict = vector("aws_locking_409");
    for attempt in 1..=5 {
        let a = feed(
            &mut d,
            "update/delta",
            &json!({"state": {"x": attempt}, "version": 100 + attempt, "timestamp": 1}),
            now,
        );
        let tok = published(&a)[0].1["clientToken"].clone();
        // Someone else's 409 is not ours.
        assert!(feed(&mut d, "update/rejected", &conflict, now).is_empty());
        let a = feed(
            &mut d,
            "update/rejected",
            &with_token(conflict.clone(), &tok),
            now,
        );
        assert_eq!(events(&a), vec![ShadowEvent::Conflict { attempt }]);
        let p = published(&a);
        assert_eq!(p[0].0, format!("{T}/get"));
        let gtok = p[0].1["clientToken"].clone();
        // The get is answered with an old document: stale, dropped.
        let a = feed(
            &mut d,
            "get/accepted",
            &json!({"state": {}, "version": 1, "timestamp": 1, "clientToken": gtok}),
            now,
        );
        assert!(matches!(events(&a)[0], ShadowEvent::Stale { .. }));
    }
    let a = feed(
        &mut d,
        "update/delta",
        &json!({"state": {"x": 9}, "version": 200, "timestamp": 1}),
        now,
    );
    let tok = published(&a)[0].1["clientToken"].clone();
    let a = feed(&mut d, "update/rejected", &with_token(conflict, &tok), now);
    assert_eq!(
        events(&a),
        vec![ShadowEvent::Rejected {
            op: ShadowOp::Update,
            code: 409,
            message: "Version conflict".into()
        }]
    );
}

#[test]
fn unanswered_requests_time_out_into_a_new_get() {
    let t0 = Instant::now();
    let mut d = device();
    d.start(t0);
    assert_eq!(d.next_deadline(), Some(t0 + Duration::from_secs(10)));
    assert!(d.on_tick(t0 + Duration::from_secs(5)).is_empty());
    let a = d.on_tick(t0 + Duration::from_secs(10));
    assert_eq!(
        events(&a),
        vec![ShadowEvent::TimedOut { op: ShadowOp::Get }]
    );
    assert_eq!(published(&a)[0].0, format!("{T}/get"));
    let a = d.on_reconnect(t0 + Duration::from_secs(11));
    assert_eq!(published(&a).len(), 1);
}

#[test]
fn other_errors_are_reported_with_code_and_message() {
    let now = Instant::now();
    let mut d = device();
    d.start(now);
    let a = feed(
        &mut d,
        "get/rejected",
        &json!({"code": 403, "message": "Forbidden"}),
        now,
    );
    assert_eq!(
        events(&a),
        vec![ShadowEvent::Rejected {
            op: ShadowOp::Get,
            code: 403,
            message: "Forbidden".into()
        }]
    );
}

#[test]
fn foreign_topics_are_ignored_and_bad_documents_named() {
    let now = Instant::now();
    let mut d = device();
    assert!(
        d.on_message("$aws/things/other/shadow/update/delta", b"{}", now)
            .unwrap()
            .is_empty()
    );
    let e = d
        .on_message(&format!("{T}/update/delta"), b"[]", now)
        .unwrap_err();
    assert!(e.to_string().contains("update/delta"), "{e}");
}

proptest! {
    #[test]
    fn hostile_payloads_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        suffix in prop_oneof![
            Just("get/accepted"), Just("get/rejected"), Just("update/accepted"),
            Just("update/rejected"), Just("update/delta"), Just("update/documents"),
            Just("delete/accepted"), Just("delete/rejected"),
        ],
    ) {
        let now = Instant::now();
        let mut d = device();
        d.start(now);
        let _ = d.on_message(&format!("{T}/{suffix}"), &bytes, now);
    }
}
