//! `iot-sim pub`: confirmed delivery, the spool across a SIGKILL, the full-spool warning, and
//! exit codes with the sentences behind them.

use std::time::Duration;

use cli::output::exit;
use testkit::{Broker, BrokerOpts, Subscriber};

use crate::{Running, events, iot_sim, run};

#[test]
fn publishes_and_reports_a_json_summary() {
    let b = Broker::start(BrokerOpts::new());
    let sub = Subscriber::start(&b, "cli/#", 1, None);
    let out = run(iot_sim().args([
        "--output",
        "json",
        "pub",
        "-b",
        &b.url_plain(),
        "-t",
        "cli/n",
        "--numbered",
        "-C",
        "100",
    ]));
    assert_eq!(out.status.code(), Some(i32::from(exit::OK)));
    let ev = events(&out.stdout);
    let kinds: Vec<&str> = ev.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["connection", "summary"]);
    assert_eq!(ev[0].1["state"], "connected");
    assert_eq!(ev[1].1["acked"], 100);
    assert_eq!(ev[1].1["unacked"], 0);
    assert_eq!(sub.wait_for_count(100, Duration::from_secs(10)).len(), 100);
}

#[test]
fn sigkill_with_messages_in_the_spool_then_the_next_start_delivers_them() {
    let mut b = Broker::start(BrokerOpts::new().persistence(true).max_queued(1_000_000));
    let sub = Subscriber::start(&b, "kill/#", 1, Some("kill-sub"));
    b.stop();
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().to_str().unwrap();
    let url = b.url_plain();
    let mut first = Running::spawn(iot_sim().args([
        "-v",
        "pub",
        "-b",
        &url,
        "-t",
        "kill/n",
        "--numbered",
        "-C",
        "500",
        "--spool",
        spool_dir,
    ]));
    first.wait_for_line("accepted 500 message(s)", Duration::from_secs(30));
    first.child.kill().unwrap(); // SIGKILL: no clean-up runs
    first.child.wait().unwrap();

    b.restart();
    let out = run(iot_sim().args([
        "--output", "json", "pub", "-b", &url, "-t", "kill/n", "-C", "0", "--spool", spool_dir,
    ]));
    assert_eq!(out.status.code(), Some(i32::from(exit::OK)));
    let ev = events(&out.stdout);
    assert_eq!(
        summary_of(&ev)["acked"],
        500,
        "the second start sent what the first left in the spool"
    );
    let got = sub.wait_for_count(500, Duration::from_secs(30));
    let nums: Vec<u64> = got.iter().map(|(_, p)| p.parse().unwrap()).collect();
    assert_eq!(
        nums,
        (0..500).collect::<Vec<_>>(),
        "all of them, in order, once"
    );
}

#[test]
fn full_spool_warns_how_many_were_dropped() {
    let port = testkit::free_port(); // nothing listens: everything goes to the spool
    let spool = tempfile::tempdir().unwrap();
    let out = run(iot_sim().args([
        "--output",
        "json",
        "pub",
        "-b",
        &format!("mqtt://127.0.0.1:{port}"),
        "-t",
        "full/n",
        "--size",
        "1000",
        "-C",
        "3000",
        "--spool",
        spool.path().to_str().unwrap(),
        "--spool-max-mb",
        "1",
        "--spool-files",
        "4",
        "--confirm-timeout",
        "1",
    ]));
    assert_eq!(
        out.status.code(),
        Some(i32::from(exit::FAILURE)),
        "unsent messages are a failure"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("spool full: dropped the"), "{stderr}");
    let ev = events(&out.stdout);
    let summary = summary_of(&ev);
    let dropped = summary["dropped"].as_u64().unwrap();
    let unacked = summary["unacked"].as_u64().unwrap();
    assert!(
        dropped > 1000,
        "a 1 MiB spool keeps about 1,000 of 3,000: dropped {dropped}"
    );
    assert_eq!(dropped + unacked, 3000);
    assert_eq!(summary["spooled"], true);
}

#[test]
fn errors_name_what_is_wrong_and_use_the_documented_exit_codes() {
    let port = testkit::free_port();
    let out = run(iot_sim().args(["pub", "-b", &format!("127.0.0.1:{port}"), "-t", "x"]));
    assert_eq!(out.status.code(), Some(i32::from(exit::FAILURE)));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing is listening"));

    let out = run(iot_sim().args([
        "pub",
        "-b",
        "mqtts://localhost:8883",
        "--cafile",
        "/nonexistent/ca.pem",
        "-t",
        "x",
    ]));
    assert_eq!(out.status.code(), Some(i32::from(exit::USAGE)));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`/nonexistent/ca.pem`"));

    let out = run(iot_sim().args(["pub", "-b", "mqtt://example.com", "-t", "x"]));
    assert_eq!(out.status.code(), Some(i32::from(exit::USAGE)));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-plaintext"));

    let out = run(iot_sim().args(["pub", "-b", "127.0.0.1:1", "-t", "a/+/b"]));
    assert_eq!(
        out.status.code(),
        Some(i32::from(exit::USAGE)),
        "clap usage errors and bad topics exit 2"
    );

    let out = run(iot_sim().args(["pub", "--bogus"]));
    assert_eq!(out.status.code(), Some(i32::from(exit::USAGE)));
}

/// The `summary` event among a run's events.
fn summary_of(ev: &[(String, serde_json::Value)]) -> &serde_json::Value {
    &ev.iter()
        .find(|(k, _)| k == "summary")
        .unwrap_or_else(|| panic!("no summary event in {ev:?}"))
        .1
}
