//! `mc-agent run` with the 2024 sample's `agent.ini` (issue #20): v4 model synchronisation
//! instead of the v3 instantiation, no `instance.conf`; a second start sends no model at all;
//! a refused synchronisation is reported and holds back only the timeseries.

use cloudkit::CloudSide;

use super::{Env, mc_agent};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2024_agent_ini_is_read_and_run_does_not_instantiate_again() {
    let env = Env::start().await;
    let cwd = setup(&env, &LOCAL.replace("tenantid.", "<tenantId>."));
    let out = mc_agent(&cwd, &RUN);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let synced: Vec<_> = kinds(&out)
        .into_iter()
        .filter(|(k, _)| k == "model_synced")
        .collect();
    assert_eq!(synced.len(), 1, "{out:?}");
    assert_eq!(synced[0].1["sent"].as_bool(), Some(true));
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
    let synced = kinds(&out)
        .into_iter()
        .find(|(k, _)| k == "model_synced")
        .unwrap()
        .1;
    assert_eq!(synced["sent"].as_bool(), Some(false));
    let r = env.cloud.report();
    assert_eq!(
        (
            r.get("v4_downloads"),
            r.get("v4_instantiations_received"),
            r.get("instantiations_received"),
            r.get("timeseries_values")
        ),
        (1, 1, 0, 4)
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
