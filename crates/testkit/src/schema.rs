//! Checks `--output json` lines against the schemas in `docs/schema/`: the envelope, then each
//! event's `data` against `docs/schema/<binary>/<type>.schema.json`, or the shared
//! `docs/schema/<type>.schema.json` for events every binary prints (connection, spool, errors).
//!
//! A small structural checker (type, required, properties, additionalProperties, items, enum,
//! oneOf, `$ref` to a shared schema); patterns are not interpreted. A JSON Schema crate would
//! add a large dependency tree to a workspace that builds on two cores; the schemas stay
//! standard draft 2020-12 for users' own validators.

use std::path::PathBuf;

use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/schema"))
}

/// The schema of event `kind` as `binary` prints it: the binary's own, else the shared one.
/// Panics, naming both paths, when neither exists: every event a binary prints is described.
pub fn schema_of(binary: &str, kind: &str) -> Value {
    let own = dir().join(binary).join(format!("{kind}.schema.json"));
    let shared = dir().join(format!("{kind}.schema.json"));
    let file = if own.exists() { &own } else { &shared };
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| {
        panic!(
            "no schema for `{binary}` event `{kind}`: neither {} nor {} ({e})",
            own.display(),
            shared.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()))
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

/// The problems of `v` against schema `s`, with `at` as the JSON path. A `$ref` names a shared
/// schema file (`../payload.schema.json` from a binary's folder).
pub fn check(s: &Value, v: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(Value::String(file)) = s.get("$ref") {
        let name = file.rsplit('/').next().unwrap_or(file);
        let kind = name.trim_end_matches(".schema.json");
        check(&schema_of("", kind), v, at, problems);
    }
    match s.get("type") {
        Some(Value::String(t)) if !type_ok(t, v) => problems.push(format!("{at}: not {t}: {v}")),
        Some(Value::Array(ts)) if !ts.iter().any(|t| type_ok(t.as_str().unwrap_or(""), v)) => {
            problems.push(format!("{at}: none of {ts:?}: {v}"));
        }
        _ => {}
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.contains(v)
    {
        problems.push(format!("{at}: {v} is not one of {options:?}"));
    }
    if let Some(Value::Array(alts)) = s.get("oneOf") {
        let fits = alts
            .iter()
            .filter(|a| {
                let mut p = Vec::new();
                check(a, v, at, &mut p);
                p.is_empty()
            })
            .count();
        if fits != 1 {
            problems.push(format!("{at}: {v} fits {fits} of the oneOf alternatives"));
        }
    }
    if let Some(obj) = v.as_object() {
        if let Some(Value::Array(req)) = s.get("required") {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    problems.push(format!("{at}: missing `{r}`"));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => check(ps, val, &format!("{at}.{k}"), problems),
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => problems.push(format!("{at}: unexpected `{k}`")),
                    Some(extra @ Value::Object(_)) => {
                        check(extra, val, &format!("{at}.{k}"), problems);
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check(items, item, &format!("{at}[{i}]"), problems);
        }
    }
}

/// Checks every NDJSON line `binary` printed on `stdout`; panics listing every problem.
pub fn validate(binary: &str, stdout: &[u8]) {
    let envelope = schema_of("", "envelope");
    // Read once per event type, not per line: a fleet run prints hundreds of `stats` lines.
    let mut schemas = std::collections::HashMap::new();
    let mut problems = Vec::new();
    for line in String::from_utf8_lossy(stdout).lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        check(&envelope, &v, "$", &mut problems);
        let kind = v["type"].as_str().unwrap_or_default();
        let schema = schemas
            .entry(kind.to_owned())
            .or_insert_with(|| schema_of(binary, kind));
        check(
            schema,
            &v["data"],
            &format!("$[{kind}].data"),
            &mut problems,
        );
    }
    assert!(
        problems.is_empty(),
        "{binary}: schema problems: {problems:#?}"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn the_checker_finds_what_breaks_a_schema() {
        let mut p = Vec::new();
        check(
            &schema_of("iot-sim", "down"),
            &json!({"result": "gone", "pid": "x"}),
            "$",
            &mut p,
        );
        assert_eq!(p.len(), 2, "{p:?}");
        let mut p = Vec::new();
        check(
            &schema_of("", "payload"),
            &json!({"json": 1, "text": "1"}),
            "$",
            &mut p,
        );
        assert_eq!(p.len(), 1, "{p:?}");
        let mut p = Vec::new();
        check(
            &json!({"type": "object", "properties": {"payload": {"$ref": "../payload.schema.json"}}}),
            &json!({"payload": {"text": 1}}),
            "$",
            &mut p,
        );
        assert!(!p.is_empty(), "a $ref is followed: {p:?}");
    }

    #[test]
    fn every_schema_file_is_json_with_a_title() {
        let mut dirs = vec![dir()];
        let mut n = 0;
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.to_string_lossy().ends_with(".schema.json") {
                    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    assert!(v["title"].is_string(), "{} has no title", path.display());
                    n += 1;
                }
            }
        }
        assert!(n > 10, "only {n} schemas found");
    }
}
