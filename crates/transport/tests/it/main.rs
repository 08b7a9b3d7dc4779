//! Integration tests of the transport crate against a real mosquitto (started by `testkit`).

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod connect;
mod crash;
mod delivery;
mod faults;
#[cfg(feature = "http")]
mod http;
mod shutdown;
mod spool;

use std::collections::BTreeMap;
use std::time::Duration;

use testkit::{Broker, BrokerOpts};
use transport::SessionOptions;

/// Session options for `url` with short test timings.
pub fn opts(url: &str) -> SessionOptions {
    init_logs();
    let mut o = SessionOptions::new(url.parse().expect("test URL parses"));
    o.connect_timeout = Duration::from_secs(5);
    o.backoff_initial = Duration::from_millis(50);
    o.backoff_max = Duration::from_millis(500);
    o
}

/// Starts a broker without blocking the async runtime's other worker.
pub fn broker(opts: BrokerOpts) -> Broker {
    tokio::task::block_in_place(|| Broker::start(opts))
}

/// Runs blocking test-kit code from an async test.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Shows the crate's logs in test output (`RUST_LOG` to change the level).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttc=warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Counts each numbered payload: which of `0..n` are missing and how many arrived twice.
pub fn tally(msgs: &[(String, String)], n: u64) -> (Vec<u64>, u64) {
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    for (_, p) in msgs {
        let k: u64 = p
            .parse()
            .unwrap_or_else(|_| panic!("payload `{p}` is not a number"));
        *seen.entry(k).or_default() += 1;
    }
    let missing = (0..n).filter(|k| !seen.contains_key(k)).collect();
    let dups = seen.values().map(|c| c - 1).sum();
    (missing, dups)
}

/// Whether the first arrival of each number is in increasing order.
pub fn first_arrivals_in_order(msgs: &[(String, String)]) -> bool {
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<u64> = msgs
        .iter()
        .filter_map(|(_, p)| p.parse::<u64>().ok())
        .filter(|k| seen.insert(*k))
        .collect();
    firsts.windows(2).all(|w| w[0] < w[1])
}
