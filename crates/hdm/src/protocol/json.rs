//! Small helpers for reading untrusted JSON field by field, so that every decoding error names
//! the field (as a dotted path) and what was expected. Pure.

use serde_json::{Map, Value};

/// A JSON field that is missing or has the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: `{field}` must be {expected}, found {found}")]
pub struct FieldError {
    /// Which document (e.g. "configuration response").
    pub what: &'static str,
    /// Dotted path of the field.
    pub field: String,
    /// What it must be.
    pub expected: &'static str,
    /// What it was (a kind, or a short excerpt).
    pub found: String,
}

/// The JSON kind of a value, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads fields of one JSON object, naming them in errors.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    what: &'static str,
    path: &'a str,
    obj: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// Parses `bytes` as a JSON object.
    pub fn parse(what: &'static str, bytes: &[u8]) -> Result<Map<String, Value>, FieldError> {
        let err = |found: String| FieldError {
            what,
            field: "(document)".into(),
            expected: "a JSON object",
            found,
        };
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(err(kind(&other).into())),
            Err(e) => Err(err(format!("invalid JSON ({e})"))),
        }
    }

    /// Fields of `obj` (the root when `path` is empty).
    pub fn new(what: &'static str, path: &'a str, obj: &'a Map<String, Value>) -> Self {
        Fields { what, path, obj }
    }

    fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// An error about `key`.
    pub fn error(&self, key: &str, expected: &'static str, found: impl Into<String>) -> FieldError {
        FieldError {
            what: self.what,
            field: self.name(key),
            expected,
            found: found.into(),
        }
    }

    /// The raw value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key)
    }

    /// A required string.
    pub fn str(&self, key: &str, expected: &'static str) -> Result<&'a str, FieldError> {
        match self.obj.get(key) {
            Some(Value::String(s)) => Ok(s),
            Some(v) => Err(self.error(key, expected, kind(v))),
            None => Err(self.error(key, expected, "nothing (missing)")),
        }
    }

    /// An optional string (absent or `null` is `None`).
    pub fn opt_str(
        &self,
        key: &str,
        expected: &'static str,
    ) -> Result<Option<&'a str>, FieldError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.error(key, expected, kind(v))),
        }
    }

    /// A required object, as fields.
    pub fn object(&self, key: &str, path: &'a str) -> Result<Fields<'a>, FieldError> {
        match self.obj.get(key) {
            Some(Value::Object(m)) => Ok(Fields::new(self.what, path, m)),
            Some(v) => Err(self.error(key, "an object", kind(v))),
            None => Err(self.error(key, "an object", "nothing (missing)")),
        }
    }

    /// An optional object.
    pub fn opt_object(&self, key: &str, path: &'a str) -> Result<Option<Fields<'a>>, FieldError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Fields::new(self.what, path, m))),
            Some(v) => Err(self.error(key, "an object", kind(v))),
        }
    }
}

/// Nesting depth of a value: scalars and empty containers 0, `{"a":1}` 1, `{"a":{"b":1}}` 2.
pub fn depth(v: &Value) -> usize {
    // Iterative, so a hostile document cannot overflow the stack.
    let mut max = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Object(m) if !m.is_empty() => {
                max = max.max(d + 1);
                stack.extend(m.values().map(|c| (c, d + 1)));
            }
            Value::Array(a) if !a.is_empty() => {
                max = max.max(d + 1);
                stack.extend(a.iter().map(|c| (c, d + 1)));
            }
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_name_their_path() {
        let m = Fields::parse("doc", br#"{"a":{"b":1}}"#).unwrap();
        let root = Fields::new("doc", "", &m);
        let a = root.object("a", "a").unwrap();
        let e = a.str("b", "a string").unwrap_err();
        assert_eq!(e.to_string(), "doc: `a.b` must be a string, found a number");
        assert!(Fields::parse("doc", b"[1]").is_err());
        assert!(Fields::parse("doc", b"{").is_err());
    }

    #[test]
    fn depth_counts_levels() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({})), 0);
        assert_eq!(depth(&json!({"a": 1})), 1);
        assert_eq!(depth(&json!({"a": {"b": [1]}})), 3);
    }
}
