//! Why a payload is not what Gooee expects: one error type for every message type, each variant
//! naming the position (`[0]/name`, `/priority`), the value and what was expected. Pure data.

use std::fmt;

/// What is wrong with a meta name under Gooee's rule `^(~?)(?!.*__.*)[a-z][a-z0-9_]+$`
/// (maximum length 100, from the rejected-message example's `context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NameProblem {
    /// Fewer than two characters after the optional `~`.
    TooShort,
    /// More than 100 characters.
    TooLong,
    /// The first character (after `~`) is not `a`–`z`.
    BadStart,
    /// A character outside `a`–`z`, `0`–`9`, `_`.
    BadChar(char),
    /// Two underscores in a row.
    DoubleUnderscore,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::TooShort => {
                f.write_str("it needs at least two characters after an optional `~`")
            }
            NameProblem::TooLong => f.write_str("it is longer than 100 characters"),
            NameProblem::BadStart => {
                f.write_str("it must start with a lowercase letter a-z (after an optional `~`)")
            }
            NameProblem::BadChar(c) => write!(
                f,
                "`{}` is not allowed; use lowercase letters, digits and `_` only",
                c.escape_default()
            ),
            NameProblem::DoubleUnderscore => {
                f.write_str("it contains `__` (two underscores in a row)")
            }
        }
    }
}

/// Why a payload was refused (by the local check or by the platform side).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// Not parseable JSON.
    #[error("the {what} payload is not JSON: {detail}")]
    NotJson {
        /// `meta list`, `action`, ...
        what: &'static str,
        /// What the parser said.
        detail: String,
    },
    /// A JSON value of the wrong kind at `position`.
    #[error("{}: expected {expected}, found {found}", at(position))]
    WrongShape {
        /// JSON position, e.g. `[0]` or `/value`.
        position: String,
        /// What the documentation shows there.
        expected: &'static str,
        /// What was there (abridged JSON).
        found: String,
    },
    /// A field every documented example carries is missing.
    #[error("{}: the required field `{field}` is missing", at(position))]
    Missing {
        /// Object position.
        position: String,
        /// The field.
        field: &'static str,
    },
    /// A meta name outside Gooee's rule.
    #[error(
        "{position}: meta name `{name}` breaks Gooee's rule ^(~?)(?!.*__.*)[a-z][a-z0-9_]+$: {problem}"
    )]
    BadName {
        /// Position of the name.
        position: String,
        /// The name (abridged).
        name: String,
        /// What is wrong.
        problem: NameProblem,
    },
    /// A known meta with a value of the wrong JSON type.
    #[error(
        "{}: meta `{name}` must be {expected} (Gooee meta definitions), got {value}",
        at(position)
    )]
    WrongType {
        /// Position of the value.
        position: String,
        /// Meta name.
        name: String,
        /// `a number`, `true or false`, ...
        expected: &'static str,
        /// What was given (abridged JSON).
        value: String,
    },
    /// A known meta with a number outside its range.
    #[error(
        "{}: meta `{name}` = {value} is out of range; expected {range}",
        at(position)
    )]
    OutOfRange {
        /// Position of the value.
        position: String,
        /// Meta name.
        name: String,
        /// What was given.
        value: String,
        /// The allowed range, e.g. `0 to 100`.
        range: String,
    },
    /// A timestamp that is not RFC 3339.
    #[error(
        "{position}: `{value}` is not an RFC 3339 timestamp such as 2016-08-09T20:00:47.539000Z"
    )]
    BadTimestamp {
        /// Position.
        position: String,
        /// What was given (abridged).
        value: String,
    },
    /// Any other constraint, stated as a sentence.
    #[error("{}: {problem}", at(position))]
    Invalid {
        /// Position.
        position: String,
        /// What is wrong and what is expected.
        problem: String,
    },
    /// A meta list with no entries.
    #[error("the meta list is empty; give at least one name=value")]
    EmptyList,
}

impl PayloadError {
    /// The JSON position the error is about (`""` for the whole payload).
    pub fn position(&self) -> &str {
        match self {
            PayloadError::WrongShape { position, .. }
            | PayloadError::Missing { position, .. }
            | PayloadError::BadName { position, .. }
            | PayloadError::WrongType { position, .. }
            | PayloadError::OutOfRange { position, .. }
            | PayloadError::BadTimestamp { position, .. }
            | PayloadError::Invalid { position, .. } => position,
            PayloadError::NotJson { .. } | PayloadError::EmptyList => "",
        }
    }
}

/// How a position reads in a sentence: the JSON position, or `the payload` for the whole.
fn at(position: &str) -> &str {
    if position.is_empty() || position == "/" {
        "the payload"
    } else {
        position
    }
}

/// A JSON value shortened for messages (at most ~80 characters).
pub(crate) fn abridge(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// The JSON kind of a value, for `found` in messages.
pub(crate) fn kind_of(v: &serde_json::Value) -> String {
    let kind = match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    };
    format!("{kind} ({})", abridge(v))
}

/// Parses `bytes` as JSON, naming the message type on failure.
pub(crate) fn parse_json(
    what: &'static str,
    bytes: &[u8],
) -> Result<serde_json::Value, PayloadError> {
    serde_json::from_slice(bytes).map_err(|e| PayloadError::NotJson {
        what,
        detail: e.to_string(),
    })
}

/// Reads an optional string field, refusing other kinds.
pub(crate) fn opt_string(
    obj: &serde_json::Map<String, serde_json::Value>,
    field: &str,
    position: &str,
) -> Result<Option<String>, PayloadError> {
    match obj.get(field) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(PayloadError::WrongShape {
            position: format!("{position}/{field}"),
            expected: "a string",
            found: kind_of(other),
        }),
    }
}

/// Reads a required string field.
pub(crate) fn req_string(
    obj: &serde_json::Map<String, serde_json::Value>,
    field: &'static str,
    position: &str,
) -> Result<String, PayloadError> {
    opt_string(obj, field, position)?.ok_or_else(|| PayloadError::Missing {
        position: if position.is_empty() {
            "/".to_owned()
        } else {
            position.to_owned()
        },
        field,
    })
}

/// The fields of `obj` not in `known`, kept as received.
pub(crate) fn extra_fields(
    obj: &serde_json::Map<String, serde_json::Value>,
    known: &[&str],
) -> std::collections::BTreeMap<String, serde_json::Value> {
    obj.iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Checks an RFC 3339 timestamp.
pub(crate) fn check_timestamp(value: &str, position: String) -> Result<(), PayloadError> {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(|_| ())
        .map_err(|_| PayloadError::BadTimestamp {
            position,
            value: value.chars().take(80).collect(),
        })
}

/// Formats `t` the way Gooee's examples write timestamps: `2016-08-09T20:00:47.539000Z`.
pub fn format_timestamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_look_like_the_documentation() {
        let t = time::macros::datetime!(2016-08-09 20:00:47.539 UTC);
        assert_eq!(format_timestamp(t), "2016-08-09T20:00:47.539000Z");
        assert!(check_timestamp("2016-08-09T20:00:47.539000Z", String::new()).is_ok());
        assert!(check_timestamp("yesterday", String::new()).is_err());
    }

    #[test]
    fn abridge_keeps_messages_short() {
        let long = serde_json::Value::String("x".repeat(500));
        assert!(abridge(&long).chars().count() <= 81);
    }
}
