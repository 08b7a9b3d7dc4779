//! The agent against a real mosquitto: discovery and sync from iot-sim's HTTPS endpoints (its
//! cloud side running on mosquitto), X.509 on mosquitto's client-certificate listener, telemetry
//! end to end; then the broker stops, readings go to the offline store (capped by
//! `offlineStorage`), and after the restart they are replayed marked `"od": 1`.

use std::time::Duration;

use iotconnect::agent::{Event, RunOptions};
use iotconnect::cloud::admin::{self, Request};
use serde_json::json;
use testkit::{Broker, BrokerOpts};

use super::common::{Cloud, Running, WAIT, flags, wait_for};

const GW: &str = "iotc-gateway-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_readings_are_replayed_with_od_after_the_broker_returns() {
    let mut broker =
        tokio::task::block_in_place(|| Broker::start(BrokerOpts::new().persistence(true)));
    // The cloud side keeps a persistent session, so what arrives while it reconnects is queued.
    let mut cloud_opts = transport::SessionOptions::new(broker.url_plain().parse().unwrap());
    cloud_opts.clean_session = false;
    cloud_opts.backoff_max = Duration::from_millis(500);
    let c = Cloud::start(Some(cloud_opts)).await;
    c.side.set_broker(Some(&broker.url_mtls()), None);
    let cert = tokio::task::block_in_place(|| broker.pki().client(GW));
    let offline = tempfile::tempdir().unwrap();
    let cfg = c.config(
        GW,
        json!({"sdkOptions": {
            "certificate": {"SSLCertPath": cert.cert, "SSLKeyPath": cert.key},
            "offlineStorage": {"disabled": false, "availSpaceInMb": 1, "fileCount": 4}
        }}),
    );
    // One trust list for both: iot-sim's CA (HTTPS) and mosquitto's (MQTT).
    let f = flags(None, vec![c.sim.pki().ca.clone(), broker.pki().ca_cert()]);
    let opts = RunOptions {
        twin: vec![("firmware".into(), json!("1.0"))],
        auto_ack: true,
        ..RunOptions::default()
    };
    let a = Running::start(cfg, &f, Some(Duration::ZERO), Some(offline.path()), opts).await;
    a.wait_event("subscribed", |e| matches!(e, Event::Subscribed { .. }))
        .await;
    let line = |t: u32| {
        format!(
            r#"[{{"uniqueId":"iotc-gateway-01","data":{{"temperature":{t}}}}},{{"uniqueId":"iotc-child-01","data":{{"battery":{t}}}}}]"#
        )
    };
    for t in [1, 2] {
        a.send(&line(t)).await;
    }
    wait_for("two online readings", || {
        c.report().get("telemetry_messages") == 2
    })
    .await;
    // Twin (`$iothub/...` topics) and a command with its acknowledgement through mosquitto.
    a.wait_event(
        "the full twin",
        |e| matches!(e, Event::Twin { twin } if twin["reported"]["firmware"] == "1.0"),
    )
    .await;
    let mut admin_opts = transport::SessionOptions::new(broker.url_plain().parse().unwrap());
    admin_opts.client_id = "test-admin-mosquitto".into();
    let req = Request::Command {
        unique_id: "iotc-child-02".into(),
        command: "calibrate".into(),
    };
    let (_, acks) = admin::send(admin_opts, &req, WAIT).await.unwrap();
    assert_eq!((acks[0].mt, acks[0].st), (5, 6));

    tokio::task::block_in_place(|| broker.stop());
    a.wait_event("the disconnect", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    a.wait_event(
        "0x16 False",
        |e| matches!(e, Event::ConnectionStatus { data } if data["command"] == "False"),
    )
    .await;
    for t in [3, 4, 5] {
        a.send(&line(t)).await;
    }
    let offline_sent = || {
        a.count(
            |e| matches!(e, Event::Published { offline: true, kind, .. } if kind == "reporting"),
        )
    };
    wait_for("three offline readings", || offline_sent() >= 3).await;
    assert_eq!(offline_sent(), 3, "{:#?}", a.events());
    assert!(std::fs::read_dir(offline.path()).unwrap().count() > 0);

    tokio::task::block_in_place(|| broker.restart());
    wait_for("the replay", || c.report().get("offline_messages") == 3).await;
    let r = c.report();
    assert_eq!(r.get("telemetry_messages"), 5, "{r:?}");
    assert_eq!(r.get("values:iotc-child-01"), 5, "{r:?}");
    assert_eq!(r.get("rejected"), 0, "{r:?}");
    a.wait_event("0x16 True again", |e| {
        matches!(e, Event::Connected { connection: 2 })
    })
    .await;
    a.stop().await.unwrap();
}

/// Message 2.1 on AWS's topics (`$aws/rules/...`, `iot/{id}/cmd`) through mosquitto: identity,
/// attributes and children over `di`, telemetry, a command acknowledged the 2.1 way; then the
/// broker stops, readings are stored, and after the restart they arrive on the `od` topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v21_on_aws_topics_replays_offline_readings_on_od() {
    let mut broker =
        tokio::task::block_in_place(|| Broker::start(BrokerOpts::new().persistence(true)));
    let mut cloud_opts = transport::SessionOptions::new(broker.url_plain().parse().unwrap());
    cloud_opts.clean_session = false;
    cloud_opts.backoff_max = Duration::from_millis(500);
    let c = Cloud::start(Some(cloud_opts)).await;
    c.side.set_broker(Some(&broker.url_mtls()), None);
    let cert = tokio::task::block_in_place(|| broker.pki().client(GW));
    let offline = tempfile::tempdir().unwrap();
    let cfg = c.config(
        GW,
        json!({"protocol": "2.1", "platform": "aws", "sdkOptions": {
            "certificate": {"SSLCertPath": cert.cert, "SSLKeyPath": cert.key},
            "offlineStorage": {"disabled": false, "availSpaceInMb": 1, "fileCount": 4}
        }}),
    );
    let f = flags(None, vec![c.sim.pki().ca.clone(), broker.pki().ca_cert()]);
    let opts = RunOptions {
        auto_ack: true,
        ..RunOptions::default()
    };
    let a = Running::start(cfg, &f, Some(Duration::ZERO), Some(offline.path()), opts).await;
    a.wait_event(
        "the children (204)",
        |e| matches!(e, Event::Resynced { scope } if scope == "children"),
    )
    .await;
    a.wait_event(
        "the attributes (201)",
        |e| matches!(e, Event::Resynced { scope } if scope == "attributes"),
    )
    .await;
    let line = |t: u32| {
        format!(
            r#"[{{"uniqueId":"iotc-gateway-01","data":{{"temperature":{t}}}}},{{"uniqueId":"iotc-child-01","data":{{"battery":{t}}}}}]"#
        )
    };
    a.send(&line(1)).await;
    wait_for("one online reading", || {
        c.report().get("telemetry_messages") == 1
    })
    .await;
    let mut admin_opts = transport::SessionOptions::new(broker.url_plain().parse().unwrap());
    admin_opts.client_id = "test-admin-mosquitto-21".into();
    let req = Request::Command {
        unique_id: "iotc-child-02".into(),
        command: "calibrate".into(),
    };
    let (_, acks) = admin::send(admin_opts, &req, WAIT).await.unwrap();
    assert_eq!((acks[0].mt, acks[0].st), (5, 2), "2.1 command ack st 2");

    tokio::task::block_in_place(|| broker.stop());
    a.wait_event("the disconnect", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    for t in [2, 3] {
        a.send(&line(t)).await;
    }
    let on_od = || {
        a.count(|e| {
            matches!(e, Event::Published { offline: true, topic, .. }
                if topic.starts_with("$aws/rules/msg_d2c_od/iotc-gateway-01/"))
        })
    };
    wait_for("two offline readings for the od topic", || on_od() >= 2).await;
    tokio::task::block_in_place(|| broker.restart());
    wait_for("the replay", || c.report().get("offline_messages") == 2).await;
    let r = c.report();
    assert_eq!(r.get("v21_od"), 2, "{r:?}");
    assert_eq!(r.get("values:iotc-child-01"), 3, "{r:?}");
    assert_eq!(r.get("rejected"), 0, "{r:?}");
    a.stop().await.unwrap();
}
