//! The agent end to end against iot-sim (embedded broker, HTTPS discovery and sync from the
//! template, the IoTConnect cloud side): a gateway with two children, commands and OTA acked,
//! twin, edge windows and rules, `df`, the 0x99 hard stop, SAS and symmetric-key devices.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use iotconnect::agent::hook::Hook;
use iotconnect::agent::setup::setup;
use iotconnect::agent::{Collect, Event, RunOptions, RunOutcome};
use iotconnect::cloud::admin::{OtaFile, Request};
use iotconnect::cloud::http::firmware_bytes;
use serde_json::{Value, json};

use super::common::{Cloud, Running, WAIT, admin_send as admin, flags, wait_for};

const GW: &str = "iotc-gateway-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_with_two_children_sends_good_and_faulty_values() {
    let c = Cloud::start(None).await;
    let a = Running::start(
        c.config(GW, json!({})),
        &flags(None, vec![]),
        Some(Duration::ZERO),
        None,
        RunOptions::default(),
    )
    .await;
    a.wait_event("subscribed", |e| matches!(e, Event::Subscribed { .. }))
        .await;
    assert!(a.events().iter().any(|e| matches!(
        e,
        Event::Synced {
            devices: 3,
            edge: false,
            auth_type: 2,
            ..
        }
    )));
    a.send(r#"[{"uniqueId":"iotc-gateway-01","time":"2024-05-01T10:00:00.000Z","data":{"temperature":21.5,"status":"ok","gyroscope":{"x":1.5,"y":-2}}},
               {"uniqueId":"iotc-child-01","data":{"humidity":40.5,"battery":"90"}},
               {"uniqueId":"iotc-child-02","data":{"humidity":150,"battery":"low","extra":1}}]"#)
        .await;
    wait_for("reporting and faulty messages", || {
        let r = c.report();
        r.get("telemetry_messages") == 1 && r.get("faulty_messages") == 1
    })
    .await;
    let r = c.report();
    assert_eq!(r.get("values:iotc-gateway-01"), 4, "{r:?}");
    assert_eq!(r.get("values:iotc-child-01"), 2, "{r:?}");
    assert_eq!(r.get("faulty:iotc-child-02"), 3, "{r:?}");
    assert_eq!(r.get("rpt_invalid") + r.get("rejected"), 0, "{r:?}");
    assert_eq!(r.get("sync"), 1);
    assert_eq!(r.get("discovery"), 1);
    assert_eq!(a.stop().await.unwrap(), RunOutcome::Shutdown);
}

fn script(dir: &std::path::Path, name: &str, body: &str) -> Hook {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    Hook {
        program: path,
        args: Vec::new(),
        timeout: Duration::from_secs(10),
        runner: hook::Runner::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_and_ota_are_acknowledged_with_the_right_status() {
    let c = Cloud::start(None).await;
    let work = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        command_hook: Some(script(
            work.path(),
            "cmd.sh",
            r#"case "$1" in *fail*) echo "failing on purpose" >&2; exit 1;; esac; echo "done: $1 for $IOTC_UNIQUE_ID""#,
        )),
        ota_dir: Some(work.path().join("ota")),
        ota_max_bytes: 1 << 20,
        ..RunOptions::default()
    };
    let a = Running::start(
        c.config(GW, json!({})),
        &flags(None, vec![]),
        Some(Duration::ZERO),
        None,
        opts,
    )
    .await;
    a.wait_event("subscribed", |e| matches!(e, Event::Subscribed { .. }))
        .await;

    let (sent, acks) = admin(
        &c,
        Request::Command {
            unique_id: "iotc-child-01".into(),
            command: "reboot".into(),
        },
    )
    .await;
    assert_eq!(sent.cmd_type, "0x01");
    assert_eq!(
        (acks[0].mt, acks[0].st, acks[0].unique_id.as_str()),
        (5, 6, GW)
    );
    assert_eq!(acks[0].msg, "done: reboot for iotc-child-01");
    let (_, acks) = admin(
        &c,
        Request::Command {
            unique_id: GW.into(),
            command: "fail now".into(),
        },
    )
    .await;
    assert_eq!(
        (acks[0].st, acks[0].msg.as_str()),
        (4, "failing on purpose")
    );

    let base = c.base();
    let urls = vec![
        OtaFile {
            url: format!("{base}/ota/gw.bin"),
            ..OtaFile::default()
        },
        OtaFile {
            url: format!("{base}/ota/child.bin"),
            unique_id: Some("iotc-child-01".into()),
            tag: None,
        },
    ];
    let (sent, mut acks) = admin(
        &c,
        Request::Ota {
            unique_id: GW.into(),
            sw: "1.1".into(),
            hw: "1".into(),
            urls,
        },
    )
    .await;
    assert_eq!(sent.expect, 2);
    acks.sort_by(|x, y| x.child_id.cmp(&y.child_id));
    assert_eq!(
        acks.iter()
            .map(|a| (a.mt, a.st, a.child_id.as_str()))
            .collect::<Vec<_>>(),
        [(11, 7, ""), (11, 7, "iotc-child-01")]
    );
    let ack_id = sent.ack_id.unwrap();
    let child_file = work
        .path()
        .join("ota")
        .join(&ack_id)
        .join("iotc-child-01")
        .join("child.bin");
    assert_eq!(
        std::fs::read(child_file).unwrap(),
        firmware_bytes("child.bin")
    );
    assert!(a.events().iter().any(
        |e| matches!(e, Event::OtaDownloaded { unique_id, bytes: 4096, .. } if unique_id == GW)
    ));

    let bad = vec![OtaFile {
        // Plain http to another machine (loopback would be allowed, as everywhere in edgewire).
        url: "http://ota.example.com/ota/x.bin".into(),
        ..OtaFile::default()
    }];
    let (_, acks) = admin(
        &c,
        Request::Ota {
            unique_id: GW.into(),
            sw: "1".into(),
            hw: "1".into(),
            urls: bad,
        },
    )
    .await;
    assert_eq!(acks[0].st, 4);
    assert!(acks[0].msg.contains("plain http"), "{}", acks[0].msg);

    let r = c.report();
    assert_eq!(
        (
            r.get("acks_command_ok"),
            r.get("acks_ota_ok"),
            r.get("acks_failed"),
            r.get("acks_unknown")
        ),
        (1, 2, 2, 0),
        "{r:?}"
    );
    a.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_reported_desired_and_full_twin() {
    let c = Cloud::start(None).await;
    let opts = RunOptions {
        twin: vec![("firmware".into(), json!("1.2"))],
        ..RunOptions::default()
    };
    let a = Running::start(
        c.config(GW, json!({})),
        &flags(None, vec![]),
        None,
        None,
        opts,
    )
    .await;
    let full = |e: &Event| matches!(e, Event::Twin { twin } if twin["reported"]["firmware"] == "1.2" && twin["uniqueId"] == GW);
    a.wait_event("the full twin with the reported firmware", full)
        .await;
    assert_eq!(c.report().get("twin_reported"), 1);
    let desired = json!({"interval": 30}).as_object().cloned().unwrap();
    admin(
        &c,
        Request::Twin {
            unique_id: GW.into(),
            desired,
        },
    )
    .await;
    a.wait_event("the desired patch", |e| matches!(e, Event::Twin { twin } if twin["desired"]["interval"] == 30 && twin.get("reported").is_none()))
        .await;
    a.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_device_aggregates_per_window_and_matches_rules() {
    let c = Cloud::start(None).await;
    let a = Running::start(
        c.config("iotc-edge-01", json!({})),
        &flags(None, vec![]),
        None,
        None,
        RunOptions::default(),
    )
    .await;
    a.wait_event("subscribed", |e| matches!(e, Event::Subscribed { .. }))
        .await;
    for (t, p) in [(10, 1.5), (30, 2.5), (90, 2.0)] {
        a.send(&format!(
            r#"[{{"uniqueId":"iotc-edge-01","data":{{"temperature":{t},"pressure":{p}}}}}]"#
        ))
        .await;
    }
    a.wait_event("the rule's command", |e| matches!(e, Event::Command { cmd_type, command, .. } if cmd_type == "rule" && command == "fan on")).await;
    let aggregates = || -> Vec<Value> {
        c.report()
            .recent
            .iter()
            .filter_map(|n| n.strip_prefix("edge iotc-edge-01 "))
            .map(|j| serde_json::from_str(j).unwrap())
            .collect()
    };
    let count = |field: &str, idx: usize| -> u64 {
        aggregates()
            .iter()
            .filter_map(|v| v[field][idx].as_u64())
            .sum()
    };
    wait_for("all values aggregated", || count("temperature", 4) == 3).await;
    let all = aggregates();
    if all.len() == 1 {
        let t = all[0]["temperature"].as_array().unwrap();
        assert_eq!(t[..3], [json!(10), json!(90), json!(130)]);
        assert!((t[3].as_f64().unwrap() - 130.0 / 3.0).abs() < 1e-9);
        assert_eq!(t[4..], [json!(3), json!(90)]);
        assert_eq!(all[0]["pressure"], json!([1.5, 2.0]), "agt 9 = min and avg");
    }
    let r = c.report();
    assert_eq!(
        (
            r.get("telemetry_messages"),
            r.get("rule_messages"),
            r.get("rejected")
        ),
        (0, 1, 0),
        "{r:?}"
    );
    a.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn df_discards_sends_inside_the_window() {
    let c = Cloud::start(None).await;
    let a = Running::start(
        c.config(GW, json!({})),
        &flags(None, vec![]),
        None,
        None,
        RunOptions::default(),
    )
    .await;
    a.wait_event("subscribed", |e| matches!(e, Event::Subscribed { .. }))
        .await;
    for t in [1, 2, 3] {
        a.send(&format!(
            r#"[{{"uniqueId":"iotc-gateway-01","data":{{"temperature":{t}}}}}]"#
        ))
        .await;
    }
    wait_for("two throttled sends", || {
        a.count(|e| matches!(e, Event::Throttled { records: 1, .. })) == 2
    })
    .await;
    assert!(
        a.events()
            .iter()
            .any(|e| matches!(e, Event::Synced { df: 2, .. }))
    );
    wait_for("one reporting message", || {
        c.report().get("telemetry_messages") == 1
    })
    .await;
    // Sends pass again once df (2 s from sync) has elapsed: keep offering one until it does.
    let started = tokio::time::Instant::now();
    while c.report().get("telemetry_messages") < 2 {
        assert!(started.elapsed() < WAIT, "df window never reopened");
        a.send(r#"[{"uniqueId":"iotc-gateway-01","data":{"temperature":4}}]"#)
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the second send passed too early"
    );
    a.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_stop_clears_offline_data_and_ends_the_run() {
    let c = Cloud::start(None).await;
    let offline = tempfile::tempdir().unwrap();
    let cfg = c.config(GW, json!({"sdkOptions": {"offlineStorage": {"disabled": false, "availSpaceInMb": 1, "fileCount": 2}}}));
    let a = Running::start(
        cfg,
        &flags(None, vec![]),
        Some(Duration::ZERO),
        Some(offline.path()),
        RunOptions::default(),
    )
    .await;
    a.wait_event("subscribed", |e| matches!(e, Event::Subscribed { .. }))
        .await;
    a.send(r#"[{"uniqueId":"iotc-gateway-01","data":{"temperature":5}}]"#)
        .await;
    wait_for("the reading", || c.report().get("telemetry_messages") == 1).await;
    assert!(
        std::fs::read_dir(offline.path()).unwrap().count() > 0,
        "the spool is in use"
    );
    admin(
        &c,
        Request::Stop {
            unique_id: GW.into(),
        },
    )
    .await;
    let events = a.events.clone();
    assert_eq!(a.join().await.unwrap(), RunOutcome::Barred);
    assert!(events.events().iter().any(
        |e| matches!(e, Event::Barred { offline_files_removed } if *offline_files_removed > 0)
    ));
    assert_eq!(
        std::fs::read_dir(offline.path()).unwrap().count(),
        0,
        "offline data cleared"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sas_and_symmetric_key_devices_connect_with_tokens() {
    let c = Cloud::start(None).await;
    let key = c
        .side
        .template()
        .device("iotc-key-01")
        .unwrap()
        .primary_key
        .clone()
        .unwrap();
    for (id, extra) in [
        ("iotc-sas-01", json!({})),
        (
            "iotc-key-01",
            json!({"sdkOptions": {"devicePrimaryKey": key}}),
        ),
    ] {
        let events = Arc::new(Collect::default());
        let s = setup(
            c.config(id, extra),
            &flags(None, vec![]),
            None,
            Duration::from_secs(10),
            events.as_ref(),
        )
        .await
        .unwrap();
        let (mut agent, _, _) = s
            .connect(&flags(None, vec![]), None, events.clone())
            .await
            .unwrap();
        let line = format!(r#"[{{"uniqueId":"{id}","data":{{"temperature":20,"label":"x"}}}}]"#);
        let records = iotconnect::protocol::input::parse_line(1, &line)
            .unwrap()
            .unwrap();
        agent.send_data(&records, WAIT).await.unwrap();
        assert_eq!(agent.close(Duration::from_secs(2)).await, 0);
        assert!(events.events().iter().any(|e| matches!(e, Event::Synced { broker, .. } if broker.contains(&c.listener("tls_password").url.replace("mqtts://", "")))));
        wait_for("the values", || {
            c.report().get(&format!("values:{id}")) == 2
        })
        .await;
    }
    // A wrong symmetric key is refused by the broker.
    let wrong = json!({"sdkOptions": {"devicePrimaryKey": "d3Jvbmcta2V5"}});
    let events = Arc::new(Collect::default());
    let s = setup(
        c.config("iotc-key-01", wrong),
        &flags(None, vec![]),
        None,
        Duration::from_secs(10),
        events.as_ref(),
    )
    .await
    .unwrap();
    let err = s
        .connect(&flags(None, vec![]), None, events)
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("not authorized") || err.to_string().contains("refused"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_commands_refresh_sections_and_0x12_reconnects() {
    let c = Cloud::start(None).await;
    let cfg = c.config("iotc-sas-01", json!({}));
    let f = flags(None, vec![]);
    let opts = RunOptions {
        reconnect: Some(iotconnect::agent::setup::reconnect_with(
            f.clone(),
            cfg.clone(),
        )),
        ..RunOptions::default()
    };
    let a = Running::start(cfg, &f, Some(Duration::ZERO), None, opts).await;
    a.wait_event("subscribed", |e| matches!(e, Event::Subscribed { .. }))
        .await;
    let resync = |ct: &str| Request::Resync {
        unique_id: "iotc-sas-01".into(),
        cmd_type: ct.into(),
    };
    admin(&c, resync("0x10")).await;
    a.wait_event(
        "attributes synced again",
        |e| matches!(e, Event::Resynced { scope } if scope == "attribute"),
    )
    .await;
    // 0x12: the new SAS password (it carries its expiry second) means a new session.
    let started = tokio::time::Instant::now();
    while a.count(|e| matches!(e, Event::Subscribed { .. })) < 2 {
        assert!(started.elapsed() < WAIT, "no reconnect after 0x12");
        admin(&c, resync("0x12")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    a.send(r#"[{"uniqueId":"iotc-sas-01","data":{"temperature":7}}]"#)
        .await;
    wait_for("data over the new session", || {
        c.report().get("values:iotc-sas-01") == 1
    })
    .await;
    a.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_storage_is_capped_by_size_and_file_count_then_replayed() {
    let c = Cloud::start(None).await;
    let offline = tempfile::tempdir().unwrap();
    let store = json!({"sdkOptions": {"offlineStorage": {"disabled": false, "availSpaceInMb": 0.01, "fileCount": 2}}});
    // First run: the broker is unreachable (a closed port), so everything is stored.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = flags(Some(format!("mqtts://localhost:{closed}")), vec![]);
    let a = Running::start(
        c.config(GW, store.clone()),
        &down,
        Some(Duration::ZERO),
        Some(offline.path()),
        RunOptions::default(),
    )
    .await;
    for t in 0..100 {
        a.send(&format!(
            r#"[{{"uniqueId":"iotc-gateway-01","data":{{"temperature":{},"status":"ok"}}}}]"#,
            t % 80
        ))
        .await;
    }
    wait_for("100 stored readings", || {
        a.count(|e| matches!(e, Event::Published { offline: true, .. })) == 100
    })
    .await;
    let dropped: u64 = a
        .events()
        .iter()
        .map(|e| {
            if let Event::OfflineFull { count } = e {
                *count
            } else {
                0
            }
        })
        .sum();
    assert!(dropped > 0, "a 10 kB store cannot hold 100 readings");
    let segments = || {
        std::fs::read_dir(offline.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("seg-")
            })
            .count()
    };
    assert!(segments() <= 2, "fileCount caps the files: {}", segments());
    a.stop().await.unwrap();
    // Second run on the same folder: what is left is replayed, marked od=1.
    let a = Running::start(
        c.config(GW, store),
        &flags(None, vec![]),
        Some(Duration::ZERO),
        Some(offline.path()),
        RunOptions::default(),
    )
    .await;
    let kept = 100 - dropped;
    wait_for("the replay", || c.report().get("offline_messages") == kept).await;
    assert_eq!(c.report().get("telemetry_messages"), kept);
    a.stop().await.unwrap();
}
