//! Attribute validation: one device's data, judged against the template's attributes for the
//! device's tag, split into good values (sent as reporting, `mt` 0) and faulty ones (`mt` 1).
//!
//! Rules (message 1.0 SDK behaviour, with its bugs fixed as documented in `docs/iotconnect.md`):
//! NUMBER and FLOAT take numbers and numeric strings (right-trimmed); booleans are not numbers.
//! STRING takes text and scalars. A non-empty `dv` restricts values to its exact items and
//! `a to b` ranges. Keys the template does not know are faulty (the 3.0.5 SDK; 3.0.1 dropped
//! them silently). Faulty values are sent as text, right-trimmed. Pure functions.

use serde_json::{Map, Number, Value};

use super::attributes::{AttributeDef, AttributeGroup, DataType, DvItem, parse_dv};

/// Where a value lives: a plain attribute (`name`) or a child of an object attribute.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttrPath {
    /// The object attribute's name, for children of one.
    pub parent: Option<String>,
    /// The attribute's local name.
    pub name: String,
}

impl AttrPath {
    /// A plain attribute.
    pub fn plain(name: impl Into<String>) -> Self {
        AttrPath {
            parent: None,
            name: name.into(),
        }
    }

    /// A child of an object attribute.
    pub fn child(parent: impl Into<String>, name: impl Into<String>) -> Self {
        AttrPath {
            parent: Some(parent.into()),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.parent {
            Some(p) => write!(f, "{p}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A valid numeric value (what edge devices aggregate and rules compare).
#[derive(Debug, Clone, PartialEq)]
pub struct NumericValue {
    /// Which attribute.
    pub path: AttrPath,
    /// The value.
    pub value: f64,
    /// Whether it was an integer.
    pub integer: bool,
}

/// One device's data after validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Judged {
    /// Good values, shaped like the input (object attributes nested).
    pub good: Map<String, Value>,
    /// Faulty values as text, shaped like the input.
    pub faulty: Map<String, Value>,
    /// Good NUMBER/FLOAT values.
    pub numeric: Vec<NumericValue>,
    /// Number of good leaf values.
    pub good_count: usize,
    /// Number of faulty leaf values.
    pub faulty_count: usize,
}

impl Judged {
    fn put(&mut self, parent: Option<&str>, name: &str, good: bool, value: Value) {
        let target = if good {
            self.good_count += 1;
            &mut self.good
        } else {
            self.faulty_count += 1;
            &mut self.faulty
        };
        match parent {
            None => {
                target.insert(name.to_owned(), value);
            }
            Some(p) => {
                let entry = target
                    .entry(p.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = entry {
                    m.insert(name.to_owned(), value);
                }
            }
        }
    }
}

/// `data` taken as it is, every value good: a 2.1 device without attributes (`has.attr` 0)
/// sends everything on `rpt`, as the lite SDK (which never validates) and the 2.1 SDK with
/// `skipValidation` do. No numeric values: without attributes there are no edge windows.
pub fn unvalidated(data: &Map<String, Value>) -> Judged {
    let good_count = data
        .values()
        .map(|v| match v {
            Value::Object(o) => o.len(),
            _ => 1,
        })
        .sum();
    Judged {
        good: data.clone(),
        good_count,
        ..Judged::default()
    }
}

/// A settings list (`set` of a 202 answer, or a template's `settings`): `[{"ln","dt","dv"}]`.
/// `None` when `set` is no such list.
pub fn settings(set: &Value) -> Option<Vec<AttributeDef>> {
    serde_json::from_value(set.clone()).ok()
}

/// Whether `value` may be reported for the setting `key`: it must be one of `defs` and pass
/// its type and `dv` as telemetry does (the 2.1 SDK's `UpdateTwin` checks the same). The error
/// says why not.
pub fn check_setting(defs: &[AttributeDef], key: &str, value: &Value) -> Result<(), String> {
    let def = defs
        .iter()
        .find(|d| d.ln == key)
        .ok_or_else(|| format!("`{key}` is not one of the template's settings"))?;
    let mut j = Judged::default();
    judge_one(&mut j, None, def, value);
    if j.faulty_count == 0 {
        return Ok(());
    }
    Err(format!(
        "{value} is not a valid {} for setting `{key}`{}",
        def.dt.name(),
        def.dv
            .as_deref()
            .filter(|d| !d.trim().is_empty())
            .map(|d| format!(" (dv `{d}`)"))
            .unwrap_or_default()
    ))
}

/// Judges `data` of a device with tag `tag` against `attributes`.
pub fn judge(attributes: &[AttributeGroup], tag: &str, data: &Map<String, Value>) -> Judged {
    let mut out = Judged::default();
    for (key, value) in data {
        if let Value::Object(children) = value
            && let Some(group) = attributes
                .iter()
                .find(|g| g.is_object() && g.p == *key && g.tg == tag)
        {
            for (child, v) in children {
                match group.d.iter().find(|d| d.ln == *child) {
                    Some(def) => judge_one(&mut out, Some(key), def, v),
                    None => out.put(Some(key), child, false, faulty_text(v)),
                }
            }
            continue;
        }
        let def = attributes
            .iter()
            .filter(|g| !g.is_object() && (g.tg.is_empty() || g.tg == tag))
            .flat_map(|g| g.d.iter())
            .find(|d| d.ln == *key && d.tg == tag);
        match def {
            Some(def) => judge_one(&mut out, None, def, value),
            None => out.put(None, key, false, faulty_text(value)),
        }
    }
    out
}

fn judge_one(out: &mut Judged, parent: Option<&str>, def: &AttributeDef, value: &Value) {
    let dv = parse_dv(def.dv.as_deref());
    match def.dt {
        DataType::Number | DataType::Float => match as_number(value) {
            Some((x, n)) if dv.is_empty() || dv.iter().any(|i| number_matches(i, x)) => {
                out.numeric.push(NumericValue {
                    path: AttrPath {
                        parent: parent.map(str::to_owned),
                        name: def.ln.clone(),
                    },
                    value: x,
                    integer: n.is_i64() || n.is_u64(),
                });
                out.put(parent, &def.ln, true, Value::Number(n));
            }
            _ => out.put(parent, &def.ln, false, faulty_text(value)),
        },
        DataType::String => {
            let text = match value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            };
            let ok = text
                .as_deref()
                .is_some_and(|t| dv.is_empty() || dv.iter().any(|i| text_matches(i, t)));
            if ok {
                out.put(parent, &def.ln, true, value.clone());
            } else {
                out.put(parent, &def.ln, false, faulty_text(value));
            }
        }
        DataType::Object | DataType::Other(_) => out.put(parent, &def.ln, true, value.clone()),
    }
}

/// A number, or a numeric string (right-trimmed), as (value, JSON number).
fn as_number(value: &Value) -> Option<(f64, Number)> {
    match value {
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite()).map(|x| (x, n.clone())),
        Value::String(s) => {
            let s = s.trim_end();
            if let Ok(i) = s.parse::<i64>() {
                return Some((i as f64, Number::from(i)));
            }
            let x = s.parse::<f64>().ok().filter(|x| x.is_finite())?;
            Number::from_f64(x).map(|n| (x, n))
        }
        _ => None,
    }
}

fn number_matches(item: &DvItem, x: f64) -> bool {
    match item {
        DvItem::Range(a, b) => *a <= x && x <= *b,
        // An exact item is a number written in the template: equal means bit-for-bit equal.
        #[allow(clippy::float_cmp)]
        DvItem::Exact(s) => s.trim().parse::<f64>().is_ok_and(|v| v == x),
    }
}

fn text_matches(item: &DvItem, t: &str) -> bool {
    match item {
        DvItem::Exact(s) => s.trim() == t,
        DvItem::Range(a, b) => t.trim().parse::<f64>().is_ok_and(|x| *a <= x && x <= *b),
    }
}

/// How a faulty value is reported: text, right-trimmed.
pub fn faulty_text(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.trim_end().to_owned()),
        Value::Null => Value::String(String::new()),
        other => Value::String(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn atts() -> Vec<AttributeGroup> {
        serde_json::from_value(json!([
            {"p":"","tg":"","d":[
                {"ln":"temp","dt":0,"dv":"-40 to 85","tg":"gw"},
                {"ln":"ratio","dt":3,"dv":"","tg":"gw"},
                {"ln":"mode","dt":1,"dv":"auto, manual","tg":"gw"},
                {"ln":"label","dt":1,"dv":null,"tg":"gw"},
                {"ln":"level","dt":0,"dv":"1,2,3","tg":"sensor"}
            ]},
            {"p":"gyro","tg":"gw","dt":2,"d":[
                {"ln":"x","dt":0,"dv":"-10 to 10","tg":"gw"},
                {"ln":"y","dt":0,"dv":"","tg":"gw"}
            ]}
        ]))
        .unwrap()
    }

    #[allow(clippy::needless_pass_by_value)]
    fn data(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn splits_good_and_faulty_by_type_and_range() {
        let j = judge(
            &atts(),
            "gw",
            &data(
                json!({"temp": 21.5, "ratio": "0.25 ", "mode": "auto", "label": 7, "gyro": {"x": -1.2, "y": 3}}),
            ),
        );
        assert_eq!(
            Value::Object(j.good),
            json!({"temp": 21.5, "ratio": 0.25, "mode": "auto", "label": 7, "gyro": {"x": -1.2, "y": 3}})
        );
        assert!(j.faulty.is_empty());
        assert_eq!(j.numeric.len(), 4);
        assert_eq!(j.good_count, 6);

        let j = judge(
            &atts(),
            "gw",
            &data(
                json!({"temp": 99, "ratio": "abc  ", "mode": "off", "extra": 1, "gyro": {"x": 11, "z": 1}, "level": 2}),
            ),
        );
        assert_eq!(
            Value::Object(j.faulty),
            json!({"temp": "99", "ratio": "abc", "mode": "off", "extra": "1", "gyro": {"x": "11", "z": "1"}, "level": "2"})
        );
        assert!(j.good.is_empty());
        assert_eq!(j.faulty_count, 7);
    }

    #[test]
    fn tags_select_attributes_and_exact_numbers_match() {
        let j = judge(&atts(), "sensor", &data(json!({"level": "2", "temp": 1})));
        assert_eq!(Value::Object(j.good), json!({"level": 2}));
        assert_eq!(Value::Object(j.faulty), json!({"temp": "1"}));
        let j = judge(&atts(), "sensor", &data(json!({"level": 4})));
        assert_eq!(j.faulty_count, 1);
    }

    #[test]
    fn booleans_nulls_and_objects_are_not_numbers() {
        let j = judge(
            &atts(),
            "gw",
            &data(json!({"temp": true, "ratio": null, "label": {"a": 1}})),
        );
        assert_eq!(
            Value::Object(j.faulty),
            json!({"temp": "true", "ratio": "", "label": "{\"a\":1}"})
        );
    }
}
