//! End to end against iot-sim's local cloud: provisioning over HTTPS issues a certificate the
//! embedded broker accepts; telemetry reaches basic ingest; the shadow is created, followed and
//! gates telemetry; AWS's identity rules are enforced; local refusals name what is wrong.

use std::sync::Arc;
use std::time::Duration;

use hdm::agent::run::{Plan, ShadowPlan, run};
use hdm::agent::{AgentError, Event, EventSource, Store, TelemetryPlan, connect};
use hdm::cloud::HdmCloud;
use hdm::protocol::envelope::{DEMO_EVENT_SUBTYPE, DEMO_EVENT_TYPE, Header, MAX_MESSAGE_BYTES};
use hdm::protocol::shadow::device::{DeviceConfig, ShadowEvent};
use hdm::protocol::shadow::gate::initial_state;
use serde_json::json;
use sim::engine::{Sim, SimOptions};
use tokio::sync::{mpsc, oneshot};
use transport::Outcome;
use transport::{Outbox, Qos, Session};

use super::{Events, KEY, Raw, provision_store, provisioned, until, write_env};

pub(super) struct Local {
    pub sim: Sim,
    pub cloud: HdmCloud,
    pub dir: tempfile::TempDir,
    pub env_file: std::path::PathBuf,
    pub ca: std::path::PathBuf,
}

pub(super) async fn local() -> Local {
    let dir = tempfile::tempdir().unwrap();
    let cert_dir = dir.path().join("agent_cert");
    // As iot-sim's registry builds it: CA and endpoint are learnt once the local cloud runs.
    let cloud = HdmCloud::default();
    let sim = Sim::start(
        SimOptions {
            cert_dir: cert_dir.clone(),
            ..SimOptions::in_dir(dir.path())
        },
        vec![Arc::new(cloud.clone())],
    )
    .await
    .unwrap();
    assert!(cloud.on_start(sim.listeners(), &sim.pki().dir));
    let env_file = write_env(dir.path(), sim.https_base().unwrap(), KEY);
    Local {
        sim,
        cloud,
        ca: cert_dir.join("ca.pem"),
        env_file,
        dir,
    }
}

impl Local {
    /// The loopback listener, with the service account's credentials.
    pub(super) fn plain(&self) -> transport::SessionOptions {
        self.sim
            .listener("plain")
            .unwrap()
            .session_options()
            .unwrap()
    }
}

fn header(thing: &str) -> Header {
    let mut h = Header::defaults(thing);
    h.event_type = Some(DEMO_EVENT_TYPE.into());
    h.event_subtype = Some(DEMO_EVENT_SUBTYPE.into());
    h
}

fn telemetry(thing: &str, source: EventSource, count: Option<u64>) -> TelemetryPlan {
    TelemetryPlan {
        topic: "$aws/rules/iot_data_platform_telemetry_dev".into(),
        header: header(thing).into(),
        source,
        count,
        interval: None,
        confirm_timeout: Duration::from_secs(10),
    }
}

fn shadow(follow: bool) -> ShadowPlan {
    ShadowPlan {
        follow,
        sync_timeout: Duration::from_secs(20),
        config: DeviceConfig::default(),
        initial_state: initial_state(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_then_send_then_shadow_sync_end_to_end() {
    let l = local().await;
    let store = l.dir.path().join("certificate_store");
    let device = provisioned(&l.env_file, &store, &l.ca).await;
    assert!(device.thing.starts_with("hdm-"));
    assert_eq!(l.cloud.things(), vec![device.thing.clone()]);
    let opts = connect::session_options(&device, None).unwrap();
    let (reporter, mut events) = Events::new();
    let plan = Plan {
        shadow: None,
        telemetry: Some(telemetry(
            &device.thing,
            EventSource::Repeat(json!({"foo": "bar"})),
            Some(5),
        )),
    };
    let summary = run(
        opts.clone(),
        Outbox::memory(100),
        plan,
        std::future::pending(),
        reporter.as_ref(),
    )
    .await
    .unwrap();
    assert_eq!(
        (summary.events_sent, summary.events_confirmed),
        (5, 5),
        "{summary:?}"
    );
    assert_eq!(summary.outcome(), Outcome::Ok);
    until(&l.cloud, "5 events recorded", || {
        l.cloud.ingested().len() == 5
    })
    .await;
    let e = &l.cloud.ingested()[0];
    assert_eq!(
        (e.event_type.as_str(), e.sender_id.as_str()),
        (DEMO_EVENT_TYPE, device.thing.as_str())
    );
    events
        .wait("a Sent event", |e| matches!(e, Event::Sent { n: 5, .. }))
        .await;

    // The first shadow sync creates the shadow (get → 404 → report) ...
    let plan = Plan {
        shadow: Some(shadow(false)),
        telemetry: None,
    };
    let summary = run(
        opts.clone(),
        Outbox::memory(100),
        plan,
        std::future::pending(),
        reporter.as_ref(),
    )
    .await
    .unwrap();
    assert_eq!(
        (summary.shadow_synced, summary.outcome()),
        (Some(true), Outcome::Ok),
        "{summary:?}"
    );
    events
        .wait("the 404", |e| {
            matches!(e, Event::Shadow(ShadowEvent::Missing))
        })
        .await;
    events
        .wait("the create", |e| {
            matches!(e, Event::Shadow(ShadowEvent::Synced { created: true, .. }))
        })
        .await;
    // ... the second finds it (get/accepted) and reports with its version.
    let plan = Plan {
        shadow: Some(shadow(false)),
        telemetry: None,
    };
    let summary = run(
        opts,
        Outbox::memory(100),
        plan,
        std::future::pending(),
        reporter.as_ref(),
    )
    .await
    .unwrap();
    assert_eq!(summary.shadow_version, Some(2), "{summary:?}");
    let doc = l
        .cloud
        .shadow(&device.thing, time::OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(
        doc["state"]["reported"],
        json!({"event_publishing_enabled": true, "event_type_blacklist": []})
    );
    assert_eq!(l.sim.reports()["hdm"].get("shadow_created"), 1);
    l.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desired_change_while_running_is_applied_reported_and_gates_telemetry() {
    let l = local().await;
    let device = provisioned(&l.env_file, &l.dir.path().join("cs"), &l.ca).await;
    let opts = connect::session_options(&device, None).unwrap();
    let (reporter, mut events) = Events::new();
    let (in_tx, in_rx) = mpsc::channel(16);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let plan = Plan {
        shadow: Some(shadow(true)),
        telemetry: Some(telemetry(&device.thing, EventSource::Channel(in_rx), None)),
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

    // An app sets desired with the README's document (blacklisting ODA) over MQTT.
    let app = Raw::connect_with(l.plain(), "hdm-test-app", &[]).await;
    let mut desired: serde_json::Value =
        serde_json::from_str(&super::vector("readme_desired.json")).unwrap();
    desired["state"]["desired"]["event_type_blacklist"] = json!(["ODA"]);
    app.publish(
        &format!("$aws/things/{}/shadow/update", device.thing),
        &desired.to_string(),
    )
    .await;
    events
        .wait("the delta applied", |e| {
            matches!(
                e,
                Event::Shadow(ShadowEvent::DesiredApplied {
                    source: "delta",
                    ..
                })
            )
        })
        .await;
    events
        .wait("the report", |e| {
            matches!(e, Event::Shadow(ShadowEvent::Synced { created: false, .. }))
        })
        .await;
    let doc = l
        .cloud
        .shadow(&device.thing, time::OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(
        doc["state"]["reported"]["event_type_blacklist"],
        json!(["ODA"])
    );
    assert!(doc["state"].get("delta").is_none(), "{doc}");

    in_tx
        .send(json!({"eventType": "ODA", "eventSubtype": "x", "payload": {}}))
        .await
        .unwrap();
    events
        .wait(
            "ODA blocked",
            |e| matches!(e, Event::Blocked { event_type, .. } if event_type == "ODA"),
        )
        .await;
    in_tx.send(json!({"foo": 1})).await.unwrap();
    events
        .wait("a demo event sent", |e| matches!(e, Event::Sent { .. }))
        .await;
    until(&l.cloud, "one event recorded", || {
        l.cloud.ingested().len() == 1
    })
    .await;

    // Publishing off, set by iot-sim itself.
    let msgs = l
        .cloud
        .set_desired(
            &device.thing,
            json!({"event_publishing_enabled": false}),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    for m in msgs {
        app.session
            .publish(m)
            .await
            .unwrap()
            .confirmed()
            .await
            .unwrap();
    }
    events.wait("the switch-off applied", |e| matches!(e, Event::Shadow(ShadowEvent::DesiredApplied { changed, .. }) if changed == &["event_publishing_enabled"])).await;
    in_tx.send(json!({"foo": 2})).await.unwrap();
    events
        .wait("the event blocked", |e| matches!(e, Event::Blocked { .. }))
        .await;
    stop_tx.send(()).unwrap();
    let summary = agent.await.unwrap().unwrap();
    assert_eq!(
        (summary.events_sent, summary.events_blocked),
        (1, 2),
        "{summary:?}"
    );
    assert_eq!(summary.outcome(), Outcome::Ok, "{summary:?}");
    assert_eq!(l.cloud.ingested().len(), 1);
    l.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csr_provisioning_connects_and_a_second_provisioning_needs_force() {
    let l = local().await;
    let store = l.dir.path().join("cs");
    let first = provision_store(&l.env_file, &store, &l.ca, true, false)
        .await
        .unwrap();
    let hdm::agent::provision::ProvisionOutcome::Provisioned { thing } = first else {
        panic!("{first:?}")
    };
    let device = Store::new(&store).load().unwrap();
    let key = std::fs::read_to_string(&device.key).unwrap();
    assert!(key.contains("BEGIN PRIVATE KEY"));
    let plan = Plan {
        shadow: Some(shadow(false)),
        telemetry: None,
    };
    let (reporter, _events) = Events::new();
    let s = run(
        connect::session_options(&device, None).unwrap(),
        Outbox::memory(10),
        plan,
        std::future::pending(),
        reporter.as_ref(),
    )
    .await
    .unwrap();
    assert_eq!(s.shadow_synced, Some(true));

    let again = provision_store(&l.env_file, &store, &l.ca, true, false)
        .await
        .unwrap();
    assert_eq!(
        again,
        hdm::agent::provision::ProvisionOutcome::AlreadyProvisioned {
            thing: thing.clone()
        }
    );
    assert_eq!(
        std::fs::read_to_string(&device.key).unwrap(),
        key,
        "the key was kept"
    );
    let forced = provision_store(&l.env_file, &store, &l.ca, false, true)
        .await
        .unwrap();
    assert!(
        matches!(forced, hdm::agent::provision::ProvisionOutcome::Provisioned { thing: t } if t != thing)
    );
    let report = &l.sim.reports()["hdm"];
    assert_eq!(
        (
            report.get("provisioned_csr"),
            report.get("provisioned_keys")
        ),
        (1, 1)
    );
    l.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_enforces_the_thing_identity_and_basic_ingest_rules() {
    let l = local().await;
    let device = provisioned(&l.env_file, &l.dir.path().join("cs"), &l.ca).await;
    let mut o = connect::session_options(&device, None).unwrap();
    o.client_id = "not-the-thing".into();
    o.connect_timeout = Duration::from_secs(5);
    let err = Session::start(o, Outbox::memory(10))
        .await
        .err()
        .expect("a foreign client id is refused");
    assert!(
        err.to_string().contains("refused") || err.to_string().contains("not authorized"),
        "{err}"
    );

    let (s, _in) = Session::start(
        connect::session_options(&device, None).unwrap(),
        Outbox::memory(10),
    )
    .await
    .unwrap();
    let e = s
        .subscribe(&[(
            "$aws/rules/iot_data_platform_telemetry_dev".into(),
            Qos::AtLeastOnce,
        )])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("refused"), "{e}");
    let other = format!("$aws/things/{}x/shadow/update/delta", device.thing);
    assert!(s.subscribe(&[(other, Qos::AtLeastOnce)]).await.is_err());
    s.close(Duration::from_secs(1)).await;
    l.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_size_event_is_refused_locally_naming_the_limit() {
    let l = local().await;
    let device = provisioned(&l.env_file, &l.dir.path().join("cs"), &l.ca).await;
    let (reporter, mut events) = Events::new();
    let big = json!({"blob": "x".repeat(MAX_MESSAGE_BYTES)});
    let plan = Plan {
        shadow: None,
        telemetry: Some(telemetry(&device.thing, EventSource::Repeat(big), Some(1))),
    };
    let s = run(
        connect::session_options(&device, None).unwrap(),
        Outbox::memory(10),
        plan,
        std::future::pending(),
        reporter.as_ref(),
    )
    .await
    .unwrap();
    assert_eq!((s.events_refused, s.events_sent), (1, 0));
    assert_eq!(s.outcome(), Outcome::Usage);
    let Event::Refused { reason } = events
        .wait("the refusal", |e| matches!(e, Event::Refused { .. }))
        .await
    else {
        unreachable!()
    };
    assert!(reason.contains("131072 bytes (128 KB)"), "{reason}");
    assert_eq!(
        l.sim.reports()["hdm"].get("telemetry_too_large"),
        0,
        "nothing reached the broker"
    );
    l.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_is_refused_with_advice() {
    let l = local().await;
    let env = write_env(l.dir.path(), l.sim.https_base().unwrap(), "wrong-key");
    let e = provision_store(&env, &l.dir.path().join("cs"), &l.ca, false, false)
        .await
        .unwrap_err();
    assert!(
        matches!(e, AgentError::HttpStatus { status: 403, .. }),
        "{e}"
    );
    assert_eq!(e.outcome(), Outcome::Usage);
    assert!(
        e.to_string().contains("api_key") && e.to_string().contains("env.dev"),
        "{e}"
    );
    assert!(!Store::new(l.dir.path().join("cs")).is_provisioned());
    l.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_check_passes_against_the_local_cloud() {
    let l = local().await;
    let cloud = l.cloud.clone();
    let env = cloudkit::DemoEnv {
        listeners: l.sim.listeners().to_vec(),
        ca: l.ca.clone(),
        cert_dir: l.dir.path().join("agent_cert"),
        https_base: l.sim.https_base().map(str::to_owned),
        work_dir: l.dir.path().join("work"),
        messages: 20,
        report: Arc::new(move || cloudkit::CloudSide::report(&cloud)),
    };
    let rows = hdm::demo::run(env).await;
    crate::assert_demo_rows(
        &rows,
        &[
            "provisioned over HTTPS (gen 1: key made by the service)",
            "provisioned with a CSR (gen 2b: key made here)",
            "shadow created (get → 404 → report)",
            "telemetry accepted by basic ingest",
            "desired change applied and reported",
            "blacklisted event type held back by the shadow",
        ],
    );
    let env_file = l.dir.path().join("work/env.dev");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&env_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the demo's env file holds the API key");
    l.sim.stop().await;
}
