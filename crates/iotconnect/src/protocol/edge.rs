//! Edge aggregation: valid NUMBER/FLOAT values of an edge device are collected per device and
//! attribute and, when the attribute's tumbling window (`tw`) ends, reduced to the functions its
//! `agt` bitmask selects, always in the order min, max, sum, avg, count, last value. Windows are
//! aligned to the moment the template was loaded (as the SDK's timers are) and run on a
//! monotonic clock passed in. Empty windows produce nothing.
//!
//! Unlike the Python SDK, values are kept per device, so two children sharing a tag are not
//! mixed into one aggregate. An attribute without `agt` gets all six functions (as message 2.1
//! always does).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Number, Value};

use super::Mono;
use super::attributes::{Agt, AttributeGroup, TwError, parse_tw};
use super::validate::{AttrPath, NumericValue};

/// One attribute's window.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    path: AttrPath,
    tag: String,
    tw: Duration,
    agt: Agt,
    next_end: Mono,
}

/// Running totals of one device's attribute in the current window.
#[derive(Debug, Clone, PartialEq)]
struct Acc {
    tag: String,
    min: f64,
    max: f64,
    sum: f64,
    count: u64,
    last: f64,
    all_int: bool,
}

/// One aggregate ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// Device unique id.
    pub device: String,
    /// Device tag.
    pub tag: String,
    /// Attribute.
    pub path: AttrPath,
    /// The selected functions' results, in the fixed order.
    pub values: Vec<Value>,
}

/// All windows of one edge device (gateway and children).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EdgeWindows {
    windows: Vec<Window>,
    acc: BTreeMap<(String, AttrPath), Acc>,
}

impl EdgeWindows {
    /// Windows for every numeric attribute of `attributes`, starting at `now`.
    pub fn from_attributes(attributes: &[AttributeGroup], now: Mono) -> Result<Self, TwError> {
        let mut windows = Vec::new();
        for g in attributes {
            for d in g.d.iter().filter(|d| d.dt.is_numeric()) {
                let (path, tag, tw) = if g.is_object() {
                    let path = AttrPath::child(g.p.clone(), d.ln.clone());
                    let tw = g.tw.as_deref().or(d.tw.as_deref());
                    (path, g.tg.clone(), tw)
                } else {
                    (AttrPath::plain(d.ln.clone()), d.tg.clone(), d.tw.as_deref())
                };
                let tw = parse_tw(&path.to_string(), tw)?;
                let agt = match d.agt.or(g.agt) {
                    None | Some(Agt(0)) => Agt::ALL,
                    Some(a) => a,
                };
                windows.push(Window {
                    path,
                    tag,
                    tw,
                    agt,
                    next_end: now + tw,
                });
            }
        }
        Ok(EdgeWindows {
            windows,
            acc: BTreeMap::new(),
        })
    }

    /// Number of attribute windows.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether there are no windows.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Adds a valid value of `device` (tag `tag`); values of attributes without a window are
    /// ignored.
    pub fn record(&mut self, device: &str, tag: &str, v: &NumericValue) {
        if !self
            .windows
            .iter()
            .any(|w| w.path == v.path && w.tag == tag)
        {
            return;
        }
        let acc = self
            .acc
            .entry((device.to_owned(), v.path.clone()))
            .or_insert_with(|| Acc {
                tag: tag.to_owned(),
                min: v.value,
                max: v.value,
                sum: 0.0,
                count: 0,
                last: v.value,
                all_int: true,
            });
        acc.min = acc.min.min(v.value);
        acc.max = acc.max.max(v.value);
        acc.sum += v.value;
        acc.count += 1;
        acc.last = v.value;
        acc.all_int &= v.integer;
    }

    /// Closes every window that ended at or before `now` and returns the aggregates of those
    /// that held values.
    pub fn due(&mut self, now: Mono) -> Vec<Aggregate> {
        let mut out = Vec::new();
        for w in &mut self.windows {
            if w.next_end > now {
                continue;
            }
            let keys: Vec<(String, AttrPath)> = self
                .acc
                .iter()
                .filter(|((_, p), a)| *p == w.path && a.tag == w.tag)
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                if let Some(acc) = self.acc.remove(&key) {
                    out.push(Aggregate {
                        device: key.0,
                        tag: acc.tag.clone(),
                        path: key.1,
                        values: reduce(&acc, w.agt),
                    });
                }
            }
            // Skip windows missed while nobody asked (a suspended process).
            let behind = now.saturating_sub(w.next_end).as_nanos() / w.tw.as_nanos().max(1);
            w.next_end += w.tw * (u32::try_from(behind).unwrap_or(u32::MAX - 1) + 1);
        }
        out
    }

    /// When the next window ends.
    pub fn next_wake(&self) -> Option<Mono> {
        self.windows.iter().map(|w| w.next_end).min()
    }

    /// When the last window now holding values ends (None: nothing pending).
    pub fn pending_until(&self) -> Option<Mono> {
        self.acc
            .iter()
            .filter_map(|((_, p), a)| {
                self.windows
                    .iter()
                    .find(|w| w.path == *p && w.tag == a.tag)
                    .map(|w| w.next_end)
            })
            .max()
    }
}

fn num(x: f64, integer: bool) -> Value {
    if integer && x.fract() == 0.0 && x.abs() < 9.0e15 {
        return Value::from(x as i64);
    }
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn reduce(a: &Acc, agt: Agt) -> Vec<Value> {
    let mut v = Vec::new();
    if agt.has(Agt::MIN) {
        v.push(num(a.min, a.all_int));
    }
    if agt.has(Agt::MAX) {
        v.push(num(a.max, a.all_int));
    }
    if agt.has(Agt::SUM) {
        v.push(num(a.sum, a.all_int));
    }
    if agt.has(Agt::AVG) {
        v.push(num(a.sum / a.count.max(1) as f64, false));
    }
    if agt.has(Agt::COUNT) {
        v.push(Value::from(a.count));
    }
    if agt.has(Agt::LAST) {
        v.push(num(a.last, a.all_int));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn atts() -> Vec<AttributeGroup> {
        serde_json::from_value(json!([
            {"p":"","tg":"","d":[
                {"ln":"temp","dt":0,"tg":"","tw":"10s","agt":63},
                {"ln":"hum","dt":3,"tg":"","tw":"5s","agt":9},
                {"ln":"name","dt":1,"tg":""}
            ]},
            {"p":"gyro","tg":"","tw":"10s","agt":3,"d":[{"ln":"x","dt":0,"tg":""}]}
        ]))
        .unwrap()
    }

    fn val(path: AttrPath, value: f64, integer: bool) -> NumericValue {
        NumericValue {
            path,
            value,
            integer,
        }
    }

    fn s(n: u64) -> Mono {
        Duration::from_secs(n)
    }

    #[test]
    fn windows_close_with_the_selected_functions_in_order() {
        let mut e = EdgeWindows::from_attributes(&atts(), s(0)).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e.next_wake(), Some(s(5)));
        for x in [10, 30, 20, 25, 15, 20] {
            e.record("dev", "", &val(AttrPath::plain("temp"), f64::from(x), true));
        }
        e.record("dev", "", &val(AttrPath::plain("hum"), 40.5, false));
        e.record("dev", "", &val(AttrPath::plain("hum"), 41.5, false));
        e.record("dev", "", &val(AttrPath::child("gyro", "x"), -1.5, false));
        let first = e.due(s(5));
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].path, AttrPath::plain("hum"));
        assert_eq!(first[0].values, vec![json!(40.5), json!(41.0)]);
        assert!(e.due(s(9)).is_empty());
        let mut second = e.due(s(10));
        second.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            second[0].values,
            vec![
                json!(10),
                json!(30),
                json!(120),
                json!(20.0),
                json!(6),
                json!(20)
            ]
        );
        assert_eq!(second[1].values, vec![json!(-1.5), json!(-1.5)]);
        assert!(e.due(s(20)).is_empty(), "empty windows send nothing");
    }

    #[test]
    fn devices_are_not_mixed_and_missed_windows_are_skipped() {
        let mut e = EdgeWindows::from_attributes(&atts(), s(0)).unwrap();
        e.record("a", "", &val(AttrPath::plain("temp"), 1.0, true));
        e.record("b", "", &val(AttrPath::plain("temp"), 3.0, true));
        assert_eq!(e.pending_until(), Some(s(10)));
        let out = e.due(s(35));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].values[2], json!(1));
        assert_eq!(out[1].values[2], json!(3));
        assert_eq!(e.next_wake(), Some(s(40)));
        assert_eq!(e.pending_until(), None);
    }

    #[test]
    fn numeric_attributes_need_a_valid_window() {
        let bad: Vec<AttributeGroup> = serde_json::from_value(
            json!([{"p":"","tg":"","d":[{"ln":"temp","dt":0,"tg":"","tw":"soon"}]}]),
        )
        .unwrap();
        let e = EdgeWindows::from_attributes(&bad, s(0)).unwrap_err();
        assert!(e.to_string().contains("`temp`"), "{e}");
    }
}
