//! Tests of the platform side's pure handler and HTTPS functions.

use super::*;
use crate::cloud::http;
use crate::protocol::model::JobReply;
use crate::protocol::template::{Kind, builtin};
use crate::protocol::token::TokenReply;
use proptest::prelude::*;
use serde_json::json;

const T: &str = "tc/t/t_a";

fn state() -> CloudState {
    CloudState::new(Signer::new(b"k"), Duration::from_secs(3600))
}

fn now() -> time::OffsetDateTime {
    time::macros::datetime!(2024-01-01 00:00 UTC)
}

fn model_payload(tenant: &str) -> Vec<u8> {
    builtin(Kind::Model)
        .replace("<tenantId>", tenant)
        .replace("<uuid>", "m1")
        .into_bytes()
}

fn instance_payload(id: &str) -> Vec<u8> {
    builtin(Kind::Instance)
        .replace("<model_name>", "JetPumpModel")
        .replace("<uuid>", id)
        .into_bytes()
}

fn replies(out: &[Message]) -> Vec<(String, JobReply)> {
    out.iter()
        .map(|m| {
            (
                m.topic.clone(),
                decode::<JobReply>("r", &m.payload).unwrap(),
            )
        })
        .collect()
}

fn set_up(s: &mut CloudState) {
    handle(s, &format!("{T}/o/amo_v3/m"), &model_payload("t"), now());
    handle(
        s,
        &format!("{T}/o/amo_v3/i"),
        &instance_payload("i1"),
        now(),
    );
}

#[test]
fn a_model_is_answered_in_progress_then_success() {
    let mut s = state();
    let r = replies(&handle(
        &mut s,
        &format!("{T}/o/amo_v3/m"),
        &model_payload("t"),
        now(),
    ));
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].0, "tc/t/t_a/i/amo_v3/ms");
    assert_eq!(
        (r[0].1.data.status.clone(), r[1].1.data.status.clone()),
        (Status::InProgress, Status::Success)
    );
    assert_eq!(r[1].1.request_id.as_deref(), Some("m1"));
    assert_eq!(s.report.get("models_accepted"), 1);
}

#[test]
fn a_model_for_another_tenant_fails_with_errors() {
    let mut s = state();
    let r = replies(&handle(
        &mut s,
        &format!("{T}/o/amo_v3/m"),
        &model_payload("x"),
        now(),
    ));
    assert_eq!(r[1].1.data.status, Status::Failed);
    assert!(
        r[1].1
            .data
            .errors
            .iter()
            .any(|e| e.message.contains("tenant prefix `t.`")),
        "{:?}",
        r[1].1.data.errors
    );
}

#[test]
fn instantiation_maps_data_points_once() {
    let mut s = state();
    set_up(&mut s);
    assert_eq!(s.report.get("instantiations_succeeded"), 1);
    let a = &s.agents["t_a"];
    assert_eq!(
        a.assets.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
        ["JetPumpModel", "Accumulator", "Reservoir"]
    );
    assert_eq!(a.assets[0].parent_id.as_deref(), Some(a.asset_id.as_str()));
    assert_eq!(a.mappings["temperature"][0].data_type, "DOUBLE");
    let r = replies(&handle(
        &mut s,
        &format!("{T}/o/amo_v3/i"),
        &instance_payload("i2"),
        now(),
    ));
    assert_eq!(
        r[1].1.data.status,
        Status::Failed,
        "a second instantiation duplicates asset names"
    );
    assert!(
        r[1].1.data.errors[0]
            .message
            .contains("`JetPumpModel` already exists")
    );
}

#[test]
fn instantiating_an_unknown_model_fails_and_says_so() {
    let mut s = state();
    let r = replies(&handle(
        &mut s,
        &format!("{T}/o/amo_v3/i"),
        &instance_payload("i1"),
        now(),
    ));
    assert_eq!(r[1].0, "tc/t/t_a/i/amo_v3/ip");
    assert!(
        r[1].1.data.errors[0]
            .message
            .contains("model `JetPumpModel` does not exist")
    );
}

#[test]
fn only_mapped_data_points_are_recorded() {
    let mut s = state();
    let ts = json!({"timeseries":[{"timestamp":"2024-01-01T00:00:00.000Z","values":[
        {"dataPointId":"temperature","value":"31","qualityCode":"0"},
        {"dataPointId":"pressure","value":"2","qualityCode":"0"},
        {"dataPointId":"humidity","value":"wet","qualityCode":"0"}]}]});
    handle(&mut s, &format!("{T}/o/mc_v3/ts"), &encode(&ts), now());
    assert_eq!(
        (
            s.report.get("timeseries_values"),
            s.report.get("unmapped_values")
        ),
        (0, 3),
        "nothing is mapped before instantiation"
    );
    set_up(&mut s);
    handle(&mut s, &format!("{T}/o/mc_v3/ts"), &encode(&ts), now());
    assert_eq!(s.report.get("timeseries_values"), 1);
    assert_eq!(s.report.get("invalid_values"), 1);
    assert_eq!(s.report.get("unmapped:t_a/pressure"), 2);
    assert!(s.report.recent.iter().any(|n| n.contains("`pressure`")));
}

#[test]
fn events_and_files_are_checked() {
    let mut s = state();
    let ev = |sev: &str, t: &str| {
        encode(
            &json!({"events":[{"id":"e","timestamp":"2024-01-01T00:00:00.000Z","severity":sev,"type":t,"details":{"utilizedPercentage":60}}]}),
        )
    };
    handle(
        &mut s,
        &format!("{T}/o/mc_v3/e"),
        &ev("20", "SensorInterruptEvent"),
        now(),
    );
    handle(
        &mut s,
        &format!("{T}/o/mc_v3/e"),
        &ev("25", "SensorInterruptEvent"),
        now(),
    );
    handle(
        &mut s,
        &format!("{T}/o/mc_v3/e"),
        &ev("30", "Unregistered"),
        now(),
    );
    assert_eq!(
        (s.report.get("events"), s.report.get("events_rejected")),
        (1, 2)
    );
    let good = crate::protocol::file::FileMessage::new(
        "log".into(),
        "2024-01-01T00:00:00.000Z".into(),
        b"hello",
    );
    handle(&mut s, &format!("{T}/o/mc_v3/f"), &encode(&good), now());
    let mut cut = good.clone();
    cut.file.content.truncate(cut.file.content.len() - 2);
    handle(&mut s, &format!("{T}/o/mc_v3/f"), &encode(&cut), now());
    assert_eq!(
        (
            s.report.get("files"),
            s.report.get("files_rejected"),
            s.report.get("file_bytes")
        ),
        (1, 1, 5)
    );
    assert_eq!(s.agents["t_a"].files[0].content, b"hello");
}

#[test]
fn tokens_are_signed_and_open_the_https_endpoints() {
    let mut s = state();
    let out = handle(&mut s, &format!("{T}/o/agm_v3/t"), br#"{"id":"r1"}"#, now());
    assert_eq!(out[0].topic, "tc/t/t_a/i/agm_v3/tr");
    let r: TokenReply = decode("t", &out[0].payload).unwrap();
    assert_eq!(
        (r.request_id.as_deref(), r.data.expires_in),
        (Some("r1"), Some(3600))
    );
    let t0 = now().unix_timestamp();
    let claims = s.signer.verify(&r.data.access_token, t0).unwrap();
    assert_eq!((claims.sub.as_str(), claims.ten.as_str()), ("t_a", "t"));
    let page = http::assets(&mut s, &claims, Some(r#"{"externalId":"t_a"}"#)).unwrap();
    let asset = page.embedded.assets[0].asset_id.clone();
    assert!(
        http::assets(&mut s, &claims, Some(r#"{"externalId":"t_b"}"#))
            .unwrap()
            .embedded
            .assets
            .is_empty()
    );
    let body = encode(&json!({"paths":[{"path": format!("{asset}/a.obj")}]}));
    let urls = http::upload_urls(&mut s, &claims, &body, "localhost:1", t0).unwrap();
    let ticket = urls.object_urls[0]
        .signed_url
        .split('/')
        .next_back()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    http::upload(&mut s, &ticket, b"abc", t0).unwrap();
    assert!(
        http::upload(&mut s, &ticket, b"abc", t0).is_err(),
        "a signed URL works once"
    );
    assert_eq!(s.agents["t_a"].objects[&format!("/{asset}/a.obj")], 3);
    let outside =
        encode(&json!({"paths":[{"path": "other/a.obj"}, {"path": format!("{asset}/../x")}]}));
    assert_eq!(
        http::upload_urls(&mut s, &claims, &outside, "h", t0)
            .unwrap_err()
            .status,
        axum::http::StatusCode::FORBIDDEN
    );
    assert!(s.signer.verify(&r.data.access_token, t0 + 3600).is_err());
}

#[test]
fn command_statuses_are_matched_to_delivered_jobs() {
    let mut s = state();
    let (msg, rid) = super::super::MindConnectCloud::command(
        "t",
        "t_a",
        "job1",
        json!({"commandType":"light_control"})
            .as_object()
            .cloned()
            .unwrap(),
        now(),
    )
    .unwrap();
    handle(&mut s, &msg.topic, &msg.payload, now());
    let st = |status: &str, rid: &str| {
        encode(
            &json!({"id":"x","requestId":rid,"data":{"timestamp":"t","jobId":"job1","status":status,"response":{}}}),
        )
    };
    handle(
        &mut s,
        &format!("{T}/o/cmd_v3/u"),
        &st("EXECUTING", &rid),
        now(),
    );
    handle(
        &mut s,
        &format!("{T}/o/cmd_v3/u"),
        &st("EXECUTED", &rid),
        now(),
    );
    handle(
        &mut s,
        &format!("{T}/o/cmd_v3/u"),
        &st("EXECUTED", "unknown"),
        now(),
    );
    assert_eq!(s.jobs[&rid].statuses, ["EXECUTING", "EXECUTED"]);
    assert_eq!(
        (
            s.report.get("commands_sent"),
            s.report.get("commands_executed"),
            s.report.get("command_status_unknown")
        ),
        (1, 1, 1)
    );
}

#[test]
fn documented_vectors_get_documented_answers() {
    // The raw bytes of crates/mindconnect/tests/vectors/ (copied from the protocol notes).
    let mut s = state();
    let out = handle(
        &mut s,
        "tc/tenantid/tenantid_mqttagent/o/agm_v3/t",
        br#"{"id":"request1"}"#,
        now(),
    );
    assert_eq!(
        decode::<TokenReply>("t", &out[0].payload)
            .unwrap()
            .request_id
            .as_deref(),
        Some("request1")
    );
}

proptest! {
    #[test]
    fn hostile_input_never_panics(bytes in crate::protocol::envelope::strategies::hostile(), leaf in 0usize..11) {
        let mut s = state();
        set_up(&mut s);
        let ch = Channel::ALL[leaf];
        let _ = handle(&mut s, &format!("{T}/{}", ch.suffix()), &bytes, now());
        let _ = handle(&mut s, "tc/t", &bytes, now());
    }
}
