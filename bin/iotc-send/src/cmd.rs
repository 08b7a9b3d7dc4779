//! The subcommands after discovery and sync: each turns its flags into library calls.

use std::sync::Arc;
use std::time::Duration;

use cli::output::{Output, exit};
use iotconnect::agent::hook::Hook;
use iotconnect::agent::setup::{Setup, reconnect_with};
use iotconnect::agent::source::{self, Input, Simulation};
use iotconnect::agent::{AgentError, Reporter, RunOptions, RunOutcome};
use iotconnect::protocol::input::{parse_line, parse_value as value};
use iotconnect::protocol::v1::ack::{AckData, AckKind, status};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use transport::ConnectSettings;

use crate::args::{AckArgs, ChildCmd, DataArgs, RunArgs, TwinArgs};

fn hook(program: Option<std::path::PathBuf>, timeout: u64, runner: &hook::Runner) -> Option<Hook> {
    program.map(|program| Hook {
        program,
        args: Vec::new(),
        timeout: Duration::from_secs(timeout),
        runner: runner.clone(),
    })
}

pub async fn run(
    setup: Setup,
    settings: &ConnectSettings,
    a: RunArgs,
    secret_vars: &[String],
    reporter: Arc<dyn Reporter>,
) -> Result<u8, AgentError> {
    let offline = setup.offline(a.offline_dir.clone());
    let (tx, rx) = mpsc::channel::<Input>(64);
    let interval = a.interval.map(Duration::from_secs_f64);
    let mut sources = JoinSet::new();
    // The simulation makes values from the devices and attributes the agent hands it: at once
    // in 1.0 (sync has them), after the 201/204 answers in 2.1, and again after each refresh.
    let mut catalog = None;
    if a.simulate {
        let sim = Simulation {
            devices: Vec::new(),
            attributes: Vec::new(),
            count: a.count,
            interval: interval.unwrap_or(setup.device.df().max(Duration::from_secs(1))),
            faulty_every: a.faulty_every,
        };
        let (cat_tx, cat_rx) = tokio::sync::watch::channel(None);
        catalog = Some(cat_tx);
        sources.spawn(sim.run(tx, cat_rx));
    } else if let Some(path) = &a.input {
        let reader = source::open(path).await.map_err(AgentError::Input)?;
        sources.spawn(source::lines(reader, interval, tx));
    } else {
        drop(tx);
    }
    let reconnect = reconnect_with(settings.clone(), setup.config.clone());
    // Auth types 4 and 5: this agent signs the SAS token (in the TPM, or with the key), so it
    // renews it; the other types use a certificate or the token the platform hands out.
    let renew_credentials = (matches!(setup.sync.at, Some(4 | 5)) && settings.password.is_none())
        .then(|| iotconnect::agent::bootstrap::renew_after(setup.config.sas_lifetime));
    let v21 = setup.device.is_v21();
    let (agent, platform, config) = setup.connect(settings, offline, reporter).await?;
    // One runner for both hooks: `--hook-concurrency` limits them together.
    let runner = a.hooks.runner_withholding(secret_vars);
    let opts = RunOptions {
        command_hook: hook(a.on_command, a.hook_timeout, &runner),
        auto_ack: !a.no_auto_ack,
        ota_dir: Some(a.ota_dir),
        ota_max_bytes: a.ota_max_mb.saturating_mul(1024 * 1024),
        ota_hook: hook(a.on_ota, a.hook_timeout, &runner),
        platform: Some((platform, config)),
        twin: a.twin.iter().map(|(k, v)| (k.clone(), value(v))).collect(),
        exit_after_input: a.exit_after_input,
        reconnect: Some(reconnect),
        renew_credentials,
        catalog,
        answer_desired: v21,
        on_confirmed: None,
    };
    let outcome = agent.run(rx, opts, cli::signal::shutdown_signal()).await;
    sources.abort_all();
    Ok(match outcome? {
        RunOutcome::Shutdown | RunOutcome::InputDone => exit::OK,
        RunOutcome::Barred => exit::REJECTED,
    })
}

pub async fn data(
    setup: Setup,
    settings: &ConnectSettings,
    a: DataArgs,
    reporter: Arc<dyn Reporter>,
) -> Result<u8, AgentError> {
    let records = match (&a.data, &a.file) {
        (Some(json), _) => parse_line(1, json)
            .map_err(|e| AgentError::Input(e.to_string()))?
            .unwrap_or_default(),
        (None, Some(path)) => source::first_records(path)
            .await
            .map_err(AgentError::Input)?,
        (None, None) => Vec::new(),
    };
    let (mut agent, _, _) = setup.connect(settings, None, reporter.clone()).await?;
    let wait = Duration::from_secs(a.wait);
    // 2.1: the attributes (and a gateway's children) arrive over MQTT first.
    if let Err(e) = agent.identify(wait).await {
        agent.close(Duration::from_secs(1)).await;
        return Err(e);
    }
    let rest = agent.send_data(&records, wait).await;
    let unconfirmed = agent.close(Duration::from_secs(2)).await;
    for action in rest? {
        if let iotconnect::protocol::device::Action::Ignored(message) = action {
            reporter.event(iotconnect::agent::Event::Warning { message });
        }
    }
    Ok(if unconfirmed == 0 {
        exit::OK
    } else {
        exit::FAILURE
    })
}

pub async fn twin(
    setup: Setup,
    settings: &ConnectSettings,
    a: TwinArgs,
    reporter: Arc<dyn Reporter>,
    out: Output,
) -> Result<u8, AgentError> {
    let (mut agent, _, _) = setup.connect(settings, None, reporter).await?;
    let wait = Duration::from_secs(a.wait);
    let result = async {
        for (k, v) in &a.set {
            agent.twin_report(k, value(v), wait).await?;
        }
        if a.get {
            agent.subscribe().await?;
            let twin = agent
                .twin_get(wait)
                .await?
                .ok_or(AgentError::NotConfirmed {
                    kind: "full twin".into(),
                    secs: a.wait,
                })?;
            out.event("twin", &twin, || format!("{twin:#}"));
        }
        Ok(exit::OK)
    }
    .await;
    agent.close(Duration::from_secs(2)).await;
    result
}

pub async fn ack(
    setup: Setup,
    settings: &ConnectSettings,
    a: AckArgs,
    reporter: Arc<dyn Reporter>,
) -> Result<u8, AgentError> {
    let kind = if a.kind == "ota" {
        AckKind::Ota
    } else {
        AckKind::Command
    };
    let st = match a.status.as_str() {
        "ok" => kind.success(),
        "failed" => status::FAILED,
        n => n.parse().map_err(|_| {
            AgentError::Input(format!("--status `{n}` is not ok, failed or a number"))
        })?,
    };
    let (mut agent, _, _) = setup.connect(settings, None, reporter).await?;
    let data = AckData {
        ack_id: a.ack_id,
        st,
        msg: a.msg,
        child_id: a.child_id,
    };
    let result = agent.ack(kind, data, Duration::from_secs(a.wait)).await;
    agent.close(Duration::from_secs(2)).await;
    result.map(|()| exit::OK)
}

/// `attributes`: 1.0 has them from sync; 2.1 connects and asks for them (201).
pub async fn attributes(
    setup: Setup,
    settings: &ConnectSettings,
    reporter: Arc<dyn Reporter>,
    out: Output,
    wait: Duration,
) -> Result<u8, AgentError> {
    let attributes = if setup.device.is_v21() {
        let (mut agent, _, _) = setup.connect(settings, None, reporter).await?;
        let r = agent.identify(wait).await;
        let attributes = agent.device().attributes();
        agent.close(Duration::from_secs(1)).await;
        r?;
        attributes
    } else {
        setup.device.attributes()
    };
    out.event("attributes", &attributes, || format!("{attributes:#}"));
    Ok(exit::OK)
}

/// `child add|remove` (2.1 gateways).
pub async fn child(
    setup: Setup,
    settings: &ConnectSettings,
    c: ChildCmd,
    reporter: Arc<dyn Reporter>,
    out: Output,
) -> Result<u8, AgentError> {
    let (mut agent, _, _) = setup.connect(settings, None, reporter).await?;
    let result = match &c {
        ChildCmd::Add {
            id,
            tag,
            name,
            wait,
        } => {
            let name = name.as_deref().unwrap_or(id);
            agent
                .child(Some((name, tag)), id, Duration::from_secs(*wait))
                .await
        }
        ChildCmd::Remove { id, wait } => agent.child(None, id, Duration::from_secs(*wait)).await,
    };
    agent.close(Duration::from_secs(1)).await;
    let message = result?;
    let data = std::collections::BTreeMap::from([("message", message.clone())]);
    out.event("child", &data, || message.clone());
    Ok(exit::OK)
}
