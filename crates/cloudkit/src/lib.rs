//! The contract between `iot-sim` and each vendor's cloud side.
//!
//! A cloud side is the platform half of a vendor protocol, written next to the device half in
//! the vendor crate so the two cannot drift apart silently — but following the vendor's
//! documented behaviour, not the agent's convenience. `iot-sim` runs each one as an MQTT client
//! of the broker (embedded or `--broker`), feeds it what arrives on its topics, publishes what it
//! answers, adds its access policy to the embedded broker, and shows its [`Report`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub mod access;

use transport::SessionOptions;

pub use access::{AccessPolicy, Identity, ListenerKind, Verdict};
use transport::auth::Credentials;
pub use transport::message::{Message, Qos};
use transport::tls::TlsOptions;

/// What a cloud side has seen, for `iot-sim status` and the demo summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Named counters, e.g. `telemetry_accepted`, `rejected`, `commands_acked`.
    pub counters: BTreeMap<String, u64>,
    /// The most recent notable events, newest last (bounded by the cloud side).
    pub recent: Vec<String>,
}

impl Report {
    /// A counter's value (0 when never counted).
    pub fn get(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// Adds `n` to a counter.
    pub fn add(&mut self, name: &str, n: u64) {
        *self.counters.entry(name.to_owned()).or_default() += n;
    }

    /// Records an event, keeping the last `keep`.
    pub fn note(&mut self, event: impl Into<String>, keep: usize) {
        self.recent.push(event.into());
        if self.recent.len() > keep {
            let excess = self.recent.len() - keep;
            self.recent.drain(..excess);
        }
    }
}

/// A vendor platform as iot-sim runs it. Handlers are synchronous and do no I/O: they take what
/// arrived and return what to publish.
pub trait CloudSide: Send + Sync + 'static {
    /// Short name, e.g. `gooee`.
    fn name(&self) -> &'static str;

    /// Topic filters the platform side listens on (subscribed at QoS 1).
    fn filters(&self) -> Vec<String>;

    /// Handles one message; returns the messages the platform publishes in answer.
    fn on_message(&self, topic: &str, payload: &[u8], now: time::OffsetDateTime) -> Vec<Message>;

    /// Rules the platform's broker enforces (only the embedded broker can apply them).
    fn policy(&self) -> Option<Arc<dyn AccessPolicy>> {
        None
    }

    /// What it has seen so far.
    fn report(&self) -> Report;

    /// HTTPS endpoints of the platform (configuration, provisioning, tokens, uploads), served by
    /// iot-sim under `https://localhost:PORT/<name>/…`: routes are relative to that prefix.
    fn router(&self) -> Option<axum::Router> {
        None
    }

    /// Common names of the device certificates its agents need (issued by `iot-sim certs`).
    fn device_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// Called once the local cloud's listeners and development PKI exist, before its HTTPS
    /// endpoints and cloud-side runners start (for platforms whose answers name the broker, or
    /// that sign device certificates with the development CA).
    fn on_start(&self, _listeners: &[Listener], _pki_dir: &std::path::Path) {}

    /// Called once the HTTPS endpoints listen, with their base URL (`https://localhost:PORT`;
    /// this side's routes are under `<base>/<name>`), for platforms whose MQTT answers point to
    /// a download URL.
    fn on_https(&self, _base: &str) {}
}

/// How a client reaches one of the local cloud's listeners.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listener {
    /// `plain`, `ws`, `mtls`, `tls_password`, `wss` or `external`.
    pub name: &'static str,
    /// Broker URL.
    pub url: String,
    /// Trust (and the generic demo device's identity on `mtls`).
    #[serde(skip)]
    pub tls: TlsOptions,
    /// The development username/password on the password listeners.
    #[serde(skip)]
    pub credentials: Option<Credentials>,
}

impl Listener {
    /// Session options for a client of this listener.
    pub fn session_options(&self) -> Result<SessionOptions, transport::endpoint::EndpointError> {
        let mut o = SessionOptions::new(self.url.parse()?);
        o.tls.clone_from(&self.tls);
        o.credentials.clone_from(&self.credentials);
        Ok(o)
    }
}

/// What a vendor's demo check gets to work with.
#[derive(Clone)]
pub struct DemoEnv {
    /// The listeners of the running local cloud.
    pub listeners: Vec<Listener>,
    /// The development CA (trust it for the broker and the HTTPS endpoints).
    pub ca: PathBuf,
    /// Folder of the development PKI: `<cn>.pem` and `<cn>.key` for each device name.
    pub cert_dir: PathBuf,
    /// Base URL of the local cloud's HTTPS endpoints, when it runs them.
    pub https_base: Option<String>,
    /// A scratch folder for config files, spools and downloads.
    pub work_dir: PathBuf,
    /// Messages (or events) per check.
    pub messages: u64,
    /// Reads the vendor cloud side's report now.
    pub report: Arc<dyn Fn() -> Report + Send + Sync>,
}

impl DemoEnv {
    /// The listener with this name.
    pub fn listener(&self, name: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.name == name)
    }
}

/// One line of the demo summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DemoRow {
    /// Vendor.
    pub vendor: String,
    /// What was checked.
    pub check: String,
    /// What the run should produce.
    pub expected: u64,
    /// What it produced.
    pub got: u64,
    /// `expected == got`.
    pub ok: bool,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl DemoRow {
    /// A row; the note is kept only when the check failed.
    pub fn new(
        vendor: &str,
        check: impl Into<String>,
        expected: u64,
        got: u64,
        note: Option<String>,
    ) -> Self {
        let ok = expected == got;
        DemoRow {
            vendor: vendor.to_owned(),
            check: check.into(),
            expected,
            got,
            ok,
            note: if ok { None } else { note },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_counts_and_keeps_the_newest_notes() {
        let mut r = Report::default();
        r.add("x", 2);
        r.add("x", 3);
        assert_eq!(r.get("x"), 5);
        assert_eq!(r.get("y"), 0);
        for i in 0..5 {
            r.note(format!("e{i}"), 3);
        }
        assert_eq!(r.recent, ["e2", "e3", "e4"]);
    }
}
