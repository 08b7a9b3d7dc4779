//! Integration tests of testkit itself: the broker's four listeners and their
//! authentication, the PKI's files, the subscriber across a broker restart,
//! and the fault proxy. Uses the mosquitto CLI clients as independent judges.

// Test helpers outside #[test] fns fail loudly too (clippy.toml only covers
// the test fns themselves).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod broker;
mod databases;
mod other_brokers;
mod pki;
mod proxy;
mod subscriber;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use testkit::{Broker, ClientCert};

/// How a `mosquitto_pub` connects.
pub enum Auth<'a> {
    /// Plain listener (or any plain port), anonymous.
    Plain(u16),
    /// mTLS listener with an optional client certificate, trusting `ca`.
    Mtls {
        /// The mTLS port.
        port: u16,
        /// CA file to verify the server with.
        ca: &'a Path,
        /// Client certificate and key, if any.
        client: Option<&'a ClientCert>,
    },
    /// TLS + password listener, trusting `ca`.
    Password {
        /// The TLS + password port.
        port: u16,
        /// CA file to verify the server with.
        ca: &'a Path,
        /// User name and password, if any.
        user: Option<(&'a str, &'a str)>,
    },
}

/// Runs `mosquitto_pub -q 1` (so success means the broker PUBACKed) with a
/// 10 s connect/ack bound; returns its output.
pub fn mosquitto_pub(auth: &Auth<'_>, topic: &str, payload: &str) -> Output {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-t", topic, "-m", payload, "-q", "1"]);
    match auth {
        Auth::Plain(port) => {
            cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
        }
        Auth::Mtls { port, ca, client } => {
            cmd.args(["-h", "localhost", "-p", &port.to_string()]);
            cmd.arg("--cafile").arg(ca);
            if let Some(c) = client {
                cmd.arg("--cert").arg(&c.cert).arg("--key").arg(&c.key);
            }
        }
        Auth::Password { port, ca, user } => {
            cmd.args(["-h", "localhost", "-p", &port.to_string()]);
            cmd.arg("--cafile").arg(ca);
            if let Some((u, p)) = user {
                cmd.args(["-u", u, "-P", p]);
            }
        }
    }
    cmd.stdin(Stdio::null())
        .output()
        .expect("run mosquitto_pub")
}

/// Asserts that a `mosquitto_pub` succeeded, showing its output if not.
#[track_caller]
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: mosquitto_pub failed with {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that a `mosquitto_pub` failed.
#[track_caller]
pub fn assert_fails(out: &Output, what: &str) {
    assert!(
        !out.status.success(),
        "{what}: mosquitto_pub unexpectedly succeeded: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The broker's CA path, for `Auth`.
pub fn ca(broker: &Broker) -> std::path::PathBuf {
    broker.pki().ca_cert()
}
