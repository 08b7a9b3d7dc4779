//! The binary's contract: exit codes with sentences for bad flags, tables and databases;
//! `simulate` feeding the sink end to end with NDJSON output; `bridge-config` text.

use std::process::Command;

use sqlx::Connection;
use std::time::Duration;

use cli::output::exit;
use testkit::{Broker, BrokerOpts};

use crate::{Running, events, mqtt_sink, run, sqlite_counts};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn usage_errors_exit_2_with_a_sentence_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("u.db").display());
    let cases: [(&[&str], &str); 5] = [
        (&["--map", "temperature"], "COLUMN=/json/pointer"),
        (
            &["--map", "t=/a", "--table", "x;drop"],
            "table name `x;drop`",
        ),
        (&["--map", "t:decimal=/a"], "unknown column type `decimal`"),
        (
            &["--map", "t=/a", "--dedup", "sometimes"],
            "not a dedup mode",
        ),
        (&["--map", "t=/a", "-t", "a/#"], "table `readings`"),
    ];
    for (args, want) in cases {
        let out = run(mqtt_sink()
            .args(["-b", "127.0.0.1:1", "--db", &db])
            .args(args));
        assert_eq!(out.status.code(), Some(i32::from(exit::USAGE)), "{args:?}");
        assert!(
            stderr(&out).contains(want),
            "{args:?}: stderr lacks `{want}`"
        );
    }
    let out = run(mqtt_sink().args(["--map", "t=/a", "-t", "a", "--db", "oracle://x"]));
    assert_eq!(out.status.code(), Some(i32::from(exit::USAGE)));
    assert!(stderr(&out).contains("unknown scheme"));
}

#[test]
fn an_unreachable_database_is_a_runtime_failure_without_the_password() {
    let out = run(mqtt_sink().env("SINK_TEST_PW", "s3cret-pw").args([
        "--preset",
        "esp32",
        "--db",
        "postgres://someone@127.0.0.1:1/nowhere",
        "--db-password-env",
        "SINK_TEST_PW",
    ]));
    assert_eq!(out.status.code(), Some(i32::from(exit::FAILURE)));
    let err = stderr(&out);
    assert!(
        err.contains("cannot connect to the database postgres://someone@127.0.0.1:1/nowhere"),
        "{err}"
    );
    assert!(!err.contains("s3cret-pw"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_feeds_the_sink_end_to_end() {
    let b = tokio::task::block_in_place(|| Broker::start(BrokerOpts::new()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e2e.db");
    let db = format!("sqlite://{}", path.display());
    let sink = Running::spawn(mqtt_sink().args([
        "--output",
        "json",
        "-b",
        &b.url_plain(),
        "--preset",
        "esp32",
        "--create-table",
        "--db",
        &db,
        "--count",
        "50",
        "--store-topic",
        "--store-received-at",
    ]));
    sink.wait_event("ready", Duration::from_secs(30));
    let out = run(mqtt_sink().args([
        "--output",
        "json",
        "simulate",
        "-b",
        &b.url_plain(),
        "--count",
        "50",
        "--rate",
        "500",
    ]));
    assert_eq!(out.status.code(), Some(i32::from(exit::OK)));
    let ev = events(&String::from_utf8_lossy(&out.stdout));
    let kinds: Vec<&str> = ev.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["connection", "summary"]);
    assert_eq!(ev[1].1["confirmed"], 50);
    let summary = sink.wait_event("summary", Duration::from_secs(30));
    assert_eq!(summary["stored"], 50);
    assert_eq!(summary["dead_lettered"], 0);
    assert_eq!(sqlite_counts(&path, "readings").await, (50, 50));
}

#[test]
fn bridge_config_prints_the_aws_iot_bridge() {
    let out = run(mqtt_sink().args([
        "bridge-config",
        "--endpoint",
        "abc123-ats.iot.us-east-1.amazonaws.com",
        "--cafile",
        "/etc/mosquitto/certs/AmazonRootCA1.pem",
        "--certfile",
        "/etc/mosquitto/certs/device.crt",
        "--keyfile",
        "/etc/mosquitto/certs/device.key",
    ]));
    assert_eq!(out.status.code(), Some(i32::from(exit::OK)));
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "address abc123-ats.iot.us-east-1.amazonaws.com:8883",
        "topic esp32/pub out 1",
        "bridge_protocol_version mqttv311",
        "bridge_insecure false",
        "bridge_cafile /etc/mosquitto/certs/AmazonRootCA1.pem",
        "bridge_certfile /etc/mosquitto/certs/device.crt",
        "bridge_keyfile /etc/mosquitto/certs/device.key",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}`:\n{text}");
    }
    let out = run(mqtt_sink().args(["bridge-config", "--endpoint", "a\nbridge_insecure true"]));
    assert_eq!(out.status.code(), Some(i32::from(exit::USAGE)));
}

#[test]
fn a_clean_session_is_warned_about_naming_the_client_id_flag() {
    let args = [
        "--preset",
        "esp32",
        "--db",
        "postgres://someone@127.0.0.1:1/nowhere",
    ];
    let out = run(mqtt_sink().args(args));
    assert!(
        stderr(&out).contains("no -i/--client-id: the session is clean"),
        "{}",
        stderr(&out)
    );
    let out = run(mqtt_sink().args(args).args(["-i", "sink-1"]));
    assert!(!stderr(&out).contains("the session is clean"));
}

#[test]
fn a_share_group_with_a_slash_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let out = run(mqtt_sink().args([
        "--preset",
        "esp32",
        "--create-table",
        "--db",
        &db,
        "-i",
        "s",
        "--share",
        "a/b",
    ]));
    assert_eq!(out.status.code(), Some(i32::from(exit::USAGE)));
    assert!(stderr(&out).contains("--share `a/b`"), "{}", stderr(&out));
}

// See: issue #13, case 2 (one reading over the packet limit wedged the sink for good: 33
// reconnects in 5 s, nothing stored behind it, nothing dead-lettered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_over_the_packet_limit_is_dead_lettered_and_the_readings_behind_it_stored() {
    let b = tokio::task::block_in_place(|| Broker::start(BrokerOpts::new().persistence(true)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r5.db");
    let db = format!("sqlite://{}", path.display());
    let sink = Running::spawn(mqtt_sink().args([
        "--output",
        "json",
        "-b",
        &b.url_plain(),
        "--preset",
        "esp32",
        "--db",
        &db,
        "--create-table",
        "-i",
        "r5",
        "--count",
        "2",
    ]));
    sink.wait_event("ready", Duration::from_secs(30));
    let huge = format!(
        r#"{{"Temperature": 21.5, "Data Hora": "{}"}}"#,
        "9".repeat(300_000)
    );
    let big = dir.path().join("big.json");
    std::fs::write(&big, &huge).unwrap();
    let topic = "esp32/pub";
    let publish = |args: &[&str]| {
        let st = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &b.port_plain().to_string(),
                "-q",
                "1",
                "-t",
                topic,
            ])
            .args(args)
            .status()
            .unwrap();
        assert!(st.success());
    };
    publish(&["-f", big.to_str().unwrap()]);
    publish(&[
        "-m",
        r#"{"Temperature": 22.0, "Data Hora": "2026-12-02 10:00:00"}"#,
    ]);
    let summary = sink.wait_event("summary", Duration::from_secs(30));
    assert_eq!(
        summary["stored"], 1,
        "the reading behind it was stored: {summary}"
    );
    assert_eq!(summary["dead_lettered"], 1, "{summary}");
    let dead = sink.wait_event("dead_letter", Duration::from_secs(1));
    assert!(
        dead["error"]
            .as_str()
            .unwrap()
            .contains(&format!("{} bytes", huge.len())),
        "the dead letter says the size: {dead}"
    );
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    let (t, payload): (String, Vec<u8>) =
        sqlx::query_as("SELECT topic, payload FROM readings_dead_letters")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(t, topic);
    assert_eq!(payload, huge.as_bytes()[..payload.len()], "a prefix of it");
    assert!(payload.len() <= 1024, "only a bounded prefix is kept");
    assert_eq!(sqlite_counts(&path, "readings").await.0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_started_before_its_broker_waits_for_it_and_then_stores() {
    let mut b = tokio::task::block_in_place(|| Broker::start(BrokerOpts::new().persistence(true)));
    tokio::task::block_in_place(|| b.stop());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.db");
    let db = format!("sqlite://{}", path.display());
    let sink = Running::spawn(mqtt_sink().args([
        "--output",
        "json",
        "-b",
        &b.url_plain(),
        "--preset",
        "esp32",
        "--db",
        &db,
        "--create-table",
        "-i",
        "late",
        "--count",
        "1",
    ]));
    let down = sink.wait_event("connection", Duration::from_secs(30));
    assert_eq!(down["state"], "disconnected", "{down}");
    tokio::task::block_in_place(|| b.restart());
    sink.wait_event("ready", Duration::from_secs(30));
    let st = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &b.port_plain().to_string(),
            "-q",
            "1",
            "-t",
            "esp32/pub",
        ])
        .args([
            "-m",
            r#"{"Temperature": 20.0, "Data Hora": "2026-12-02 11:00:00"}"#,
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let summary = sink.wait_event("summary", Duration::from_secs(30));
    assert_eq!(summary["stored"], 1, "{summary}");
}
