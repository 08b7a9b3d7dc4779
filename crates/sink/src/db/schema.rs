//! The target table and its dead-letter table as SQL: column types per backend, CREATE TABLE
//! statements, and the probe that checks a table and its columns exist. Pure string building
//! over validated identifiers; nothing here touches a connection.

use crate::db::Backend;
use crate::ident::Ident;
use crate::mapping::{Dedup, Kind};
use crate::partition::Partitioning;

/// The shape of the rows the sink writes.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Dialect.
    pub backend: Backend,
    /// Target table.
    pub table: Ident,
    /// Dead-letter table.
    pub dead_letters: Ident,
    /// Stored columns in insert order (mapped, then topic / received-at / payload); the
    /// `msg_key` column follows them when `dedup` is [`Dedup::Hash`].
    pub columns: Vec<Ident>,
    /// Idempotency.
    pub dedup: Dedup,
    /// PostgreSQL range partitions (`--partition-by`).
    pub partition: Option<Partitioning>,
}

impl Layout {
    /// Quotes an identifier for this backend.
    pub fn q(&self, id: &Ident) -> String {
        match self.backend {
            Backend::MySql => id.backquoted(),
            Backend::Sqlite | Backend::Postgres => id.quoted(),
        }
    }

    /// Quotes a name written in this crate (`msg_key`, `topic`, ...).
    pub fn qs(&self, name: &'static str) -> String {
        self.q(&Ident::known(name))
    }

    /// The insert column list, quoted, including `msg_key` when hashing.
    pub fn insert_columns(&self) -> Vec<String> {
        let mut cols: Vec<String> = self.columns.iter().map(|c| self.q(c)).collect();
        if self.dedup == Dedup::Hash {
            cols.push(self.qs("msg_key"));
        }
        cols
    }

    /// Whether column `c` is part of a unique key (MySQL needs bounded text there).
    fn in_key(&self, c: &Ident) -> bool {
        matches!(&self.dedup, Dedup::Columns(cols) if cols.iter().any(|k| k.same_as(c.as_str())))
    }

    /// The SQL type of a column of `kind` (`None`: no value seen yet, so text).
    pub fn sql_type(&self, kind: Option<Kind>, in_key: bool) -> &'static str {
        use Backend::{MySql, Postgres, Sqlite};
        match (self.backend, kind.unwrap_or(Kind::Text)) {
            (Postgres, Kind::Number) => "DOUBLE PRECISION",
            (MySql, Kind::Number) => "DOUBLE",
            (Sqlite, Kind::Number) => "REAL",
            (Postgres | MySql, Kind::Integer) => "BIGINT",
            (Sqlite, Kind::Integer) => "INTEGER",
            (MySql, Kind::Text) if in_key => "VARCHAR(255)",
            (_, Kind::Text) | (Sqlite, Kind::Json | Kind::Timestamp) => "TEXT",
            (_, Kind::Bool) => "BOOLEAN",
            (Postgres, Kind::Json) => "JSONB",
            (MySql, Kind::Json) => "JSON",
            (Postgres, Kind::Timestamp) => "TIMESTAMPTZ",
            (MySql, Kind::Timestamp) => "DATETIME(6)",
        }
    }

    fn id_column(&self) -> &'static str {
        if self.partition.is_some() {
            // A primary key of a partitioned table must hold the partition column; `id` stays
            // a plain sequence.
            return "\"id\" BIGSERIAL";
        }
        match self.backend {
            Backend::Postgres => "\"id\" BIGSERIAL PRIMARY KEY",
            Backend::MySql => "`id` BIGINT AUTO_INCREMENT PRIMARY KEY",
            Backend::Sqlite => "\"id\" INTEGER PRIMARY KEY",
        }
    }

    /// The idempotency key's column type. PostgreSQL gets `UUID` (the key is 128 bits of hex):
    /// its index compares 16 bytes, where a `TEXT` index compares by collation, which made the
    /// unique index the largest cost of an insert (docs/mqtt-sink.md, "Benchmarks").
    fn key_type(&self) -> &'static str {
        match self.backend {
            Backend::MySql => "CHAR(32)",
            Backend::Postgres => "UUID",
            Backend::Sqlite => "TEXT",
        }
    }

    fn table_suffix(&self) -> &'static str {
        match self.backend {
            Backend::MySql => " DEFAULT CHARSET=utf8mb4",
            Backend::Postgres | Backend::Sqlite => "",
        }
    }

    /// `CREATE TABLE IF NOT EXISTS` for the target table; `kinds` gives each stored column's
    /// type in `columns` order.
    pub fn create_table(&self, kinds: &[Option<Kind>]) -> String {
        let mut defs = vec![self.id_column().to_owned()];
        for (c, k) in self.columns.iter().zip(kinds) {
            defs.push(format!(
                "{} {}",
                self.q(c),
                self.sql_type(*k, self.in_key(c))
            ));
        }
        // Unique keys of a partitioned table must hold the partition column.
        let part = self
            .partition
            .as_ref()
            .map(|p| format!(", {}", self.q(&p.column)))
            .unwrap_or_default();
        match &self.dedup {
            Dedup::Hash => {
                defs.push(format!(
                    "{} {} NOT NULL",
                    self.qs("msg_key"),
                    self.key_type()
                ));
                defs.push(format!("UNIQUE ({}{part})", self.qs("msg_key")));
            }
            Dedup::Columns(cols) => {
                let list: Vec<String> = cols.iter().map(|c| self.q(c)).collect();
                defs.push(format!("UNIQUE ({})", list.join(", ")));
            }
            Dedup::None => {}
        }
        let partition_by = self
            .partition
            .as_ref()
            .map(|p| format!(" PARTITION BY RANGE ({})", self.q(&p.column)))
            .unwrap_or_default();
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({}){}{partition_by}",
            self.q(&self.table),
            defs.join(", "),
            self.table_suffix()
        )
    }

    /// The unique index `--dedup columns=..` needs on an existing table, named
    /// `<table>_<cols>_key` (or `<table>_dedup_key` when that is too long).
    pub fn create_unique_index(&self, cols: &[Ident]) -> String {
        let names: Vec<&str> = cols.iter().map(Ident::as_str).collect();
        let index = Ident::new(&format!("{}_{}_key", self.table, names.join("_")), "index")
            .or_else(|_| {
                Ident::new(
                    &format!(
                        "{}_dedup_key",
                        &self.table.as_str()[..self.table.as_str().len().min(50)]
                    ),
                    "index",
                )
            })
            .unwrap_or_else(|_| Ident::known("mqtt_sink_dedup_key"));
        let list: Vec<String> = cols.iter().map(|c| self.q(c)).collect();
        // MySQL has no IF NOT EXISTS here; callers check the catalog first, under the DDL lock.
        let if_not = if self.backend == Backend::MySql {
            ""
        } else {
            "IF NOT EXISTS "
        };
        format!(
            "CREATE UNIQUE INDEX {if_not}{} ON {} ({})",
            self.q(&index),
            self.q(&self.table),
            list.join(", ")
        )
    }

    /// `CREATE TABLE IF NOT EXISTS` for the dead-letter table: topic, received_at, the raw
    /// payload as bytes, the error text and the message key (unique, so a redelivered dead
    /// letter is stored once).
    pub fn create_dead_letters(&self) -> String {
        let (ts, blob, text) = match self.backend {
            Backend::Postgres => ("TIMESTAMPTZ", "BYTEA", "TEXT"),
            Backend::MySql => ("DATETIME(6)", "LONGBLOB", "MEDIUMTEXT"),
            Backend::Sqlite => ("TEXT", "BLOB", "TEXT"),
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, {} {text} NOT NULL, {} {ts} NOT NULL, {} {blob} NOT NULL, {} {text} NOT NULL, {} {} NOT NULL, UNIQUE ({})){}",
            self.q(&self.dead_letters),
            self.id_column(),
            self.qs("topic"),
            self.qs("received_at"),
            self.qs("payload"),
            self.qs("error"),
            self.qs("msg_key"),
            self.key_type(),
            self.qs("msg_key"),
            self.table_suffix()
        )
    }

    /// A query that fails unless the target table and every stored column exist.
    pub fn probe_table(&self) -> String {
        format!(
            "SELECT {} FROM {} WHERE 1 = 0",
            self.insert_columns().join(", "),
            self.q(&self.table)
        )
    }

    /// A query that fails unless the dead-letter table exists with its columns.
    pub fn probe_dead_letters(&self) -> String {
        format!(
            "SELECT {}, {}, {}, {}, {} FROM {} WHERE 1 = 0",
            self.qs("topic"),
            self.qs("received_at"),
            self.qs("payload"),
            self.qs("error"),
            self.qs("msg_key"),
            self.q(&self.dead_letters)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(backend: Backend, dedup: Dedup) -> Layout {
        Layout {
            backend,
            table: Ident::new("readings", "table").unwrap(),
            dead_letters: Ident::new("readings_dead_letters", "table").unwrap(),
            columns: vec![
                Ident::new("temperature", "column").unwrap(),
                Ident::new("data_hora", "column").unwrap(),
            ],
            dedup,
            partition: None,
        }
    }

    #[test]
    fn create_table_per_backend() {
        let kinds = [Some(Kind::Number), Some(Kind::Text)];
        assert_eq!(
            layout(Backend::Postgres, Dedup::Hash).create_table(&kinds),
            "CREATE TABLE IF NOT EXISTS \"readings\" (\"id\" BIGSERIAL PRIMARY KEY, \"temperature\" DOUBLE PRECISION, \"data_hora\" TEXT, \"msg_key\" UUID NOT NULL, UNIQUE (\"msg_key\"))"
        );
        let cols = Dedup::Columns(vec![Ident::new("data_hora", "column").unwrap()]);
        assert_eq!(
            layout(Backend::MySql, cols).create_table(&kinds),
            "CREATE TABLE IF NOT EXISTS `readings` (`id` BIGINT AUTO_INCREMENT PRIMARY KEY, `temperature` DOUBLE, `data_hora` VARCHAR(255), UNIQUE (`data_hora`)) DEFAULT CHARSET=utf8mb4"
        );
        assert_eq!(
            layout(Backend::Sqlite, Dedup::None).create_table(&[None, Some(Kind::Timestamp)]),
            "CREATE TABLE IF NOT EXISTS \"readings\" (\"id\" INTEGER PRIMARY KEY, \"temperature\" TEXT, \"data_hora\" TEXT)"
        );
    }

    #[test]
    fn partitioned_tables_key_on_the_partition_column() {
        let mut l = layout(Backend::Postgres, Dedup::Hash);
        l.partition = Some(Partitioning {
            every: crate::partition::Every::Day,
            column: Ident::new("data_hora", "column").unwrap(),
        });
        assert_eq!(
            l.create_table(&[Some(Kind::Number), Some(Kind::Timestamp)]),
            "CREATE TABLE IF NOT EXISTS \"readings\" (\"id\" BIGSERIAL, \"temperature\" DOUBLE PRECISION, \"data_hora\" TIMESTAMPTZ, \"msg_key\" UUID NOT NULL, UNIQUE (\"msg_key\", \"data_hora\")) PARTITION BY RANGE (\"data_hora\")"
        );
        assert_eq!(
            layout(Backend::MySql, Dedup::None).create_unique_index(&[Ident::new(
                "data_hora",
                "column"
            )
            .unwrap()]),
            "CREATE UNIQUE INDEX `readings_data_hora_key` ON `readings` (`data_hora`)"
        );
    }

    #[test]
    fn probes_name_every_column() {
        let l = layout(Backend::Postgres, Dedup::Hash);
        assert_eq!(
            l.probe_table(),
            "SELECT \"temperature\", \"data_hora\", \"msg_key\" FROM \"readings\" WHERE 1 = 0"
        );
        assert!(
            l.create_dead_letters()
                .contains("\"payload\" BYTEA NOT NULL")
        );
    }
}
