//! The SQL of one batch on each backend, inside a transaction the caller holds: multi-row
//! inserts that skip rows already there (returning how many were new) and dead-letter inserts.
//! PostgreSQL gets `INSERT .. SELECT .. FROM UNNEST($1::float8[], ..)` (one statement text
//! whatever the batch size, split only to keep each message under 12 KiB); SQLite and MySQL get
//! multi-row `VALUES` statements in a few fixed sizes, so prepared statements are reused.
//! Conflicts: `ON CONFLICT DO NOTHING` (PostgreSQL, SQLite); MySQL counts the existing keys
//! first and then inserts with `ON DUPLICATE KEY UPDATE k = k` (its `INSERT IGNORE` would also
//! hide bad values). Identifiers come from the validated layout; values are always bound.

#[cfg(feature = "mysql")]
use sqlx::MySql;
#[cfg(feature = "postgres")]
use sqlx::Postgres;
#[cfg(feature = "sqlite")]
use sqlx::Sqlite;
use sqlx::{AssertSqlSafe, Connection, Transaction};
use time::OffsetDateTime;

use crate::db::schema::Layout;
use crate::db::write::Meta;
use crate::db::{Backend, Conn, each_backend};
use crate::extract::Value;
use crate::mapping::{Dedup, Kind};

/// A transaction on one of the three backends.
pub(crate) enum Tx<'c> {
    #[cfg(feature = "sqlite")]
    Sqlite(Transaction<'c, Sqlite>),
    #[cfg(feature = "postgres")]
    Postgres(Transaction<'c, Postgres>),
    #[cfg(feature = "mysql")]
    MySql(Transaction<'c, MySql>),
}

/// Most rows in one multi-row `VALUES` statement, and the smaller sizes used for the rest.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
const CHUNKS: [usize; 4] = [128, 32, 8, 1];

#[cfg(any(feature = "sqlite", feature = "mysql"))]
macro_rules! bind_value {
    ($q:expr, $v:expr, $kind:expr) => {
        match $v {
            Value::Null => match $kind {
                Some(Kind::Number) => $q.bind(None::<f64>),
                Some(Kind::Integer) => $q.bind(None::<i64>),
                Some(Kind::Bool) => $q.bind(None::<bool>),
                Some(Kind::Timestamp) => $q.bind(None::<OffsetDateTime>),
                _ => $q.bind(None::<String>),
            },
            Value::Number(n) => $q.bind(*n),
            Value::Integer(n) => $q.bind(*n),
            Value::Text(s) | Value::Json(s) => $q.bind(s.as_str()),
            Value::Bool(b) => $q.bind(*b),
            Value::Timestamp(t) => $q.bind(*t),
        }
    };
}

#[cfg(any(feature = "sqlite", feature = "mysql"))]
macro_rules! values_insert {
    ($tx:expr, $db:ty, $sql:expr, $kinds:expr, $rows:expr) => {{
        let mut q = sqlx::query::<$db>(AssertSqlSafe($sql));
        for row in $rows {
            for (v, k) in row.iter().zip($kinds) {
                q = bind_value!(q, v, *k);
            }
        }
        q.execute(&mut **$tx).await?.rows_affected()
    }};
}

#[cfg(feature = "postgres")]
fn pg_array(k: Option<Kind>) -> &'static str {
    match k {
        Some(Kind::Number) => "float8[]",
        Some(Kind::Integer) => "int8[]",
        Some(Kind::Bool) => "bool[]",
        Some(Kind::Timestamp) => "timestamptz[]",
        Some(Kind::Text | Kind::Json) | None => "text[]",
    }
}

impl<'c> Tx<'c> {
    pub(crate) async fn begin(conn: &'c mut Conn) -> Result<Tx<'c>, sqlx::Error> {
        Ok(match conn {
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(c) => Tx::Sqlite(c.begin().await?),
            #[cfg(feature = "postgres")]
            Conn::Postgres(c) => Tx::Postgres(c.begin().await?),
            #[cfg(feature = "mysql")]
            Conn::MySql(c) => Tx::MySql(c.begin().await?),
        })
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        each_backend!(Tx, self, t => t.commit().await)
    }

    pub(crate) async fn exec(&mut self, sql: String) -> Result<(), sqlx::Error> {
        each_backend!(Tx, self, t => {
            sqlx::query(AssertSqlSafe(sql)).execute(&mut **t).await?;
        });
        Ok(())
    }

    /// Inserts rows, returning how many were new.
    pub(crate) async fn insert_rows(
        &mut self,
        layout: &Layout,
        kinds: &[Option<Kind>],
        rows: &[&[Value]],
        optimistic: bool,
    ) -> Result<u64, sqlx::Error> {
        match self {
            #[cfg(feature = "postgres")]
            Tx::Postgres(tx) => {
                let mut n = 0;
                for chunk in pg_chunks(rows) {
                    n += pg_insert(tx, layout, kinds, chunk, optimistic).await?;
                }
                Ok(n)
            }
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(tx) => {
                let _ = optimistic;
                let mut n = 0;
                for (size, chunk) in chunked(rows, kinds.len(), 32_766) {
                    let sql = values_sql(layout, size, kinds.len());
                    n += values_insert!(tx, Sqlite, sql, kinds, chunk);
                }
                Ok(n)
            }
            #[cfg(feature = "mysql")]
            Tx::MySql(tx) => {
                let _ = optimistic;
                let existing = mysql_count_existing(tx, layout, kinds, rows).await?;
                let mut n = 0;
                for (size, chunk) in chunked(rows, kinds.len(), 65_535) {
                    let sql = values_sql(layout, size, kinds.len());
                    n += values_insert!(tx, MySql, sql, kinds, chunk);
                }
                // ON DUPLICATE KEY UPDATE counts a kept duplicate as 1 (sqlx sets FOUND_ROWS),
                // so new rows are the rows minus those already there.
                Ok(if layout.dedup == Dedup::None {
                    n
                } else {
                    (rows.len() as u64).saturating_sub(existing)
                })
            }
        }
    }

    /// Inserts one dead letter, returning 1 when new and 0 when it was already there.
    pub(crate) async fn insert_dead(
        &mut self,
        layout: &Layout,
        meta: &Meta,
        error: &str,
    ) -> Result<u64, sqlx::Error> {
        let cols = format!(
            "{}, {}, {}, {}, {}",
            layout.qs("topic"),
            layout.qs("received_at"),
            layout.qs("payload"),
            layout.qs("error"),
            layout.qs("msg_key")
        );
        let table = layout.q(&layout.dead_letters);
        let payload: &[u8] = &meta.payload;
        match self {
            #[cfg(feature = "postgres")]
            Tx::Postgres(tx) => Ok(sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {table} ({cols}) VALUES ($1, $2, $3, $4, $5::text::uuid) ON CONFLICT DO NOTHING"
            )))
            .bind(meta.topic.as_str())
            .bind(meta.received_at)
            .bind(payload)
            .bind(error)
            .bind(meta.key.as_str())
            .execute(&mut **tx)
            .await?
            .rows_affected()),
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(tx) => Ok(sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {table} ({cols}) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            )))
            .bind(meta.topic.as_str())
            .bind(meta.received_at)
            .bind(payload)
            .bind(error)
            .bind(meta.key.as_str())
            .execute(&mut **tx)
            .await?
            .rows_affected()),
            #[cfg(feature = "mysql")]
            Tx::MySql(tx) => {
                let key = layout.qs("msg_key");
                let there: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {table} WHERE {key} = ?"
                )))
                .bind(meta.key.as_str())
                .fetch_one(&mut **tx)
                .await?;
                if there > 0 {
                    return Ok(0);
                }
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {table} ({cols}) VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE {key} = {key}"
                )))
                .bind(meta.topic.as_str())
                .bind(meta.received_at)
                .bind(payload)
                .bind(error)
                .bind(meta.key.as_str())
                .execute(&mut **tx)
                .await?;
                Ok(1)
            }
        }
    }
}

/// Splits rows into chunks of the fixed sizes (bounded by the backend's parameter limit).
#[cfg(any(feature = "sqlite", feature = "mysql"))]
fn chunked<'a, 'r>(
    rows: &'a [&'r [Value]],
    ncols: usize,
    max_params: usize,
) -> Vec<(usize, &'a [&'r [Value]])> {
    let cap = (max_params / ncols.max(1)).max(1);
    let mut out = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let size = CHUNKS
            .iter()
            .copied()
            .find(|s| *s <= rest.len() && *s <= cap)
            .unwrap_or(1);
        let (head, tail) = rest.split_at(size);
        out.push((size, head));
        rest = tail;
    }
    out
}

/// Largest PostgreSQL statement (bind message) the sink sends, in bytes. sqlx does not set
/// TCP_NODELAY, so a message that spans two TCP segments waits for the server's delayed ACK
/// (40 ms) before its tail is sent; on loopback one segment holds 64 KiB.
#[cfg(feature = "postgres")]
const PG_MESSAGE_BUDGET: usize = 12 * 1024;

/// Splits rows so that each `UNNEST` statement stays under [`PG_MESSAGE_BUDGET`].
#[cfg(feature = "postgres")]
fn pg_chunks<'a, 'r>(rows: &'a [&'r [Value]]) -> Vec<&'a [&'r [Value]]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, row) in rows.iter().enumerate() {
        let bytes: usize = row
            .iter()
            .map(|v| match v {
                Value::Text(s) | Value::Json(s) => 4 + s.len(),
                _ => 12,
            })
            .sum();
        if i > start && size + bytes > PG_MESSAGE_BUDGET {
            out.push(&rows[start..i]);
            start = i;
            size = 0;
        }
        size += bytes;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

/// `INSERT INTO t (cols) VALUES (?, ?), (?, ?) [conflict clause]` for SQLite and MySQL.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
fn values_sql(layout: &Layout, rows: usize, ncols: usize) -> String {
    let one = format!("({})", vec!["?"; ncols].join(", "));
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES {}",
        layout.q(&layout.table),
        layout.insert_columns().join(", "),
        vec![one; rows].join(", ")
    );
    match (&layout.dedup, layout.backend) {
        (Dedup::None, _) => {}
        (_, Backend::Sqlite | Backend::Postgres) => sql.push_str(" ON CONFLICT DO NOTHING"),
        (Dedup::Hash, Backend::MySql) => {
            let k = layout.qs("msg_key");
            sql.push_str(&format!(" ON DUPLICATE KEY UPDATE {k} = {k}"));
        }
        (Dedup::Columns(cols), Backend::MySql) => {
            if let Some(c) = cols.first() {
                let k = layout.q(c);
                sql.push_str(&format!(" ON DUPLICATE KEY UPDATE {k} = {k}"));
            }
        }
    }
    sql
}

/// How many of `rows` already have their key in the table (MySQL only).
#[cfg(feature = "mysql")]
async fn mysql_count_existing(
    tx: &mut Transaction<'_, MySql>,
    layout: &Layout,
    kinds: &[Option<Kind>],
    rows: &[&[Value]],
) -> Result<u64, sqlx::Error> {
    let key_idx: Vec<usize> = match &layout.dedup {
        Dedup::None => return Ok(0),
        Dedup::Hash => vec![layout.columns.len()],
        Dedup::Columns(cols) => layout
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| cols.iter().any(|k| k.same_as(c.as_str())))
            .map(|(i, _)| i)
            .collect(),
    };
    let names: Vec<String> = match &layout.dedup {
        Dedup::Hash => vec![layout.qs("msg_key")],
        _ => key_idx
            .iter()
            .map(|i| layout.q(&layout.columns[*i]))
            .collect(),
    };
    let tuple = format!("({})", vec!["?"; key_idx.len()].join(", "));
    let mut total = 0u64;
    for chunk in rows.chunks(500) {
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE ({}) IN ({})",
            layout.q(&layout.table),
            names.join(", "),
            vec![tuple.as_str(); chunk.len()].join(", ")
        );
        let mut q = sqlx::query_scalar::<MySql, i64>(AssertSqlSafe(sql));
        for row in chunk {
            for i in &key_idx {
                if let (Some(v), Some(k)) = (row.get(*i), kinds.get(*i)) {
                    q = bind_value!(q, v, *k);
                }
            }
        }
        total += u64::try_from(q.fetch_one(&mut **tx).await?).unwrap_or(0);
    }
    Ok(total)
}

/// Column `i` of every row as one array parameter (`UNNEST` takes a column at a time); a value
/// of another kind (or a missing one) becomes NULL.
#[cfg(feature = "postgres")]
fn column<T>(rows: &[&[Value]], i: usize, pick: impl Fn(Value) -> Option<T>) -> Vec<Option<T>> {
    rows.iter()
        .map(|r| pick(r.get(i).cloned().unwrap_or(Value::Null)))
        .collect()
}

/// With `optimistic`, no conflict clause: a plain insert into a unique index costs PostgreSQL
/// about a third less than `ON CONFLICT DO NOTHING` (speculative insertion), and repeats are
/// rare; a repeat fails the statement with a unique violation and the caller writes the batch
/// again without `optimistic`.
#[cfg(feature = "postgres")]
async fn pg_insert(
    tx: &mut Transaction<'_, Postgres>,
    layout: &Layout,
    kinds: &[Option<Kind>],
    rows: &[&[Value]],
    optimistic: bool,
) -> Result<u64, sqlx::Error> {
    let mut unnest = Vec::new();
    let mut alias = Vec::new();
    let mut select = Vec::new();
    let key_at = (layout.dedup == Dedup::Hash).then(|| kinds.len() - 1);
    for (i, k) in kinds.iter().enumerate() {
        if key_at == Some(i) {
            // The hex key is bound as text and stored as UUID (see `Layout::key_type`).
            unnest.push(format!("${}::text[]::uuid[]", i + 1));
        } else {
            unnest.push(format!("${}::{}", i + 1, pg_array(*k)));
        }
        alias.push(format!("c{i}"));
        select.push(match k {
            Some(Kind::Json) => format!("c{i}::jsonb"),
            None => "NULL".to_owned(),
            Some(_) => format!("c{i}"),
        });
    }
    let conflict = if layout.dedup == Dedup::None || optimistic {
        ""
    } else {
        " ON CONFLICT DO NOTHING"
    };
    let sql = format!(
        "INSERT INTO {} ({}) SELECT {} FROM UNNEST({}) AS u({}){conflict}",
        layout.q(&layout.table),
        layout.insert_columns().join(", "),
        select.join(", "),
        unnest.join(", "),
        alias.join(", ")
    );
    let mut q = sqlx::query::<Postgres>(AssertSqlSafe(sql));
    for (i, k) in kinds.iter().enumerate() {
        q = match k {
            Some(Kind::Number) => q.bind(column(rows, i, |v| match v {
                Value::Number(n) => Some(n),
                _ => None,
            })),
            Some(Kind::Integer) => q.bind(column(rows, i, |v| match v {
                Value::Integer(n) => Some(n),
                _ => None,
            })),
            Some(Kind::Bool) => q.bind(column(rows, i, |v| match v {
                Value::Bool(b) => Some(b),
                _ => None,
            })),
            Some(Kind::Timestamp) => q.bind(column(rows, i, |v| match v {
                Value::Timestamp(t) => Some(t),
                _ => None,
            })),
            Some(Kind::Text | Kind::Json) | None => q.bind(column(rows, i, |v| match v {
                Value::Text(s) | Value::Json(s) => Some(s),
                _ => None,
            })),
        };
    }
    Ok(q.execute(&mut **tx).await?.rows_affected())
}

#[cfg(all(test, feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod tests {
    use super::*;
    use crate::ident::Ident;

    #[test]
    fn chunks_use_few_statement_sizes() {
        let v: Vec<Value> = vec![Value::Null];
        let rows: Vec<&[Value]> = vec![v.as_slice(); 300];
        let sizes: Vec<usize> = chunked(&rows, 3, 32_766).iter().map(|c| c.0).collect();
        assert_eq!(sizes, vec![128, 128, 32, 8, 1, 1, 1, 1]);
        assert_eq!(sizes.iter().sum::<usize>(), 300);
        let sizes: Vec<usize> = chunked(&rows[..5], 40_000, 32_766)
            .iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(sizes, vec![1; 5]);
    }

    #[test]
    fn pg_chunks_stay_under_the_message_budget() {
        let v = vec![Value::Text("x".repeat(100)), Value::Number(1.0)];
        let rows: Vec<&[Value]> = vec![v.as_slice(); 1000];
        let chunks = pg_chunks(&rows);
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 1000);
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.len() * 116 <= PG_MESSAGE_BUDGET));
        assert!(pg_chunks(&[]).is_empty());
    }

    #[test]
    fn values_sql_per_dialect() {
        let mut l = Layout {
            backend: Backend::Sqlite,
            table: Ident::new("t", "table").unwrap(),
            dead_letters: Ident::new("t_dead_letters", "table").unwrap(),
            columns: vec![Ident::new("a", "column").unwrap()],
            dedup: Dedup::Hash,
            partition: None,
        };
        assert_eq!(
            values_sql(&l, 2, 2),
            "INSERT INTO \"t\" (\"a\", \"msg_key\") VALUES (?, ?), (?, ?) ON CONFLICT DO NOTHING"
        );
        l.backend = Backend::MySql;
        assert_eq!(
            values_sql(&l, 1, 2),
            "INSERT INTO `t` (`a`, `msg_key`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `msg_key` = `msg_key`"
        );
        l.dedup = Dedup::None;
        assert_eq!(values_sql(&l, 1, 1), "INSERT INTO `t` (`a`) VALUES (?)");
    }
}
