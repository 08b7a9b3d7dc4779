//! Running a built binary the way a user would: to completion with a deadline, or in the
//! background with its stderr collected line by line; and reading its NDJSON stdout.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs `cmd` to completion (120 s at most) with stdout and stderr captured; echoes stderr so a
/// failing test shows it.
pub fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("testkit: the binary starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child
            .try_wait()
            .expect("testkit: waiting for the binary")
            .is_some()
        {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("testkit: {cmd:?} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child
        .wait_with_output()
        .expect("testkit: reading the binary's output");
    eprintln!(
        "stderr of {cmd:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A running child whose stdout and stderr lines are collected as they come.
pub struct Running {
    /// The process.
    pub child: Child,
    /// Its stdout lines so far.
    pub stdout: Arc<Mutex<Vec<String>>>,
    /// Its stderr lines so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
}

fn collect(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn wait_for(lines: &Mutex<Vec<String>>, which: &str, needles: &[&str], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| needles.iter().all(|n| l.contains(n)))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "testkit: no {which} line with {needles:?} within {timeout:?}; got {:?}",
        lines.lock().unwrap()
    );
}

impl Running {
    /// Starts `cmd` with stdout and stderr collected.
    pub fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("testkit: the binary starts");
        let stdout = collect(child.stdout.take().expect("testkit: stdout was piped"));
        let stderr = collect(child.stderr.take().expect("testkit: stderr was piped"));
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits (bounded) for a stderr line containing `needle`.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) {
        wait_for(&self.stderr, "stderr", &[needle], timeout);
    }

    /// Waits (bounded) for a stdout line containing `needle`.
    pub fn wait_for_stdout_line(&self, needle: &str, timeout: Duration) {
        wait_for(&self.stdout, "stdout", &[needle], timeout);
    }

    /// Waits (bounded) for one stdout line containing every needle.
    pub fn wait_for_stdout(&self, needles: &[&str], timeout: Duration) {
        wait_for(&self.stdout, "stdout", needles, timeout);
    }

    /// Waits (bounded) for the exit code; kills the process and panics when it does not end.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self
                .child
                .try_wait()
                .expect("testkit: waiting for the binary")
            {
                return s.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "testkit: the binary did not exit within {timeout:?}; stderr {:?}",
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks NDJSON stdout of `binary` against `docs/schema/` (see [`crate::schema`]), then parses
/// it into `(type, data)` pairs: every test that reads a binary's events checks their schemas.
pub fn events_of(binary: &str, stdout: &[u8]) -> Vec<(String, serde_json::Value)> {
    crate::schema::validate(binary, stdout);
    events(stdout)
}

/// Parses NDJSON stdout (`{"type": ..., "data": ...}` per line) into `(type, data)` pairs.
pub fn events(stdout: &[u8]) -> Vec<(String, serde_json::Value)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("testkit: stdout line `{l}` is not JSON: {e}"));
            let kind = v["type"]
                .as_str()
                .unwrap_or_else(|| panic!("testkit: stdout line `{l}` has no \"type\""))
                .to_owned();
            (kind, v["data"].clone())
        })
        .collect()
}
