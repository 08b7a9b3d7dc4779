//! An independent subscriber: a `mosquitto_sub` process on the broker's plain
//! listener writing `topic TAB payload` lines to a file, confirmed subscribed
//! (via a probe topic) before `start` returns, and polled by tests.

use std::fmt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::broker::Broker;
use crate::process::{kill_and_reap, unique_token};

/// Topics under this prefix are testkit's subscription probes; they are
/// filtered out of [`Subscriber::messages`] (also other subscribers' probes).
pub const PROBE_TOPIC_PREFIX: &str = "testkit/probe/";

/// How long [`Subscriber::start`] waits for its subscription to work.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Polling interval of [`Subscriber::wait_until`].
const POLL: Duration = Duration::from_millis(25);

/// `mosquitto_sub` as an independent judge of what the broker delivered.
///
/// It subscribes to `filter` plus a unique probe topic on the broker's plain
/// port, one line per message (`-F '%t\t%p'`, so payloads must not contain
/// newlines). With a client id it uses a persistent session (`-c -i ID`) and,
/// since libmosquitto reconnects by itself (every second), it survives a
/// [`Broker::restart`]. Dropping it kills the process.
pub struct Subscriber {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
    description: String,
    _dir: TempDir,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("command", &self.description)
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    /// Starts `mosquitto_sub -h 127.0.0.1 -p <plain port> -t <filter> -q <qos>`
    /// (plus `-i <id> -c` when `client_id` is `Some`) and returns once the
    /// subscription demonstrably works: a probe published with
    /// `mosquitto_pub` every 100 ms on the subscriber's own probe topic has
    /// come back (bounded, 10 s; panics with the subscriber's stderr).
    pub fn start(broker: &Broker, filter: &str, qos: u8, client_id: Option<&str>) -> Subscriber {
        assert!(
            qos <= 2,
            "testkit: Subscriber QoS must be 0, 1 or 2, got {qos}"
        );
        let dir = tempfile::Builder::new()
            .prefix("testkit-sub-")
            .tempdir()
            .unwrap_or_else(|e| panic!("testkit: cannot create the subscriber temp dir: {e}"));
        let out = dir.path().join("messages.tsv");
        let err = dir.path().join("stderr.log");
        let probe = format!("{PROBE_TOPIC_PREFIX}{}", unique_token());
        let port = broker.port_plain().to_string();
        let qos = qos.to_string();

        let mut args: Vec<&str> = vec![
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-q",
            &qos,
            "-t",
            filter,
            "-t",
            &probe,
            "-F",
            "%t\\t%p",
        ];
        if let Some(id) = client_id {
            args.extend(["-i", id, "-c"]);
        }
        let description = format!("mosquitto_sub {}", args.join(" "));
        let child = Command::new("mosquitto_sub")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(create(&out))
            .stderr(create(&err))
            .spawn()
            .unwrap_or_else(|e| panic!("testkit: cannot spawn `{description}`: {e}"));
        let mut sub = Subscriber {
            child: Some(child),
            out,
            err,
            description,
            _dir: dir,
        };
        sub.await_probe(&port, &probe);
        sub
    }

    /// Publishes probes until one comes back; panics after the timeout.
    fn await_probe(&mut self, port: &str, probe: &str) {
        let deadline = Instant::now() + SUBSCRIBE_TIMEOUT;
        let mut last_pub_error = String::new();
        loop {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "testkit: `{}` exited with {status} before subscribing; stderr:\n{}",
                    self.description,
                    self.stderr()
                );
            }
            match Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", port, "-t", probe, "-m", "probe"])
                .stdin(Stdio::null())
                .output()
            {
                Ok(o) if o.status.success() => {}
                Ok(o) => {
                    last_pub_error = format!(
                        "mosquitto_pub probe failed with {}: {}",
                        o.status,
                        String::from_utf8_lossy(&o.stderr).trim()
                    );
                }
                Err(e) => panic!("testkit: cannot run mosquitto_pub: {e}"),
            }
            if self.lines().any(|(topic, _)| topic == probe) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "testkit: `{}` did not receive its probe on {probe} within {SUBSCRIBE_TIMEOUT:?} \
                 ({last_pub_error}); subscriber stderr:\n{}",
                self.description,
                self.stderr()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// All messages received so far as (topic, payload), in arrival order,
    /// probes excluded. A line still being written is not included.
    pub fn messages(&self) -> Vec<(String, String)> {
        self.lines()
            .filter(|(topic, _)| !topic.starts_with(PROBE_TOPIC_PREFIX))
            .collect()
    }

    /// Polls (every 25 ms) until `pred(&messages)` holds or `timeout` passes;
    /// returns the messages either way.
    pub fn wait_until(
        &self,
        timeout: Duration,
        pred: impl Fn(&[(String, String)]) -> bool,
    ) -> Vec<(String, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if pred(&messages) || Instant::now() >= deadline {
                return messages;
            }
            thread::sleep(POLL);
        }
    }

    /// Waits until at least `n` messages arrived or `timeout` passes; returns
    /// the messages either way.
    pub fn wait_for_count(&self, n: usize, timeout: Duration) -> Vec<(String, String)> {
        self.wait_until(timeout, |m| m.len() >= n)
    }

    /// Whether the `mosquitto_sub` process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// What `mosquitto_sub` printed on stderr so far (errors).
    pub fn stderr(&self) -> String {
        read_lossy(&self.err)
    }

    /// Kills `mosquitto_sub` (SIGKILL: no DISCONNECT is sent, a persistent
    /// session stays on the broker). Received messages stay readable.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }

    /// Complete lines of the output file as (topic, payload).
    fn lines(&self) -> impl Iterator<Item = (String, String)> {
        let text = read_lossy(&self.out);
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .split('\n')
            .filter(|l| !l.is_empty())
            .map(|l| match l.split_once('\t') {
                Some((t, p)) => (t.to_owned(), p.to_owned()),
                None => (l.to_owned(), String::new()),
            })
            .collect::<Vec<_>>()
            .into_iter()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop();
    }
}

fn create(path: &Path) -> File {
    File::create(path).unwrap_or_else(|e| panic!("testkit: cannot create {}: {e}", path.display()))
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
