//! The test environment mc-model's and mc-agent's tests share (mc-agent's tests include this
//! file by path): iot-sim's MindConnect side with the seed's folder layout pointing at it, on
//! iot-sim's embedded broker or on a real mosquitto.

use std::path::PathBuf;
use std::sync::Arc;

use cloudkit::CloudSide;
use mindconnect::cloud::{DEMO_AGENT, MindConnectCloud};
use sim::engine::{Sim, SimOptions};

/// A local cloud and a seed-layout folder pointing at it.
pub(crate) struct Env {
    pub(crate) sim: Sim,
    pub(crate) cloud: Arc<MindConnectCloud>,
    pub(crate) dir: tempfile::TempDir,
    /// The mosquitto of [`Env::mosquitto`], kept running while the test holds the Env.
    _broker: Option<testkit::Broker>,
}

impl Env {
    pub(crate) async fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(MindConnectCloud::new());
        let options = SimOptions::in_dir(dir.path());
        let sim = Sim::start(options, vec![cloud.clone() as Arc<dyn CloudSide>])
            .await
            .unwrap();
        let url = sim.listener("mtls").unwrap().url.clone();
        let agent = dir.path().join("agent");
        let env = sim.demo_env(Some(cloud.clone() as Arc<dyn CloudSide>), &agent, 1);
        mindconnect::demo::write_seed_layout(&agent, &env, &url).unwrap();
        Env {
            sim,
            cloud,
            dir,
            _broker: None,
        }
    }

    /// The same layout on a real mosquitto (mTLS, a client certificate from its own PKI):
    /// iot-sim's engine runs the platform side against it (as `--broker` does) and serves
    /// the HTTPS endpoints.
    pub(crate) async fn mosquitto() -> Env {
        let broker =
            tokio::task::block_in_place(|| testkit::Broker::start(testkit::BrokerOpts::new()));
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(MindConnectCloud::new());
        let options = SimOptions {
            external: Some(transport::SessionOptions::new(
                broker.url_plain().parse().unwrap(),
            )),
            ..SimOptions::in_dir(dir.path())
        };
        let sim = Sim::start(options, vec![cloud.clone() as Arc<dyn CloudSide>])
            .await
            .unwrap();
        let cert = tokio::task::block_in_place(|| broker.pki().client(DEMO_AGENT));
        let layout = mindconnect::demo::Layout {
            broker_url: &broker.url_mtls(),
            broker_ca: &broker.pki().ca_cert(),
            cert: &cert.cert,
            key: &cert.key,
            https_base: sim.https_base(),
            https_ca: &sim.pki().ca,
        };
        mindconnect::demo::write_layout(&dir.path().join("agent"), &layout).unwrap();
        Env {
            sim,
            cloud,
            dir,
            _broker: Some(broker),
        }
    }

    pub(crate) fn agent(&self) -> PathBuf {
        self.dir.path().join("agent")
    }
}
