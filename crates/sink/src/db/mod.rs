//! The database side: which backend a `--db` URL names with its TLS mode and password
//! (`url`, `tls`, `password`), one connection to it (reopened after a failure), and how a
//! failure is classified: worth retrying (the server is down, busy or
//! restarting), a problem with one row (a constraint or a value the column cannot take), or a
//! problem with the set-up that retrying cannot fix (no such table, no permission).
//!
//! SQL text is built in `schema` and `write` from validated identifiers only; every value is
//! bound as a parameter.

pub mod catalog;
mod insert;
pub mod password;
pub mod schema;
pub mod tls;
mod url;
pub mod write;

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!("sink needs at least one database driver: features sqlite, postgres, mysql");

#[cfg(any(feature = "postgres", feature = "mysql"))]
use sqlx::Connection;
#[cfg(feature = "mysql")]
use sqlx::mysql::{MySqlConnection, MySqlDatabaseError};
#[cfg(feature = "postgres")]
use sqlx::postgres::PgConnection;
#[cfg(feature = "sqlite")]
use sqlx::sqlite::SqliteConnection;

/// `match` over the compiled-in variants of [`Conn`] (or another enum with the same variant
/// names, such as a transaction), binding each one's inner value to `$c`, with one body for all.
macro_rules! each_backend {
    ($ty:ident, $value:expr, $c:ident => $body:expr) => {
        match $value {
            #[cfg(feature = "sqlite")]
            $ty::Sqlite($c) => $body,
            #[cfg(feature = "postgres")]
            $ty::Postgres($c) => $body,
            #[cfg(feature = "mysql")]
            $ty::MySql($c) => $body,
        }
    };
}
pub(crate) use each_backend;

pub use password::DbPassword;
pub use tls::{DbTls, TlsMode};
pub use url::{DbAccess, DbUrl, UrlError};

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

/// One open connection (the variants of the drivers compiled in).
#[derive(Debug)]
pub enum Conn {
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteConnection),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(PgConnection),
    /// MySQL / MariaDB.
    #[cfg(feature = "mysql")]
    MySql(MySqlConnection),
}

impl Conn {
    /// Runs one statement without parameters (DDL, probes).
    pub async fn exec(&mut self, sql: String) -> Result<(), sqlx::Error> {
        each_backend!(Conn, self, c => {
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *c).await?;
        });
        Ok(())
    }

    /// Runs DDL statements while holding a lock named after `name` (PostgreSQL: an advisory
    /// transaction lock, the statements in that transaction; MariaDB/MySQL: `GET_LOCK`;
    /// SQLite: the file's own write lock), so that sinks starting together do not race each
    /// other's `CREATE TABLE IF NOT EXISTS` (PostgreSQL runs two of them into a duplicate key in
    /// `pg_type`).
    pub async fn ddl(&mut self, name: &str, stmts: &[String]) -> Result<(), sqlx::Error> {
        let lock = format!("mqtt-sink {name}");
        match self {
            #[cfg(feature = "postgres")]
            Conn::Postgres(c) => {
                let mut tx = c.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(&lock)
                    .execute(&mut *tx)
                    .await?;
                for s in stmts {
                    sqlx::query(sqlx::AssertSqlSafe(s.clone()))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }
            #[cfg(feature = "mysql")]
            Conn::MySql(c) => {
                // Lock names are at most 64 characters.
                let lock: String = lock.chars().take(64).collect();
                let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 60)")
                    .bind(&lock)
                    .fetch_one(&mut *c)
                    .await?;
                if got != Some(1) {
                    return Err(sqlx::Error::Protocol(format!(
                        "another sink held the lock `{lock}` for 60 s while changing the tables"
                    )));
                }
                let mut result = Ok(());
                for s in stmts {
                    if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(s.clone()))
                        .execute(&mut *c)
                        .await
                    {
                        result = Err(e);
                        break;
                    }
                }
                let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
                    .bind(&lock)
                    .execute(&mut *c)
                    .await;
                result
            }
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(c) => {
                let _ = lock;
                for s in stmts {
                    sqlx::query(sqlx::AssertSqlSafe(s.clone()))
                        .execute(&mut *c)
                        .await?;
                }
                Ok(())
            }
        }
    }

    /// Closes politely, ignoring errors (the connection may already be broken).
    pub async fn close(self) {
        let _ = each_backend!(Conn, self, c => sqlx::Connection::close(c).await);
    }
}

/// The server's message for a database error, else the driver's description.
pub(crate) fn message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_owned(),
        other => other.to_string(),
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
                #[cfg(feature = "mysql")]
                let number = db
                    .try_downcast_ref::<MySqlDatabaseError>()
                    .map_or(0, MySqlDatabaseError::number);
                #[cfg(not(feature = "mysql"))]
                let number = 0;
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
