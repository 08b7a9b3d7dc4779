//! 2.1 cloud-to-device messages: flat JSON with a numeric `ct` on `topics.c2d`, or, for the
//! answers to the device's identity requests, `{"d":{"ct":20x,"ec":0,…}}`. `v` may be the
//! string `"2.1"` (the libraries) or the number `2.1` (the docs); both are accepted.
//!
//! | ct | meaning |
//! |---|---|
//! | 0 | device command (`cmd`, `ack`, `id` for a child) |
//! | 1 | OTA (`ack`, `sw`, `hw`, `urls[{url, fileName, tg}]`) |
//! | 2 | module command |
//! | 101–104 | refresh attributes / settings / rules / children: ask 201–204 again |
//! | 105 | data frequency (`df`) |
//! | 106–109 | device deleted / disabled / released / stop: stop for good |
//! | 110 / 111 | start (`f` seconds) / stop the heartbeat |
//! | 200–205, 221, 222 | answers to identity requests |

use serde_json::{Map, Value, json};

use crate::protocol::v1::c2d::OtaUrl;

/// A parsed 2.1 C2D message.
#[derive(Debug, Clone, PartialEq)]
pub enum C2d21 {
    /// ct 0: a device command.
    Command {
        /// Command text.
        cmd: String,
        /// Acknowledgement id (when the template asks for acks).
        ack: Option<String>,
        /// A child's unique id (gateways).
        id: Option<String>,
    },
    /// ct 1: OTA.
    Ota {
        /// Acknowledgement id.
        ack: Option<String>,
        /// Software version.
        sw: String,
        /// Hardware version.
        hw: String,
        /// Downloads.
        urls: Vec<OtaUrl>,
    },
    /// ct 2: a module command.
    Module {
        /// Command text (or the module name).
        cmd: String,
        /// Acknowledgement id.
        ack: Option<String>,
        /// A child's unique id.
        id: Option<String>,
    },
    /// 101–104: ask again with this `mt` (201–204).
    Refresh {
        /// The identity request to send.
        mt: u16,
    },
    /// 105: new data frequency.
    DataFrequency {
        /// Seconds.
        df: u64,
    },
    /// 106–109: stop for good.
    Stop {
        /// Which (106 deleted, 107 disabled, 108 released, 109 stop).
        ct: i64,
    },
    /// 110: heartbeat every `f` seconds.
    HeartbeatStart {
        /// Seconds.
        f: u64,
    },
    /// 111: no more heartbeats.
    HeartbeatStop,
    /// An answer to an identity request (`{"d":{"ct":…,"ec":…}}`).
    Reply {
        /// 200–205, 221, 222.
        ct: i64,
        /// `ec`.
        ec: i64,
        /// The whole `d`.
        d: Value,
    },
    /// A `ct` this agent does not know.
    Unknown {
        /// The code.
        ct: i64,
    },
}

/// Why a C2D message was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("2.1 C2D message not understood: {0}")]
pub struct C2dError(pub String);

fn text(m: &Map<String, Value>, k: &str) -> Option<String> {
    match m.get(k)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(m: &Map<String, Value>, k: &str) -> Option<u64> {
    match m.get(k)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|x| x.max(0.0) as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn ct_of(m: &Map<String, Value>) -> Option<i64> {
    match m.get("ct")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl C2d21 {
    /// Parses one message.
    pub fn parse(payload: &[u8]) -> Result<C2d21, C2dError> {
        let v: Value =
            serde_json::from_slice(payload).map_err(|e| C2dError(format!("not JSON: {e}")))?;
        let Value::Object(m) = v else {
            return Err(C2dError("not a JSON object".into()));
        };
        if let Some(Value::Object(d)) = m.get("d")
            && let Some(ct) = ct_of(d)
        {
            return Ok(C2d21::Reply {
                ct,
                ec: d.get("ec").and_then(Value::as_i64).unwrap_or(0),
                d: Value::Object(d.clone()),
            });
        }
        let ct = ct_of(&m).ok_or_else(|| C2dError("no numeric `ct`".into()))?;
        Ok(match ct {
            0 | 2 => {
                let cmd = text(&m, "cmd").unwrap_or_default();
                let (ack, id) = (text(&m, "ack"), text(&m, "id"));
                if ct == 0 {
                    C2d21::Command { cmd, ack, id }
                } else {
                    C2d21::Module { cmd, ack, id }
                }
            }
            1 => {
                let urls = match m.get("urls") {
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(|u| match u {
                            Value::String(s) => Some(OtaUrl {
                                url: s.clone(),
                                ..OtaUrl::default()
                            }),
                            Value::Object(o) => Some(OtaUrl {
                                url: text(o, "url")?,
                                tag: text(o, "tg"),
                                unique_id: text(o, "id"),
                                file_name: text(o, "fileName"),
                            }),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                C2d21::Ota {
                    ack: text(&m, "ack"),
                    sw: text(&m, "sw").unwrap_or_default(),
                    hw: text(&m, "hw").unwrap_or_default(),
                    urls,
                }
            }
            101..=104 => C2d21::Refresh {
                mt: 100 + ct as u16,
            },
            105 => C2d21::DataFrequency {
                df: number(&m, "df").ok_or_else(|| C2dError("ct 105 without `df`".into()))?,
            },
            106..=109 => C2d21::Stop { ct },
            110 => C2d21::HeartbeatStart {
                f: number(&m, "f")
                    .filter(|f| *f > 0)
                    .ok_or_else(|| C2dError("ct 110 without a positive `f`".into()))?,
            },
            111 => C2d21::HeartbeatStop,
            ct => C2d21::Unknown { ct },
        })
    }

    /// What a stop code means.
    pub fn stop_reason(ct: i64) -> &'static str {
        match ct {
            106 => "the device was deleted",
            107 => "the device was disabled",
            108 => "the device was released",
            _ => "the platform stopped the device",
        }
    }
}

/// A command message as the platform sends it (`v` as a string, as the libraries do).
pub fn command(ct: i64, cmd: &str, ack: Option<&str>, id: Option<&str>) -> Value {
    let mut v = json!({"v": "2.1", "ct": ct, "cmd": cmd});
    if let Some(a) = ack {
        v["ack"] = json!(a);
    }
    if let Some(i) = id {
        v["id"] = json!(i);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_test_vectors() {
        // iotconnect-lib tests/test_c2d.py shapes.
        let c =
            C2d21::parse(br#"{"v":"2.1","ct":0,"cmd":"test enabled","ack":"ABCDEFG"}"#).unwrap();
        assert_eq!(
            c,
            C2d21::Command {
                cmd: "test enabled".into(),
                ack: Some("ABCDEFG".into()),
                id: None
            }
        );
        let o = C2d21::parse(br#"{"v":2.1,"ct":1,"cmd":"ota","ack":"A1","sw":"1.5","hw":"1","urls":[{"url":"https://h/f.bin","fileName":"file1.bin"}]}"#).unwrap();
        let C2d21::Ota { urls, sw, .. } = o else {
            panic!("{o:?}")
        };
        assert_eq!(
            (sw.as_str(), urls[0].file_name.as_deref()),
            ("1.5", Some("file1.bin"))
        );
        assert_eq!(
            C2d21::parse(br#"{"v":"2.1","ct":110,"f":"5"}"#).unwrap(),
            C2d21::HeartbeatStart { f: 5 }
        );
        assert_eq!(
            C2d21::parse(br#"{"ct":102}"#).unwrap(),
            C2d21::Refresh { mt: 202 }
        );
        assert_eq!(
            C2d21::parse(br#"{"ct":107}"#).unwrap(),
            C2d21::Stop { ct: 107 }
        );
        assert_eq!(
            C2d21::parse(br#"{"ct":116}"#).unwrap(),
            C2d21::Unknown { ct: 116 }
        );
        let r = C2d21::parse(br#"{"d":{"ec":0,"ct":201,"att":[]}}"#).unwrap();
        assert!(matches!(r, C2d21::Reply { ct: 201, ec: 0, .. }));
        assert!(C2d21::parse(br#"{"ct":110}"#).is_err());
        assert!(C2d21::parse(b"[1]").is_err());
    }
}
