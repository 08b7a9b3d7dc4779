//! What a user gets wrong, and what the platform refuses: a wrong CLIENT_ID (caught before
//! connecting, and by the local cloud's broker rule when bypassed), a missing certificate, a
//! malformed config, a `Failed` answer with its errors (exit 3), and no answer at all (exit 1).

use std::time::Duration;

use mindconnect::agent::model::{SendOptions, prepare_instance, prepare_model, send};
use mindconnect::agent::oneshot::{self, OneShot};
use mindconnect::agent::{AgentError, silent};
use mindconnect::cloud::MindConnectCloud;
use mindconnect::config::{ConfigError, ConfigFile, Overrides, Settings};
use mindconnect::protocol::template::Kind;
use mindconnect::templates::TemplateDir;
use transport::Outcome;
use transport::session::StartError;
use transport::{ConnectError, Outbox, Qos, Session};

use super::Env;

fn edit_config(env: &Env, from: &str, to: &str) {
    let text = std::fs::read_to_string(&env.cfg).unwrap();
    assert!(text.contains(from), "{text}");
    std::fs::write(&env.cfg, text.replace(from, to)).unwrap();
}

fn resolve(env: &Env) -> Result<Settings, ConfigError> {
    Settings::resolve(ConfigFile::load(&env.cfg, None)?, &Overrides::default())
}

fn opts(secs: u64) -> SendOptions {
    SendOptions {
        timeout: Duration::from_secs(secs),
        qos: Qos::AtLeastOnce,
        instance_conf: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_id_is_refused_with_what_differs() {
    let env = Env::start(MindConnectCloud::new()).await;
    edit_config(
        &env,
        "\"CLIENT_ID\": \"edgewire_mqttagent\"",
        "\"CLIENT_ID\": \"edgewire_mqtt-agent\"",
    );
    let e = resolve(&env).unwrap_err().to_string();
    assert!(
        e.contains("CLIENT_ID `edgewire_mqtt-agent` does not match the certificate"),
        "{e}"
    );
    assert!(
        e.contains("after `edgewire_` it has `mqtt-agent` where the certificate says `mqttagent`"),
        "{e}"
    );

    // Bypassing our check, the local cloud's broker refuses the connection like Insights Hub.
    edit_config(&env, "edgewire_mqtt-agent", "edgewire_mqttagent");
    let mut o = resolve(&env).unwrap().session;
    o.client_id = "mqttagent".into();
    o.connect_timeout = Duration::from_secs(5);
    match Session::start(o, Outbox::memory(4)).await {
        Err(StartError::Connect(e @ ConnectError::Refused { .. })) => {
            assert!(e.to_string().contains("not authorized"), "{e}");
        }
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("a client id that is not <tenant>_<CN> was accepted"),
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_certificate_and_a_malformed_config_are_usage_errors() {
    let env = Env::start(MindConnectCloud::new()).await;
    std::fs::remove_file(env.agent_dir().join("agent_cert/edgewire_mqttagent.pem")).unwrap();
    let e = AgentError::from(resolve(&env).unwrap_err());
    assert_eq!(e.outcome(), Outcome::Usage);
    assert!(e.to_string().starts_with("certificates missing: DEVICE_CERT_PATH `agent_cert/edgewire_mqttagent.pem` does not exist"), "{e}");

    std::fs::write(&env.cfg, "{\"AWS\": {\"CLIENT_ID\": \"x\",}}").unwrap();
    let e = AgentError::from(resolve(&env).unwrap_err());
    assert_eq!(e.outcome(), Outcome::Usage);
    assert!(
        e.to_string()
            .contains("mqtt-config.json` is not valid JSON: trailing comma at line 1"),
        "{e}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_answer_is_reported_with_its_errors() {
    let env = Env::start(MindConnectCloud::new()).await;
    let settings = resolve(&env).unwrap();
    let dir = TemplateDir::find(None, &env.cfg).unwrap();

    // Instantiating a model that was never published.
    let p = prepare_instance(&settings, &dir.load(Kind::Instance).unwrap()).unwrap();
    let conf = env.agent_dir().join("instance.conf");
    let e = send(
        &settings,
        &p,
        &SendOptions {
            instance_conf: Some(conf.clone()),
            ..opts(15)
        },
        &silent(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.outcome(), Outcome::Rejected);
    assert!(e.to_string().contains("the platform refused the instantiation (Instantiation failed.): mdsp.core.generic.invalidRequest: model `JetPumpModel` does not exist for tenant `edgewire`"), "{e}");
    assert!(!conf.exists(), "nothing recorded on failure");

    // A model whose mapping names a variable its aspect type lacks.
    let mut p = prepare_model(&settings, &dir.load(Kind::Model).unwrap()).unwrap();
    p.payload["data"]["mappingModel"]["mappings"][1]["variableName"] = "moisture".into();
    let e = send(&settings, &p, &opts(15), &silent()).await.unwrap_err();
    assert_eq!(e.outcome(), Outcome::Rejected);
    assert!(e.to_string().contains("data.mappingModel.mappings[1].variableName: aspect type `edgewire.dht11Aspect` has no variable `moisture`"), "{e}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_platform_means_no_answer_and_exit_1() {
    // The same broker and certificates, but no MindConnect platform side listening.
    let dir = tempfile::tempdir().unwrap();
    let cloud = std::sync::Arc::new(MindConnectCloud::new());
    let sim = sim::engine::Sim::start(
        sim::engine::SimOptions {
            client_names: vec!["mqttagent".into()],
            ..sim::engine::SimOptions::in_dir(dir.path())
        },
        vec![],
    )
    .await
    .unwrap();
    let url = sim
        .listeners()
        .iter()
        .find(|l| l.name == "mtls")
        .unwrap()
        .url
        .clone();
    let cfg = mindconnect::demo::write_seed_layout(
        &dir.path().join("agent"),
        &super::demo_env(&sim, &cloud, &dir.path().join("agent")),
        &url,
    )
    .unwrap();
    let settings =
        Settings::resolve(ConfigFile::load(&cfg, None).unwrap(), &Overrides::default()).unwrap();
    let p = prepare_model(
        &settings,
        &TemplateDir::find(None, &cfg)
            .unwrap()
            .load(Kind::Model)
            .unwrap(),
    )
    .unwrap();
    let e = send(&settings, &p, &opts(1), &silent()).await.unwrap_err();
    assert_eq!(e.outcome(), Outcome::Failure);
    assert_eq!(
        e.to_string(),
        "no answer to the model request on `tc/edgewire/edgewire_mqttagent/i/amo_v3/ms` within 1 s; is the platform side running (iot-sim up) and is this agent onboarded?"
    );
    let one = OneShot {
        settings,
        timeout: Duration::from_secs(1),
        qos: Qos::AtLeastOnce,
        instance_conf: dir.path().join("instance.conf"),
    };
    assert!(matches!(
        oneshot::token(&one, &silent()).await,
        Err(AgentError::NoAnswer {
            what: "agent token",
            ..
        })
    ));
    sim.stop().await;
}
