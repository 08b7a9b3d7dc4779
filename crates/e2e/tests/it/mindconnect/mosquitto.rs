//! The same first and second run against a real mosquitto (mTLS, client certificate from its
//! own PKI), with the platform side run against that broker by iot-sim's engine (`--broker`)
//! and the HTTPS endpoints from iot-sim.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cloudkit::CloudSide;
use mindconnect::agent::model::{SendOptions, prepare_model, send};
use mindconnect::agent::run::run;
use mindconnect::agent::{Event, instance_created};
use mindconnect::cloud::MindConnectCloud;
use mindconnect::config::{ConfigFile, Overrides, Settings};
use mindconnect::protocol::machine::{Plan, Task};
use mindconnect::protocol::template::Kind;
use mindconnect::templates::{TemplateDir, write_builtin};
use serde_json::json;
use transport::{Outbox, Qos, Session};

use super::{collector, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_and_second_run_against_mosquitto() {
    let broker = tokio::task::block_in_place(|| testkit::Broker::start(testkit::BrokerOpts::new()));
    let dir = tempfile::tempdir().unwrap();
    let cloud = Arc::new(MindConnectCloud::new());
    let sim = sim::engine::Sim::start(
        sim::engine::SimOptions {
            external: Some(transport::SessionOptions::new(
                broker.url_plain().parse().unwrap(),
            )),
            ..sim::engine::SimOptions::in_dir(dir.path())
        },
        vec![cloud.clone() as Arc<dyn CloudSide>],
    )
    .await
    .unwrap();

    // The seed layout, written by hand: mosquitto's CA and a client certificate with CN mqttagent.
    let agent = dir.path().join("agent");
    let cert = tokio::task::block_in_place(|| broker.pki().client("mqttagent"));
    std::fs::create_dir_all(agent.join("agent_cert")).unwrap();
    std::fs::create_dir_all(agent.join("configs")).unwrap();
    std::fs::copy(&cert.cert, agent.join("agent_cert/t1_mqttagent.pem")).unwrap();
    std::fs::copy(&cert.key, agent.join("agent_cert/t1_mqttagent.key")).unwrap();
    std::fs::copy(
        broker.pki().ca_cert(),
        agent.join("agent_cert/broker-ca.pem"),
    )
    .unwrap();
    std::fs::copy(&sim.pki().ca, agent.join("agent_cert/https-ca.pem")).unwrap();
    write_builtin(&agent.join("example_json")).unwrap();
    let gw = format!("{}/mindconnect", sim.https_base().unwrap());
    let cfg = agent.join("configs/mqtt-config.json");
    std::fs::write(&cfg, json!({"AWS": {
        "IOT_HOST": broker.url_mtls(), "CLIENT_ID": "t1_mqttagent", "DEVICE_NAME": "mqttagent", "TENANT_ID": "t1",
        "CA_PATH": "agent_cert/broker-ca.pem", "DEVICE_CERT_PATH": "agent_cert/t1_mqttagent.pem", "DEVICE_KET_PATH": "agent_cert/t1_mqttagent.key",
        "MODEL_NAME": "JetPumpModel", "GW_URL": gw, "SGW_URL": gw, "PLATFORM": "AWS", "HTTP_CA_PATH": "agent_cert/https-ca.pem"
    }}).to_string()).unwrap();
    let settings =
        Settings::resolve(ConfigFile::load(&cfg, None).unwrap(), &Overrides::default()).unwrap();
    let templates = TemplateDir::find(None, &cfg).unwrap();
    let (report, seen) = collector();

    let p = prepare_model(&settings, &templates.load(Kind::Model).unwrap()).unwrap();
    send(
        &settings,
        &p,
        &SendOptions {
            timeout: Duration::from_secs(15),
            qos: Qos::AtLeastOnce,
            instance_conf: None,
        },
        &report,
    )
    .await
    .unwrap();

    let mut opts = super::first_run::options_for(
        settings.clone(),
        templates.clone(),
        agent.join("instance.conf"),
    );
    opts.plan = Plan {
        intervals: [Task::Timeseries, Task::Event, Task::File, Task::Datalake]
            .into_iter()
            .map(|t| (t, Duration::from_millis(20)))
            .collect::<BTreeMap<_, _>>(),
        count: Some(1),
        duration: Some(Duration::from_secs(60)),
        wait_commands: 1,
        answer_timeout: Duration::from_secs(15),
    };
    let operator = async {
        eventually(|| seen.lock().unwrap().iter().any(|e| matches!(e, Event::Subscribed { topics } if topics.iter().any(|t| t.ends_with("/i/cmd_v3/c"))))).await;
        let mut o = transport::SessionOptions::new(broker.url_plain().parse().unwrap());
        o.client_id = "operator".into();
        let (s, _i) = Session::start(o, Outbox::memory(4)).await.unwrap();
        let (msg, rid) = MindConnectCloud::command(
            "t1",
            "t1_mqttagent",
            "job-m",
            json!({"commandType":"light_control","execute_command":"OFF"})
                .as_object()
                .cloned()
                .unwrap(),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        s.publish(msg).await.unwrap().confirmed().await.unwrap();
        s.close(Duration::from_secs(1)).await;
        rid
    };
    let (r, rid) = tokio::join!(run(opts, std::future::pending(), report.clone()), operator);
    let r = r.unwrap();
    assert_eq!(
        (r.timeseries, r.events, r.files, r.datalake, r.commands),
        (1, 1, 1, 1, 1)
    );
    assert!(instance_created(&agent.join("instance.conf")));
    let c = cloud.clone();
    eventually(|| {
        c.report().get("commands_executed") == 1 && c.report().get("timeseries_values") == 2
    })
    .await;
    let rep = cloud.report();
    assert_eq!(
        (
            rep.get("models_accepted"),
            rep.get("instantiations_succeeded"),
            rep.get("timeseries_values"),
            rep.get("events"),
            rep.get("files"),
            rep.get("tokens_issued"),
            rep.get("datalake_objects")
        ),
        (1, 1, 2, 1, 1, 1, 1)
    );
    assert_eq!(cloud.job_statuses(&rid), ["EXECUTING", "EXECUTED"]);

    let mut second =
        super::first_run::options_for(settings, templates, agent.join("instance.conf"));
    second.plan = Plan {
        intervals: BTreeMap::from([(Task::Timeseries, Duration::from_millis(5))]),
        count: Some(4),
        duration: None,
        wait_commands: 0,
        answer_timeout: Duration::from_secs(15),
    };
    assert_eq!(
        run(second, std::future::pending(), report)
            .await
            .unwrap()
            .timeseries,
        4
    );
    eventually(|| c.report().get("timeseries_messages") == 5).await;
    assert_eq!(
        (
            cloud.report().get("timeseries_messages"),
            cloud.report().get("instantiations_received")
        ),
        (5, 1)
    );
    sim.stop().await;
}
