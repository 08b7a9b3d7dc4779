//! Unit tests of the shadow service, with the request documents and expected answers of the AWS
//! developer guide (device-shadow-data-flow.md, device-shadow-document.md).

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn topic(s: &str) -> ShadowTopic {
    ShadowTopic::parse(s).unwrap()
}

fn update(svc: &mut ShadowService, body: Value, now: i64) -> Outcome {
    #![allow(clippy::needless_pass_by_value)]
    svc.handle(
        &topic("$aws/things/t/shadow/update"),
        body.to_string().as_bytes(),
        now,
    )
}

fn body(o: &Outcome, suffix: &str) -> Value {
    let m = o
        .messages
        .iter()
        .find(|m| m.topic.ends_with(suffix))
        .unwrap_or_else(|| panic!("no message on …{suffix}: {:?}", o.messages));
    serde_json::from_slice(&m.payload).unwrap()
}

fn has(o: &Outcome, suffix: &str) -> bool {
    o.messages.iter().any(|m| m.topic.ends_with(suffix))
}

#[test]
fn get_of_a_missing_shadow_is_404() {
    let mut svc = ShadowService::new();
    let o = svc.handle(
        &topic("$aws/things/t/shadow/get"),
        br#"{"clientToken":"c1"}"#,
        9,
    );
    let b = body(&o, "/get/rejected");
    assert_eq!(b["code"], 404);
    assert_eq!(b["message"], "No shadow exists with name: 't'");
    assert_eq!(b["clientToken"], "c1");
    let o = svc.handle(&topic("$aws/things/t/shadow/name/simShadow1/get"), b"", 9);
    assert_eq!(
        body(&o, "/get/rejected")["message"],
        "No shadow exists with name: 'simShadow1'"
    );
}

#[test]
fn desired_update_publishes_accepted_delta_and_documents() {
    let mut svc = ShadowService::new();
    // device-shadow-data-flow.md "Updating a shadow when a client requests a state change".
    let o = update(
        &mut svc,
        json!({"state": {"desired": {"color": {"r": 10}, "engine": "ON"}}}),
        100,
    );
    assert_eq!(
        o.effect,
        Effect::Updated {
            created: true,
            delta: true,
            version: 1
        }
    );
    let acc = body(&o, "/update/accepted");
    assert_eq!(
        acc["state"],
        json!({"desired": {"color": {"r": 10}, "engine": "ON"}})
    );
    assert_eq!(acc["metadata"]["desired"]["color"]["r"]["timestamp"], 100);
    assert_eq!(acc["version"], 1);
    let d = body(&o, "/update/delta");
    assert_eq!(d["state"], json!({"color": {"r": 10}, "engine": "ON"}));
    assert_eq!(d["version"], 1);
    let docs = body(&o, "/update/documents");
    assert!(docs.get("previous").is_none());
    assert_eq!(docs["current"]["version"], 1);
    // The device reports; no delta remains, so none is published.
    let o = update(
        &mut svc,
        json!({"state": {"reported": {"color": {"r": 10}, "engine": "ON"}}}),
        101,
    );
    assert!(!has(&o, "/update/delta"));
    assert_eq!(body(&o, "/update/documents")["previous"]["version"], 1);
    let o = svc.handle(&topic("$aws/things/t/shadow/get"), b"", 102);
    let g = body(&o, "/get/accepted");
    assert_eq!(g["version"], 2);
    assert!(g["state"].get("delta").is_none());
    assert_eq!(g["metadata"]["reported"]["engine"]["timestamp"], 101);
}

#[test]
fn delta_contains_all_differing_desired_attributes() {
    let mut svc = ShadowService::new();
    update(
        &mut svc,
        json!({"state": {"reported": {"color": "GREEN", "engine": "ON"}}}),
        1,
    );
    update(&mut svc, json!({"state": {"desired": {"color": "RED"}}}), 2);
    let o = update(
        &mut svc,
        json!({"state": {"desired": {"state": "STOP"}}}),
        3,
    );
    assert_eq!(
        body(&o, "/update/delta")["state"],
        json!({"color": "RED", "state": "STOP"})
    );
    let o = svc.handle(&topic("$aws/things/t/shadow/get"), b"", 4);
    assert_eq!(
        body(&o, "/get/accepted")["state"]["delta"],
        json!({"color": "RED", "state": "STOP"})
    );
}

#[test]
fn optimistic_locking_follows_the_guide() {
    // device-shadow-data-flow.md "Optimistic locking".
    let mut svc = ShadowService::new();
    for v in 0..10 {
        update(
            &mut svc,
            json!({"state": {"desired": {"colors": ["RED", "GREEN", "BLUE"]}}, "version": v}),
            1,
        );
    }
    // The guide's initial document.
    let initial: Value = serde_json::from_str(include_str!(
        "../../../tests/vectors/aws_locking_initial.json"
    ))
    .unwrap();
    let key = ShadowKey {
        thing: "t".into(),
        name: None,
    };
    let doc = svc.document(&key, None, 1).unwrap();
    assert_eq!(
        (doc.state.desired.as_ref(), doc.version),
        (Some(&initial["state"]["desired"]), 10)
    );
    let rejected: Value = serde_json::from_str(include_str!(
        "../../../tests/vectors/aws_locking_rejected_update.json"
    ))
    .unwrap();
    let o = update(&mut svc, rejected, 2);
    let r = body(&o, "/update/rejected");
    assert_eq!(r["code"], 409);
    assert_eq!(r["message"], "Version conflict");
    assert_eq!(r["clientToken"], "426bfd96-e720-46d3-95cd-014e3ef12bb6");
    let o = update(
        &mut svc,
        json!({"state": {"desired": {"colors": ["BLUE"]}}, "version": 10}),
        3,
    );
    assert_eq!(body(&o, "/update/accepted")["version"], 11);
    let key = ShadowKey {
        thing: "t".into(),
        name: None,
    };
    let doc = svc.document(&key, None, 4).unwrap();
    assert_eq!(doc.state.desired, Some(json!({"colors": ["BLUE"]})));
}

#[test]
fn null_deletes_and_desired_null_clears_the_section() {
    let mut svc = ShadowService::new();
    update(
        &mut svc,
        json!({"state": {"desired": {"engine": "ON", "x": 1}}}),
        1,
    );
    let o = update(&mut svc, json!({"state": {"desired": {"engine": null}}}), 2);
    assert_eq!(
        body(&o, "/update/accepted")["state"]["desired"],
        json!({"engine": null})
    );
    let o = update(
        &mut svc,
        json!({"state": {"reported": {"color": "red"}, "desired": null}}),
        3,
    );
    assert_eq!(
        body(&o, "/update/accepted")["state"]["desired"],
        Value::Null
    );
    let key = ShadowKey {
        thing: "t".into(),
        name: None,
    };
    let doc = svc.document(&key, None, 4).unwrap();
    assert_eq!(doc.state.desired, None);
    assert_eq!(doc.state.reported, Some(json!({"color": "red"})));
}

#[test]
fn delete_keeps_the_version_and_404s_after() {
    let mut svc = ShadowService::new();
    update(&mut svc, json!({"state": {"reported": {"a": 1}}}), 1);
    update(&mut svc, json!({"state": {"reported": {"a": 2}}}), 2);
    let o = svc.handle(
        &topic("$aws/things/t/shadow/delete"),
        br#"{"clientToken":"d"}"#,
        3,
    );
    let b = body(&o, "/delete/accepted");
    assert_eq!(
        (b["version"].as_u64(), b["clientToken"].as_str()),
        (Some(2), Some("d"))
    );
    let o = svc.handle(&topic("$aws/things/t/shadow/delete"), b"", 4);
    assert_eq!(body(&o, "/delete/rejected")["code"], 404);
    let o = update(&mut svc, json!({"state": {"reported": {"a": 3}}}), 5);
    assert_eq!(body(&o, "/update/accepted")["version"], 3);
}

#[test]
fn rejected_updates_change_nothing() {
    let mut svc = ShadowService::new();
    let o = update(
        &mut svc,
        json!({"state": {"desired": {"colors": [null, "RED", "GREEN"]}}}),
        1,
    );
    assert_eq!(body(&o, "/update/rejected")["code"], 400);
    assert!(svc.is_empty());
    let big = "z".repeat(5000);
    update(&mut svc, json!({"state": {"reported": {"a": big}}}), 1);
    let o = update(&mut svc, json!({"state": {"desired": {"b": big}}}), 2);
    assert_eq!(body(&o, "/update/rejected")["code"], 413);
    assert_eq!(
        svc.version(&ShadowKey {
            thing: "t".into(),
            name: None
        }),
        1
    );
}

#[test]
fn response_topics_are_ignored() {
    let mut svc = ShadowService::new();
    let o = svc.handle(&topic("$aws/things/t/shadow/update/accepted"), b"{}", 1);
    assert_eq!(o.effect, Effect::Ignored);
    assert!(o.messages.is_empty());
}

fn arb_json(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "[a-z]{0,5}".prop_map(Value::from),
    ];
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            proptest::collection::btree_map("[a-c]", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn hostile_requests_never_panic_and_answer_once(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        op in prop_oneof![Just("get"), Just("update"), Just("delete")],
    ) {
        let mut svc = ShadowService::new();
        let o = svc.handle(&topic(&format!("$aws/things/t/shadow/{op}")), &bytes, 1);
        prop_assert!(!o.messages.is_empty());
    }

    #[test]
    fn any_accepted_update_leaves_no_delta_once_reported_equals_desired(
        desired in arb_json(4), reported in arb_json(4),
    ) {
        let mut svc = ShadowService::new();
        let d = update(&mut svc, json!({"state": {"desired": desired, "reported": reported}}), 1);
        if matches!(d.effect, Effect::Updated { .. }) {
            let key = ShadowKey { thing: "t".into(), name: None };
            let doc = svc.document(&key, None, 2).unwrap();
            let want = doc.state.desired.clone().unwrap_or(json!({}));
            update(&mut svc, json!({"state": {"reported": want}}), 3);
            let doc = svc.document(&key, None, 4).unwrap();
            prop_assert_eq!(doc.state.delta, None);
        }
    }
}
