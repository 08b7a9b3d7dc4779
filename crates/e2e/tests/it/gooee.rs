//! Gooee's demo against iot-sim's embedded broker with the Gooee policy and cloud side, set up
//! the way `iot-sim demo` does it: every expected row is there, and passes.

use std::sync::Arc;

use cloudkit::CloudSide;
use gooee::cloud::GooeeCloud;
use sim::engine::{Sim, SimOptions};

/// The rows Gooee's demo reports, in order: a dropped or renamed check fails the test.
const CHECKS: &[&str] = &[
    "tls_password: meta confirmed by the broker",
    "tls_password: meta published and relayed to per-name subtopics",
    "tls_password: per-name meta received by the device",
    "tls_password: invalid meta name refused locally",
    "tls_password: invalid meta rejected by the platform via rejected topic",
    "tls_password: action relayed to its per-type subtopic",
    "tls_password: fault alarm and head count accepted",
    "wss: meta confirmed by the broker",
    "wss: meta published and relayed to per-name subtopics",
    "wss: per-name meta received by the device",
    "wss: invalid meta name refused locally",
    "wss: invalid meta rejected by the platform via rejected topic",
    "wss: action relayed to its per-type subtopic",
    "wss: fault alarm and head count accepted",
    "wrong token refused by the broker",
    "subscription outside the topic table refused by the broker",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_passes_against_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Arc::new(GooeeCloud::new());
    let sim = Sim::start(
        SimOptions::in_dir(dir.path()),
        vec![cloud.clone() as Arc<dyn CloudSide>],
    )
    .await
    .unwrap();
    let env = sim.demo_env(Some(cloud), &dir.path().join("demo"), 5);
    let rows = gooee::demo::run(env).await;
    crate::assert_demo_rows(&rows, CHECKS);
    sim.stop().await;
}
