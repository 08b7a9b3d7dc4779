//! Tests of the `mqtt-sink` binary as a user runs it, against a real mosquitto and a real
//! database: SIGKILL mid-stream and restart, exit codes and their sentences, `simulate`,
//! `bridge-config`.

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod brokers;
mod cli;
mod dbsecurity;
mod kill;
mod secrets;
mod share;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The built binary, with no environment leaking in.
pub fn mqtt_sink() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mqtt-sink"));
    c.env_remove("RUST_LOG")
        .env_remove("EDGEWIRE_BROKER")
        .env_remove("MQTT_SINK_DB");
    c
}

/// Runs to completion (bounded) and returns the output.
pub fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mqtt-sink starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
            return out;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mqtt-sink did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running sink whose stdout (NDJSON) lines are collected as they come.
pub struct Running {
    /// The process.
    pub child: Child,
    /// Its stdout lines so far.
    pub stdout: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Starts `cmd` (stderr inherited so it shows in test output).
    pub fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mqtt-sink starts");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let lines = stdout.clone();
        let pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Running { child, stdout }
    }

    /// Waits (bounded) for an NDJSON event of this type; returns its data.
    pub fn wait_event(&self, kind: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(v) = events(&self.stdout.lock().unwrap().join("\n"))
                .into_iter()
                .find(|(k, _)| k == kind)
            {
                return v.1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no `{kind}` event within {timeout:?}; stdout: {:?}",
            self.stdout.lock().unwrap()
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses NDJSON into `(type, data)` pairs.
/// Each event is checked against its schema in `docs/schema/`.
pub fn events(stdout: &str) -> Vec<(String, serde_json::Value)> {
    testkit::schema::validate("mqtt-sink", stdout.as_bytes());
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stdout line `{l}` is not JSON: {e}"));
            (v["type"].as_str().unwrap().to_owned(), v["data"].clone())
        })
        .collect()
}

/// Row count and distinct `data_hora` of a SQLite table.
pub async fn sqlite_counts(path: &std::path::Path, table: &str) -> (i64, i64) {
    use sqlx::Connection;
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
    let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    let q = |sql: String| sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
    let rows = q(format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&mut c)
        .await
        .unwrap_or(0);
    let distinct = q(format!("SELECT COUNT(DISTINCT data_hora) FROM {table}"))
        .fetch_one(&mut c)
        .await
        .unwrap_or(0);
    let _ = c.close().await;
    (rows, distinct)
}

/// Rows and distinct `data_hora` of `readings` in a PostgreSQL test database (0 before the sink
/// made the table).
pub fn pg_rows(db: &testkit::PgDatabase<'_>) -> (u64, u64) {
    let out = db.sql(
        "SELECT count(*), count(DISTINCT data_hora) FROM readings \
         WHERE to_regclass('readings') IS NOT NULL",
    );
    let (a, b) = out.trim().split_once('|').unwrap_or(("0", "0"));
    (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
}

/// Polls [`pg_rows`] until there are `at_least` rows or `timeout` passes.
pub fn wait_pg_rows(db: &testkit::PgDatabase<'_>, at_least: u64, timeout: Duration) -> (u64, u64) {
    let deadline = Instant::now() + timeout;
    loop {
        let r = pg_rows(db);
        if r.0 >= at_least || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM, exit 0 asserted, and the data of the sink's `summary` event.
pub fn stop_with_summary(mut r: testkit::cli::Running) -> serde_json::Value {
    Command::new("kill")
        .args(["-TERM", &r.child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(
        r.wait(Duration::from_secs(30)),
        Some(0),
        "SIGTERM ends a sink with 0"
    );
    let out = r.stdout.lock().unwrap().join("\n");
    events(&out)
        .into_iter()
        .find(|(k, _)| k == "summary")
        .unwrap_or_else(|| panic!("no summary in {out}"))
        .1
}
