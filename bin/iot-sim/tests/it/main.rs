//! Tests of the `iot-sim` binary as a user runs it, against a real mosquitto.

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod fleet;
mod fleet_iotconnect;
mod fleet_mindconnect;
mod pipeline;
mod publish;
mod secrets;
mod sim;

use std::process::Command;

pub use testkit::cli::{Running, run};

/// The built binary, with the environment variables it reads cleared.
pub fn iot_sim() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_iot-sim"));
    c.env_remove("RUST_LOG").env_remove("EDGEWIRE_BROKER");
    c
}

/// NDJSON stdout as `(type, data)`, each event checked against its schema in `docs/schema/`.
pub fn events(stdout: &[u8]) -> Vec<(String, serde_json::Value)> {
    testkit::cli::events_of("iot-sim", stdout)
}
