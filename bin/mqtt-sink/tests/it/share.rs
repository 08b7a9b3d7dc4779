//! Scale-out through the broker: three `mqtt-sink` processes in one shared-subscription group
//! (`--share`) on one mosquitto and one PostgreSQL table they create together, 30,000
//! readings, one sink SIGKILLed mid-stream and started again with its client id: the table
//! ends with exactly the 30,000 readings, and every sink stored a share.

use std::process::Command;
use std::time::Duration;

use testkit::cli::Running;
use testkit::{Broker, BrokerOpts, Postgres};

use crate::{mqtt_sink, pg_rows, stop_with_summary, wait_pg_rows};

const N: u64 = 30_000;
const CHUNK: u64 = 1000;

fn sink(broker: &Broker, db: &str, id: &str) -> Command {
    let mut c = mqtt_sink();
    c.args([
        "--output",
        "json",
        "--progress",
        "1",
        "-b",
        &broker.url_plain(),
        "-i",
        id,
        "--share",
        "sinks",
        "--preset",
        "esp32",
        "--create-table",
        "--db",
        db,
        "--batch",
        "500",
    ]);
    c
}

fn ready(r: &Running) {
    r.wait_for_stdout_line("\"type\":\"ready\"", Duration::from_secs(30));
}

#[test]
fn three_shared_sinks_one_killed_and_restarted_store_every_reading_once() {
    let broker = Broker::start(BrokerOpts::new().max_inflight(1000).max_queued(1_000_000));
    let pg = Postgres::shared().database();
    let db = pg.url();
    // Started together, against a table none of them has created yet.
    let a = Running::spawn(&mut sink(&broker, &db, "share-a"));
    let b = Running::spawn(&mut sink(&broker, &db, "share-b"));
    let c = Running::spawn(&mut sink(&broker, &db, "share-c"));
    for r in [&a, &b, &c] {
        ready(r);
    }
    let url = broker.url_plain();
    let publisher = std::thread::spawn(move || {
        for chunk in 0..N / CHUNK {
            let t = chunk * CHUNK;
            let out = Command::new(env!("CARGO_BIN_EXE_mqtt-sink"))
                .args([
                    "simulate",
                    "-b",
                    &url,
                    "--count",
                    &CHUNK.to_string(),
                    "--rate",
                    "0",
                ])
                .arg("--start")
                .arg(format!(
                    "2026-01-01 {:02}:{:02}:{:02}",
                    t / 3600,
                    t % 3600 / 60,
                    t % 60
                ))
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        }
    });
    let (before, _) = wait_pg_rows(&pg, 5000, Duration::from_secs(60));
    let mut b = b;
    b.child.kill().unwrap(); // SIGKILL: its in-flight share is neither stored nor acknowledged
    b.child.wait().unwrap();
    let (at_kill, _) = pg_rows(&pg);
    assert!(
        before >= 5000 && at_kill < N,
        "killed mid-stream ({at_kill} rows)"
    );
    let b2 = Running::spawn(&mut sink(&broker, &db, "share-b"));
    ready(&b2);
    publisher.join().unwrap();
    let (total, distinct) = wait_pg_rows(&pg, N, Duration::from_secs(120));
    assert_eq!((total, distinct), (N, N), "exactly the {N} readings");
    let stored: Vec<u64> = [a, b2, c]
        .into_iter()
        .map(|r| stop_with_summary(r)["stored"].as_u64().unwrap())
        .collect();
    eprintln!("rows at the kill: {at_kill}; stored by a, by b after its restart, by c: {stored:?}");
    assert!(
        stored.iter().all(|s| *s > 0),
        "each sink stored a share: {stored:?}"
    );
    assert!(
        stored.iter().all(|s| *s < N),
        "the broker split the stream: {stored:?}"
    );
    assert_eq!(pg_rows(&pg), (N, N));
}
