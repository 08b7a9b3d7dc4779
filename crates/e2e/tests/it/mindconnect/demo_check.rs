//! The `iot-sim demo` rows of MindConnect, on the embedded broker and against mosquitto.

use std::sync::Arc;

use cloudkit::CloudSide;
use mindconnect::cloud::MindConnectCloud;

use super::demo_env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_rows_pass_on_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Arc::new(MindConnectCloud::new());
    let sim = sim::engine::Sim::start(
        sim::engine::SimOptions::in_dir(dir.path()),
        vec![cloud.clone() as Arc<dyn CloudSide>],
    )
    .await
    .unwrap();
    let mut env = demo_env(&sim, &cloud, &dir.path().join("demo"));
    env.messages = 25;
    let rows = mindconnect::demo::run(env).await;
    crate::assert_demo_rows(
        &rows,
        &[
            "model published (amo_v3/m → ms Success)",
            "bad model refused (ms Failed with errors)",
            "instantiated once over two runs (amo_v3/i)",
            "instance.conf says CREATED",
            "timeseries messages (mc_v3/ts)",
            "timeseries values recorded (mapped)",
            "unmapped data points",
            "SensorInterruptEvent accepted (mc_v3/e)",
            "file decoded from base64 (mc_v3/f)",
            "agent tokens issued (one per run)",
            "datalake object uploaded with the token",
            "command answered EXECUTING then EXECUTED",
        ],
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_rows_pass_against_mosquitto() {
    let broker = tokio::task::block_in_place(|| testkit::Broker::start(testkit::BrokerOpts::new()));
    let dir = tempfile::tempdir().unwrap();
    let cloud = Arc::new(MindConnectCloud::new());
    let sim = sim::engine::Sim::start(
        sim::engine::SimOptions {
            external: Some(transport::SessionOptions::new(
                broker.url_plain().parse().unwrap(),
            )),
            ..sim::engine::SimOptions::in_dir(dir.path())
        },
        vec![cloud.clone() as Arc<dyn CloudSide>],
    )
    .await
    .unwrap();
    let rows = mindconnect::demo::run(demo_env(&sim, &cloud, &dir.path().join("demo"))).await;
    assert!(rows.iter().all(|r| r.ok), "{rows:#?}");
    sim.stop().await;
}
