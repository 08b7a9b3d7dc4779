//! `mc-agent` as a user runs it, against iot-sim's local cloud (embedded broker with mTLS and
//! the MindConnect platform side, HTTPS endpoints): `run` with a command round trip and a second
//! run, the one-shots, and the errors a user meets.

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod agent;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

fn command(cwd: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mc-agent"));
    c.current_dir(cwd)
        .env_remove("RUST_LOG")
        .env_remove("EDGEWIRE_BROKER")
        .env_remove("MC_CONFIG")
        .args(args);
    c
}

/// Runs the built binary in `cwd` to completion.
pub(crate) fn mc_agent(cwd: &Path, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| testkit::cli::run(&mut command(cwd, args)))
}

/// The built binary running in the background, its stdout lines collected.
pub(crate) struct Background {
    child: Child,
    pub(crate) stdout: Arc<Mutex<Vec<String>>>,
}

impl Background {
    pub(crate) fn spawn(cwd: &Path, args: &[&str]) -> Background {
        let mut child = command(cwd, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let lines = stdout.clone();
        let pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        });
        Background { child, stdout }
    }

    /// Waits (bounded) for a stdout line containing every needle.
    pub(crate) fn wait_for(&self, needles: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self
                .stdout
                .lock()
                .unwrap()
                .iter()
                .any(|l| needles.iter().all(|n| l.contains(n)))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "no stdout line with {needles:?}: {:?}",
            self.stdout.lock().unwrap()
        );
    }

    /// Waits (bounded) for the exit code.
    pub(crate) fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("mc-agent did not end: {:?}", self.stdout.lock().unwrap());
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
