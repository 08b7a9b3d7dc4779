//! iot-sim's embedded broker with the Gooee policy and the cloud side, set up the way `iot-sim
//! demo` does it, and Gooee's demo run against it: every row must pass.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cloudkit::{CloudSide, DemoEnv, Listener};
use testkit::Pki;
use transport::auth::Credentials;
use transport::broker::{BrokerSetup, EmbeddedBroker};
use transport::tls::TlsOptions;

use crate::{CloudTask, blocking, init_logs};

/// The shapes `crates/sim/src/registry.rs` needs: a `CloudSide` behind an `Arc` and a `DemoFn`.
type DemoFn = fn(DemoEnv) -> Pin<Box<dyn Future<Output = Vec<cloudkit::DemoRow>> + Send>>;
const _: DemoFn = |env| Box::pin(gooee::demo::run(env));

#[test]
fn the_registry_entry_type_checks() {
    let cloud: Arc<dyn CloudSide> = Arc::new(gooee::cloud::GooeeCloud::default());
    assert_eq!(cloud.name(), "gooee");
    assert_eq!(cloud.filters().len(), 14);
    assert!(cloud.policy().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_passes_against_the_embedded_broker() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let pki = blocking(|| Pki::generate(&dir.path().join("pki")));
    let mut setup = BrokerSetup::new(pki.ca_cert(), pki.server_cert(), pki.server_key());
    setup.users = HashMap::from([("edgewire".to_owned(), "dev-pass".to_owned())]);
    let policy_owner = gooee::cloud::GooeeCloud::new();
    setup.policies = vec![policy_owner.policy().unwrap()];
    let broker = EmbeddedBroker::start(setup).await.unwrap();
    let ep = broker.endpoints().clone();
    let cloud = CloudTask::start(&ep.plain).await;
    let trust = TlsOptions {
        ca_files: vec![pki.ca_cert()],
        ..TlsOptions::default()
    };
    let creds = Some(Credentials {
        username: "edgewire".into(),
        password: Some("dev-pass".into()),
    });
    let listener = |name, url: &str| Listener {
        name,
        url: url.to_owned(),
        tls: trust.clone(),
        credentials: creds.clone(),
    };
    let report_of = cloud.cloud.clone();
    let env = DemoEnv {
        listeners: vec![
            listener("tls_password", &ep.tls_password),
            listener("wss", &ep.wss),
        ],
        ca: pki.ca_cert(),
        cert_dir: dir.path().join("pki"),
        https_base: None,
        work_dir: dir.path().to_owned(),
        messages: 5,
        report: Arc::new(move || report_of.report()),
    };
    let rows = gooee::demo::run(env).await;
    for r in &rows {
        eprintln!(
            "{:<70} {:>3} {:>3} {}",
            r.check,
            r.expected,
            r.got,
            if r.ok { "ok" } else { "FAILED" }
        );
    }
    assert!(rows.len() >= 14, "{rows:?}");
    assert!(rows.iter().all(|r| r.ok), "{rows:#?}");
    cloud.stop().await;
    broker.stop().await;
}
