//! IoTConnect's rows of `iot-sim demo`: the code paths `iotc-send` runs (discovery and sync over
//! HTTPS, X.509 connect, `run` with its input channel, commands, OTA, twin, edge windows, `df`,
//! the offline store and its replay) against the local cloud, checked against the IoTConnect
//! cloud side's report and the acknowledgements it announces; then message 2.1 on Azure and on
//! AWS (identity, the lists over `di`, rpt/flt, a 2.1 command ack).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cloudkit::{DemoEnv, DemoRow, Listener};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use transport::ConnectSettings;
use transport::auth::PasswordSource;

use crate::agent::setup::setup;
use crate::agent::source::Input;
use crate::agent::{Collect, Event, RunOptions};
use crate::cloud::admin::{self, OtaFile, Request};
use crate::config::{Config, Protocol};
use crate::protocol::input::parse_line;
use crate::protocol::v2::Platform;

const VENDOR: &str = "iotconnect";
const GW: &str = "iotc-gateway-01";
const EDGE: &str = "iotc-edge-01";
const WAIT: Duration = Duration::from_secs(15);

struct Ctx<'a> {
    env: &'a DemoEnv,
    device: &'a Listener,
    admin: &'a Listener,
    base: String,
}

fn row(check: &str, expected: u64, got: u64, note: impl Into<String>) -> DemoRow {
    DemoRow::new(VENDOR, check, expected, got, Some(note.into()))
}

/// Runs the IoTConnect checks.
pub async fn run(env: DemoEnv) -> Vec<DemoRow> {
    if env.listener("mtls").is_none() {
        // Devices authenticate with X.509 here; an external broker gives no such listener.
        return vec![DemoRow::new(
            "iotconnect",
            "skipped: needs the embedded broker's mtls listener",
            0,
            0,
            None,
        )];
    }
    let device = env.listener("mtls").or_else(|| env.listener("external"));
    let admin_l = env.listener("plain").or_else(|| env.listener("external"));
    let (Some(device), Some(admin_l), Some(https)) = (device, admin_l, env.https_base.clone())
    else {
        return vec![row(
            "set-up",
            1,
            0,
            "needs an mtls (or external) listener and the HTTPS endpoints",
        )];
    };
    let cx = Ctx {
        env: &env,
        device,
        admin: admin_l,
        base: format!("{https}/iotconnect"),
    };
    let mut rows = Vec::new();
    rows.extend(gateway(&cx).await);
    rows.extend(edge(&cx).await);
    rows.push(df(&cx).await);
    rows.push(offline(&cx).await);
    for pf in [Platform::Azure, Platform::Aws] {
        rows.extend(v21(&cx, pf).await);
    }
    rows
}

/// Message 2.1 on `pf`: discovery and identity, attributes and children over `di`, the
/// rpt/flt split, a command acknowledged the 2.1 way (`type` 0, `st` 2).
async fn v21(cx: &Ctx<'_>, pf: Platform) -> Vec<DemoRow> {
    let env = cx.env;
    let label = |s: &str| format!("2.1 {}: {s}", pf.code());
    let identity = format!("identity_{}", pf.code());
    let (id0, good0, bad0, ok0) = (
        counter(env, &identity),
        counter(env, "telemetry_values"),
        counter(env, "faulty_values"),
        counter(env, "acks_command_ok"),
    );
    let mut config = match cx.config(GW, false) {
        Ok(c) => c,
        Err(e) => return vec![row(&label("set-up"), 1, 0, e)],
    };
    config.protocol = Protocol::V21;
    config.platform = pf;
    let opts = RunOptions {
        auto_ack: true,
        ..RunOptions::default()
    };
    let a = match Agent::start_with(cx, config, Some(Duration::ZERO), None, None, opts).await {
        Ok(a) => a,
        Err(e) => return vec![row(&label("discovery, identity, X.509 connect"), 1, 0, e)],
    };
    let lists = a
        .wait(|e| matches!(e, Event::Resynced { scope } if scope == "attributes"))
        .await
        && a.wait(|e| matches!(e, Event::Resynced { scope } if scope == "children"))
            .await;
    let mut rows = vec![
        row(
            &label("discovery, identity, X.509 connect"),
            1,
            counter(env, &identity) - id0,
            "topics from the identity answer",
        ),
        row(
            &label("attributes (201) and children (204) over di"),
            1,
            u64::from(lists),
            "",
        ),
    ];
    a.send(&format!(
        r#"[{{"uniqueId":"{GW}","data":{{"temperature":22,"status":"ok"}}}},{{"uniqueId":"iotc-child-01","data":{{"humidity":40.5,"battery":80}}}},{{"uniqueId":"iotc-child-02","data":{{"humidity":150,"battery":70}}}}]"#
    ))
    .await;
    rows.push(row(
        &label("good values on rpt"),
        5,
        counter_reaches(env, "telemetry_values", good0, 5).await,
        "",
    ));
    rows.push(row(
        &label("faulty values on flt"),
        1,
        counter_reaches(env, "faulty_values", bad0, 1).await,
        "",
    ));
    let cmd = cx
        .admin(&Request::Command {
            unique_id: "iotc-child-01".into(),
            command: "reboot".into(),
        })
        .await;
    let note = cmd.err().unwrap_or_default();
    rows.push(row(
        &label("command ct 0 acknowledged (type 0, st 2)"),
        1,
        counter_reaches(env, "acks_command_ok", ok0, 1).await,
        note,
    ));
    a.stop().await;
    rows
}

fn counter(env: &DemoEnv, name: &str) -> u64 {
    (env.report)().get(name)
}

async fn counter_reaches(env: &DemoEnv, name: &str, base: u64, want: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = counter(env, name).saturating_sub(base);
        if got >= want || tokio::time::Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Ctx<'_> {
    fn config(&self, unique_id: &str, offline: bool) -> Result<Config, String> {
        let dir = self.env.work_dir.join("iotconnect");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut cert = json!({"SSLCaPath": self.env.ca});
        if self.device.name == "mtls" {
            cert["SSLCertPath"] = json!(self.env.cert_dir.join(format!("{unique_id}.pem")));
            cert["SSLKeyPath"] = json!(self.env.cert_dir.join(format!("{unique_id}.key")));
        }
        let v = json!({"cpId": "EDGEWIRE", "uniqueId": unique_id, "env": "DEV", "discoveryUrl": self.base,
            "sdkOptions": {"certificate": cert, "offlineStorage": {"disabled": !offline, "availSpaceInMb": 1, "fileCount": 4}}});
        let path = dir.join(format!("{unique_id}.json"));
        std::fs::write(&path, v.to_string())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Config::load(&path).map_err(|e| e.to_string())
    }

    /// Settings: trust and, for an external broker, its URL and identity as `--broker` etc.
    /// would give them (sync names the broker's host and port, not its scheme or credentials).
    /// With the embedded broker the device goes where sync points it, unless `broker` says
    /// otherwise.
    fn settings(&self, broker: Option<String>) -> Result<ConnectSettings, String> {
        let l = self.device;
        let mut s = ConnectSettings {
            broker: broker.or_else(|| (l.name != "mtls").then(|| l.url.clone())),
            allow_plaintext: true,
            keep_alive: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            reconnect_max: Duration::from_secs(1),
            ..ConnectSettings::default()
        };
        s.tls.ca_files.clone_from(&l.tls.ca_files);
        s.tls.ca_files.push(self.env.ca.clone());
        if l.name != "mtls" {
            s.tls.client_cert.clone_from(&l.tls.client_cert);
            s.tls.client_key.clone_from(&l.tls.client_key);
            if let Some(c) = &l.credentials {
                s.username = Some(c.username.clone());
                if let Some(pw) = &c.password {
                    let path = self.env.work_dir.join("iotconnect-broker-password");
                    transport::auth::write_secret_file(
                        &path,
                        transport::auth::ExposeSecret::expose_secret(pw).as_bytes(),
                    )
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    s.password = Some(PasswordSource::File(path));
                }
            }
        }
        Ok(s)
    }

    async fn admin(&self, req: &Request) -> Result<(admin::Sent, Vec<admin::AckSeen>), String> {
        let mut o = self.admin.session_options().map_err(|e| e.to_string())?;
        o.client_id = format!(
            "demo-iotconnect-admin-{}-{:08x}",
            req.kind(),
            fastrand::u32(..)
        );
        admin::send(o, req, WAIT).await.map_err(|e| e.to_string())
    }
}

/// A running agent fed through its input channel.
struct Agent {
    tx: mpsc::Sender<Input>,
    events: Arc<Collect>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<crate::agent::RunOutcome, crate::agent::AgentError>>,
}

impl Agent {
    async fn start(
        cx: &Ctx<'_>,
        id: &str,
        df: Option<Duration>,
        offline: Option<PathBuf>,
        broker: Option<String>,
        opts: RunOptions,
    ) -> Result<Agent, String> {
        let config = cx.config(id, offline.is_some())?;
        Agent::start_with(cx, config, df, offline, broker, opts).await
    }

    async fn start_with(
        cx: &Ctx<'_>,
        config: Config,
        df: Option<Duration>,
        offline: Option<PathBuf>,
        broker: Option<String>,
        mut opts: RunOptions,
    ) -> Result<Agent, String> {
        let events = Arc::new(Collect::default());
        let settings = cx.settings(broker)?;
        let s = setup(
            config,
            &settings,
            df,
            Duration::from_secs(10),
            events.as_ref(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let store = offline.and_then(|d| s.offline(Some(d)));
        let (agent, platform, config) = s
            .connect(&settings, store, events.clone())
            .await
            .map_err(|e| e.to_string())?;
        opts.platform = Some((platform, config));
        let (tx, rx) = mpsc::channel(256);
        let (stop, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(agent.run(rx, opts, async move {
            let _ = stop_rx.await;
        }));
        Ok(Agent {
            tx,
            events,
            stop,
            task,
        })
    }

    async fn send(&self, line: &str) {
        if let Ok(Some(r)) = parse_line(1, line) {
            let _ = self.tx.send(Input::Records(r)).await;
        }
    }

    async fn wait(&self, f: impl Fn(&Event) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::time::Instant::now() < deadline {
            if self.events.events().iter().any(&f) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    fn count(&self, f: impl Fn(&Event) -> bool) -> u64 {
        self.events.events().iter().filter(|e| f(e)).count() as u64
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(WAIT, self.task).await;
    }
}

fn subscribed(e: &Event) -> bool {
    matches!(e, Event::Subscribed { .. })
}

async fn gateway(cx: &Ctx<'_>) -> Vec<DemoRow> {
    let env = cx.env;
    let (sync0, good0, bad0, tw0) = (
        counter(env, "sync"),
        counter(env, "telemetry_values"),
        counter(env, "faulty_values"),
        counter(env, "twin_reported"),
    );
    let opts = RunOptions {
        auto_ack: true,
        ota_dir: Some(env.work_dir.join("iotconnect-ota")),
        ota_max_bytes: 1 << 20,
        twin: vec![("firmware".into(), json!("1.0"))],
        ..RunOptions::default()
    };
    let a = match Agent::start(cx, GW, Some(Duration::ZERO), None, None, opts).await {
        Ok(a) if a.wait(subscribed).await => a,
        Ok(a) => {
            a.stop().await;
            return vec![row(
                "gateway: discovery, sync, X.509 connect",
                1,
                0,
                "no subscription confirmed",
            )];
        }
        Err(e) => return vec![row("gateway: discovery, sync, X.509 connect", 1, 0, e)],
    };
    let mut rows = vec![row(
        "gateway: discovery, sync, X.509 connect",
        1,
        counter(env, "sync") - sync0,
        "",
    )];
    if cx.device.name == "mtls" {
        let port = format!(":{}", cx.device.url.rsplit(':').next().unwrap_or_default());
        let pointed =
            a.count(|e| matches!(e, Event::Synced { broker, .. } if broker.ends_with(&port)));
        rows.push(row(
            "sync points the device at the mtls listener",
            1,
            pointed,
            "p.h/p.p of the sync answer",
        ));
    }
    let n = env.messages.max(1);
    let faulty = (1..=n).filter(|i| i % 10 == 0).count() as u64;
    for i in 1..=n {
        let hum = if i % 10 == 0 { 150.0 } else { 45.5 };
        a.send(&format!(
            r#"[{{"uniqueId":"{GW}","data":{{"temperature":{},"status":"ok"}}}},{{"uniqueId":"iotc-child-01","data":{{"humidity":40.5,"battery":80}}}},{{"uniqueId":"iotc-child-02","data":{{"humidity":{hum},"battery":70}}}}]"#,
            20 + i % 10
        ))
        .await;
    }
    let good = 6 * n - faulty;
    rows.push(row(
        "gateway + 2 children: good values (mt 0)",
        good,
        counter_reaches(env, "telemetry_values", good0, good).await,
        "see iot-sim status",
    ));
    rows.push(row(
        "gateway + 2 children: faulty values (mt 1)",
        faulty,
        counter_reaches(env, "faulty_values", bad0, faulty).await,
        "",
    ));
    rows.push(row(
        "twin: reported property",
        1,
        counter_reaches(env, "twin_reported", tw0, 1).await,
        "",
    ));
    let cmd = cx
        .admin(&Request::Command {
            unique_id: "iotc-child-01".into(),
            command: "reboot".into(),
        })
        .await;
    let (got, note) = match cmd {
        Ok((_, acks)) => (
            acks.iter().filter(|a| a.mt == 5 && a.st == 6).count() as u64,
            String::new(),
        ),
        Err(e) => (0, e),
    };
    rows.push(row("command 0x01 acknowledged (mt 5, st 6)", 1, got, note));
    let urls = vec![
        OtaFile {
            url: format!("{}/ota/gateway.bin", cx.base),
            ..OtaFile::default()
        },
        OtaFile {
            url: format!("{}/ota/child.bin", cx.base),
            unique_id: Some("iotc-child-01".into()),
            tag: None,
        },
    ];
    let ota = cx
        .admin(&Request::Ota {
            unique_id: GW.into(),
            sw: "1.1".into(),
            hw: "1".into(),
            urls,
        })
        .await;
    let (got, note) = match ota {
        Ok((_, acks)) => (
            acks.iter().filter(|a| a.mt == 11 && a.st == 7).count() as u64,
            String::new(),
        ),
        Err(e) => (0, e),
    };
    rows.push(row(
        "OTA 0x02 to gateway and child acknowledged (mt 11, st 7)",
        2,
        got,
        note,
    ));
    a.stop().await;
    rows
}

async fn edge(cx: &Ctx<'_>) -> Vec<DemoRow> {
    let env = cx.env;
    let rules0 = counter(env, "rule_messages");
    let a = match Agent::start(cx, EDGE, None, None, None, RunOptions::default()).await {
        Ok(a) if a.wait(subscribed).await => a,
        Ok(a) => {
            a.stop().await;
            return vec![row(
                "edge: aggregates per window (mt 2)",
                3,
                0,
                "no subscription confirmed",
            )];
        }
        Err(e) => return vec![row("edge: aggregates per window (mt 2)", 3, 0, e)],
    };
    for t in [10, 30, 90] {
        a.send(&format!(
            r#"[{{"uniqueId":"{EDGE}","data":{{"temperature":{t},"pressure":1.5}}}}]"#
        ))
        .await;
    }
    let counted = || -> u64 {
        (env.report)()
            .recent
            .iter()
            .filter_map(|n| n.strip_prefix(&format!("edge {EDGE} ")))
            .filter_map(|j| serde_json::from_str::<Value>(j).ok())
            .filter_map(|v| v["temperature"][4].as_u64())
            .sum()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while counted() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = vec![
        row(
            "edge: values counted in tumbling-window aggregates (mt 2)",
            3,
            counted(),
            "aggregates are noted in iot-sim status",
        ),
        row(
            "edge: rule `temperature > 80` matched (mt 3)",
            1,
            counter_reaches(env, "rule_messages", rules0, 1).await,
            "",
        ),
    ];
    a.stop().await;
    rows
}

async fn df(cx: &Ctx<'_>) -> DemoRow {
    let a = match Agent::start(cx, GW, None, None, None, RunOptions::default()).await {
        Ok(a) => a,
        Err(e) => return row("df: sends inside the window discarded", 2, 0, e),
    };
    for t in [1, 2, 3] {
        a.send(&format!(
            r#"[{{"uniqueId":"{GW}","data":{{"temperature":{t}}}}}]"#
        ))
        .await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let throttled = || a.count(|e| matches!(e, Event::Throttled { .. }));
    while throttled() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = throttled();
    a.stop().await;
    row(
        "df: sends inside the window discarded",
        2,
        got,
        "the template's df is 2 s",
    )
}

/// The offline store across a restart: readings made while the broker is unreachable are
/// stored, then replayed with `"od": 1` by the next run on the same folder.
async fn offline(cx: &Ctx<'_>) -> DemoRow {
    let check = "offline: stored readings replayed with od=1";
    let env = cx.env;
    let od0 = counter(env, "offline_messages");
    let dir = env.work_dir.join("iotconnect-offline");
    let _ = std::fs::remove_dir_all(&dir);
    let closed = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => format!("mqtts://localhost:{}", a.port()),
        Err(e) => return row(check, 3, 0, format!("no free port: {e}")),
    };
    match Agent::start(
        cx,
        GW,
        Some(Duration::ZERO),
        Some(dir.clone()),
        Some(closed),
        RunOptions::default(),
    )
    .await
    {
        Ok(a) => {
            for t in [1, 2, 3] {
                a.send(&format!(
                    r#"[{{"uniqueId":"{GW}","data":{{"temperature":{t}}}}}]"#
                ))
                .await;
            }
            let deadline = tokio::time::Instant::now() + WAIT;
            while a.count(|e| matches!(e, Event::Published { offline: true, .. })) < 3
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            a.stop().await;
        }
        Err(e) => return row(check, 3, 0, e),
    }
    let got = match Agent::start(
        cx,
        GW,
        Some(Duration::ZERO),
        Some(dir),
        None,
        RunOptions::default(),
    )
    .await
    {
        Ok(a) => {
            let got = counter_reaches(env, "offline_messages", od0, 3).await;
            a.stop().await;
            got
        }
        Err(e) => return row(check, 3, 0, e),
    };
    row(check, 3, got, "")
}
