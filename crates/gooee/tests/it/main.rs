//! Integration tests of the gooee crate: the protocol and the platform side fed with Gooee's
//! documented bytes, property tests, and the agent against a real mosquitto (TLS + password and
//! WebSockets over TLS + password, username `authorization`, the topic table as ACL). The demo
//! against iot-sim's embedded broker with the Gooee policy is in `crates/e2e`.

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod agent;
mod props;
mod raw_cloud;
mod vectors;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cloudkit::{CloudSide, Qos};
use gooee::cloud::GooeeCloud;
use tempfile::TempDir;
use testkit::{Broker, BrokerOpts, Pki};
use tokio::task::JoinHandle;
use transport::auth::Credentials;
use transport::{Outbox, Session, SessionOptions};

/// The token the tests' mosquitto accepts for `authorization`.
pub const TOKEN: &str = "tok-123";

/// A test vector's bytes.
pub fn vector(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Shows the crate's logs in test output (`RUST_LOG` to change the level).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttc=warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Runs blocking test-kit code from an async test.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// A mosquitto that behaves like Gooee's broker where mosquitto can: user `authorization` with
/// [`TOKEN`] on the TLS + password listener and on the WebSocket listener (made WSS with a
/// password file via `extra_conf`), the topic table as that user's ACL, anonymous clients (the
/// cloud side, `Subscriber`) free on the plain listener.
pub struct GooeeBroker {
    /// The broker.
    pub broker: Broker,
    /// The PKI of the WebSocket listener.
    ws_pki: Pki,
    _dir: TempDir,
}

impl GooeeBroker {
    /// Starts it.
    pub fn start() -> GooeeBroker {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let ws_pki = Pki::generate(&dir.path().join("ws-pki"));
        let passwd = dir.path().join("ws-passwd");
        let status = Command::new("mosquitto_passwd")
            .args(["-c", "-b"])
            .arg(&passwd)
            .args(["authorization", TOKEN])
            .status()
            .unwrap();
        assert!(status.success(), "mosquitto_passwd failed");
        let acl = format!(
            "topic readwrite #\n\n{}",
            gooee::protocol::topics::mosquitto_acl("authorization")
        );
        let extra = format!(
            "certfile {}\nkeyfile {}\npassword_file {}\nallow_anonymous false",
            ws_pki.server_cert().display(),
            ws_pki.server_key().display(),
            passwd.display()
        );
        let opts = BrokerOpts::new()
            .user("authorization", TOKEN)
            .acl(&acl)
            .extra_conf(&extra);
        let broker = blocking(|| Broker::start(opts));
        GooeeBroker {
            broker,
            ws_pki,
            _dir: dir,
        }
    }

    fn with_token(url: &str, ca: PathBuf, token: &str) -> SessionOptions {
        let mut o = SessionOptions::new(url.parse().unwrap());
        o.connect_timeout = Duration::from_secs(5);
        o.backoff_initial = Duration::from_millis(50);
        o.tls.ca_files = vec![ca];
        o.credentials = Some(Credentials {
            username: "authorization".into(),
            password: Some(token.into()),
        });
        o
    }

    /// MQTT over TLS with username `authorization` and `token`.
    pub fn tls(&self, token: &str) -> SessionOptions {
        Self::with_token(
            &self.broker.url_tls_password(),
            self.broker.pki().ca_cert(),
            token,
        )
    }

    /// WebSockets over TLS with username `authorization` and `token`.
    pub fn wss(&self, token: &str) -> SessionOptions {
        let url = format!("wss://localhost:{}/mqtt", self.broker.port_ws());
        Self::with_token(&url, self.ws_pki.ca_cert(), token)
    }

    /// The CA of the WebSocket listener.
    pub fn wss_ca(&self) -> PathBuf {
        self.ws_pki.ca_cert()
    }
}

/// A cloud side served on a broker's plain listener the way iot-sim's runner does it.
pub struct CloudTask {
    /// The cloud side (for its report).
    pub cloud: Arc<GooeeCloud>,
    session: Session,
    task: JoinHandle<()>,
}

impl CloudTask {
    /// Connects to `plain_url`, subscribes to the cloud's filters, publishes its answers.
    pub async fn start(plain_url: &str) -> CloudTask {
        let cloud = Arc::new(GooeeCloud::new());
        let mut o = SessionOptions::new(plain_url.parse().unwrap());
        o.client_id = format!("gooee-cloud-{:04x}", std::process::id() % 0xffff);
        let (session, mut incoming) = Session::start(o, Outbox::memory(10_000)).await.unwrap();
        let filters: Vec<(String, Qos)> = cloud
            .filters()
            .into_iter()
            .map(|f| (f, Qos::AtLeastOnce))
            .collect();
        session.subscribe(&filters).await.unwrap();
        let (c, s) = (cloud.clone(), session.clone());
        let task = tokio::spawn(async move {
            while let Some(m) = incoming.recv().await {
                for reply in c.on_message(&m.topic, &m.payload, time::OffsetDateTime::now_utc()) {
                    s.publish(reply).await.unwrap();
                }
            }
        });
        CloudTask {
            cloud,
            session,
            task,
        }
    }

    /// Waits (bounded) until `counter` reaches `n`; returns its value.
    pub async fn wait_counter(&self, counter: &str, n: u64) -> u64 {
        testkit::wait::until(Duration::from_secs(10), || {
            self.cloud.report().get(counter) >= n
        })
        .await;
        self.cloud.report().get(counter)
    }

    /// The cloud side's report now.
    pub fn report(&self) -> cloudkit::Report {
        self.cloud.report()
    }

    /// Stops serving.
    pub async fn stop(self) {
        self.session.close(Duration::from_secs(1)).await;
        self.task.abort();
    }
}
