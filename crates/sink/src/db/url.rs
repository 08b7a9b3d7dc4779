//! `--db`: which backend a URL names, and its driver options with TLS (`tls`) and the password
//! (`password`) settled: the URL's own TLS parameter is taken out and applied through the
//! driver's API, so one rule decides for both PostgreSQL and MariaDB/MySQL. `Display` and
//! `Debug` never show a password, and connection failures are described with what to do
//! (which CA, which password source, which flag).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
#[cfg(feature = "mysql")]
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlSslMode};
#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};

use crate::db::password::{self, DbPassword, env_value, permission_warning, url_password_warning};
use crate::db::tls::{self, DbTls, ModeSource, TlsInputs, TlsMode};
use crate::db::{Backend, Conn};

/// How to reach the database besides the URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbAccess {
    /// `--db-tls`.
    pub tls: Option<DbTls>,
    /// `--db-cafile`: the CA that signed the server's certificate (default: the system's).
    pub cafile: Option<PathBuf>,
    /// `--db-password-env` / `--db-password-file`.
    pub password: Option<DbPassword>,
}

#[derive(Clone)]
enum Options {
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteConnectOptions),
    #[cfg(feature = "postgres")]
    Postgres(PgConnectOptions),
    #[cfg(feature = "mysql")]
    MySql(MySqlConnectOptions),
}

impl Options {
    fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "sqlite")]
            Options::Sqlite(_) => Backend::Sqlite,
            #[cfg(feature = "postgres")]
            Options::Postgres(_) => Backend::Postgres,
            #[cfg(feature = "mysql")]
            Options::MySql(_) => Backend::MySql,
        }
    }

    /// The host and whether it is a unix socket (`None` for SQLite).
    fn host(&self) -> Option<(String, bool)> {
        match self {
            #[cfg(feature = "sqlite")]
            Options::Sqlite(_) => None,
            #[cfg(feature = "postgres")]
            Options::Postgres(o) => Some((o.get_host().to_owned(), o.get_socket().is_some())),
            #[cfg(feature = "mysql")]
            Options::MySql(o) => Some((o.get_host().to_owned(), o.get_socket().is_some())),
        }
    }

    fn with_tls(self, mode: TlsMode, cafile: Option<&PathBuf>) -> Options {
        match self {
            #[cfg(feature = "sqlite")]
            sqlite @ Options::Sqlite(_) => sqlite,
            #[cfg(feature = "postgres")]
            Options::Postgres(o) => {
                let o = o.ssl_mode(match mode {
                    TlsMode::Disable => PgSslMode::Disable,
                    TlsMode::Allow => PgSslMode::Allow,
                    TlsMode::Prefer => PgSslMode::Prefer,
                    TlsMode::Require => PgSslMode::Require,
                    TlsMode::VerifyCa => PgSslMode::VerifyCa,
                    TlsMode::VerifyFull => PgSslMode::VerifyFull,
                });
                Options::Postgres(match cafile {
                    Some(ca) => o.ssl_root_cert(ca),
                    None => o,
                })
            }
            #[cfg(feature = "mysql")]
            Options::MySql(o) => {
                let o = o.ssl_mode(match mode {
                    TlsMode::Disable | TlsMode::Allow => MySqlSslMode::Disabled,
                    TlsMode::Prefer => MySqlSslMode::Preferred,
                    TlsMode::Require => MySqlSslMode::Required,
                    TlsMode::VerifyCa => MySqlSslMode::VerifyCa,
                    TlsMode::VerifyFull => MySqlSslMode::VerifyIdentity,
                });
                Options::MySql(match cafile {
                    Some(ca) => o.ssl_ca(ca),
                    None => o,
                })
            }
        }
    }

    fn with_password(self, password: &str) -> Options {
        match self {
            #[cfg(feature = "sqlite")]
            sqlite @ Options::Sqlite(_) => sqlite,
            #[cfg(feature = "postgres")]
            Options::Postgres(o) => Options::Postgres(o.password(password)),
            #[cfg(feature = "mysql")]
            Options::MySql(o) => Options::MySql(o.password(password)),
        }
    }
}

/// The cargo feature of a backend, for "not compiled in" messages.
fn feature_of(backend: Backend) -> (&'static str, bool) {
    match backend {
        Backend::Sqlite => ("sqlite", cfg!(feature = "sqlite")),
        Backend::Postgres => ("postgres", cfg!(feature = "postgres")),
        Backend::MySql => ("mysql", cfg!(feature = "mysql")),
    }
}

fn not_compiled_in(backend: Backend) -> Option<String> {
    let built: Vec<&str> = [Backend::Sqlite, Backend::Postgres, Backend::MySql]
        .into_iter()
        .map(feature_of)
        .filter(|(_, on)| *on)
        .map(|(n, _)| n)
        .collect();
    missing_driver(feature_of(backend).0, &built)
}

/// The sentence for a `--db` whose driver (`name`) is not among `built`.
fn missing_driver(name: &str, built: &[&str]) -> Option<String> {
    (!built.contains(&name)).then(|| {
        format!(
            "this mqtt-sink was built without the {name} driver (it has: {}); rebuild it with \
             `cargo build -p mqtt-sink --features {name}`",
            built.join(", ")
        )
    })
}

/// A parsed `--db` value with its TLS mode and password settled. Its `Display` and `Debug`
/// never show a password.
#[derive(Clone)]
pub struct DbUrl {
    options: Options,
    shown: String,
    host: String,
    tls: Option<(TlsMode, ModeSource)>,
    cafile: Option<PathBuf>,
    password_source: Option<String>,
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({self})")
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// A `--db` value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--db `{shown}`: {why}")]
pub struct UrlError {
    /// The URL, password removed.
    pub shown: String,
    /// What is wrong.
    pub why: String,
}

/// The URL with any password replaced by `***` and the query left out.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let tail = tail.split_once('?').map_or(tail, |(path, _)| path);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return format!("{scheme}://{authority}{tail}");
    };
    let masked = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => userinfo.to_owned(),
    };
    format!("{scheme}://{masked}@{host}{tail}")
}

impl FromStr for DbUrl {
    type Err = UrlError;

    /// With the defaults: no flags (TLS by the rule in `tls`, the driver's password sources).
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        DbUrl::resolve(url, &DbAccess::default())
    }
}

/// The URL's query split into the TLS parameter, the CA parameter and the rest.
struct Query {
    tls: Option<(TlsMode, String)>,
    has_ca: bool,
    has_password: bool,
    rest: Vec<(String, String)>,
}

fn split_query(u: &url::Url, ca_keys: &[&str]) -> Result<Query, String> {
    let mut q = Query {
        tls: None,
        has_ca: false,
        has_password: u.password().is_some(),
        rest: Vec::new(),
    };
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "sslmode" | "ssl-mode" => {
                let mode = v
                    .parse::<TlsMode>()
                    .map_err(|e| format!("`{k}={v}`: {e}"))?;
                q.tls = Some((mode, format!("{k}={v}")));
            }
            "password" => {
                q.has_password = true;
                q.rest.push((k.into_owned(), v.into_owned()));
            }
            key => {
                q.has_ca |= ca_keys.contains(&key);
                q.rest.push((k.into_owned(), v.into_owned()));
            }
        }
    }
    Ok(q)
}

fn without_tls_param(mut u: url::Url, rest: &[(String, String)]) -> String {
    if rest.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(rest);
    }
    u.to_string()
}

impl DbUrl {
    /// Parses `url` and settles TLS and the password with `access` (module doc of `tls` and
    /// `password` for the rules). Reads the password and checks the CA file now.
    pub fn resolve(url: &str, access: &DbAccess) -> Result<DbUrl, UrlError> {
        let shown = redact(url);
        let err = |why: String| UrlError {
            shown: shown.clone(),
            why,
        };
        let lower = url.to_ascii_lowercase();
        let backend = if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Backend::Postgres
        } else if lower.starts_with("mysql://") || lower.starts_with("mariadb://") {
            Backend::MySql
        } else if lower.starts_with("sqlite:") || !url.contains("://") {
            if let Some(why) = not_compiled_in(Backend::Sqlite) {
                return Err(err(why));
            }
            return sqlite(url, &lower, access).map_err(err);
        } else {
            return Err(err(
                "unknown scheme; use sqlite://FILE, postgres://... or mysql://...".into(),
            ));
        };
        if let Some(why) = not_compiled_in(backend) {
            return Err(err(why));
        }
        let fixed = match (backend, url.split_once("://")) {
            (Backend::MySql, Some((_, rest))) => format!("mysql://{rest}"),
            _ => url.to_owned(),
        };
        let parsed = url::Url::parse(&fixed).map_err(|e| err(e.to_string()))?;
        let ca_keys: &[&str] = match backend {
            Backend::Postgres => &["sslrootcert", "ssl-root-cert"],
            _ => &["ssl-ca", "sslca"],
        };
        let query = split_query(&parsed, ca_keys).map_err(&err)?;
        if query.has_ca && access.cafile.is_some() {
            return Err(err(
                "the URL names a CA file and so does --db-cafile; give it once".into(),
            ));
        }
        let stripped = without_tls_param(parsed, &query.rest);
        let options = match backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres => Options::Postgres(
                PgConnectOptions::from_str(&stripped)
                    .map_err(|e| err(e.to_string()))?
                    .application_name("mqtt-sink")
                    // A `timestamp without time zone` column then keeps the wall-clock time
                    // a device sent without an offset, and partitions are UTC days.
                    .options([("timezone", "UTC")]),
            ),
            #[cfg(feature = "mysql")]
            Backend::MySql => Options::MySql(
                MySqlConnectOptions::from_str(&stripped)
                    .map_err(|e| err(e.to_string()))?
                    .charset("utf8mb4"),
            ),
            // Checked above: a backend that is not compiled in never gets here.
            other => return Err(err(not_compiled_in(other).unwrap_or_default())),
        };
        let db = DbUrl {
            options,
            shown: shown.clone(),
            host: String::new(),
            tls: None,
            cafile: access.cafile.clone(),
            password_source: None,
        };
        db.settle_tls(access, query.tls)
            .and_then(|db| db.settle_password(access, query.has_password))
            .map_err(&err)
    }

    fn settle_tls(
        mut self,
        access: &DbAccess,
        in_url: Option<(TlsMode, String)>,
    ) -> Result<DbUrl, String> {
        let Some((host, socket)) = self.options.host() else {
            return Ok(self);
        };
        let env = match self.options.backend() {
            Backend::Postgres => env_value("PGSSLMODE")
                .map(|v| v.parse::<TlsMode>().map_err(|e| format!("PGSSLMODE: {e}")))
                .transpose()?,
            _ => None,
        };
        let local = socket || tls::is_local(&host);
        // A CA given means "check the server": without a mode, verify-full everywhere.
        let flag = access.tls.or_else(|| {
            (access.cafile.is_some() && in_url.is_none() && env.is_none())
                .then_some(DbTls::VerifyFull)
        });
        let (mode, source) = tls::choose(&TlsInputs {
            flag,
            in_url,
            env,
            host: host.clone(),
            local,
        })?;
        if let Some(ca) = &access.cafile {
            if mode.may_be_plaintext() {
                return Err(format!(
                    "--db-cafile `{}` has no effect with TLS mode `{}` ({source}); use \
                     --db-tls verify-full, verify-ca or require",
                    ca.display(),
                    mode.name()
                ));
            }
            check_ca_file(ca)?;
        } else if mode == TlsMode::Require && !local {
            tracing::warn!(
                "--db-tls require encrypts the connection to `{host}` but does not check the \
                 server's certificate, so anyone on the path can pose as the server; use \
                 --db-tls verify-full with --db-cafile"
            );
        }
        // libpq checks the CA in `require` mode when a root certificate is given; sqlx would
        // not, so ask it for verify-ca then.
        let effective = match (mode, &access.cafile) {
            (TlsMode::Require, Some(_)) => TlsMode::VerifyCa,
            (m, _) => m,
        };
        self.options = self.options.with_tls(effective, access.cafile.as_ref());
        self.host = if socket {
            "the unix socket".into()
        } else {
            host
        };
        self.tls = Some((mode, source));
        Ok(self)
    }

    fn settle_password(mut self, access: &DbAccess, in_url: bool) -> Result<DbUrl, String> {
        if in_url {
            tracing::warn!("{}", url_password_warning(access.password.as_ref()));
        }
        let from_flag = access.password.as_ref().map(DbPassword::read).transpose()?;
        let pg = self.options.backend() == Backend::Postgres;
        let (value, source) = match from_flag {
            Some(s) => (Some(s.value), Some(s.source)),
            None if in_url => (None, Some("the --db URL".to_owned())),
            // sqlx read PGPASSWORD, then ~/.pgpass, when it parsed the URL.
            None if pg && env_value("PGPASSWORD").is_some() => (None, Some("PGPASSWORD".into())),
            None if pg => match password::pgpass_file() {
                Some(f) => {
                    if let Some(w) = permission_warning(&f, "password file") {
                        // libpq and sqlx skip such a file; say how to make it count.
                        tracing::warn!("{w} (it is ignored until then)");
                    }
                    (
                        None,
                        Some(format!("{} (if it has a matching line)", f.display())),
                    )
                }
                None => (None, None),
            },
            None => match env_value("MYSQL_PWD") {
                Some(v) => (Some(v), Some("MYSQL_PWD".into())),
                None => (None, None),
            },
        };
        if let Some(v) = value {
            self.options = self.options.with_password(&v);
        }
        self.password_source = source;
        Ok(self)
    }

    /// The dialect.
    pub fn backend(&self) -> Backend {
        self.options.backend()
    }

    /// The TLS mode in effect (`None` for SQLite).
    pub fn tls_mode(&self) -> Option<TlsMode> {
        self.tls.as_ref().map(|(m, _)| *m)
    }

    /// Where the password comes from, if anywhere (`--db-password-env SINK_PW`, `PGPASSWORD`).
    pub fn password_source(&self) -> Option<&str> {
        self.password_source.as_deref()
    }

    /// Opens one connection.
    pub async fn connect(&self) -> Result<Conn, sqlx::Error> {
        Ok(match &self.options {
            #[cfg(feature = "sqlite")]
            Options::Sqlite(o) => Conn::Sqlite(open_sqlite(o).await?),
            #[cfg(feature = "postgres")]
            Options::Postgres(o) => Conn::Postgres(PgConnection::connect_with(o).await?),
            #[cfg(feature = "mysql")]
            Options::MySql(o) => Conn::MySql(MySqlConnection::connect_with(o).await?),
        })
    }

    /// A connection failure as a sentence: the driver's or server's reason plus what to do
    /// about it when the reason is a known one (certificate, password, TLS refused).
    pub fn describe_failure(&self, e: &sqlx::Error) -> String {
        let reason = crate::db::message(e);
        let lower = reason.to_lowercase();
        let tls = self.tls.as_ref();
        let mode_text = tls.map_or_else(String::new, |(m, s)| {
            format!("TLS mode `{}` ({s})", m.name())
        });
        let ca_text = self.cafile.as_ref().map_or_else(
            || "the system's CA certificates; pass the server's CA with --db-cafile".to_owned(),
            |c| format!("--db-cafile `{}`", c.display()),
        );
        let hint = if lower.contains("unknownissuer")
            || lower.contains("unknown issuer")
            || lower.contains("unknownca")
        {
            Some(format!(
                "the server's TLS certificate is not signed by a CA this sink trusts ({ca_text})"
            ))
        } else if lower.contains("not valid for name") || lower.contains("notvalidforname") {
            Some(format!(
                "the server's TLS certificate does not name `{}`: verify-full checks the name; \
                 connect by a name the certificate holds, or use --db-tls verify-ca",
                self.host
            ))
        } else if lower.contains("expired") && lower.contains("certificate") {
            Some(
                "the server's TLS certificate has expired (or this machine's clock is wrong)"
                    .into(),
            )
        } else if lower.contains("server does not support tls") {
            Some(format!(
                "{mode_text} needs TLS and the server does not offer it: turn it on at the server \
                 (PostgreSQL `ssl = on`, MariaDB `--ssl-cert`/`--ssl-key`)"
            ))
        } else if lower.contains("no pg_hba.conf entry") && lower.contains("no encryption") {
            Some(format!(
                "the server takes this user only over TLS and {mode_text} sent plaintext: drop \
                 --db-tls disable (the default uses TLS when the server offers it)"
            ))
        } else if lower.contains("password authentication failed")
            || lower.contains("access denied")
        {
            let mut h = match &self.password_source {
                Some(s) => format!("the password came from {s}"),
                None => "no password was given: pass it with --db-password-env or \
                         --db-password-file (or PGPASSWORD, ~/.pgpass, MYSQL_PWD)"
                    .to_owned(),
            };
            if self.backend() == Backend::MySql && tls.is_some_and(|(m, _)| *m == TlsMode::Disable)
            {
                h.push_str(
                    "; a server with require_secure_transport answers plaintext logins this way \
                     too: drop --db-tls disable",
                );
            }
            Some(h)
        } else {
            None
        };
        match hint {
            Some(h) => format!("{reason} ({h})"),
            None => reason,
        }
    }
}

fn check_ca_file(ca: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(ca)
        .map_err(|e| format!("cannot read --db-cafile `{}`: {e}", ca.display()))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "--db-cafile `{}` holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            ca.display()
        ));
    }
    Ok(())
}

#[cfg(not(feature = "sqlite"))]
fn sqlite(_: &str, _: &str, _: &DbAccess) -> Result<DbUrl, String> {
    Err(not_compiled_in(Backend::Sqlite).unwrap_or_default())
}

/// How long opening a SQLite file waits out other connections' locks.
#[cfg(feature = "sqlite")]
const SQLITE_OPEN_PATIENCE: Duration = Duration::from_secs(30);

/// Opens the file, waiting while another connection holds it locked: switching a new file to
/// WAL needs it to itself, and SQLite answers "database is locked" at once rather than calling
/// the busy handler when sinks starting together open it side by side.
#[cfg(feature = "sqlite")]
async fn open_sqlite(o: &SqliteConnectOptions) -> Result<SqliteConnection, sqlx::Error> {
    let started = std::time::Instant::now();
    let mut backoff =
        transport::backoff::Backoff::new(Duration::from_millis(10), Duration::from_millis(500));
    loop {
        match SqliteConnection::connect_with(o).await {
            Err(sqlx::Error::Database(e))
                if matches!(
                    e.code()
                        .and_then(|c| c.parse::<i32>().ok())
                        .map(|c| c & 0xff),
                    Some(5 | 6)
                ) && started.elapsed() < SQLITE_OPEN_PATIENCE =>
            {
                tokio::time::sleep(backoff.next_delay(fastrand::f64())).await;
            }
            other => return other,
        }
    }
}

#[cfg(feature = "sqlite")]
fn sqlite(url: &str, lower: &str, access: &DbAccess) -> Result<DbUrl, String> {
    if access.password.is_some() {
        return Err("SQLite has no password; drop --db-password-env/--db-password-file".into());
    }
    if access.tls.is_some() || access.cafile.is_some() {
        return Err(
            "SQLite is a file on this machine: --db-tls and --db-cafile do not apply".into(),
        );
    }
    let path = if lower.starts_with("sqlite:") {
        url.to_owned()
    } else {
        format!("sqlite://{url}")
    };
    if path == "sqlite://" || path == "sqlite:" {
        return Err("no file name; write sqlite://readings.db".into());
    }
    let opts = SqliteConnectOptions::from_str(&path)
        .map_err(|e| e.to_string())?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(1));
    Ok(DbUrl {
        options: Options::Sqlite(opts),
        shown: redact(url),
        host: String::new(),
        tls: None,
        cafile: None,
        password_source: None,
    })
}

#[cfg(all(test, feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend_and_never_show_a_password() {
        let u: DbUrl = "postgres://me:s3cret@db:5432/x?sslmode=require"
            .parse()
            .unwrap();
        assert_eq!(u.backend(), Backend::Postgres);
        assert_eq!(u.to_string(), "postgres://me:***@db:5432/x");
        assert!(!format!("{u:?}").contains("s3cret"));
        assert_eq!(u.password_source(), Some("the --db URL"));
        let u: DbUrl = "mariadb://root:pw@127.0.0.1:3306/test".parse().unwrap();
        assert_eq!(u.backend(), Backend::MySql);
        assert_eq!(u.to_string(), "mariadb://root:***@127.0.0.1:3306/test");
        assert_eq!(
            "sqlite://readings.db".parse::<DbUrl>().unwrap().backend(),
            Backend::Sqlite
        );
        assert_eq!(
            "data/r.db".parse::<DbUrl>().unwrap().backend(),
            Backend::Sqlite
        );
        let e = "oracle://x".parse::<DbUrl>().unwrap_err().to_string();
        assert!(e.contains("unknown scheme"), "{e}");
    }

    #[test]
    fn tls_defaults_follow_the_host() {
        let remote: DbUrl = "postgres://u@db.example.com/x".parse().unwrap();
        assert_eq!(remote.tls_mode(), Some(TlsMode::VerifyFull));
        let local: DbUrl = "mysql://u@127.0.0.1/x".parse().unwrap();
        assert_eq!(local.tls_mode(), Some(TlsMode::Prefer));
        let e = "postgres://u@db.example.com/x?sslmode=disable"
            .parse::<DbUrl>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`sslmode=disable` in --db") && e.contains("db.example.com"),
            "{e}"
        );
        let e = DbUrl::resolve(
            "mysql://u@db.example.com/x",
            &DbAccess {
                tls: Some(DbTls::Disable),
                ..DbAccess::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--db-tls says `disable`"), "{e}");
        let e = DbUrl::resolve(
            "postgres://u@localhost/x?ssl-mode=verify-full",
            &DbAccess {
                tls: Some(DbTls::Disable),
                ..DbAccess::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("conflicts with `ssl-mode=verify-full`"), "{e}");
    }

    #[test]
    fn a_ca_file_is_checked_and_implies_verification() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let access = DbAccess {
            cafile: Some(ca.clone()),
            ..DbAccess::default()
        };
        let e = DbUrl::resolve("postgres://u@localhost/x", &access)
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let u = DbUrl::resolve("postgres://u@localhost/x", &access).unwrap();
        assert_eq!(u.tls_mode(), Some(TlsMode::VerifyFull));
        let e = DbUrl::resolve(
            "postgres://u@localhost/x",
            &DbAccess {
                tls: Some(DbTls::Disable),
                ..access
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("has no effect"), "{e}");
    }

    #[test]
    fn a_driver_left_out_is_named_with_the_rebuild() {
        assert_eq!(missing_driver("postgres", &["sqlite", "postgres"]), None);
        let e = missing_driver("mysql", &["postgres"]).unwrap();
        assert!(
            e.contains("without the mysql driver (it has: postgres)")
                && e.contains("--features mysql"),
            "{e}"
        );
    }

    #[test]
    fn sqlite_takes_no_password_or_tls() {
        let e = DbUrl::resolve(
            "sqlite://x.db",
            &DbAccess {
                tls: Some(DbTls::Require),
                ..DbAccess::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("do not apply"), "{e}");
    }
}
