//! The `iot-sim demo` rows of MindConnect, on the embedded broker and against mosquitto.

use std::sync::Arc;

use cloudkit::CloudSide;
use mindconnect::cloud::MindConnectCloud;

use super::demo_env;

/// The rows of the MindConnect demo, in order, on either broker.
const ROWS: &[&str] = &[
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
    "v4 model synchronised (amo_v4/m → mi Success)",
    "v4 model sent once over two syncs (agent.ini sha)",
    "cloud_asset_model.json holds the synchronised model (referenceIds)",
    "custom topic and mapping registered (REST 201)",
    "custom data kept on its registration (clouddatastore/<client>/ts)",
];

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
    crate::assert_demo_rows(&rows, ROWS);
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
    crate::assert_demo_rows(&rows, ROWS);
    sim.stop().await;
}
