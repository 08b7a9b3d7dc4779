//! The 2.1 identity answer (`GET {bu}/uid/{duid}`): `meta` (auth type, `df`, company code `cd`,
//! gateway, edge flag), `has` (which lists to fetch over MQTT), and `p` (broker host, port,
//! client id, username and the topic of every message kind). Topics are taken as given, never
//! formatted: AWS deployments exist with and without the `cd` segment.
//!
//! Real answers: an Azure one in the early lite SDK (`identity_json.py`), an AWS one in
//! `iotc-c-lib` `tests/unit/device_rest_api.c`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{V2Error, identity_ec, unwrap_d};

fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => matches!(s.trim(), "1" | "true" | "True"),
        _ => false,
    })
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|x| x.max(0.0) as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// `meta.gtw`: the gateway this device is, when it is one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    /// The gateway's own tag.
    #[serde(default)]
    pub tg: String,
    /// Its unique id.
    #[serde(default)]
    pub id: String,
    /// Its guid (child create needs it).
    #[serde(default)]
    pub g: String,
}

/// `meta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Auth type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
    /// Data frequency, seconds.
    #[serde(
        default,
        deserialize_with = "lenient_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub df: Option<u64>,
    /// Company code (appears in Azure topics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cd: Option<String>,
    /// Gateway details, `null` for a plain device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtw: Option<Gateway>,
    /// Edge device.
    #[serde(default, deserialize_with = "flag")]
    pub edge: bool,
    /// Protocol version (`2.1`, number or string).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub v: Value,
}

/// `has`: which lists exist and are to be fetched with `{"mt":20x}`. Five flags, as the wire
/// has them.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Has {
    /// Children (204).
    #[serde(default, deserialize_with = "flag")]
    pub d: bool,
    /// Attributes (201).
    #[serde(default, deserialize_with = "flag")]
    pub attr: bool,
    /// Settings / twin (202).
    #[serde(default, deserialize_with = "flag")]
    pub set: bool,
    /// Edge rules (203).
    #[serde(default, deserialize_with = "flag")]
    pub r: bool,
    /// A pending OTA (205).
    #[serde(default, deserialize_with = "flag")]
    pub ota: bool,
}

/// `p.topics.set`: the twin (Azure) or named shadow `setting_info` (AWS) topics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetTopics {
    /// Reported properties (`{version}` stands for a request id on Azure).
    #[serde(rename = "pub", default)]
    pub publish: String,
    /// Desired properties.
    #[serde(default)]
    pub sub: String,
    /// Ask for everything.
    #[serde(rename = "pubForAll", default)]
    pub pub_for_all: String,
    /// The answer to that.
    #[serde(rename = "subForAll", default)]
    pub sub_for_all: String,
}

/// `p.topics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topics {
    /// Reporting telemetry.
    #[serde(default)]
    pub rpt: String,
    /// Faulty telemetry.
    #[serde(default)]
    pub flt: String,
    /// Offline replay.
    #[serde(default)]
    pub od: String,
    /// Heartbeat.
    #[serde(default)]
    pub hb: String,
    /// Acknowledgements.
    #[serde(default)]
    pub ack: String,
    /// Device log.
    #[serde(default)]
    pub dl: String,
    /// Identity requests (`{"mt":20x}`).
    #[serde(default)]
    pub di: String,
    /// Cloud to device (a filter on Azure, a topic on AWS).
    #[serde(default)]
    pub c2d: String,
    /// Edge aggregates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erpt: Option<String>,
    /// Edge rule matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erm: Option<String>,
    /// Twin / shadow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<SetTopics>,
}

/// `p`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broker {
    /// `mqtt`.
    #[serde(default)]
    pub n: String,
    /// Host.
    #[serde(default)]
    pub h: String,
    /// Port (8883 when absent).
    #[serde(default)]
    pub p: u16,
    /// MQTT client id.
    #[serde(default)]
    pub id: String,
    /// MQTT username (Azure; AWS ignores it).
    #[serde(default)]
    pub un: String,
    /// Topics.
    #[serde(default)]
    pub topics: Topics,
}

/// The identity answer's `d`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdentityAnswer {
    /// `meta`.
    #[serde(default)]
    pub meta: Meta,
    /// `has`.
    #[serde(default)]
    pub has: Has,
    /// `p`.
    #[serde(default)]
    pub p: Broker,
    /// Server time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dt: Option<String>,
}

impl IdentityAnswer {
    /// Parses and checks an identity answer for `unique_id`: `status` 200, `d.ec` 0 (else the
    /// code as a sentence), and the host, client id and the topics a device cannot do without.
    pub fn parse(body: &[u8], unique_id: &str) -> Result<IdentityAnswer, V2Error> {
        let what = "identity";
        let v: Value = serde_json::from_slice(body).map_err(|e| V2Error::BadReply {
            what,
            reason: e.to_string(),
        })?;
        let d = unwrap_d(what, &v)?;
        let ec = d.get("ec").and_then(Value::as_i64).unwrap_or(0);
        if ec != 0 {
            return Err(V2Error::Code {
                what,
                ec,
                meaning: identity_ec(ec),
                unique_id: unique_id.to_owned(),
            });
        }
        let a: IdentityAnswer =
            serde_json::from_value(d.clone()).map_err(|e| V2Error::BadReply {
                what,
                reason: e.to_string(),
            })?;
        let t = &a.p.topics;
        for (field, value) in [
            ("d.p.h", &a.p.h),
            ("d.p.id", &a.p.id),
            ("d.p.topics.rpt", &t.rpt),
            ("d.p.topics.ack", &t.ack),
            ("d.p.topics.di", &t.di),
            ("d.p.topics.c2d", &t.c2d),
        ] {
            if value.trim().is_empty() {
                return Err(V2Error::Missing { what, field });
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_answer_from_the_lite_sdk() {
        let body = br#"{"d":{"ec":0,"ct":200,
          "meta":{"at":2,"df":60,"cd":"ABCDN8E","gtw":null,"edge":0,"pf":1,"hwv":"","swv":"","v":2.1},
          "has":{"d":0,"attr":1,"set":0,"r":0,"ota":0},
          "p":{"n":"mqtt","h":"poc-iotconnect-iothub-017-eu2.azure-devices.net","p":8883,"id":"mydevice",
               "un":"poc-iotconnect-iothub-017-eu2.azure-devices.net/mydevice/?api-version=2018-06-30",
               "topics":{"rpt":"devices/mydevice/messages/events/cd=7LIBN8E&v=2.1&mt=0&$.ct=application%2Fjson&$.ce=utf-8",
                 "flt":"devices/mydevice/messages/events/cd=7LIBN8E&v=2.1&mt=3","od":"devices/mydevice/messages/events/cd=7LIBN8E&v=2.1&mt=4",
                 "hb":"devices/mydevice/messages/events/cd=7LIBN8E&v=2.1&mt=5","ack":"devices/mydevice/messages/events/cd=7LIBN8E&v=2.1&mt=6",
                 "dl":"devices/mydevice/messages/events/cd=7LIBN8E&v=2.1&mt=7",
                 "di":"devices/mydevice/messages/events/cd=7LIBN8E&v=2.1&di=1&$.ct=application%2Fjson&$.ce=utf-8",
                 "c2d":"devices/mydevice/messages/devicebound/#",
                 "set":{"pub":"$iothub/twin/PATCH/properties/reported/?$rid={version}","sub":"$iothub/twin/PATCH/properties/desired/#",
                        "pubForAll":"$iothub/twin/GET/?$rid=0","subForAll":"$iothub/twin/res/#"}}},
          "dt":"2024-10-25T20:57:57.481Z"},"status":200,"message":"Device info loaded successfully."}"#;
        let a = IdentityAnswer::parse(body, "mydevice").unwrap();
        assert_eq!(a.meta.df, Some(60));
        assert!(a.has.attr && !a.has.d && !a.meta.edge);
        assert!(a.p.topics.rpt.contains("&mt=0"));
        assert_eq!(a.p.topics.set.unwrap().sub_for_all, "$iothub/twin/res/#");
    }

    #[test]
    fn aws_answer_and_codes_as_sentences() {
        let body = br#"{"d":{"ec":0,"ct":200,"meta":{"at":7,"df":5,"cd":"X","gtw":null,"edge":0,"v":"2.1"},
          "has":{"d":0,"attr":1,"set":1,"r":0,"ota":0},
          "p":{"n":"mqtt","h":"a3etk4e19usyja-ats.iot.us-east-1.amazonaws.com","p":8883,"id":"CP-dev","un":"",
          "topics":{"rpt":"$aws/rules/msg_d2c_rpt/dev/2.1/0","flt":"$aws/rules/msg_d2c_flt/dev/2.1/3","od":"$aws/rules/msg_d2c_od/dev/2.1/4",
          "hb":"$aws/rules/msg_d2c_hb/dev/2.1/5","ack":"$aws/rules/msg_d2c_ack/dev/2.1/6","dl":"$aws/rules/msg_d2c_dl/dev/2.1/7",
          "di":"$aws/rules/msg_d2c_di/dev/2.1/1","c2d":"iot/dev/cmd"}}},"status":200,"message":"ok"}"#;
        let a = IdentityAnswer::parse(body, "dev").unwrap();
        assert_eq!(a.p.topics.c2d, "iot/dev/cmd");
        assert_eq!(a.p.id, "CP-dev");
        let e = IdentityAnswer::parse(br#"{"d":{"ec":5},"status":200}"#, "dev").unwrap_err();
        assert_eq!(
            e.to_string(),
            "identity answered ec 5: the device is disabled (device `dev`)"
        );
        let e = IdentityAnswer::parse(
            br#"{"d":{"ec":0,"p":{"h":"x","id":"d"}},"status":200}"#,
            "dev",
        )
        .unwrap_err();
        assert!(e.to_string().contains("d.p.topics.rpt"), "{e}");
    }
}
