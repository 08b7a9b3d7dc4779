//! The SDK's `SendData` input: `[{"uniqueId": ..., "time": ..., "data": {...}}]`, the gateway
//! first, then its children. One line of the agent's input is one such array (a single object
//! is accepted as an array of one). `time` may be left out; the send time is used then.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One device's reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputRecord {
    /// Device unique id (gateway or child).
    #[serde(rename = "uniqueId")]
    pub unique_id: String,
    /// Reading time, copied verbatim into `dt` (e.g. `2021-01-24T10:06:17.857Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Attribute values; object attributes nest one level.
    pub data: Map<String, Value>,
}

/// Why an input line was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Not JSON.
    #[error("input line {line}: not JSON ({reason})")]
    Json {
        /// 1-based line number.
        line: u64,
        /// Parser message.
        reason: String,
    },
    /// JSON of the wrong shape.
    #[error(
        "input line {line}: {reason}; expected [{{\"uniqueId\": \"...\", \"time\": \"...\", \"data\": {{...}}}}]"
    )]
    Shape {
        /// 1-based line number.
        line: u64,
        /// What was wrong.
        reason: String,
    },
}

/// Parses one input line; blank lines give `Ok(None)`.
pub fn parse_line(line_no: u64, text: &str) -> Result<Option<Vec<InputRecord>>, InputError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| InputError::Json {
        line: line_no,
        reason: e.to_string(),
    })?;
    let items = match value {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        other => {
            return Err(InputError::Shape {
                line: line_no,
                reason: format!("got {}", kind(&other)),
            });
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let rec: InputRecord = serde_json::from_value(item).map_err(|e| InputError::Shape {
            line: line_no,
            reason: format!("element {i}: {e}"),
        })?;
        out.push(rec);
    }
    Ok(Some(out))
}

/// A value given on a command line (`--twin key=VALUE`): JSON if it parses, text otherwise.
pub fn parse_value(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::from(s))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_objects_and_blank_lines() {
        let r = parse_line(
            1,
            r#"[{"uniqueId":"gw","time":"2021-01-24T10:06:17.857Z","data":{"temp":1}},{"uniqueId":"c1","data":{}}]"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].time, None);
        assert_eq!(parse_line(2, "  ").unwrap(), None);
        assert_eq!(
            parse_line(3, r#"{"uniqueId":"gw","data":{"a":"b"}}"#)
                .unwrap()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn errors_name_the_line_and_element() {
        let e = parse_line(7, "{oops").unwrap_err();
        assert!(e.to_string().starts_with("input line 7: not JSON"), "{e}");
        let e = parse_line(8, r#"[{"uniqueId":"gw","data":{}},{"data":{}}]"#).unwrap_err();
        assert!(
            e.to_string().contains("element 1") && e.to_string().contains("uniqueId"),
            "{e}"
        );
        let e = parse_line(9, "42").unwrap_err();
        assert!(e.to_string().contains("got a number"), "{e}");
    }
}
