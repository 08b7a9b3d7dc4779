//! `mc-model` as a user runs it: against iot-sim's local cloud (embedded broker, mTLS, the
//! MindConnect platform side) and against a real mosquitto with no platform side at all.

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod custom;
mod env;
mod model;
mod secrets;
mod sync;

use std::path::Path;
use std::process::{Command, Output};

pub(crate) use env::Env;

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
    testkit::cli::events_of("mindconnect", &out.stdout)
}
