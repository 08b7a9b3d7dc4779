//! Auth type 4 through the binary: a software TPM per test (swtpm), iot-sim playing DPS over
//! HTTPS and the IoT Hub side. The TPM's EK is read with `iotc-send tpm ek`, enrolled, and the
//! device registers (challenge, activation in the TPM, signed registration), connects with SAS
//! tokens its TPM signs, sends telemetry and renews its token through the TPM.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::{Value, json};
use testkit::Swtpm;
use tokio::io::{AsyncBufReadExt, BufReader};

use iotconnect::cloud::admin::Request;

use super::{Env, WAIT, admin, cmd, env, has, run};

const DEVICE: &str = "iotc-tpm-01";
const REGISTRATION: &str = "EDGEWIRE-iotc-tpm-01";

fn tpm_config(e: &Env) -> PathBuf {
    let v = json!({"cpId": "EDGEWIRE", "uniqueId": DEVICE, "env": "DEV",
        "scopeId": iotconnect::cloud::dps::ID_SCOPE,
        "discoveryUrl": format!("{}/iotconnect", e.sim.https_base().unwrap()),
        "sdkOptions": {"certificate": {"SSLCaPath": "certs/ca.pem"}}});
    let path = e.dir.path().join(format!("{DEVICE}.json"));
    std::fs::write(&path, v.to_string()).unwrap();
    path
}

fn dps_url(e: &Env) -> String {
    format!("{}/iotconnect/dps", e.sim.https_base().unwrap())
}

/// `iotc-send tpm ek` on this TPM: (EK base64, registration id).
async fn ek(cfg: &std::path::Path, sw: &Swtpm) -> (String, String) {
    let (code, ev) = run(cfg, &["tpm", "ek", "--tpm", &sw.tcti()]).await;
    assert_eq!(code, 0, "{ev:?}");
    let d = has(&ev, "tpm_ek").expect("a tpm_ek event");
    assert_eq!(d["ek_registration_id"].as_str().unwrap().len(), 52, "{d}");
    (
        d["endorsement_key"].as_str().unwrap().to_owned(),
        d["registration_id"].as_str().unwrap().to_owned(),
    )
}

/// `Authorization: Basic` for `user` and `password`, as `curl -u` sends it.
fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// iot-sim's service account: (username, password).
fn service_account(e: &Env) -> (String, String) {
    use transport::auth::ExposeSecret as _;
    let c = e
        .sim
        .listener("plain")
        .unwrap()
        .credentials
        .clone()
        .unwrap();
    let password = c.password.unwrap().expose_secret().to_owned();
    (c.username, password)
}

/// A request to iot-sim's DPS operator routes over HTTPS with `authorization` (`None`: no
/// header): (status, body).
async fn dps_as(
    e: &Env,
    authorization: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let http = transport::http::Http::new(transport::http::HttpOptions::new(
        transport::tls::TlsOptions {
            ca_files: vec![e.dir.path().join("certs/ca.pem")],
            ..Default::default()
        },
    ))
    .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(a) = authorization {
        headers.insert(reqwest::header::AUTHORIZATION, a.parse().unwrap());
    }
    let resp = http
        .send(
            "DPS",
            method.parse().unwrap(),
            &format!("{}/{path}", dps_url(e)),
            // The route reads the body as JSON whatever the content type says.
            headers,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// [`dps_as`] the operator, with iot-sim's service account.
async fn dps_rest(e: &Env, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
    let (user, password) = service_account(e);
    dps_as(e, Some(&basic(&user, &password)), method, path, body).await
}

/// An individual TPM enrolment in the DPS service API's shape.
fn enrolment(ek_b64: &str) -> Value {
    json!({"attestation": {"type": "tpm", "tpm": {"endorsementKey": ek_b64}}})
}

/// The operator's enrolment through iot-sim's HTTPS route: (status, body).
async fn enroll_rest(e: &Env, registration_id: &str, ek_b64: &str) -> (u16, String) {
    let path = format!("enrollments/{registration_id}");
    dps_rest(e, "PUT", &path, Some(enrolment(ek_b64))).await
}

type EventLines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// A TPM enrolled with iot-sim's DPS and its device running `run --simulate` every 0.3 s with
/// `extra` flags: the TPM (keep it alive), the process and its NDJSON lines.
async fn enrolled_simulating(
    e: &Env,
    extra: &[&str],
) -> (Swtpm, tokio::process::Child, EventLines) {
    let sw = Swtpm::start();
    let cfg = tpm_config(e);
    let (ek_b64, reg) = ek(&cfg, &sw).await;
    e.cloud.dps().enroll(&reg, &ek_b64).unwrap();
    let (tcti, dps) = (sw.tcti(), dps_url(e));
    let mut args = vec![
        "run",
        "--simulate",
        "--interval",
        "0.3",
        "--df",
        "0",
        "--tpm",
        &tcti,
        "--dps-url",
        &dps,
    ];
    args.extend_from_slice(extra);
    let mut child = cmd(&cfg, &args).stdout(Stdio::piped()).spawn().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (sw, child, lines)
}

/// Reads NDJSON events until one of type `until` comes after `after` events of type
/// `counted` (schema-checked, kept in `seen`); panics at the deadline.
async fn read_until(
    lines: &mut EventLines,
    seen: &mut Vec<Value>,
    (counted, after): (&str, usize),
    until: &str,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline, lines.next_line()).await else {
            panic!("no `{until}` after {after} `{counted}` before the deadline; events: {seen:#?}");
        };
        testkit::schema::validate("iotc-send", line.as_bytes());
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        assert_ne!(v["type"], "error", "{line}");
        let n = seen.iter().filter(|e| e["type"] == counted).count();
        let done = v["type"] == until && n >= after;
        seen.push(v);
        if done {
            return;
        }
    }
}

fn readings(e: &Env, n: usize) -> PathBuf {
    let input = e.dir.path().join("tpm-readings.jsonl");
    let lines: Vec<String> = (0..n)
        .map(|i| format!(r#"[{{"uniqueId":"{DEVICE}","data":{{"temperature":{i}}}}}]"#))
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    input
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tpm_device_registers_through_dps_and_sends_telemetry() {
    let e = env().await;
    let sw = Swtpm::start();
    let cfg = tpm_config(&e);
    let (ek_b64, reg) = ek(&cfg, &sw).await;
    assert_eq!(reg, REGISTRATION);
    // The operator routes take iot-sim's service account only: without it, or with another
    // password, nothing is enrolled and nothing deleted.
    let wrong = basic(&service_account(&e).0, "guess");
    for auth in [None, Some(wrong.as_str())] {
        let path = format!("enrollments/{reg}");
        let (status, body) = dps_as(&e, auth, "PUT", &path, Some(enrolment(&ek_b64))).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("EDGEWIRE_SIM_SERVICE_USERNAME"), "{body}");
        let path = format!("registrations/{reg}");
        let (status, body) = dps_as(&e, auth, "DELETE", &path, None).await;
        assert_eq!(status, 401, "{body}");
    }
    assert!(
        !e.cloud.dps().state.lock().unwrap().is_enrolled(&reg),
        "a refused request enrolled nothing"
    );
    let (status, body) = enroll_rest(&e, "EDGEWIRE-iotc-key-01", &ek_b64).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("EDGEWIRE-iotc-key-01") && body.contains("auth type 4"),
        "{body}"
    );
    let (status, body) = enroll_rest(&e, &reg, &ek_b64).await;
    assert_eq!(status, 200, "{body}");
    let input = readings(&e, 3);
    let (tcti, dps) = (sw.tcti(), dps_url(&e));
    let args = [
        "run",
        "--input",
        input.to_str().unwrap(),
        "--df",
        "0",
        "--exit-after-input",
        "--tpm",
        &tcti,
        "--dps-url",
        &dps,
    ];
    let (code, ev) = run(&cfg, &args).await;
    assert_eq!(code, 0, "{ev:?}");
    let p = has(&ev, "provisioned").expect("provisioned");
    assert_eq!(p["device_id"], DEVICE, "{p}");
    assert_eq!(p["registration_id"], REGISTRATION, "{p}");
    assert_eq!(has(&ev, "synced").unwrap()["auth_type"], 4);
    assert_eq!(e.eventually("telemetry_messages", 3).await, 3);

    // Restarted, the device is assigned already: it syncs `ds` 0 and signs with the key
    // persisted in its TPM, without registering again.
    let (code, ev) = run(&cfg, &args).await;
    assert_eq!(code, 0, "{ev:?}");
    assert!(has(&ev, "provisioned").is_none(), "{ev:?}");
    assert_eq!(e.eventually("telemetry_messages", 6).await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tpm_whose_ek_is_not_enrolled_is_refused_with_dps_sentence() {
    let e = env().await;
    let enrolled = Swtpm::start();
    let other = Swtpm::start();
    let cfg = tpm_config(&e);
    let (ek_b64, reg) = ek(&cfg, &enrolled).await;
    e.cloud.dps().enroll(&reg, &ek_b64).unwrap();
    let (tcti, dps) = (other.tcti(), dps_url(&e));
    let (code, ev) = run(
        &cfg,
        &[
            "run",
            "--exit-after-input",
            "--tpm",
            &tcti,
            "--dps-url",
            &dps,
        ],
    )
    .await;
    assert_eq!(code, 3, "a refusal exits with the rejected code: {ev:?}");
    let msg = has(&ev, "error").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains(REGISTRATION)
            && msg.contains("The device is unauthorized.")
            && msg.contains("401"),
        "{msg}"
    );
    assert_eq!(e.report("telemetry_messages"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tpm_renews_the_sas_token_before_it_expires() {
    let e = env().await;
    let (_sw, mut child, mut lines) = enrolled_simulating(&e, &["--sas-lifetime", "3"]).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let (mut renewed, mut connected_after) = (0, false);
    let mut seen = Vec::new();
    loop {
        let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline, lines.next_line()).await else {
            panic!("no renewal before the deadline; events: {seen:#?}");
        };
        seen.push(line.clone());
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        testkit::schema::validate("iotc-send", line.as_bytes());
        match v["type"].as_str() {
            Some("credentials_renewed") => renewed += 1,
            // The new session (with the renewed token) is up once it subscribed again.
            Some("subscribed") if renewed > 0 => connected_after = true,
            Some("published") if connected_after && renewed >= 2 => break,
            Some("error") => panic!("{line}"),
            _ => {}
        }
    }
    assert!(renewed >= 2 && connected_after, "renewed {renewed} times");
    // The hub accepted the renewed tokens: telemetry keeps arriving.
    let before = e.report("telemetry_messages");
    assert!(e.eventually("telemetry_messages", before + 2).await >= before + 2);
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_whose_registration_was_deleted_registers_again_on_the_next_resync() {
    let e = env().await;
    let (_sw, mut child, mut lines) = enrolled_simulating(&e, &[]).await;
    let reg = REGISTRATION;
    let mut seen = Vec::new();
    read_until(&mut lines, &mut seen, ("provisioned", 1), "published").await;

    // The operator deletes the registration state (the device moves): the hub refuses the
    // old key from now on, and the next re-sync answers `ds` 1.
    let (status, body) = dps_rest(&e, "DELETE", &format!("registrations/{reg}"), None).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = dps_rest(&e, "DELETE", "registrations/EDGEWIRE-nobody", None).await;
    assert_eq!(status, 404, "{body}");
    admin(
        &e,
        &Request::Resync {
            unique_id: DEVICE.into(),
            cmd_type: "0x12".into(),
        },
    )
    .await;
    read_until(&mut lines, &mut seen, ("provisioned", 2), "subscribed").await;
    let before = e.report("telemetry_messages");
    read_until(&mut lines, &mut seen, ("provisioned", 2), "published").await;
    assert!(
        e.eventually("telemetry_messages", before + 2).await >= before + 2,
        "the hub takes the tokens of the new key"
    );
    let provisioned: Vec<_> = seen.iter().filter(|v| v["type"] == "provisioned").collect();
    assert_eq!(provisioned.len(), 2, "{seen:#?}");
    assert_eq!(provisioned[1]["data"]["device_id"], DEVICE, "{seen:#?}");
    child.kill().await.unwrap();
}
