//! Against mosquitto (testkit), with the cloud side run by a helper and its HTTPS endpoints
//! served by iot-sim's server on mosquitto's PKI: the cloud answers the documented request
//! documents from a raw client (tests/vectors), and the agent recovers from a version conflict.

use std::sync::Arc;
use std::time::Duration;

use hdm::agent::run::{Plan, ShadowPlan, run};
use hdm::agent::{Event, connect};
use hdm::cloud::HdmCloud;
use hdm::protocol::shadow::device::{DeviceConfig, ShadowEvent};
use hdm::protocol::shadow::gate::initial_state;
use serde_json::{Value, json};
use sim::https::HttpsServer;
use tokio::sync::oneshot;
use transport::Outbox;

use super::{CloudHelper, Events, KEY, Raw, provisioned, until, vector, write_env};

struct Mosq {
    broker: testkit::Broker,
    cloud: HdmCloud,
    helper: CloudHelper,
    https: HttpsServer,
    dir: tempfile::TempDir,
}

async fn mosquitto() -> Mosq {
    let broker = tokio::task::block_in_place(|| testkit::Broker::start(testkit::BrokerOpts::new()));
    let cloud = HdmCloud::from_dev_pki(broker.pki().dir());
    cloud.set_mqtt_endpoint("localhost", broker.port_mtls());
    let clouds: Vec<Arc<dyn cloudkit::CloudSide>> = vec![Arc::new(cloud.clone())];
    let https = HttpsServer::start(
        &clouds,
        &broker.pki().server_cert(),
        &broker.pki().server_key(),
    )
    .await
    .unwrap()
    .unwrap();
    let helper = CloudHelper::start(cloud.clone(), &broker.url_plain()).await;
    Mosq {
        broker,
        cloud,
        helper,
        https,
        dir: tempfile::tempdir().unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_answers_the_documented_requests_of_a_raw_client() {
    let m = mosquitto().await;
    let url = m.broker.url_plain();
    let t = "$aws/things/raw-thing/shadow";
    let mut raw = Raw::connect(
        &url,
        "raw-client",
        &[
            &format!("{t}/#"),
            "$aws/things/raw-thing/shadow/name/simShadow1/#",
        ],
    )
    .await;

    // get of a named shadow that does not exist: 404 with the documented message.
    raw.publish(&format!("{t}/name/simShadow1/get"), "").await;
    let want: Value = serde_json::from_str(&vector("aws_get_rejected_404.json")).unwrap();
    let got = raw.next("/name/simShadow1/get/rejected").await;
    assert_eq!(
        (&got["code"], &got["message"]),
        (&want["code"], &want["message"])
    );

    // The guide's desired update: accepted with metadata, and a delta with both attributes.
    raw.publish(&format!("{t}/update"), &vector("aws_update_desired.json"))
        .await;
    let acc = raw.next("/update/accepted").await;
    assert_eq!(
        acc["state"]["desired"],
        json!({"color": {"r": 10}, "engine": "ON"})
    );
    assert_eq!(acc["version"], 1);
    let delta = raw.next("/update/delta").await;
    assert_eq!(delta["state"], json!({"color": {"r": 10}, "engine": "ON"}));
    raw.next("/update/documents").await;

    // The device reports that state; then the guide's property delete.
    raw.publish(&format!("{t}/update"), &vector("aws_update_reported.json"))
        .await;
    assert_eq!(raw.next("/update/accepted").await["version"], 2);
    raw.publish(&format!("{t}/update"), &vector("aws_delete_engine.json"))
        .await;
    assert_eq!(
        raw.next("/update/accepted").await["state"]["desired"],
        json!({"engine": null})
    );

    // Optimistic locking: the guide's stale update gets the guide's 409 document.
    raw.publish(
        &format!("{t}/update"),
        &vector("aws_locking_rejected_update.json"),
    )
    .await;
    let want: Value = serde_json::from_str(&vector("aws_locking_409.json")).unwrap();
    let got = raw.next("/update/rejected").await;
    for k in ["code", "message", "clientToken"] {
        assert_eq!(got[k], want[k], "{k}");
    }

    // An array holding null is rejected; removing the desired section is accepted.
    raw.publish(&format!("{t}/update"), &vector("aws_array_with_null.json"))
        .await;
    assert_eq!(raw.next("/update/rejected").await["code"], 400);
    raw.publish(
        &format!("{t}/update"),
        &vector("aws_remove_desired_section.json"),
    )
    .await;
    assert_eq!(
        raw.next("/update/accepted").await["state"]["desired"],
        Value::Null
    );
    raw.publish(
        &format!("{t}/update"),
        &vector("reference_test_device_reported.json"),
    )
    .await;
    raw.next("/update/accepted").await;
    raw.publish(&format!("{t}/get"), "").await;
    let doc = raw.next("/get/accepted").await;
    assert_eq!(
        doc["state"]["reported"],
        json!({"color": "blue", "engine": "ON"})
    );
    assert!(doc["state"].get("desired").is_none(), "{doc}");

    // Basic ingest: the README sample and the reference code's event are accepted.
    for v in ["readme_envelope.json", "reference_code_envelope.json"] {
        raw.publish("$aws/rules/iot_data_platform_telemetry_stg", &vector(v))
            .await;
    }
    raw.publish(
        "$aws/rules/iot_data_platform_telemetry_stg",
        "{\"not\": \"an envelope\"}",
    )
    .await;
    let cloud = m.cloud.clone();
    until(&m.cloud, "two events accepted and one refused", move || {
        let r = cloudkit::CloudSide::report(&cloud);
        r.get("telemetry_accepted") == 2 && r.get("telemetry_invalid") == 1
    })
    .await;
    drop(m.helper);
    m.https.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_recovers_from_a_version_conflict() {
    let m = mosquitto().await;
    let base = m.https.base.clone();
    let env_file = write_env(m.dir.path(), &base, KEY);
    let device = provisioned(
        &env_file,
        &m.dir.path().join("cs"),
        &m.broker.pki().ca_cert(),
    )
    .await;
    let opts = connect::session_options(&device, None).unwrap();
    assert_eq!(opts.endpoint.port(), m.broker.port_mtls());
    let (reporter, mut events) = Events::new();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let plan = Plan {
        shadow: Some(ShadowPlan {
            follow: true,
            sync_timeout: Duration::from_secs(20),
            config: DeviceConfig::default(),
            initial_state: initial_state(),
        }),
        telemetry: None,
    };
    let r = reporter.clone();
    let agent = tokio::spawn(async move {
        run(
            opts,
            Outbox::memory(100),
            plan,
            async {
                let _ = stop_rx.await;
            },
            r.as_ref(),
        )
        .await
    });
    events
        .wait("the create", |e| {
            matches!(e, Event::Shadow(ShadowEvent::Synced { created: true, .. }))
        })
        .await;

    // Two desired changes land in the shadow, but only the first one's delta reaches the
    // device: its report (with that version) is then stale and gets 409.
    let now = time::OffsetDateTime::now_utc();
    let first = m
        .cloud
        .set_desired(&device.thing, json!({"event_type_blacklist": ["A"]}), now)
        .unwrap();
    let second = m
        .cloud
        .set_desired(&device.thing, json!({"event_type_blacklist": ["B"]}), now)
        .unwrap();
    assert!(second.iter().any(|m| m.topic.ends_with("/update/delta")));
    let delta_topic = HdmCloud::delta_topic(&device.thing);
    m.helper
        .publish(
            first
                .into_iter()
                .filter(|m| m.topic == delta_topic)
                .collect(),
        )
        .await;
    events
        .wait("the conflict", |e| {
            matches!(e, Event::Shadow(ShadowEvent::Conflict { attempt: 1 }))
        })
        .await;
    events
        .wait("the re-sync", |e| {
            matches!(e, Event::Shadow(ShadowEvent::Synced { created: false, .. }))
        })
        .await;
    let doc = m
        .cloud
        .shadow(&device.thing, time::OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(
        doc["state"]["reported"]["event_type_blacklist"],
        json!(["B"]),
        "{doc}"
    );
    assert!(doc["state"].get("delta").is_none(), "{doc}");
    stop_tx.send(()).unwrap();
    let summary = agent.await.unwrap().unwrap();
    assert_eq!(summary.outcome(), transport::Outcome::Ok, "{summary:?}");
    m.https.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_events_survive_an_offline_broker() {
    let mut m = mosquitto().await;
    let env_file = write_env(m.dir.path(), &m.https.base, KEY);
    let device = provisioned(
        &env_file,
        &m.dir.path().join("cs"),
        &m.broker.pki().ca_cert(),
    )
    .await;
    let spool = transport::SpoolConfig {
        max_bytes: 1 << 20,
        max_files: 4,
        ..transport::SpoolConfig::new(m.dir.path().join("spool"))
    };
    let send = |n: u64| {
        let mut opts = connect::session_options(&device, None).unwrap();
        opts.start_mode = transport::StartMode::Background;
        let plan = Plan {
            shadow: None,
            telemetry: Some(hdm::agent::TelemetryPlan {
                topic: "$aws/rules/iot_data_platform_telemetry_dev".into(),
                header: {
                    let mut h = hdm::protocol::envelope::Header::defaults(&device.thing);
                    h.event_type = Some("spooled".into());
                    h.event_subtype = Some("x".into());
                    h.into()
                },
                source: hdm::agent::EventSource::Repeat(json!({"n": n})),
                count: Some(n),
                interval: None,
                confirm_timeout: Duration::from_secs(if n == 3 { 1 } else { 20 }),
            }),
        };
        (opts, Outbox::disk(spool.clone()).unwrap(), plan)
    };
    tokio::task::block_in_place(|| m.broker.stop());
    let (opts, outbox, plan) = send(3);
    let (reporter, _events) = Events::new();
    let s = run(
        opts,
        outbox,
        plan,
        std::future::pending(),
        reporter.as_ref(),
    )
    .await
    .unwrap();
    assert_eq!((s.events_sent, s.unacked, s.spooled), (3, 3, true), "{s:?}");
    assert_eq!(s.outcome(), transport::Outcome::Failure);
    tokio::task::block_in_place(|| m.broker.restart());
    // The platform must be listening again before the spool is replayed.
    m.helper.resubscribe(&m.cloud).await;
    let cloud = m.cloud.clone();
    let (opts, outbox, plan) = send(1);
    let s = run(
        opts,
        outbox,
        plan,
        std::future::pending(),
        reporter.as_ref(),
    )
    .await
    .unwrap();
    assert_eq!(
        (s.unacked, s.outcome()),
        (0, transport::Outcome::Ok),
        "{s:?}"
    );
    until(
        &m.cloud,
        "the 3 spooled events and the new one",
        move || cloud.ingested().len() == 4,
    )
    .await;
    m.https.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_generation_provisions_and_sends_through_mosquitto() {
    use super::generations::{env_gen2, env_gen3, onboard, send};
    use hdm::protocol::generation::Generation;
    let m = mosquitto().await;
    let ca = m.broker.pki().ca_cert();
    let base = m.https.base.clone();
    let token = format!("auth_token={}\n", hdm::cloud::DEV_AUTH_TOKEN);
    for (generation, extra) in [
        (Generation::Gen2, format!("{token}api_version=v3\n")),
        (Generation::Gen2b, token.clone()),
    ] {
        let dir = m.dir.path().join(generation.as_str());
        std::fs::create_dir_all(&dir).unwrap();
        let env = env_gen2(&dir, &base, &extra);
        let store = dir.join("certificate_store");
        super::provision_store(&env, &store, &ca, false, false)
            .await
            .unwrap();
        let device = hdm::agent::Store::new(&store).load().unwrap();
        assert_eq!(device.org_id.as_deref(), Some("org-sim"), "{generation}");
        send(&device, generation, "stg", 1).await;
    }
    let dir = m.dir.path().join("3");
    std::fs::create_dir_all(&dir).unwrap();
    let env = env_gen3(&dir, &base);
    let store = dir.join("certificate_store");
    onboard(&m.cloud, &ca, &env, &store, false).await;
    let device = hdm::agent::Store::new(&store).load().unwrap();
    send(&device, Generation::Gen3, "stg", 1).await;
    let cloud = m.cloud.clone();
    until(
        &m.cloud,
        "two camelCase events and one lowercase",
        move || cloud.ingested().len() == 2 && cloud.ingested_lowercase().len() == 1,
    )
    .await;
    let topics: Vec<String> = m
        .cloud
        .ingested_all()
        .into_iter()
        .map(|i| i.topic)
        .collect();
    assert!(
        topics
            .iter()
            .all(|t| t.starts_with(hdm::cloud::TELEMETRY_TOPIC)),
        "{topics:?}"
    );
    assert!(topics[2].contains("/org-zaikio-sim/"), "{topics:?}");
    drop(m.helper);
    m.https.stop().await;
}
