//! Device meta: the list a device publishes on `devices/(:id)/meta` and the single value the
//! platform relays on `devices/(:id)/meta/(:name)`, both directions side by side, plus the meta
//! name rule and value checks. The device encodes lists and decodes single values; the platform
//! side decodes lists and encodes single values. Pure: no I/O, no clock, no panics.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::{
    NameProblem, PayloadError, check_timestamp, extra_fields, kind_of, opt_string, parse_json,
};
use super::meta_types::known_type;

/// Longest meta name (the `maxLength` in the documentation's rejected-message example).
pub const NAME_MAX_LEN: usize = 100;

/// The rule as the documentation writes it.
pub const NAME_PATTERN: &str = "^(~?)(?!.*__.*)[a-z][a-z0-9_]+$";

/// Checks a meta name against `^(~?)(?!.*__.*)[a-z][a-z0-9_]+$` (and at most 100 characters):
/// an optional leading `~`, then a lowercase letter and at least one more of `a-z0-9_`, never
/// two underscores in a row.
pub fn check_name(name: &str) -> Result<(), NameProblem> {
    if name.chars().count() > NAME_MAX_LEN {
        return Err(NameProblem::TooLong);
    }
    let rest = name.strip_prefix('~').unwrap_or(name);
    let mut chars = rest.chars();
    match chars.next() {
        Some('a'..='z') => {}
        Some(_) => return Err(NameProblem::BadStart),
        None => return Err(NameProblem::TooShort),
    }
    if let Some(c) = chars
        .clone()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_'))
    {
        return Err(NameProblem::BadChar(c));
    }
    if rest.contains("__") {
        return Err(NameProblem::DoubleUnderscore);
    }
    if chars.next().is_none() {
        return Err(NameProblem::TooShort);
    }
    Ok(())
}

/// One entry of a device's meta list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetaEntry {
    /// Meta name, e.g. `temperature`.
    pub name: String,
    /// Its value (type per the meta definition).
    pub value: Value,
    /// Display name, e.g. `Temperature`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Unit, a free display string, e.g. `C`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_of_measure: Option<String>,
    /// When measured, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Other fields, kept as received.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

const ENTRY_FIELDS: [&str; 5] = [
    "name",
    "value",
    "display_name",
    "unit_of_measure",
    "timestamp",
];

/// Why a `name=value` argument could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssignmentError {
    /// No `=`.
    #[error("`{0}` is not name=value (e.g. temperature=21.5)")]
    NoEquals(String),
    /// Nothing after `=`.
    #[error("`{0}` has no value after `=`")]
    NoValue(String),
}

impl MetaEntry {
    /// An entry with just a name and a value.
    pub fn new(name: impl Into<String>, value: Value) -> Self {
        MetaEntry {
            name: name.into(),
            value,
            display_name: None,
            unit_of_measure: None,
            timestamp: None,
            extra: BTreeMap::new(),
        }
    }

    /// Reads `name=value`: the value is JSON when it parses as JSON (`21.5`, `true`, `[1,2]`,
    /// `"text"`), otherwise the text itself (`fw_ver=1.2.3`).
    pub fn parse_assignment(arg: &str) -> Result<MetaEntry, AssignmentError> {
        let (name, raw) = arg
            .split_once('=')
            .ok_or_else(|| AssignmentError::NoEquals(arg.to_owned()))?;
        if raw.is_empty() {
            return Err(AssignmentError::NoValue(arg.to_owned()));
        }
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
        Ok(MetaEntry::new(name, value))
    }

    fn decode_at(v: &Value, position: &str) -> Result<MetaEntry, PayloadError> {
        let obj = v.as_object().ok_or_else(|| PayloadError::WrongShape {
            position: position.to_owned(),
            expected: "an object with `name` and `value`",
            found: kind_of(v),
        })?;
        let name = obj
            .get("name")
            .ok_or_else(|| PayloadError::Missing {
                position: position.to_owned(),
                field: "name",
            })?
            .as_str()
            .ok_or_else(|| PayloadError::WrongShape {
                position: format!("{position}/name"),
                expected: "a string",
                found: obj.get("name").map(kind_of).unwrap_or_default(),
            })?
            .to_owned();
        let value = obj
            .get("value")
            .cloned()
            .ok_or_else(|| PayloadError::Missing {
                position: position.to_owned(),
                field: "value",
            })?;
        Ok(MetaEntry {
            name,
            value,
            display_name: opt_string(obj, "display_name", position)?,
            unit_of_measure: opt_string(obj, "unit_of_measure", position)?,
            timestamp: opt_string(obj, "timestamp", position)?,
            extra: extra_fields(obj, &ENTRY_FIELDS),
        })
    }

    /// Checks the name rule, the value of a known meta, and the timestamp.
    pub fn validate_at(&self, position: &str) -> Result<(), PayloadError> {
        check_name(&self.name).map_err(|problem| PayloadError::BadName {
            position: format!("{position}/name"),
            name: self.name.chars().take(120).collect(),
            problem,
        })?;
        if let Some(t) = known_type(&self.name) {
            t.check(&self.name, &self.value, &format!("{position}/value"))?;
        }
        if let Some(ts) = &self.timestamp {
            check_timestamp(ts, format!("{position}/timestamp"))?;
        }
        Ok(())
    }
}

/// What a device publishes on `devices/(:id)/meta`: a JSON array of entries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct MetaList(pub Vec<MetaEntry>);

impl MetaList {
    /// The JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a meta list: an array of objects each with a string `name` and a `value`. The name
    /// rule and the values are checked by [`MetaList::validate`], not here.
    pub fn decode(bytes: &[u8]) -> Result<MetaList, PayloadError> {
        Self::from_value(&parse_json("meta list", bytes)?)
    }

    /// Like [`MetaList::decode`] from parsed JSON.
    pub fn from_value(v: &Value) -> Result<MetaList, PayloadError> {
        let items = v.as_array().ok_or_else(|| PayloadError::WrongShape {
            position: String::new(),
            expected: "an array of meta objects, e.g. [{\"name\": \"als\", \"value\": 87}]",
            found: kind_of(v),
        })?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| MetaEntry::decode_at(item, &format!("[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(MetaList)
    }

    /// Checks every entry (name rule, known types, timestamps); refuses an empty list.
    pub fn validate(&self) -> Result<(), PayloadError> {
        if self.0.is_empty() {
            return Err(PayloadError::EmptyList);
        }
        self.0
            .iter()
            .enumerate()
            .try_for_each(|(i, e)| e.validate_at(&format!("[{i}]")))
    }
}

/// One meta value as the platform relays it on `devices/(:id)/meta/(:name)`:
/// `{"name", "value", "timestamp"}` (the documentation's example).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetaValue {
    /// Meta name.
    pub name: String,
    /// Value.
    pub value: Value,
    /// When, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Other fields, kept as received.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl MetaValue {
    /// The JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads one meta value.
    pub fn decode(bytes: &[u8]) -> Result<MetaValue, PayloadError> {
        let v = parse_json("meta value", bytes)?;
        let e = MetaEntry::decode_at(&v, "")?;
        let obj: &Map<String, Value> = v.as_object().ok_or_else(|| PayloadError::WrongShape {
            position: String::new(),
            expected: "an object",
            found: kind_of(&v),
        })?;
        Ok(MetaValue {
            name: e.name,
            value: e.value,
            timestamp: e.timestamp,
            extra: extra_fields(obj, &["name", "value", "timestamp"]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn name_rule_matches_the_regex_on_hand_picked_cases() {
        for ok in ["als", "temperature", "~system", "a1", "a_", "dim_2_x", "ab"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        let cases = [
            ("Meta_New", NameProblem::BadStart),
            ("a", NameProblem::TooShort),
            ("~a", NameProblem::TooShort),
            ("", NameProblem::TooShort),
            ("~", NameProblem::TooShort),
            ("a__b", NameProblem::DoubleUnderscore),
            ("~__a", NameProblem::BadStart),
            ("1abc", NameProblem::BadStart),
            ("_abc", NameProblem::BadStart),
            ("meta-new", NameProblem::BadChar('-')),
            ("~~ab", NameProblem::BadStart),
            ("aB", NameProblem::BadChar('B')),
        ];
        for (bad, problem) in cases {
            assert_eq!(check_name(bad), Err(problem), "{bad}");
        }
        assert_eq!(check_name(&"a".repeat(101)), Err(NameProblem::TooLong));
        assert_eq!(check_name(&"a".repeat(100)), Ok(()));
    }

    #[test]
    fn assignments_read_json_or_text() {
        let e = MetaEntry::parse_assignment("temperature=21.5").unwrap();
        assert_eq!(e.value, json!(21.5));
        assert_eq!(
            MetaEntry::parse_assignment("onoff=true").unwrap().value,
            json!(true)
        );
        assert_eq!(
            MetaEntry::parse_assignment("fw_ver=1.2.3").unwrap().value,
            json!("1.2.3")
        );
        assert_eq!(
            MetaEntry::parse_assignment("x=a=b").unwrap().value,
            json!("a=b")
        );
        assert!(MetaEntry::parse_assignment("novalue").is_err());
        assert!(MetaEntry::parse_assignment("x=").is_err());
    }

    #[test]
    fn decode_names_the_position() {
        let e = MetaList::decode(br#"[{"name":"als","value":1},{"value":2}]"#).unwrap_err();
        assert_eq!(
            e,
            PayloadError::Missing {
                position: "[1]".into(),
                field: "name"
            }
        );
        let e = MetaList::decode(br#"{"name":"als","value":1}"#).unwrap_err();
        assert!(matches!(e, PayloadError::WrongShape { .. }));
        let list = MetaList::decode(br#"[{"name":"Meta_New","value":10}]"#).unwrap();
        let e = list.validate().unwrap_err();
        assert_eq!(e.position(), "[0]/name");
        assert!(e.to_string().contains("Meta_New"), "{e}");
    }
}
