//! From one MQTT payload to one row: parse the JSON, follow each column's pointer, check the
//! value against the column's type (fixing untyped columns from the first value seen), and
//! compute the idempotency key. Pure: no I/O, no clock. A payload that cannot be turned into a
//! row yields a [`Rejection`] whose text goes into the dead-letter table.

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::mapping::{ColumnSpec, Kind};

/// One cell, ready to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL (a JSON `null`).
    Null,
    /// A double.
    Number(f64),
    /// A 64-bit integer.
    Integer(i64),
    /// Text.
    Text(String),
    /// A boolean.
    Bool(bool),
    /// JSON text.
    Json(String),
    /// An instant.
    Timestamp(OffsetDateTime),
}

impl Value {
    /// The kind this value has, `None` for NULL.
    pub fn kind(&self) -> Option<Kind> {
        Some(match self {
            Value::Null => return None,
            Value::Number(_) => Kind::Number,
            Value::Integer(_) => Kind::Integer,
            Value::Text(_) => Kind::Text,
            Value::Bool(_) => Kind::Bool,
            Value::Json(_) => Kind::Json,
            Value::Timestamp(_) => Kind::Timestamp,
        })
    }

    /// A stable text form, used to find duplicates inside a batch.
    pub fn key_text(&self) -> String {
        match self {
            Value::Null => "\u{0}null".into(),
            Value::Number(n) => format!("n{n:?}"),
            Value::Integer(n) => format!("i{n}"),
            Value::Text(s) => format!("t{s}"),
            Value::Bool(b) => format!("b{b}"),
            Value::Json(s) => format!("j{s}"),
            Value::Timestamp(t) => format!("s{}", t.unix_timestamp_nanos()),
        }
    }
}

/// Why a payload cannot be stored; the text goes into the dead-letter table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Not JSON (or not UTF-8).
    #[error("payload is not valid JSON: {0}")]
    NotJson(String),
    /// A mapped field is absent.
    #[error("field {pointer} (column {column}) is missing")]
    Missing {
        /// Column.
        column: String,
        /// Pointer.
        pointer: String,
    },
    /// A field has the wrong JSON type.
    #[error("field {pointer} (column {column}) must be {expected}, got {got}")]
    WrongType {
        /// Column.
        column: String,
        /// Pointer.
        pointer: String,
        /// What the column takes.
        expected: &'static str,
        /// What the payload had, abridged.
        got: String,
    },
    /// The database refused the row (a constraint or a value it cannot convert).
    #[error("the database refused the row: {0}")]
    Database(String),
}

/// The state of one mapped column while the sink runs: its spec and its settled type.
#[derive(Debug, Clone)]
pub struct Column {
    /// The spec.
    pub spec: ColumnSpec,
    /// The type: given, taken from an existing table, or settled by the first non-null value.
    pub kind: Option<Kind>,
    /// `--coerce`: a number or integer column also takes a string holding a number (`"23.5"`).
    pub coerce: bool,
}

impl Column {
    /// A column whose type is the spec's.
    pub fn new(spec: ColumnSpec) -> Column {
        let kind = spec.kind;
        Column {
            spec,
            kind,
            coerce: false,
        }
    }

    /// The same column with `--coerce` on or off.
    #[must_use]
    pub fn coerced(mut self, on: bool) -> Column {
        self.coerce = on;
        self
    }
}

/// `--coerce`: a JSON string holding a JSON number (surrounding spaces allowed), as that number.
fn number_in_string(col: &Column, v: &Json) -> Option<serde_json::Number> {
    let s = v.as_str().filter(|_| col.coerce)?.trim();
    match serde_json::from_str::<Json>(s).ok()? {
        Json::Number(n) => Some(n),
        _ => None,
    }
}

/// Turns `payload` into one value per column. Types of untyped columns are settled only when
/// the whole row is good, so a rejected payload never decides a column's type.
pub fn extract(columns: &mut [Column], payload: &[u8]) -> Result<Vec<Value>, Rejection> {
    let doc: Json = serde_json::from_slice(payload).map_err(|e| {
        let mut text = e.to_string();
        if std::str::from_utf8(payload).is_err() && e.is_syntax() {
            text.push_str(" (the payload is not UTF-8)");
        }
        Rejection::NotJson(text)
    })?;
    let mut values = Vec::with_capacity(columns.len());
    for col in columns.iter() {
        let found = doc
            .pointer(&col.spec.pointer)
            .ok_or_else(|| Rejection::Missing {
                column: col.spec.column.to_string(),
                pointer: pointer_shown(&col.spec.pointer),
            })?;
        values.push(convert(col, found)?);
    }
    for (col, v) in columns.iter_mut().zip(&values) {
        if col.kind.is_none() {
            col.kind = v.kind();
        }
    }
    Ok(values)
}

fn pointer_shown(p: &str) -> String {
    if p.is_empty() {
        "\"\" (the whole payload)".into()
    } else {
        format!("`{p}`")
    }
}

fn json_type(v: &Json) -> String {
    let shown = |s: String| {
        if s.chars().count() > 40 {
            format!("{}…", s.chars().take(40).collect::<String>())
        } else {
            s
        }
    };
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => format!("the boolean {b}"),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) => format!("the string {}", shown(format!("{s:?}"))),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
}

fn convert(col: &Column, v: &Json) -> Result<Value, Rejection> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let wrong = |expected: &'static str| Rejection::WrongType {
        column: col.spec.column.to_string(),
        pointer: pointer_shown(&col.spec.pointer),
        expected,
        got: json_type(v),
    };
    let Some(kind) = col.kind else {
        return Ok(match v {
            Json::Number(n) => Value::Number(n.as_f64().ok_or_else(|| wrong("a number"))?),
            Json::String(s) => Value::Text(s.clone()),
            Json::Bool(b) => Value::Bool(*b),
            other => Value::Json(other.to_string()),
        });
    };
    let coerced = matches!(kind, Kind::Number | Kind::Integer)
        .then(|| number_in_string(col, v).map(Json::Number))
        .flatten();
    let v = coerced.as_ref().unwrap_or(v);
    match kind {
        Kind::Number => v
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Value::Number)
            .ok_or_else(|| {
                wrong(if col.coerce {
                    "a number (or a string holding one)"
                } else {
                    "a number"
                })
            }),
        Kind::Integer => match v {
            Json::Number(n) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                })
                .map(Value::Integer)
                .ok_or_else(|| wrong("a whole number within 64 bits")),
            _ => Err(wrong("a whole number")),
        },
        Kind::Text => v
            .as_str()
            .map(|s| Value::Text(s.to_owned()))
            .ok_or_else(|| wrong("a string")),
        Kind::Bool => v
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| wrong("true or false")),
        Kind::Json => Ok(Value::Json(v.to_string())),
        Kind::Timestamp => parse_timestamp(v).map(Value::Timestamp).ok_or_else(|| {
            wrong("a timestamp (RFC 3339, \"YYYY-MM-DD HH:MM:SS\" in UTC, or Unix seconds)")
        }),
    }
}

/// RFC 3339 (`2026-11-24T10:00:00-03:00`), `YYYY-MM-DD HH:MM:SS[.fff]` or with `T` (UTC), or
/// Unix seconds as a number.
pub fn parse_timestamp(v: &Json) -> Option<OffsetDateTime> {
    match v {
        Json::Number(n) => {
            let secs = n.as_f64()?;
            if !secs.is_finite() {
                return None;
            }
            let nanos = (secs * 1e9).round();
            if nanos.abs() > 9.0e27 {
                return None;
            }
            OffsetDateTime::from_unix_timestamp_nanos(nanos as i128).ok()
        }
        Json::String(s) => {
            let s = s.trim();
            if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
                return Some(t);
            }
            let space = format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]"
            );
            let t_sep = format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
            );
            PrimitiveDateTime::parse(s, space)
                .or_else(|_| PrimitiveDateTime::parse(s, t_sep))
                .ok()
                .map(PrimitiveDateTime::assume_utc)
        }
        _ => None,
    }
}

/// The idempotency key of a message: the first 128 bits of SHA-256 over the topic's length,
/// the topic and the payload, as 32 hex digits.
pub fn msg_key(topic: &str, payload: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update((topic.len() as u64).to_le_bytes());
    h.update(topic.as_bytes());
    h.update(payload);
    let digest = h.finalize();
    let mut out = String::with_capacity(32);
    for b in &digest[..16] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cols(specs: &[&str]) -> Vec<Column> {
        specs
            .iter()
            .map(|s| Column::new(s.parse().unwrap()))
            .collect()
    }

    #[test]
    fn the_seed_payload_maps_to_two_values() {
        let mut c = cols(&["temperature=/Temperature", "data_hora=/Data Hora"]);
        let v = extract(
            &mut c,
            br#"{"Temperature": 21.5, "Data Hora": "2026-11-24 10:00:00"}"#,
        )
        .unwrap();
        assert_eq!(
            v,
            vec![
                Value::Number(21.5),
                Value::Text("2026-11-24 10:00:00".into())
            ]
        );
        assert_eq!(c[0].kind, Some(Kind::Number));
        assert_eq!(c[1].kind, Some(Kind::Text));
        let e = extract(&mut c, br#"{"Temperature": "hot", "Data Hora": "x"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "field `/Temperature` (column temperature) must be a number, got the string \"hot\""
        );
    }

    #[test]
    fn rejections_say_what_is_wrong() {
        let mut c = cols(&["t:number=/a/b"]);
        let e = extract(&mut c, b"{not json").unwrap_err().to_string();
        assert!(e.starts_with("payload is not valid JSON"), "{e}");
        let e = extract(&mut c, &[0xff, 0xfe]).unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
        let e = extract(&mut c, br#"{"a": {}}"#).unwrap_err().to_string();
        assert_eq!(e, "field `/a/b` (column t) is missing");
        assert_eq!(
            extract(&mut c, br#"{"a": {"b": null}}"#).unwrap(),
            vec![Value::Null]
        );
    }

    #[test]
    fn rejected_rows_do_not_settle_a_columns_type() {
        let mut c = cols(&["x=/x", "y:number=/y"]);
        assert!(extract(&mut c, br#"{"x": "text", "y": "bad"}"#).is_err());
        assert_eq!(c[0].kind, None);
        extract(&mut c, br#"{"x": 1, "y": 2}"#).unwrap();
        assert_eq!(c[0].kind, Some(Kind::Number));
        assert!(extract(&mut c, br#"{"x": "now text", "y": 2}"#).is_err());
    }

    #[test]
    fn typed_columns() {
        let mut c = cols(&["i:integer=/i", "b:bool=/b", "j:json=/j", "ts:timestamp=/ts"]);
        let v = extract(
            &mut c,
            br#"{"i": 7.0, "b": true, "j": {"k": [1]}, "ts": "2026-11-24 10:00:00.5"}"#,
        )
        .unwrap();
        assert_eq!(v[0], Value::Integer(7));
        assert_eq!(v[1], Value::Bool(true));
        assert_eq!(v[2], Value::Json(r#"{"k":[1]}"#.into()));
        let Value::Timestamp(t) = v[3] else { panic!() };
        assert_eq!(t.unix_timestamp(), 1_795_514_400);
        assert!(extract(&mut c, br#"{"i": 7.5, "b": true, "j": 1, "ts": 0}"#).is_err());
        let e = extract(&mut c, br#"{"i": 1, "b": true, "j": 1, "ts": "yesterday"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be a timestamp"), "{e}");
    }

    #[test]
    fn coerce_takes_numbers_sent_as_strings_in_number_columns_only() {
        let mut c: Vec<Column> = cols(&["t:number=/t", "n:integer=/n", "s:text=/s"])
            .into_iter()
            .map(|c| c.coerced(true))
            .collect();
        let v = extract(&mut c, br#"{"t": " 23.5 ", "n": "7", "s": "8"}"#).unwrap();
        assert_eq!(
            v,
            vec![
                Value::Number(23.5),
                Value::Integer(7),
                Value::Text("8".into())
            ]
        );
        let e = extract(&mut c, br#"{"t": "warm", "n": 1, "s": "x"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a number (or a string holding one)"), "{e}");
        let mut plain = cols(&["t:number=/t"]);
        assert!(extract(&mut plain, br#"{"t": "23.5"}"#).is_err());
    }

    #[test]
    fn timestamps_in_three_shapes() {
        let utc = parse_timestamp(&Json::from("2026-11-24T10:00:00Z")).unwrap();
        let off = parse_timestamp(&Json::from("2026-11-24T07:00:00-03:00")).unwrap();
        let naive = parse_timestamp(&Json::from("2026-11-24T10:00:00")).unwrap();
        let secs = parse_timestamp(&Json::from(1_795_514_400)).unwrap();
        assert_eq!(utc, off);
        assert_eq!(utc, naive);
        assert_eq!(utc, secs);
        assert!(parse_timestamp(&Json::from("24/11/2026")).is_none());
    }

    #[test]
    fn msg_key_separates_topic_from_payload() {
        assert_eq!(msg_key("a", b"bc").len(), 32);
        assert_ne!(msg_key("a", b"bc"), msg_key("ab", b"c"));
        assert_eq!(msg_key("t", b"p"), msg_key("t", b"p"));
    }

    proptest! {
        #[test]
        fn hostile_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut c = cols(&["a=/a", "b:timestamp=/b", "c:integer=/c/0"]);
            let _ = extract(&mut c, &payload);
        }

        #[test]
        fn any_json_text_value_round_trips_into_a_text_column(s in "\\PC{0,60}") {
            let mut c = cols(&["a:text=/a"]);
            let payload = serde_json::json!({"a": s}).to_string();
            prop_assert_eq!(extract(&mut c, payload.as_bytes()).unwrap(), vec![Value::Text(s)]);
        }
    }
}
