//! `iot-sim status`: reads what a running `iot-sim up` last wrote to its state folder.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::engine::StatusFile;

/// Why there is no status to show.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// Nothing running.
    #[error("no running `iot-sim up` found: `{0}` does not exist (start one with `iot-sim up`)")]
    NotRunning(String),
    /// The file is stale: the process died.
    #[error(
        "`{path}` was last written {age_s} s ago; the `iot-sim up` that wrote it (pid {pid}) is not running any more"
    )]
    Stale {
        /// File.
        path: String,
        /// Seconds since the last write.
        age_s: u64,
        /// Its pid.
        pid: u32,
    },
    /// Unreadable.
    #[error("cannot read `{path}`: {reason}")]
    Read {
        /// File.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Reads `status.json` from `state_dir`; refuses one older than `max_age`.
pub fn read(state_dir: &Path, max_age: Duration) -> Result<StatusFile, StatusError> {
    let path = state_dir.join("status.json");
    let shown = path.display().to_string();
    let meta = std::fs::metadata(&path).map_err(|_| StatusError::NotRunning(shown.clone()))?;
    let text = std::fs::read_to_string(&path).map_err(|e| StatusError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let status: StatusFile = serde_json::from_str(&text).map_err(|e| StatusError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    if age > max_age {
        return Err(StatusError::Stale {
            path: shown,
            age_s: age.as_secs(),
            pid: status.pid,
        });
    }
    Ok(status)
}

/// The status as text for people.
pub fn render(status: &StatusFile) -> String {
    let mut out = format!(
        "iot-sim up (pid {}), updated {}\n\nlisteners:\n",
        status.pid, status.updated
    );
    for (name, url) in &status.listeners {
        out.push_str(&format!("  {name:<13} {url}\n"));
    }
    for (cloud, report) in &status.clouds {
        out.push_str(&format!("\n{cloud}:\n"));
        if report.counters.is_empty() {
            out.push_str("  (nothing received yet)\n");
        }
        for (k, v) in &report.counters {
            out.push_str(&format!("  {k:<32} {v}\n"));
        }
        for e in &report.recent {
            out.push_str(&format!("  - {e}\n"));
        }
    }
    out
}
