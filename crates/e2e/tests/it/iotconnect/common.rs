//! Shared set-up: the local cloud with the IoTConnect cloud side (broker endpoints wired into
//! its sync answers), agent config files, an agent running in a task, and waiting for a
//! condition with a deadline (never a fixed sleep).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cloudkit::{CloudSide, Listener, Report};
use iotconnect::agent::setup::setup;
use iotconnect::agent::source::Input;
use iotconnect::agent::{AgentError, Collect, Event, RunOptions, RunOutcome};
use iotconnect::cloud::IotConnectCloud;
use iotconnect::config::Config;
use sim::engine::{Sim, SimOptions};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use transport::{ConnectSettings, Outbox, Session, SessionOptions};

pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `f` until it is true; fails the test after `WAIT`.
pub async fn wait_for(what: &str, f: impl Fn() -> bool) {
    testkit::wait::expect(what, WAIT, f).await;
}

pub struct Cloud {
    pub sim: Sim,
    pub side: Arc<IotConnectCloud>,
    pub dir: tempfile::TempDir,
}

impl Cloud {
    /// The local cloud with the built-in template; `external` runs it against another broker.
    pub async fn start(external: Option<SessionOptions>) -> Cloud {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(IotConnectCloud::builtin());
        let sim = Sim::start(
            SimOptions {
                external,
                ..SimOptions::in_dir(dir.path())
            },
            vec![cloud.clone() as Arc<dyn CloudSide>],
        )
        .await
        .unwrap();
        // The broker endpoints reach the sync answers through `CloudSide::on_start`.
        Cloud {
            sim,
            side: cloud,
            dir,
        }
    }

    pub fn report(&self) -> Report {
        self.side.report()
    }

    pub fn listener(&self, name: &str) -> Listener {
        self.sim
            .listeners()
            .iter()
            .find(|l| l.name == name)
            .cloned()
            .unwrap()
    }

    pub fn base(&self) -> String {
        format!("{}/iotconnect", self.sim.https_base().unwrap())
    }

    /// A config file for `unique_id` with the dev PKI's certificate (if issued).
    pub fn config(&self, unique_id: &str, extra: serde_json::Value) -> Config {
        let mut v = serde_json::json!({
            "cpId": "EDGEWIRE", "uniqueId": unique_id, "env": "DEV", "discoveryUrl": self.base(),
            "sdkOptions": {
                "certificate": {"SSLCaPath": self.sim.pki().ca},
                "offlineStorage": {"disabled": true}
            }
        });
        if let Some(pair) = self.sim.pki().client(unique_id) {
            v["sdkOptions"]["certificate"]["SSLCertPath"] = serde_json::json!(pair.cert);
            v["sdkOptions"]["certificate"]["SSLKeyPath"] = serde_json::json!(pair.key);
        }
        merge(&mut v, extra);
        let path = self.dir.path().join(format!("{unique_id}.json"));
        std::fs::write(&path, v.to_string()).unwrap();
        Config::load(&path).unwrap()
    }

    /// A raw client of the loopback listener.
    pub async fn raw_client(&self) -> (Session, transport::session::Incoming) {
        let mut o = self.listener("plain").session_options().unwrap();
        o.client_id = format!("test-raw-{:06x}", fastrand_u32());
        Session::start(o, Outbox::memory(100)).await.unwrap()
    }
}

fn fastrand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

pub fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// The connection settings `iotc-send` would make of `--broker` and `--cafile` (keep-alive
/// 30 s, a 5 s connect timeout and 1 s reconnects, so failures show quickly).
pub fn flags(broker: Option<String>, cafile: Vec<PathBuf>) -> ConnectSettings {
    let mut s = ConnectSettings {
        broker,
        keep_alive: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
        reconnect_max: Duration::from_secs(1),
        ..ConnectSettings::default()
    };
    s.tls.ca_files = cafile;
    s
}

/// An agent running `Agent::run` in a task.
pub struct Running {
    pub tx: Option<mpsc::Sender<Input>>,
    pub events: Arc<Collect>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<RunOutcome, AgentError>>,
}

impl Running {
    /// Discovery, sync, connect, run.
    pub async fn start(
        config: Config,
        flags: &ConnectSettings,
        df: Option<Duration>,
        offline: Option<&Path>,
        mut opts: RunOptions,
    ) -> Running {
        let events = Arc::new(Collect::default());
        let s = setup(config, flags, df, Duration::from_secs(10), events.as_ref())
            .await
            .unwrap();
        let offline = offline.and_then(|d| s.offline(Some(d.to_owned())));
        let (agent, platform, config) = s.connect(flags, offline, events.clone()).await.unwrap();
        opts.platform = Some((platform, config));
        let (tx, rx) = mpsc::channel(64);
        let (stop, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(agent.run(rx, opts, async move {
            let _ = stop_rx.await;
        }));
        Running {
            tx: Some(tx),
            events,
            stop: Some(stop),
            task,
        }
    }

    pub async fn send(&self, line: &str) {
        let records = iotconnect::protocol::input::parse_line(1, line)
            .unwrap()
            .unwrap();
        self.tx
            .as_ref()
            .unwrap()
            .send(Input::Records(records))
            .await
            .unwrap();
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.events()
    }

    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events().iter().filter(|e| f(e)).count()
    }

    pub async fn wait_event(&self, what: &str, f: impl Fn(&Event) -> bool) {
        wait_for(what, || self.events().iter().any(&f)).await;
    }

    /// Stops it (Ctrl-C equivalent) and returns how it ended.
    pub async fn stop(mut self) -> Result<RunOutcome, AgentError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.tx.take();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("agent stops")
            .unwrap()
    }

    /// Waits for it to end by itself.
    pub async fn join(mut self) -> Result<RunOutcome, AgentError> {
        self.tx.take();
        let stop = self.stop.take();
        let r = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("agent ends")
            .unwrap();
        drop(stop);
        r
    }
}

static ADMIN_N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Sends an admin request to the cloud side over the plain listener and returns what it sent
/// and the acknowledgements it saw.
pub async fn admin_send(
    c: &Cloud,
    req: iotconnect::cloud::admin::Request,
) -> (
    iotconnect::cloud::admin::Sent,
    Vec<iotconnect::cloud::admin::AckSeen>,
) {
    let mut o = c.listener("plain").session_options().unwrap();
    // A fresh client id each time: reusing one races the old session's clean-up at the broker.
    o.client_id = format!(
        "test-admin-{}-{}",
        req.kind(),
        ADMIN_N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    iotconnect::cloud::admin::send(o, &req, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{req:?}: {e}"))
}
