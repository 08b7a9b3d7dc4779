//! `iot-sim fleet --profile mindconnect` against `iot-sim up`: every device is mc-agent's agent
//! loop, instantiating (v3) or synchronising (v4) the model once and sending timeseries that
//! MindConnect's platform side maps and stores; the fleet's confirmations are what it accepted.

use cli::output::exit;

use crate::fleet::{counters_when, ok_summary, sim_up, stop_sim};
use crate::{iot_sim, run};

/// `iot-sim fleet --profile mindconnect` on `broker` with certificates from iot-sim's CA.
fn mc_fleet_on(env: &serde_json::Value, broker: &str) -> std::process::Command {
    let ca = env["EDGEWIRE_SIM_CA"].as_str().unwrap();
    let ca_key = std::path::Path::new(ca).with_file_name("ca.key");
    let mut c = iot_sim();
    c.args([
        "--output",
        "json",
        "fleet",
        "--profile",
        "mindconnect",
        "-b",
        broker,
        "--cafile",
        ca,
        "--issuer-cert",
        ca,
        "--issuer-key",
        ca_key.to_str().unwrap(),
    ]);
    c
}

/// [`mc_fleet_on`] iot-sim's mTLS listener with `extra` flags, run to its end.
fn mc_fleet(env: &serde_json::Value, extra: &[&str]) -> std::process::Output {
    let mtls = env["EDGEWIRE_SIM_MTLS"].as_str().unwrap();
    run(mc_fleet_on(env, mtls).args(extra))
}

/// The counters that say the platform refused or dropped something.
fn refusals(counters: &serde_json::Value) -> Vec<String> {
    counters
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| {
            k.contains("failed")
                || k.contains("rejected")
                || k.contains("invalid")
                || k.contains("unmapped")
                || k.contains("bad_")
                || k.contains("unknown")
        })
        .cloned()
        .collect()
}

#[test]
fn sixty_v3_agents_instantiate_the_model_and_the_platform_stores_every_timeseries() {
    let dir = tempfile::tempdir().unwrap();
    let (mut up, env) = sim_up(dir.path());
    let s = ok_summary(&mc_fleet(&env, &["-n", "60", "-C", "3", "--rate", "20"]));
    assert_eq!(
        (
            &s["connected"],
            &s["failed"],
            &s["published"],
            &s["confirmed"],
            &s["publish_errors"]
        ),
        (
            &serde_json::json!(60),
            &serde_json::json!(0),
            &serde_json::json!(180),
            &serde_json::json!(180),
            &serde_json::json!(0)
        ),
        "{s}"
    );
    // Every confirmation was timed, publish to PUBACK.
    assert_eq!(s["latency_ms"]["count"], 180, "{s}");
    // The platform took the model once (published as `mc-model publish` does), instantiated
    // it for 60 distinct agents (`{tenant}_{CN}`), and mapped each timeseries' two values to
    // the instance's variables: what the fleet confirmed is what it stored.
    let counters = counters_when(dir.path(), "mindconnect", |c| {
        c["timeseries_messages"] == 180 && c["instantiations_succeeded"] == 60
    });
    assert_eq!(
        (
            &counters["agents"],
            &counters["models_accepted"],
            &counters["instantiations_received"],
            &counters["timeseries_values"]
        ),
        (
            &serde_json::json!(60),
            &serde_json::json!(1),
            &serde_json::json!(60),
            &serde_json::json!(360)
        ),
        "{counters}"
    );
    assert!(refusals(&counters).is_empty(), "refused: {counters}");
    stop_sim(&mut up);
}

#[test]
fn a_hundred_v4_agents_each_synchronise_the_local_model_before_their_timeseries() {
    let dir = tempfile::tempdir().unwrap();
    let (mut up, env) = sim_up(dir.path());
    let s = ok_summary(&mc_fleet(
        &env,
        &[
            "--mc-model-api",
            "v4",
            "--mc-tenant",
            "fleettenant",
            "--mc-device",
            "pump-%i",
            "-n",
            "100",
            "-C",
            "2",
            "--rate",
            "20",
        ],
    ));
    assert_eq!(
        (&s["connected"], &s["failed"], &s["confirmed"]),
        (
            &serde_json::json!(100),
            &serde_json::json!(0),
            &serde_json::json!(200)
        ),
        "{s}"
    );
    // Each agent downloads the cloud model, sends what it lacks, and downloads it again
    // (the sample's flow), 100 agents at once (the platform keeps each agent's download URLs
    // apart); its timeseries are mapped through the synchronised model.
    let counters = counters_when(dir.path(), "mindconnect", |c| {
        c["timeseries_messages"] == 200 && c["v4_instantiations_succeeded"] == 100
    });
    assert_eq!(
        (
            &counters["v4_downloads"],
            &counters["timeseries_values"],
            &counters["instantiations_received"]
        ),
        (
            &serde_json::json!(200),
            &serde_json::json!(400),
            &serde_json::Value::Null
        ),
        "v4 only, no v3 instantiation: {counters}"
    );
    assert!(refusals(&counters).is_empty(), "refused: {counters}");
    stop_sim(&mut up);
}

#[test]
fn mindconnect_fleets_without_issued_certificates_or_with_a_foreign_client_id_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (mut up, env) = sim_up(dir.path());
    let mtls = env["EDGEWIRE_SIM_MTLS"].as_str().unwrap();
    let ca = env["EDGEWIRE_SIM_CA"].as_str().unwrap();
    let out = run(iot_sim().args([
        "fleet",
        "--profile",
        "mindconnect",
        "-b",
        mtls,
        "--cafile",
        ca,
        "-n",
        "2",
    ]));
    assert_eq!(out.status.code(), Some(i32::from(exit::USAGE)));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--issuer-cert") && err.contains("CN"), "{err}");
    let out = mc_fleet(&env, &["-i", "dev-%i", "-n", "2"]);
    assert_eq!(out.status.code(), Some(i32::from(exit::USAGE)));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`dev-0`")
            && err.contains("edgewire_mc-fleet-0")
            && err.contains("--mc-device"),
        "{err}"
    );
    // Found before any device connected: the platform saw no agent.
    let c = crate::fleet::cloud_counters(dir.path(), "mindconnect");
    assert!(c.get("agents").is_none(), "{c}");
    stop_sim(&mut up);
}

#[test]
fn a_v3_model_the_platform_never_receives_is_a_runtime_failure_not_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut up, env) = sim_up(dir.path());
    // The options are right; nothing listens where the broker should be.
    let nowhere = format!("mqtts://localhost:{}", testkit::free_port());
    let out = run(mc_fleet_on(&env, &nowhere).args(["-n", "2", "-C", "1"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(i32::from(exit::FAILURE)), "{err}");
    assert!(err.contains("publishing the asset model"), "{err}");
    stop_sim(&mut up);
}

#[test]
fn a_fleet_agent_answers_the_command_an_operator_sends_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut up, env) = sim_up(dir.path());
    let mtls = env["EDGEWIRE_SIM_MTLS"].as_str().unwrap();
    // No --count: the agent keeps serving until the fleet is stopped.
    let mut fleet = crate::Running::spawn(mc_fleet_on(&env, mtls).args(["-n", "1", "--rate", "5"]));
    counters_when(dir.path(), "mindconnect", |c| {
        c["instantiations_succeeded"] == 1
    });
    let command = serde_json::json!({
        "id": "fleet-request-1",
        "data": {
            "jobId": "fleet-job-1",
            "createdAt": "2026-12-03T12:00:00.000Z",
            "payload": {"commandType": "actuator_control", "execute_command": "START"}
        }
    });
    let sent = run(iot_sim().args([
        "pub",
        "-b",
        env["EDGEWIRE_SIM_PLAIN"].as_str().unwrap(),
        "-u",
        env["EDGEWIRE_SIM_SERVICE_USERNAME"].as_str().unwrap(),
        "--password-file",
        env["EDGEWIRE_SIM_SERVICE_PASSWORD_FILE"].as_str().unwrap(),
        "-q",
        "1",
        "-t",
        "tc/edgewire/edgewire_mc-fleet-0/i/cmd_v3/c",
        "-m",
        &command.to_string(),
    ]));
    assert_eq!(
        sent.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    // The platform delivered it, and the agent reported EXECUTING then EXECUTED for that job.
    let counters = counters_when(dir.path(), "mindconnect", |c| {
        c["commands_sent"] == 1 && c["commands_executed"] == 1
    });
    assert_eq!(counters["commands_executing"], 1, "{counters}");
    assert!(refusals(&counters).is_empty(), "refused: {counters}");
    // The fleet stops on SIGTERM with its summary, as `iot-sim up` does.
    stop_sim(&mut fleet);
    let s = crate::fleet::summary(fleet.stdout.lock().unwrap().join("\n").as_bytes());
    assert_eq!(
        (&s["failed"], &s["interrupted"]),
        (&serde_json::json!(0), &serde_json::json!(true)),
        "{s}"
    );
    assert_eq!(s["confirmed"], s["published"], "{s}");
    stop_sim(&mut up);
}
