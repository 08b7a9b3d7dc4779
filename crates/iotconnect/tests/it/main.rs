//! IoTConnect integration tests, one binary: protocol vectors from the seed and the protocol
//! notes, hostile-input property tests, the cloud side from documented bytes, and the agent end
//! to end against iot-sim's embedded broker and against mosquitto.

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::many_single_char_names
)]

mod cloud_raw;
mod common;
mod demo;
mod hostile;
mod mosquitto;
mod sim_e2e;
mod vectors;
