//! Shadow state as JSON, with AWS's rules (device-shadow-document.md, device-shadow-mqtt.md
//! "update/delta"): an update merges into the stored section (objects merge key by key, arrays
//! and scalars replace whole, `null` deletes); the delta holds the desired attributes that
//! differ from reported (nested objects keep their path; arrays compare whole; attributes only
//! in reported are left out); metadata mirrors the state with a `timestamp` per leaf. Pure.

use serde_json::{Map, Value, json};

/// Removes `null` members from objects, recursively (values stored from a patch).
pub fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Merges `patch` into `target`: `null` deletes, objects merge, everything else replaces.
/// An object emptied by deletions in this patch is removed too.
pub fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(p) => match target.get_mut(k) {
                Some(Value::Object(t)) => {
                    merge_patch(t, p);
                    if t.is_empty() && !p.is_empty() {
                        target.remove(k);
                    }
                }
                _ => {
                    target.insert(k.clone(), strip_nulls(v));
                }
            },
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
}

/// The desired attributes that differ from reported.
pub fn delta(desired: &Map<String, Value>, reported: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, d) in desired {
        match (d, reported.get(k)) {
            (Value::Object(dm), Some(Value::Object(rm))) => {
                let sub = delta(dm, rm);
                if !sub.is_empty() {
                    out.insert(k.clone(), Value::Object(sub));
                }
            }
            (d, Some(r)) if d == r => {}
            (d, _) => {
                out.insert(k.clone(), d.clone());
            }
        }
    }
    out
}

fn leaf(ts: i64) -> Value {
    json!({ "timestamp": ts })
}

/// Metadata for the fields of a request section: a timestamp per leaf (deleted ones too).
pub fn metadata_of_patch(patch: &Map<String, Value>, ts: i64) -> Map<String, Value> {
    patch
        .iter()
        .map(|(k, v)| {
            let m = match v {
                Value::Object(o) if !o.is_empty() => Value::Object(metadata_of_patch(o, ts)),
                _ => leaf(ts),
            };
            (k.clone(), m)
        })
        .collect()
}

/// Metadata of `state` after `patch` was merged into it: leaves the patch touched get `ts`,
/// the others keep their timestamps from `old`.
pub fn rebuild_metadata(
    state: &Map<String, Value>,
    old: &Map<String, Value>,
    patch: &Map<String, Value>,
    ts: i64,
) -> Map<String, Value> {
    let empty = Map::new();
    state
        .iter()
        .map(|(k, sv)| {
            let old_k = old.get(k);
            let m = match (sv, patch.get(k)) {
                (Value::Object(so), Some(Value::Object(po))) if !so.is_empty() => {
                    let om = match old_k {
                        Some(Value::Object(o)) if !o.contains_key("timestamp") => o,
                        _ => &empty,
                    };
                    Value::Object(rebuild_metadata(so, om, po, ts))
                }
                (_, Some(_)) => fresh(sv, ts),
                (_, None) => old_k.cloned().unwrap_or_else(|| fresh(sv, ts)),
            };
            (k.clone(), m)
        })
        .collect()
}

fn fresh(v: &Value, ts: i64) -> Value {
    match v {
        Value::Object(o) if !o.is_empty() => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), fresh(v, ts))).collect())
        }
        _ => leaf(ts),
    }
}

/// The part of `meta` that covers the keys of `shape` (the delta's metadata).
pub fn metadata_for(shape: &Map<String, Value>, meta: &Map<String, Value>) -> Map<String, Value> {
    shape
        .iter()
        .filter_map(|(k, v)| {
            let m = meta.get(k)?;
            Some(match (v, m) {
                (Value::Object(vo), Value::Object(mo))
                    if !vo.is_empty() && !mo.contains_key("timestamp") =>
                {
                    (k.clone(), Value::Object(metadata_for(vo, mo)))
                }
                _ => (k.clone(), m.clone()),
            })
        })
        .collect()
}

/// Whether any array anywhere in `v` holds a `null` (AWS rejects such documents).
pub fn has_null_in_array(v: &Value) -> bool {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(a) => {
                if a.iter().any(Value::is_null) {
                    return true;
                }
                stack.extend(a.iter());
            }
            Value::Object(m) => stack.extend(m.values()),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn merge_follows_aws_rules() {
        let mut t =
            m(json!({"color": {"r": 1, "g": 2}, "colors": ["RED", "GREEN"], "engine": "ON"}));
        merge_patch(
            &mut t,
            &m(
                json!({"color": {"r": 10}, "colors": ["RED"], "engine": null, "new": {"a": null, "b": 1}}),
            ),
        );
        assert_eq!(
            Value::Object(t),
            json!({"color": {"r": 10, "g": 2}, "colors": ["RED"], "new": {"b": 1}})
        );
    }

    #[test]
    fn emptied_objects_disappear() {
        let mut t = m(json!({"a": {"b": 1}}));
        merge_patch(&mut t, &m(json!({"a": {"b": null}})));
        assert!(t.is_empty());
    }

    #[test]
    fn delta_keeps_paths_and_compares_arrays_whole() {
        let desired =
            m(json!({"color": {"r": 10, "g": 2}, "seq": ["RED"], "state": "STOP", "same": 1}));
        let reported = m(
            json!({"color": {"r": 1, "g": 2}, "seq": ["RED", "GREEN"], "same": 1, "engine": "ON"}),
        );
        assert_eq!(
            Value::Object(delta(&desired, &reported)),
            json!({"color": {"r": 10}, "seq": ["RED"], "state": "STOP"})
        );
    }

    #[test]
    fn metadata_mirrors_state() {
        let patch = m(json!({"color": {"r": 10}, "engine": "ON"}));
        assert_eq!(
            Value::Object(metadata_of_patch(&patch, 5)),
            json!({"color": {"r": {"timestamp": 5}}, "engine": {"timestamp": 5}})
        );
        let old = m(
            json!({"color": {"r": {"timestamp": 1}, "g": {"timestamp": 1}}, "x": {"timestamp": 1}}),
        );
        let state = m(json!({"color": {"r": 10, "g": 2}, "x": 3, "engine": "ON"}));
        assert_eq!(
            Value::Object(rebuild_metadata(&state, &old, &patch, 5)),
            json!({"color": {"r": {"timestamp": 5}, "g": {"timestamp": 1}}, "x": {"timestamp": 1}, "engine": {"timestamp": 5}})
        );
        let shape = m(json!({"color": {"r": 10}}));
        let meta = rebuild_metadata(&state, &old, &patch, 5);
        assert_eq!(
            Value::Object(metadata_for(&shape, &meta)),
            json!({"color": {"r": {"timestamp": 5}}})
        );
    }

    #[test]
    fn nulls_in_arrays_are_found() {
        assert!(has_null_in_array(&json!({"c": [null, "RED"]})));
        assert!(has_null_in_array(&json!({"c": [[1, null]]})));
        assert!(!has_null_in_array(&json!({"c": ["RED"], "d": null})));
    }
}
