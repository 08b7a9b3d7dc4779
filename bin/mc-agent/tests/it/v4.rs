//! `mc-agent run` with the 2024 sample's `agent.ini` (issue #20): v4 model synchronisation
//! instead of the v3 instantiation, no `instance.conf`; a second start sends no model at all;
//! a refused synchronisation is reported and holds back only the timeseries; `MODEL_API` and
//! `--model-api` choose the generation over agent.ini's presence, and a user's agent.ini as the
//! sample writes it after a synchronisation is read. The same on a real mosquitto, with the
//! custom data format.

use std::time::Duration;

use cloudkit::CloudSide;

use super::{CUSTOM_DOC, Env, mc_agent};

const LOCAL: &str =
    include_str!("../../../../crates/mindconnect/tests/vectors/v4_local_model.json");
/// The sample's `agent.ini` before its first synchronisation.
const AGENT_INI: &str = "[DEFAULT]\nmodel-synchronization-state = INITIATE_MODEL_DOWNLOAD\nmodel-synchronization-sha = \nmodel-synchronization-status = \n\n";

const RUN: [&str; 13] = [
    "run",
    "--count",
    "1",
    "--ts-interval",
    "10ms",
    "--event-interval",
    "10ms",
    "--file-interval",
    "off",
    "--datalake-interval",
    "off",
    "--output",
    "json",
];

fn setup(env: &Env, model: &str) -> std::path::PathBuf {
    let cwd = env.agent();
    std::fs::write(cwd.join("example_json/local_asset_model.json"), model).unwrap();
    std::fs::write(cwd.join("agent.ini"), AGENT_INI).unwrap();
    cwd
}

fn kinds(out: &std::process::Output) -> Vec<(String, serde_json::Value)> {
    testkit::cli::events_of("mindconnect", &out.stdout)
}

/// The first `model_synced` event's data.
fn synced(out: &std::process::Output) -> serde_json::Value {
    kinds(out)
        .into_iter()
        .find(|(k, _)| k == "model_synced")
        .unwrap_or_else(|| panic!("no model_synced event: {out:?}"))
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2024_agent_ini_is_read_and_run_does_not_instantiate_again() {
    let env = Env::start().await;
    let cwd = setup(&env, &LOCAL.replace("tenantid.", "<tenantId>."));
    let out = mc_agent(&cwd, &RUN);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let all: Vec<_> = kinds(&out)
        .into_iter()
        .filter(|(k, _)| k == "model_synced")
        .collect();
    assert_eq!(all.len(), 1, "{out:?}");
    assert_eq!(all[0].1["sent"].as_bool(), Some(true));
    assert!(
        !cwd.join("instance.conf").exists(),
        "v4 writes agent.ini only"
    );
    let ini = std::fs::read_to_string(cwd.join("agent.ini")).unwrap();
    assert!(ini.contains("MODEL_SYNCHRONIZATION_SUCCESSFUL"), "{ini}");
    let r = env.cloud.report();
    assert_eq!(
        (
            r.get("instantiations_received"),
            r.get("v4_instantiations_succeeded"),
            r.get("timeseries_values")
        ),
        (0, 1, 2),
        "mapped by the v4 model"
    );

    let out = mc_agent(&cwd, &RUN);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(synced(&out)["sent"].as_bool(), Some(false));
    let r = env.cloud.report();
    assert_eq!(
        (
            r.get("v4_downloads"),
            r.get("v4_instantiations_received"),
            r.get("instantiations_received"),
            r.get("timeseries_values")
        ),
        (2, 1, 0, 4),
        "the first start downloaded twice (before and after the Success), the second not at all"
    );
    env.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_synchronisation_is_reported_and_events_go_on() {
    let env = Env::start().await;
    let bad = LOCAL.replace("tenantid.", "<tenantId>.").replace(
        r#""variableName": "humidity""#,
        r#""variableName": "moisture""#,
    );
    let cwd = setup(&env, &bad);
    let out = mc_agent(&cwd, &RUN);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let warned = kinds(&out).into_iter().any(|(k, d)| {
        k == "warning"
            && d["message"].as_str().is_some_and(|m| {
                m.contains("the platform refused the model synchronisation")
                    && m.contains("has no variable `moisture`")
                    && m.contains("timeseries are held back")
            })
    });
    assert!(warned, "{out:?}");
    let r = env.cloud.report();
    assert_eq!((r.get("events"), r.get("timeseries_messages")), (1, 0));
    let ini = std::fs::read_to_string(cwd.join("agent.ini")).unwrap();
    assert!(ini.contains("MODEL_SYNCHRONIZATION_FAILED"), "{ini}");
    env.sim.stop().await;
}

fn set_key(cwd: &std::path::Path, key: &str, value: &str) {
    let cfg = cwd.join("configs/mqtt-config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    for section in v.as_object_mut().unwrap().values_mut() {
        section[key] = value.into();
    }
    std::fs::write(&cfg, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn model_api(out: &std::process::Output) -> (String, String) {
    let d = kinds(out)
        .into_iter()
        .find(|(k, _)| k == "model_api")
        .unwrap_or_else(|| panic!("no model_api event: {out:?}"))
        .1;
    (
        d["api"].as_str().unwrap().to_owned(),
        d["chosen_by"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_api_chooses_the_generation_and_a_synced_2024_agent_ini_is_read() {
    let env = Env::start().await;
    let cwd = env.agent();
    let local = LOCAL.replace("tenantid.", "<tenantId>.");
    std::fs::write(cwd.join("example_json/local_asset_model.json"), &local).unwrap();

    // No agent.ini: MODEL_API says v4, so the first start synchronises and creates the file.
    set_key(&cwd, "MODEL_API", "v4");
    let out = mc_agent(&cwd, &RUN);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(model_api(&out), ("v4".into(), "MODEL_API".into()));
    assert!(!cwd.join("instance.conf").exists());
    assert_eq!(env.cloud.report().get("v4_instantiations_succeeded"), 1);

    // The user's agent.ini as the 2024 sample's configparser writes it after a successful
    // synchronisation of this very local model file.
    set_key(&cwd, "MODEL_API", "");
    let sha = mindconnect::protocol::v4::sha256_hex(local.as_bytes());
    let users = format!(
        "[DEFAULT]\nmodel-synchronization-state = MODEL_SYNCHRONIZATION_FINISHED\nmodel-synchronization-sha = {sha}\nmodel-synchronization-status = MODEL_SYNCHRONIZATION_SUCCESSFUL\n\n"
    );
    std::fs::write(cwd.join("agent.ini"), &users).unwrap();
    let out = mc_agent(&cwd, &RUN);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(model_api(&out), ("v4".into(), "agent.ini exists".into()));
    assert_eq!(synced(&out)["sent"].as_bool(), Some(false), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(cwd.join("agent.ini")).unwrap(),
        users,
        "an agent.ini in sync is left as the user has it"
    );
    let r = env.cloud.report();
    assert_eq!(
        (r.get("v4_downloads"), r.get("timeseries_values")),
        (2, 4),
        "nothing asked of the Asset Modeler; timeseries mapped by the existing model"
    );

    // The flag beats the file: v3 instantiates (and is refused: no v3 model was published).
    let mut args = RUN.to_vec();
    args.extend(["--model-api", "v3"]);
    let out = mc_agent(&cwd, &args);
    assert_eq!(model_api(&out), ("v3".into(), "--model-api".into()));
    assert_eq!(
        env.cloud.report().get("instantiations_received"),
        1,
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(cwd.join("agent.ini")).unwrap(),
        users
    );

    let out = mc_agent(&cwd, &["run", "--model-api", "v5"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("use v3 (amo_v3, instance.conf) or v4"));
    set_key(&cwd, "MODEL_API", "amo_v5");
    let out = mc_agent(&cwd, &RUN);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("MODEL_API amo_v5: expected \"v3\""),
        "{out:?}"
    );
    set_key(&cwd, "MODEL_API", "v4");
    let mut args = RUN.to_vec();
    args.push("--assume-instantiated");
    let out = mc_agent(&cwd, &args);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--assume-instantiated is for v3"),
        "{out:?}"
    );
    env.sim.stop().await;
}

/// v4 `run` and the custom data format through a real mosquitto: the device talks only to
/// mosquitto; iot-sim's platform side is another client of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_run_and_custom_data_through_mosquitto() {
    let env = Env::mosquitto().await;
    let cwd = setup(&env, &LOCAL.replace("tenantid.", "<tenantId>."));
    let out = mc_agent(&cwd, &RUN);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(synced(&out)["sent"].as_bool(), Some(true), "{out:?}");
    let cloud = env.cloud.clone();
    testkit::wait::until(Duration::from_secs(10), || {
        cloud.report().get("timeseries_values") == 2 && cloud.report().get("events") == 1
    })
    .await;
    let r = env.cloud.report();
    assert_eq!(
        (
            r.get("v4_instantiations_succeeded"),
            r.get("instantiations_received"),
            r.get("timeseries_values"),
            r.get("unmapped_values"),
            r.get("events")
        ),
        (1, 0, 2, 0, 1)
    );
    let ini = std::fs::read_to_string(cwd.join("agent.ini")).unwrap();
    assert!(ini.contains("MODEL_SYNCHRONIZATION_SUCCESSFUL"), "{ini}");

    let topic = "clouddatastore/edgewire_mqttagent/ts";
    env.register_custom_topic(topic).await;
    std::fs::write(cwd.join("custom.json"), CUSTOM_DOC).unwrap();
    let out = mc_agent(&cwd, &["custom", "--topic", topic, "--data", "custom.json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let cloud = env.cloud.clone();
    testkit::wait::until(Duration::from_secs(10), || {
        cloud
            .custom_topic(topic)
            .is_some_and(|c| !c.documents.is_empty())
    })
    .await;
    assert_eq!(
        env.cloud.custom_topic(topic).unwrap().documents,
        [serde_json::from_str::<serde_json::Value>(CUSTOM_DOC).unwrap()],
        "arrived unchanged through mosquitto"
    );
    env.sim.stop().await;
}
