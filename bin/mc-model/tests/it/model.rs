//! publish, instantiate, show; the seed's config and templates unchanged; exit codes 0/1/2/3.

use cloudkit::CloudSide;

use super::{Env, events, mc_model};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_publish_instantiate_with_the_seed_layout() {
    let env = Env::start().await;
    let cwd = env.agent();

    let out = mc_model(&cwd, &["show", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let ev = events(&out);
    let prepared: Vec<_> = ev.iter().filter(|(k, _)| k == "prepared").collect();
    assert_eq!(prepared.len(), 2);
    assert_eq!(
        prepared[0].1["topic"],
        "tc/edgewire/edgewire_mqttagent/o/amo_v3/m"
    );
    assert_eq!(
        prepared[0].1["payload"]["data"]["typeModel"]["aspectTypes"][0]["id"],
        "edgewire.dht11Aspect"
    );
    assert_eq!(
        prepared[1].1["payload"]["data"]["modelExternalId"],
        "JetPumpModel"
    );
    assert_eq!(
        env.cloud.report().get("models_received"),
        0,
        "show sends nothing"
    );

    let out = mc_model(&cwd, &["publish", "--yes", "--output", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kinds: Vec<String> = events(&out).into_iter().map(|(k, _)| k).collect();
    assert!(
        kinds.ends_with(&["requested".into(), "progress".into(), "succeeded".into()]),
        "{kinds:?}"
    );

    let out = mc_model(&cwd, &["instantiate", "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("instance created; wrote CREATED to instance.conf")
    );
    assert_eq!(
        std::fs::read_to_string(cwd.join("instance.conf")).unwrap(),
        "CREATED"
    );

    let out = mc_model(&cwd, &["instantiate", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "instance.conf guards");
    assert!(String::from_utf8_lossy(&out.stderr).contains("says CREATED"));

    let out = mc_model(
        &cwd,
        &["instantiate", "--yes", "--force", "--output", "json"],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "the platform refuses a duplicate"
    );
    let (_, err) = events(&out)
        .into_iter()
        .find(|(k, _)| k == "error")
        .unwrap();
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("an asset named `JetPumpModel` already exists"),
        "{err}"
    );
    assert_eq!(err["exit_code"], 3);
    env.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_checks_and_config_errors_are_usage_errors() {
    let env = Env::start().await;
    let cwd = env.agent();
    let bad = cwd.join("bad_model.json");
    let text = std::fs::read_to_string(cwd.join("example_json/asset_model.json"))
        .unwrap()
        .replace(
            "\"variableName\": \"humidity\"",
            "\"variableName\": \"moisture\"",
        );
    std::fs::write(&bad, text).unwrap();
    let out = mc_model(&cwd, &["publish", "bad_model.json", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no variable `moisture`"));
    let out = mc_model(&cwd, &["publish", "bad_model.json", "--yes", "--no-check"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "sent anyway, the platform answers Failed"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("the platform refused the model"));

    let out = mc_model(&cwd, &["show", "-i", "edgewire_somebody"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("CLIENT_ID `edgewire_somebody` does not match the certificate")
    );

    let out = mc_model(&cwd, &["show", "-c", "configs/missing.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read the config file `configs/missing.json`")
    );
    env.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_mosquitto_without_a_platform_it_times_out_with_exit_1() {
    let broker = tokio::task::block_in_place(|| testkit::Broker::start(testkit::BrokerOpts::new()));
    let dir = tempfile::tempdir().unwrap();
    let cert = tokio::task::block_in_place(|| broker.pki().client("mqttagent"));
    std::fs::create_dir_all(dir.path().join("configs")).unwrap();
    mindconnect::templates::write_builtin(&dir.path().join("example_json")).unwrap();
    let cfg = serde_json::json!({"AWS": {"IOT_HOST": broker.url_mtls(), "CLIENT_ID": "t_mqttagent", "TENANT_ID": "t",
        "CA_PATH": broker.pki().ca_cert(), "DEVICE_CERT_PATH": cert.cert, "DEVICE_KET_PATH": cert.key, "MODEL_NAME": "JetPumpModel"}});
    std::fs::write(dir.path().join("configs/mqtt-config.json"), cfg.to_string()).unwrap();
    let out = mc_model(dir.path(), &["publish", "--yes", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "no answer to the model request on `tc/t/t_mqttagent/i/amo_v3/ms` within 1 s"
        )
    );
}
