//! What an existing table looks like: its columns with their SQL types, and its unique keys
//! (unique constraints and unique indexes without a predicate), read from each backend's
//! catalog. Start-up uses it to pick the dedup mode and the types of untyped columns; this
//! module only reads.

use sqlx::Row;

use crate::db::Conn;
use crate::ident::Ident;
use crate::mapping::Kind;

/// One column of an existing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    /// Name as the catalog spells it.
    pub name: String,
    /// The SQL type as the catalog shows it (`timestamp without time zone`, `varchar`).
    pub sql_type: String,
}

impl ColumnInfo {
    /// The sink's type for a value bound into this column, when one fits.
    pub fn kind(&self) -> Option<Kind> {
        kind_of_sql_type(&self.sql_type)
    }
}

/// An existing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Columns in table order.
    pub columns: Vec<ColumnInfo>,
    /// Unique keys, each as its column names.
    pub unique_keys: Vec<Vec<String>>,
    /// PostgreSQL: the table is partitioned (`PARTITION BY`).
    pub partitioned: bool,
}

impl TableInfo {
    /// The column called `name` (compared without regard to case).
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Whether some unique key has exactly these columns (in any order).
    pub fn has_unique_key(&self, cols: &[Ident]) -> bool {
        self.unique_keys
            .iter()
            .any(|k| k.len() == cols.len() && cols.iter().all(|c| k.iter().any(|n| c.same_as(n))))
    }

    /// Unique keys all of whose columns are among `stored` (the sink fills them).
    pub fn keys_within<'a>(&'a self, stored: &'a [Ident]) -> impl Iterator<Item = &'a Vec<String>> {
        self.unique_keys
            .iter()
            .filter(move |k| k.iter().all(|n| stored.iter().any(|s| s.same_as(n))))
    }
}

/// The sink's type for a catalog type name, for PostgreSQL, MariaDB/MySQL and SQLite alike.
pub fn kind_of_sql_type(sql_type: &str) -> Option<Kind> {
    let t = sql_type.to_ascii_lowercase();
    let base = t.split('(').next().unwrap_or("").trim();
    Some(match base {
        "double precision" | "real" | "numeric" | "decimal" | "double" | "float" | "float4"
        | "float8" => Kind::Number,
        "integer" | "bigint" | "smallint" | "int" | "int2" | "int4" | "int8" | "mediumint" => {
            Kind::Integer
        }
        // MySQL's BOOLEAN is TINYINT(1).
        "tinyint" if t.starts_with("tinyint(1)") => Kind::Bool,
        "tinyint" => Kind::Integer,
        "boolean" | "bool" => Kind::Bool,
        "json" | "jsonb" => Kind::Json,
        "text" | "character varying" | "varchar" | "character" | "char" | "tinytext"
        | "mediumtext" | "longtext" | "clob" => Kind::Text,
        "timestamp with time zone"
        | "timestamp without time zone"
        | "timestamptz"
        | "timestamp"
        | "datetime"
        | "date" => Kind::Timestamp,
        // SQLite's affinity rules, for declared types not spelled as above.
        _ if base.contains("int") => Kind::Integer,
        _ if base.contains("char") || base.contains("clob") || base.contains("text") => Kind::Text,
        _ if base.contains("real") || base.contains("floa") || base.contains("doub") => {
            Kind::Number
        }
        _ => return None,
    })
}

impl Conn {
    /// The table's columns and unique keys, `None` when there is no such table.
    pub async fn describe(&mut self, table: &Ident) -> Result<Option<TableInfo>, sqlx::Error> {
        match self {
            #[cfg(feature = "postgres")]
            Conn::Postgres(c) => {
                let regclass = table.quoted();
                let cols = sqlx::query(
                    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
                     FROM pg_attribute a WHERE a.attrelid = to_regclass($1) \
                     AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                )
                .bind(&regclass)
                .fetch_all(&mut *c)
                .await?;
                if cols.is_empty() {
                    return Ok(None);
                }
                let keys = sqlx::query(
                    "SELECT array_agg(a.attname::text ORDER BY k.ord) \
                     FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                     WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL \
                     GROUP BY i.indexrelid",
                )
                .bind(&regclass)
                .fetch_all(&mut *c)
                .await?;
                let partitioned: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass($1))",
                )
                .bind(&regclass)
                .fetch_one(&mut *c)
                .await?;
                Ok(Some(TableInfo {
                    columns: cols
                        .iter()
                        .map(|r| ColumnInfo {
                            name: r.get(0),
                            sql_type: r.get(1),
                        })
                        .collect(),
                    unique_keys: keys.iter().map(|r| r.get::<Vec<String>, _>(0)).collect(),
                    partitioned,
                }))
            }
            #[cfg(feature = "mysql")]
            Conn::MySql(c) => {
                let cols = sqlx::query(
                    "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR) \
                     FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                )
                .bind(table.as_str())
                .fetch_all(&mut *c)
                .await?;
                if cols.is_empty() {
                    return Ok(None);
                }
                let rows = sqlx::query(
                    "SELECT CAST(INDEX_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR) \
                     FROM information_schema.STATISTICS \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
                     ORDER BY INDEX_NAME, SEQ_IN_INDEX",
                )
                .bind(table.as_str())
                .fetch_all(&mut *c)
                .await?;
                Ok(Some(TableInfo {
                    columns: cols
                        .iter()
                        .map(|r| ColumnInfo {
                            name: r.get(0),
                            sql_type: r.get(1),
                        })
                        .collect(),
                    unique_keys: group_keys(rows.iter().map(|r| (r.get(0), r.get(1)))),
                    partitioned: false,
                }))
            }
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(c) => {
                let q = table.quoted();
                let cols = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA table_info({q})")))
                    .fetch_all(&mut *c)
                    .await?;
                if cols.is_empty() {
                    return Ok(None);
                }
                let indexes = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA index_list({q})")))
                    .fetch_all(&mut *c)
                    .await?;
                let mut keys = Vec::new();
                for idx in indexes {
                    let unique: i64 = idx.get("unique");
                    let partial: i64 = idx.get("partial");
                    if unique == 0 || partial != 0 {
                        continue;
                    }
                    let name: String = idx.get("name");
                    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
                    let parts =
                        sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA index_info({quoted})")))
                            .fetch_all(&mut *c)
                            .await?;
                    keys.push(parts.iter().map(|p| p.get::<String, _>("name")).collect());
                }
                // A column declared `INTEGER PRIMARY KEY` is the rowid and has no index row.
                for col in &cols {
                    let pk: i64 = col.get("pk");
                    let name: String = col.get("name");
                    if pk == 1 && !keys.iter().any(|k: &Vec<String>| k.contains(&name)) {
                        keys.push(vec![name]);
                    }
                }
                Ok(Some(TableInfo {
                    columns: cols
                        .iter()
                        .map(|r| ColumnInfo {
                            name: r.get("name"),
                            sql_type: r.get("type"),
                        })
                        .collect(),
                    unique_keys: keys,
                    partitioned: false,
                }))
            }
        }
    }
}

fn group_keys(rows: impl Iterator<Item = (String, String)>) -> Vec<Vec<String>> {
    let mut keys: Vec<(String, Vec<String>)> = Vec::new();
    for (index, column) in rows {
        match keys.last_mut() {
            Some((name, cols)) if *name == index => cols.push(column),
            _ => keys.push((index, vec![column])),
        }
    }
    keys.into_iter().map(|(_, cols)| cols).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_types_map_to_kinds() {
        for (t, k) in [
            ("timestamp without time zone", Kind::Timestamp),
            ("numeric(5,2)", Kind::Number),
            ("real", Kind::Number),
            ("character varying(20)", Kind::Text),
            ("datetime(6)", Kind::Timestamp),
            ("float", Kind::Number),
            ("tinyint(1)", Kind::Bool),
            ("int(11)", Kind::Integer),
            ("jsonb", Kind::Json),
            ("VARCHAR(255)", Kind::Text),
            ("UNSIGNED BIG INT", Kind::Integer),
        ] {
            assert_eq!(kind_of_sql_type(t), Some(k), "{t}");
        }
        assert_eq!(kind_of_sql_type("uuid"), None);
        assert_eq!(kind_of_sql_type("bytea"), None);
    }

    #[test]
    fn keys_are_grouped_and_matched_as_sets() {
        let keys = group_keys(
            [
                ("PRIMARY", "id"),
                ("u", "dh"),
                ("u", "topic"),
                ("v", "msg_key"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned())),
        );
        assert_eq!(keys, vec![vec!["id"], vec!["dh", "topic"], vec!["msg_key"]]);
        let info = TableInfo {
            columns: vec![],
            unique_keys: keys,
            partitioned: false,
        };
        let id = |s: &str| Ident::new(s, "column").unwrap();
        assert!(info.has_unique_key(&[id("topic"), id("DH")]));
        assert!(!info.has_unique_key(&[id("dh")]));
        let stored = [id("dh"), id("topic"), id("temp")];
        assert_eq!(info.keys_within(&stored).count(), 1);
    }
}
