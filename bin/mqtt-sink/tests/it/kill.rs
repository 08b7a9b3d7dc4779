//! The sink killed with SIGKILL mid-stream, then started again with the same client id: the
//! broker kept the persistent session (unacknowledged and queued readings) and every reading
//! is stored: nothing lost. Redeliveries of rows already committed are skipped by the unique
//! key; that the key does so is tested in the sink crate's `dedup.rs`, where repeats are sure to
//! arrive and the key can be switched off.

use std::time::{Duration, Instant};

use testkit::{Broker, BrokerOpts};

use crate::{Running, mqtt_sink, sqlite_counts};

const N: u64 = 20_000;

fn sink_cmd(url: &str, db: &str) -> std::process::Command {
    let mut c = mqtt_sink();
    c.args([
        "--output",
        "json",
        "-b",
        url,
        "-i",
        "sink-kill-test",
        "--persistent",
        "--preset",
        "esp32",
        "--create-table",
        "--db",
        db,
        "--progress",
        "1",
        "--batch",
        "500",
    ]);
    c
}

async fn wait_rows(path: &std::path::Path, at_least: i64, timeout: Duration) -> (i64, i64) {
    let deadline = Instant::now() + timeout;
    loop {
        let c = sqlite_counts(path, "readings").await;
        if c.0 >= at_least || Instant::now() > deadline {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_then_restart_stores_every_reading_once() {
    let b = tokio::task::block_in_place(|| {
        Broker::start(
            BrokerOpts::new()
                .max_inflight(1000)
                .max_queued(1_000_000)
                .persistence(true),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kill.db");
    let db = format!("sqlite://{}", path.display());
    let url = b.url_plain();

    let mut first = Running::spawn(&mut sink_cmd(&url, &db));
    first.wait_event("ready", Duration::from_secs(30));
    // Publish in paced chunks from another process so the kill lands mid-stream.
    let publisher = {
        let url = url.clone();
        std::thread::spawn(move || {
            for chunk in 0..(N / 1000) {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-sink"))
                    .args([
                        "simulate", "-b", &url, "--count", "1000", "--rate", "0", "--start",
                    ])
                    .arg({
                        // Each chunk's readings start where the last chunk's ended.
                        let t = chunk * 1000;
                        format!(
                            "2026-01-01 {:02}:{:02}:{:02}",
                            t / 3600,
                            t % 3600 / 60,
                            t % 60
                        )
                    })
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{out:?}");
                std::thread::sleep(Duration::from_millis(30));
            }
        })
    };
    let (before, _) = wait_rows(&path, 3000, Duration::from_secs(60)).await;
    first.child.kill().unwrap(); // SIGKILL: no clean-up, no acknowledgements for what is in hand
    first.child.wait().unwrap();
    let (at_kill, _) = sqlite_counts(&path, "readings").await;
    assert!(
        before >= 3000 && at_kill < i64::try_from(N).unwrap(),
        "killed mid-stream ({at_kill} rows)"
    );
    publisher.join().unwrap();

    let second = Running::spawn(&mut sink_cmd(&url, &db));
    let (rows, distinct) =
        wait_rows(&path, i64::try_from(N).unwrap(), Duration::from_secs(120)).await;
    let n = i64::try_from(N).unwrap();
    assert_eq!((rows, distinct), (n, n), "every reading once");
    // Let it settle, then stop it like Ctrl-C would and read its summary.
    let progress = second.wait_event("progress", Duration::from_secs(10));
    assert!(progress["received"].as_u64().unwrap() > 0);
    let pid = second.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let mut second = second;
    let status = second.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM ends the sink cleanly");
    let summary = second.wait_event("summary", Duration::from_secs(5));
    let stored = summary["stored"].as_i64().unwrap();
    eprintln!("rows at the kill: {at_kill}; second run: {summary}");
    assert_eq!(
        at_kill + stored,
        n,
        "the second run stored exactly the rest: {summary}"
    );
    assert_eq!(sqlite_counts(&path, "readings").await, (n, n));
}
