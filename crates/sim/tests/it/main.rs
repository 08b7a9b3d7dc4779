//! The local cloud against real clients: the embedded broker's listeners and identities, the
//! demo (passing, failing on purpose, and against mosquitto).

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod broker;

use std::time::Duration;

use sim::demo::{self, DemoOptions};
use sim::engine::{Sim, SimOptions};
use transport::session::StartError;
use transport::{ConnectError, Message, Outbox, Session};

fn options(dir: &std::path::Path) -> SimOptions {
    SimOptions::in_dir(dir)
}

async fn connect(o: transport::SessionOptions) -> Result<Session, StartError> {
    Session::start(o, Outbox::memory(10)).await.map(|(s, _)| s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_accepts_dev_certificates_and_refuses_foreign_ones() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(options(dir.path()), sim::registry::clouds())
        .await
        .unwrap();
    let mtls = sim
        .listeners()
        .iter()
        .find(|l| l.name == "mtls")
        .unwrap()
        .clone();

    let s = connect(mtls.session_options().unwrap())
        .await
        .expect("a certificate from `iot-sim certs` is accepted");
    s.publish(Message::new("demo/mtls/reading", "1"))
        .await
        .unwrap()
        .confirmed()
        .await
        .unwrap();
    s.close(Duration::from_secs(1)).await;

    let other = tempfile::tempdir().unwrap();
    let foreign =
        tokio::task::block_in_place(|| testkit::Pki::generate(other.path()).client("intruder"));
    let mut o = mtls.session_options().unwrap();
    o.tls.client_cert = Some(foreign.cert);
    o.tls.client_key = Some(foreign.key);
    o.connect_timeout = Duration::from_secs(3);
    match connect(o).await {
        Err(StartError::Connect(e @ ConnectError::ClientCertificate { .. })) => {
            assert!(
                e.to_string()
                    .contains("not signed by a CA the broker trusts"),
                "{e}"
            );
        }
        Err(e) => panic!("expected the foreign certificate to be rejected, got {e}"),
        Ok(_) => panic!("a certificate from another CA was accepted"),
    }

    let mut o = mtls.session_options().unwrap();
    o.tls.client_cert = None;
    o.tls.client_key = None;
    assert!(matches!(
        connect(o).await,
        Err(StartError::Connect(ConnectError::ClientCertificate { .. }))
    ));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_listeners_refuse_a_wrong_password_with_the_connack_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(options(dir.path()), sim::registry::clouds())
        .await
        .unwrap();
    for name in ["tls_password", "wss"] {
        let l = sim.listeners().iter().find(|l| l.name == name).unwrap();
        let mut o = l.session_options().unwrap();
        o.credentials.as_mut().unwrap().password = Some("wrong".into());
        match connect(o).await {
            Err(StartError::Connect(e @ ConnectError::Refused { code: 4 | 5, .. })) => {
                assert!(e.to_string().contains("--password"), "{e}");
            }
            Err(e) => panic!("{name}: expected a refusal, got {e}"),
            Ok(_) => panic!("{name}: a wrong password was accepted"),
        }
        let mut o = l.session_options().unwrap();
        o.credentials = None;
        assert!(
            connect(o).await.is_err(),
            "{name}: anonymous clients are refused"
        );
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_passes_on_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let summary = demo::run(DemoOptions {
        sim: options(dir.path()),
        messages: 50,
        sabotage: None,
    })
    .await
    .unwrap();
    eprintln!("{}", summary.table());
    assert!(summary.ok);
    let checks: Vec<&str> = summary.rows.iter().map(|r| r.check.as_str()).collect();
    for l in ["plain", "ws", "mtls", "tls_password", "wss"] {
        assert!(
            checks.iter().any(|c| c.starts_with(l)),
            "listener {l} checked: {checks:?}"
        );
    }
    assert!(
        summary
            .rows
            .iter()
            .filter(|r| r.vendor == "transport")
            .all(|r| r.got == 50)
    );
    for vendor in ["gooee", "hdm", "mindconnect", "iotconnect", "mqtt-sink"] {
        assert!(
            summary.rows.iter().any(|r| r.vendor == vendor),
            "{vendor} is in the demo"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_fails_when_a_check_is_broken_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let summary = demo::run(DemoOptions {
        sim: options(dir.path()),
        messages: 20,
        sabotage: Some("wss".into()),
    })
    .await
    .unwrap();
    eprintln!("{}", summary.table());
    assert!(!summary.ok);
    let failed: Vec<_> = summary.rows.iter().filter(|r| !r.ok).collect();
    assert_eq!(
        failed.len(),
        2,
        "only the sabotaged listener's two checks fail"
    );
    assert!(
        failed
            .iter()
            .all(|r| r.check.starts_with("wss") && r.got == 0)
    );
    assert!(
        failed[0]
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("refused"),
        "{failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_passes_against_mosquitto() {
    let b = tokio::task::block_in_place(|| testkit::Broker::start(testkit::BrokerOpts::new()));
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.external = Some(transport::SessionOptions::new(
        b.url_plain().parse().unwrap(),
    ));
    let summary = demo::run(DemoOptions {
        sim: opts,
        messages: 50,
        sabotage: None,
    })
    .await
    .unwrap();
    eprintln!("{}", summary.table());
    assert!(summary.ok);
    assert_eq!(summary.broker, b.url_plain());
}

/// A cloud side with one HTTPS route, to prove the local cloud serves vendor endpoints.
struct HttpProbe;

impl cloudkit::CloudSide for HttpProbe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn filters(&self) -> Vec<String> {
        Vec::new()
    }
    fn on_message(&self, _: &str, _: &[u8], _: time::OffsetDateTime) -> Vec<Message> {
        Vec::new()
    }
    fn report(&self) -> cloudkit::Report {
        cloudkit::Report::default()
    }
    fn router(&self) -> Option<axum::Router> {
        Some(axum::Router::new().route(
            "/hello",
            axum::routing::get(|| async { "hi from the probe" }),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_endpoints_are_served_with_the_dev_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(options(dir.path()), vec![std::sync::Arc::new(HttpProbe)])
        .await
        .unwrap();
    let base = sim
        .https_base()
        .expect("a cloud side with a router gets an HTTPS server")
        .to_owned();
    let trust = transport::tls::TlsOptions {
        ca_files: vec![sim.pki().ca.clone()],
        ..Default::default()
    };
    let client = transport::http::client(&trust, Duration::from_secs(5)).unwrap();
    let body = client
        .get(format!("{base}/probe/hello"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "hi from the probe");
    let untrusting = transport::http::client(
        &transport::tls::TlsOptions::default(),
        Duration::from_secs(5),
    )
    .unwrap();
    let err = untrusting
        .get(format!("{base}/probe/hello"))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.is_connect() || err.to_string().contains("certificate"),
        "{err:?}"
    );
    sim.stop().await;
}
