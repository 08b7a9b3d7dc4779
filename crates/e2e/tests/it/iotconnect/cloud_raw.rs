//! The cloud side from documented bytes, without the agent: discovery and sync over HTTPS with
//! the SDK's request bodies, and raw MQTT clients publishing the documented D2C shapes, acks and
//! SDK-style twin requests.

use std::time::Duration;

use iotconnect::cloud::admin::{self, Request};
use iotconnect::protocol::v1::c2d::C2d;
use serde_json::{Value, json};
use transport::tls::TlsOptions;
use transport::{Message, Qos};

use super::common::{Cloud, WAIT, wait_for};

fn vector(name: &str) -> Value {
    serde_json::from_slice::<Value>(&crate::vector("iotconnect", name)).unwrap()["payload"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_sync_answer_the_sdk_requests() {
    let c = Cloud::start(None).await;
    let http = transport::http::client(
        &TlsOptions {
            ca_files: vec![c.sim.pki().ca.clone()],
            ..TlsOptions::default()
        },
        Duration::from_secs(5),
    )
    .unwrap();
    let base = c.base();
    let d: Value = http
        .get(format!(
            "{base}/api/sdk/cpid/EDGEWIRE/lang/M_PYTHON/ver/2.0/env/DEV"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let base_url = d["baseUrl"].as_str().unwrap().to_owned();
    assert_eq!(base_url, format!("{base}/api/2.0/agent/"));
    let missing = http
        .get(format!(
            "{base}/api/sdk/cpid/NOPE/lang/M_PYTHON/ver/2.0/env/DEV"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let mut req = vector("sync_request.json");
    req["uniqueId"] = json!("iotc-gateway-01");
    req["cpId"] = json!("EDGEWIRE");
    let s: Value = http
        .post(format!("{base_url}sync"))
        .json(&req)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let d = &s["d"];
    assert_eq!(
        (d["rc"].as_i64(), d["at"].as_i64(), d["ee"].as_i64()),
        (Some(0), Some(2), Some(0))
    );
    assert_eq!(d["dtg"], "9b3c1f2e-5d7a-4e11-8f0a-0c6e2d1b7a41");
    assert_eq!(
        d["d"],
        json!([{"id":"iotc-gateway-01","tg":"gw"},{"id":"iotc-child-01","tg":"sensor"},{"id":"iotc-child-02","tg":"sensor"}])
    );
    assert_eq!(d["sc"]["df"], 2);
    assert_eq!(d["p"]["pub"], "devices/iotc-gateway-01/messages/events/");
    let mtls = url::Url::parse(&c.listener("mtls").url).unwrap();
    assert_eq!(d["p"]["p"].as_u64(), mtls.port().map(u64::from));
    assert_eq!(d["att"].as_array().unwrap().len(), 2);

    req["option"] = json!({"attribute": true});
    let s: Value = http
        .post(format!("{base_url}sync"))
        .json(&req)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        s["d"].get("att").is_some() && s["d"].get("p").is_none(),
        "{s}"
    );
    req["cpId"] = json!("OTHER");
    let s: Value = http
        .post(format!("{base_url}sync"))
        .json(&req)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["d"]["rc"], 6);
    req["cpId"] = json!("EDGEWIRE");
    req["uniqueId"] = json!("nobody");
    let s: Value = http
        .post(format!("{base_url}sync"))
        .json(&req)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["d"]["rc"], 3);
    let sas_req = json!({"uniqueId":"iotc-sas-01","cpId":"EDGEWIRE","option":{"protocol":true}});
    let sas: Value = http
        .post(format!("{base_url}sync"))
        .json(&sas_req)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        sas["d"]["p"]["pwd"]
            .as_str()
            .unwrap()
            .starts_with("SharedAccessSignature sr="),
        "{sas}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_d2c_messages_are_recorded_and_checked() {
    let c = Cloud::start(None).await;
    let (raw, mut incoming) = c.raw_client().await;
    raw.subscribe(&[
        ("$iothub/twin/res/#".to_owned(), Qos::AtLeastOnce),
        (
            "devices/iotc-gateway-01/messages/devicebound/#".to_owned(),
            Qos::AtLeastOnce,
        ),
    ])
    .await
    .unwrap();
    let topic = "devices/iotc-gateway-01/messages/events/";
    let mut t = vector("d2c_telemetry.json");
    t["cpId"] = json!("EDGEWIRE");
    t["d"][0]["id"] = json!("iotc-gateway-01");
    t["d"][0]["d"] = json!([{"temperature": 21.5, "gyroscope": {"x": -1.2}}]);
    raw.publish(Message::new(topic, t.to_string()))
        .await
        .unwrap()
        .confirmed()
        .await
        .unwrap();
    let mut wrong = t.clone();
    wrong["dtg"] = json!("another-template");
    raw.publish(Message::new(topic, wrong.to_string()))
        .await
        .unwrap()
        .confirmed()
        .await
        .unwrap();
    let mut stranger = t.clone();
    stranger["d"][0]["id"] = json!("iotc-edge-01");
    raw.publish(Message::new(topic, stranger.to_string()))
        .await
        .unwrap()
        .confirmed()
        .await
        .unwrap();
    raw.publish(Message::new(topic, "not json"))
        .await
        .unwrap()
        .confirmed()
        .await
        .unwrap();
    wait_for("three rejections", || c.report().get("rejected") == 3).await;
    let r = c.report();
    assert_eq!(r.get("values:iotc-gateway-01"), 2, "{r:?}");
    assert!(
        r.recent.iter().any(|n| n.contains("another-template")),
        "{r:?}"
    );

    // A command sent by the platform, acknowledged with the seed's ack shape by a raw client.
    let mut o = c.listener("plain").session_options().unwrap();
    o.client_id = "test-admin".into();
    let req = Request::Command {
        unique_id: "iotc-gateway-01".into(),
        command: "blink 3".into(),
    };
    let waiter = tokio::spawn(async move { admin::send(o, &req, WAIT).await });
    let cmd = loop {
        let m = tokio::time::timeout(WAIT, incoming.recv())
            .await
            .unwrap()
            .unwrap();
        if m.topic.contains("devicebound") {
            break m;
        }
    };
    let C2d::Command(command) = C2d::parse(&cmd.payload).unwrap() else {
        panic!("not a command")
    };
    assert_eq!(command.command, "blink 3");
    let mut ack = vector("d2c_ack_ota_child.json");
    ack["cpId"] = json!("EDGEWIRE");
    ack["uniqueId"] = json!("iotc-gateway-01");
    ack["mt"] = json!(5);
    ack["d"] = json!({"ackId": command.ack_id.unwrap(), "st": 6, "msg": "", "childId": ""});
    raw.publish(Message::new(topic, ack.to_string()))
        .await
        .unwrap();
    let (_, acks) = waiter.await.unwrap().unwrap();
    assert_eq!(acks[0].st, 6);
    ack["d"]["ackId"] = json!("never-sent");
    raw.publish(Message::new(topic, ack.to_string()))
        .await
        .unwrap();
    wait_for("the unknown ack", || c.report().get("acks_unknown") == 1).await;

    // The SDK's twin requests ($rid=1 / $rid=0) are attributed to the first device.
    raw.publish(Message::new(
        "$iothub/twin/PATCH/properties/reported/?$rid=1",
        r#"{"firmware":"2.0"}"#,
    ))
    .await
    .unwrap();
    raw.publish(Message::new("$iothub/twin/GET/?$rid=0", ""))
        .await
        .unwrap();
    let got = loop {
        let m = tokio::time::timeout(WAIT, incoming.recv())
            .await
            .unwrap()
            .unwrap();
        if m.topic.starts_with("$iothub/twin/res/200/") {
            break m;
        }
    };
    assert!(got.topic.contains("$rid=0"), "{}", got.topic);
    let twin: Value = serde_json::from_slice(&got.payload).unwrap();
    assert_eq!(twin["reported"]["firmware"], "2.0");
    raw.close(Duration::from_secs(1)).await;
}
