//! `iotc-send` as a user runs it, against iot-sim in this process: exit codes, NDJSON output,
//! each subcommand, a `run` over a file, the 0x99 hard stop, and configuration errors.

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod secrets;
#[cfg(feature = "tpm")]
mod tpm;
mod v21;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use cloudkit::CloudSide;
use iotconnect::cloud::IotConnectCloud;
use iotconnect::cloud::admin::{self, Request};
use serde_json::{Value, json};
use sim::engine::{Sim, SimOptions};
use tokio::io::{AsyncBufReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(20);

/// Sends an operator request to the IoTConnect cloud side through iot-sim's plain listener
/// and waits for what it announces (`sent`; with a command, its acknowledgements).
async fn admin(e: &Env, req: &Request) -> admin::Sent {
    let mut o = e
        .sim
        .listeners()
        .iter()
        .find(|l| l.name == "plain")
        .unwrap()
        .session_options()
        .unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    o.client_id = format!("test-bin-{}-{nanos}", req.kind());
    admin::send(o, req, WAIT)
        .await
        .unwrap_or_else(|err| panic!("{req:?}: {err}"))
        .0
}

struct Env {
    sim: Sim,
    cloud: Arc<IotConnectCloud>,
    dir: tempfile::TempDir,
}

async fn env() -> Env {
    env_with(IotConnectCloud::builtin()).await
}

/// iot-sim with this cloud side (e.g. one serving a changed template).
async fn env_with(cloud: IotConnectCloud) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Arc::new(cloud);
    let sim = Sim::start(
        SimOptions {
            // The device config below names `certs/...` relative to this folder.
            cert_dir: dir.path().join("certs"),
            ..SimOptions::in_dir(dir.path())
        },
        vec![cloud.clone() as Arc<dyn CloudSide>],
    )
    .await
    .unwrap();
    Env { sim, cloud, dir }
}

impl Env {
    /// A config file in the SDK's shape, with paths relative to its folder.
    fn config(&self, unique_id: &str) -> PathBuf {
        let v = json!({"cpId": "EDGEWIRE", "uniqueId": unique_id, "env": "DEV",
        "discoveryUrl": format!("{}/iotconnect", self.sim.https_base().unwrap()),
        "sdkOptions": {
            "certificate": {"SSLCertPath": format!("certs/{unique_id}.pem"), "SSLKeyPath": format!("certs/{unique_id}.key"), "SSLCaPath": "certs/ca.pem"},
            "offlineStorage": {"disabled": false, "availSpaceInMb": 1, "fileCount": 2}
        }});
        let path = self.dir.path().join(format!("{unique_id}.json"));
        std::fs::write(&path, v.to_string()).unwrap();
        path
    }

    fn report(&self, key: &str) -> u64 {
        self.cloud.report().get(key)
    }

    /// The cloud side's counter once it reaches `want` (it may lag the broker's PUBACK), or
    /// whatever it is at the deadline.
    async fn eventually(&self, key: &str, want: u64) -> u64 {
        testkit::wait::until(WAIT, || self.report(key) >= want).await;
        self.report(key)
    }
}

fn cmd(config: &Path, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_iotc-send"));
    c.arg("-c")
        .arg(config)
        .args(["--output", "json"])
        .args(args)
        .env_remove("EDGEWIRE_BROKER")
        .kill_on_drop(true);
    c
}

/// Runs to the end; exit code and the NDJSON events.
async fn run(config: &Path, args: &[&str]) -> (i32, Vec<Value>) {
    let out = tokio::time::timeout(WAIT, cmd(config, args).output())
        .await
        .expect("iotc-send ends")
        .unwrap();
    testkit::schema::validate("iotc-send", &out.stdout);
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if !out.status.success() {
        eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.code().unwrap_or(-1), events)
}

fn has(events: &[Value], kind: &str) -> Option<Value> {
    events
        .iter()
        .find(|e| e["type"] == kind)
        .map(|e| e["data"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_subcommands() {
    let e = env().await;
    let cfg = e.config("iotc-gateway-01");
    let (code, ev) = run(&cfg, &["attributes"]).await;
    assert_eq!(code, 0, "{ev:?}");
    let atts = has(&ev, "attributes").unwrap();
    assert_eq!(atts[1]["device"]["tg"], "sensor");

    let data = r#"[{"uniqueId":"iotc-gateway-01","data":{"temperature":21,"status":"bad"}},{"uniqueId":"iotc-child-01","data":{"humidity":50}}]"#;
    let (code, ev) = run(&cfg, &["data", "--data", data]).await;
    assert_eq!(code, 0, "{ev:?}");
    assert!(
        ev.iter()
            .any(|x| x["type"] == "published" && x["data"]["kind"] == "faulty"),
        "{ev:?}"
    );
    assert_eq!(e.eventually("telemetry_values", 2).await, 2);
    assert_eq!(e.eventually("faulty_values", 1).await, 1);

    let (code, ev) = run(
        &cfg,
        &[
            "twin",
            "--set",
            "firmware=v1.4",
            "--set",
            "interval=30",
            "--get",
        ],
    )
    .await;
    assert_eq!(code, 0, "{ev:?}");
    let twin = has(&ev, "twin").unwrap();
    assert_eq!(
        (
            twin["reported"]["firmware"].clone(),
            twin["reported"]["interval"].clone()
        ),
        (json!("v1.4"), json!(30))
    );

    let (code, _) = run(
        &cfg,
        &[
            "ack",
            "--ack-id",
            "not-sent-by-the-cloud",
            "--type",
            "ota",
            "--status",
            "ok",
            "--child-id",
            "iotc-child-01",
        ],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(e.eventually("acks_unknown", 1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_sends_a_file_then_exits() {
    let e = env().await;
    let cfg = e.config("iotc-gateway-01");
    let input = e.dir.path().join("readings.jsonl");
    let lines: Vec<String> = (0..5)
        .map(|i| format!(r#"[{{"uniqueId":"iotc-gateway-01","data":{{"temperature":{i}}}}}]"#))
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n\nnot json\n").unwrap();
    let offline = e.dir.path().join("offline");
    let (code, ev) = run(
        &cfg,
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--df",
            "0",
            "--exit-after-input",
            "--offline-dir",
            offline.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{ev:?}");
    let summary = has(&ev, "summary").unwrap();
    assert!(summary["published"].as_u64().unwrap() >= 5, "{summary}");
    assert!(
        ev.iter()
            .any(|x| x["type"] == "warning"
                && x["data"]["message"].as_str().unwrap().contains("line 7")),
        "{ev:?}"
    );
    assert_eq!(e.eventually("telemetry_messages", 5).await, 5);
    assert_eq!(
        e.report("offline_messages"),
        0,
        "nothing was sent while offline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_stop_exits_with_rejected_and_a_clear_message() {
    let e = env().await;
    let cfg = e.config("iotc-gateway-01");
    let mut child = cmd(
        &cfg,
        &["run", "--simulate", "--interval", "0.2", "--df", "0"],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if line.contains(r#""type":"subscribed""#) {
            break;
        }
    }
    admin(
        &e,
        &Request::Stop {
            unique_id: "iotc-gateway-01".into(),
        },
    )
    .await;
    let mut barred = None;
    while let Ok(Some(line)) = tokio::time::timeout_at(deadline, lines.next_line())
        .await
        .unwrap()
    {
        if line.contains(r#""type":"barred""#) {
            barred = Some(line);
        }
    }
    assert!(barred.is_some_and(|l| l.contains("offline_files_removed")));
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_what_is_wrong_and_set_the_exit_code() {
    let e = env().await;
    let bad = e.dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"cpId":"EDGEWIRE","env":"DEV"}"#).unwrap();
    let (code, ev) = run(&bad, &["attributes"]).await;
    assert_eq!(code, 2);
    let msg = has(&ev, "error").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("`uniqueId`") && msg.contains("bad.json"),
        "{msg}"
    );
    let (code, ev) = run(&e.config("nobody"), &["attributes"]).await;
    assert_eq!(code, 3, "{ev:?}");
    assert!(
        has(&ev, "error").unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("DEV_NOT_FOUND")
    );
}

/// One binary, the version from the file: the lite SDK's `iotcDeviceConfig.json` with
/// `--cert`/`--key`/`--cafile` (Azure), and an `iotconnect.json` with `"protocol": "2.1"` on
/// AWS; `attributes`, `data` and `child add` speak 2.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_2_1_from_the_lite_file_and_from_iotconnect_json() {
    let e = env().await;
    let gw = "iotc-gateway-01";
    let disc = format!("{}/iotconnect", e.sim.https_base().unwrap());
    let lite = e.dir.path().join("iotcDeviceConfig.json");
    std::fs::write(
        &lite,
        json!({"ver": "2.1", "pf": "az", "cpid": "EDGEWIRE", "env": "DEV", "uid": gw,
               "did": format!("EDGEWIRE-{gw}"), "at": 2, "disc": disc})
        .to_string(),
    )
    .unwrap();
    let certs = e.dir.path().join("certs");
    let cert = certs.join(format!("{gw}.pem"));
    let key = certs.join(format!("{gw}.key"));
    let ca = certs.join("ca.pem");
    // The transport flags belong to the binary, before the subcommand.
    let tls = [
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--cafile",
        ca.to_str().unwrap(),
    ];
    let (code, ev) = run(&lite, &[&tls[..], &["attributes"][..]].concat()).await;
    assert_eq!(code, 0, "{ev:?}");
    let atts = has(&ev, "attributes").unwrap();
    assert_eq!(atts[1]["device"]["tg"], "sensor", "{atts}");
    let data = r#"[{"uniqueId":"iotc-gateway-01","data":{"temperature":21}},{"uniqueId":"iotc-child-01","data":{"humidity":500}}]"#;
    let (code, ev) = run(&lite, &[&tls[..], &["data", "--data", data][..]].concat()).await;
    assert_eq!(code, 0, "{ev:?}");
    assert_eq!(e.eventually("faulty_values", 1).await, 1);
    assert_eq!(e.report("identity_az"), 2);

    let aws = e.dir.path().join("aws.json");
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(e.config(gw)).unwrap()).unwrap();
    v["protocol"] = json!("2.1");
    v["platform"] = json!("aws");
    std::fs::write(&aws, v.to_string()).unwrap();
    let (code, ev) = run(
        &aws,
        &["child", "add", "--id", "iotc-child-09", "--tag", "sensor"],
    )
    .await;
    assert_eq!(code, 0, "{ev:?}");
    assert_eq!(has(&ev, "child").unwrap()["message"], "child created");
    let (code, ev) = run(&aws, &["child", "add", "--id", "x", "--tag", "gw"]).await;
    assert_eq!(code, 3, "a refused child is exit 3: {ev:?}");
    let err = has(&ev, "error").unwrap();
    assert!(err["message"].as_str().unwrap().contains("ec 7"), "{err}");
    assert_eq!(e.report("identity_aws"), 2);
}
