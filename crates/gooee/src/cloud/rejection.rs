//! How the emulated platform words a rejection: the documentation's one example (a meta name
//! breaking the regex) is reproduced exactly; the wording of every other case is inferred in the
//! same style ("Invalid payload due to …  Position: …. Value: ….", with a JSON-schema-like
//! `context`). Pure.

use serde_json::{Value, json};

use crate::protocol::meta::{NAME_MAX_LEN, NAME_PATTERN};
use crate::protocol::meta_types::{MetaType, known_type};
use crate::protocol::{NameProblem, PayloadError, Rejection, RejectionError};

fn message(due_to: &str, position: &str, value: &str) -> String {
    let position = if position.is_empty() { "/" } else { position };
    format!("Invalid payload due to {due_to}.  Position: {position}. Value: {value}.")
}

/// A bound as JSON: whole numbers without a fraction (`100`, not `100.0`).
fn bound(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

fn schema_of(t: MetaType) -> Value {
    match t {
        MetaType::Number {
            min,
            max,
            exclusive_min,
        } => {
            let mut o = json!({"type": "number"});
            if let Some(m) = min {
                o["minimum"] = bound(m);
            }
            if let Some(m) = max {
                o["maximum"] = bound(m);
            }
            if exclusive_min {
                o["exclusiveMinimum"] = json!(true);
            }
            o
        }
        MetaType::Boolean => json!({"type": "boolean"}),
        MetaType::String => json!({"type": "string"}),
        MetaType::Array => json!({"type": "array"}),
        MetaType::Object => json!({"type": "object"}),
    }
}

/// The `error` object the platform publishes for `e`.
pub fn rejection_error(e: &PayloadError) -> RejectionError {
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let (message, context) = match e {
        PayloadError::BadName {
            position,
            name,
            problem,
        } => {
            let due_to = if *problem == NameProblem::TooLong {
                "string longer than maxLength"
            } else {
                "regex pattern not matching"
            };
            (
                message(due_to, position, &quoted(name)),
                json!({
                    "type": "string",
                    "title": "Name",
                    "pattern": NAME_PATTERN,
                    "minLength": 1,
                    "maxLength": NAME_MAX_LEN,
                }),
            )
        }
        PayloadError::WrongType {
            position,
            name,
            value,
            ..
        } => (
            message("type mismatch", position, value),
            known_type(name).map_or(Value::Null, schema_of),
        ),
        PayloadError::OutOfRange {
            position,
            name,
            value,
            ..
        } => (
            message("value out of range", position, value),
            known_type(name).map_or(Value::Null, schema_of),
        ),
        PayloadError::Missing { position, field } => (
            message("missing required property", position, &quoted(field)),
            json!({"required": [field]}),
        ),
        PayloadError::WrongShape {
            position,
            expected,
            found,
        } => (
            message("type mismatch", position, found),
            json!({"expected": expected}),
        ),
        PayloadError::BadTimestamp { position, value } => (
            message("format mismatch", position, &quoted(value)),
            json!({"type": "string", "format": "date-time"}),
        ),
        PayloadError::Invalid { position, problem } => (
            format!("Invalid payload.  Position: {position}. {problem}."),
            Value::Null,
        ),
        PayloadError::EmptyList => (
            "Invalid payload due to empty array.  Position: . Value: [].".to_owned(),
            json!({"type": "array", "minItems": 1}),
        ),
        PayloadError::NotJson { detail, .. } => (
            format!("Invalid payload: not JSON ({detail})."),
            Value::Null,
        ),
        // A future variant: the error's own sentence.
        #[allow(unreachable_patterns)]
        other => (format!("Invalid payload: {other}."), Value::Null),
    };
    RejectionError { message, context }
}

/// The full rejection for `payload` refused with `e`: `data` is the payload as JSON, or its text
/// when it is not JSON.
pub fn rejection(e: &PayloadError, payload: &[u8]) -> Rejection {
    let data = serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
    Rejection {
        error: rejection_error(e),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MetaList;

    #[test]
    fn the_documented_example_is_reproduced() {
        let data = br#"[{"name":"Meta_New","display_name":"Meta New","unit_of_measure":"Meters","value":10}]"#;
        let e = MetaList::decode(data).unwrap().validate().unwrap_err();
        let r = rejection(&e, data);
        assert_eq!(
            r.error.message,
            "Invalid payload due to regex pattern not matching.  Position: [0]/name. Value: \"Meta_New\"."
        );
        assert_eq!(
            r.error.context,
            json!({"type": "string", "title": "Name", "pattern": "^(~?)(?!.*__.*)[a-z][a-z0-9_]+$", "minLength": 1, "maxLength": 100})
        );
        assert_eq!(r.data[0]["name"], "Meta_New");
    }
}
