//! Message protocol 2.1 on the wire: discovery `GET {disc}/api/v2.1/dsdk/cpId/{cpid}/env/{env}?pf=`
//! (or `/sid/{sid}`) → `d.bu`; identity `GET {bu}/uid/{duid}` → broker, client id, username and
//! every topic ([`identity`]); the flat C2D messages with a numeric `ct` ([`c2d`]); the D2C
//! payloads: telemetry `{"dt","d":[{"id","tg","dt","d":{…}}]}`, acks
//! `{"dt","d":{"ack","type","st","msg","cid"}}` and the identity requests `{"mt":20x}` ([`d2c`]).
//!
//! Sources: Avnet's `iotconnect-lib` 2.1 and `iotc-c-lib` (protocol 2.1) on GitHub, and the
//! "Device message 2.1" pages of docs.iotconnect.io; see `docs/iotconnect.md`.

pub mod c2d;
pub mod d2c;
pub mod identity;

use serde_json::Value;

/// The cloud an IoTConnect account runs on (`pf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Platform {
    /// Azure IoT Hub (`az`).
    #[default]
    Azure,
    /// AWS IoT Core (`aws`).
    Aws,
}

impl Platform {
    /// The `pf` code: `az` or `aws`.
    pub fn code(self) -> &'static str {
        match self {
            Platform::Azure => "az",
            Platform::Aws => "aws",
        }
    }

    /// From `az`/`azure`/`aws` (any case); `None` otherwise.
    pub fn parse(s: &str) -> Option<Platform> {
        match s.trim().to_ascii_lowercase().as_str() {
            "az" | "azure" => Some(Platform::Azure),
            "aws" => Some(Platform::Aws),
            _ => None,
        }
    }
}

/// Why a 2.1 answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum V2Error {
    /// The discovery URL cannot be built.
    #[error("discovery URL `{url}` is not usable: {reason}")]
    Url {
        /// As configured.
        url: String,
        /// Why.
        reason: String,
    },
    /// Not the expected JSON.
    #[error("{what} answer is not valid: {reason}")]
    BadReply {
        /// `discovery`, `identity`.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// `status` other than 200.
    #[error("{what} refused: {message} (status {status})")]
    Refused {
        /// `discovery`, `identity`.
        what: &'static str,
        /// `status`.
        status: String,
        /// `message`.
        message: String,
    },
    /// `ec` other than 0.
    #[error("{what} answered ec {ec}: {meaning} (device `{unique_id}`)")]
    Code {
        /// `discovery`, `identity`, `child create`.
        what: &'static str,
        /// The code.
        ec: i64,
        /// Its meaning, as a sentence.
        meaning: &'static str,
        /// The device.
        unique_id: String,
    },
    /// A field the device needs is missing.
    #[error("{what} answer lacks `{field}`, which the device needs")]
    Missing {
        /// `discovery`, `identity`.
        what: &'static str,
        /// Field path.
        field: &'static str,
    },
}

/// What a discovery `ec` means (Node SDK 2.1 `config.js`).
pub fn discovery_ec(ec: i64) -> &'static str {
    match ec {
        0 => "OK",
        1 => "the SID is not valid",
        2 => "the company (cpId) was not found",
        3 => "the subscription has expired",
        _ => "unknown discovery code",
    }
}

/// What an identity `ec` means (`iotconnect-lib` `dra.py`, the same in `iotc-c-lib`).
pub fn identity_ec(ec: i64) -> &'static str {
    match ec {
        0 => "OK",
        1 => "the device was not found or is not whitelisted",
        2 => "the device is not active",
        3 => "the device is not associated with a template",
        4 => "the device has not been acquired",
        5 => "the device is disabled",
        6 => "the company was not found (the SID is not valid)",
        7 => "the subscription has expired",
        8 => "the device is not allowed to connect",
        9 => "the bootstrap certificate is not valid",
        10 => "the operational certificate is not valid",
        _ => "unknown identity code",
    }
}

/// What a child-create (221) `ec` means (the 2.1 Python SDK).
pub fn child_create_ec(ec: i64) -> &'static str {
    match ec {
        0 => "OK",
        1 => "the child's tag is missing",
        2 => "the child's unique id is missing",
        3 => "the child's display name is missing",
        4 => "the gateway was not found",
        5 => "the platform could not create the child",
        6 => "the tag is not one of the gateway template's tags",
        7 => "the tag is the gateway's own tag",
        8 => "a device with this unique id exists already",
        9 => "the unique id is longer than 128 characters",
        _ => "unknown child-create code",
    }
}

/// Builds the discovery URL. `disc` is a discovery host URL (`https://discovery.iotconnect.io`)
/// or, as the lite SDK's `iotcDeviceConfig.json` may carry it, the full 2.1 URL; `pf` is added
/// when the URL has none.
pub fn discovery_url(
    disc: &str,
    cp_id: &str,
    env: &str,
    sid: Option<&str>,
    pf: Platform,
) -> Result<String, V2Error> {
    let bad = |reason: String| V2Error::Url {
        url: disc.to_owned(),
        reason,
    };
    let mut url = url::Url::parse(disc.trim()).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be https".into()));
    }
    if !url.path().contains("/api/v2.1/dsdk/") {
        let mut seg = url
            .path_segments_mut()
            .map_err(|()| bad("it cannot carry a path".into()))?;
        seg.pop_if_empty().extend(["api", "v2.1", "dsdk"]);
        match sid {
            Some(sid) => seg.extend(["sid", sid]),
            None => seg.extend(["cpId", cp_id, "env", env]),
        };
    }
    if !url.query_pairs().any(|(k, _)| k == "pf") {
        url.query_pairs_mut().append_pair("pf", pf.code());
    }
    Ok(url.to_string())
}

/// The useful part of a discovery answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// `d.bu`: the identity base URL.
    pub bu: String,
    /// `d.pf`, when given.
    pub pf: Option<Platform>,
}

/// Checks the `status`/`message` wrapper both HTTP answers have; returns `d`.
fn unwrap_d<'a>(what: &'static str, v: &'a Value) -> Result<&'a Value, V2Error> {
    if let Some(status) = v.get("status")
        && status.as_i64() != Some(200)
    {
        return Err(V2Error::Refused {
            what,
            status: status.to_string(),
            message: v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message")
                .to_owned(),
        });
    }
    match v.get("d") {
        Some(d) if d.is_object() => Ok(d),
        _ => Err(V2Error::Missing { what, field: "d" }),
    }
}

fn ec_of(d: &Value) -> i64 {
    d.get("ec").and_then(Value::as_i64).unwrap_or(0)
}

impl Discovery {
    /// Parses and checks a discovery answer (`status` 200, `d.ec` 0, `d.bu` present).
    pub fn parse(body: &[u8], unique_id: &str) -> Result<Discovery, V2Error> {
        let v: Value = serde_json::from_slice(body).map_err(|e| V2Error::BadReply {
            what: "discovery",
            reason: e.to_string(),
        })?;
        let d = unwrap_d("discovery", &v)?;
        let ec = ec_of(d);
        if ec != 0 {
            return Err(V2Error::Code {
                what: "discovery",
                ec,
                meaning: discovery_ec(ec),
                unique_id: unique_id.to_owned(),
            });
        }
        let bu = d
            .get("bu")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(V2Error::Missing {
                what: "discovery",
                field: "d.bu",
            })?;
        Ok(Discovery {
            bu: bu.to_owned(),
            pf: d
                .get("pf")
                .and_then(Value::as_str)
                .and_then(Platform::parse),
        })
    }

    /// `{bu}/uid/{duid}` (the unique id escaped as a path segment).
    pub fn identity_url(&self, unique_id: &str) -> Result<String, V2Error> {
        let bad = |reason: String| V2Error::BadReply {
            what: "discovery",
            reason,
        };
        let mut url = url::Url::parse(&self.bu).map_err(|e| bad(format!("d.bu: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| bad("d.bu cannot carry a path".into()))?
            .pop_if_empty()
            .extend(["uid", unique_id]);
        Ok(url.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_urls_in_both_forms() {
        assert_eq!(
            discovery_url(
                "https://discovery.iotconnect.io",
                "CP",
                "PROD",
                None,
                Platform::Azure
            )
            .unwrap(),
            "https://discovery.iotconnect.io/api/v2.1/dsdk/cpId/CP/env/PROD?pf=az"
        );
        assert_eq!(
            discovery_url(
                "https://d.example/",
                "CP",
                "PROD",
                Some("S1"),
                Platform::Aws
            )
            .unwrap(),
            "https://d.example/api/v2.1/dsdk/sid/S1?pf=aws"
        );
        let full = "https://awsdiscovery.iotconnect.io/api/v2.1/dsdk/cpId/CP/env/poc?pf=aws";
        assert_eq!(
            discovery_url(full, "x", "y", None, Platform::Azure).unwrap(),
            full
        );
        assert!(discovery_url("ftp://x", "c", "e", None, Platform::Azure).is_err());
    }

    #[test]
    fn discovery_answer_from_the_c_library_tests() {
        // iotc-c-lib tests/unit/device_rest_api.c (abridged).
        let body = br#"{"d":{"ec":0,"bu":"https://diavnet.iotconnect.io/api/2.1/agent/device-identity/cg/abc","log:mqtt":{"hn":"","un":"","pwd":"","topic":""},"pf":"az"},"status":200,"message":"Success"}"#;
        let d = Discovery::parse(body, "dev").unwrap();
        assert_eq!(d.pf, Some(Platform::Azure));
        assert_eq!(
            d.identity_url("my dev").unwrap(),
            "https://diavnet.iotconnect.io/api/2.1/agent/device-identity/cg/abc/uid/my%20dev"
        );
        let e = Discovery::parse(br#"{"d":{"ec":3},"status":200}"#, "dev").unwrap_err();
        assert_eq!(
            e.to_string(),
            "discovery answered ec 3: the subscription has expired (device `dev`)"
        );
        let e = Discovery::parse(br#"{"status":404,"message":"nope"}"#, "dev").unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
