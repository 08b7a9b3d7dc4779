//! What goes into which column: `column[:type]=/json/pointer` specs (RFC 6901 pointers), the
//! built-in `esp32` preset from the seed, the optional topic / received-at / raw-payload
//! columns, the idempotency choice, and the JSON mapping file that can hold all of these.
//! Pure: parsing and validation only; reading the file is the caller's job.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::ident::{Ident, IdentError};

/// The SQL type family of a mapped column, and what JSON values it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A JSON number, stored as a double (`DOUBLE PRECISION`, `DOUBLE`, `REAL`).
    Number,
    /// A JSON number without a fraction that fits 64 bits (`BIGINT`, `INTEGER`).
    Integer,
    /// A JSON string, stored verbatim (`TEXT`).
    Text,
    /// `true` or `false` (`BOOLEAN`).
    Bool,
    /// Any JSON value, stored as its JSON text (`JSONB`, `JSON`, `TEXT`).
    Json,
    /// An instant: an RFC 3339 string, `YYYY-MM-DD HH:MM:SS[.fff]` (taken as UTC) or Unix
    /// seconds (`TIMESTAMPTZ`, `DATETIME(6)` in UTC, RFC 3339 `TEXT` in SQLite).
    Timestamp,
}

impl Kind {
    /// The name used in `--map col:TYPE=/ptr` and in the docs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Number => "number",
            Kind::Integer => "integer",
            Kind::Text => "text",
            Kind::Bool => "bool",
            Kind::Json => "json",
            Kind::Timestamp => "timestamp",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = MappingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "number" | "double" | "real" | "float" => Kind::Number,
            "integer" | "int" | "bigint" => Kind::Integer,
            "text" | "string" => Kind::Text,
            "bool" | "boolean" => Kind::Bool,
            "json" => Kind::Json,
            "timestamp" | "timestamptz" | "datetime" => Kind::Timestamp,
            _ => return Err(MappingError::UnknownType(s.to_owned())),
        })
    }
}

/// One mapped column: where its value is in the payload and, if given, its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    /// Column name.
    pub column: Ident,
    /// RFC 6901 JSON pointer (`""` is the whole document).
    pub pointer: String,
    /// The type; `None` means "from the first value seen" (number, text, bool or json).
    pub kind: Option<Kind>,
}

impl FromStr for ColumnSpec {
    type Err = MappingError;

    /// Parses `column[:type]=/json/pointer`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((left, pointer)) = s.split_once('=') else {
            return Err(MappingError::Spec(format!(
                "`{s}` is not a mapping: write COLUMN=/json/pointer, e.g. temperature=/Temperature"
            )));
        };
        let (name, kind) = match left.split_once(':') {
            Some((n, k)) => (n.trim(), Some(k.trim().parse::<Kind>()?)),
            None => (left.trim(), None),
        };
        let column = Ident::new(name, "column")?;
        check_pointer(pointer)?;
        Ok(ColumnSpec {
            column,
            pointer: pointer.to_owned(),
            kind,
        })
    }
}

/// Checks RFC 6901 syntax: empty, or `/`-separated tokens where `~` is only `~0` or `~1`.
fn check_pointer(p: &str) -> Result<(), MappingError> {
    if !p.is_empty() && !p.starts_with('/') {
        return Err(MappingError::Pointer {
            pointer: p.to_owned(),
            why: "it must start with `/` (e.g. /Temperature, or \"/Data Hora\")",
        });
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(MappingError::Pointer {
                pointer: p.to_owned(),
                why: "`~` must be followed by 0 (for `~`) or 1 (for `/`)",
            });
        }
    }
    Ok(())
}

/// How redelivered messages are made harmless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dedup {
    /// A `msg_key` column holding a hash of topic and payload, unique: a message delivered
    /// twice is stored once (and so are two identical payloads on one topic).
    Hash,
    /// A unique constraint over these columns (e.g. the device's timestamp).
    Columns(Vec<Ident>),
    /// Plain inserts: a redelivery after a crash or reconnect adds a second row.
    None,
}

impl FromStr for Dedup {
    type Err = MappingError;

    /// `hash`, `none`, or `columns=a,b`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hash" => Ok(Dedup::Hash),
            "none" => Ok(Dedup::None),
            _ => match s.strip_prefix("columns=") {
                Some(list) if !list.is_empty() => Ok(Dedup::Columns(
                    list.split(',')
                        .map(|c| Ident::new(c.trim(), "dedup column"))
                        .collect::<Result<_, _>>()?,
                )),
                _ => Err(MappingError::Spec(format!(
                    "`{s}` is not a dedup mode: use hash, none or columns=COL[,COL...]"
                ))),
            },
        }
    }
}

/// Everything about the target table's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Columns filled from the payload, in table order.
    pub columns: Vec<ColumnSpec>,
    /// Column for the message topic, if stored.
    pub topic_column: Option<Ident>,
    /// Column for the time the sink received the message, if stored.
    pub received_at_column: Option<Ident>,
    /// Column for the raw payload text, if stored.
    pub payload_column: Option<Ident>,
    /// Idempotency.
    pub dedup: Dedup,
}

/// Columns the sink adds itself; mapped columns may not use these names.
pub const RESERVED: &[&str] = &["id", "msg_key"];

/// A bad mapping: names the spec, column, pointer or file key and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    /// Bad `--map` syntax.
    #[error("{0}")]
    Spec(String),
    /// Bad identifier.
    #[error(transparent)]
    Ident(#[from] IdentError),
    /// Unknown `:type`.
    #[error("unknown column type `{0}`: use number, integer, text, bool, json or timestamp")]
    UnknownType(String),
    /// Bad JSON pointer.
    #[error("JSON pointer `{pointer}` is not valid: {why}")]
    Pointer {
        /// The pointer.
        pointer: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Two columns with one name.
    #[error("column `{0}` appears twice (column names are compared without regard to case)")]
    Duplicate(String),
    /// A name the sink uses itself.
    #[error("column `{0}` is reserved for the sink's own use; pick another name")]
    Reserved(String),
    /// Nothing to store.
    #[error(
        "no columns mapped: pass --map COLUMN=/json/pointer (repeatable), --mapping FILE or --preset esp32"
    )]
    Empty,
    /// `--dedup columns=` names a column that is not stored.
    #[error("dedup column `{0}` is not one of the stored columns")]
    UnknownDedupColumn(String),
    /// Unknown preset.
    #[error("unknown preset `{0}`: the built-in one is `esp32`")]
    UnknownPreset(String),
    /// The mapping file is not what was expected.
    #[error("mapping file: {0}")]
    File(String),
}

impl Mapping {
    /// The seed's mapping: `{"Temperature": 21.5, "Data Hora": "..."}` into
    /// `temperature` (number) and `data_hora` (text).
    pub fn esp32_columns() -> Vec<ColumnSpec> {
        vec![
            ColumnSpec {
                column: Ident::known("temperature"),
                pointer: "/Temperature".into(),
                kind: Some(Kind::Number),
            },
            ColumnSpec {
                column: Ident::known("data_hora"),
                pointer: "/Data Hora".into(),
                kind: Some(Kind::Text),
            },
        ]
    }

    /// The columns of a named preset.
    pub fn preset(name: &str) -> Result<Vec<ColumnSpec>, MappingError> {
        match name {
            "esp32" => Ok(Self::esp32_columns()),
            other => Err(MappingError::UnknownPreset(other.to_owned())),
        }
    }

    /// Every stored column name in insert order (mapped, then topic, received-at, payload).
    pub fn stored_columns(&self) -> impl Iterator<Item = &Ident> {
        self.columns
            .iter()
            .map(|c| &c.column)
            .chain(self.topic_column.iter())
            .chain(self.received_at_column.iter())
            .chain(self.payload_column.iter())
    }

    /// Checks names: something mapped, no duplicates, nothing reserved, dedup columns known.
    pub fn validate(&self) -> Result<(), MappingError> {
        if self.columns.is_empty() {
            return Err(MappingError::Empty);
        }
        let mut seen: Vec<&Ident> = Vec::new();
        for c in self.stored_columns() {
            if RESERVED.iter().any(|r| c.same_as(r)) {
                return Err(MappingError::Reserved(c.to_string()));
            }
            if seen.iter().any(|s| s.same_as(c.as_str())) {
                return Err(MappingError::Duplicate(c.to_string()));
            }
            seen.push(c);
        }
        if let Dedup::Columns(cols) = &self.dedup {
            for d in cols {
                if !seen.iter().any(|s| s.same_as(d.as_str())) {
                    return Err(MappingError::UnknownDedupColumn(d.to_string()));
                }
            }
        }
        Ok(())
    }
}

/// The mapping file (JSON). Every key is optional; flags given on the command line win.
///
/// ```json
/// {
///   "table": "readings",
///   "columns": [
///     {"column": "temperature", "pointer": "/Temperature", "type": "number"},
///     "data_hora:text=/Data Hora"
///   ],
///   "topic_column": "topic",
///   "received_at_column": "received_at",
///   "payload_column": "payload",
///   "dedup": "hash"
/// }
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    /// Target table.
    pub table: Option<String>,
    /// Mapped columns, as objects or as `col[:type]=/ptr` strings.
    #[serde(default)]
    pub columns: Vec<FileColumn>,
    /// Column for the topic.
    pub topic_column: Option<String>,
    /// Column for the receive time.
    pub received_at_column: Option<String>,
    /// Column for the raw payload.
    pub payload_column: Option<String>,
    /// `hash`, `none` or `columns=a,b`.
    pub dedup: Option<String>,
}

/// One column in a mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileColumn {
    /// `"col[:type]=/ptr"`.
    Spec(String),
    /// `{"column": .., "pointer": .., "type": ..}`.
    Object {
        /// Column name.
        column: String,
        /// JSON pointer.
        pointer: String,
        /// Optional type.
        #[serde(rename = "type")]
        kind: Option<String>,
    },
}

impl MappingFile {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<MappingFile, MappingError> {
        serde_json::from_str(text).map_err(|e| {
            MappingError::File(format!(
                "{e}; expected a JSON object with keys table, columns, topic_column, received_at_column, payload_column, dedup"
            ))
        })
    }

    /// The column specs, validated.
    pub fn column_specs(&self) -> Result<Vec<ColumnSpec>, MappingError> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let spec = match c {
                    FileColumn::Spec(s) => s.parse(),
                    FileColumn::Object {
                        column,
                        pointer,
                        kind,
                    } => {
                        check_pointer(pointer)?;
                        Ok(ColumnSpec {
                            column: Ident::new(column, "column")?,
                            pointer: pointer.clone(),
                            kind: kind.as_deref().map(str::parse).transpose()?,
                        })
                    }
                };
                spec.map_err(|e| MappingError::File(format!("columns[{i}]: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_column_specs_with_spaces_and_types() {
        let s: ColumnSpec = "data_hora=/Data Hora".parse().unwrap();
        assert_eq!(s.column.as_str(), "data_hora");
        assert_eq!(s.pointer, "/Data Hora");
        assert_eq!(s.kind, None);
        let s: ColumnSpec = "t:number=/a~1b".parse().unwrap();
        assert_eq!(s.kind, Some(Kind::Number));
        assert_eq!(s.pointer, "/a~1b");
    }

    #[test]
    fn rejects_bad_specs_naming_the_problem() {
        let e = "temperature".parse::<ColumnSpec>().unwrap_err().to_string();
        assert!(e.contains("COLUMN=/json/pointer"), "{e}");
        let e = "t=Temperature"
            .parse::<ColumnSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("must start with `/`"), "{e}");
        let e = "t=/a~2".parse::<ColumnSpec>().unwrap_err().to_string();
        assert!(e.contains('~'), "{e}");
        let e = "t:decimal=/a"
            .parse::<ColumnSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown column type `decimal`"), "{e}");
        let e = "x;drop table y=/a"
            .parse::<ColumnSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("column name `x;drop table y`"), "{e}");
    }

    #[test]
    fn dedup_modes() {
        assert_eq!("hash".parse::<Dedup>().unwrap(), Dedup::Hash);
        assert_eq!("none".parse::<Dedup>().unwrap(), Dedup::None);
        let Dedup::Columns(c) = "columns=topic,data_hora".parse::<Dedup>().unwrap() else {
            panic!()
        };
        assert_eq!(c.len(), 2);
        assert!("columns=".parse::<Dedup>().is_err());
        assert!("sometimes".parse::<Dedup>().is_err());
    }

    fn mapping(cols: &[&str]) -> Mapping {
        Mapping {
            columns: cols.iter().map(|c| c.parse().unwrap()).collect(),
            topic_column: Some(Ident::new("topic", "column").unwrap()),
            received_at_column: None,
            payload_column: None,
            dedup: Dedup::Hash,
        }
    }

    #[test]
    fn validation_catches_duplicates_reserved_and_unknown_dedup_columns() {
        assert!(mapping(&["a=/a", "b=/b"]).validate().is_ok());
        assert_eq!(
            mapping(&["a=/a", "A=/b"]).validate(),
            Err(MappingError::Duplicate("A".into()))
        );
        assert_eq!(
            mapping(&["topic=/t"]).validate(),
            Err(MappingError::Duplicate("topic".into()))
        );
        assert_eq!(
            mapping(&["msg_key=/k"]).validate(),
            Err(MappingError::Reserved("msg_key".into()))
        );
        assert_eq!(mapping(&[]).validate(), Err(MappingError::Empty));
        let mut m = mapping(&["a=/a"]);
        m.dedup = "columns=a,topic".parse().unwrap();
        assert!(m.validate().is_ok());
        m.dedup = "columns=zz".parse().unwrap();
        assert_eq!(
            m.validate(),
            Err(MappingError::UnknownDedupColumn("zz".into()))
        );
    }

    #[test]
    fn esp32_preset_is_the_seed_mapping() {
        let cols = Mapping::preset("esp32").unwrap();
        assert_eq!(cols[0].pointer, "/Temperature");
        assert_eq!(cols[1].pointer, "/Data Hora");
        assert!(Mapping::preset("esp8266").is_err());
    }

    #[test]
    fn mapping_file_accepts_objects_and_strings() {
        let f = MappingFile::parse(
            r#"{"table": "t", "columns": [
                {"column": "temperature", "pointer": "/Temperature", "type": "number"},
                "data_hora=/Data Hora"], "dedup": "none"}"#,
        )
        .unwrap();
        let cols = f.column_specs().unwrap();
        assert_eq!(cols.len(), 2);
        assert_eq!(cols[0].kind, Some(Kind::Number));
        let e = MappingFile::parse(r#"{"colums": []}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("colums"), "{e}");
        let f = MappingFile::parse(r#"{"columns": ["bad"]}"#).unwrap();
        let e = f.column_specs().unwrap_err().to_string();
        assert!(e.contains("columns[0]"), "{e}");
    }
}
