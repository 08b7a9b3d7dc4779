//! `mc-model` as a user runs it: against iot-sim's local cloud (embedded broker, mTLS, the
//! MindConnect platform side) and against a real mosquitto with no platform side at all.

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod model;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use cloudkit::{CloudSide, DemoEnv};
use mindconnect::cloud::MindConnectCloud;
use sim::engine::{Sim, SimOptions};

/// A local cloud and a seed-layout folder pointing at it.
pub(crate) struct Env {
    pub(crate) sim: Sim,
    pub(crate) cloud: Arc<MindConnectCloud>,
    pub(crate) dir: tempfile::TempDir,
}

impl Env {
    pub(crate) async fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(MindConnectCloud::new());
        let sim = Sim::start(
            SimOptions {
                cert_dir: dir.path().join("pki"),
                state_dir: dir.path().join("state"),
                external: None,
                client_names: vec![],
            },
            vec![cloud.clone() as Arc<dyn CloudSide>],
        )
        .await
        .unwrap();
        let url = sim
            .listeners()
            .iter()
            .find(|l| l.name == "mtls")
            .unwrap()
            .url
            .clone();
        let c = cloud.clone();
        let env = DemoEnv {
            listeners: sim.listeners().to_vec(),
            ca: sim.pki().ca.clone(),
            cert_dir: sim.pki().dir.clone(),
            https_base: sim.https_base().map(str::to_owned),
            work_dir: dir.path().join("agent"),
            messages: 1,
            report: Arc::new(move || c.report()),
        };
        mindconnect::demo::write_seed_layout(&dir.path().join("agent"), &env, &url).unwrap();
        Env { sim, cloud, dir }
    }

    pub(crate) fn agent(&self) -> PathBuf {
        self.dir.path().join("agent")
    }
}

/// The built binary run in `cwd`, with the environment variables it reads cleared.
pub(crate) fn mc_model(cwd: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mc-model"));
    c.current_dir(cwd)
        .env_remove("RUST_LOG")
        .env_remove("EDGEWIRE_BROKER")
        .env_remove("MC_CONFIG")
        .args(args);
    tokio::task::block_in_place(|| testkit::cli::run(&mut c))
}

/// NDJSON stdout as `(type, data)`.
pub(crate) fn events(out: &Output) -> Vec<(String, serde_json::Value)> {
    testkit::cli::events(&out.stdout)
}
