//! Message 2.1 end to end against iot-sim, on Azure and on AWS: discovery and identity over
//! HTTPS, topics taken from the identity answer (the sim's AWS topics carry the `cd` segment,
//! so formatting them would fail), attributes and children fetched with `{"mt":20x}` and
//! answered on `c2d`, `rpt`/`flt` split, commands and OTA acknowledged the 2.1 way, heartbeat
//! 110/111, an unknown `ct` ignored, and 106-109 stopping the device. Also the lite SDK's
//! `iotcDeviceConfig.json` with `--cert`/`--key`.

use std::time::Duration;

use iotconnect::agent::setup::setup;
use iotconnect::agent::{Collect, Event, RunOptions, RunOutcome};
use iotconnect::cloud::admin::{OtaFile, Request};
use serde_json::{Value, json};

use super::common::{Cloud, Running, WAIT, admin_send as admin, flags, wait_for};

const GW: &str = "iotc-gateway-01";

fn raw(c: &Cloud, message: Value) -> Request {
    let _ = c;
    Request::Message21 {
        unique_id: GW.into(),
        message,
    }
}

async fn gateway(c: &Cloud, pf: &str) -> Running {
    let dir = tempfile::tempdir().unwrap().keep();
    let a = Running::start(
        c.config(GW, json!({"protocol": "2.1", "platform": pf})),
        &flags(None, vec![]),
        Some(Duration::ZERO),
        None,
        RunOptions {
            auto_ack: true,
            ota_dir: Some(dir),
            ota_max_bytes: 1 << 20,
            ..RunOptions::default()
        },
    )
    .await;
    for what in ["attributes", "children"] {
        a.wait_event(
            what,
            |e| matches!(e, Event::Resynced { scope } if scope == what),
        )
        .await;
    }
    a
}

async fn telemetry_commands_ota(c: &Cloud, a: &Running) {
    a.send(r#"[{"uniqueId":"iotc-gateway-01","data":{"temperature":21.5,"status":"ok","gyroscope":{"x":1.5,"y":-2}}},
               {"uniqueId":"iotc-child-01","data":{"humidity":40.5,"battery":90}},
               {"uniqueId":"iotc-child-02","data":{"humidity":150,"battery":"low"}}]"#)
        .await;
    wait_for("reporting and faulty messages", || {
        let r = c.report();
        r.get("telemetry_messages") == 1 && r.get("faulty_messages") == 1
    })
    .await;
    let r = c.report();
    assert_eq!(r.get("values:iotc-gateway-01"), 4, "{r:?}");
    assert_eq!(r.get("values:iotc-child-01"), 2, "{r:?}");
    assert_eq!(r.get("faulty:iotc-child-02"), 2, "{r:?}");
    assert_eq!(r.get("rejected") + r.get("rpt_invalid"), 0, "{r:?}");
    assert_eq!(r.get("sync"), 0, "2.1 never calls sync");

    let (sent, acks) = admin(
        c,
        Request::Command {
            unique_id: "iotc-child-01".into(),
            command: "reboot".into(),
        },
    )
    .await;
    assert_eq!(sent.cmd_type, "0");
    assert_eq!((acks[0].st, acks[0].mt), (2, 5), "type 0, st 2: {acks:?}");

    let urls = vec![OtaFile {
        url: format!("{}/ota/fw-2.bin", c.base()),
        tag: None,
        unique_id: None,
    }];
    let (_, acks) = admin(
        c,
        Request::Ota {
            unique_id: GW.into(),
            sw: "2.0".into(),
            hw: "1".into(),
            urls,
        },
    )
    .await;
    let st: Vec<u8> = acks.iter().map(|a| a.st).collect();
    assert_eq!(st, [2, 3], "downloading, then done: {acks:?}");
    let r = c.report();
    assert_eq!(
        (
            r.get("acks_command_ok"),
            r.get("acks_ota_downloading"),
            r.get("acks_ota_ok")
        ),
        (1, 1, 1),
        "{r:?}"
    );
}

async fn heartbeat_unknown_and_stop(c: &Cloud, a: Running) {
    admin(c, raw(c, json!({"v": "2.1", "ct": 110, "f": 1}))).await;
    wait_for("two heartbeats", || c.report().get("heartbeats") >= 2).await;
    admin(c, raw(c, json!({"v": 2.1, "ct": 111}))).await;
    a.wait_event("heartbeat stopped", |e| {
        matches!(e, Event::Heartbeat { every_secs: None })
    })
    .await;
    admin(c, raw(c, json!({"v": "2.1", "ct": 999}))).await;
    a.wait_event(
        "unknown ct logged",
        |e| matches!(e, Event::Warning { message } if message.contains("unknown ct 999")),
    )
    .await;
    admin(c, raw(c, json!({"v": "2.1", "ct": 107}))).await;
    assert_eq!(a.join().await.unwrap(), RunOutcome::Barred);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_gateway_speaks_2_1_end_to_end() {
    let c = Cloud::start(None).await;
    let a = gateway(&c, "az").await;
    assert_eq!(c.report().get("identity_az"), 1);
    assert!(a.events().iter().any(|e| matches!(
        e,
        Event::Subscribed { filters } if filters.contains(&format!("devices/{GW}/messages/devicebound/#"))
    )));
    telemetry_commands_ota(&c, &a).await;
    heartbeat_unknown_and_stop(&c, a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_gateway_speaks_2_1_end_to_end() {
    let c = Cloud::start(None).await;
    let a = gateway(&c, "aws").await;
    assert_eq!(c.report().get("identity_aws"), 1);
    assert!(a.events().iter().any(|e| matches!(
        e,
        Event::Published { topic, .. } if topic.starts_with("$aws/rules/msg_d2c_di/iotc-gateway-01/EDGEW21/2.1/")
    )));
    telemetry_commands_ota(&c, &a).await;
    heartbeat_unknown_and_stop(&c, a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lite_sdk_config_file_with_cert_and_key_flags() {
    let c = Cloud::start(None).await;
    let pair = c.sim.pki().client(GW).unwrap();
    let path = c.dir.path().join("iotcDeviceConfig.json");
    std::fs::write(
        &path,
        json!({"ver": "2.1", "pf": "az", "cpid": "EDGEWIRE", "env": "DEV", "uid": GW,
               "did": format!("EDGEWIRE-{GW}"), "at": 2, "disc": c.base()})
        .to_string(),
    )
    .unwrap();
    let config = iotconnect::config::Config::load(&path).unwrap();
    let mut f = flags(None, vec![c.sim.pki().ca.clone()]);
    f.tls.client_cert = Some(pair.cert.clone());
    f.tls.client_key = Some(pair.key.clone());
    let events = std::sync::Arc::new(Collect::default());
    let s = setup(
        config,
        &f,
        Some(Duration::ZERO),
        Duration::from_secs(10),
        events.as_ref(),
    )
    .await
    .unwrap();
    let (mut agent, _, _) = s.connect(&f, None, events.clone()).await.unwrap();
    agent.identify(WAIT).await.unwrap();
    let records = iotconnect::protocol::input::parse_line(
        1,
        r#"[{"uniqueId":"iotc-gateway-01","data":{"temperature":20,"status":"bad"}}]"#,
    )
    .unwrap()
    .unwrap();
    let rest = agent.send_data(&records, WAIT).await.unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    agent.close(Duration::from_secs(2)).await;
    let r = c.report();
    assert_eq!(
        (r.get("telemetry_messages"), r.get("faulty_messages")),
        (1, 1),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_codes_are_sentences() {
    let c = Cloud::start(None).await;
    let e = setup(
        c.config("no-such-device", json!({"protocol": "2.1"})),
        &flags(None, vec![]),
        None,
        Duration::from_secs(10),
        &Collect::default(),
    )
    .await
    .err()
    .expect("an unknown device is refused");
    assert_eq!(
        e.to_string(),
        "identity answered ec 1: the device was not found or is not whitelisted (device `no-such-device`)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_children_are_created_and_deleted_with_ec_sentences() {
    let c = Cloud::start(None).await;
    let f = flags(None, vec![]);
    let events = std::sync::Arc::new(Collect::default());
    let s = setup(
        c.config(GW, json!({"protocol": "2.1"})),
        &f,
        None,
        Duration::from_secs(10),
        events.as_ref(),
    )
    .await
    .unwrap();
    let (mut agent, _, _) = s.connect(&f, None, events.clone()).await.unwrap();
    let ok = agent
        .child(Some(("Child three", "sensor")), "iotc-child-03", WAIT)
        .await
        .unwrap();
    assert_eq!(ok, "child created");
    let e = agent
        .child(Some(("Bad", "gw")), "iotc-child-04", WAIT)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "child create answered ec 7: the tag is the gateway's own tag (device `iotc-child-04`)"
    );
    assert_eq!(
        agent.child(None, "iotc-child-03", WAIT).await.unwrap(),
        "child deleted"
    );
    agent.close(Duration::from_secs(1)).await;
    let r = c.report();
    assert_eq!(
        (r.get("identity_request_221"), r.get("identity_request_222")),
        (2, 1),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_device_sends_2_1_aggregates_and_rule_matches_and_follows_df() {
    let c = Cloud::start(None).await;
    let a = Running::start(
        c.config(
            "iotc-edge-01",
            json!({"protocol": "2.1", "platform": "aws"}),
        ),
        &flags(None, vec![]),
        None,
        None,
        RunOptions::default(),
    )
    .await;
    for what in ["attributes", "rules"] {
        a.wait_event(
            what,
            |e| matches!(e, Event::Resynced { scope } if scope == what),
        )
        .await;
    }
    for (t, p) in [(10, 1.5), (30, 2.5), (90, 2.0)] {
        a.send(&format!(
            r#"[{{"uniqueId":"iotc-edge-01","data":{{"temperature":{t},"pressure":{p}}}}}]"#
        ))
        .await;
    }
    a.wait_event("the rule's command", |e| {
        matches!(e, Event::Command { cmd_type, command, .. } if cmd_type == "rule" && command == "fan on")
    })
    .await;
    let aggregates = || -> Vec<Value> {
        c.report()
            .recent
            .iter()
            .filter_map(|n| n.strip_prefix("edge iotc-edge-01 "))
            .map(|j| serde_json::from_str(j).unwrap())
            .collect()
    };
    wait_for("all values aggregated", || {
        aggregates()
            .iter()
            .filter_map(|v| v["temperature"][4].as_u64())
            .sum::<u64>()
            == 3
    })
    .await;
    assert!(
        aggregates()
            .iter()
            .all(|v| v["pressure"].as_array().is_some_and(|p| p.len() == 6)),
        "2.1 aggregates carry all six values: {:?}",
        aggregates()
    );
    assert!(a.events().iter().any(|e| matches!(
        e,
        Event::Published { topic, kind, .. } if kind == "edge" && topic.starts_with("$aws/rules/msg_d2c_erpt/")
    )));
    let r = c.report();
    assert_eq!(
        (r.get("v21_erm"), r.get("rule_matches"), r.get("rejected")),
        (1, 1, 0),
        "{r:?}"
    );
    // ct 105: a new data frequency.
    admin(
        &c,
        Request::Message21 {
            unique_id: "iotc-edge-01".into(),
            message: json!({"v": "2.1", "ct": 105, "df": 7}),
        },
    )
    .await;
    a.wait_event("df 7", |e| matches!(e, Event::DfChanged { df: 7 }))
        .await;
    a.stop().await.unwrap();
}
