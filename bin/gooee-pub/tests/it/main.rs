//! Tests of the `gooee-pub` binary as a user runs it, against a real mosquitto that behaves like
//! Gooee's broker where it can (TLS + password and WebSockets inside TLS + password for user
//! `authorization`, the topic table as ACL), with the Gooee cloud side on the plain listener.

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod publish;
mod secrets;
mod sub;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use cloudkit::{CloudSide, Qos};
use gooee::cloud::GooeeCloud;
use tempfile::TempDir;
use testkit::{Broker, BrokerOpts, Pki};
use tokio::task::JoinHandle;
use transport::{Outbox, Session, SessionOptions};

/// The token the tests' mosquitto accepts for `authorization`.
pub const TOKEN: &str = "tok-123";

/// The built binary, with a clean environment and `GOOEE_TOKEN` set to `token` (if any).
pub fn gooee_pub(token: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gooee-pub"));
    c.env_remove("RUST_LOG")
        .env_remove("EDGEWIRE_BROKER")
        .env_remove("GOOEE_TOKEN");
    if let Some(t) = token {
        c.env("GOOEE_TOKEN", t);
    }
    c
}

pub use testkit::cli::Running;

/// Runs to completion (bounded) from an async test.
pub fn run(cmd: &mut Command) -> Output {
    tokio::task::block_in_place(|| testkit::cli::run(cmd))
}

/// mosquitto as Gooee's broker: `authorization`/[`TOKEN`] on TLS + password and on the WebSocket
/// listener (made WSS with a password file), the topic table as that user's ACL.
pub struct GooeeBroker {
    /// The broker.
    pub broker: Broker,
    ws_pki: Pki,
    _dir: TempDir,
}

impl GooeeBroker {
    /// Starts it.
    pub fn start() -> GooeeBroker {
        let dir = tempfile::tempdir().unwrap();
        let ws_pki = Pki::generate(&dir.path().join("ws-pki"));
        let passwd = dir.path().join("ws-passwd");
        let ok = Command::new("mosquitto_passwd")
            .args(["-c", "-b"])
            .arg(&passwd)
            .args(["authorization", TOKEN])
            .status()
            .unwrap();
        assert!(ok.success(), "mosquitto_passwd failed");
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
        let broker = tokio::task::block_in_place(|| Broker::start(opts));
        GooeeBroker {
            broker,
            ws_pki,
            _dir: dir,
        }
    }

    /// `(name, broker URL, CA)` of the TLS + password and the WSS listener.
    pub fn endpoints(&self) -> [(&'static str, String, PathBuf); 2] {
        [
            (
                "tls",
                self.broker.url_tls_password(),
                self.broker.pki().ca_cert(),
            ),
            (
                "wss",
                format!("wss://localhost:{}/mqtt", self.broker.port_ws()),
                self.ws_pki.ca_cert(),
            ),
        ]
    }

    /// `-b URL --cafile CA` for the TLS + password listener.
    pub fn tls_args(&self) -> Vec<String> {
        let [(_, url, ca), _] = self.endpoints();
        vec![
            "-b".into(),
            url,
            "--cafile".into(),
            ca.display().to_string(),
        ]
    }
}

/// The Gooee cloud side on the plain listener, the way iot-sim's runner serves it.
pub struct CloudTask {
    cloud: Arc<GooeeCloud>,
    session: Session,
    task: JoinHandle<()>,
}

impl CloudTask {
    /// Connects, subscribes to the cloud's filters, publishes its answers.
    pub async fn start(plain_url: &str) -> CloudTask {
        let cloud = Arc::new(GooeeCloud::new());
        let (session, mut incoming) = Session::start(
            SessionOptions::new(plain_url.parse().unwrap()),
            Outbox::memory(10_000),
        )
        .await
        .unwrap();
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

    /// Stops serving.
    pub async fn stop(self) {
        self.session.close(Duration::from_secs(1)).await;
        self.task.abort();
    }
}

/// NDJSON stdout as `(type, data)`, each event checked against its schema in `docs/schema/`.
pub fn events(stdout: &[u8]) -> Vec<(String, serde_json::Value)> {
    testkit::cli::events_of("gooee-pub", stdout)
}
