//! Integration tests of the sink against a real mosquitto (testkit) and real databases:
//! SQLite, and the private PostgreSQL and MariaDB servers testkit starts for this process
//! (or the servers `EDGEWIRE_TEST_PG_URL` / `EDGEWIRE_TEST_MYSQL_URL` name). Each test uses
//! its own database, dropped at the end.

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod dedup;
mod hostile;
mod outage;
mod scale;
mod seed;
mod volume;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sink::db::Conn;
use sink::{DbUrl, Event, RawSettings, SinkConfig, Stats};
use sqlx::AssertSqlSafe;
use testkit::{Broker, BrokerOpts, MariaDb, MariaDbDatabase, PgDatabase, Postgres};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use transport::SessionOptions;

/// A new PostgreSQL database for one test (dropped with the handle).
pub fn pg() -> PgDatabase<'static> {
    tokio::task::block_in_place(|| Postgres::shared().database())
}

/// A new MariaDB database for one test (dropped with the handle).
pub fn mysql() -> MariaDbDatabase<'static> {
    tokio::task::block_in_place(|| MariaDb::shared().database())
}

/// A name no other test (or run) uses, fit for a table or client id.
pub use testkit::unique_name as unique;

/// Shows the crate's logs in test output (`RUST_LOG` to change the level).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rumqttc=error".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A broker able to hold a large backlog for an unacknowledging sink.
pub fn broker() -> Broker {
    tokio::task::block_in_place(|| {
        Broker::start(
            BrokerOpts::new()
                .max_inflight(1000)
                .max_queued(1_000_000)
                .persistence(true),
        )
    })
}

/// Session options for the sink.
pub fn session(broker: &Broker) -> SessionOptions {
    let mut o = SessionOptions::new(broker.url_plain().parse().unwrap());
    o.client_id = unique("sink");
    o.backoff_initial = Duration::from_millis(50);
    o.backoff_max = Duration::from_millis(500);
    o
}

/// A sink configuration with the seed's mapping (`--preset esp32 --create-table`).
pub fn esp32_config(db: &str, table: &str) -> SinkConfig {
    let mut c = RawSettings {
        db: Some(db.to_owned()),
        table: Some(table.to_owned()),
        preset: Some("esp32".into()),
        create_table: true,
        batch: 1000,
        batch_ms: 100,
        drain_s: 10,
        retry_max_s: 1,
        ..RawSettings::default()
    }
    .resolve()
    .unwrap();
    c.retry_max = Duration::from_millis(500);
    c
}

/// A sink running in this process.
pub struct Running {
    /// Everything it reported.
    pub events: Arc<Mutex<Vec<Event>>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<Stats, sink::SinkError>>,
}

impl Running {
    /// Prepares and starts the sink; returns once it has subscribed.
    pub async fn start(config: SinkConfig, session: SessionOptions) -> Running {
        init_logs();
        let events = Arc::new(Mutex::new(Vec::new()));
        let (stop, stop_rx) = oneshot::channel::<()>();
        let seen = events.clone();
        let ready = sink::prepare(config).await.expect("sink prepares");
        let task = tokio::spawn(async move {
            let reporter = move |e: &Event| seen.lock().unwrap().push(e.clone());
            ready
                .run(
                    session,
                    async {
                        let _ = stop_rx.await;
                    },
                    &reporter,
                )
                .await
        });
        let r = Running {
            events,
            stop: Some(stop),
            task,
        };
        r.wait_for("subscribed", Duration::from_secs(10), |e| {
            matches!(e, Event::Ready { .. })
        })
        .await;
        r
    }

    /// Waits (bounded) for an event matching `f`.
    pub async fn wait_for(&self, what: &str, timeout: Duration, f: impl Fn(&Event) -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.events.lock().unwrap().iter().any(&f) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "no `{what}` event within {timeout:?}; events: {:?}",
            self.events.lock().unwrap()
        );
    }

    /// How many events match `f`.
    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.lock().unwrap().iter().filter(|e| f(e)).count()
    }

    /// Waits (bounded) until the sink has handled `n` messages (stored, skipped as duplicates or
    /// dead-lettered, all committed), then stops it. Needs `progress_every` set.
    pub async fn stop_after_handled(self, n: u64, timeout: Duration) -> Stats {
        self.wait_for(&format!("{n} messages handled"), timeout, |e| {
            matches!(e, Event::Progress(s)
                if s.stored + s.duplicates + s.dead_lettered >= n && s.pending == 0)
        })
        .await;
        self.stop().await
    }

    /// Waits (bounded) for the sink to end by itself (`--count`).
    pub async fn finish(self, timeout: Duration) -> Stats {
        tokio::time::timeout(timeout, self.task)
            .await
            .expect("the sink stops by itself after --count")
            .expect("the sink task does not panic")
            .expect("the sink run succeeds")
    }

    /// Asks the sink to stop (like Ctrl-C) and returns its counters.
    pub async fn stop(mut self) -> Stats {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the sink stops within 30 s")
            .unwrap()
            .unwrap()
    }
}

/// The seed's payload for reading `i` (one second apart, so all distinct).
pub fn reading(i: u64) -> String {
    let start = time::macros::datetime!(2026-11-24 10:00:00);
    String::from_utf8(sink::simulate::reading(i, start)).unwrap()
}

/// Publishes lines at QoS 1 with `mosquitto_pub -l` (≤ 50,000 per process: mosquitto_pub
/// 2.0.11 stops waiting for PUBACKs once packet ids wrap). Blocks until all are confirmed.
pub fn publish_lines(port: u16, topic: &str, lines: impl Iterator<Item = String>) {
    let lines: Vec<String> = lines.collect();
    for chunk in lines.chunks(50_000) {
        let mut child = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                topic,
                "-q",
                "1",
                "-l",
            ])
            .stdin(Stdio::piped())
            .spawn()
            .expect("mosquitto_pub runs");
        {
            let mut stdin = child.stdin.take().unwrap();
            let mut buf = String::with_capacity(chunk.len() * 64);
            for l in chunk {
                buf.push_str(l);
                buf.push('\n');
            }
            stdin.write_all(buf.as_bytes()).unwrap();
        }
        let status = child.wait().unwrap();
        assert!(status.success(), "mosquitto_pub failed: {status}");
    }
}

/// Publishes one payload (any bytes) at QoS 1.
pub fn publish_bytes(port: u16, topic: &str, payload: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload");
    std::fs::write(&file, payload).unwrap();
    let out = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "-q",
            "1",
            "-f",
        ])
        .arg(&file)
        .output()
        .expect("mosquitto_pub runs");
    assert!(out.status.success(), "mosquitto_pub: {out:?}");
}

/// A connection for checking what the sink wrote.
pub async fn connect(db: &str) -> Conn {
    db.parse::<DbUrl>().unwrap().connect().await.unwrap()
}

/// `SELECT <expr> FROM <table>` as one integer (tests only build it from their own names).
pub async fn scalar(conn: &mut Conn, sql: &str) -> i64 {
    let q = AssertSqlSafe(sql.to_owned());
    match conn {
        Conn::Sqlite(c) => sqlx::query_scalar::<_, i64>(q).fetch_one(c).await,
        Conn::Postgres(c) => sqlx::query_scalar::<_, i64>(q).fetch_one(c).await,
        Conn::MySql(c) => sqlx::query_scalar::<_, i64>(q).fetch_one(c).await,
    }
    .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
}

/// Rows and distinct `data_hora` values in `table`.
pub async fn rows_and_distinct(conn: &mut Conn, table: &str) -> (i64, i64) {
    (
        scalar(conn, &format!("SELECT COUNT(*) FROM {table}")).await,
        scalar(
            conn,
            &format!("SELECT COUNT(DISTINCT data_hora) FROM {table}"),
        )
        .await,
    )
}

/// Polls until `table` holds at least `n` rows (bounded).
pub async fn wait_rows(conn: &mut Conn, table: &str, n: i64, timeout: Duration) -> i64 {
    let deadline = Instant::now() + timeout;
    loop {
        let have = scalar(conn, &format!("SELECT COUNT(*) FROM {table}")).await;
        if have >= n || Instant::now() > deadline {
            return have;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Drops the test's tables.
pub async fn drop_tables(conn: &mut Conn, table: &str) {
    for t in [table.to_owned(), format!("{table}_dead_letters")] {
        let _ = conn.exec(format!("DROP TABLE IF EXISTS {t}")).await;
    }
}
