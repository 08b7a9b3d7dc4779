//! A private PostgreSQL for the tests of one process: `initdb` (no fsync) and `postgres` of the
//! installed PostgreSQL (`/usr/lib/postgresql/*/bin`, not on `PATH`) in a per-run folder, on a
//! free loopback port, started once per test binary ([`Postgres::shared`]) and stopped by its
//! watchdog when the process ends. Each test takes its own database ([`Postgres::database`]).
//!
//! `EDGEWIRE_TEST_PG_URL` replaces the plain shared server with an existing one (its databases
//! are created and dropped there); set but unreachable, it is a failure, never a skip. The TLS
//! server ([`Postgres::shared_tls`]) is always private: `ssl = on` with a certificate from a
//! testkit [`Pki`], and `hostssl` lines only in `pg_hba.conf`, so plaintext is refused.
//!
//! Both servers authenticate members of the role `pw_users` by password (SCRAM) and everyone
//! else without one (`trust`); [`Postgres::create_password_user`] makes such members.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::dbserver::{
    self, Account, RunDir, ServerProcess, UrlParts, give_to, note, run_as, run_tool, try_run_tool,
    unique_db_name, wait_ready, write_owned,
};
use crate::pki::Pki;
use crate::port::free_port;

/// The variable naming an existing server to use instead of the private plain one.
pub const PG_URL_ENV: &str = "EDGEWIRE_TEST_PG_URL";
/// The role whose members must log in with a password.
pub const PG_PASSWORD_ROLE: &str = "pw_users";

const START_TIMEOUT: Duration = Duration::from_secs(30);
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 3;

/// Which private server to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgFlavor {
    /// Plaintext TCP (`host` lines); TLS off.
    Plain,
    /// `ssl = on` with a testkit PKI, `hostssl` lines only: plaintext TCP is refused.
    Tls,
}

/// A PostgreSQL server for tests: private (started by testkit) or the one
/// `EDGEWIRE_TEST_PG_URL` names.
pub struct Postgres {
    inner: Inner,
}

enum Inner {
    Private(Box<Private>),
    External { admin: UrlParts, psql: PathBuf },
}

struct Private {
    flavor: PgFlavor,
    bin: PathBuf,
    port: u16,
    pki: Option<Pki>,
    log: PathBuf,
    // Dropped before `dir` is irrelevant: the watchdog removes the folder.
    process: ServerProcess,
    dir: RunDir,
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Private(p) => f
                .debug_struct("Postgres")
                .field("flavor", &p.flavor)
                .field("port", &p.port)
                .field("dir", &p.dir.path())
                .field("pid", &p.process.pid())
                .finish(),
            Inner::External { admin, .. } => f
                .debug_struct("Postgres")
                .field("external", &format!("{}:{:?}", admin.host, admin.port))
                .finish(),
        }
    }
}

static SHARED: OnceLock<Postgres> = OnceLock::new();
static SHARED_TLS: OnceLock<Postgres> = OnceLock::new();

impl Postgres {
    /// The plain server of this process: `EDGEWIRE_TEST_PG_URL`'s when set (checked now: an
    /// unreachable one panics), else a private one started on first use.
    pub fn shared() -> &'static Postgres {
        SHARED.get_or_init(|| match std::env::var(PG_URL_ENV) {
            Ok(url) if !url.is_empty() => Postgres::external(&url),
            _ => Postgres::start(PgFlavor::Plain),
        })
    }

    /// The TLS server of this process (always private), started on first use.
    pub fn shared_tls() -> &'static Postgres {
        SHARED_TLS.get_or_init(|| Postgres::start(PgFlavor::Tls))
    }

    /// Starts a private server of `flavor`; dropping it stops it and removes its folder.
    pub fn start(flavor: PgFlavor) -> Postgres {
        let bin = server_bin_dir().unwrap_or_else(|| {
            panic!(
                "testkit: PostgreSQL's server programs (initdb, postgres) are not in \
                 /usr/lib/postgresql/*/bin: install them (apt-get install -y postgresql) or set \
                 {PG_URL_ENV} to an existing server"
            )
        });
        let account = dbserver::server_account("postgres", "postgresql");
        let dir = RunDir::create("pg", account.as_ref());
        let log = dir.path().join("postgres.log");
        write_owned(&log, b"", 0o600, account.as_ref());
        initdb(&bin, &dir, account.as_ref());
        let pki = (flavor == PgFlavor::Tls).then(|| {
            let pki = Pki::generate(&dir.path().join("pki"));
            let cert = fs::read(pki.server_cert()).unwrap_or_default();
            let key = fs::read(pki.server_key()).unwrap_or_default();
            write_owned(
                &dir.path().join("server.pem"),
                &cert,
                0o644,
                account.as_ref(),
            );
            write_owned(
                &dir.path().join("server.key"),
                &key,
                0o600,
                account.as_ref(),
            );
            pki
        });
        write_owned(
            &dir.path().join("pg_hba.conf"),
            hba(flavor).as_bytes(),
            0o600,
            account.as_ref(),
        );
        let mut last = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let process = spawn_postgres(&bin, &dir, port, flavor, &log, account.as_ref());
            let ready = wait_ready(&process, "postgres", &log, START_TIMEOUT, || {
                pg_isready(&bin, port)
            });
            match ready {
                Ok(()) => {
                    let server = Postgres {
                        inner: Inner::Private(Box::new(Private {
                            flavor,
                            bin,
                            port,
                            pki,
                            log,
                            process,
                            dir,
                        })),
                    };
                    server.sql(
                        "postgres",
                        &format!("CREATE ROLE {PG_PASSWORD_ROLE} NOLOGIN"),
                    );
                    return server;
                }
                Err(why) => {
                    process.kill();
                    let bind = why.contains("could not bind") || why.contains("already in use");
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
        panic!("testkit: the private PostgreSQL did not start: {last}");
    }

    fn external(url: &str) -> Postgres {
        let admin = UrlParts::parse(url).unwrap_or_else(|| {
            panic!("testkit: {PG_URL_ENV}=`{url}` is not a postgres://USER@HOST:PORT/DB URL")
        });
        let psql = Postgres::psql_program();
        let server = Postgres {
            inner: Inner::External { admin, psql },
        };
        // Fails loudly now when the server is not there: a set URL is never skipped.
        let checked = server.try_sql(
            server.admin_database(),
            &format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{PG_PASSWORD_ROLE}') \
                 THEN CREATE ROLE {PG_PASSWORD_ROLE} NOLOGIN; END IF; END $$"
            ),
        );
        if let Err(e) = checked {
            panic!(
                "testkit: {PG_URL_ENV} is set, but that server cannot be used (a set URL is a \
                 failure, never a skip; unset it to get a private server): {e}"
            );
        }
        server
    }

    /// The server's pid and run folder. Panics for an external server.
    pub fn pid_and_folder(&self) -> (u32, PathBuf) {
        match &self.inner {
            Inner::Private(p) => (p.process.pid(), p.dir.path().to_path_buf()),
            Inner::External { .. } => {
                panic!("testkit: an external server has no pid or folder of ours")
            }
        }
    }

    /// The `psql` program of the installed PostgreSQL (`psql` on `PATH` without one).
    pub fn psql_program() -> PathBuf {
        server_bin_dir().map_or_else(|| PathBuf::from("psql"), |b| b.join("psql"))
    }

    /// Whether testkit started this server (else it is `EDGEWIRE_TEST_PG_URL`'s).
    pub fn is_private(&self) -> bool {
        matches!(self.inner, Inner::Private(_))
    }

    /// The host clients connect to (`127.0.0.1` for private servers).
    pub fn host(&self) -> &str {
        match &self.inner {
            Inner::Private(_) => "127.0.0.1",
            Inner::External { admin, .. } => &admin.host,
        }
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        match &self.inner {
            Inner::Private(p) => p.port,
            Inner::External { admin, .. } => admin.port.unwrap_or(5432),
        }
    }

    /// The CA file that signed the TLS server's certificate (SANs `localhost`, `127.0.0.1`,
    /// `::1`); `None` for a plain server.
    pub fn ca_file(&self) -> Option<PathBuf> {
        match &self.inner {
            Inner::Private(p) => p.pki.as_ref().map(Pki::ca_cert),
            Inner::External { .. } => None,
        }
    }

    /// A superuser URL of the maintenance database (`postgres`, or the override's database).
    pub fn admin_url(&self) -> String {
        self.url_for(None, self.admin_database())
    }

    fn admin_database(&self) -> &str {
        match &self.inner {
            Inner::Private(_) => "postgres",
            Inner::External { admin, .. } => admin.database.as_deref().unwrap_or("postgres"),
        }
    }

    fn url_for(&self, user: Option<&str>, database: &str) -> String {
        match &self.inner {
            Inner::Private(p) => format!(
                "postgres://{}@127.0.0.1:{}/{database}",
                user.unwrap_or("postgres"),
                p.port
            ),
            Inner::External { admin, .. } => {
                let mut parts = admin.clone();
                if let Some(u) = user {
                    parts.user = Some(u.to_owned());
                    parts.password = None;
                }
                parts.with_database(database)
            }
        }
    }

    /// A new, empty database for one test, dropped when the handle is.
    pub fn database(&self) -> PgDatabase<'_> {
        self.database_owned_by(None)
    }

    /// A new database owned by `owner` (a role made with [`Postgres::create_password_user`]),
    /// so that role may create tables in it.
    pub fn database_owned_by(&self, owner: Option<&str>) -> PgDatabase<'_> {
        let name = unique_db_name();
        let owner_clause = owner.map(|o| format!(" OWNER {o}")).unwrap_or_default();
        self.sql(
            self.admin_database(),
            &format!("CREATE DATABASE {name}{owner_clause}"),
        );
        PgDatabase { server: self, name }
    }

    /// Creates a login role that must authenticate with `password` (SCRAM; a member of
    /// `pw_users`). `name` and `password` must be plain words (no quotes).
    pub fn create_password_user(&self, name: &str, password: &str) {
        assert!(
            is_word(name) && !password.contains('\'') && !password.contains('\\'),
            "testkit: role {name:?} or its password would need quoting"
        );
        self.sql(
            self.admin_database(),
            &format!("CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE {PG_PASSWORD_ROLE}"),
        );
    }

    /// Runs `sql` as the superuser in `database` with `psql` and returns its unaligned output.
    /// Panics with psql's message when it fails.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        self.try_sql(database, sql)
            .unwrap_or_else(|e| panic!("testkit: {e}"))
    }

    fn try_sql(&self, database: &str, sql: &str) -> Result<String, String> {
        let mut cmd = match &self.inner {
            Inner::Private(p) => {
                let mut c = Command::new(p.bin.join("psql"));
                c.arg("-h").arg(p.dir.path()).args([
                    "-p",
                    &p.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    database,
                ]);
                c
            }
            Inner::External { psql, .. } => {
                let mut c = Command::new(psql);
                c.arg("-d").arg(self.url_for(None, database));
                c
            }
        };
        cmd.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGSSLMODE");
        try_run_tool(&mut cmd, &format!("psql `{sql}` ({self:?})"), TOOL_TIMEOUT)
    }

    /// The server's log so far (private servers; empty otherwise).
    pub fn log(&self) -> String {
        match &self.inner {
            Inner::Private(p) => fs::read_to_string(&p.log).unwrap_or_default(),
            Inner::External { .. } => String::new(),
        }
    }
}

/// One test's database on a [`Postgres`]; dropped (`WITH (FORCE)`) with the handle.
pub struct PgDatabase<'s> {
    server: &'s Postgres,
    name: String,
}

impl fmt::Debug for PgDatabase<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgDatabase")
            .field("name", &self.name)
            .field("server", self.server)
            .finish()
    }
}

impl PgDatabase<'_> {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server it is on.
    pub fn server(&self) -> &Postgres {
        self.server
    }

    /// A superuser URL (`postgres://postgres@127.0.0.1:PORT/NAME`, or the override's user and
    /// host).
    pub fn url(&self) -> String {
        self.server.url_for(None, &self.name)
    }

    /// The URL as `user`, without a password.
    pub fn url_as(&self, user: &str) -> String {
        self.server.url_for(Some(user), &self.name)
    }

    /// Runs `sql` as the superuser in this database (see [`Postgres::sql`]).
    pub fn sql(&self, sql: &str) -> String {
        self.server.sql(&self.name, sql)
    }
}

impl Drop for PgDatabase<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Left for a look; the private server's folder goes when the process ends.
            return;
        }
        self.server.sql(
            self.server.admin_database(),
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and `postgres`.
fn server_bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

fn initdb(bin: &Path, dir: &RunDir, account: Option<&Account>) {
    let data = dir.path().join("data");
    let mut cmd = Command::new(bin.join("initdb"));
    cmd.arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--no-instructions",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .current_dir(dir.path());
    run_as(&mut cmd, account);
    run_tool(&mut cmd, "initdb", TOOL_TIMEOUT);
    give_to(&data, account);
}

/// `pg_hba.conf`: the local socket (testkit's own psql) is trusted; TCP from loopback needs a
/// password for `pw_users` and nothing for the rest; TLS flavour: `hostssl` only.
fn hba(flavor: PgFlavor) -> String {
    let kind = match flavor {
        PgFlavor::Plain => "host",
        PgFlavor::Tls => "hostssl",
    };
    let mut s = String::from("# Generated by testkit.\nlocal all all trust\n");
    for net in ["127.0.0.1/32", "::1/128"] {
        s.push_str(&format!(
            "{kind} all +{PG_PASSWORD_ROLE} {net} scram-sha-256\n"
        ));
    }
    for net in ["127.0.0.1/32", "::1/128"] {
        s.push_str(&format!("{kind} all all {net} trust\n"));
    }
    s
}

fn spawn_postgres(
    bin: &Path,
    dir: &RunDir,
    port: u16,
    flavor: PgFlavor,
    log: &Path,
    account: Option<&Account>,
) -> ServerProcess {
    let d = dir.path();
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D").arg(d.join("data"));
    let mut settings = vec![
        format!("port={port}"),
        "listen_addresses=127.0.0.1".to_owned(),
        format!("unix_socket_directories={}", d.display()),
        format!("hba_file={}", d.join("pg_hba.conf").display()),
        // Test data: durability buys nothing and costs start-up and run time.
        "fsync=off".to_owned(),
        "synchronous_commit=off".to_owned(),
        "full_page_writes=off".to_owned(),
        "max_connections=200".to_owned(),
        "shared_buffers=64MB".to_owned(),
        "max_wal_size=1GB".to_owned(),
        "logging_collector=off".to_owned(),
        "log_min_messages=warning".to_owned(),
    ];
    if flavor == PgFlavor::Tls {
        settings.extend([
            "ssl=on".to_owned(),
            format!("ssl_cert_file={}", d.join("server.pem").display()),
            format!("ssl_key_file={}", d.join("server.key").display()),
        ]);
    }
    for s in settings {
        cmd.arg("-c").arg(s);
    }
    cmd.current_dir(d);
    run_as(&mut cmd, account);
    // SIGQUIT: immediate shutdown, the postmaster ends its backends itself.
    ServerProcess::spawn(&mut cmd, dir, log, "QUIT")
}

fn pg_isready(bin: &Path, port: u16) -> bool {
    Command::new(bin.join("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-t", "1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
