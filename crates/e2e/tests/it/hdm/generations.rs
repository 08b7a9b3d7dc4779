//! API generations 2, 2b and 3 end to end against iot-sim's local cloud (issue #19): each
//! provisions over HTTPS as its reference client did, stores its files, connects with the
//! certificate it got and sends its envelope to `{telemetryTopic}/{orgId}/{clientId}`; gen 3
//! runs the OAuth device flow (approved as a person would), the Zaikio directory steps once,
//! the refresh before expiry and `slow_down`; a refused shadow subscription leaves telemetry
//! running.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use hdm::agent::provision::ProvisionOutcome;
use hdm::agent::run::{Plan, ShadowPlan, run};
use hdm::agent::telemetry::{EventHeader, topic_for};
use hdm::agent::{Event, EventSource, Provisioned, Store, TelemetryPlan, connect};
use hdm::cloud::{DEV_AUTH_TOKEN, DEV_OAUTH_CLIENT_ID, HdmCloud, IngestedEvent, ZaikioOptions};
use hdm::protocol::envelope::Header;
use hdm::protocol::generation::Generation;
use hdm::protocol::lowercase::{self, LowerHeader};
use hdm::protocol::shadow::device::DeviceConfig;
use hdm::protocol::shadow::gate::initial_state;
use serde_json::{Value, json};
use transport::{Outbox, Outcome};

use super::sim_e2e::local;
use super::{Events, provision_reporting, provision_store, until};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Sends `n` events of the device's generation and waits for their confirmation.
pub(super) async fn send(device: &Provisioned, generation: Generation, stage: &str, n: u64) {
    let header: EventHeader = if generation == Generation::Gen3 {
        let site = device
            .properties
            .as_ref()
            .and_then(|p| p.site_id.as_deref());
        let mut h = LowerHeader::defaults(&device.thing, site);
        h.eventtype = Some(lowercase::DEMO_EVENT_TYPE.into());
        h.eventsubtype = Some(lowercase::DEMO_EVENT_SUBTYPE.into());
        h.payloadversion = lowercase::DEMO_PAYLOAD_VERSION;
        h.into()
    } else {
        let mut h = Header::defaults(&device.thing);
        h.event_type = Some("reference-client-test".into());
        h.event_subtype = Some("any-sub-type".into());
        h.into()
    };
    let input = if generation == Generation::Gen3 {
        lowercase::demo_payload()
    } else {
        json!({"foo": "bar"})
    };
    let plan = Plan {
        shadow: None,
        telemetry: Some(TelemetryPlan {
            topic: topic_for(generation, Some(stage), device).unwrap(),
            header,
            source: EventSource::Repeat(input),
            count: Some(n),
            interval: None,
            confirm_timeout: Duration::from_secs(10),
        }),
    };
    let (reporter, _events) = Events::new();
    let s = run(
        connect::session_options(device, None).unwrap(),
        Outbox::memory(100),
        plan,
        std::future::pending(),
        reporter.as_ref(),
    )
    .await
    .unwrap();
    assert_eq!((s.events_confirmed, s.outcome()), (n, Outcome::Ok), "{s:?}");
}

/// A gen-2/2b env file for the HTTPS base `base`, with `extra` lines.
pub(super) fn env_gen2(dir: &Path, base: &str, extra: &str) -> std::path::PathBuf {
    write(
        dir,
        "env.stg",
        &format!("stage=stg\nbase_url={base}/hdm\n{extra}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen2_bearer_token_keys_from_the_service_org_id_and_the_org_topic() {
    let l = local().await;
    let env = env_gen2(
        l.dir.path(),
        l.sim.https_base().unwrap(),
        &format!("auth_token={DEV_AUTH_TOKEN}\napi_version=v3\n"),
    );
    let store = l.dir.path().join("cs2");
    let out = provision_store(&env, &store, &l.ca, false, false)
        .await
        .unwrap();
    let ProvisionOutcome::Provisioned { thing } = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        std::fs::read_to_string(store.join("OrgID.txt")).unwrap(),
        "org-sim"
    );
    assert_eq!(mode(&store.join("devicePrivateKey.pem")), 0o600);
    let device = Store::new(&store).load().unwrap();
    let props = device.properties.clone().unwrap();
    assert_eq!(
        props.telemetry_topic.as_deref(),
        Some(hdm::cloud::TELEMETRY_TOPIC)
    );
    send(&device, Generation::Gen2, "stg", 2).await;
    until(&l.cloud, "2 events", || l.cloud.ingested().len() == 2).await;
    let all = l.cloud.ingested_all();
    assert_eq!(
        all[0].topic,
        format!("{}/org-sim/{thing}", hdm::cloud::TELEMETRY_TOPIC)
    );
    assert!(matches!(all[0].event, IngestedEvent::CamelCase(_)));
    let r = &l.sim.reports()["hdm"];
    assert_eq!(
        (r.get("configuration_served_v3"), r.get("provisioned_keys")),
        (1, 1)
    );
    // A wrong token is refused with advice naming the token's sources, not the token.
    let bad = env_gen2(
        l.dir.path(),
        l.sim.https_base().unwrap(),
        "auth_token=not-the-token\napi_version=v3\n",
    );
    let e = provision_store(&bad, &l.dir.path().join("x"), &l.ca, false, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("403") && e.contains("auth_token") && !e.contains("not-the-token"),
        "{e}"
    );
    l.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen2b_token_file_key_made_here_csr_and_org_topic() {
    let l = local().await;
    write(l.dir.path(), "jwt", &format!("{DEV_AUTH_TOKEN}\n"));
    let env = env_gen2(
        l.dir.path(),
        l.sim.https_base().unwrap(),
        "auth_token_file=jwt\n",
    );
    let store = l.dir.path().join("cs2b");
    provision_store(&env, &store, &l.ca, false, false)
        .await
        .unwrap();
    let key = std::fs::read_to_string(store.join("devicePrivateKey.pem")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    // RSA-2048 in PKCS#8: about 1.7 KB of PEM (an EC key is about 240 bytes).
    assert!(key.len() > 1500, "{} bytes", key.len());
    assert_eq!(mode(&store.join("devicePrivateKey.pem")), 0o600);
    assert!(store.join("devicePublicKey.pem").exists());
    let r = &l.sim.reports()["hdm"];
    assert_eq!((r.get("provisioned_csr"), r.get("provisioned_v3")), (1, 1));
    let device = Store::new(&store).load().unwrap();
    send(&device, Generation::Gen2b, "stg", 1).await;
    until(&l.cloud, "1 event", || l.cloud.ingested().len() == 1).await;
    assert!(
        l.cloud.ingested_all()[0]
            .topic
            .ends_with(&format!("/org-sim/{}", device.thing))
    );
    l.sim.stop().await;
}

/// A gen-3 env file for the HTTPS base `base` (the directory under `/hdm/directory`).
pub(super) fn env_gen3(dir: &Path, base: &str) -> std::path::PathBuf {
    write(
        dir,
        "env.test",
        &format!(
            "stage=stg\nbase_url={base}/hdm\nDIRECTORY_HOST={base}/hdm/directory\nDIRECTORY_OAUTH_CLIENT_ID={DEV_OAUTH_CLIENT_ID}\nMACHINE_NAME=Press 7\n"
        ),
    )
}

/// Provisions gen 3 while a "person" approves the code the agent reports; returns the events.
pub(super) async fn onboard(
    cloud: &HdmCloud,
    ca: &Path,
    env: &Path,
    store: &Path,
    force: bool,
) -> Vec<Event> {
    let (reporter, mut events) = Events::new();
    let (env, store, ca) = (env.to_owned(), store.to_owned(), ca.to_owned());
    let r = reporter.clone();
    let agent = tokio::spawn(async move {
        provision_reporting(&env, &store, &ca, false, force, r.as_ref()).await
    });
    let e = events
        .wait("the code or the token", |e| {
            matches!(
                e,
                Event::DeviceAuthorization { .. } | Event::Authorized { .. }
            )
        })
        .await;
    if let Event::DeviceAuthorization {
        user_code,
        verification_uri,
        ..
    } = &e
    {
        assert!(
            verification_uri.starts_with("https://"),
            "{verification_uri}"
        );
        assert!(cloud.approve(user_code));
    }
    let out = agent.await.unwrap().unwrap();
    assert!(
        matches!(out, ProvisionOutcome::Provisioned { .. }),
        "{out:?}"
    );
    drop(reporter);
    events
        .wait("provisioned", |e| matches!(e, Event::Provisioned { .. }))
        .await;
    events.seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen3_device_flow_directory_once_v4_provisioning_and_lowercase_telemetry() {
    let l = local().await;
    let env = env_gen3(l.dir.path(), l.sim.https_base().unwrap());
    let store = l.dir.path().join("cs3");
    let seen = onboard(&l.cloud, &l.ca, &env, &store, false).await;
    let steps: Vec<&str> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Directory { step, .. } => Some(*step),
            _ => None,
        })
        .collect();
    assert_eq!(steps, ["site", "machine", "ownership"]);
    let props: Value =
        serde_json::from_slice(&std::fs::read(store.join("properties.json")).unwrap()).unwrap();
    for k in [
        "mqtt_endpoint",
        "mqtt_port",
        "machine_region",
        "telemetry_topic",
        "client_id",
        "org_id",
        "machine_id",
        "site_id",
    ] {
        assert!(!props[k].is_null(), "properties.json lacks {k}: {props}");
    }
    assert!(props["mqtt_port"].is_u64());
    assert_eq!(props["site_id"], "site-sim-1");
    assert_eq!(mode(&store.join("oauth_token.json")), 0o600);
    assert_eq!(mode(&store.join("devicePrivateKey.pem")), 0o600);
    let machines = l.cloud.machines();
    assert_eq!(machines.len(), 1);
    assert_eq!(
        machines[0].2.as_deref(),
        Some("site-sim-1"),
        "owned by the site"
    );
    assert_eq!(props["machine_id"], machines[0].0.as_str());

    let device = Store::new(&store).load().unwrap();
    send(&device, Generation::Gen3, "stg", 2).await;
    until(&l.cloud, "2 lowercase events", || {
        l.cloud.ingested_lowercase().len() == 2
    })
    .await;
    let got = l.cloud.ingested_lowercase();
    assert_eq!(got[0].headerversion, 3);
    assert_eq!(got[0].optional["siteid"], "site-sim-1");
    assert!(
        got[0].assettimestamp < got[1].assettimestamp,
        "strictly increasing"
    );
    assert!(
        l.cloud.ingested_all()[0]
            .topic
            .ends_with(&format!("/org-zaikio-sim/{}", device.thing))
    );

    // Onboarded: provisioning again does nothing, without a network call ...
    let before = l.sim.reports()["hdm"].get("oauth_device_authorizations");
    let again = provision_store(&env, &store, &l.ca, false, false)
        .await
        .unwrap();
    assert!(matches!(again, ProvisionOutcome::AlreadyProvisioned { .. }));
    // ... and forced, it reuses the stored token and the directory steps.
    let seen = onboard(&l.cloud, &l.ca, &env, &store, true).await;
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::Authorized { via: "stored" })),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|e| matches!(e, Event::Directory { .. })),
        "{seen:?}"
    );
    let r = &l.sim.reports()["hdm"];
    assert_eq!(r.get("oauth_device_authorizations"), before);
    assert_eq!(r.get("directory_machines_registered"), 1);
    assert_eq!(r.get("provisioned_v4"), 2);
    l.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen3_refreshes_the_token_before_it_expires_and_honours_slow_down() {
    let l = local().await;
    // Tokens live 30 s, inside the 60 s refresh margin: the next run must refresh first.
    l.cloud.set_zaikio_options(ZaikioOptions {
        token_lifetime_s: 30,
        force_slow_down: 1,
        ..ZaikioOptions::default()
    });
    let env = env_gen3(l.dir.path(), l.sim.https_base().unwrap());
    let store = l.dir.path().join("cs3");
    let started = std::time::Instant::now();
    onboard(&l.cloud, &l.ca, &env, &store, false).await;
    // The interval was 1 s; slow_down made it 6 s, so the flow took at least 1 + 6 s.
    assert!(
        started.elapsed() >= Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    let r = &l.sim.reports()["hdm"];
    assert_eq!(
        (r.get("oauth_slow_down"), r.get("oauth_token_device")),
        (1, 1)
    );
    let old: Value =
        serde_json::from_slice(&std::fs::read(store.join("oauth_token.json")).unwrap()).unwrap();
    let seen = onboard(&l.cloud, &l.ca, &env, &store, true).await;
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::Authorized { via: "refresh" })),
        "{seen:?}"
    );
    let new: Value =
        serde_json::from_slice(&std::fs::read(store.join("oauth_token.json")).unwrap()).unwrap();
    assert_ne!(
        old["refresh_token"], new["refresh_token"],
        "rotated and stored"
    );
    let r = &l.sim.reports()["hdm"];
    assert_eq!(
        (
            r.get("oauth_token_refresh"),
            r.get("oauth_device_authorizations")
        ),
        (1, 1)
    );
    l.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_shadow_subscription_leaves_telemetry_running_and_is_said_once() {
    let l = local().await;
    l.cloud.set_shadow_enabled(false);
    let device = super::provisioned(&l.env_file, &l.dir.path().join("cs"), &l.ca).await;
    let mut h = Header::defaults(&device.thing);
    h.event_type = Some("reference-client-test".into());
    h.event_subtype = Some("any-sub-type".into());
    let plan = Plan {
        shadow: Some(ShadowPlan {
            follow: false,
            sync_timeout: Duration::from_secs(20),
            config: DeviceConfig::default(),
            initial_state: initial_state(),
        }),
        telemetry: Some(TelemetryPlan {
            topic: topic_for(Generation::Gen1, Some("dev"), &device).unwrap(),
            header: h.into(),
            source: EventSource::Repeat(json!({"foo": "bar"})),
            count: Some(3),
            interval: None,
            confirm_timeout: Duration::from_secs(10),
        }),
    };
    let (reporter, mut events) = Events::new();
    let s = run(
        connect::session_options(&device, None).unwrap(),
        Outbox::memory(100),
        plan,
        std::future::pending(),
        reporter.as_ref(),
    )
    .await
    .unwrap();
    assert_eq!((s.events_confirmed, s.outcome()), (3, Outcome::Ok), "{s:?}");
    assert_eq!(s.shadow_synced, None);
    drop(reporter);
    while events.rx_next().await.is_some() {}
    let unavailable = events
        .seen
        .iter()
        .filter(|e| matches!(e, Event::ShadowUnavailable { .. }))
        .count();
    assert_eq!(unavailable, 1, "{:?}", events.seen);
    until(&l.cloud, "3 events", || l.cloud.ingested().len() == 3).await;
    l.sim.stop().await;
}
