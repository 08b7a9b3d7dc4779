//! `mc-model sync` (v4 model synchronisation, issue #20) against iot-sim's platform side: the
//! first run creates the model, a second run with the same local model sends nothing (the sha in
//! `agent.ini` matches), a grown model sends only the missing part with the cloud's
//! referenceIds, and a `Failed` answer is reported with the field it names.

use cloudkit::CloudSide;

use super::{Env, events, mc_model};

const LOCAL: &str =
    include_str!("../../../../crates/mindconnect/tests/vectors/v4_local_model.json");

fn local_model() -> String {
    LOCAL.replace("tenantid.", "<tenantId>.")
}

fn synced(out: &std::process::Output) -> serde_json::Value {
    events(out)
        .into_iter()
        .find(|(k, _)| k == "model_synced")
        .unwrap_or_else(|| panic!("no model_synced event: {out:?}"))
        .1
}

/// The referenceIds of the saved `cloud_asset_model.json`.
fn saved_ids(cwd: &std::path::Path) -> std::collections::BTreeSet<String> {
    let text = std::fs::read(cwd.join("cloud_asset_model.json")).unwrap();
    let saved: mindconnect::protocol::v4::V4Model =
        mindconnect::protocol::v4::decode_named("saved cloud model", &text).unwrap();
    mindconnect::protocol::v4::reference_ids(&saved)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_creates_then_sends_nothing_then_only_what_is_missing() {
    let env = Env::start().await;
    let cwd = env.agent();
    std::fs::write(
        cwd.join("example_json/local_asset_model.json"),
        local_model(),
    )
    .unwrap();
    // A user's agent.ini with a key and a section we do not own.
    std::fs::write(
        cwd.join("agent.ini"),
        "[DEFAULT]\nowner = me\n\n[extra]\nk = v\n",
    )
    .unwrap();
    let args = ["sync", "--timeout", "10", "--output", "json"];

    let out = mc_model(&cwd, &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let s = synced(&out);
    assert_eq!(
        (s["sent"].as_bool(), s["elements"].as_u64()),
        (Some(true), Some(8)),
        "{s}"
    );
    let first = env.cloud.v4_model("edgewire_mqttagent").unwrap();
    let first_ids = mindconnect::protocol::v4::reference_ids(&first);
    assert_eq!(first_ids.len(), 8);
    assert_eq!(
        saved_ids(&cwd),
        first_ids,
        "cloud_asset_model.json is the cloud model after the sync, not the one before"
    );
    let r = env.cloud.report();
    assert_eq!(
        (
            r.get("v4_downloads"),
            r.get("v4_instantiations_succeeded"),
            r.get("v4_elements")
        ),
        (2, 1, 8),
        "downloaded before and, like the sample, again after the Success"
    );
    let ini = std::fs::read_to_string(cwd.join("agent.ini")).unwrap();
    assert!(
        ini.contains("model-synchronization-state = MODEL_SYNCHRONIZATION_FINISHED"),
        "{ini}"
    );
    assert!(
        ini.contains("model-synchronization-status = MODEL_SYNCHRONIZATION_SUCCESSFUL"),
        "{ini}"
    );
    assert!(
        ini.contains("owner = me") && ini.contains("[extra]\nk = v"),
        "kept: {ini}"
    );

    let out = mc_model(&cwd, &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(synced(&out)["sent"].as_bool(), Some(false));
    let r = env.cloud.report();
    assert_eq!(
        (r.get("v4_downloads"), r.get("v4_instantiations_received")),
        (2, 1),
        "an unchanged model sends nothing at all"
    );

    let mut grown: serde_json::Value = serde_json::from_str(&local_model()).unwrap();
    grown["typeModel"]["aspectTypes"][0]["variables"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "pressure", "dataType": "DOUBLE", "unit": "bar"}));
    grown["mappingModel"]["mappings"].as_array_mut().unwrap().push(serde_json::json!(
        {"dataPointId": "pressure", "assetReferenceId": "ParentJetPump", "aspectName": "dht11Aspect", "variableName": "pressure"}
    ));
    std::fs::write(
        cwd.join("example_json/local_asset_model.json"),
        serde_json::to_string_pretty(&grown).unwrap(),
    )
    .unwrap();
    let out = mc_model(&cwd, &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let s = synced(&out);
    // The grown aspect type (1 + 3 variables) and the new mapping.
    assert_eq!(
        (s["elements"].as_u64(), s["created"].as_u64()),
        (Some(5), Some(2)),
        "{s}"
    );
    let r = env.cloud.report();
    assert_eq!((r.get("v4_downloads"), r.get("v4_elements")), (4, 13));
    let second = env.cloud.v4_model("edgewire_mqttagent").unwrap();
    let second_ids = mindconnect::protocol::v4::reference_ids(&second);
    assert!(first_ids.is_subset(&second_ids), "referenceIds reused");
    assert_eq!(second_ids.len(), 10);
    assert_eq!(saved_ids(&cwd), second_ids);
    assert_eq!(
        second.instance_model.assets.len(),
        1,
        "not instantiated again"
    );
    env.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_synchronisation_is_reported_and_recorded() {
    let env = Env::start().await;
    let cwd = env.agent();
    let bad = local_model().replace(
        r#""variableName": "humidity""#,
        r#""variableName": "moisture""#,
    );
    std::fs::write(cwd.join("example_json/local_asset_model.json"), bad).unwrap();
    let out = mc_model(&cwd, &["sync", "--timeout", "10"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mappingModel.mappings[1].variableName: aspect type `edgewire.dht11Aspect` has no variable `moisture`"),
        "{err}"
    );
    let ini = std::fs::read_to_string(cwd.join("agent.ini")).unwrap();
    assert!(
        ini.contains("model-synchronization-status = MODEL_SYNCHRONIZATION_FAILED"),
        "{ini}"
    );
    assert!(
        ini.contains("model-synchronization-state = UPDATE_MODEL_TRIGGERED"),
        "{ini}"
    );
    assert_eq!(env.cloud.report().get("v4_instantiations_failed"), 1);
    env.sim.stop().await;
}

/// `mc-model sync` and `register-topic` through a real mosquitto: the device talks only to
/// mosquitto; iot-sim's platform side is another client of it and serves the HTTPS endpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_register_topic_through_mosquitto() {
    let env = Env::mosquitto().await;
    let cwd = env.agent();
    std::fs::write(
        cwd.join("example_json/local_asset_model.json"),
        local_model(),
    )
    .unwrap();
    let args = ["sync", "--timeout", "10", "--output", "json"];
    let out = mc_model(&cwd, &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let s = synced(&out);
    assert_eq!(
        (s["sent"].as_bool(), s["elements"].as_u64()),
        (Some(true), Some(8)),
        "{s}"
    );
    let first = env.cloud.v4_model("edgewire_mqttagent").unwrap();
    assert_eq!(
        saved_ids(&cwd),
        mindconnect::protocol::v4::reference_ids(&first)
    );
    let out = mc_model(&cwd, &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(synced(&out)["sent"].as_bool(), Some(false));
    let r = env.cloud.report();
    assert_eq!(
        (r.get("v4_downloads"), r.get("v4_instantiations_succeeded")),
        (2, 1)
    );

    std::fs::write(
        cwd.join("mappings.json"),
        r#"[{"assetId": "a1", "aspectName": "Moisture", "variableName": "moisture",
            "variableValueExpression": "machines[].sources[].tags[?Key == 'moisture'].Values[][0]",
            "variableTimestampExpression": "machines[].sources[].tags[?Key == 'moisture'].timestamp[]",
            "timeConverter": "fromISO8601"}]"#,
    )
    .unwrap();
    let out = mc_model(
        &cwd,
        &[
            "register-topic",
            "--topic",
            "clouddatastore/edgewire_mqttagent/ts",
            "--mappings",
            "mappings.json",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let reg = events(&out)
        .into_iter()
        .find(|(k, _)| k == "custom_topic")
        .unwrap()
        .1;
    assert_eq!(
        (reg["created"].as_bool(), reg["mappings_added"].as_u64()),
        (Some(true), Some(1))
    );
    env.sim.stop().await;
}
