//! IoTConnect's `iot-sim demo` rows against the embedded broker, with the environment iot-sim
//! builds for a vendor check.

use std::sync::Arc;

use cloudkit::{CloudSide, DemoEnv};

use crate::common::Cloud;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_rows_all_pass() {
    let c = Cloud::start(None).await;
    let side = c.side.clone();
    let env = DemoEnv {
        listeners: c.sim.listeners().to_vec(),
        ca: c.sim.pki().ca.clone(),
        cert_dir: c.sim.pki().dir.clone(),
        https_base: c.sim.https_base().map(str::to_owned),
        work_dir: c.dir.path().join("demo"),
        messages: 20,
        report: Arc::new(move || side.report()),
    };
    std::fs::create_dir_all(&env.work_dir).unwrap();
    // iot-sim's registry boxes the check as `Pin<Box<dyn Future + Send>>`.
    let check: std::pin::Pin<Box<dyn std::future::Future<Output = Vec<cloudkit::DemoRow>> + Send>> =
        Box::pin(iotconnect::demo::run(env));
    let rows = check.await;
    for r in &rows {
        eprintln!(
            "{:<60} {:>4} {:>4} {}",
            r.check,
            r.expected,
            r.got,
            r.note.clone().unwrap_or_default()
        );
    }
    assert!(rows.len() >= 9, "{rows:?}");
    assert!(rows.iter().all(|r| r.ok), "{rows:#?}");
    assert_eq!(c.side.name(), "iotconnect");
}
