//! HDM against real parts: iot-sim's local cloud (embedded broker, HTTPS endpoints, the hdm
//! crate's cloud side) and mosquitto with the cloud side run by a small helper. (The ALPN test
//! needs no sim and stays in `crates/hdm/tests`.)

mod generations;
mod mosquitto;
mod sim_e2e;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cloudkit::CloudSide;
use hdm::agent::provision::{ProvisionOptions, ProvisionOutcome, provision};
use hdm::agent::{Event, Provisioned, Reporter, Store};
use hdm::cloud::{DEV_API_KEY, HdmCloud};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use transport::{Message, Outbox, Qos, Session};

/// Collects agent events and waits for the ones a test expects.
pub struct Events {
    rx: mpsc::UnboundedReceiver<Event>,
    /// Every event seen so far.
    pub seen: Vec<Event>,
}

impl Events {
    /// A reporter feeding this collector.
    pub fn new() -> (Arc<dyn Reporter>, Events) {
        let (tx, rx) = mpsc::unbounded_channel();
        let reporter = Arc::new(move |e: Event| {
            let _ = tx.send(e);
        });
        (
            reporter,
            Events {
                rx,
                seen: Vec::new(),
            },
        )
    }

    /// The next event (kept in `seen`), or `None` once every reporter is gone; 30 s at most.
    pub async fn rx_next(&mut self) -> Option<Event> {
        let e = tokio::time::timeout(Duration::from_secs(30), self.rx.recv())
            .await
            .ok()
            .flatten()?;
        self.seen.push(e.clone());
        Some(e)
    }

    /// Waits (up to 30 s) for an event matching `want`; panics with what was seen otherwise.
    pub async fn wait(&mut self, what: &str, want: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) => {
                    self.seen.push(e.clone());
                    if want(&e) {
                        return e;
                    }
                }
                _ => panic!("no {what} within 30 s; seen: {:#?}", self.seen),
            }
        }
    }
}

/// Writes an env file for `https_base` into `dir`.
pub fn write_env(dir: &Path, https_base: &str, api_key: &str) -> PathBuf {
    let p = dir.join("env.dev");
    std::fs::write(
        &p,
        format!(
            "stage=dev\nbase_url={https_base}/hdm\napi_key={api_key}\napi_version=v2\nloglevel=20\n"
        ),
    )
    .unwrap();
    p
}

/// Provisions into `dir/<store>`.
pub async fn provision_store(
    env_file: &Path,
    store: &Path,
    ca: &Path,
    csr: bool,
    force: bool,
) -> Result<ProvisionOutcome, hdm::agent::AgentError> {
    provision_reporting(env_file, store, ca, csr, force, &|_| {}).await
}

/// [`provision_store`] with the agent's events going to `reporter`.
pub async fn provision_reporting(
    env_file: &Path,
    store: &Path,
    ca: &Path,
    csr: bool,
    force: bool,
    reporter: &dyn Reporter,
) -> Result<ProvisionOutcome, hdm::agent::AgentError> {
    let env = hdm::agent::config::load_env_with(
        env_file,
        None,
        hdm::agent::config::Overrides::default(),
    )?;
    let opts = ProvisionOptions {
        env,
        store: store.to_owned(),
        csr,
        force,
        api: hdm::agent::api::ApiOptions {
            https_ca: vec![ca.to_owned()],
            timeout: Duration::from_secs(10),
            allow_plaintext: false,
        },
    };
    provision(&opts, reporter).await
}

/// Provisions (gen 1) and loads the identity.
pub async fn provisioned(env_file: &Path, store: &Path, ca: &Path) -> Provisioned {
    provision_store(env_file, store, ca, false, false)
        .await
        .unwrap();
    Store::new(store).load().unwrap()
}

/// Runs a cloud side as an MQTT client of `url` (like iot-sim's runner) until dropped.
pub struct CloudHelper {
    /// The cloud side's own connection.
    pub session: Session,
    task: JoinHandle<()>,
}

impl Drop for CloudHelper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CloudHelper {
    /// Connects to `url`, subscribes to the cloud's filters and serves.
    pub async fn start(cloud: HdmCloud, url: &str) -> CloudHelper {
        let mut o = transport::SessionOptions::new(url.parse().unwrap());
        o.client_id = "iot-sim-hdm".into();
        let (session, mut incoming) = Session::start(o, Outbox::memory(10_000)).await.unwrap();
        let filters: Vec<(String, Qos)> = cloud
            .filters()
            .into_iter()
            .map(|f| (f, Qos::AtLeastOnce))
            .collect();
        session.subscribe(&filters).await.unwrap();
        let s = session.clone();
        let task = tokio::spawn(async move {
            while let Some(m) = incoming.recv().await {
                for reply in cloud.on_message(&m.topic, &m.payload, time::OffsetDateTime::now_utc())
                {
                    let _ = s.publish(reply).await;
                }
            }
        });
        CloudHelper { session, task }
    }

    /// Subscribes again and waits for the SUBACK (after a broker restart without persistence).
    pub async fn resubscribe(&self, cloud: &HdmCloud) {
        let filters: Vec<(String, Qos)> = cloud
            .filters()
            .into_iter()
            .map(|f| (f, Qos::AtLeastOnce))
            .collect();
        self.session.subscribe(&filters).await.unwrap();
    }

    /// Publishes messages the cloud produced outside `on_message` (e.g. `set_desired`).
    pub async fn publish(&self, msgs: Vec<Message>) {
        for m in msgs {
            self.session
                .publish(m)
                .await
                .unwrap()
                .confirmed()
                .await
                .unwrap();
        }
    }
}

/// A raw client that subscribes and collects what arrives.
pub struct Raw {
    /// Its connection.
    pub session: Session,
    incoming: transport::session::Incoming,
}

impl Raw {
    /// Connects as `id` and subscribes to `filters`.
    pub async fn connect(url: &str, id: &str, filters: &[&str]) -> Raw {
        Raw::connect_with(
            transport::SessionOptions::new(url.parse().unwrap()),
            id,
            filters,
        )
        .await
    }

    /// Connects with `o` (credentials and all) as `id` and subscribes to `filters`.
    pub async fn connect_with(mut o: transport::SessionOptions, id: &str, filters: &[&str]) -> Raw {
        o.client_id = id.into();
        let (session, incoming) = Session::start(o, Outbox::memory(1000)).await.unwrap();
        let f: Vec<(String, Qos)> = filters
            .iter()
            .map(|f| ((*f).to_owned(), Qos::AtLeastOnce))
            .collect();
        if !f.is_empty() {
            session.subscribe(&f).await.unwrap();
        }
        Raw { session, incoming }
    }

    /// Publishes and waits for the PUBACK.
    pub async fn publish(&self, topic: &str, body: &str) {
        self.session
            .publish(Message::new(topic, body.to_owned()))
            .await
            .unwrap()
            .confirmed()
            .await
            .unwrap();
    }

    /// The next message on a topic ending with `suffix` (others are skipped), as JSON.
    pub async fn next(&mut self, suffix: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(m)) if m.topic.ends_with(suffix) => {
                    return serde_json::from_slice(&m.payload).unwrap();
                }
                Ok(Some(_)) => {}
                _ => panic!("nothing on …{suffix} within 20 s"),
            }
        }
    }
}

/// Waits until `f` holds, re-checking whenever the cloud side handled something (deadline 30 s).
pub async fn until(cloud: &HdmCloud, what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut changes = cloud.watch();
    while !f() {
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            panic!("timed out waiting for {what}");
        }
    }
}

/// The vector file `name` from `crates/hdm/tests/vectors`.
pub fn vector(name: &str) -> String {
    String::from_utf8(crate::vector("hdm", name)).unwrap()
}

/// The development API key.
pub const KEY: &str = DEV_API_KEY;
