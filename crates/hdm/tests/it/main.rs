//! HDM against real parts that need no local cloud: the ALPN offered on port 443, seen by a
//! rustls server; credentials kept from another origin when the configuration service
//! redirects, seen by two HTTP servers. The agent end to end against iot-sim and mosquitto is
//! in `crates/e2e`.

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod alpn;
mod redirect;
