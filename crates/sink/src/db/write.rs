//! Writing one batch in one transaction: the rows (duplicates inside the batch folded, the
//! rest made harmless by the unique key), then the dead letters, then COMMIT. When the
//! database refuses a row, the batch is written again row by row under savepoints and each
//! refused row becomes a dead letter with the database's reason. Connection failures leave
//! the batch untouched for the caller to retry.
//!
//! The SQL of each backend is in `insert`.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::db::insert::Tx;
use crate::db::schema::Layout;
use crate::db::{Backend, Conn, DbUrl, Failure, classify, message};
use crate::extract::Value;
use crate::mapping::{Dedup, Kind};
use crate::partition::{Partitioning, Range};

/// Where a message came from, kept with its row so it can become a dead letter.
#[derive(Debug, Clone)]
pub struct Meta {
    /// Topic.
    pub topic: String,
    /// When the sink received it.
    pub received_at: OffsetDateTime,
    /// The raw payload.
    pub payload: Bytes,
    /// Idempotency key (hash of topic and payload).
    pub key: String,
}

/// One message's fate in a batch.
#[derive(Debug, Clone)]
pub enum Item {
    /// A row: one value per insert column (`Layout::insert_columns` order).
    Row {
        /// Values.
        values: Vec<Value>,
        /// Origin.
        meta: Meta,
    },
    /// A dead letter.
    Dead {
        /// Why.
        error: String,
        /// Origin.
        meta: Meta,
    },
}

/// What a committed batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// New rows.
    pub stored: u64,
    /// Rows or dead letters that were already there (redeliveries) or repeated in the batch.
    pub duplicates: u64,
    /// New dead letters.
    pub dead_lettered: u64,
    /// Rows the database refused, now dead letters (included in `dead_lettered`): topic and
    /// reason of each.
    pub refused: Vec<(String, String)>,
}

/// Why a batch was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Worth retrying later (the batch was not committed).
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help.
    #[error("{0}")]
    Fatal(String),
}

/// The writer: one connection (reopened after failures) and the table layout.
#[derive(Debug)]
pub struct Writer {
    url: DbUrl,
    conn: Option<Conn>,
    layout: Layout,
    /// The target table is still to be created (its column types waited for the first
    /// values); shared by sibling writers, held while one of them creates it.
    pending_create: Arc<Mutex<bool>>,
    /// Batches still to write with the conflict clause after a repeat was seen.
    careful_batches: u32,
    /// Partitions known to exist (`--partition-by`), shared by sibling writers.
    partitions: Arc<Mutex<HashSet<Range>>>,
}

/// Batches written with the conflict clause after an optimistic insert met a repeat.
const CAREFUL_AFTER_REPEAT: u32 = 16;

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(sqlx::error::DatabaseError::is_unique_violation)
}

impl Writer {
    /// A writer over an open connection.
    pub fn new(url: DbUrl, conn: Conn, layout: Layout, pending_create: bool) -> Writer {
        Writer {
            url,
            conn: Some(conn),
            layout,
            pending_create: Arc::new(Mutex::new(pending_create)),
            careful_batches: 0,
            partitions: Arc::default(),
        }
    }

    /// Another writer on its own connection, sharing the layout and the pending creation.
    pub async fn sibling(&self) -> Result<Writer, sqlx::Error> {
        Ok(Writer {
            url: self.url.clone(),
            conn: Some(self.url.connect().await?),
            layout: self.layout.clone(),
            pending_create: self.pending_create.clone(),
            careful_batches: 0,
            partitions: self.partitions.clone(),
        })
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Closes the connection.
    pub async fn close(&mut self) {
        if let Some(c) = self.conn.take() {
            c.close().await;
        }
    }

    /// Writes `items` in one transaction; `kinds` are the insert columns' types.
    pub async fn write(
        &mut self,
        items: &[Item],
        kinds: &[Option<Kind>],
    ) -> Result<Outcome, WriteError> {
        let backend = self.layout.backend;
        if self.conn.is_none() {
            let conn = self.url.connect().await.map_err(|e| {
                WriteError::Transient(format!(
                    "cannot connect to {}: {}",
                    self.url,
                    self.url.describe_failure(&e)
                ))
            })?;
            tracing::info!("connected to {}", self.url);
            self.conn = Some(conn);
        }
        // PostgreSQL with a unique key: try without the conflict clause first (see
        // `insert::pg_insert`); after a repeat, stay careful for a while, since redeliveries
        // come in runs.
        let optimistic = backend == Backend::Postgres
            && self.layout.dedup != Dedup::None
            && self.careful_batches == 0;
        self.careful_batches = self.careful_batches.saturating_sub(1);
        let mut result = self.write_on_conn(items, kinds, false, optimistic).await;
        if optimistic && matches!(&result, Err(e) if is_unique_violation(e)) {
            self.careful_batches = CAREFUL_AFTER_REPEAT;
            result = self.write_on_conn(items, kinds, false, false).await;
        }
        let result = match result {
            Err(e) if classify(&e, backend) == Failure::Row => {
                tracing::info!(
                    "the database refused a row ({}); writing the batch row by row",
                    message(&e)
                );
                self.write_on_conn(items, kinds, true, false).await
            }
            other => other,
        };
        match result {
            Ok(o) => Ok(o),
            Err(e) => match classify(&e, backend) {
                Failure::Transient => {
                    if let Some(c) = self.conn.take() {
                        c.close().await;
                    }
                    Err(WriteError::Transient(format!(
                        "writing to {} failed: {}",
                        self.url,
                        message(&e)
                    )))
                }
                Failure::Row | Failure::Fatal => Err(WriteError::Fatal(format!(
                    "writing to table `{}` in {} failed: {}; check that the table's column types match the mapping (e.g. a TIMESTAMPTZ column needs `--map col:timestamp=/ptr`)",
                    self.layout.table,
                    self.url,
                    message(&e)
                ))),
            },
        }
    }

    async fn write_on_conn(
        &mut self,
        items: &[Item],
        kinds: &[Option<Kind>],
        per_row: bool,
        optimistic: bool,
    ) -> Result<Outcome, sqlx::Error> {
        let layout = &self.layout;
        let Some(conn) = self.conn.as_mut() else {
            return Err(sqlx::Error::PoolClosed);
        };
        {
            let mut pending = self.pending_create.lock().await;
            if *pending {
                // Outside the transaction: MySQL commits implicitly on DDL.
                let n = layout.columns.len();
                conn.ddl(
                    layout.table.as_str(),
                    &[layout.create_table(&kinds[..n.min(kinds.len())])],
                )
                .await?;
                *pending = false;
            }
        }
        if let Some(p) = &layout.partition {
            create_partitions(conn, layout, p, items, &self.partitions).await?;
        }
        let mut tx = Tx::begin(conn).await?;
        let mut out = Outcome::default();
        // Fold repeats inside the batch (a redelivery can land next to its original).
        let mut seen: HashSet<String> = HashSet::new();
        let mut rows: Vec<(&[Value], &Meta)> = Vec::new();
        let mut dead: Vec<(String, &Meta)> = Vec::new();
        for item in items {
            match item {
                Item::Row { values, meta } => {
                    let fresh = match &layout.dedup {
                        Dedup::Hash => seen.insert(meta.key.clone()),
                        Dedup::Columns(cols) => {
                            let key: Vec<String> = layout
                                .columns
                                .iter()
                                .zip(values)
                                .filter(|(c, _)| cols.iter().any(|k| k.same_as(c.as_str())))
                                .map(|(_, v)| v.key_text())
                                .collect();
                            seen.insert(key.join("\u{1f}"))
                        }
                        Dedup::None => true,
                    };
                    if fresh {
                        rows.push((values, meta));
                    } else {
                        out.duplicates += 1;
                    }
                }
                Item::Dead { error, meta } => dead.push((error.clone(), meta)),
            }
        }
        if per_row {
            for (values, meta) in &rows {
                tx.exec("SAVEPOINT edgewire_row".to_owned()).await?;
                match tx.insert_rows(layout, kinds, &[values], false).await {
                    Ok(n) => {
                        out.stored += n;
                        out.duplicates += 1 - n.min(1);
                        tx.exec("RELEASE SAVEPOINT edgewire_row".to_owned()).await?;
                    }
                    Err(e) if classify(&e, layout.backend) == Failure::Row => {
                        tx.exec("ROLLBACK TO SAVEPOINT edgewire_row".to_owned())
                            .await?;
                        let reason = format!("the database refused the row: {}", message(&e));
                        out.refused.push((meta.topic.clone(), reason.clone()));
                        dead.push((reason, meta));
                    }
                    Err(e) => return Err(e),
                }
            }
        } else if !rows.is_empty() {
            let values: Vec<&[Value]> = rows.iter().map(|(v, _)| *v).collect();
            let n = tx.insert_rows(layout, kinds, &values, optimistic).await?;
            out.stored += n;
            out.duplicates += values.len() as u64 - n;
        }
        for (error, meta) in &dead {
            let n = tx.insert_dead(layout, meta, error).await?;
            out.dead_lettered += n;
            out.duplicates += 1 - n.min(1);
        }
        tx.commit().await?;
        Ok(out)
    }
}

/// Creates the partitions the rows of `items` need and no one made yet (under the DDL lock,
/// outside the batch's transaction). A row without a partition value gets none: its insert
/// fails and it becomes a dead letter with PostgreSQL's reason.
async fn create_partitions(
    conn: &mut Conn,
    layout: &Layout,
    p: &Partitioning,
    items: &[Item],
    known: &Mutex<HashSet<Range>>,
) -> Result<(), sqlx::Error> {
    let Some(at) = layout
        .columns
        .iter()
        .position(|c| c.same_as(p.column.as_str()))
    else {
        return Ok(());
    };
    let mut needed: Vec<Range> = items
        .iter()
        .filter_map(|item| match item {
            Item::Row { values, .. } => match values.get(at) {
                Some(Value::Timestamp(t)) => p.range_of(*t),
                _ => None,
            },
            Item::Dead { .. } => None,
        })
        .collect();
    needed.sort_unstable();
    needed.dedup();
    let mut known = known.lock().await;
    needed.retain(|r| !known.contains(r));
    if needed.is_empty() {
        return Ok(());
    }
    let stmts: Vec<String> = needed
        .iter()
        .map(|r| p.create_partition(&layout.table, *r))
        .collect();
    conn.ddl(layout.table.as_str(), &stmts).await?;
    for r in needed {
        tracing::info!(
            "partition `{}` ({} to {}) is ready",
            p.partition_name(&layout.table, r),
            r.from,
            r.to
        );
        known.insert(r);
    }
    Ok(())
}
