//! The device template's attributes as `sync` delivers them (`att`): plain attributes (`p` empty,
//! the tag on each child) and object attributes (`p` = the object's name, the tag on the group),
//! their data types, validation strings (`dv`), tumbling windows (`tw`) and aggregate bitmasks
//! (`agt`). Types only, plus the parsers for `dv`, `tw` and `agt`; no I/O.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Message-1.0 data types (`dt`): `0 NUMBER, 1 STRING, 2 OBJECT, 3 FLOAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataType {
    /// 0: integer or decimal.
    #[default]
    Number,
    /// 1: text.
    String,
    /// 2: an object attribute's group type.
    Object,
    /// 3: decimal (validated like NUMBER; the Python SDK wrongly marks every FLOAT faulty).
    Float,
    /// Any other code: not judged, passed through as good.
    Other(i64),
}

impl DataType {
    /// The wire code.
    pub fn code(self) -> i64 {
        match self {
            DataType::Number => 0,
            DataType::String => 1,
            DataType::Object => 2,
            DataType::Float => 3,
            DataType::Other(n) => n,
        }
    }

    /// From the wire code.
    pub fn from_code(n: i64) -> Self {
        match n {
            0 => DataType::Number,
            1 => DataType::String,
            2 => DataType::Object,
            3 => DataType::Float,
            n => DataType::Other(n),
        }
    }

    /// The name `GetAttributes` shows.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Number => "NUMBER",
            DataType::String => "STRING",
            DataType::Object => "OBJECT",
            DataType::Float => "FLOAT",
            DataType::Other(_) => "UNKNOWN",
        }
    }

    /// NUMBER or FLOAT: the values edge devices aggregate.
    pub fn is_numeric(self) -> bool {
        matches!(self, DataType::Number | DataType::Float)
    }
}

impl Serialize for DataType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.code())
    }
}

impl<'de> Deserialize<'de> for DataType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Numbers as sent by the platform; names and numeric strings are accepted too.
        match Value::deserialize(d)? {
            Value::Number(n) => n.as_i64().map(DataType::from_code).ok_or_else(|| {
                serde::de::Error::custom(format!("data type `{n}` is not an integer"))
            }),
            Value::String(s) => match s.trim().to_ascii_uppercase().as_str() {
                "NUMBER" => Ok(DataType::Number),
                "STRING" => Ok(DataType::String),
                "OBJECT" => Ok(DataType::Object),
                "FLOAT" => Ok(DataType::Float),
                other => other
                    .parse::<i64>()
                    .map(DataType::from_code)
                    .map_err(|_| serde::de::Error::custom(format!("unknown data type `{s}`"))),
            },
            Value::Null => Ok(DataType::Number),
            other => Err(serde::de::Error::custom(format!(
                "data type must be a number, got {other}"
            ))),
        }
    }
}

/// The aggregate functions of an edge attribute (`agt`): min 1, max 2, sum 4, avg 8, count 16,
/// last value 32. Results are always written in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Agt(pub u8);

impl Agt {
    /// Minimum.
    pub const MIN: u8 = 1;
    /// Maximum.
    pub const MAX: u8 = 2;
    /// Sum.
    pub const SUM: u8 = 4;
    /// Average (sum / count).
    pub const AVG: u8 = 8;
    /// Number of values.
    pub const COUNT: u8 = 16;
    /// Last value.
    pub const LAST: u8 = 32;
    /// All six.
    pub const ALL: Agt = Agt(63);

    /// Whether `bit` is selected.
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

impl Serialize for Agt {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for Agt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = match Value::deserialize(d)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n <= 63 => Ok(Agt(n as u8)),
            _ => Err(serde::de::Error::custom(
                "agt must be a bitmask from 0 to 63 (min 1, max 2, sum 4, avg 8, count 16, lv 32)",
            )),
        }
    }
}

/// One attribute (`att[].d[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeDef {
    /// Local name: the key in the device's data.
    pub ln: String,
    /// Data type.
    #[serde(default)]
    pub dt: DataType,
    /// Validation: comma list of exact values and `a to b` ranges; empty means anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dv: Option<String>,
    /// Device tag this attribute belongs to (gateways: one tag per child kind).
    #[serde(default)]
    pub tg: String,
    /// Tumbling window of an edge attribute, e.g. `10s`, `5m`, `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tw: Option<String>,
    /// Aggregates of an edge attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agt: Option<Agt>,
    /// Sequence (display order); kept as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sq: Option<Value>,
}

/// One entry of `att`: plain attributes (`p` empty) or one object attribute (`p` its name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeGroup {
    /// Object name, or empty for plain attributes.
    #[serde(default)]
    pub p: String,
    /// The object's device tag (plain attributes carry theirs on each child).
    #[serde(default)]
    pub tg: String,
    /// The group's type (OBJECT for object attributes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dt: Option<DataType>,
    /// The object attribute's tumbling window (message 1.0 puts it on the group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tw: Option<String>,
    /// The object attribute's aggregates (used when a child has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agt: Option<Agt>,
    /// The attributes.
    #[serde(default)]
    pub d: Vec<AttributeDef>,
}

impl AttributeGroup {
    /// Whether this is an object attribute.
    pub fn is_object(&self) -> bool {
        !self.p.is_empty()
    }
}

/// One item of a `dv` list.
#[derive(Debug, Clone, PartialEq)]
pub enum DvItem {
    /// `a to b`, inclusive.
    Range(f64, f64),
    /// An exact value (compared as a number for NUMBER/FLOAT, as text for STRING).
    Exact(String),
}

/// Parses a `dv` string; `None` or blank means "no restriction" (an empty list).
pub fn parse_dv(dv: Option<&str>) -> Vec<DvItem> {
    let Some(dv) = dv else { return Vec::new() };
    if dv.trim().is_empty() {
        return Vec::new();
    }
    dv.split(',')
        .map(|item| {
            let item = item.trim();
            if let Some((a, b)) = item.split_once(" to ").or_else(|| item.split_once("to"))
                && let (Ok(a), Ok(b)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>())
            {
                return DvItem::Range(a.min(b), a.max(b));
            }
            DvItem::Exact(item.to_owned())
        })
        .collect()
}

/// Why a tumbling window is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "attribute `{attribute}`: tumbling window `{tw}` is not valid; expected a number from 1 to 999 followed by s, m or h (e.g. `10s`)"
)]
pub struct TwError {
    /// The attribute (`name` or `object.name`).
    pub attribute: String,
    /// What the template said.
    pub tw: String,
}

/// Parses a tumbling window (`10s`, `5m`, `1h`; 1 to 999 units).
pub fn parse_tw(attribute: &str, tw: Option<&str>) -> Result<Duration, TwError> {
    let raw = tw.unwrap_or("").trim();
    let err = || TwError {
        attribute: attribute.to_owned(),
        tw: raw.to_owned(),
    };
    let unit = raw.chars().last().ok_or_else(err)?;
    let n: u64 = raw[..raw.len() - unit.len_utf8()]
        .trim()
        .parse()
        .map_err(|_| err())?;
    if !(1..=999).contains(&n) {
        return Err(err());
    }
    let secs = match unit {
        's' | 'S' => n,
        'm' | 'M' => n * 60,
        'h' | 'H' => n * 3600,
        _ => return Err(err()),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dv_lists_mix_ranges_and_exact_values() {
        assert_eq!(
            parse_dv(Some("10 to 20, 30,-5 to -1")),
            vec![
                DvItem::Range(10.0, 20.0),
                DvItem::Exact("30".into()),
                DvItem::Range(-5.0, -1.0)
            ]
        );
        assert!(parse_dv(Some("  ")).is_empty());
        assert!(parse_dv(None).is_empty());
        assert_eq!(
            parse_dv(Some("on,off")),
            vec![DvItem::Exact("on".into()), DvItem::Exact("off".into())]
        );
    }

    #[test]
    fn tumbling_windows() {
        assert_eq!(parse_tw("t", Some("10s")), Ok(Duration::from_secs(10)));
        assert_eq!(parse_tw("t", Some("2m")), Ok(Duration::from_secs(120)));
        assert_eq!(parse_tw("t", Some("1h")), Ok(Duration::from_secs(3600)));
        for bad in ["", "s", "0s", "1000s", "10x", "ten s", "1é"] {
            let e = parse_tw("temp", Some(bad)).unwrap_err();
            assert!(e.to_string().contains("temp"), "{e}");
        }
        assert!(parse_tw("t", None).is_err());
    }

    #[test]
    fn data_types_and_agt_from_json() {
        let d: AttributeDef =
            serde_json::from_str(r#"{"ln":"t","dt":3,"dv":null,"tg":"","agt":"63","tw":"5s"}"#)
                .unwrap();
        assert_eq!(d.dt, DataType::Float);
        assert_eq!(d.agt, Some(Agt::ALL));
        let d: AttributeDef = serde_json::from_str(r#"{"ln":"t","dt":"STRING"}"#).unwrap();
        assert_eq!(d.dt, DataType::String);
        assert!(serde_json::from_str::<AttributeDef>(r#"{"ln":"t","agt":64}"#).is_err());
        assert_eq!(DataType::from_code(9), DataType::Other(9));
    }
}
