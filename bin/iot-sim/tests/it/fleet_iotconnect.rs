//! `iot-sim fleet --profile iotconnect` against `iot-sim up` as the IoTConnect cloud: every
//! device bootstraps over HTTPS (2.1 identity, 1.0 sync), sends telemetry the platform side
//! validates and counts, and answers a command from the cloud; a missing identity is refused
//! before any device starts.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use cli::output::exit;

use crate::fleet::{counters_when, ok_summary, sim_up, stop_sim, summary};
use crate::{Running, iot_sim, run};

/// The group key of iot-sim's bulk key devices `iotc-fleet-key-%i`
/// (configs/iotconnect/template.json; a development value, not a secret).
const GROUP_KEY: &str = "ZWRnZXdpcmUtZGV2LWZsZWV0LWdyb3VwLWtleS1ub3QtYS1zZWNyZXQ=";

/// The counters that say the platform refused or could not validate something.
fn failed_checks(counters: &serde_json::Value) -> Vec<String> {
    counters
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| {
            k.contains("rejected")
                || k.contains("invalid")
                || k.contains("refused")
                || k.contains("unknown")
                || k.contains("wrong")
                || k.contains("unexpected")
        })
        .cloned()
        .collect()
}

/// The devices the platform counted values from.
fn devices_with_values(counters: &serde_json::Value) -> BTreeSet<String> {
    counters
        .as_object()
        .unwrap()
        .keys()
        .filter_map(|k| k.strip_prefix("values:").map(str::to_owned))
        .collect()
}

/// `iot-sim fleet` with iot-sim's bulk key devices (auth type 5) on message protocol 1.0,
/// against the platform `env` describes.
fn key_devices_1_0(env: &serde_json::Value) -> Command {
    let discovery = format!("{}/iotconnect", env["EDGEWIRE_SIM_HTTPS"].as_str().unwrap());
    let mut c = iot_sim();
    c.env("FLEET_GROUP_KEY", GROUP_KEY).args([
        "--output",
        "json",
        "fleet",
        "--profile",
        "iotconnect",
        "--iotc-protocol",
        "1.0",
        "--iotc-discovery-url",
        &discovery,
        "--iotc-group-key-env",
        "FLEET_GROUP_KEY",
        "--cafile",
        env["EDGEWIRE_SIM_CA"].as_str().unwrap(),
    ]);
    c
}

#[test]
fn sixty_iotconnect_devices_identify_send_telemetry_the_platform_accepts_and_ack_a_command() {
    let dir = tempfile::tempdir().unwrap();
    let (mut up, env) = sim_up(dir.path());
    let ca = env["EDGEWIRE_SIM_CA"].as_str().unwrap();
    let ca_key = std::path::Path::new(ca).with_file_name("ca.key");
    // The discovery URL from iot-sim's environment, as `eval $(iot-sim env)` leaves it.
    let mut fleet = Running::spawn(
        iot_sim()
            .env(
                "EDGEWIRE_SIM_HTTPS",
                env["EDGEWIRE_SIM_HTTPS"].as_str().unwrap(),
            )
            .args([
                "--output",
                "json",
                "fleet",
                "--profile",
                "iotconnect",
                "--cafile",
                ca,
                "--issuer-cert",
                ca,
                "--issuer-key",
                ca_key.to_str().unwrap(),
                "-n",
                "60",
                "-C",
                "3",
                "--rate",
                "10",
                "--duration",
                "25s",
                "--stats-interval",
                "100ms",
            ]),
    );
    // Every record confirmed; the devices stay connected for the command.
    fleet.wait_for_stdout(
        &["\"stats\"", "\"confirmed\":180,", "\"connected\":60,"],
        Duration::from_secs(20),
    );
    let request = r#"{"kind":"command","uniqueId":"iotc-fleet-7","command":"reboot now"}"#;
    let out = run(iot_sim().current_dir(dir.path()).args([
        "pub",
        "-b",
        env["EDGEWIRE_SIM_PLAIN"].as_str().unwrap(),
        "-u",
        env["EDGEWIRE_SIM_SERVICE_USERNAME"].as_str().unwrap(),
        "--password-file",
        env["EDGEWIRE_SIM_SERVICE_PASSWORD_FILE"].as_str().unwrap(),
        "-t",
        "iotconnect-sim/request/command",
        "-m",
        request,
    ]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The platform side matched the device's ack (2.1 `st` 2) to the command it sent; it
    // validated every reporting message against the template (a bad one counts as
    // rejected or rpt_invalid) and had 60 distinct devices identify.
    let counters = counters_when(dir.path(), "iotconnect", |c| {
        c["acks_command_ok"] == 1 && c["telemetry_messages"] == 180
    });
    assert_eq!(counters["commands_sent"], 1, "{counters}");
    assert_eq!(counters["identity_az"].as_u64(), Some(61), "{counters}");
    assert_eq!(counters["identity_request_201"], 60, "{counters}");
    assert_eq!(devices_with_values(&counters).len(), 60, "{counters}");
    assert!(
        failed_checks(&counters).is_empty(),
        "checks failed: {counters}"
    );
    let pid = fleet.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        fleet.wait(Duration::from_secs(10)),
        Some(i32::from(exit::OK))
    );
    let stdout = fleet.stdout.lock().unwrap().join("\n");
    let s = summary(stdout.as_bytes());
    assert_eq!(
        (
            &s["connected"],
            &s["failed"],
            &s["published"],
            &s["confirmed"]
        ),
        (
            &serde_json::json!(60),
            &serde_json::json!(0),
            &serde_json::json!(180),
            &serde_json::json!(180)
        ),
        "{s}"
    );
    // What the fleet counted as confirmed is what the platform accepted, each timed once.
    assert_eq!(s["confirmed"], counters["telemetry_messages"], "{s}");
    assert_eq!(s["latency_ms"]["count"], 180, "{s}");
    stop_sim(&mut up);
}

#[test]
fn iotconnect_key_devices_sync_with_protocol_1_0_and_sign_their_tokens_with_derived_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (mut up, env) = sim_up(dir.path());
    let ca = env["EDGEWIRE_SIM_CA"].as_str().unwrap();
    let discovery = format!("{}/iotconnect", env["EDGEWIRE_SIM_HTTPS"].as_str().unwrap());
    let out = run(key_devices_1_0(&env).args(["-n", "20", "-C", "2", "--rate", "20"]));
    let s = ok_summary(&out);
    assert_eq!(
        (&s["connected"], &s["published"], &s["confirmed"]),
        (
            &serde_json::json!(20),
            &serde_json::json!(40),
            &serde_json::json!(40)
        ),
        "{s}"
    );
    // Each device synced (1.0) and the broker took its SAS token, signed with the key the
    // platform derives from the same group key (a wrong one is refused at CONNECT).
    let counters = counters_when(dir.path(), "iotconnect", |c| c["telemetry_messages"] == 40);
    assert_eq!(counters["sync"].as_u64(), Some(21), "{counters}");
    assert!(counters.get("identity").is_none(), "{counters}");
    let ids = devices_with_values(&counters);
    assert!(
        ids.len() == 20 && ids.iter().all(|d| d.starts_with("iotc-fleet-key-")),
        "{counters}"
    );
    assert!(
        failed_checks(&counters).is_empty(),
        "checks failed: {counters}"
    );
    // Another group's key: every device is refused by the broker, counted, for good.
    let other = "b3RoZXItZ3JvdXAta2V5";
    let out = run(iot_sim().env("FLEET_GROUP_KEY", other).args([
        "--output",
        "json",
        "fleet",
        "--profile",
        "iotconnect",
        "--iotc-discovery-url",
        &discovery,
        "--iotc-group-key-env",
        "FLEET_GROUP_KEY",
        "--cafile",
        ca,
        "-n",
        "2",
        "-C",
        "1",
    ]));
    assert_eq!(out.status.code(), Some(i32::from(exit::FAILURE)));
    let s = summary(&out.stdout);
    assert_eq!(
        (&s["failed"], &s["confirmed"]),
        (&2.into(), &0.into()),
        "{s}"
    );
    stop_sim(&mut up);
}

#[test]
fn key_devices_renewing_their_sas_tokens_count_reconnects_not_new_devices() {
    let dir = tempfile::tempdir().unwrap();
    let (mut up, env) = sim_up(dir.path());
    // Tokens valid 3 s are renewed every 2.5 s, each with a new session: in 10 s every
    // device moves at least twice.
    let out = run(key_devices_1_0(&env).args([
        "--iotc-sas-lifetime",
        "3",
        "-n",
        "3",
        "--rate",
        "5",
        "--duration",
        "10s",
    ]));
    let s = ok_summary(&out);
    assert_eq!(
        (&s["connected"], &s["failed"], &s["connect_errors"]),
        (&3.into(), &0.into(), &serde_json::json!({})),
        "{s}"
    );
    let reconnects = s["reconnects"].as_u64().unwrap();
    assert!((6..=15).contains(&reconnects), "{s}");
    // The broker took every renewed token: telemetry went on in the later sessions. The run
    // ends mid-stream, and what was in flight then is confirmed too, as the platform counts it.
    let confirmed = s["confirmed"].as_u64().unwrap();
    assert!(confirmed >= 3 * 5 * 8, "{s}");
    assert_eq!(s["published"], s["confirmed"], "{s}");
    let counters = counters_when(dir.path(), "iotconnect", |c| {
        c["telemetry_messages"].as_u64() == Some(confirmed)
    });
    assert_eq!(devices_with_values(&counters).len(), 3, "{counters}");
    assert!(
        failed_checks(&counters).is_empty(),
        "checks failed: {counters}"
    );
    stop_sim(&mut up);
}

#[test]
fn a_fleet_stopped_mid_stream_counts_the_confirmations_that_were_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let (mut up, env) = sim_up(dir.path());
    // 4,000 records a second: at the end of --duration some are always waiting for PUBACK.
    let out = run(key_devices_1_0(&env).args(["-n", "20", "--rate", "200", "--duration", "3s"]));
    let s = ok_summary(&out);
    assert_eq!(
        (&s["connected"], &s["failed"]),
        (&20.into(), &0.into()),
        "{s}"
    );
    assert!(s["published"].as_u64().unwrap() > 2_000, "{s}");
    assert_eq!(s["published"], s["confirmed"], "{s}");
    assert_eq!(s["confirmed"], s["latency_ms"]["count"], "{s}");
    let confirmed = s["confirmed"].as_u64();
    counters_when(dir.path(), "iotconnect", |c| {
        c["telemetry_messages"].as_u64() == confirmed
    });
    stop_sim(&mut up);
}

#[test]
fn iotconnect_devices_without_an_identity_are_a_usage_error_before_any_device_starts() {
    // No platform runs: the identity is checked before any HTTPS request.
    let out = run(iot_sim().args([
        "fleet",
        "--profile",
        "iotconnect",
        "--iotc-discovery-url",
        "https://127.0.0.1:9/iotconnect",
        "-n",
        "2",
        "-C",
        "1",
    ]));
    assert_eq!(out.status.code(), Some(i32::from(exit::USAGE)));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--issuer-cert") && err.contains("--iotc-group-key-env"),
        "{err}"
    );
}
