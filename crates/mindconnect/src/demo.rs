//! MindConnect's `iot-sim demo` check: writes a seed-layout folder (`configs/mqtt-config.json`,
//! `agent_cert/`, `example_json/`) pointing at the local cloud, then runs the code paths behind
//! `mc-model publish` and `mc-agent run` twice (the second run must not instantiate again),
//! sends a command while the agent runs, and compares what the platform side counted with what
//! the run should produce.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cloudkit::{DemoEnv, DemoRow, Report};
use serde_json::json;
use tokio::sync::mpsc;
use transport::{Outbox, Qos, Session};

use crate::agent::model::{SendOptions, prepare_model, send};
use crate::agent::run::{RunOptions, run as run_agent};
use crate::agent::source::ValueSource;
use crate::agent::{Event, Reporter, instance_created};
use crate::cloud::{DEMO_AGENT, DEMO_TENANT, MindConnectCloud};
use crate::config::{ConfigFile, Overrides, Settings};
use crate::protocol::machine::{Plan, Task};
use crate::protocol::template::Kind;
use crate::templates::{TemplateDir, write_builtin};

const VENDOR: &str = "mindconnect";

fn io<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Writes the seed layout into `dir` for `broker_url`; returns the config file path.
pub fn write_seed_layout(
    dir: &Path,
    env: &DemoEnv,
    broker_url: &str,
) -> Result<std::path::PathBuf, String> {
    let certs = dir.join("agent_cert");
    std::fs::create_dir_all(&certs).map_err(io("create agent_cert"))?;
    std::fs::create_dir_all(dir.join("configs")).map_err(io("create configs"))?;
    let client_id = format!("{DEMO_TENANT}_{DEMO_AGENT}");
    std::fs::copy(&env.ca, certs.join("ca.pem")).map_err(io("copy the CA"))?;
    std::fs::copy(
        env.cert_dir.join(format!("{DEMO_AGENT}.pem")),
        certs.join(format!("{client_id}.pem")),
    )
    .map_err(io("copy the agent certificate"))?;
    let key = certs.join(format!("{client_id}.key"));
    std::fs::copy(env.cert_dir.join(format!("{DEMO_AGENT}.key")), &key)
        .map_err(io("copy the agent key"))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .map_err(io("chmod the key"))?;
    }
    write_builtin(&dir.join("example_json")).map_err(io("write example_json"))?;
    let base = env
        .https_base
        .as_deref()
        .map(|b| format!("{b}/mindconnect"))
        .unwrap_or_default();
    let cfg = json!({"AWS": {
        "IOT_HOST": broker_url.trim_start_matches("mqtts://"),
        "CLIENT_ID": client_id,
        "DEVICE_NAME": DEMO_AGENT,
        "TENANT_ID": DEMO_TENANT,
        "CA_PATH": "agent_cert/ca.pem",
        "DEVICE_CERT_PATH": format!("agent_cert/{client_id}.pem"),
        "DEVICE_KET_PATH": format!("agent_cert/{client_id}.key"),
        "MODEL_NAME": "JetPumpModel",
        "GW_URL": base,
        "SGW_URL": base,
        "PLATFORM": "AWS",
        "HTTP_CA_PATH": "agent_cert/ca.pem"
    }});
    let path = dir.join("configs/mqtt-config.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&cfg).unwrap_or_default(),
    )
    .map_err(io("write mqtt-config.json"))?;
    let _ = std::fs::remove_file(dir.join("instance.conf"));
    Ok(path)
}

fn plan(tasks: &[Task], every: Duration, count: u64, wait_commands: u64) -> Plan {
    Plan {
        intervals: tasks
            .iter()
            .map(|t| (*t, every))
            .collect::<BTreeMap<_, _>>(),
        count: Some(count),
        duration: Some(Duration::from_secs(120)),
        wait_commands,
        answer_timeout: Duration::from_secs(15),
    }
}

/// Runs the check.
pub async fn run(env: DemoEnv) -> Vec<DemoRow> {
    match check(&env).await {
        Ok(rows) => rows,
        Err(note) => vec![DemoRow::new(
            VENDOR,
            "set-up and first run",
            1,
            0,
            Some(note),
        )],
    }
}

async fn wait_for(report: &Arc<dyn Fn() -> Report + Send + Sync>, want: &[(&str, u64)]) -> Report {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = report();
        if want.iter().all(|(k, n)| r.get(k) >= *n) || tokio::time::Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn check(env: &DemoEnv) -> Result<Vec<DemoRow>, String> {
    let n = env.messages.max(1);
    let listener = env
        .listener("mtls")
        .or_else(|| env.listener("external"))
        .ok_or("no mtls or external listener")?;
    let operator = env
        .listener("plain")
        .or_else(|| env.listener("external"))
        .ok_or("no plain or external listener")?;
    let dir = env.work_dir.clone();
    let cfg = write_seed_layout(&dir, env, &listener.url)?;
    let mut settings = Settings::resolve(
        ConfigFile::load(&cfg, None).map_err(|e| e.to_string())?,
        &Overrides::default(),
    )
    .map_err(|e| e.to_string())?;
    if listener.name == "external" {
        settings.session.tls.clone_from(&listener.tls);
        settings
            .session
            .credentials
            .clone_from(&listener.credentials);
    }
    let templates = TemplateDir::find(None, &cfg).map_err(|e| e.to_string())?;
    let instance_conf = dir.join("instance.conf");
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let reporter: Reporter = Arc::new(move |e: &Event| {
        let _ = tx.send(e.clone());
    });
    let mut notes: Vec<String> = Vec::new();

    let model = templates.load(Kind::Model).map_err(|e| e.to_string())?;
    let prepared = prepare_model(&settings, &model).map_err(|e| e.to_string())?;
    let opts = SendOptions {
        timeout: Duration::from_secs(15),
        qos: Qos::AtLeastOnce,
        instance_conf: None,
    };
    if let Err(e) = send(&settings, &prepared, &opts, &reporter).await {
        notes.push(format!("model: {e}"));
    }
    let mut broken = prepared.clone();
    broken.payload["data"]["mappingModel"]["mappings"][0]["variableName"] = json!("noSuchVariable");
    broken.payload["data"]["externalId"] = json!("BrokenModel");
    let refused = matches!(
        send(&settings, &broken, &opts, &reporter).await,
        Err(crate::agent::AgentError::Rejected { .. })
    );

    let first = RunOptions {
        settings: settings.clone(),
        templates: templates.clone(),
        instance_conf: instance_conf.clone(),
        plan: plan(
            &[Task::Timeseries, Task::Event, Task::File, Task::Datalake],
            Duration::from_millis(10),
            1,
            1,
        ),
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
    };
    let operator_opts = operator.session_options().map_err(|e| e.to_string())?;
    let command_topic = settings.topics.topic(crate::protocol::Channel::Command);
    let commander = async {
        while let Some(e) = rx.recv().await {
            if matches!(&e, Event::Subscribed { topics } if topics.contains(&command_topic)) {
                break;
            }
        }
        let payload = json!({"commandType": "actuator_control", "execute_command": "START"});
        let (msg, _) = MindConnectCloud::command(
            DEMO_TENANT,
            settings.topics.client_id(),
            "demo-job-1",
            payload.as_object().cloned().unwrap_or_default(),
            time::OffsetDateTime::now_utc(),
        )
        .map_err(|e| e.to_string())?;
        let mut o = operator_opts;
        o.client_id = "iot-sim-demo-operator".into();
        let (s, _in) = Session::start(o, Outbox::memory(4))
            .await
            .map_err(|e| e.to_string())?;
        let r = s
            .publish(msg)
            .await
            .map_err(|e| e.to_string())?
            .confirmed()
            .await
            .map_err(|e| e.to_string());
        s.close(Duration::from_secs(1)).await;
        r
    };
    let (r1, cmd) = tokio::join!(
        run_agent(first, std::future::pending(), reporter.clone()),
        commander
    );
    if let Err(e) = r1 {
        notes.push(format!("first run: {e}"));
    }
    if let Err(e) = cmd {
        notes.push(format!("command delivery: {e}"));
    }
    if n > 1 {
        let second = RunOptions {
            plan: plan(&[Task::Timeseries], Duration::from_millis(1), n - 1, 0),
            outbox: Outbox::memory(1024),
            hooks: BTreeMap::new(),
            settings: settings.clone(),
            templates: templates.clone(),
            instance_conf: instance_conf.clone(),
            values: ValueSource::Simulated,
            file: None,
            datalake_file: None,
            hook_timeout: Duration::from_secs(10),
            hook_runner: hook::Runner::default(),
            qos: Qos::AtLeastOnce,
            assume_instantiated: false,
            model_sync: None,
        };
        if let Err(e) = run_agent(second, std::future::pending(), reporter.clone()).await {
            notes.push(format!("second run: {e}"));
        }
    }
    let r = wait_for(
        &env.report,
        &[
            ("timeseries_messages", n),
            ("commands_executed", 1),
            ("datalake_objects", 1),
            ("events", 1),
            ("files", 1),
        ],
    )
    .await;
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    let row = |check: &str, expected: u64, got: u64| {
        DemoRow::new(VENDOR, check, expected, got, note.clone())
    };
    Ok(vec![
        row(
            "model published (amo_v3/m → ms Success)",
            1,
            r.get("models_accepted"),
        ),
        DemoRow::new(
            VENDOR,
            "bad model refused (ms Failed with errors)",
            1,
            u64::from(refused) * r.get("models_failed"),
            Some("the platform accepted a mapping to an undeclared variable".into()),
        ),
        row(
            "instantiated once over two runs (amo_v3/i)",
            1,
            r.get("instantiations_succeeded"),
        ),
        row(
            "instance.conf says CREATED",
            1,
            u64::from(instance_created(&instance_conf)),
        ),
        row(
            "timeseries messages (mc_v3/ts)",
            n,
            r.get("timeseries_messages"),
        ),
        row(
            "timeseries values recorded (mapped)",
            2 * n,
            r.get("timeseries_values"),
        ),
        row("unmapped data points", 0, r.get("unmapped_values")),
        row(
            "SensorInterruptEvent accepted (mc_v3/e)",
            1,
            r.get("events"),
        ),
        row("file decoded from base64 (mc_v3/f)", 1, r.get("files")),
        row(
            "agent tokens issued (one per run)",
            if n > 1 { 2 } else { 1 },
            r.get("tokens_issued"),
        ),
        row(
            "datalake object uploaded with the token",
            1,
            r.get("datalake_objects"),
        ),
        row(
            "command answered EXECUTING then EXECUTED",
            2,
            r.get("commands_executing") + r.get("commands_executed"),
        ),
    ])
}
