//! Every event iot-sim prints validates against `docs/schema/` (a small structural checker:
//! type, required, properties, additionalProperties, items, enum, oneOf, pattern as `^prefix`
//! classes are not interpreted; see `docs/schema/README.md`).

use serde_json::Value;

fn schema(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/schema/");
    let file = format!("{path}{name}.schema.json");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("no schema {file} for event `{name}`: {e}"));
    serde_json::from_str(&text).unwrap()
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

/// The problems of `v` against `s`, with `at` as the JSON path.
fn check(s: &Value, v: &Value, at: &str, problems: &mut Vec<String>) {
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

/// Checks every NDJSON line of `stdout`: the envelope, then `data` against its event's schema.
pub fn validate(stdout: &[u8]) {
    let envelope = schema("envelope");
    let mut problems = Vec::new();
    for line in String::from_utf8_lossy(stdout).lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        check(&envelope, &v, "$", &mut problems);
        let kind = v["type"].as_str().unwrap_or_default();
        check(
            &schema(kind),
            &v["data"],
            &format!("$[{kind}].data"),
            &mut problems,
        );
    }
    assert!(problems.is_empty(), "schema problems: {problems:#?}");
}

#[test]
fn the_checker_finds_what_breaks_a_schema() {
    let s = schema("down");
    let mut p = Vec::new();
    check(
        &s,
        &serde_json::json!({"result": "gone", "pid": "x"}),
        "$",
        &mut p,
    );
    assert_eq!(p.len(), 2, "{p:?}");
    let mut p = Vec::new();
    check(
        &schema("payload"),
        &serde_json::json!({"json": 1, "text": "1"}),
        "$",
        &mut p,
    );
    assert_eq!(p.len(), 1, "{p:?}");
}
