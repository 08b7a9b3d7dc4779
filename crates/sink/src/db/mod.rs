//! The database side: which backend a `--db` URL names, one connection to it (reopened after
//! a failure), and how a failure is classified: worth retrying (the server is down, busy or
//! restarting), a problem with one row (a constraint or a value the column cannot take), or a
//! problem with the set-up that retrying cannot fix (no such table, no permission).
//!
//! SQL text is built in `schema` and `write` from validated identifiers only; every value is
//! bound as a parameter.

mod insert;
pub mod schema;
pub mod write;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};

/// The SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// SQLite (an embedded file).
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

/// A parsed `--db` value. Its `Display` never shows a password.
#[derive(Clone)]
pub enum DbUrl {
    /// `sqlite://path`, `sqlite:path` or a bare path.
    Sqlite(SqliteConnectOptions, String),
    /// `postgres://` or `postgresql://`.
    Postgres(PgConnectOptions, String),
    /// `mysql://` or `mariadb://`.
    MySql(MySqlConnectOptions, String),
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({self})")
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbUrl::Sqlite(_, shown) | DbUrl::Postgres(_, shown) | DbUrl::MySql(_, shown) => {
                f.write_str(shown)
            }
        }
    }
}

/// The URL with any password replaced by `***`.
fn redact(url: &str) -> String {
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

/// A `--db` value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--db `{shown}`: {why}")]
pub struct UrlError {
    /// The URL, password removed.
    pub shown: String,
    /// What is wrong.
    pub why: String,
}

impl FromStr for DbUrl {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let shown = redact(url);
        let err = |why: String| UrlError {
            shown: shown.clone(),
            why,
        };
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)
                .map_err(|e| err(e.to_string()))?
                .application_name("mqtt-sink");
            Ok(DbUrl::Postgres(opts, shown))
        } else if lower.starts_with("mysql://") || lower.starts_with("mariadb://") {
            let fixed = match url.split_once("://") {
                Some((_, rest)) => format!("mysql://{rest}"),
                None => url.to_owned(),
            };
            let opts = MySqlConnectOptions::from_str(&fixed)
                .map_err(|e| err(e.to_string()))?
                .charset("utf8mb4");
            Ok(DbUrl::MySql(opts, shown))
        } else if lower.starts_with("sqlite:") || !url.contains("://") {
            let path = if lower.starts_with("sqlite:") {
                url.to_owned()
            } else {
                format!("sqlite://{url}")
            };
            if path == "sqlite://" || path == "sqlite:" {
                return Err(err("no file name; write sqlite://readings.db".into()));
            }
            let opts = SqliteConnectOptions::from_str(&path)
                .map_err(|e| err(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(1));
            Ok(DbUrl::Sqlite(opts, shown))
        } else {
            Err(err(
                "unknown scheme; use sqlite://FILE, postgres://... or mysql://...".into(),
            ))
        }
    }
}

impl DbUrl {
    /// The dialect.
    pub fn backend(&self) -> Backend {
        match self {
            DbUrl::Sqlite(..) => Backend::Sqlite,
            DbUrl::Postgres(..) => Backend::Postgres,
            DbUrl::MySql(..) => Backend::MySql,
        }
    }

    /// The same database with this password (PostgreSQL and MySQL only).
    pub fn with_password(self, password: &str) -> Result<DbUrl, UrlError> {
        match self {
            DbUrl::Postgres(o, shown) => Ok(DbUrl::Postgres(o.password(password), shown)),
            DbUrl::MySql(o, shown) => Ok(DbUrl::MySql(o.password(password), shown)),
            DbUrl::Sqlite(_, shown) => Err(UrlError {
                shown,
                why: "SQLite has no password; drop --db-password-env/--db-password-file".into(),
            }),
        }
    }

    /// Opens one connection.
    pub async fn connect(&self) -> Result<Conn, sqlx::Error> {
        Ok(match self {
            DbUrl::Sqlite(o, _) => Conn::Sqlite(SqliteConnection::connect_with(o).await?),
            DbUrl::Postgres(o, _) => Conn::Postgres(PgConnection::connect_with(o).await?),
            DbUrl::MySql(o, _) => Conn::MySql(MySqlConnection::connect_with(o).await?),
        })
    }
}

/// One open connection.
#[derive(Debug)]
pub enum Conn {
    /// SQLite.
    Sqlite(SqliteConnection),
    /// PostgreSQL.
    Postgres(PgConnection),
    /// MySQL / MariaDB.
    MySql(MySqlConnection),
}

impl Conn {
    /// Runs one statement without parameters (DDL, probes).
    pub async fn exec(&mut self, sql: String) -> Result<(), sqlx::Error> {
        match self {
            Conn::Sqlite(c) => {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *c)
                    .await?;
            }
            Conn::Postgres(c) => {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *c)
                    .await?;
            }
            Conn::MySql(c) => {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *c)
                    .await?;
            }
        }
        Ok(())
    }

    /// Closes politely, ignoring errors (the connection may already be broken).
    pub async fn close(self) {
        let _ = match self {
            Conn::Sqlite(c) => c.close().await,
            Conn::Postgres(c) => c.close().await,
            Conn::MySql(c) => c.close().await,
        };
    }
}

/// What to do about a database error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server is unreachable, restarting, busy or locked: keep the batch, back off, retry.
    Transient,
    /// One row cannot be stored as it is: find it and dead-letter it.
    Row,
    /// The set-up is wrong (table, columns, permissions): stop and say so.
    Fatal,
}

/// Classifies an error from a statement (errors while connecting are always transient).
pub fn classify(e: &sqlx::Error, backend: Backend) -> Failure {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => Failure::Transient,
        sqlx::Error::Encode(_) => Failure::Row,
        sqlx::Error::Database(db) => match backend {
            Backend::Postgres => classify_pg(db.code().as_deref().unwrap_or("")),
            Backend::MySql => {
                let number = db
                    .try_downcast_ref::<MySqlDatabaseError>()
                    .map_or(0, MySqlDatabaseError::number);
                classify_mysql(number, db.code().as_deref().unwrap_or(""))
            }
            Backend::Sqlite => {
                classify_sqlite(db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(1))
            }
        },
        _ => Failure::Fatal,
    }
}

/// PostgreSQL SQLSTATE classes: 08 connection, 53 resources, 57 operator intervention
/// (shutdown, terminated), 58 system, 40 rollback (deadlock, serialization), 55P03 lock not
/// available, 55000 (database not accepting connections) are transient; 22 data and 23
/// integrity are one row's problem; anything else is fatal.
fn classify_pg(code: &str) -> Failure {
    let class = code.get(..2).unwrap_or("");
    match class {
        "08" | "53" | "57" | "58" | "40" => Failure::Transient,
        "55" if code == "55P03" || code == "55000" || code == "55006" => Failure::Transient,
        "22" | "23" => Failure::Row,
        _ => Failure::Fatal,
    }
}

/// MySQL/MariaDB error numbers.
fn classify_mysql(number: u16, sqlstate: &str) -> Failure {
    match number {
        // too many connections, server shutdown, lock wait timeout, deadlock, connection
        // killed, server gone away / lost, read-only while failing over
        1040 | 1053 | 1205 | 1213 | 1317 | 1927 | 2006 | 2013 | 1290 | 1836 => Failure::Transient,
        // NULL into NOT NULL, out of range, truncated, bad datetime, bad value, too long,
        // duplicate key, foreign key, check constraints
        1048 | 1062 | 1264 | 1265 | 1292 | 1366 | 1406 | 1452 | 3819 | 4025 => Failure::Row,
        _ if sqlstate.starts_with("22") || sqlstate.starts_with("23") => Failure::Row,
        _ if sqlstate.starts_with("08") => Failure::Transient,
        _ => Failure::Fatal,
    }
}

/// SQLite primary result codes (the low byte of the extended code).
fn classify_sqlite(code: i32) -> Failure {
    match code & 0xff {
        // BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL
        5 | 6 | 7 | 8 | 10 | 13 | 14 | 15 => Failure::Transient,
        // TOOBIG, CONSTRAINT, MISMATCH, RANGE
        18 | 19 | 20 | 25 => Failure::Row,
        _ => Failure::Fatal,
    }
}

#[cfg(test)]
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
    fn error_classes() {
        assert_eq!(classify_pg("57P01"), Failure::Transient);
        assert_eq!(classify_pg("08006"), Failure::Transient);
        assert_eq!(classify_pg("55000"), Failure::Transient);
        assert_eq!(classify_pg("22007"), Failure::Row);
        assert_eq!(classify_pg("23502"), Failure::Row);
        assert_eq!(classify_pg("42P01"), Failure::Fatal);
        assert_eq!(classify_mysql(1205, "HY000"), Failure::Transient);
        assert_eq!(classify_mysql(1406, "22001"), Failure::Row);
        assert_eq!(classify_mysql(1146, "42S02"), Failure::Fatal);
        assert_eq!(classify_sqlite(5), Failure::Transient);
        assert_eq!(classify_sqlite(517), Failure::Transient);
        assert_eq!(classify_sqlite(2067), Failure::Row);
        assert_eq!(classify_sqlite(1), Failure::Fatal);
    }
}
