//! The platform's message-2.1 half: the identity answer (broker, client id, username and the
//! topics of each kind, per platform), the answers to identity requests on `di` (201
//! attributes, 202 settings, 203 rules, 204 children, 205 pending OTA, 221/222 children),
//! telemetry on `rpt`/`flt`/`od` checked as 1.0's is, heartbeats, 2.1 acks, and operator
//! requests encoded as 2.1 C2D messages.
//!
//! Topics the platform hands out (the device never formats them):
//! - Azure: `devices/{id}/messages/events/cd={cd}&v=2.1&mt={n}&$.ct=application%2Fjson&$.ce=utf-8`
//!   with `mt` 0 rpt, 3 flt, 4 od, 5 hb, 6 ack, 7 dl (the lite SDK's real answer), `di=1` for
//!   `di`, and — the sim's choice, no real value was found — 2 `erpt` and 8 `erm`; C2D on
//!   `devices/{id}/messages/devicebound/#`; twin on `$iothub/twin/...`.
//! - AWS: `$aws/rules/msg_d2c_{kind}/{id}/{cd}/2.1/{n}` (the variant with the `cd` segment, so
//!   a device that formats topics instead of taking them fails here); C2D on `iot/{id}/cmd`;
//!   settings on the named shadow `setting_info`.

use serde_json::{Map, Value, json};

use super::handler::Endpoints;
use super::template::{DeviceEntry, DeviceTemplate};
use crate::protocol::attributes::{AttributeGroup, DataType};
use crate::protocol::v1::sync::DeviceRef;
use crate::protocol::v1::topics;
use crate::protocol::v2::Platform;

/// The company code the sim puts into topics.
pub const CD: &str = "EDGEW21";

/// The kinds of D2C topic, with their `mt` numbers.
pub const KINDS: [(&str, u8); 9] = [
    ("rpt", 0),
    ("di", 1),
    ("erpt", 2),
    ("flt", 3),
    ("od", 4),
    ("hb", 5),
    ("ack", 6),
    ("dl", 7),
    ("erm", 8),
];

/// The filter that catches AWS D2C topics.
pub const AWS_D2C_FILTER: &str = "$aws/rules/#";

fn azure_topic(id: &str, kind: &str, mt: u8) -> String {
    let sel = if kind == "di" {
        "di=1".to_owned()
    } else {
        format!("mt={mt}")
    };
    format!("devices/{id}/messages/events/cd={CD}&v=2.1&{sel}&$.ct=application%2Fjson&$.ce=utf-8")
}

fn aws_topic(id: &str, kind: &str, mt: u8) -> String {
    format!("$aws/rules/msg_d2c_{kind}/{id}/{CD}/2.1/{mt}")
}

/// The C2D topic the platform publishes to.
pub fn c2d_topic(pf: Platform, id: &str) -> String {
    match pf {
        Platform::Azure => topics::c2d_topic(id),
        Platform::Aws => format!("iot/{id}/cmd"),
    }
}

/// The AWS shadow topic prefix of a device.
pub fn aws_shadow(id: &str) -> String {
    format!("$aws/things/{id}/shadow/name/setting_info/")
}

/// Which device and kind an incoming D2C topic is, when it is a 2.1 one.
pub fn parse_d2c(topic: &str) -> Option<(Platform, String, &'static str)> {
    if let Some(rest) = topic.strip_prefix("$aws/rules/msg_d2c_") {
        let mut it = rest.split('/');
        let kind = it.next()?;
        let id = it.next()?;
        let kind = KINDS.iter().find(|(k, _)| *k == kind)?.0;
        return Some((Platform::Aws, id.to_owned(), kind));
    }
    let id = topics::device_of_d2c(topic)?;
    let tail = topic.split_once("/messages/events/")?.1;
    if !tail.split('&').any(|p| p == "v=2.1") {
        return None;
    }
    let kind = if tail.split('&').any(|p| p == "di=1") {
        "di"
    } else {
        let mt: u8 = tail
            .split('&')
            .find_map(|p| p.strip_prefix("mt="))?
            .parse()
            .ok()?;
        KINDS.iter().find(|(_, n)| *n == mt)?.0
    };
    Some((Platform::Azure, id.to_owned(), kind))
}

/// 1.0 data types to 2.1's (NUMBER and FLOAT → 3 DECIMAL, STRING → 4, OBJECT → 12).
fn dt_21(dt: DataType) -> i64 {
    match dt {
        DataType::Number | DataType::Float => 3,
        DataType::String => 4,
        DataType::Object => 12,
        DataType::Other(n) => n,
    }
}

/// The template's attributes as a 201 answer carries them.
pub fn attributes_21(groups: &[AttributeGroup]) -> Value {
    let mut v = serde_json::to_value(groups).unwrap_or(Value::Array(Vec::new()));
    if let Value::Array(gs) = &mut v {
        for (g, src) in gs.iter_mut().zip(groups) {
            if let Some(dt) = src.dt {
                g["dt"] = json!(dt_21(dt));
            }
            if let Some(Value::Array(ds)) = g.get_mut("d") {
                for (d, a) in ds.iter_mut().zip(&src.d) {
                    d["dt"] = json!(dt_21(a.dt));
                }
            }
        }
    }
    v
}

/// The identity answer's `d` for `dev` on `pf`.
pub fn identity(
    pf: Platform,
    dev: &DeviceEntry,
    tpl: &DeviceTemplate,
    endpoints: &Endpoints,
    now: &str,
) -> Value {
    let id = &dev.unique_id;
    let (h, port) = endpoints.host_port(dev.auth);
    let mut t = Map::new();
    for (kind, mt) in KINDS {
        if matches!(kind, "erpt" | "erm") && !tpl.edge {
            continue;
        }
        let topic = match pf {
            Platform::Azure => azure_topic(id, kind, mt),
            Platform::Aws => aws_topic(id, kind, mt),
        };
        t.insert(kind.into(), json!(topic));
    }
    match pf {
        Platform::Azure => {
            t.insert("c2d".into(), json!(topics::azure_c2d_filter(id)));
            t.insert(
                "set".into(),
                json!({"pub": "$iothub/twin/PATCH/properties/reported/?$rid={version}",
                       "sub": topics::TWIN_DESIRED_FILTER,
                       "pubForAll": "$iothub/twin/GET/?$rid=0",
                       "subForAll": topics::TWIN_RES_FILTER}),
            );
        }
        Platform::Aws => {
            let s = aws_shadow(id);
            t.insert("c2d".into(), json!(c2d_topic(pf, id)));
            t.insert(
                "set".into(),
                json!({"pub": format!("{s}report"), "sub": format!("{s}property-shadow"),
                       "pubForAll": format!("{s}get"), "subForAll": format!("{s}get/all")}),
            );
        }
    }
    let gtw = (!dev.children.is_empty())
        .then(|| json!({"tg": dev.tag, "id": id, "g": format!("gw-{id}")}));
    json!({
        "ec": 0, "ct": 200,
        "meta": {"at": dev.auth, "df": tpl.df, "cd": CD, "gtw": gtw, "edge": u8::from(tpl.edge),
                 "pf": u8::from(pf == Platform::Aws), "hwv": "", "swv": "", "v": 2.1},
        "has": {"d": u8::from(!dev.children.is_empty()), "attr": u8::from(!tpl.attributes.is_empty()),
                "set": u8::from(!tpl.settings.is_null()), "r": u8::from(!tpl.rules.is_empty()), "ota": 0},
        "p": {"n": "mqtt", "h": h, "p": port, "id": id,
              // IoT Hub's username; AWS ignores one, and identity answers carry it there too.
              "un": format!("{}/{id}/?api-version=2018-06-30", if h.is_empty() { "hub" } else { &h }),
              "topics": t},
        "dt": now
    })
}

/// The template's settings as a 202 answer carries them (`[{"ln","dt","dv"}]`, 2.1 types).
pub fn settings_21(settings: &Value) -> Value {
    let mut v = settings.clone();
    if let Value::Array(items) = &mut v {
        for item in items {
            if let Some(dt) = item.get("dt").and_then(Value::as_i64) {
                item["dt"] = json!(dt_21(DataType::from_code(dt)));
            }
        }
    }
    v
}

/// The answer to an identity request `mt` (on the device's C2D topic), `None` for codes the
/// platform does not answer. `refs` are the device's devices now (itself first, then the
/// children the template and earlier 221/222 requests left).
pub fn reply(
    mt: i64,
    d: &Value,
    dev: &DeviceEntry,
    tpl: &DeviceTemplate,
    refs: &[DeviceRef],
) -> Option<Value> {
    Some(match mt {
        200 => json!({"d": {"ec": 0, "ct": 200}}),
        201 => json!({"d": {"ec": 0, "ct": 201, "att": attributes_21(&tpl.attributes)}}),
        202 => json!({"d": {"ec": 0, "ct": 202, "set": settings_21(&tpl.settings)}}),
        203 => json!({"d": {"ec": 0, "ct": 203, "r": tpl.rules}}),
        204 => {
            let children: Vec<Value> = refs
                .iter()
                .filter(|r| r.id != dev.unique_id)
                .map(|r| json!({"id": r.id, "tg": r.tg}))
                .collect();
            json!({"d": {"ec": 0, "ct": 204, "d": children}})
        }
        205 => json!({"d": {"ec": 0, "ct": 205, "ota": null}}),
        221 => {
            let dd = d.get("d").cloned().unwrap_or(Value::Null);
            let s = |k: &str| dd.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            // The gateway template's tags: those its attributes name.
            let tags: Vec<&str> = tpl
                .attributes
                .iter()
                .flat_map(|g| {
                    std::iter::once(g.tg.as_str()).chain(g.d.iter().map(|a| a.tg.as_str()))
                })
                .filter(|t| !t.is_empty())
                .collect();
            let ec = if s("tg").is_empty() {
                1
            } else if s("id").is_empty() {
                2
            } else if s("dn").is_empty() {
                3
            } else if s("g") != format!("gw-{}", dev.unique_id) {
                4
            } else if s("tg") == dev.tag {
                7
            } else if !tags.contains(&s("tg").as_str()) {
                6
            } else if refs.iter().any(|r| r.id == s("id")) {
                8
            } else if s("id").len() > 128 {
                9
            } else {
                0
            };
            json!({"d": {"ec": ec, "ct": 221}})
        }
        // No 222 codes are documented; the sim answers 1 for an id that is not a child.
        222 => {
            let id = d.pointer("/d/id").and_then(Value::as_str).unwrap_or("");
            let known = refs.iter().skip(1).any(|r| r.id == id);
            json!({"d": {"ec": i32::from(!known), "ct": 222}})
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_back() {
        assert_eq!(
            parse_d2c(&azure_topic("dev", "flt", 3)),
            Some((Platform::Azure, "dev".into(), "flt"))
        );
        assert_eq!(
            parse_d2c(&azure_topic("dev", "di", 1)),
            Some((Platform::Azure, "dev".into(), "di"))
        );
        assert_eq!(
            parse_d2c(&aws_topic("dev", "ack", 6)),
            Some((Platform::Aws, "dev".into(), "ack"))
        );
        assert_eq!(parse_d2c("devices/dev/messages/events/"), None);
    }
}
