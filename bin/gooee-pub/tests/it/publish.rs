//! Publishing: what arrives, what is refused before sending, what the platform rejects, and
//! the exit code and sentence of each.

use std::time::Duration;

use testkit::Subscriber;

use crate::{CloudTask, GooeeBroker, TOKEN, events, gooee_pub, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_over_tls_and_websockets_arrives_on_the_topic_and_its_per_name_subtopic() {
    let gb = GooeeBroker::start();
    let cloud = CloudTask::start(&gb.broker.url_plain()).await;
    for (kind, url, ca) in gb.endpoints() {
        let device = format!("dev-{kind}");
        let sub = tokio::task::block_in_place(|| {
            Subscriber::start(&gb.broker, &format!("devices/{device}/#"), 1, None)
        });
        let out = run(gooee_pub(Some(TOKEN))
            .args([
                "--output",
                "json",
                "meta",
                "--device",
                &device,
                "temperature=21.5",
                "-b",
                &url,
                "--cafile",
            ])
            .arg(&ca)
            .args(["--watch-rejected", "--rejected-wait", "300"]));
        assert_eq!(out.status.code(), Some(0), "{kind}");
        let ev = events(&out.stdout);
        let kinds: Vec<&str> = ev.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["connection", "published", "no_rejection"], "{kind}");
        assert_eq!(ev[0].1["state"], "connected", "{kind}");
        assert_eq!(ev[1].1["topic"], format!("devices/{device}/meta"));
        let got = tokio::task::block_in_place(|| sub.wait_for_count(2, Duration::from_secs(10)));
        let mut topics: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
        topics.sort_unstable();
        assert_eq!(
            topics,
            [
                format!("devices/{device}/meta"),
                format!("devices/{device}/meta/temperature")
            ],
            "{kind}"
        );
    }
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_meta_name_is_refused_locally_with_exit_2_and_nothing_sent() {
    let gb = GooeeBroker::start();
    let sub =
        tokio::task::block_in_place(|| Subscriber::start(&gb.broker, "devices/dev-bad/#", 1, None));
    let out = run(gooee_pub(Some(TOKEN))
        .args(["meta", "--device", "dev-bad", "Meta_New=10"])
        .args(gb.tls_args()));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`Meta_New`")
            && err.contains("[0]/name")
            && err.contains("refused before sending"),
        "{err}"
    );
    // A valid marker afterwards: once it arrived, anything sent before it would have too.
    let out = run(gooee_pub(Some(TOKEN))
        .args(["meta", "--device", "dev-bad", "als=1"])
        .args(gb.tls_args()));
    assert_eq!(out.status.code(), Some(0));
    let got = tokio::task::block_in_place(|| sub.wait_for_count(1, Duration::from_secs(10)));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].1.contains("\"als\""), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_rejection_exits_3_with_the_platform_message() {
    let gb = GooeeBroker::start();
    let cloud = CloudTask::start(&gb.broker.url_plain()).await;
    let args = [
        "meta",
        "--device",
        "dev-r",
        "Meta_New=10",
        "--no-local-check",
        "--watch-rejected",
        "--rejected-wait",
        "10000",
    ];
    let out = run(gooee_pub(Some(TOKEN)).args(args).args(gb.tls_args()));
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("REJECTED by the platform (on devices/dev-r/meta/rejected): Invalid payload due to regex pattern not matching.  Position: [0]/name. Value: \"Meta_New\"."),
        "{text}"
    );
    let out = run(gooee_pub(Some(TOKEN))
        .args(["--output", "json"])
        .args(args)
        .args(gb.tls_args()));
    assert_eq!(out.status.code(), Some(3));
    let ev = events(&out.stdout);
    let (kind, data) = ev.last().unwrap();
    assert_eq!(kind, "rejected");
    assert_eq!(
        data["context"]["pattern"],
        "^(~?)(?!.*__.*)[a-z][a-z0-9_]+$"
    );
    assert_eq!(data["matches_sent"], true);
    assert_eq!(cloud.wait_counter("meta_rejected", 2).await, 2);
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_exits_1_naming_the_refusal() {
    let gb = GooeeBroker::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "wrong-token\n").unwrap();
    for (kind, url, ca) in gb.endpoints() {
        let out = run(gooee_pub(None)
            .args(["meta", "--device", "d", "als=1", "--password-file"])
            .arg(&file)
            .args(["-b", &url, "--cafile"])
            .arg(&ca));
        assert_eq!(out.status.code(), Some(1), "{kind}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Gooee's broker refused the login as `authorization`")
                && err.contains("not authorized"),
            "{kind}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_token_and_topics_outside_the_table_are_usage_errors() {
    let out = run(gooee_pub(None).args([
        "meta",
        "--device",
        "d",
        "als=1",
        "-b",
        "mqtts://localhost:1",
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("set GOOEE_TOKEN"));
    let out = run(gooee_pub(Some(TOKEN)).args([
        "action",
        "--building",
        "b1",
        "--type",
        "off",
        "-b",
        "mqtts://localhost:1",
    ]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`buildings/(:id)/actions` is subscribe-only")
            && err.contains("buildings/b1/fault_alarms"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_alarms_and_head_counts_reach_the_platform() {
    let gb = GooeeBroker::start();
    let cloud = CloudTask::start(&gb.broker.url_plain()).await;
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/gooee/examples");
    let meta_data = format!("{examples}/meta.json");
    let alarm_data = format!("{examples}/fault_alarm.json");
    let runs: [&[&str]; 5] = [
        &["meta", "--device", "d1", "--data", &meta_data],
        &["alarm", "--building", "b1", "--data", &alarm_data],
        &[
            "action",
            "--space",
            "s1",
            "--type",
            "off",
            "--name",
            "Turn Off the Office",
            "--value",
            "{\"transition_time\": 5}",
        ],
        &[
            "alarm",
            "--device",
            "d1",
            "--type",
            "high_temperature",
            "--level",
            "info",
            "--priority",
            "255",
            "--value",
            "{\"temp\": 100}",
            "--watch-rejected",
            "--rejected-wait",
            "300",
        ],
        &["headcount", "--space", "s1", "--kind", "headcount_in", "5"],
    ];
    for args in runs {
        let out = run(gooee_pub(Some(TOKEN)).args(args).args(gb.tls_args()));
        assert_eq!(out.status.code(), Some(0), "{args:?}");
    }
    assert_eq!(cloud.wait_counter("actions_relayed", 1).await, 1);
    assert_eq!(cloud.wait_counter("alarms_accepted", 2).await, 2);
    assert_eq!(cloud.wait_counter("meta_relayed", 2).await, 2);
    assert_eq!(cloud.wait_counter("headcounts_accepted", 1).await, 1);
    cloud.stop().await;
}
