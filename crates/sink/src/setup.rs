//! Start-up: connect, make sure the dead-letter table exists, then look at the target table.
//! A missing table is created (with `--create-table`) under a DDL lock, so replicas starting
//! together do not race. An existing table decides what the flags left open: the types of
//! untyped columns come from its column types, and without `--dedup` its columns and unique keys
//! pick the dedup mode (`msg_key` → hash, a unique key over stored columns → that key), or the
//! start fails naming the flag that fits. `--dedup columns=..` needs a unique key over exactly
//! those columns: created with `--create-table`, else the start fails with the statement to run.

use crate::config::{SinkConfig, SinkError};
use crate::db::catalog::TableInfo;
use crate::db::schema::Layout;
use crate::db::write::Writer;
use crate::db::{Backend, Conn, Failure, classify, message};
use crate::extract::Column;
use crate::ident::Ident;
use crate::mapping::{Dedup, Kind};
use crate::pipeline::column_kinds;
use crate::run::{MAX_BATCH, Sink};

/// Connects to the database, checks the tables (creating what is missing and allowed), settles
/// the dedup mode and column types, and returns the sink ready to run.
pub async fn prepare(mut config: SinkConfig) -> Result<Sink, SinkError> {
    check(&config)?;
    let mut layout = Layout {
        backend: config.db.backend(),
        table: config.table.clone(),
        dead_letters: config.dead_letter_table.clone(),
        columns: config.mapping.stored_columns().cloned().collect(),
        dedup: config.mapping.dedup.clone(),
        partition: config.partition.clone(),
    };
    let db = config.db.to_string();
    let mut conn = config.db.connect().await.map_err(|e| SinkError::Connect {
        db: db.clone(),
        reason: config.db.describe_failure(&e),
    })?;
    let schema_err = |table: &Ident, reason: String, hint: String| SinkError::Schema {
        table: table.to_string(),
        db: db.clone(),
        reason,
        hint,
    };
    ensure_dead_letters(&mut conn, &layout, &schema_err).await?;

    let mut columns: Vec<Column> = config
        .mapping
        .columns
        .iter()
        .cloned()
        .map(|spec| Column::new(spec).coerced(config.coerce))
        .collect();
    let mut info = describe(&mut conn, &config).await?;
    let mut pending_create = false;
    if info.is_none() {
        if !config.create_table {
            return Err(schema_err(
                &layout.table,
                "there is no such table".into(),
                "pass --create-table to create it, or fix --table".into(),
            ));
        }
        if columns.iter().all(|c| c.kind.is_some()) {
            let kinds = column_kinds(&config, &columns);
            let sql = layout.create_table(&kinds[..layout.columns.len()]);
            conn.ddl(layout.table.as_str(), &[sql]).await.map_err(|e| {
                schema_err(
                    &layout.table,
                    message(&e),
                    "check the right to create tables".into(),
                )
            })?;
            tracing::info!("created table `{}`", layout.table);
            info = describe(&mut conn, &config).await?;
        } else {
            // Column types follow the first values; the table is created with the first batch.
            pending_create = true;
        }
    }
    if let Some(info) = &info {
        check_columns(&layout, info).map_err(|(r, h)| schema_err(&layout.table, r, h))?;
        settle_kinds(&mut columns, info, layout.backend)
            .map_err(|(r, h)| schema_err(&layout.table, r, h))?;
        if config.partition.is_some() && !info.partitioned {
            return Err(schema_err(
                &layout.table,
                "it exists and is not partitioned".into(),
                "--partition-by applies to tables the sink creates; drop the flag or pick a new --table".into(),
            ));
        }
        layout.dedup = settle_dedup(&mut conn, &config, &layout, info)
            .await
            .map_err(|(r, h)| schema_err(&layout.table, r, h))?;
        config.mapping.dedup = layout.dedup.clone();
        tracing::info!(
            "table `{}` is ready (dedup: {})",
            layout.table,
            dedup_name(&layout.dedup)
        );
    }
    let writer = Writer::new(config.db.clone(), conn, layout, pending_create);
    Ok(Sink {
        config,
        writer,
        columns,
    })
}

fn check(config: &SinkConfig) -> Result<(), SinkError> {
    config.mapping.validate()?;
    if config.topics.is_empty() {
        return Err(SinkError::Config(
            "no topic to subscribe to: pass --topic FILTER (repeatable)".into(),
        ));
    }
    for t in &config.topics {
        transport::topic::validate_filter(t)
            .map_err(|e| SinkError::Config(format!("--topic `{t}`: {e}")))?;
    }
    if let Some(g) = &config.share
        && (g.is_empty() || g.contains(['/', '+', '#']))
    {
        return Err(SinkError::Config(format!(
            "--share `{g}`: a share group name must be non-empty and hold no `/`, `+` or `#`"
        )));
    }
    if config.writers > 8 {
        return Err(SinkError::Config(
            "--writers must be between 1 and 8".into(),
        ));
    }
    if config.batch_rows == 0 || config.batch_rows > MAX_BATCH {
        return Err(SinkError::Config(format!(
            "--batch must be between 1 and {MAX_BATCH}"
        )));
    }
    if let Some(p) = &config.partition {
        if config.db.backend() != Backend::Postgres {
            return Err(SinkError::Config(
                "--partition-by uses PostgreSQL's native partitioning; it does not apply to SQLite or MariaDB/MySQL".into(),
            ));
        }
        let spec = config
            .mapping
            .columns
            .iter()
            .find(|c| c.column.same_as(p.column.as_str()));
        if !spec.is_some_and(|c| c.kind == Some(Kind::Timestamp)) {
            return Err(SinkError::Config(format!(
                "--partition-by needs a timestamp column from the payload: map `{}` as `{}:timestamp=/pointer` (or name one with --partition-column)",
                p.column, p.column
            )));
        }
        if let Dedup::Columns(cols) = &config.mapping.dedup
            && !cols.iter().any(|c| c.same_as(p.column.as_str()))
        {
            return Err(SinkError::Config(format!(
                "--dedup columns=.. must include the partition column `{}` (PostgreSQL's unique keys on a partitioned table hold it)",
                p.column
            )));
        }
    }
    Ok(())
}

async fn describe(conn: &mut Conn, config: &SinkConfig) -> Result<Option<TableInfo>, SinkError> {
    conn.describe(&config.table)
        .await
        .map_err(|e| SinkError::Connect {
            db: config.db.to_string(),
            reason: format!(
                "reading the catalog for `{}`: {}",
                config.table,
                message(&e)
            ),
        })
}

async fn ensure_dead_letters(
    conn: &mut Conn,
    layout: &Layout,
    schema_err: &impl Fn(&Ident, String, String) -> SinkError,
) -> Result<(), SinkError> {
    let Err(e) = conn.exec(layout.probe_dead_letters()).await else {
        return Ok(());
    };
    if classify(&e, layout.backend) != Failure::Fatal {
        return Err(schema_err(
            &layout.dead_letters,
            message(&e),
            "the database failed while the sink checked its tables; try again".into(),
        ));
    }
    conn.ddl(layout.dead_letters.as_str(), &[layout.create_dead_letters()])
        .await
        .map_err(|e2| {
            schema_err(
                &layout.dead_letters,
                message(&e2),
                "the sink creates this table itself and needs the right to; or create it as docs/mqtt-sink.md shows".into(),
            )
        })?;
    conn.exec(layout.probe_dead_letters()).await.map_err(|e3| {
        schema_err(
            &layout.dead_letters,
            message(&e3),
            "a table of this name exists with other columns; pick another --dead-letter-table"
                .into(),
        )
    })?;
    tracing::info!("dead-letter table `{}` is ready", layout.dead_letters);
    Ok(())
}

/// Every stored column must be in the table.
fn check_columns(layout: &Layout, info: &TableInfo) -> Result<(), (String, String)> {
    let missing: Vec<&str> = layout
        .columns
        .iter()
        .filter(|c| info.column(c.as_str()).is_none())
        .map(Ident::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let have: Vec<&str> = info.columns.iter().map(|c| c.name.as_str()).collect();
    Err((
        format!(
            "it has no column {} (its columns: {})",
            missing.join(", "),
            have.join(", ")
        ),
        "fix the --map (or --store-*) column names, or pick another --table".into(),
    ))
}

/// Untyped mapped columns take the table's column types; on PostgreSQL, which converts no text
/// to a timestamp or number on insert, a mapped type the column cannot take is refused now.
fn settle_kinds(
    columns: &mut [Column],
    info: &TableInfo,
    backend: Backend,
) -> Result<(), (String, String)> {
    for col in columns.iter_mut() {
        let Some(db) = info.column(col.spec.column.as_str()) else {
            continue;
        };
        match (col.kind, db.kind()) {
            (None, found) => col.kind = found,
            (
                Some(Kind::Text),
                Some(k @ (Kind::Timestamp | Kind::Number | Kind::Integer | Kind::Bool)),
            ) if backend == Backend::Postgres => {
                return Err((
                    format!(
                        "column `{}` is `{}` but the mapping says text",
                        db.name, db.sql_type
                    ),
                    format!(
                        "map it as `{}:{k}={}` or leave the type out (it then follows the column)",
                        col.spec.column, col.spec.pointer
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn dedup_name(d: &Dedup) -> String {
    match d {
        Dedup::Hash => "hash (msg_key)".into(),
        Dedup::None => "none".into(),
        Dedup::Columns(c) => format!(
            "columns={}",
            c.iter().map(Ident::as_str).collect::<Vec<_>>().join(",")
        ),
    }
}

fn key_type(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "UUID",
        Backend::MySql => "CHAR(32)",
        Backend::Sqlite => "TEXT",
    }
}

/// The dedup mode for an existing table (module doc).
async fn settle_dedup(
    conn: &mut Conn,
    config: &SinkConfig,
    layout: &Layout,
    info: &TableInfo,
) -> Result<Dedup, (String, String)> {
    let t = &layout.table;
    let has_key_col = info.column("msg_key").is_some();
    let key_unique = info
        .unique_keys
        .iter()
        .any(|k| k.iter().any(|c| c.eq_ignore_ascii_case("msg_key")));
    let add_key = format!(
        "ALTER TABLE {} ADD COLUMN msg_key {} UNIQUE",
        layout.q(t),
        key_type(layout.backend)
    );
    if !config.dedup_given {
        if has_key_col && key_unique {
            return Ok(Dedup::Hash);
        }
        if let Some(key) = info.keys_within(&layout.columns).next() {
            let cols: Vec<Ident> = key
                .iter()
                .filter_map(|n| Ident::new(n, "dedup column").ok())
                .collect();
            return Ok(Dedup::Columns(cols));
        }
        let suggest = suggested_key(layout, info, config.mapping.received_at_column.as_ref());
        return Err((
            "it has no unique msg_key column and no unique key over the mapped columns, so a redelivered reading would be stored twice".into(),
            format!(
                "pass --dedup columns={suggest} --create-table (the sink adds a unique index on ({suggest}): readings with the same {suggest} are stored once), \
                 or --dedup none (a redelivered reading is stored twice), or add the sink's own key: {add_key}"
            ),
        ));
    }
    match &config.mapping.dedup {
        Dedup::None => Ok(Dedup::None),
        Dedup::Hash if !has_key_col => Err((
            "--dedup hash needs a msg_key column and the table has none".into(),
            format!("add it: {add_key}; or pick --dedup columns=A,B or --dedup none"),
        )),
        Dedup::Hash if !key_unique => Err((
            "its msg_key column is not unique, so it cannot make redeliveries harmless".into(),
            format!(
                "add a unique index: CREATE UNIQUE INDEX ON {} (msg_key)",
                layout.q(t)
            ),
        )),
        Dedup::Hash => Ok(Dedup::Hash),
        Dedup::Columns(cols) if info.has_unique_key(cols) => Ok(Dedup::Columns(cols.clone())),
        Dedup::Columns(cols) => {
            let sql = layout.create_unique_index(cols);
            let list: Vec<&str> = cols.iter().map(Ident::as_str).collect();
            let list = list.join(", ");
            if !config.create_table {
                return Err((
                    format!("it has no unique key on ({list}), so repeats would be stored twice"),
                    format!("let the sink create it with --create-table, or run: {sql}"),
                ));
            }
            conn.ddl(t.as_str(), &[sql]).await.map_err(|e| {
                (
                    format!("creating a unique index on ({list}) failed: {}", message(&e)),
                    format!(
                        "if the table already holds rows that repeat ({list}), remove them first; on MariaDB/MySQL a TEXT column needs to be a VARCHAR to be in a key"
                    ),
                )
            })?;
            tracing::info!("created a unique index on `{t}` ({list}) for --dedup");
            Ok(Dedup::Columns(cols.clone()))
        }
    }
}

/// The columns to suggest for `--dedup columns=`: the stored time columns from the payload (not
/// the receive time, which differs on every delivery), else all stored ones.
fn suggested_key(layout: &Layout, info: &TableInfo, received_at: Option<&Ident>) -> String {
    let times: Vec<&str> = layout
        .columns
        .iter()
        .filter(|c| received_at.is_none_or(|r| !r.same_as(c.as_str())))
        .filter(|c| {
            info.column(c.as_str())
                .is_some_and(|ci| ci.kind() == Some(Kind::Timestamp))
        })
        .map(Ident::as_str)
        .collect();
    if times.is_empty() {
        layout
            .columns
            .iter()
            .map(Ident::as_str)
            .collect::<Vec<_>>()
            .join(",")
    } else {
        times.join(",")
    }
}
