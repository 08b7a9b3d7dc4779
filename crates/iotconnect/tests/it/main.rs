//! IoTConnect integration tests that need no local cloud: protocol vectors from the seed and
//! the protocol notes, and hostile-input property tests. The cloud side from documented bytes
//! and the agent end to end against iot-sim and mosquitto are in `crates/e2e`.

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::many_single_char_names
)]

mod hostile;
mod vectors;
