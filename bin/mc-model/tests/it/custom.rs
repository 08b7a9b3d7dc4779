//! `mc-model register-topic` against iot-sim's platform side: the first run registers the
//! topic from the config's `CUSTOM_TOPIC` (201) and adds the mappings, a second run takes the
//! 409s as "already there", and a topic without the client id is refused before any request.

use cloudkit::CloudSide;

use super::{Env, events, mc_model};

const MAPPINGS: &str = r#"[
  {"assetId": "a1", "aspectName": "Moisture", "variableName": "moisture",
   "variableValueExpression": "machines[].sources[].tags[?Key == 'moisture'].Values[][0]",
   "variableTimestampExpression": "machines[].sources[].tags[?Key == 'moisture'].timestamp[]",
   "timeConverter": "fromISO8601"},
  {"assetId": "a1", "aspectName": "Moisture", "variableName": "level",
   "variableValueExpression": "machines[].sources[].tags[?Key == 'level'].Values[][0]",
   "variableTimestampExpression": "machines[].sources[].tags[?Key == 'level'].timestamp[]"}
]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_topic_is_safe_to_run_twice() {
    let env = Env::start().await;
    let cwd = env.agent();
    let cfg = cwd.join("configs/mqtt-config.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for section in v.as_object_mut().unwrap().values_mut() {
        section["USE_CUSTOM_TIMESERIES"] = "True".into();
        section["CUSTOM_TOPIC"] = "clouddatastore/edgewire_mqttagent/ts".into();
    }
    std::fs::write(&cfg, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    std::fs::write(cwd.join("mappings.json"), MAPPINGS).unwrap();

    let args = [
        "register-topic",
        "--mappings",
        "mappings.json",
        "--output",
        "json",
    ];
    let out = mc_model(&cwd, &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let first: Vec<_> = events(&out)
        .into_iter()
        .filter(|(k, _)| k == "custom_topic")
        .collect();
    assert_eq!(first.len(), 1, "{first:?}");
    let d = &first[0].1;
    assert_eq!(
        (
            d["topic"].as_str(),
            d["created"].as_bool(),
            d["mappings_added"].as_u64()
        ),
        (
            Some("clouddatastore/edgewire_mqttagent/ts"),
            Some(true),
            Some(2)
        )
    );
    let out = mc_model(&cwd, &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let again = events(&out)
        .into_iter()
        .find(|(k, _)| k == "custom_topic")
        .unwrap()
        .1;
    assert_eq!(
        again["id"], d["id"],
        "the 409 path finds the same registration"
    );
    assert_eq!(
        (
            again["created"].as_bool(),
            again["mappings_added"].as_u64(),
            again["mappings_existing"].as_u64()
        ),
        (Some(false), Some(0), Some(2))
    );
    let r = env.cloud.report();
    assert_eq!((r.get("custom_topics"), r.get("custom_mappings")), (1, 2));

    let out = mc_model(
        &cwd,
        &["register-topic", "--topic", "clouddatastore/someone/ts"],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("does not contain the client id `edgewire_mqttagent`"),
        "{out:?}"
    );
    std::fs::write(
        cwd.join("bad.json"),
        r#"[{"assetId": "a1", "aspect": "x"}]"#,
    )
    .unwrap();
    let out = mc_model(&cwd, &["register-topic", "--mappings", "bad.json"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mappings `bad.json` item 1"),
        "{out:?}"
    );
    env.sim.stop().await;
}
