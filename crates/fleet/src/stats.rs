//! What the fleet counts while it runs (atomics, a mutex only around the histogram), the
//! snapshot a reporter prints every interval, and the final summary that shards merge.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

use crate::FleetError;

/// Highest latency the histogram tracks exactly (60 s, in microseconds); longer ones are
/// clamped to it so a stuck PUBACK cannot make recording fail.
const MAX_LATENCY_US: u64 = 60_000_000;

/// The live counters of one fleet run.
#[derive(Debug)]
pub(crate) struct Counters {
    pub started: AtomicU64,
    pub connected_once: AtomicU64,
    pub connected_now: AtomicU64,
    pub failed: AtomicU64,
    pub reconnects: AtomicU64,
    pub published: AtomicU64,
    pub confirmed: AtomicU64,
    pub publish_errors: AtomicU64,
    /// Microseconds since the start when the last device connected the first time.
    pub last_first_connect_us: AtomicU64,
    pub errors: Mutex<BTreeMap<&'static str, u64>>,
    pub latency: Mutex<Histogram<u64>>,
}

impl Counters {
    pub(crate) fn new() -> Self {
        Counters {
            started: AtomicU64::new(0),
            connected_once: AtomicU64::new(0),
            connected_now: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            published: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            publish_errors: AtomicU64::new(0),
            last_first_connect_us: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(new_histogram()),
        }
    }

    pub(crate) fn connect_error(&self, cause: &'static str) {
        let mut e = self
            .errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *e.entry(cause).or_default() += 1;
    }

    pub(crate) fn latency(&self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        let mut h = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // In range by the clamp above, so this cannot fail.
        let _ = h.record(us);
    }

    pub(crate) fn snapshot(&self, devices: u64, elapsed: Duration) -> Snapshot {
        Snapshot {
            elapsed_s: round3(elapsed.as_secs_f64()),
            devices,
            started: self.started.load(Relaxed),
            connected: self.connected_now.load(Relaxed),
            connected_once: self.connected_once.load(Relaxed),
            failed: self.failed.load(Relaxed),
            connect_errors: self.errors_map(),
            reconnects: self.reconnects.load(Relaxed),
            published: self.published.load(Relaxed),
            confirmed: self.confirmed.load(Relaxed),
        }
    }

    fn errors_map(&self) -> BTreeMap<String, u64> {
        self.errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect()
    }

    pub(crate) fn summary(&self, devices: u64, elapsed: Duration, interrupted: bool) -> Summary {
        let connected = self.connected_once.load(Relaxed);
        let last = Duration::from_micros(self.last_first_connect_us.load(Relaxed));
        let hist = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut s = Summary {
            devices,
            connected,
            failed: self.failed.load(Relaxed),
            connect_errors: self.errors_map(),
            connects_per_s: 0.0,
            published: self.published.load(Relaxed),
            confirmed: self.confirmed.load(Relaxed),
            publish_errors: self.publish_errors.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            latency_ms: Latency::default(),
            peak_rss_bytes: peak_rss_bytes(),
            elapsed_s: round3(elapsed.as_secs_f64()),
            connect_phase_s: round3(last.as_secs_f64()),
            interrupted,
            shards: 1,
            latency_histogram: String::new(),
        };
        s.connects_per_s = rate(connected, last);
        s.set_histogram(&hist);
        s
    }
}

#[allow(clippy::expect_used)]
fn new_histogram() -> Histogram<u64> {
    // 3 significant digits from 1 µs to 60 s: about 30 KiB, one per fleet. The bounds are
    // constants that HdrHistogram accepts, so this cannot fail.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn rate(n: u64, over: Duration) -> f64 {
    if n == 0 || over.is_zero() {
        0.0
    } else {
        (n as f64 / over.as_secs_f64() * 10.0).round() / 10.0
    }
}

/// The live state, printed every `--stats-interval`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// Seconds since the fleet started.
    pub elapsed_s: f64,
    /// Devices this process runs.
    pub devices: u64,
    /// Devices whose first connection attempt has begun.
    pub started: u64,
    /// Devices connected now.
    pub connected: u64,
    /// Devices that connected at least once.
    pub connected_once: u64,
    /// Devices that failed for good.
    pub failed: u64,
    /// Failed connection attempts, by cause (`transport::ConnectError::cause`).
    pub connect_errors: BTreeMap<String, u64>,
    /// Connections made again after one was lost.
    pub reconnects: u64,
    /// Messages accepted for sending.
    pub published: u64,
    /// Messages the broker confirmed (PUBACK; at QoS 0: written).
    pub confirmed: u64,
}

/// Publish-to-PUBACK latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Messages measured.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// The final line of a run; `fleet-report` merges several.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Devices run.
    pub devices: u64,
    /// Devices that connected at least once.
    pub connected: u64,
    /// Devices that failed for good (a permanent connect failure, or no connection within
    /// `--give-up-after`).
    pub failed: u64,
    /// Failed connection attempts by cause.
    pub connect_errors: BTreeMap<String, u64>,
    /// First connections per second, from the start to the last device's first connection.
    pub connects_per_s: f64,
    /// Messages accepted for sending.
    pub published: u64,
    /// Messages confirmed by the broker.
    pub confirmed: u64,
    /// Publishes refused (the session had ended).
    pub publish_errors: u64,
    /// Connections made again after one was lost.
    pub reconnects: u64,
    /// Publish-to-PUBACK latency.
    pub latency_ms: Latency,
    /// The process's peak resident memory (VmHWM); for merged reports, the largest shard's.
    pub peak_rss_bytes: u64,
    /// Seconds the run took (merged: the longest shard's).
    pub elapsed_s: f64,
    /// Seconds from the start to the last device's first connection (merged: the longest).
    pub connect_phase_s: f64,
    /// Stopped by a signal.
    pub interrupted: bool,
    /// Summaries merged into this one (1 for a single run).
    pub shards: u64,
    /// The latency histogram: base64 of HdrHistogram's V2 serialisation, in microseconds.
    pub latency_histogram: String,
}

impl Summary {
    fn set_histogram(&mut self, h: &Histogram<u64>) {
        let ms = |us: u64| round3(us as f64 / 1000.0);
        self.latency_ms = if h.is_empty() {
            Latency::default()
        } else {
            Latency {
                count: h.len(),
                p50: ms(h.value_at_quantile(0.50)),
                p90: ms(h.value_at_quantile(0.90)),
                p99: ms(h.value_at_quantile(0.99)),
                max: ms(h.max()),
            }
        };
        let mut buf = Vec::new();
        if V2Serializer::new().serialize(h, &mut buf).is_ok() {
            self.latency_histogram = base64::engine::general_purpose::STANDARD.encode(buf);
        }
    }

    fn histogram(&self, name: &str) -> Result<Histogram<u64>, FleetError> {
        if self.latency_histogram.is_empty() {
            return Ok(new_histogram());
        }
        let bad = |problem: String| FleetError::Report {
            name: name.to_owned(),
            problem,
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.latency_histogram)
            .map_err(|e| bad(format!("`latency_histogram` is not base64: {e}")))?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| {
                bad(format!(
                    "`latency_histogram` is not an HdrHistogram V2 blob: {e:?}"
                ))
            })
    }

    /// Merges the summaries of shards (or runs) into one: counts added, connect rates added
    /// (shards run side by side), times and memory the largest, histograms merged bucket by
    /// bucket so the percentiles are those of all messages together. `parts` pairs each
    /// summary with a name for errors (its file).
    pub fn merge(parts: &[(String, Summary)]) -> Result<Summary, FleetError> {
        let mut hist = new_histogram();
        let mut out = Summary {
            devices: 0,
            connected: 0,
            failed: 0,
            connect_errors: BTreeMap::new(),
            connects_per_s: 0.0,
            published: 0,
            confirmed: 0,
            publish_errors: 0,
            reconnects: 0,
            latency_ms: Latency::default(),
            peak_rss_bytes: 0,
            elapsed_s: 0.0,
            connect_phase_s: 0.0,
            interrupted: false,
            shards: 0,
            latency_histogram: String::new(),
        };
        for (name, s) in parts {
            out.devices += s.devices;
            out.connected += s.connected;
            out.failed += s.failed;
            for (k, v) in &s.connect_errors {
                *out.connect_errors.entry(k.clone()).or_default() += v;
            }
            out.connects_per_s += s.connects_per_s;
            out.published += s.published;
            out.confirmed += s.confirmed;
            out.publish_errors += s.publish_errors;
            out.reconnects += s.reconnects;
            out.peak_rss_bytes = out.peak_rss_bytes.max(s.peak_rss_bytes);
            out.elapsed_s = out.elapsed_s.max(s.elapsed_s);
            out.connect_phase_s = out.connect_phase_s.max(s.connect_phase_s);
            out.interrupted |= s.interrupted;
            out.shards += s.shards;
            let h = s.histogram(name)?;
            hist.add(&h).map_err(|e| FleetError::Report {
                name: name.clone(),
                problem: format!("its histogram cannot be merged: {e:?}"),
            })?;
        }
        out.connects_per_s = (out.connects_per_s * 10.0).round() / 10.0;
        out.set_histogram(&hist);
        Ok(out)
    }
}

/// The process's peak resident set size (`VmHWM` in `/proc/self/status`), 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    proc_status_kib("VmHWM:") * 1024
}

/// The process's resident set size now (`VmRSS`), 0 where unknown.
pub fn rss_bytes() -> u64 {
    proc_status_kib("VmRSS:") * 1024
}

fn proc_status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary_with(latencies_us: &[u64]) -> Summary {
        let c = Counters::new();
        for us in latencies_us {
            c.latency(Duration::from_micros(*us));
            c.published.fetch_add(1, Relaxed);
            c.confirmed.fetch_add(1, Relaxed);
        }
        c.connected_once.store(10, Relaxed);
        c.summary(10, Duration::from_secs(1), false)
    }

    #[test]
    fn merging_keeps_every_sample_instead_of_averaging_percentiles() {
        // Shard a is fast, shard b slow: the merged p50 is the median of all 200 samples
        // (1 ms), not the mean of the two medians (50.5 ms).
        let a = summary_with(&[1_000; 110]);
        let b = summary_with(&[100_000; 90]);
        let m = Summary::merge(&[("a".into(), a), ("b".into(), b)]).unwrap_or_else(|e| {
            unreachable!("{e}");
        });
        assert_eq!(m.latency_ms.count, 200);
        assert!((m.latency_ms.p50 - 1.0).abs() < 0.01, "{:?}", m.latency_ms);
        assert!((m.latency_ms.max - 100.0).abs() < 0.1, "{:?}", m.latency_ms);
        assert_eq!(m.devices, 20);
        assert_eq!(m.published, 200);
        assert_eq!(m.shards, 2);
    }

    #[test]
    fn a_damaged_histogram_names_the_file() {
        let mut a = summary_with(&[1_000]);
        a.latency_histogram = "!!!".into();
        let err = Summary::merge(&[("shard-1.json".into(), a)])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("shard-1.json"), "{err}");
        assert!(err.contains("latency_histogram"), "{err}");
    }
}
