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
#[path = "../../../mc-model/tests/it/env.rs"]
mod env;
mod secrets;
mod v4;

use std::path::Path;
use std::process::{Command, Output};

use std::time::Duration;

pub(crate) use env::Env;
use mindconnect::agent::silent;
use mindconnect::config::{ConfigFile, Overrides, Settings};
use transport::Qos;

impl Env {
    /// Registers the custom topic `topic` (no mappings) as `mc-model register-topic` does,
    /// through a library call: mc-model is another binary.
    pub(crate) async fn register_custom_topic(&self, topic: &str) {
        let cwd = self.agent();
        let settings = Settings::resolve(
            ConfigFile::load(&cwd.join("configs/mqtt-config.json"), None).unwrap(),
            &Overrides::default(),
        )
        .unwrap();
        let one = mindconnect::agent::oneshot::OneShot {
            settings,
            timeout: Duration::from_secs(15),
            qos: Qos::AtLeastOnce,
            instance_conf: cwd.join("instance.conf"),
        };
        let reg = mindconnect::agent::custom::register(&one, Some(topic), &[], &silent())
            .await
            .unwrap();
        assert!(reg.created);
    }
}

/// The 2024 sample's `custom_timeseries.json` shape, one tag.
pub(crate) const CUSTOM_DOC: &str = r#"{"machines": [{"sources": [{"tags": [{"Key": "moisture", "Values": [41.5], "timestamp": ["2026-12-03T06:00:00Z"]}]}]}]}"#;

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

/// Runs the built binary in `cwd` with `input` on its stdin (closed after it), to completion.
pub(crate) fn mc_agent_with_stdin(cwd: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command(cwd, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    tokio::task::block_in_place(|| child.wait_with_output()).unwrap()
}

/// The built binary running in the background, its output collected.
pub(crate) fn spawn(cwd: &Path, args: &[&str]) -> testkit::cli::Running {
    testkit::cli::Running::spawn(&mut command(cwd, args))
}
