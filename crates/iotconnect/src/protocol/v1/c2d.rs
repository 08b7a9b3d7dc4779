//! C2D messages (message 1.0), both directions: `{"cmdType": "0x01", "data": {...}}` on the
//! device's `devicebound` topic. Every code the 1.0 SDKs handle is parsed: 0x01 device command,
//! 0x02 OTA (with `urls` as plain strings, `{url, tag}` or `{url, uniqueId}`), 0x03 module update,
//! 0x10–0x13 and 0x15 re-sync of one section, `sync` / `resetpwd` / `updatecrt`, 0x17 data
//! frequency, 0x99 stop; 0x16 (connection status) is made locally on connect and disconnect.
//! Hostile input gives an error naming the field, never a panic.

use serde_json::{Map, Value, json};

use super::sync::{DeviceRef, SyncScope};

/// A device command (0x01), also the common part of an OTA.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceCommand {
    /// Company id (`cpid`; `cpId` accepted).
    pub cp_id: String,
    /// Command guid.
    pub guid: String,
    /// Target device (a child for gateway children).
    pub unique_id: String,
    /// Command text (`"reboot now"`, `"ota"`).
    pub command: String,
    /// `ack` flag as sent.
    pub ack: bool,
    /// Acknowledgement id; an ack is sent when present.
    pub ack_id: Option<String>,
}

/// Firmware versions of an OTA.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OtaVersion {
    /// Software version.
    pub sw: String,
    /// Hardware version.
    pub hw: String,
}

/// One OTA download.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OtaUrl {
    /// Where to download.
    pub url: String,
    /// Target tag (gateway OTA, documented shape).
    pub tag: Option<String>,
    /// Target child (the Python SDK's shape).
    pub unique_id: Option<String>,
    /// File name, when given.
    pub file_name: Option<String>,
}

/// An OTA (0x02).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OtaCommand {
    /// The command part.
    pub command: DeviceCommand,
    /// Versions.
    pub ver: OtaVersion,
    /// Downloads.
    pub urls: Vec<OtaUrl>,
}

/// A parsed C2D message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum C2d {
    /// 0x01.
    Command(DeviceCommand),
    /// 0x02.
    Ota(OtaCommand),
    /// 0x03 (C library only): passed to the user as data.
    ModuleUpdate(Value),
    /// 0x10–0x13, 0x15, `sync`, `resetpwd`: sync `scope` again.
    Resync {
        /// The `cmdType`.
        code: String,
        /// What to sync.
        scope: SyncScope,
    },
    /// `updatecrt`: ignored by the SDK.
    UpdateCertificate,
    /// 0x16 (made locally).
    ConnectionStatus {
        /// Connected or not.
        connected: bool,
    },
    /// 0x17: new data frequency, seconds.
    DataFrequency {
        /// Seconds.
        df: u64,
    },
    /// 0x99: the device is barred.
    Stop,
    /// Any other code (printed and ignored).
    Unknown {
        /// The `cmdType`.
        code: String,
    },
}

/// Why a C2D payload was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum C2dError {
    /// Not JSON.
    #[error("C2D message is not JSON: {0}")]
    Json(String),
    /// A field is missing or has the wrong type.
    #[error("C2D message {cmd_type}: field `{field}` {problem}")]
    Field {
        /// The `cmdType` (or `?`).
        cmd_type: String,
        /// Field path, e.g. `data.urls[1].url`.
        field: String,
        /// What was wrong.
        problem: &'static str,
    },
}

fn field(cmd_type: &str, field: impl Into<String>, problem: &'static str) -> C2dError {
    C2dError::Field {
        cmd_type: cmd_type.to_owned(),
        field: field.into(),
        problem,
    }
}

/// A string field that may be absent, null, a string, or a number.
fn opt_text(
    m: &Map<String, Value>,
    key: &str,
    ct: &str,
    path: &str,
) -> Result<Option<String>, C2dError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(field(ct, format!("{path}{key}"), "must be text")),
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

fn command_part(data: &Map<String, Value>, ct: &str) -> Result<DeviceCommand, C2dError> {
    let cp_id = match opt_text(data, "cpid", ct, "data.")? {
        Some(c) => c,
        None => opt_text(data, "cpId", ct, "data.")?.unwrap_or_default(),
    };
    Ok(DeviceCommand {
        cp_id,
        guid: opt_text(data, "guid", ct, "data.")?.unwrap_or_default(),
        unique_id: opt_text(data, "uniqueId", ct, "data.")?.unwrap_or_default(),
        command: opt_text(data, "command", ct, "data.")?.unwrap_or_default(),
        ack: truthy(data.get("ack")),
        ack_id: opt_text(data, "ackId", ct, "data.")?.filter(|s| !s.is_empty()),
    })
}

fn ota(data: &Map<String, Value>, ct: &str) -> Result<OtaCommand, C2dError> {
    let command = command_part(data, ct)?;
    let ver = match data.get("ver") {
        None | Some(Value::Null) => OtaVersion::default(),
        Some(Value::Object(v)) => OtaVersion {
            sw: opt_text(v, "sw", ct, "data.ver.")?.unwrap_or_default(),
            hw: opt_text(v, "hw", ct, "data.ver.")?.unwrap_or_default(),
        },
        Some(_) => return Err(field(ct, "data.ver", "must be an object {sw, hw}")),
    };
    let mut urls = Vec::new();
    match data.get("urls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("data.urls[{i}].");
                urls.push(match item {
                    Value::String(s) => OtaUrl {
                        url: s.clone(),
                        ..OtaUrl::default()
                    },
                    Value::Object(o) => OtaUrl {
                        url: opt_text(o, "url", ct, &path)?
                            .ok_or_else(|| field(ct, format!("{path}url"), "is missing"))?,
                        tag: opt_text(o, "tag", ct, &path)?.filter(|s| !s.is_empty()),
                        unique_id: opt_text(o, "uniqueId", ct, &path)?.filter(|s| !s.is_empty()),
                        file_name: opt_text(o, "fileName", ct, &path)?.filter(|s| !s.is_empty()),
                    },
                    _ => {
                        return Err(field(
                            ct,
                            format!("data.urls[{i}]"),
                            "must be a URL or {url, tag|uniqueId}",
                        ));
                    }
                });
            }
        }
        Some(_) => return Err(field(ct, "data.urls", "must be an array")),
    }
    // The oldest shape put the URL in the command text: "ota https://…".
    if urls.is_empty()
        && let Some(url) = command.command.strip_prefix("ota ")
    {
        urls.push(OtaUrl {
            url: url.trim().to_owned(),
            ..OtaUrl::default()
        });
    }
    if urls.is_empty() {
        return Err(field(
            ct,
            "data.urls",
            "is empty: an OTA needs at least one URL",
        ));
    }
    Ok(OtaCommand { command, ver, urls })
}

impl C2d {
    /// Parses a C2D payload.
    pub fn parse(payload: &[u8]) -> Result<C2d, C2dError> {
        let v: Value =
            serde_json::from_slice(payload).map_err(|e| C2dError::Json(e.to_string()))?;
        let Value::Object(top) = v else {
            return Err(field("?", "(message)", "must be a JSON object"));
        };
        let ct = match top.get("cmdType") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(field("?", "cmdType", "must be text such as \"0x01\"")),
            None => return Err(field("?", "cmdType", "is missing")),
        };
        let empty = Map::new();
        let data = match top.get("data") {
            Some(Value::Object(d)) => d,
            None | Some(Value::Null) => &empty,
            Some(_) => return Err(field(&ct, "data", "must be an object")),
        };
        let need_data = |ct: &str| {
            if data.is_empty() {
                Err(field(ct, "data", "is missing"))
            } else {
                Ok(())
            }
        };
        let resync = |scope| C2d::Resync {
            code: ct.clone(),
            scope,
        };
        Ok(match ct.to_ascii_lowercase().as_str() {
            "0x01" => {
                need_data(&ct)?;
                C2d::Command(command_part(data, &ct)?)
            }
            "0x02" => {
                need_data(&ct)?;
                C2d::Ota(ota(data, &ct)?)
            }
            "0x03" => C2d::ModuleUpdate(Value::Object(data.clone())),
            "0x10" => resync(SyncScope::Attribute),
            "0x11" => resync(SyncScope::Setting),
            "0x12" | "resetpwd" => resync(SyncScope::Protocol),
            "0x13" => resync(SyncScope::Device),
            "0x15" => resync(SyncScope::Rule),
            "sync" => resync(SyncScope::All),
            "updatecrt" => C2d::UpdateCertificate,
            "0x16" => C2d::ConnectionStatus {
                connected: truthy(data.get("command")),
            },
            "0x17" => {
                let df = match data.get("df") {
                    Some(Value::Number(n)) => n.as_u64(),
                    Some(Value::String(s)) => s.trim().parse().ok(),
                    _ => None,
                };
                C2d::DataFrequency {
                    df: df.ok_or_else(|| field(&ct, "data.df", "must be a number of seconds"))?,
                }
            }
            "0x99" => C2d::Stop,
            _ => C2d::Unknown { code: ct.clone() },
        })
    }

    /// The `cmdType` of this message.
    pub fn code(&self) -> String {
        match self {
            C2d::Command(_) => "0x01".into(),
            C2d::Ota(_) => "0x02".into(),
            C2d::ModuleUpdate(_) => "0x03".into(),
            C2d::Resync { code, .. } | C2d::Unknown { code } => code.clone(),
            C2d::UpdateCertificate => "updatecrt".into(),
            C2d::ConnectionStatus { .. } => "0x16".into(),
            C2d::DataFrequency { .. } => "0x17".into(),
            C2d::Stop => "0x99".into(),
        }
    }

    /// The JSON the platform sends (what the cloud side publishes).
    pub fn to_json(&self) -> Value {
        let ct = self.code();
        let data = match self {
            C2d::Command(c) => command_json(c, &ct),
            C2d::Ota(o) => {
                let mut d = command_json(&o.command, &ct);
                d.insert("ver".into(), json!({"sw": o.ver.sw, "hw": o.ver.hw}));
                let urls = o.urls.iter().map(|u| {
                    let mut m = Map::new();
                    m.insert("url".into(), Value::from(u.url.clone()));
                    for (k, v) in [
                        ("tag", &u.tag),
                        ("uniqueId", &u.unique_id),
                        ("fileName", &u.file_name),
                    ] {
                        if let Some(v) = v {
                            m.insert(k.into(), Value::from(v.clone()));
                        }
                    }
                    Value::Object(m)
                });
                d.insert("urls".into(), Value::Array(urls.collect()));
                d
            }
            C2d::ModuleUpdate(v) => v.as_object().cloned().unwrap_or_default(),
            C2d::ConnectionStatus { connected } => {
                let mut m = Map::new();
                m.insert(
                    "command".into(),
                    Value::from(if *connected { "True" } else { "False" }),
                );
                m
            }
            C2d::DataFrequency { df } => {
                let mut m = Map::new();
                m.insert("df".into(), Value::from(*df));
                m
            }
            C2d::Resync { .. } | C2d::UpdateCertificate | C2d::Stop | C2d::Unknown { .. } => {
                Map::new()
            }
        };
        json!({"cmdType": ct, "data": data})
    }
}

fn command_json(c: &DeviceCommand, ct: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("cpid".into(), Value::from(c.cp_id.clone()));
    m.insert("guid".into(), Value::from(c.guid.clone()));
    m.insert("uniqueId".into(), Value::from(c.unique_id.clone()));
    m.insert("command".into(), Value::from(c.command.clone()));
    m.insert("ack".into(), Value::from(c.ack));
    m.insert(
        "ackId".into(),
        c.ack_id.clone().map_or(Value::Null, Value::from),
    );
    m.insert("cmdType".into(), Value::from(ct));
    m
}

/// The 0x16 message the SDK hands to the device callback on connect/disconnect.
pub fn connection_status(cp_id: &str, unique_id: &str, connected: bool) -> Value {
    json!({"cmdType": "0x16", "data": {
        "cpId": cp_id, "guid": "", "uniqueId": unique_id,
        "command": if connected { "True" } else { "False" },
        "ack": "False", "ackId": "", "cmdType": "0x16"
    }})
}

/// The synthetic 0x01 an edge rule delivers to the device callback (no ack expected).
pub fn rule_command(cp_id: &str, unique_id: &str, command: &str) -> Value {
    json!({"cpId": cp_id, "guid": "", "uniqueId": unique_id, "command": command,
        "ack": true, "ackId": null, "cmdType": "0x01"})
}

/// The downloads for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtaTarget {
    /// The device.
    pub unique_id: String,
    /// `childId` of its acknowledgement: the device for a child, empty for the gateway.
    pub child_id: String,
    /// Its URLs.
    pub urls: Vec<OtaUrl>,
}

/// Groups an OTA's URLs by target device.
pub fn ota_targets(ota: &OtaCommand, devices: &[DeviceRef], gateway: &str) -> Vec<OtaTarget> {
    let mut out: Vec<OtaTarget> = Vec::new();
    let mut add = |id: &str, url: &OtaUrl| {
        if let Some(t) = out.iter_mut().find(|t| t.unique_id == id) {
            t.urls.push(url.clone());
        } else {
            out.push(OtaTarget {
                unique_id: id.to_owned(),
                child_id: if id == gateway {
                    String::new()
                } else {
                    id.to_owned()
                },
                urls: vec![url.clone()],
            });
        }
    };
    for u in &ota.urls {
        if let Some(id) = &u.unique_id {
            add(id, u);
        } else if let Some(tag) = &u.tag {
            let matching: Vec<&DeviceRef> = devices.iter().filter(|d| &d.tg == tag).collect();
            if matching.is_empty() {
                add(gateway, u);
            }
            for d in matching {
                add(&d.id, u);
            }
        } else if !ota.command.unique_id.is_empty() && ota.command.unique_id != gateway {
            add(&ota.command.unique_id, u);
        } else {
            add(gateway, u);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(u: &str, tag: Option<&str>, id: Option<&str>) -> OtaUrl {
        OtaUrl {
            url: u.into(),
            tag: tag.map(Into::into),
            unique_id: id.map(Into::into),
            file_name: None,
        }
    }

    #[test]
    fn urls_are_grouped_by_device() {
        let devices = vec![
            DeviceRef {
                id: "gw".into(),
                tg: "g".into(),
            },
            DeviceRef {
                id: "c1".into(),
                tg: "s".into(),
            },
            DeviceRef {
                id: "c2".into(),
                tg: "s".into(),
            },
        ];
        let ota = OtaCommand {
            command: DeviceCommand {
                unique_id: "gw".into(),
                ..DeviceCommand::default()
            },
            urls: vec![
                url("https://x/a", None, None),
                url("https://x/b", Some("s"), None),
                url("https://x/c", None, Some("c2")),
            ],
            ..OtaCommand::default()
        };
        let t = ota_targets(&ota, &devices, "gw");
        assert_eq!(t.len(), 3);
        assert_eq!(
            (t[0].unique_id.as_str(), t[0].child_id.as_str()),
            ("gw", "")
        );
        assert_eq!(
            (t[1].unique_id.as_str(), t[1].child_id.as_str()),
            ("c1", "c1")
        );
        assert_eq!(t[2].unique_id, "c2");
        assert_eq!(t[2].urls.len(), 2);
    }
}
