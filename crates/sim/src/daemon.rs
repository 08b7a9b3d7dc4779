//! `iot-sim up --detach`, `iot-sim down` and `iot-sim env`: a local cloud that a pipeline starts
//! in the background, points agents at through environment variables, and stops. Everything
//! goes through the state folder's `status.json`, which a running `up` rewrites every second and
//! removes when it stops cleanly.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rustix::process::{Pid, Signal};

use crate::engine::{DEV_USER, StatusFile};

/// How long a `status.json` may go unwritten before its writer counts as gone (it is rewritten
/// every second).
pub const FRESH: Duration = Duration::from_secs(5);

/// Why a background local cloud could not be started, found or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// `up` while one is running on the same state folder.
    #[error(
        "an `iot-sim up` (pid {pid}) is already running with state folder `{dir}`; stop it with `iot-sim down` or use another --state-dir"
    )]
    AlreadyRunning {
        /// Its pid.
        pid: u32,
        /// The state folder.
        dir: String,
    },
    /// The background process ended before it was ready.
    #[error(
        "`iot-sim up` (pid {pid}) exited before it was ready ({status}); its log, `{log}`:\n{tail}"
    )]
    Exited {
        /// Its pid.
        pid: u32,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: String,
        /// The log's last lines.
        tail: String,
    },
    /// Not ready in time.
    #[error("`iot-sim up` (pid {pid}) was not ready within {secs} s; see `{log}`")]
    Timeout {
        /// Its pid.
        pid: u32,
        /// The deadline.
        secs: u64,
        /// Its log file.
        log: String,
    },
    /// `env` with nothing running.
    #[error(transparent)]
    Status(#[from] crate::status::StatusError),
    /// Signalling failed.
    #[error("cannot stop `iot-sim up` (pid {pid}): {source}")]
    Signal {
        /// Its pid.
        pid: u32,
        /// OS error.
        source: std::io::Error,
    },
}

fn status_path(state_dir: &Path) -> PathBuf {
    state_dir.join("status.json")
}

/// The log file of a detached `up` in `state_dir`.
pub fn log_path(state_dir: &Path) -> PathBuf {
    state_dir.join("up.log")
}

fn alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    Pid::from_raw(raw).is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

/// The status of a live `iot-sim up` on `state_dir`: its `status.json` exists, is fresh, and
/// its process runs. A stale file (the process died) is not a running sim.
pub fn running(state_dir: &Path) -> Option<StatusFile> {
    let path = status_path(state_dir);
    let age = std::fs::metadata(&path)
        .ok()?
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    let status: StatusFile = serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
    (age <= FRESH && alive(status.pid)).then_some(status)
}

/// Refuses to start a second `up` on the same state folder.
pub fn ensure_not_running(state_dir: &Path) -> Result<(), DaemonError> {
    match running(state_dir) {
        Some(st) if st.pid != std::process::id() => Err(DaemonError::AlreadyRunning {
            pid: st.pid,
            dir: state_dir.display().to_string(),
        }),
        _ => Ok(()),
    }
}

/// Waits until the background `up` with process id `pid` has written its first `status.json`
/// (it does so once every listener is bound and every cloud side subscribed). `exited` says
/// whether the process has ended, and how.
pub fn wait_ready(
    state_dir: &Path,
    pid: u32,
    timeout: Duration,
    mut exited: impl FnMut() -> Option<String>,
) -> Result<StatusFile, DaemonError> {
    let deadline = Instant::now() + timeout;
    let log = log_path(state_dir);
    loop {
        if let Some(status) = exited() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            return Err(DaemonError::Exited {
                pid,
                status,
                log: log.display().to_string(),
                tail,
            });
        }
        if let Some(st) = running(state_dir)
            && st.pid == pid
        {
            return Ok(st);
        }
        if Instant::now() > deadline {
            return Err(DaemonError::Timeout {
                pid,
                secs: timeout.as_secs(),
                log: log.display().to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What `down` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// Nothing was running (a stale `status.json` was removed): `down` is safe to repeat.
    NotRunning,
    /// It stopped cleanly on SIGTERM.
    Stopped,
    /// It ignored SIGTERM for `timeout` and was killed.
    Killed,
}

/// Stops the `iot-sim up` of `state_dir`: SIGTERM, then waits up to `timeout` for its clean
/// stop (which removes `status.json`), then SIGKILL. Only a fresh status file's pid is
/// signalled, so a pid that a dead sim left behind (and the system may have reused) is not.
pub fn down(state_dir: &Path, timeout: Duration) -> Result<(Stopped, Option<u32>), DaemonError> {
    let Some(st) = running(state_dir) else {
        let _ = std::fs::remove_file(status_path(state_dir));
        return Ok((Stopped::NotRunning, None));
    };
    let pid = st.pid;
    let raw = Pid::from_raw(i32::try_from(pid).unwrap_or(0));
    let Some(p) = raw else {
        return Ok((Stopped::NotRunning, None));
    };
    rustix::process::kill_process(p, Signal::TERM).map_err(|e| DaemonError::Signal {
        pid,
        source: e.into(),
    })?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !alive(pid) || !status_path(state_dir).exists() {
            // The status file goes last in a clean stop; give the process its exit.
            let exit_deadline = Instant::now() + Duration::from_secs(2);
            while alive(pid) && Instant::now() < exit_deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            return Ok((Stopped::Stopped, Some(pid)));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = rustix::process::kill_process(p, Signal::KILL);
    let _ = std::fs::remove_file(status_path(state_dir));
    Ok((Stopped::Killed, Some(pid)))
}

/// How `iot-sim env` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvFormat {
    /// `export NAME='value'` lines, for `eval "$(iot-sim env)"`.
    Sh,
    /// One JSON object `{"NAME": "value", ...}`.
    Json,
    /// `NAME=value` lines, for appending to GitHub Actions' `$GITHUB_ENV`.
    Github,
}

/// The environment variables describing a running sim, in a stable order: one
/// `EDGEWIRE_SIM_<LISTENER>` per listener (`PLAIN`, `WS`, `MTLS`, `TLS_PASSWORD`, `WSS`,
/// `HTTPS`, or `EXTERNAL`), then `EDGEWIRE_SIM_CA`, `EDGEWIRE_SIM_CERT_DIR`,
/// `EDGEWIRE_SIM_USERNAME` and `EDGEWIRE_SIM_PASSWORD_FILE` (the TLS password listener's
/// user), `EDGEWIRE_SIM_SERVICE_USERNAME` and `EDGEWIRE_SIM_SERVICE_PASSWORD_FILE` (the plain
/// and ws ports' account) (embedded broker only).
pub fn env_vars(st: &StatusFile) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    let order = crate::engine::PORT_ORDER;
    let mut names: Vec<&String> = st.listeners.keys().collect();
    names.sort_by_key(|n| order.iter().position(|o| o == n).unwrap_or(order.len()));
    for name in names {
        vars.push((
            format!("EDGEWIRE_SIM_{}", name.to_ascii_uppercase()),
            st.listeners[name].clone(),
        ));
    }
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    if let Some(ca) = path(&st.ca) {
        vars.push(("EDGEWIRE_SIM_CA".into(), ca));
    }
    if let Some(dir) = path(&st.cert_dir) {
        vars.push(("EDGEWIRE_SIM_CERT_DIR".into(), dir));
    }
    if let Some(pw) = path(&st.password_file) {
        vars.push(("EDGEWIRE_SIM_USERNAME".into(), DEV_USER.into()));
        vars.push(("EDGEWIRE_SIM_PASSWORD_FILE".into(), pw));
    }
    // The loopback plain and ws ports take iot-sim's service account only (the devices' user
    // is for the TLS password listener): name it so a pipeline can publish there.
    if let Some(service) = st
        .password_file
        .as_ref()
        .and_then(|p| p.parent())
        .map(|d| d.join(crate::engine::SERVICE_PASSWORD_FILE))
        .filter(|p| p.is_file())
    {
        vars.push((
            "EDGEWIRE_SIM_SERVICE_USERNAME".into(),
            crate::engine::SERVICE_USER.into(),
        ));
        vars.push((
            "EDGEWIRE_SIM_SERVICE_PASSWORD_FILE".into(),
            service.display().to_string(),
        ));
    }
    vars
}

fn lines(it: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = it.collect();
    if v.is_empty() {
        String::new()
    } else {
        format!("{}\n", v.join("\n"))
    }
}

/// `vars` in `format`, ending with a newline.
pub fn render_env(vars: &[(String, String)], format: EnvFormat) -> String {
    match format {
        EnvFormat::Sh => lines(
            vars.iter()
                .map(|(k, v)| format!("export {k}='{}'", v.replace('\'', r"'\''"))),
        ),
        EnvFormat::Github => lines(vars.iter().map(|(k, v)| format!("{k}={v}"))),
        EnvFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> = vars
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            format!("{}\n", serde_json::Value::Object(map))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;

    fn status() -> StatusFile {
        StatusFile {
            pid: 1,
            updated: String::new(),
            listeners: BTreeMap::from([
                ("https".into(), "https://localhost:18885".into()),
                ("mtls".into(), "mqtts://localhost:18882".into()),
                ("plain".into(), "mqtt://127.0.0.1:18880".into()),
            ]),
            clouds: BTreeMap::new(),
            ca: Some("/x/it's/ca.pem".into()),
            cert_dir: None,
            password_file: Some("/s/password".into()),
        }
    }

    #[test]
    fn variables_follow_the_port_order_and_quote_for_sh() {
        let vars = env_vars(&status());
        let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "EDGEWIRE_SIM_PLAIN",
                "EDGEWIRE_SIM_MTLS",
                "EDGEWIRE_SIM_HTTPS",
                "EDGEWIRE_SIM_CA",
                "EDGEWIRE_SIM_USERNAME",
                "EDGEWIRE_SIM_PASSWORD_FILE"
            ]
        );
        let sh = render_env(&vars, EnvFormat::Sh);
        assert!(
            sh.contains(r"export EDGEWIRE_SIM_CA='/x/it'\''s/ca.pem'"),
            "{sh}"
        );
        let gh = render_env(&vars, EnvFormat::Github);
        assert!(
            gh.starts_with("EDGEWIRE_SIM_PLAIN=mqtt://127.0.0.1:18880\n"),
            "{gh}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_env(&vars, EnvFormat::Json)).unwrap();
        assert_eq!(json["EDGEWIRE_SIM_USERNAME"], "edgewire");
    }
}
