//! Test support for edgewire's integration tests: a real mosquitto broker on
//! free loopback ports with a PKI generated per run ([`Broker`], [`Pki`]), an
//! independent `mosquitto_sub` collector ([`Subscriber`]), a TCP fault proxy
//! ([`FaultProxy`]), free-port discovery ([`free_port`]), running built binaries ([`cli`]) and
//! waiting for a condition in an async test ([`wait`]). Everything but [`wait`] is synchronous
//! (std threads and processes only) so any test runtime can use it; [`wait`] runs on tokio's
//! timer, as every async test here does.
//!
//! Requirements on the machine: `/usr/sbin/mosquitto` (2.0.x), `mosquitto_sub`,
//! `mosquitto_pub`, `mosquitto_passwd` and the `openssl` CLI on `PATH`.

// Test support: failing loudly with a clear message is the whole point here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod broker;
pub mod cli;
mod pki;
mod port;
mod process;
mod proxy;
mod subscriber;
pub mod wait;

pub use broker::{Broker, BrokerOpts};
pub use pki::{ClientCert, KeyFormat, Pki};
pub use port::{free_port, free_ports};
pub use proxy::{Fault, FaultProxy};
pub use subscriber::{PROBE_TOPIC_PREFIX, Subscriber};
