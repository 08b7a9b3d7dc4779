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
use crate::agent::oneshot::OneShot;
use crate::agent::run::{RunOptions, run as run_agent};
use crate::agent::source::ValueSource;
use crate::agent::sync::SyncOptions;
use crate::agent::{Event, Reporter, instance_created};
use crate::cloud::{DEMO_AGENT, DEMO_TENANT, MindConnectCloud};
use crate::config::{ConfigFile, Overrides, Settings};
use crate::protocol::custom::Mapping;
use crate::protocol::machine::{Plan, Task};
use crate::protocol::template::Kind;
use crate::templates::{TemplateDir, write_builtin};

const VENDOR: &str = "mindconnect";

fn io<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// What a seed-layout folder points at: the broker, its CA, the agent's certificate and key
/// (CN [`DEMO_AGENT`], client id `<DEMO_TENANT>_<DEMO_AGENT>`), and the HTTPS side.
#[derive(Debug, Clone)]
pub struct Layout<'a> {
    /// `IOT_HOST` (a `mqtts://` URL or `host:port`).
    pub broker_url: &'a str,
    /// CA of the broker (`CA_PATH`).
    pub broker_ca: &'a Path,
    /// The agent's certificate.
    pub cert: &'a Path,
    /// The agent's key.
    pub key: &'a Path,
    /// `GW_URL` and `SGW_URL` (`<base>/mindconnect`), when HTTPS runs.
    pub https_base: Option<&'a str>,
    /// CA of the HTTPS side (`HTTP_CA_PATH`).
    pub https_ca: &'a Path,
}

/// Writes the seed layout into `dir` for `broker_url`; returns the config file path.
pub fn write_seed_layout(
    dir: &Path,
    env: &DemoEnv,
    broker_url: &str,
) -> Result<std::path::PathBuf, String> {
    write_layout(
        dir,
        &Layout {
            broker_url,
            broker_ca: &env.ca,
            cert: &env.cert_dir.join(format!("{DEMO_AGENT}.pem")),
            key: &env.cert_dir.join(format!("{DEMO_AGENT}.key")),
            https_base: env.https_base.as_deref(),
            https_ca: &env.ca,
        },
    )
}

/// Writes `configs/mqtt-config.json`, `agent_cert/` and `example_json/` into `dir` for `l`
/// (any broker: iot-sim's or a mosquitto with its own PKI); returns the config file path.
pub fn write_layout(dir: &Path, l: &Layout<'_>) -> Result<std::path::PathBuf, String> {
    let certs = dir.join("agent_cert");
    std::fs::create_dir_all(&certs).map_err(io("create agent_cert"))?;
    std::fs::create_dir_all(dir.join("configs")).map_err(io("create configs"))?;
    let client_id = format!("{DEMO_TENANT}_{DEMO_AGENT}");
    std::fs::copy(l.broker_ca, certs.join("ca.pem")).map_err(io("copy the CA"))?;
    std::fs::copy(l.https_ca, certs.join("https-ca.pem")).map_err(io("copy the HTTPS CA"))?;
    std::fs::copy(l.cert, certs.join(format!("{client_id}.pem")))
        .map_err(io("copy the agent certificate"))?;
    let key = certs.join(format!("{client_id}.key"));
    std::fs::copy(l.key, &key).map_err(io("copy the agent key"))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .map_err(io("chmod the key"))?;
    }
    write_builtin(&dir.join("example_json")).map_err(io("write example_json"))?;
    let base = l
        .https_base
        .map(|b| format!("{b}/mindconnect"))
        .unwrap_or_default();
    let cfg = json!({"AWS": {
        "IOT_HOST": l.broker_url.trim_start_matches("mqtts://"),
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
        "HTTP_CA_PATH": "agent_cert/https-ca.pem"
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
        instance_conf: Some(instance_conf.clone()),
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
            instance_conf: Some(instance_conf.clone()),
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
    let v4 = v4_and_custom(&settings, &dir, &reporter, &mut notes).await;
    let r4 = wait_for(&env.report, &[("custom_messages", 1)]).await;
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
        row(
            "v4 model synchronised (amo_v4/m → mi Success)",
            1,
            r4.get("v4_instantiations_succeeded"),
        ),
        row(
            "v4 model sent once over two syncs (agent.ini sha)",
            1,
            r4.get("v4_instantiations_received"),
        ),
        row(
            "cloud_asset_model.json holds the synchronised model (referenceIds)",
            8,
            v4.saved_ids,
        ),
        row(
            "custom topic and mapping registered (REST 201)",
            2,
            r4.get("custom_topics") + r4.get("custom_mappings"),
        ),
        row(
            "custom data kept on its registration (clouddatastore/<client>/ts)",
            1,
            r4.get("custom_messages"),
        ),
    ])
}

/// What the v4 and custom part of the check saw on the device side.
struct V4Seen {
    saved_ids: u64,
}

/// The 2024 sample's flows on the same agent: `mc-model sync` twice (the second must send
/// nothing), then `mc-model register-topic` and `mc-agent custom` with the sample's document.
async fn v4_and_custom(
    settings: &Settings,
    dir: &Path,
    reporter: &Reporter,
    notes: &mut Vec<String>,
) -> V4Seen {
    let mut seen = V4Seen { saved_ids: 0 };
    let v4 = dir.join("v4");
    let local = v4.join(crate::agent::sync::LOCAL_MODEL);
    let model = crate::agent::sync::builtin_local_model();
    if let Err(e) = std::fs::create_dir_all(&v4).and_then(|()| std::fs::write(&local, model)) {
        notes.push(format!("v4: cannot write `{}`: {e}", local.display()));
        return seen;
    }
    let opts = SyncOptions {
        local_model: local,
        agent_ini: v4.join("agent.ini"),
        timeout: Duration::from_secs(15),
        qos: Qos::AtLeastOnce,
        force: false,
    };
    for round in ["first", "second"] {
        if let Err(e) = crate::agent::sync::sync(settings, &opts, reporter).await {
            notes.push(format!("v4 {round} sync: {e}"));
        }
    }
    if let Ok(bytes) = std::fs::read(crate::agent::sync::cloud_model_path(&opts))
        && let Ok(m) = crate::protocol::v4::decode_named::<crate::protocol::v4::V4Model>(
            "cloud_asset_model.json",
            &bytes,
        )
    {
        seen.saved_ids = crate::protocol::v4::reference_ids(&m).len() as u64;
    }
    let one = OneShot {
        settings: settings.clone(),
        timeout: Duration::from_secs(15),
        qos: Qos::AtLeastOnce,
        instance_conf: dir.join("instance.conf"),
    };
    let topic = format!("clouddatastore/{}/ts", settings.topics.client_id());
    let mapping = Mapping {
        asset_id: "demo".into(),
        aspect_name: "Moisture".into(),
        variable_name: "moisture".into(),
        variable_value_expression: "machines[].sources[].tags[?Key == 'moisture'].Values[][0]"
            .into(),
        variable_timestamp_expression: "machines[].sources[].tags[?Key == 'moisture'].timestamp[]"
            .into(),
        time_converter: Some("fromISO8601".into()),
    };
    if let Err(e) = crate::agent::custom::register(&one, Some(&topic), &[mapping], reporter).await {
        notes.push(format!("custom topic registration: {e}"));
        return seen;
    }
    let doc = json!({"machines": [{"sources": [{"tags": [
        {"Key": "moisture", "Values": [41.5], "timestamp": ["2026-12-03T06:00:00Z"]}
    ]}]}]});
    if let Err(e) =
        crate::agent::custom::publish(&one, &topic, vec![doc.to_string().into_bytes()], reporter)
            .await
    {
        notes.push(format!("custom data: {e}"));
    }
    seen
}
