//! IoTConnect's `iot-sim demo` rows against the embedded broker, with the environment iot-sim
//! builds for a vendor check.

use std::sync::Arc;

use cloudkit::{CloudSide, DemoEnv};

use super::common::Cloud;

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
    crate::assert_demo_rows(
        &rows,
        &[
            "gateway: discovery, sync, X.509 connect",
            "sync points the device at the mtls listener",
            "gateway + 2 children: good values (mt 0)",
            "gateway + 2 children: faulty values (mt 1)",
            "twin: reported property",
            "command 0x01 acknowledged (mt 5, st 6)",
            "OTA 0x02 to gateway and child acknowledged (mt 11, st 7)",
            "edge: values counted in tumbling-window aggregates (mt 2)",
            "edge: rule `temperature > 80` matched (mt 3)",
            "df: sends inside the window discarded",
            "offline: stored readings replayed with od=1",
            "2.1 az: discovery, identity, X.509 connect",
            "2.1 az: attributes (201) and children (204) over di",
            "2.1 az: good values on rpt",
            "2.1 az: faulty values on flt",
            "2.1 az: command ct 0 acknowledged (type 0, st 2)",
            "2.1 aws: discovery, identity, X.509 connect",
            "2.1 aws: attributes (201) and children (204) over di",
            "2.1 aws: good values on rpt",
            "2.1 aws: faulty values on flt",
            "2.1 aws: command ct 0 acknowledged (type 0, st 2)",
        ],
    );
    assert_eq!(c.side.name(), "iotconnect");
}
