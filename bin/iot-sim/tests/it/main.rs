//! Tests of the `iot-sim` binary as a user runs it, against a real mosquitto.

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod publish;
mod sim;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The built binary.
pub fn iot_sim() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_iot-sim"));
    c.env_remove("RUST_LOG").env_remove("EDGEWIRE_BROKER");
    c
}

/// Runs to completion, bounded.
pub fn run(cmd: &mut Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("iot-sim starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    let out = wait_output(child, deadline);
    eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn wait_output(mut child: Child, deadline: Instant) -> Output {
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("iot-sim did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running child whose stderr lines are collected as they come.
pub struct Running {
    /// The process.
    pub child: Child,
    /// Its stderr lines so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Starts `cmd` with stderr collected.
    pub fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("iot-sim starts");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Running { child, stderr }
    }

    /// Waits (bounded) for a stderr line containing `needle`.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no stderr line with `{needle}` within {timeout:?}; got {:?}",
            self.stderr.lock().unwrap()
        );
    }
}

/// Parses NDJSON stdout into `(type, data)` pairs.
pub fn events(stdout: &[u8]) -> Vec<(String, serde_json::Value)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stdout line `{l}` is not JSON: {e}"));
            (v["type"].as_str().unwrap().to_owned(), v["data"].clone())
        })
        .collect()
}
