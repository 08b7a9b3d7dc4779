//! The built `hdm-telemetry` binary: its refusals (broken env file, missing store, no env file,
//! an over-size payload) name what is wrong and exit 2; and provision → send → shadow against
//! iot-sim's local cloud, with NDJSON output and exit codes as documented.

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod secrets;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use hdm::cloud::{DEV_API_KEY, HdmCloud};
use serde_json::Value;
use sim::engine::{Sim, SimOptions};

fn bin(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_hdm-telemetry"))
        .args(args)
        .current_dir(dir)
        .env_remove("PIPENV_DOTENV_LOCATION")
        .env_remove("HDM_API_KEY")
        .env_remove("EDGEWIRE_BROKER")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    eprintln!(
        "$ hdm-telemetry {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn bin_async(dir: &Path, args: &[&str]) -> Output {
    let dir = dir.to_owned();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        bin(&dir, &a)
    })
    .await
    .unwrap()
}

/// Waits until the cloud side has recorded `n` events (re-checked on each change; 30 s).
async fn ingested(cloud: &HdmCloud, n: usize) -> Vec<hdm::protocol::envelope::Envelope> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut changes = cloud.watch();
    loop {
        let got = cloud.ingested();
        if got.len() >= n {
            return got;
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            panic!("the cloud side recorded {} of {n} events", got.len());
        }
    }
}

/// iot-sim's local cloud with the HDM cloud side, in a new folder.
async fn local_cloud() -> (tempfile::TempDir, std::path::PathBuf, HdmCloud, Sim) {
    let dir = tempfile::tempdir().unwrap();
    let cert_dir = dir.path().join("agent_cert");
    let cloud = HdmCloud::from_dev_pki(&cert_dir);
    let sim = Sim::start(
        SimOptions {
            cert_dir: cert_dir.clone(),
            ..SimOptions::in_dir(dir.path())
        },
        vec![Arc::new(cloud.clone())],
    )
    .await
    .unwrap();
    assert!(cloud.use_listeners(sim.listeners()));
    (dir, cert_dir, cloud, sim)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// NDJSON stdout, each event checked against its schema in `docs/schema/`.
fn events(o: &Output) -> Vec<Value> {
    testkit::schema::validate("hdm-telemetry", &o.stdout);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not NDJSON: {l}: {e}")))
        .collect()
}

#[test]
fn broken_env_file_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("env.stg"),
        "stage=stg\nbase_url=ftp://cfg\napi_key=k\n",
    )
    .unwrap();
    let o = bin(dir.path(), &["provision", "--stage", "stg"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("env.stg line 2") && e.contains("`base_url`"),
        "{e}"
    );
}

#[test]
fn missing_store_names_the_folder_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let o = bin(dir.path(), &["shadow", "--store", "nowhere"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("`nowhere`")
            && e.contains("devicePrivateKey.pem")
            && e.contains("hdm-telemetry provision"),
        "{e}"
    );
}

#[test]
fn no_env_file_explains_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let o = bin(dir.path(), &["send", "--demo"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--env-file PATH or --stage"),
        "{}",
        stderr(&o)
    );
    let o = bin(dir.path(), &["send", "--stage", "prd"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("env.prd") && stderr(&o).contains("does not exist"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_send_and_shadow_through_the_binary() {
    let (dir, cert_dir, cloud, sim) = local_cloud().await;
    std::fs::write(
        dir.path().join("env.dev"),
        format!(
            "stage=dev\nbase_url={}/hdm\napi_key={DEV_API_KEY}\napi_version=v2\n",
            sim.https_base().unwrap()
        ),
    )
    .unwrap();
    let ca = cert_dir.join("ca.pem");
    let ca = ca.to_str().unwrap();
    let d = dir.path();

    let o = bin_async(
        d,
        &[
            "provision",
            "--stage",
            "dev",
            "--cafile",
            ca,
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0));
    let ev = events(&o);
    assert_eq!(ev[0]["type"], "configured");
    assert_eq!(ev[1]["type"], "provisioned");
    let thing = ev[1]["data"]["thing"].as_str().unwrap().to_owned();
    assert!(d.join("certificate_store/devicePrivateKey.pem").exists());

    let o = bin_async(d, &["provision", "--stage", "dev", "--cafile", ca]).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("not provisioning again"));

    let o = bin_async(
        d,
        &[
            "send",
            "--stage",
            "dev",
            "--demo",
            "--interval",
            "0",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0));
    let summary = events(&o).pop().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(
        (
            summary["data"]["events_sent"].as_u64(),
            summary["data"]["events_confirmed"].as_u64()
        ),
        (Some(3), Some(3))
    );
    let got = ingested(&cloud, 3).await;
    assert_eq!(got.len(), 3);
    assert!(
        got.iter()
            .all(|e| e.event_type == "reference-client-test" && e.sender_id == thing)
    );

    let o = bin_async(d, &["shadow", "--output", "json"]).await;
    assert_eq!(o.status.code(), Some(0));
    let ev = events(&o);
    assert!(
        ev.iter()
            .any(|e| e["type"] == "shadow" && e["data"]["event"] == "missing"),
        "{ev:?}"
    );
    assert_eq!(ev.last().unwrap()["data"]["shadow_synced"], true);

    let big = d.join("big.json");
    std::fs::write(&big, format!("{{\"blob\":\"{}\"}}", "x".repeat(140_000))).unwrap();
    let o = bin_async(
        d,
        &[
            "send",
            "--stage",
            "dev",
            "--event-type",
            "ODA",
            "--event-subtype",
            "X",
            "--payload-file",
            "big.json",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("131072 bytes (128 KB)"),
        "{}",
        stderr(&o)
    );

    let o = bin_async(d, &["send", "--stage", "dev", "--payload", "{\"a\":1}"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no eventType") && stderr(&o).contains("--event-type"),
        "{}",
        stderr(&o)
    );

    let o = bin_async(
        d,
        &[
            "run",
            "--stage",
            "dev",
            "--demo",
            "--interval",
            "0",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0));
    let summary = events(&o).pop().unwrap();
    assert_eq!(
        (
            summary["data"]["events_confirmed"].as_u64(),
            &summary["data"]["shadow_synced"]
        ),
        (Some(3), &Value::Bool(true))
    );
    assert_eq!(
        ingested(&cloud, 6).await.len(),
        6,
        "refused events never left"
    );
    sim.stop().await;
}

/// Generation 3 through the binary: the device flow's URL and code arrive as NDJSON while the
/// binary waits; once a "person" approves the code, it onboards and `send --demo` sends the
/// lowercase demo event to the org topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen3_device_flow_prints_the_code_as_ndjson_then_sends_lowercase_events() {
    use std::io::BufRead;
    let (dir, cert_dir, cloud, sim) = local_cloud().await;
    let base = sim.https_base().unwrap().to_owned();
    std::fs::write(
        dir.path().join("env.test"),
        format!(
            "stage=stg\nbase_url={base}/hdm\nDIRECTORY_HOST={base}/hdm/directory\nDIRECTORY_OAUTH_CLIENT_ID={}\n",
            hdm::cloud::DEV_OAUTH_CLIENT_ID
        ),
    )
    .unwrap();
    let ca = cert_dir.join("ca.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hdm-telemetry"))
        .args([
            "provision",
            "--env-file",
            "env.test",
            "--output",
            "json",
            "--cafile",
        ])
        .arg(&ca)
        .current_dir(dir.path())
        .env_remove("HDM_AUTH_TOKEN")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let reader = tokio::task::spawn_blocking(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let _ = tx.send(serde_json::from_str(&line).unwrap());
        }
    });
    let mut seen = Vec::new();
    loop {
        let e = tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
            .expect("the binary ended before printing the code");
        seen.push(e.clone());
        if e["type"] == "device_authorization" {
            let code = e["data"]["user_code"].as_str().unwrap();
            assert!(
                e["data"]["verification_uri"]
                    .as_str()
                    .unwrap()
                    .starts_with("https://")
            );
            assert!(cloud.approve(code), "{e}");
            break;
        }
    }
    while let Some(e) = rx.recv().await {
        seen.push(e);
    }
    reader.await.unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "{seen:?}");
    let provisioned = seen.iter().find(|e| e["type"] == "provisioned").unwrap();
    assert_eq!(provisioned["data"]["generation"], "3");
    assert!(
        dir.path()
            .join("certificate_store/properties.json")
            .exists()
    );

    let o = bin_async(
        dir.path(),
        &[
            "send",
            "--env-file",
            "env.test",
            "--demo",
            "--count",
            "1",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut changes = cloud.watch();
    while cloud.ingested_lowercase().is_empty() {
        tokio::time::timeout_at(deadline, changes.changed())
            .await
            .expect("no lowercase event recorded")
            .unwrap();
    }
    let e = &cloud.ingested_lowercase()[0];
    assert_eq!(
        (e.eventtype.as_str(), e.eventsubtype.as_str()),
        ("generic.signal", "Status")
    );
    sim.stop().await;
}
