//! MindConnect against real parts: the embedded broker of iot-sim with the platform side and its
//! HTTPS endpoints, and a real mosquitto. Raw documented payloads (`tests/vectors/`) against the
//! platform side, the agent's full first run and second run, the failures a user meets, and the
//! demo check. The vectors live with the protocol, in `crates/mindconnect/tests/vectors`.

mod demo_check;
mod failures;
mod first_run;
mod mosquitto;
mod vectors;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudkit::{CloudSide, DemoEnv, Report};
use mindconnect::agent::{Event, Reporter};
use mindconnect::cloud::MindConnectCloud;
use mindconnect::config::{ConfigFile, Overrides, Settings};
use sim::engine::{Sim, SimOptions};

/// A running local cloud with the MindConnect platform side and a seed-layout folder for it.
pub(crate) struct Env {
    pub(crate) sim: Sim,
    pub(crate) cloud: Arc<MindConnectCloud>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) cfg: PathBuf,
}

impl Env {
    pub(crate) async fn start(cloud: MindConnectCloud) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(cloud);
        let sim = Sim::start(
            SimOptions::in_dir(dir.path()),
            vec![cloud.clone() as Arc<dyn CloudSide>],
        )
        .await
        .unwrap();
        let url = sim.listener("mtls").unwrap().url.clone();
        let env = demo_env(&sim, &cloud, &dir.path().join("agent"));
        let cfg =
            mindconnect::demo::write_seed_layout(&dir.path().join("agent"), &env, &url).unwrap();
        Env {
            sim,
            cloud,
            dir,
            cfg,
        }
    }

    pub(crate) fn settings(&self) -> Settings {
        Settings::resolve(
            ConfigFile::load(&self.cfg, None).unwrap(),
            &Overrides::default(),
        )
        .unwrap()
    }

    pub(crate) fn agent_dir(&self) -> PathBuf {
        self.dir.path().join("agent")
    }

    pub(crate) fn report(&self) -> Report {
        self.cloud.report()
    }

    /// Waits (bounded) until the platform side's counter reaches `n`.
    pub(crate) async fn counter(&self, key: &str, n: u64) -> u64 {
        let cloud = self.cloud.clone();
        eventually(|| cloud.report().get(key) >= n).await;
        self.report().get(key)
    }

    pub(crate) async fn stop(self) {
        self.sim.stop().await;
    }
}

pub(crate) fn demo_env(sim: &Sim, cloud: &Arc<MindConnectCloud>, work_dir: &Path) -> DemoEnv {
    sim.demo_env(Some(cloud.clone() as Arc<dyn CloudSide>), work_dir, 10)
}

/// Polls `f` until it holds or 15 s pass (then returns; the caller's assertion reports).
pub(crate) async fn eventually(f: impl Fn() -> bool) {
    testkit::wait::until(Duration::from_secs(15), f).await;
}

/// A reporter collecting events, and the collection.
pub(crate) fn collector() -> (Reporter, Arc<Mutex<Vec<Event>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (
        Arc::new(move |e: &Event| s.lock().unwrap().push(e.clone())),
        seen,
    )
}

/// A test vector's bytes, from `crates/mindconnect/tests/vectors`.
pub(crate) fn vector(name: &str) -> Vec<u8> {
    crate::vector("mindconnect", name)
}
