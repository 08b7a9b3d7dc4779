//! A real mosquitto broker per test: its temp dir (config, password file, ACL,
//! persistence, log, PKI), its four loopback listeners (plain, mTLS,
//! TLS + password, WebSockets) and its lifecycle (start, graceful stop, hard
//! kill, restart on the same ports, log on failure).

use std::fmt::{self, Write as _};
use std::fs::{self, File, OpenOptions, Permissions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::pki::Pki;
use crate::port::{accepts, free_ports};
use crate::process::{kill_and_reap, signal, wait_timeout};

/// The mosquitto binary the broker runs.
const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// How long a (re)start may take until every listener accepts TCP.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a graceful stop may take (mosquitto saves its database on SIGTERM).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Fresh port sets tried by [`Broker::start`] when a port was taken meanwhile.
const START_ATTEMPTS: usize = 3;

/// Options for [`Broker::start`]. `BrokerOpts::new()` (= `Default`): no
/// persistence, one user `("edge", "secret-pass")`, no ACL, mosquitto's
/// default inflight/queue limits, no extra config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerOpts {
    /// `persistence true` with `persistence_location` in the broker's dir, so
    /// a stop + restart keeps sessions, subscriptions and queued QoS 1/2
    /// messages (a [`Broker::kill`] loses whatever was not saved yet).
    pub persistence: bool,
    /// Users of the TLS + password listener (`mosquitto_passwd -b`). Names
    /// must not contain `:`.
    pub users: Vec<(String, String)>,
    /// Contents of an `acl_file` applied to every listener when `Some`.
    /// Clients of the mTLS listener are named by their certificate CN, those
    /// of the password listener by their user name, the others are anonymous.
    /// testkit prepends `topic readwrite testkit/probe/#` (before any `user`
    /// line, so it is for anonymous clients) so that [`crate::Subscriber`]
    /// probes keep working.
    pub acl: Option<String>,
    /// `max_inflight_messages` (per client, outgoing QoS 1/2).
    pub max_inflight: Option<u32>,
    /// `max_queued_messages` (per client).
    pub max_queued: Option<u32>,
    /// Appended verbatim at the end of the config, i.e. after the last
    /// (WebSockets) listener block: global options work, per-listener options
    /// would apply to the WebSockets listener, and new `listener` blocks may
    /// be added.
    pub extra_conf: String,
}

impl Default for BrokerOpts {
    fn default() -> Self {
        Self {
            persistence: false,
            users: vec![("edge".to_owned(), "secret-pass".to_owned())],
            acl: None,
            max_inflight: None,
            max_queued: None,
            extra_conf: String::new(),
        }
    }
}

impl BrokerOpts {
    /// The defaults (see [`BrokerOpts`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`BrokerOpts::persistence`].
    #[must_use]
    pub fn persistence(mut self, on: bool) -> Self {
        self.persistence = on;
        self
    }

    /// Adds a user of the TLS + password listener (after the existing ones).
    #[must_use]
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_owned(), password.to_owned()));
        self
    }

    /// Replaces all users of the TLS + password listener.
    #[must_use]
    pub fn users<N: Into<String>, P: Into<String>>(
        mut self,
        users: impl IntoIterator<Item = (N, P)>,
    ) -> Self {
        self.users = users
            .into_iter()
            .map(|(n, p)| (n.into(), p.into()))
            .collect();
        self
    }

    /// Sets [`BrokerOpts::acl`].
    #[must_use]
    pub fn acl(mut self, acl: &str) -> Self {
        self.acl = Some(acl.to_owned());
        self
    }

    /// Sets [`BrokerOpts::max_inflight`].
    #[must_use]
    pub fn max_inflight(mut self, n: u32) -> Self {
        self.max_inflight = Some(n);
        self
    }

    /// Sets [`BrokerOpts::max_queued`].
    #[must_use]
    pub fn max_queued(mut self, n: u32) -> Self {
        self.max_queued = Some(n);
        self
    }

    /// Appends `conf` (plus a newline) to [`BrokerOpts::extra_conf`].
    #[must_use]
    pub fn extra_conf(mut self, conf: &str) -> Self {
        self.extra_conf.push_str(conf);
        self.extra_conf.push('\n');
        self
    }
}

#[derive(Debug, Clone, Copy)]
struct Ports {
    plain: u16,
    mtls: u16,
    tls_password: u16,
    ws: u16,
}

impl Ports {
    fn fresh() -> Self {
        let p = free_ports(4);
        Self {
            plain: p[0],
            mtls: p[1],
            tls_password: p[2],
            ws: p[3],
        }
    }

    fn all(self) -> [(&'static str, u16); 4] {
        [
            ("plain", self.plain),
            ("mtls", self.mtls),
            ("tls+password", self.tls_password),
            ("websockets", self.ws),
        ]
    }
}

/// A running (or stopped) mosquitto with four listeners on 127.0.0.1:
/// plain MQTT (anonymous), mTLS (client certificate required, CN = user name),
/// TLS + password (no anonymous) and plain WebSockets (anonymous, path
/// `/mqtt` by convention; mosquitto accepts any path). Note: mosquitto 2.0.11
/// (libwebsockets) binds the WebSockets listener to all interfaces despite
/// the `127.0.0.1` in its `listener` line.
///
/// While stopped, nothing holds the ports: they are "reserved" only in the
/// sense that [`Broker::restart`] reuses them (a collision with a port the
/// kernel hands out meanwhile is possible but unlikely).
///
/// Dropping it SIGKILLs mosquitto and removes its temp dir; if the thread is
/// panicking, the broker log is printed to stderr first.
pub struct Broker {
    child: Option<Child>,
    ports: Ports,
    opts: BrokerOpts,
    pki: Pki,
    /// The log was already part of a testkit panic message.
    log_shown: bool,
    dir: TempDir,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("dir", &self.dir.path())
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("ports", &self.ports)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Generates a PKI and config in a new temp dir and starts mosquitto on
    /// four free 127.0.0.1 ports; returns once every port accepts TCP.
    /// Panics (with the broker log) if that does not happen within ~5 s.
    pub fn start(opts: BrokerOpts) -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("testkit-mosquitto-")
            .tempdir()
            .unwrap_or_else(|e| panic!("testkit: cannot create the broker temp dir: {e}"));
        let pki = Pki::generate(&dir.path().join("pki"));
        let mut broker = Broker {
            child: None,
            ports: Ports::fresh(),
            opts,
            pki,
            log_shown: false,
            dir,
        };
        broker.write_static_files();
        for attempt in 1..=START_ATTEMPTS {
            if attempt > 1 {
                // Someone took one of our ports between probing and binding.
                broker.ports = Ports::fresh();
            }
            broker.write_config();
            match broker.spawn_and_wait() {
                Ok(()) => return broker,
                Err(f) if attempt < START_ATTEMPTS && f.bind_failed => {
                    let why = f.why;
                    broker.note(&format!(
                        "start attempt {attempt}: {why}; retrying on new ports"
                    ));
                }
                Err(f) => broker.fail(&format!("mosquitto did not start: {}", f.why)),
            }
        }
        unreachable!("the last start attempt either returns or panics")
    }

    /// The PKI whose CA signed the server certificate and trusts client certs.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The broker's temp dir (config, `passwd`, `acl`, `data/`, logs, `pki/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Port of the plain MQTT listener (anonymous allowed).
    pub fn port_plain(&self) -> u16 {
        self.ports.plain
    }

    /// Port of the mTLS listener (client certificate required).
    pub fn port_mtls(&self) -> u16 {
        self.ports.mtls
    }

    /// Port of the TLS + user/password listener.
    pub fn port_tls_password(&self) -> u16 {
        self.ports.tls_password
    }

    /// Port of the plain WebSockets listener.
    pub fn port_ws(&self) -> u16 {
        self.ports.ws
    }

    /// `mqtt://127.0.0.1:PORT` of the plain listener.
    pub fn url_plain(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.ports.plain)
    }

    /// `mqtts://localhost:PORT` of the mTLS listener.
    pub fn url_mtls(&self) -> String {
        format!("mqtts://localhost:{}", self.ports.mtls)
    }

    /// `mqtts://localhost:PORT` of the TLS + password listener.
    pub fn url_tls_password(&self) -> String {
        format!("mqtts://localhost:{}", self.ports.tls_password)
    }

    /// `ws://127.0.0.1:PORT/mqtt` of the WebSockets listener.
    pub fn url_ws(&self) -> String {
        format!("ws://127.0.0.1:{}/mqtt", self.ports.ws)
    }

    /// The first configured user and password. Panics if there is none.
    pub fn user(&self) -> (&str, &str) {
        let (name, password) = self
            .opts
            .users
            .first()
            .expect("testkit: Broker::user() called but BrokerOpts::users is empty");
        (name, password)
    }

    /// The options this broker was started with.
    pub fn opts(&self) -> &BrokerOpts {
        &self.opts
    }

    /// Graceful stop: SIGTERM, then waits (up to 10 s) for mosquitto to exit;
    /// with persistence it saves its database first. The ports are kept for
    /// [`Broker::restart`]. No-op if not running.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        if let Err(e) = signal(&child, "TERM") {
            kill_and_reap(&mut child);
            self.fail(&format!("cannot SIGTERM mosquitto: {e}"));
        }
        if wait_timeout(&mut child, STOP_TIMEOUT).is_none() {
            kill_and_reap(&mut child);
            self.fail(&format!(
                "mosquitto did not exit within {STOP_TIMEOUT:?} after SIGTERM (SIGKILLed it)"
            ));
        }
    }

    /// Freezes mosquitto (SIGSTOP): connections stay open but nothing is answered, like a
    /// stalled broker or a black-holed link. [`Broker::thaw`] resumes it.
    pub fn freeze(&mut self) {
        if let Some(child) = &self.child
            && let Err(e) = signal(child, "STOP")
        {
            self.fail(&format!("cannot SIGSTOP mosquitto: {e}"));
        }
    }

    /// Resumes a frozen mosquitto (SIGCONT).
    pub fn thaw(&mut self) {
        if let Some(child) = &self.child
            && let Err(e) = signal(child, "CONT")
        {
            self.fail(&format!("cannot SIGCONT mosquitto: {e}"));
        }
    }

    /// Hard kill (SIGKILL, nothing saved). The ports are kept for
    /// [`Broker::restart`]. No-op if not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }

    /// Starts mosquitto again on the same ports with the same config (stops
    /// it gracefully first if running) and waits until every port accepts.
    /// Retries for a few seconds if a port cannot be bound yet.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(f) if Instant::now() < deadline && f.bind_failed => {
                    self.note(&format!("restart: {}; retrying", f.why));
                    thread::sleep(Duration::from_millis(100));
                }
                Err(f) => self.fail(&format!("mosquitto did not restart: {}", f.why)),
            }
        }
    }

    /// Whether the mosquitto process is alive.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The broker's log so far (all runs, `log_type all`), followed by
    /// mosquitto's own stdout/stderr (config errors) and testkit's notes, if
    /// any.
    pub fn log(&self) -> String {
        let mut log = read_lossy(&self.log_path());
        let console = read_lossy(&self.console_path());
        if !console.trim().is_empty() {
            let _ = write!(
                log,
                "\n--- mosquitto stdout/stderr and testkit notes ---\n{console}"
            );
        }
        log
    }

    fn conf_path(&self) -> PathBuf {
        self.dir().join("mosquitto.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir().join("mosquitto.log")
    }

    fn console_path(&self) -> PathBuf {
        self.dir().join("console.log")
    }

    /// Appends a line to the console log (shown by [`Broker::log`]).
    fn note(&self, line: &str) {
        let path = self.console_path();
        let mut prev = read_lossy(&path);
        let _ = writeln!(prev, "testkit: {line}");
        let _ = fs::write(&path, prev);
    }

    /// Kills the broker and panics with `why`, the config and the log.
    fn fail(&mut self, why: &str) -> ! {
        self.kill();
        let conf = read_lossy(&self.conf_path());
        let log = self.log();
        // Dropping the broker while panicking would print the log twice.
        self.log_shown = true;
        panic!(
            "testkit: {why}\n(broker dir {}, ports {:?})\n--- mosquitto.conf ---\n{conf}\n--- broker log ---\n{log}",
            self.dir().display(),
            self.ports
        );
    }

    fn write_static_files(&self) {
        fs::create_dir_all(self.dir().join("data")).unwrap_or_else(|e| {
            panic!("testkit: cannot create {}/data: {e}", self.dir().display())
        });
        let passwd = self.dir().join("passwd");
        write_file(&passwd, "");
        fs::set_permissions(&passwd, Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("testkit: cannot chmod {}: {e}", passwd.display()));
        for (name, password) in &self.opts.users {
            assert!(
                !name.contains(':') && !name.is_empty(),
                "testkit: user name {name:?} is empty or contains ':'"
            );
            let out = Command::new("mosquitto_passwd")
                .arg("-b")
                .arg(&passwd)
                .arg(name)
                .arg(password)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("testkit: cannot run mosquitto_passwd: {e}"));
            assert!(
                out.status.success(),
                "testkit: `mosquitto_passwd -b {} {name} ***` failed with {}: {}{}",
                passwd.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if let Some(acl) = &self.opts.acl {
            write_file(
                &self.dir().join("acl"),
                &format!(
                    "# Added by testkit so Subscriber probes (anonymous) work.\n\
                     topic readwrite testkit/probe/#\n\n{acl}\n"
                ),
            );
        }
    }

    fn write_config(&self) {
        let dir = self.dir();
        let pki = &self.pki;
        let p = self.ports;
        let mut c = String::new();
        let _ = writeln!(c, "# Generated by testkit.");
        // As root, mosquitto drops privileges to user `mosquitto`, which
        // cannot read our temp dir; `user root` keeps it as is.
        if running_as_root() {
            let _ = writeln!(c, "user root");
        }
        let _ = writeln!(c, "per_listener_settings true");
        let _ = writeln!(c, "log_dest file {}", self.log_path().display());
        let _ = writeln!(c, "log_type all");
        let _ = writeln!(c, "log_timestamp_format %Y-%m-%dT%H:%M:%S");
        let _ = writeln!(c, "connection_messages true");
        if self.opts.persistence {
            let _ = writeln!(c, "persistence true");
            let _ = writeln!(c, "persistence_location {}/", dir.join("data").display());
        } else {
            let _ = writeln!(c, "persistence false");
        }
        if let Some(n) = self.opts.max_inflight {
            let _ = writeln!(c, "max_inflight_messages {n}");
        }
        if let Some(n) = self.opts.max_queued {
            let _ = writeln!(c, "max_queued_messages {n}");
        }
        let acl = self
            .opts
            .acl
            .as_ref()
            .map(|_| format!("acl_file {}\n", dir.join("acl").display()))
            .unwrap_or_default();
        let tls = format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n",
            pki.ca_cert().display(),
            pki.server_cert().display(),
            pki.server_key().display()
        );
        let _ = write!(
            c,
            "\n# plain MQTT\nlistener {} 127.0.0.1\nallow_anonymous true\n{acl}",
            p.plain
        );
        let _ = write!(
            c,
            "\n# mTLS\nlistener {} 127.0.0.1\n{tls}require_certificate true\nuse_identity_as_username true\n{acl}",
            p.mtls
        );
        let _ = write!(
            c,
            "\n# TLS + password\nlistener {} 127.0.0.1\n{tls}password_file {}\nallow_anonymous false\n{acl}",
            p.tls_password,
            dir.join("passwd").display()
        );
        let _ = write!(
            c,
            "\n# WebSockets (plain)\nlistener {} 127.0.0.1\nprotocol websockets\nallow_anonymous true\n{acl}",
            p.ws
        );
        if !self.opts.extra_conf.is_empty() {
            let _ = write!(c, "\n# extra_conf\n{}\n", self.opts.extra_conf);
        }
        write_file(&self.conf_path(), &c);
    }

    /// Spawns mosquitto and waits until every listener accepts TCP. On
    /// failure the process is gone and `Err` says why and whether the log
    /// of this attempt reports a port that could not be bound.
    fn spawn_and_wait(&mut self) -> Result<(), Failure> {
        let log_before = self.log().len();
        let console = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.console_path())
            .unwrap_or_else(|e| panic!("testkit: cannot open the console log: {e}"));
        let console_err = console
            .try_clone()
            .unwrap_or_else(|e| panic!("testkit: cannot clone the console log handle: {e}"));
        let mut child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(self.conf_path())
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(console_err)
            .spawn()
            .unwrap_or_else(|e| panic!("testkit: cannot spawn {MOSQUITTO}: {e}"));
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut pending: Vec<(&str, u16)> = self.ports.all().to_vec();
        let why = loop {
            match child.try_wait() {
                Ok(Some(status)) => break format!("mosquitto exited during startup with {status}"),
                Ok(None) => {}
                Err(e) => break format!("try_wait on mosquitto failed: {e}"),
            }
            pending.retain(|&(_, port)| !accepts(port));
            if pending.is_empty() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                break format!("listeners {pending:?} did not accept TCP within {READY_TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        kill_and_reap(&mut child);
        let log = self.log();
        let new = log.get(log_before..).unwrap_or(&log);
        let bind_failed = BIND_ERRORS.iter().any(|e| new.contains(e));
        Err(Failure { why, bind_failed })
    }
}

/// Why a spawn attempt failed.
struct Failure {
    why: String,
    /// The attempt's log says a port could not be bound (worth a retry).
    bind_failed: bool,
}

/// Log lines of mosquitto 2.0 when a listener port cannot be bound.
const BIND_ERRORS: [&str; 2] = [
    "Address already in use",
    "Unable to create websockets listener",
];

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() && !self.log_shown {
            #[allow(clippy::print_stderr)] // the point: show the log of a failing test
            {
                eprintln!(
                    "==== testkit: broker log ({}) ====\n{}\n==== end of broker log ====",
                    self.dir().display(),
                    self.log()
                );
            }
        }
    }
}

pub(crate) fn running_as_root() -> bool {
    // The owner of /proc/self is the process's effective uid.
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn write_file(path: &Path, contents: &str) {
    File::create(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, contents.as_bytes()))
        .unwrap_or_else(|e| panic!("testkit: cannot write {}: {e}", path.display()));
}
