//! The agent's full first run against iot-sim's embedded broker (mTLS, the platform's identity
//! and topic rules on) and HTTPS endpoints: model, instance, `instance.conf`, timeseries, event,
//! file, token, datalake upload, commands (built-in and a hook); then a second run that does
//! not instantiate again, and a token refresh.

use std::collections::BTreeMap;
use std::time::Duration;

use mindconnect::agent::model::{SendOptions, prepare_model, send};
use mindconnect::agent::oneshot::{self, OneShot};
use mindconnect::agent::run::{RunOptions, run};
use mindconnect::agent::source::ValueSource;
use mindconnect::agent::{Event, Reporter, instance_created};
use mindconnect::cloud::{DEMO_TENANT, MindConnectCloud};
use mindconnect::protocol::machine::{Plan, Task};
use mindconnect::protocol::template::Kind;
use mindconnect::templates::TemplateDir;
use serde_json::json;
use transport::{Outbox, Qos, Session};

use super::{Env, collector, eventually};

fn plan(
    tasks: &[Task],
    every_ms: u64,
    count: Option<u64>,
    wait_commands: u64,
    duration: Option<Duration>,
) -> Plan {
    Plan {
        intervals: tasks
            .iter()
            .map(|t| (*t, Duration::from_millis(every_ms)))
            .collect(),
        count,
        duration,
        wait_commands,
        answer_timeout: Duration::from_secs(15),
    }
}

fn options(env: &Env, plan: Plan, hooks: BTreeMap<String, String>) -> RunOptions {
    let mut o = options_for(
        env.settings(),
        TemplateDir::find(None, &env.cfg).unwrap(),
        env.agent_dir().join("instance.conf"),
    );
    o.plan = plan;
    o.hooks = hooks;
    o
}

/// Run options with no tasks, no hooks and the simulation as the value source.
pub(crate) fn options_for(
    settings: mindconnect::config::Settings,
    templates: TemplateDir,
    instance_conf: std::path::PathBuf,
) -> RunOptions {
    RunOptions {
        settings,
        templates,
        instance_conf: Some(instance_conf),
        plan: plan(&[], 1000, Some(1), 0, None),
        values: ValueSource::Simulated,
        file: None,
        datalake_file: None,
        hooks: BTreeMap::new(),
        hook_timeout: Duration::from_secs(10),
        hook_runner: hook::Runner::default(),
        qos: Qos::AtLeastOnce,
        outbox: Outbox::memory(1024),
        assume_instantiated: false,
        model_sync: None,
    }
}

async fn publish_model(env: &Env, report: &Reporter) {
    let settings = env.settings();
    let t = TemplateDir::find(None, &env.cfg)
        .unwrap()
        .load(Kind::Model)
        .unwrap();
    let p = prepare_model(&settings, &t).unwrap();
    assert!(p.issues.is_empty(), "{:?}", p.issues);
    send(
        &settings,
        &p,
        &SendOptions {
            timeout: Duration::from_secs(15),
            qos: Qos::AtLeastOnce,
            instance_conf: None,
        },
        report,
    )
    .await
    .unwrap();
}

/// Delivers `payloads` as commands once the agent has subscribed; returns their request ids.
async fn operator(
    env: &Env,
    seen: &std::sync::Arc<std::sync::Mutex<Vec<Event>>>,
    payloads: Vec<serde_json::Value>,
) -> Vec<String> {
    eventually(|| seen.lock().unwrap().iter().any(|e| matches!(e, Event::Subscribed { topics } if topics.iter().any(|t| t.ends_with("/i/cmd_v3/c"))))).await;
    let plain = env
        .sim
        .listeners()
        .iter()
        .find(|l| l.name == "plain")
        .unwrap();
    let mut o = plain.session_options().unwrap();
    o.client_id = "operator".into();
    let (s, _i) = Session::start(o, Outbox::memory(8)).await.unwrap();
    let mut ids = Vec::new();
    for (n, p) in payloads.into_iter().enumerate() {
        let (msg, rid) = MindConnectCloud::command(
            DEMO_TENANT,
            "edgewire_mqttagent",
            &format!("job{n}"),
            p.as_object().cloned().unwrap(),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        s.publish(msg).await.unwrap().confirmed().await.unwrap();
        ids.push(rid);
    }
    s.close(Duration::from_secs(1)).await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_does_everything_and_the_second_does_not_instantiate() {
    let env = Env::start(MindConnectCloud::new()).await;
    let (report, seen) = collector();
    publish_model(&env, &report).await;
    assert_eq!(env.report().get("models_accepted"), 1);

    let all = [Task::Timeseries, Task::Event, Task::File, Task::Datalake];
    let hooks = BTreeMap::from([(
        "reboot".to_owned(),
        "echo \"rebooted $MC_EXECUTE_COMMAND\"".to_owned(),
    )]);
    let opts = options(
        &env,
        plan(&all, 50, Some(2), 2, Some(Duration::from_secs(60))),
        hooks,
    );
    let commands = vec![
        json!({"commandType": "actuator_control", "execute_command": "START"}),
        json!({"commandType": "reboot", "execute_command": "NOW"}),
    ];
    let (summary, ids) = tokio::join!(
        run(opts, std::future::pending(), report.clone()),
        operator(&env, &seen, commands)
    );
    let summary = summary.unwrap();
    assert_eq!(
        (
            summary.timeseries,
            summary.events,
            summary.files,
            summary.datalake,
            summary.commands,
            summary.unconfirmed
        ),
        (2, 2, 2, 2, 2, 0)
    );

    assert!(instance_created(&env.agent_dir().join("instance.conf")));
    let r = env.report();
    assert_eq!(
        (
            r.get("instantiations_succeeded"),
            r.get("timeseries_messages"),
            r.get("timeseries_values"),
            r.get("unmapped_values")
        ),
        (1, 2, 4, 0)
    );
    assert_eq!(
        (
            r.get("events"),
            r.get("files"),
            r.get("tokens_issued"),
            r.get("datalake_objects")
        ),
        (2, 2, 1, 2)
    );
    for id in &ids {
        env.counter("commands_executed", 2).await;
        assert_eq!(env.cloud.job_statuses(id), ["EXECUTING", "EXECUTED"]);
    }
    let agent = env.cloud.agent("edgewire_mqttagent").unwrap();
    assert!(
        String::from_utf8(agent.files[0].content.clone())
            .unwrap()
            .contains("Infrared Sensor Event")
    );
    assert!(
        agent
            .values
            .keys()
            .any(|k| k.ends_with("/dht11Aspect/temperature"))
    );
    let events = seen.lock().unwrap().clone();
    assert!(events.iter().any(|e| matches!(e, Event::CommandStatus { status, response, .. } if status == "EXECUTED" && response["message"] == "rebooted NOW")), "{events:?}");
    let kinds: Vec<&str> = events.iter().map(Event::kind).collect();
    let pos = |k: &str| {
        kinds
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("no {k} in {kinds:?}"))
    };
    assert!(
        pos("subscribed") < pos("requested"),
        "subscribe before publishing"
    );
    assert!(pos("instance_created") < kinds.iter().rposition(|k| *k == "published").unwrap());

    // Second run: instance.conf says CREATED, so no instantiation; timeseries flow at once.
    let (report2, seen2) = collector();
    let s = run(
        options(
            &env,
            plan(&[Task::Timeseries], 10, Some(3), 0, None),
            BTreeMap::new(),
        ),
        std::future::pending(),
        report2,
    )
    .await
    .unwrap();
    assert_eq!(s.timeseries, 3);
    assert!(
        seen2
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::InstanceExists { .. }))
    );
    assert_eq!(env.counter("timeseries_messages", 5).await, 5);
    assert_eq!(env.report().get("instantiations_received"), 1);

    // The token opens the HTTPS side: the recorded value can be read back.
    let one = OneShot {
        settings: env.settings(),
        timeout: Duration::from_secs(15),
        qos: Qos::AtLeastOnce,
        instance_conf: env.agent_dir().join("instance.conf"),
    };
    let token = oneshot::token(&one, &report).await.unwrap();
    let parent = agent
        .assets
        .iter()
        .find(|a| a.name == "JetPumpModel")
        .unwrap()
        .asset_id
        .clone();
    let http = transport::http::client(&env.settings().http_tls, Duration::from_secs(10)).unwrap();
    let url = format!(
        "{}/mindconnect/api/iottimeseries/v3/timeseries/{parent}/dht11Aspect",
        env.sim.https_base().unwrap()
    );
    let v: serde_json::Value = http
        .get(&url)
        .bearer_auth(&token.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t: f64 = v[0]["temperature"].as_str().unwrap().parse().unwrap();
    assert!((30.0..=32.0).contains(&t), "{v}");
    let denied = http
        .get(&url)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_refreshed_before_it_expires() {
    let env = Env::start(MindConnectCloud::new().with_token_lifetime(Duration::from_secs(2))).await;
    let (report, seen) = collector();
    publish_model(&env, &report).await;
    let s = run(
        options(
            &env,
            plan(
                &[Task::Timeseries],
                200,
                None,
                0,
                Some(Duration::from_millis(3500)),
            ),
            BTreeMap::new(),
        ),
        std::future::pending(),
        report,
    )
    .await
    .unwrap();
    assert!(s.timeseries >= 5, "{s:?}");
    let refreshes = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::TokenReceived { expires_in: 2, .. }))
        .count();
    assert!(
        refreshes >= 2,
        "a 2 s token is refreshed after 1.5 s: {refreshes}"
    );
    assert!(env.report().get("tokens_issued") >= 2);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shots_send_and_upload() {
    let env = Env::start(MindConnectCloud::new()).await;
    let (report, _) = collector();
    let one = OneShot {
        settings: env.settings(),
        timeout: Duration::from_secs(15),
        qos: Qos::AtLeastOnce,
        instance_conf: env.agent_dir().join("instance.conf"),
    };
    let dir = TemplateDir::find(None, &env.cfg).unwrap();
    let values = env.agent_dir().join("values.jsonl");
    std::fs::write(&values, "{\"temperature\": 30.5}\n{\"pressure\": 7}\n").unwrap();
    let mut v = mindconnect::agent::source::Values::open(&ValueSource::File(values), None).unwrap();
    assert_eq!(
        oneshot::timeseries(&one, &mut v, None, &report)
            .await
            .unwrap(),
        2
    );
    oneshot::event(&one, &dir.load(Kind::Event).unwrap(), &report)
        .await
        .unwrap();
    let f = env.agent_dir().join("report.csv");
    std::fs::write(&f, "a,b\n1,2\n").unwrap();
    oneshot::file(&one, Some(&f), &report).await.unwrap();
    let object = oneshot::datalake(&one, &f, &report).await.unwrap();
    assert!(object.ends_with("/report.csv"), "{object}");
    assert_eq!(env.counter("datalake_objects", 1).await, 1);
    assert_eq!(env.counter("files", 1).await, 1);
    assert_eq!(
        env.cloud.agent("edgewire_mqttagent").unwrap().files[0].content,
        b"a,b\n1,2\n"
    );
    assert_eq!(env.report().get("unmapped:edgewire_mqttagent/pressure"), 1);
    env.stop().await;
}
