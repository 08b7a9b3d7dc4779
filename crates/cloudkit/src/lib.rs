//! The contract between `iot-sim` and each vendor's cloud side.
//!
//! A cloud side is the platform half of a vendor protocol, written next to the device half in
//! the vendor crate so the two cannot drift apart silently — but following the vendor's
//! documented behaviour, not the agent's convenience. `iot-sim` runs each one as an MQTT client
//! of the broker (embedded or `--broker`), feeds it what arrives on its topics, publishes what it
//! answers, adds its access policy to the embedded broker, and shows its [`Report`].

use std::collections::BTreeMap;
use std::sync::Arc;

pub use transport::access::{AccessPolicy, Identity, ListenerKind, Verdict};
pub use transport::message::{Message, Qos};

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
