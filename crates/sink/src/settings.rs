//! Stage two of the command line: the raw values the binary parsed (strings, paths, numbers)
//! resolved into a [`SinkConfig`]: the mapping file read and merged with the preset and the
//! `--map` flags, names validated, the database URL resolved with its TLS mode and password
//! (`db::url`).
//! Precedence: a flag wins over the mapping file, which wins over the preset; columns from
//! all three are combined (a name used twice is an error).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{SinkConfig, SinkError, dead_letter_name};
pub use crate::db::DbPassword;
use crate::db::{DbAccess, DbTls, DbUrl};
use crate::ident::Ident;
use crate::mapping::{ColumnSpec, Dedup, Kind, Mapping, MappingError, MappingFile};
use crate::partition::{Every, Partitioning};

/// What the command line gave, before resolution.
#[derive(Debug, Clone, Default)]
pub struct RawSettings {
    /// `--db` (default `sqlite://readings.db`).
    pub db: Option<String>,
    /// `--db-password-env` / `--db-password-file`.
    pub db_password: Option<DbPassword>,
    /// `--db-tls` (disable, require, verify-ca, verify-full).
    pub db_tls: Option<String>,
    /// `--db-cafile`.
    pub db_cafile: Option<PathBuf>,
    /// `--table`.
    pub table: Option<String>,
    /// `--dead-letter-table`.
    pub dead_letter_table: Option<String>,
    /// `--map` specs.
    pub maps: Vec<String>,
    /// `--mapping FILE`.
    pub mapping_file: Option<PathBuf>,
    /// `--preset`.
    pub preset: Option<String>,
    /// `--store-topic[=COL]`.
    pub store_topic: Option<String>,
    /// `--store-received-at[=COL]`.
    pub store_received_at: Option<String>,
    /// `--store-raw[=COL]`.
    pub store_raw: Option<String>,
    /// `--dedup`.
    pub dedup: Option<String>,
    /// `--create-table`.
    pub create_table: bool,
    /// `--coerce`.
    pub coerce: bool,
    /// `--share GROUP`.
    pub share: Option<String>,
    /// `--partition-by day|month`.
    pub partition_by: Option<String>,
    /// `--partition-column COL` (default: the one mapped timestamp column).
    pub partition_column: Option<String>,
    /// `--topic` filters.
    pub topics: Vec<String>,
    /// `--batch`.
    pub batch: usize,
    /// `--batch-ms`.
    pub batch_ms: u64,
    /// `--count`.
    pub count: Option<u64>,
    /// `--duration` in seconds.
    pub duration_s: Option<f64>,
    /// `--drain-timeout` in seconds.
    pub drain_s: u64,
    /// `--retry-max` in seconds.
    pub retry_max_s: u64,
    /// `--progress` in seconds (0: off).
    pub progress_s: u64,
    /// `--writers` (0: automatic).
    pub writers: usize,
}

/// The default database when `--db` is absent.
pub const DEFAULT_DB: &str = "sqlite://readings.db";
/// The default table.
pub const DEFAULT_TABLE: &str = "readings";
/// The topic the `esp32` preset listens on when no `--topic` is given.
pub const ESP32_TOPIC: &str = "esp32/pub";

fn optional_ident(name: Option<&str>, what: &'static str) -> Result<Option<Ident>, SinkError> {
    Ok(name.map(|n| Ident::new(n, what)).transpose()?)
}

impl RawSettings {
    /// Resolves into a configuration, reading the mapping file and the password.
    pub fn resolve(self) -> Result<SinkConfig, SinkError> {
        let file = match &self.mapping_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    SinkError::Config(format!(
                        "cannot read the mapping file `{}`: {e}",
                        path.display()
                    ))
                })?;
                let wrap = |e: MappingError| {
                    SinkError::Config(format!("mapping file `{}`: {e}", path.display()))
                };
                let parsed = MappingFile::parse(&text).map_err(wrap)?;
                Some((parsed.column_specs().map_err(wrap)?, parsed))
            }
            None => None,
        };
        let mut columns: Vec<ColumnSpec> = match &self.preset {
            Some(p) => Mapping::preset(p)?,
            None => Vec::new(),
        };
        if let Some((cols, _)) = &file {
            columns.extend(cols.iter().cloned());
        }
        for m in &self.maps {
            columns.push(
                m.parse()
                    .map_err(|e: MappingError| SinkError::Config(format!("--map `{m}`: {e}")))?,
            );
        }
        let f = file.as_ref().map(|(_, f)| f);
        let pick = |flag: &Option<String>, from_file: Option<&Option<String>>| {
            flag.clone().or_else(|| from_file.and_then(Clone::clone))
        };
        let dedup_text = pick(&self.dedup, f.map(|f| &f.dedup));
        let dedup_given = dedup_text.is_some();
        let dedup: Dedup = dedup_text.as_deref().unwrap_or("hash").parse()?;
        let mapping = Mapping {
            columns,
            topic_column: optional_ident(
                pick(&self.store_topic, f.map(|f| &f.topic_column)).as_deref(),
                "topic column",
            )?,
            received_at_column: optional_ident(
                pick(&self.store_received_at, f.map(|f| &f.received_at_column)).as_deref(),
                "received-at column",
            )?,
            payload_column: optional_ident(
                pick(&self.store_raw, f.map(|f| &f.payload_column)).as_deref(),
                "payload column",
            )?,
            dedup,
        };
        mapping.validate()?;
        let table_name =
            pick(&self.table, f.map(|f| &f.table)).unwrap_or_else(|| DEFAULT_TABLE.to_owned());
        let table = Ident::new(&table_name, "table")?;
        let dead_letter_table = match &self.dead_letter_table {
            Some(n) => Ident::new(n, "dead-letter table")?,
            None => dead_letter_name(&table),
        };
        if dead_letter_table.same_as(table.as_str()) {
            return Err(SinkError::Config(
                "--dead-letter-table must differ from --table".into(),
            ));
        }
        let tls = self
            .db_tls
            .as_deref()
            .map(str::parse::<DbTls>)
            .transpose()
            .map_err(|e| SinkError::Config(format!("--db-tls: {e}")))?;
        let access = DbAccess {
            tls,
            cafile: self.db_cafile.clone(),
            password: self.db_password.clone(),
        };
        let db = DbUrl::resolve(self.db.as_deref().unwrap_or(DEFAULT_DB), &access)?;
        let topics = if self.topics.is_empty() && self.preset.as_deref() == Some("esp32") {
            vec![ESP32_TOPIC.to_owned()]
        } else {
            self.topics
        };
        let partition = match &self.partition_by {
            None if self.partition_column.is_some() => {
                return Err(SinkError::Config(
                    "--partition-column needs --partition-by day|month".into(),
                ));
            }
            None => None,
            Some(every) => {
                if !self.create_table {
                    return Err(SinkError::Config(
                        "--partition-by describes a table the sink creates: add --create-table"
                            .into(),
                    ));
                }
                let every: Every = every
                    .parse()
                    .map_err(|e| SinkError::Config(format!("--partition-by: {e}")))?;
                let column = if let Some(c) = &self.partition_column {
                    Ident::new(c, "partition column")?
                } else {
                    let mut times = mapping
                        .columns
                        .iter()
                        .filter(|c| c.kind == Some(Kind::Timestamp));
                    match (times.next(), times.next()) {
                        (Some(c), None) => c.column.clone(),
                        _ => {
                            return Err(SinkError::Config(
                                "--partition-by needs one mapped timestamp column (`--map col:timestamp=/pointer`); with several, name one with --partition-column".into(),
                            ));
                        }
                    }
                };
                Some(Partitioning { every, column })
            }
        };
        let mut config = SinkConfig::new(db, table, mapping, topics);
        config.dedup_given = dedup_given;
        config.coerce = self.coerce;
        config.share.clone_from(&self.share);
        config.partition = partition;
        config.dead_letter_table = dead_letter_table;
        config.create_table = self.create_table;
        config.batch_rows = self.batch;
        config.batch_age = Duration::from_millis(self.batch_ms);
        config.count = self.count;
        config.duration = match self.duration_s {
            Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s.min(1e9))),
            Some(s) => {
                return Err(SinkError::Config(format!(
                    "--duration {s} is not a positive number of seconds"
                )));
            }
            None => None,
        };
        config.drain_timeout = Duration::from_secs(self.drain_s);
        config.retry_max = Duration::from_secs(self.retry_max_s.max(1));
        config.progress_every = (self.progress_s > 0).then(|| Duration::from_secs(self.progress_s));
        config.writers = self.writers;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawSettings {
        RawSettings {
            batch: 1000,
            batch_ms: 100,
            ..RawSettings::default()
        }
    }

    #[test]
    fn example_mapping_files_resolve() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs/mqtt-sink");
        for (file, table) in [
            ("esp32.json", "readings"),
            ("esp32-timestamptz.json", "temperature"),
        ] {
            let c = RawSettings {
                mapping_file: Some(dir.join(file)),
                ..raw()
            }
            .resolve()
            .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(c.table.as_str(), table);
            assert_eq!(c.mapping.columns.len(), 2);
        }
    }

    #[test]
    fn preset_alone_gives_the_seed_setup() {
        let c = RawSettings {
            preset: Some("esp32".into()),
            ..raw()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.topics, vec!["esp32/pub"]);
        assert_eq!(c.table.as_str(), "readings");
        assert_eq!(c.dead_letter_table.as_str(), "readings_dead_letters");
        assert_eq!(c.db.to_string(), "sqlite://readings.db");
        assert_eq!(c.mapping.columns.len(), 2);
        assert_eq!(c.mapping.dedup, Dedup::Hash);
    }

    #[test]
    fn file_and_flags_combine_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        std::fs::write(
            &path,
            r#"{"table": "from_file", "columns": ["a:number=/a"], "topic_column": "topic", "dedup": "none"}"#,
        )
        .unwrap();
        let c = RawSettings {
            mapping_file: Some(path.clone()),
            maps: vec!["b=/b".into()],
            table: Some("from_flag".into()),
            topics: vec!["x/#".into()],
            ..raw()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.table.as_str(), "from_flag");
        assert_eq!(c.mapping.columns.len(), 2);
        assert_eq!(c.mapping.dedup, Dedup::None);
        assert_eq!(c.mapping.topic_column.as_ref().unwrap().as_str(), "topic");
        std::fs::write(&path, r#"{"columns": [{"column": "a", "pointer": "a"}]}"#).unwrap();
        let e = RawSettings {
            mapping_file: Some(path),
            ..raw()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("m.json") && e.contains("must start with `/`"),
            "{e}"
        );
    }

    #[test]
    fn bad_names_and_missing_password_variable_are_usage_errors() {
        let e = RawSettings {
            maps: vec!["a=/a".into()],
            table: Some("readings; drop table x".into()),
            ..raw()
        }
        .resolve()
        .unwrap_err();
        assert!(e.is_usage());
        assert!(e.to_string().contains("table name"), "{e}");
        let e = RawSettings {
            maps: vec!["a=/a".into()],
            db: Some("postgres://u@h/db".into()),
            db_password: Some(DbPassword::Env("EDGEWIRE_SINK_TEST_UNSET_VAR".into())),
            ..raw()
        }
        .resolve()
        .unwrap_err();
        assert!(
            e.to_string().contains("EDGEWIRE_SINK_TEST_UNSET_VAR"),
            "{e}"
        );
    }
}
