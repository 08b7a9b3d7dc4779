//! A private MariaDB for the tests of one process: `mariadb-install-db` and `mariadbd` in a
//! per-run folder, on a free loopback port and a socket in that folder, started once per test
//! binary ([`MariaDb::shared`]) and stopped by its watchdog when the process ends. Each test
//! takes its own database ([`MariaDb::database`]). As root the server runs as the `mysql`
//! system user (`--user=mysql`).
//!
//! `EDGEWIRE_TEST_MYSQL_URL` replaces the plain shared server with an existing one; set but
//! unreachable, it is a failure, never a skip. The TLS server ([`MariaDb::shared_tls`]) is
//! always private: `--ssl-ca/--ssl-cert/--ssl-key` from a testkit [`Pki`] and
//! `require_secure_transport`, so plaintext TCP is refused.
//!
//! `root` logs in without a password (TCP from loopback, and the socket);
//! [`MariaDb::create_password_user`] makes users that need one.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::dbserver::{
    self, Account, RunDir, ServerProcess, UrlParts, note, run_tool, try_run_tool, unique_db_name,
    wait_ready, write_owned,
};
use crate::pki::Pki;
use crate::port::{accepts, free_port};

/// The variable naming an existing server to use instead of the private plain one.
pub const MYSQL_URL_ENV: &str = "EDGEWIRE_TEST_MYSQL_URL";

const INSTALL_DB: &str = "mariadb-install-db";
const SERVER: &str = "/usr/sbin/mariadbd";
const CLIENT: &str = "mariadb";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
const START_ATTEMPTS: usize = 3;

/// Which private server to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MariaDbFlavor {
    /// Plaintext TCP; TLS off.
    Plain,
    /// TLS with a testkit PKI and `require_secure_transport`: plaintext TCP is refused.
    Tls,
}

/// A MariaDB server for tests: private (started by testkit) or the one
/// `EDGEWIRE_TEST_MYSQL_URL` names.
pub struct MariaDb {
    inner: Inner,
}

enum Inner {
    Private(Box<Private>),
    External(UrlParts),
}

struct Private {
    flavor: MariaDbFlavor,
    port: u16,
    pki: Option<Pki>,
    log: PathBuf,
    process: ServerProcess,
    dir: RunDir,
}

impl fmt::Debug for MariaDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Private(p) => f
                .debug_struct("MariaDb")
                .field("flavor", &p.flavor)
                .field("port", &p.port)
                .field("dir", &p.dir.path())
                .field("pid", &p.process.pid())
                .finish(),
            Inner::External(u) => f
                .debug_struct("MariaDb")
                .field("external", &format!("{}:{:?}", u.host, u.port))
                .finish(),
        }
    }
}

static SHARED: OnceLock<MariaDb> = OnceLock::new();
static SHARED_TLS: OnceLock<MariaDb> = OnceLock::new();

impl MariaDb {
    /// The plain server of this process: `EDGEWIRE_TEST_MYSQL_URL`'s when set (checked now:
    /// an unreachable one panics), else a private one started on first use.
    pub fn shared() -> &'static MariaDb {
        SHARED.get_or_init(|| match std::env::var(MYSQL_URL_ENV) {
            Ok(url) if !url.is_empty() => MariaDb::external(&url),
            _ => MariaDb::start(MariaDbFlavor::Plain),
        })
    }

    /// The TLS server of this process (always private), started on first use.
    pub fn shared_tls() -> &'static MariaDb {
        SHARED_TLS.get_or_init(|| MariaDb::start(MariaDbFlavor::Tls))
    }

    /// Starts a private server of `flavor`; dropping it stops it and removes its folder.
    pub fn start(flavor: MariaDbFlavor) -> MariaDb {
        assert!(
            Path::new(SERVER).is_file(),
            "testkit: {SERVER} is missing: install MariaDB (apt-get install -y mariadb-server) \
             or set {MYSQL_URL_ENV} to an existing server"
        );
        let account = dbserver::server_account("mysql", "mariadb-server");
        let dir = RunDir::create("mariadb", account.as_ref());
        let log = dir.path().join("mariadb.log");
        write_owned(&log, b"", 0o600, account.as_ref());
        fs::create_dir_all(tmpdir(&dir))
            .unwrap_or_else(|e| panic!("testkit: cannot create {}: {e}", tmpdir(&dir).display()));
        dbserver::give_to(&tmpdir(&dir), account.as_ref());
        install_db(&dir, account.as_ref());
        let pki = (flavor == MariaDbFlavor::Tls).then(|| {
            let pki = Pki::generate(&dir.path().join("pki"));
            for (from, to, mode) in [
                (pki.ca_cert(), "ca.pem", 0o644),
                (pki.server_cert(), "server.pem", 0o644),
                (pki.server_key(), "server.key", 0o600),
            ] {
                let bytes = fs::read(&from).unwrap_or_default();
                write_owned(&dir.path().join(to), &bytes, mode, account.as_ref());
            }
            pki
        });
        let mut last = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let process = spawn_server(&dir, port, flavor, &log, account.as_ref());
            let socket = dir.path().join("mysqld.sock");
            let ready = wait_ready(&process, "mariadbd", &log, START_TIMEOUT, || {
                socket.exists() && accepts(port)
            });
            match ready {
                Ok(()) => {
                    let server = MariaDb {
                        inner: Inner::Private(Box::new(Private {
                            flavor,
                            port,
                            pki,
                            log,
                            process,
                            dir,
                        })),
                    };
                    // Answers queries (not only accepts TCP) before anyone gets it; root may
                    // also come over TCP from loopback, without a password.
                    server.sql(
                        None,
                        "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; \
                         GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; \
                         CREATE USER IF NOT EXISTS 'root'@'::1'; \
                         GRANT ALL PRIVILEGES ON *.* TO 'root'@'::1' WITH GRANT OPTION",
                    );
                    return server;
                }
                Err(why) => {
                    process.kill();
                    let bind = why.contains("Can't start server") || why.contains("in use");
                    note(
                        &log,
                        &format!("start attempt {attempt} on port {port} failed"),
                    );
                    last = why;
                    if !bind {
                        break;
                    }
                }
            }
        }
        panic!("testkit: the private MariaDB did not start: {last}");
    }

    fn external(url: &str) -> MariaDb {
        let parts = UrlParts::parse(url).unwrap_or_else(|| {
            panic!("testkit: {MYSQL_URL_ENV}=`{url}` is not a mysql://USER@HOST:PORT/DB URL")
        });
        let server = MariaDb {
            inner: Inner::External(parts),
        };
        // Fails loudly now when the server is not there: a set URL is never skipped.
        if let Err(e) = server.try_sql(None, "SELECT 1") {
            panic!(
                "testkit: {MYSQL_URL_ENV} is set, but that server cannot be used (a set URL is a \
                 failure, never a skip; unset it to get a private server): {e}"
            );
        }
        server
    }

    /// The server's pid and run folder. Panics for an external server.
    pub fn pid_and_folder(&self) -> (u32, PathBuf) {
        match &self.inner {
            Inner::Private(p) => (p.process.pid(), p.dir.path().to_path_buf()),
            Inner::External(_) => {
                panic!("testkit: an external server has no pid or folder of ours")
            }
        }
    }

    /// Whether testkit started this server (else it is `EDGEWIRE_TEST_MYSQL_URL`'s).
    pub fn is_private(&self) -> bool {
        matches!(self.inner, Inner::Private(_))
    }

    /// The host clients connect to (`127.0.0.1` for private servers).
    pub fn host(&self) -> &str {
        match &self.inner {
            Inner::Private(_) => "127.0.0.1",
            Inner::External(u) => &u.host,
        }
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        match &self.inner {
            Inner::Private(p) => p.port,
            Inner::External(u) => u.port.unwrap_or(3306),
        }
    }

    /// The server's unix socket (private servers).
    pub fn socket(&self) -> Option<PathBuf> {
        match &self.inner {
            Inner::Private(p) => Some(p.dir.path().join("mysqld.sock")),
            Inner::External(_) => None,
        }
    }

    /// The CA file that signed the TLS server's certificate (SANs `localhost`, `127.0.0.1`,
    /// `::1`); `None` for a plain server.
    pub fn ca_file(&self) -> Option<PathBuf> {
        match &self.inner {
            Inner::Private(p) => p.pki.as_ref().map(Pki::ca_cert),
            Inner::External(_) => None,
        }
    }

    fn url_for(&self, user: Option<&str>, database: &str) -> String {
        match &self.inner {
            Inner::Private(p) => format!(
                "mysql://{}@127.0.0.1:{}/{database}",
                user.unwrap_or("root"),
                p.port
            ),
            Inner::External(u) => {
                let mut parts = u.clone();
                if let Some(name) = user {
                    parts.user = Some(name.to_owned());
                    parts.password = None;
                }
                parts.with_database(database)
            }
        }
    }

    /// A new, empty database for one test, dropped when the handle is.
    pub fn database(&self) -> MariaDbDatabase<'_> {
        let name = unique_db_name();
        self.sql(
            None,
            &format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"),
        );
        MariaDbDatabase { server: self, name }
    }

    /// Creates a user (any host) that must log in with `password`, allowed everything on every
    /// database. `name` and `password` must be plain words (no quotes).
    pub fn create_password_user(&self, name: &str, password: &str) {
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !password.contains('\'')
                && !password.contains('\\'),
            "testkit: user {name:?} or its password would need quoting"
        );
        self.sql(
            None,
            &format!(
                "CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'; \
                 GRANT ALL PRIVILEGES ON *.* TO '{name}'@'%'"
            ),
        );
    }

    /// Runs `sql` as root (in `database` when given) with the `mariadb` client and returns its
    /// tab-separated output without headers. Panics with the client's message when it fails.
    pub fn sql(&self, database: Option<&str>, sql: &str) -> String {
        self.try_sql(database, sql)
            .unwrap_or_else(|e| panic!("testkit: {e}"))
    }

    fn try_sql(&self, database: Option<&str>, sql: &str) -> Result<String, String> {
        let mut cmd = Command::new(CLIENT);
        cmd.arg("--no-defaults");
        match &self.inner {
            Inner::Private(p) => {
                cmd.arg(format!(
                    "--socket={}",
                    p.dir.path().join("mysqld.sock").display()
                ))
                .arg("-uroot");
            }
            Inner::External(u) => {
                cmd.args(["-h", &u.host, "-P", &u.port.unwrap_or(3306).to_string()])
                    .arg(format!("-u{}", u.user.as_deref().unwrap_or("root")))
                    .arg("--ssl=0");
                if let Some(pw) = &u.password {
                    cmd.env("MYSQL_PWD", pw);
                }
            }
        }
        cmd.args(["--connect-timeout=10", "-N", "-B", "-e", sql]);
        if let Some(db) = database {
            cmd.arg(db);
        }
        try_run_tool(
            &mut cmd,
            &format!("mariadb `{sql}` ({self:?})"),
            TOOL_TIMEOUT,
        )
    }

    /// The server's log so far (private servers; empty otherwise).
    pub fn log(&self) -> String {
        match &self.inner {
            Inner::Private(p) => fs::read_to_string(&p.log).unwrap_or_default(),
            Inner::External(_) => String::new(),
        }
    }
}

/// One test's database on a [`MariaDb`]; dropped with the handle.
pub struct MariaDbDatabase<'s> {
    server: &'s MariaDb,
    name: String,
}

impl fmt::Debug for MariaDbDatabase<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MariaDbDatabase")
            .field("name", &self.name)
            .field("server", self.server)
            .finish()
    }
}

impl MariaDbDatabase<'_> {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server it is on.
    pub fn server(&self) -> &MariaDb {
        self.server
    }

    /// A root URL (`mysql://root@127.0.0.1:PORT/NAME`, or the override's user and host).
    pub fn url(&self) -> String {
        self.server.url_for(None, &self.name)
    }

    /// The URL as `user`, without a password.
    pub fn url_as(&self, user: &str) -> String {
        self.server.url_for(Some(user), &self.name)
    }

    /// Runs `sql` as root in this database (see [`MariaDb::sql`]).
    pub fn sql(&self, sql: &str) -> String {
        self.server.sql(Some(&self.name), sql)
    }
}

impl Drop for MariaDbDatabase<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        self.server
            .sql(None, &format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}

fn install_db(dir: &RunDir, account: Option<&Account>) {
    let mut cmd = Command::new(INSTALL_DB);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", dir.path().join("data").display()))
        .arg(format!("--tmpdir={}", tmpdir(dir).display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ])
        .current_dir(dir.path());
    if let Some(a) = account {
        cmd.arg(format!("--user={}", a.name));
    }
    run_tool(&mut cmd, INSTALL_DB, TOOL_TIMEOUT);
}

/// The server's own temporary folder: with the default (/tmp) a bootstrap once failed to find
/// its `#sql-temptable-*` file again while other test runs shared /tmp.
fn tmpdir(dir: &RunDir) -> PathBuf {
    dir.path().join("tmp")
}

fn spawn_server(
    dir: &RunDir,
    port: u16,
    flavor: MariaDbFlavor,
    log: &Path,
    account: Option<&Account>,
) -> ServerProcess {
    let d = dir.path();
    let _ = fs::remove_file(d.join("mysqld.sock"));
    let mut cmd = Command::new(SERVER);
    // `--no-defaults` must come first: no /etc/mysql settings leak in.
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", d.join("data").display()))
        .arg(format!("--tmpdir={}", tmpdir(dir).display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--socket={}", d.join("mysqld.sock").display()))
        .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
        .arg(format!("--log-error={}", log.display()))
        .args([
            "--skip-name-resolve",
            "--skip-log-bin",
            "--max-connections=500",
            // Test data: durability buys nothing and costs run time.
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--innodb-buffer-pool-size=128M",
        ])
        .current_dir(d);
    if let Some(a) = account {
        cmd.arg(format!("--user={}", a.name));
    }
    if flavor == MariaDbFlavor::Tls {
        cmd.arg(format!("--ssl-ca={}", d.join("ca.pem").display()))
            .arg(format!("--ssl-cert={}", d.join("server.pem").display()))
            .arg(format!("--ssl-key={}", d.join("server.key").display()))
            .arg("--require-secure-transport=ON");
    }
    ServerProcess::spawn(&mut cmd, dir, log, "KILL")
}
