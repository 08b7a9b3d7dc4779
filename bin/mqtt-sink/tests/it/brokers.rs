//! The no-loss test on the other brokers people run: readings published at QoS 1 by
//! `mqtt-sink simulate` (transport's session, as `iot-sim pub` uses it) and stored by the sink,
//! with a fault mid-stream, must all end up in the table.
//!
//! - NATS (3-node cluster, MQTT over replicated JetStream): the publisher on node 1, one sink on
//!   node 2 and one on node 3 (NATS 2.9 has no `$share`, so each gets every reading and the
//!   unique key stores each once); node 3 is SIGKILLed mid-stream and started again, and its
//!   sink comes back to its persistent session there.
//! - RabbitMQ (its MQTT plugin, a durable queue per persistent session): the sink is SIGKILLed
//!   mid-stream and started again with its client id.

use std::process::Command;
use std::time::Duration;

use testkit::cli::Running;
use testkit::{NatsCluster, Postgres, RabbitMq};

use crate::{mqtt_sink, pg_rows, stop_with_summary, wait_pg_rows};

fn sink(url: &str, db: &str, id: &str) -> Command {
    let mut c = mqtt_sink();
    c.args([
        "-v",
        "--output",
        "json",
        "--progress",
        "1",
        "-b",
        url,
        "-i",
        id,
        "--preset",
        "esp32",
        "--create-table",
        "--db",
        db,
    ]);
    c
}

fn ready(r: &Running) {
    r.wait_for_stdout_line("\"type\":\"ready\"", Duration::from_secs(60));
}

/// Publishes `n` readings on `url` in paced chunks of 500 from a thread. A chunk cut by a lost
/// connection (a NATS cluster drops every node's MQTT clients while it re-elects after a kill)
/// is sent again, as an at-least-once publisher does; the sinks store each reading once.
fn publisher(url: String, n: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for chunk in 0..n / 500 {
            let t = chunk * 500;
            let mut tries = 0;
            loop {
                let out = Command::new(env!("CARGO_BIN_EXE_mqtt-sink"))
                    .args(["simulate", "-b", &url, "--count", "500", "--rate", "0"])
                    .arg("--start")
                    .arg(format!(
                        "2026-02-01 {:02}:{:02}:{:02}",
                        t / 3600,
                        t % 3600 / 60,
                        t % 60
                    ))
                    .output()
                    .unwrap();
                tries += 1;
                if out.status.success() {
                    break;
                }
                let lost = String::from_utf8_lossy(&out.stderr).contains("was lost");
                assert!(lost && tries < 5, "simulate (try {tries}): {out:?}");
            }
        }
    })
}

#[test]
fn nats_cluster_with_a_node_killed_mid_stream_loses_no_reading() {
    const N: u64 = 3000;
    let mut cluster = NatsCluster::start(3);
    let pg = Postgres::shared().database();
    let db = pg.url();
    let a = Running::spawn(&mut sink(&cluster.mqtt_url(1), &db, "nats-sink-a"));
    ready(&a);
    let b = Running::spawn(&mut sink(&cluster.mqtt_url(2), &db, "nats-sink-b"));
    ready(&b);
    let publishing = publisher(cluster.mqtt_url(0), N);
    let (before, _) = wait_pg_rows(&pg, N / 4, Duration::from_secs(120));
    cluster.kill(2);
    let (at_kill, _) = pg_rows(&pg);
    assert!(
        before >= N / 4 && at_kill < N,
        "killed mid-stream ({at_kill} rows)"
    );
    publishing.join().unwrap();
    let (total, distinct) = wait_pg_rows(&pg, N, Duration::from_secs(120));
    assert_eq!((total, distinct), (N, N), "every reading, through node 2");
    cluster.restart(2);
    // The sink on node 3 reconnects to its persistent session; what it gets again is already
    // stored.
    b.wait_for_line(
        "(connection 2, session present: true)",
        Duration::from_secs(60),
    );
    let sa = stop_with_summary(a);
    let sb = stop_with_summary(b);
    eprintln!("rows at the kill: {at_kill}; sink on node 2: {sa}; sink on node 3: {sb}");
    assert_eq!(pg_rows(&pg), (N, N), "nothing lost, each reading once");
    assert_eq!(sa["dead_lettered"], 0);
}

#[test]
fn rabbitmq_sink_killed_mid_stream_loses_no_reading() {
    const N: u64 = 5000;
    let rabbit = RabbitMq::shared();
    let pg = Postgres::shared().database();
    let db = pg.url();
    let url = rabbit.mqtt_url();
    let mut first = Running::spawn(&mut sink(&url, &db, "rabbit-sink"));
    ready(&first);
    let publishing = publisher(url.clone(), N);
    let (before, _) = wait_pg_rows(&pg, N / 5, Duration::from_secs(120));
    first.child.kill().unwrap(); // SIGKILL: no acknowledgements for what it holds
    first.child.wait().unwrap();
    let (at_kill, _) = pg_rows(&pg);
    assert!(
        before >= N / 5 && at_kill < N,
        "killed mid-stream ({at_kill} rows)"
    );
    publishing.join().unwrap();
    let second = Running::spawn(&mut sink(&url, &db, "rabbit-sink"));
    let (total, distinct) = wait_pg_rows(&pg, N, Duration::from_secs(120));
    assert_eq!((total, distinct), (N, N), "every reading once");
    let s = stop_with_summary(second);
    eprintln!("rows at the kill: {at_kill}; second run: {s}");
    assert_eq!(pg_rows(&pg), (N, N));
}
