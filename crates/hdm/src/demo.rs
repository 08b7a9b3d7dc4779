//! HDM's check in `iot-sim demo`: the agent's own code path against the local cloud. It writes
//! an env file for iot-sim's HTTPS endpoints, provisions over HTTPS (gen 1, and gen 2b with a
//! CSR), connects with the issued certificate on the `mtls` listener, creates the shadow
//! (get → 404 → report), sends telemetry to basic ingest, has an "app" set `desired` over MQTT
//! and sees it applied and reported, and checks that a blacklisted event type is held back.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cloudkit::{DemoEnv, DemoRow};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use transport::{Message, Outbox, Session};

use crate::agent::api::ApiOptions;
use crate::agent::config::{Overrides, load_env_with};
use crate::agent::provision::{ProvisionOptions, ProvisionOutcome, provision};
use crate::agent::run::{Plan, ShadowPlan, run as run_agent};
use crate::agent::{Event, EventSource, Store, TelemetryPlan, connect};
use crate::cloud::DEV_API_KEY;
use crate::protocol::envelope::{DEMO_EVENT_SUBTYPE, DEMO_EVENT_TYPE, Header};
use crate::protocol::shadow::device::{DeviceConfig, ShadowEvent};
use crate::protocol::shadow::gate::initial_state;
use crate::protocol::topics::{ShadowOp, ShadowTopics, telemetry_topic};

const VENDOR: &str = "hdm";
const BLOCKED_TYPE: &str = "demo-blocked";

fn row(check: &str, ok: bool, note: impl Into<String>) -> DemoRow {
    DemoRow::new(VENDOR, check, 1, u64::from(ok), Some(note.into()))
}

async fn next_event(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    deadline: Instant,
    want: impl Fn(&Event) -> bool,
) -> bool {
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) if want(&e) => return true,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return false,
        }
    }
}

async fn provision_into(
    env: &DemoEnv,
    env_file: &Path,
    store: &Path,
    csr: bool,
) -> Result<String, String> {
    let e = load_env_with(env_file, None, Overrides::default()).map_err(|e| e.to_string())?;
    let opts = ProvisionOptions {
        env: e,
        store: store.to_owned(),
        csr,
        force: false,
        api: ApiOptions {
            https_ca: vec![env.ca.clone()],
            timeout: Duration::from_secs(10),
            allow_plaintext: false,
        },
    };
    match provision(&opts, &|_| {}).await.map_err(|e| e.to_string())? {
        ProvisionOutcome::Provisioned { thing }
        | ProvisionOutcome::AlreadyProvisioned { thing } => Ok(thing),
    }
}

/// Runs the HDM checks against the local cloud.
pub async fn run(env: DemoEnv) -> Vec<DemoRow> {
    let Some(base) = env.https_base.clone() else {
        return vec![row(
            "provisioned over HTTPS",
            false,
            "iot-sim serves no HTTPS endpoints",
        )];
    };
    if env.listener("mtls").is_none() {
        return vec![DemoRow::new(
            VENDOR,
            "skipped: needs the embedded broker's mtls listener",
            0,
            0,
            None,
        )];
    }
    let dir = env.work_dir.clone();
    // A scratch folder kept between runs: provision afresh each time.
    for old in ["certificate_store", "certificate_store_csr"] {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return vec![row(
            "provisioned over HTTPS",
            false,
            format!("cannot create {}: {e}", dir.display()),
        )];
    }
    let env_file = dir.join("env.dev");
    let text = format!("stage=dev\nbase_url={base}/hdm\napi_key={DEV_API_KEY}\napi_version=v2\n");
    // It holds the API key: private, as everything edgewire writes with a secret in it.
    if let Err(e) = transport::auth::write_secret_file(&env_file, text.as_bytes()) {
        return vec![row(
            "provisioned over HTTPS",
            false,
            format!("cannot write {}: {e}", env_file.display()),
        )];
    }
    let mut rows = Vec::new();
    let store_dir = dir.join("certificate_store");
    let prov = provision_into(&env, &env_file, &store_dir, false).await;
    rows.push(row(
        "provisioned over HTTPS (gen 1: key made by the service)",
        prov.is_ok(),
        prov.as_ref().err().cloned().unwrap_or_default(),
    ));
    let csr = provision_into(&env, &env_file, &dir.join("certificate_store_csr"), true).await;
    rows.push(row(
        "provisioned with a CSR (gen 2b: key made here)",
        csr.is_ok(),
        csr.err().unwrap_or_default(),
    ));
    if prov.is_err() {
        return rows;
    }
    rows.extend(run_device(&env, &store_dir).await);
    rows
}

async fn run_device(env: &DemoEnv, store_dir: &Path) -> Vec<DemoRow> {
    let fail = |note: String| vec![row("shadow created (get → 404 → report)", false, note)];
    let device = match Store::new(store_dir).load() {
        Ok(d) => d,
        Err(e) => return fail(e.to_string()),
    };
    let opts = match connect::session_options(&device, None) {
        Ok(o) => o,
        Err(e) => return fail(e.to_string()),
    };
    let Ok(topic) = telemetry_topic("dev") else {
        return fail("bad stage".into());
    };
    let (ev_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let (in_tx, in_rx) = mpsc::channel::<Value>(64);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let mut header = Header::defaults(&device.thing);
    header.event_type = Some(DEMO_EVENT_TYPE.into());
    header.event_subtype = Some(DEMO_EVENT_SUBTYPE.into());
    let plan = Plan {
        shadow: Some(ShadowPlan {
            follow: true,
            sync_timeout: Duration::from_secs(10),
            config: DeviceConfig::default(),
            initial_state: initial_state(),
        }),
        telemetry: Some(TelemetryPlan {
            topic,
            header: header.into(),
            source: EventSource::Channel(in_rx),
            count: None,
            interval: None,
            confirm_timeout: Duration::from_secs(10),
        }),
    };
    let reporter = Arc::new(move |e: Event| {
        let _ = ev_tx.send(e);
    });
    let agent = tokio::spawn(async move {
        run_agent(
            opts,
            Outbox::memory(10_000),
            plan,
            async {
                let _ = stop_rx.await;
            },
            reporter.as_ref(),
        )
        .await
    });
    let mut rows = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let created = next_event(&mut events, deadline, |e| {
        matches!(e, Event::Shadow(ShadowEvent::Synced { created: true, .. }))
    })
    .await;
    rows.push(row(
        "shadow created (get → 404 → report)",
        created,
        "no Synced{created} event within 20 s",
    ));
    rows.push(telemetry_row(env, &in_tx).await);
    rows.push(desired_row(env, &device.thing, &mut events).await);
    let _ = in_tx
        .send(json!({"eventType": BLOCKED_TYPE, "eventSubtype": "x", "payload": {}}))
        .await;
    let blocked = next_event(
        &mut events,
        Instant::now() + Duration::from_secs(10),
        |e| matches!(e, Event::Blocked { event_type, .. } if event_type == BLOCKED_TYPE),
    )
    .await;
    rows.push(row(
        "blacklisted event type held back by the shadow",
        blocked,
        "the event was not blocked",
    ));
    let _ = stop_tx.send(());
    match agent.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => rows.push(row("agent ended cleanly", false, e.to_string())),
        Err(e) => rows.push(row("agent ended cleanly", false, e.to_string())),
    }
    rows
}

async fn telemetry_row(env: &DemoEnv, inputs: &mpsc::Sender<Value>) -> DemoRow {
    let before = (env.report)().get("telemetry_accepted");
    for i in 0..env.messages {
        if inputs.send(json!({"foo": "bar", "n": i})).await.is_err() {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = 0;
    while Instant::now() < deadline {
        got = (env.report)()
            .get("telemetry_accepted")
            .saturating_sub(before);
        if got >= env.messages {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    DemoRow::new(
        VENDOR,
        "telemetry accepted by basic ingest",
        env.messages,
        got,
        Some("not every event reached the recorder".into()),
    )
}

async fn desired_row(
    env: &DemoEnv,
    thing: &str,
    events: &mut mpsc::UnboundedReceiver<Event>,
) -> DemoRow {
    const CHECK: &str = "desired change applied and reported";
    let Some(plain) = env.listener("plain") else {
        return row(CHECK, false, "no plain listener");
    };
    let Ok(mut o) = plain.session_options() else {
        return row(CHECK, false, "bad plain listener URL");
    };
    o.client_id = "hdm-demo-app".into();
    let app = match Session::start(o, Outbox::memory(10)).await {
        Ok((s, _)) => s,
        Err(e) => return row(CHECK, false, format!("the app could not connect: {e}")),
    };
    let Ok(topics) = ShadowTopics::new(thing, None) else {
        return row(CHECK, false, "bad thing name");
    };
    let body = json!({"state": {"desired": {"event_type_blacklist": [BLOCKED_TYPE]}}, "clientToken": "demo-app"});
    let sent = match app
        .publish(Message::new(
            topics.topic(ShadowOp::Update, None),
            body.to_string(),
        ))
        .await
    {
        Ok(d) => d.confirmed().await.is_ok(),
        Err(_) => false,
    };
    app.close(Duration::from_secs(1)).await;
    if !sent {
        return row(CHECK, false, "the app's update was not confirmed");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let applied = next_event(events, deadline, |e| {
        matches!(
            e,
            Event::Shadow(ShadowEvent::DesiredApplied {
                source: "delta",
                ..
            })
        )
    })
    .await;
    let reported = applied
        && next_event(events, deadline, |e| {
            matches!(e, Event::Shadow(ShadowEvent::Synced { created: false, .. }))
        })
        .await;
    row(
        CHECK,
        reported,
        if applied {
            "the report was not accepted"
        } else {
            "no delta was applied"
        },
    )
}
