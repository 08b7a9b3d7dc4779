//! Discovery and `sync` (message protocol 1.0), both directions: the device builds the discovery
//! URL and the sync request and reads the answers; the cloud side reads the request and builds
//! the answers from the same types.
//!
//! Discovery: `GET {discoveryUrl}/api/sdk/cpid/{cpId}/lang/M_PYTHON/ver/2.0/env/{env}` →
//! `{"baseUrl": ".../"}`. Sync: `POST {baseUrl}sync` with `{"uniqueId","cpId","option":{..}}` →
//! `{"d": {...}}` (or `{"status", "message"}` on error). A partial sync (one option) replaces
//! only its own section; the SDK stored the settings under `s` while the answer uses `set`, a
//! bug not copied here.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::attributes::AttributeGroup;
use crate::protocol::rules::EdgeRule;

/// The SDK language the discovery URL and the envelope's `sdk.l` name.
pub const SDK_LANG: &str = "M_PYTHON";
/// The SDK version of message protocol 1.0.
pub const SDK_VERSION: &str = "2.0";
/// The public discovery service.
pub const DEFAULT_DISCOVERY_URL: &str = "https://discovery.iotconnect.io";

/// Why discovery or sync failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The discovery URL is not an http(s) URL.
    #[error("discoveryUrl `{url}` is not an http(s) URL ({reason})")]
    DiscoveryUrl {
        /// As configured.
        url: String,
        /// Why.
        reason: String,
    },
    /// A reply that is not the expected JSON.
    #[error("{what} answer is not valid: {reason}")]
    BadReply {
        /// `discovery` or `sync`.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The platform answered with an error object.
    #[error("sync refused: {message} (status {status})")]
    Refused {
        /// `status`.
        status: String,
        /// `message`.
        message: String,
    },
    /// `rc` (or `ds` for TPM devices) is not 0.
    #[error("sync answered rc {code} ({meaning}) for device `{unique_id}`")]
    Status {
        /// The code.
        code: i64,
        /// Its meaning.
        meaning: &'static str,
        /// The device.
        unique_id: String,
    },
    /// A field the agent needs is missing.
    #[error("sync answer lacks `{field}`, which the device needs")]
    Missing {
        /// Field path, e.g. `d.p.pub`.
        field: &'static str,
    },
}

/// Meaning of a sync `rc`/`ds` code.
pub fn rc_meaning(code: i64) -> &'static str {
    match code {
        0 => "OK",
        1 => "DEV_NOT_REG: device not registered",
        2 => "AUTO_REG: device auto-registered, sync again",
        3 => "DEV_NOT_FOUND: no device with this uniqueId",
        4 => "DEV_INACTIVE: device inactive",
        5 => "OBJ_MOVED: device moved",
        6 => "CPID_NOT_FOUND: company id not found",
        _ => "unknown code",
    }
}

/// Builds the discovery URL (path segments are escaped).
pub fn discovery_url(discovery: &str, cp_id: &str, env: &str) -> Result<String, SyncError> {
    let bad = |reason: String| SyncError::DiscoveryUrl {
        url: discovery.to_owned(),
        reason,
    };
    let mut url = url::Url::parse(discovery).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be https (or http)".into()));
    }
    url.path_segments_mut()
        .map_err(|()| bad("it cannot carry a path".into()))?
        .pop_if_empty()
        .extend([
            "api",
            "sdk",
            "cpid",
            cp_id,
            "lang",
            SDK_LANG,
            "ver",
            SDK_VERSION,
            "env",
            env,
        ]);
    Ok(url.to_string())
}

/// The discovery answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryResponse {
    /// Base URL of the agent API, ending in `/`.
    #[serde(rename = "baseUrl")]
    pub base_url: String,
    /// Logging info, unused.
    #[serde(rename = "logInfo", default, skip_serializing_if = "Option::is_none")]
    pub log_info: Option<Value>,
}

impl DiscoveryResponse {
    /// Parses and checks a discovery answer.
    pub fn parse(body: &[u8]) -> Result<Self, SyncError> {
        let bad = |reason: String| SyncError::BadReply {
            what: "discovery",
            reason,
        };
        let r: DiscoveryResponse = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
        if !(r.base_url.starts_with("https://") || r.base_url.starts_with("http://")) {
            return Err(bad(format!(
                "baseUrl `{}` is not an http(s) URL",
                r.base_url
            )));
        }
        Ok(r)
    }

    /// `{baseUrl}sync`.
    pub fn sync_url(&self) -> String {
        if self.base_url.ends_with('/') {
            format!("{}sync", self.base_url)
        } else {
            format!("{}/sync", self.base_url)
        }
    }
}

/// What a sync asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncScope {
    /// Everything (first sync, command `sync`).
    All,
    /// `att` (0x10).
    Attribute,
    /// `set` (0x11).
    Setting,
    /// `p` (0x12, `resetpwd`).
    Protocol,
    /// `d` (0x13).
    Device,
    /// `sc`.
    SdkConfig,
    /// `r` (0x15).
    Rule,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference
fn is_false(b: &bool) -> bool {
    !*b
}

/// The `option` flags of a sync request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(clippy::struct_excessive_bools)]
pub struct SyncOptions {
    /// Attributes.
    #[serde(default, skip_serializing_if = "is_false")]
    pub attribute: bool,
    /// Settings (twin definitions).
    #[serde(default, skip_serializing_if = "is_false")]
    pub setting: bool,
    /// Broker parameters.
    #[serde(default, skip_serializing_if = "is_false")]
    pub protocol: bool,
    /// Devices (gateway and children).
    #[serde(default, skip_serializing_if = "is_false")]
    pub device: bool,
    /// SDK configuration (`df`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub sdk_config: bool,
    /// Edge rules.
    #[serde(default, skip_serializing_if = "is_false")]
    pub rule: bool,
}

impl SyncOptions {
    /// The flags for a scope.
    pub fn for_scope(scope: SyncScope) -> Self {
        let mut o = SyncOptions::default();
        match scope {
            SyncScope::All => {
                o = SyncOptions {
                    attribute: true,
                    setting: true,
                    protocol: true,
                    device: true,
                    sdk_config: true,
                    rule: true,
                };
            }
            SyncScope::Attribute => o.attribute = true,
            SyncScope::Setting => o.setting = true,
            SyncScope::Protocol => o.protocol = true,
            SyncScope::Device => o.device = true,
            SyncScope::SdkConfig => o.sdk_config = true,
            SyncScope::Rule => o.rule = true,
        }
        o
    }
}

/// The sync request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// Device unique id.
    #[serde(rename = "uniqueId")]
    pub unique_id: String,
    /// Company id.
    #[serde(rename = "cpId")]
    pub cp_id: String,
    /// What to send back.
    #[serde(default)]
    pub option: SyncOptions,
}

/// `sc`: SDK configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SdkConfig {
    /// Data frequency, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub df: Option<u64>,
    /// Re-sync interval, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sf: Option<u64>,
    /// Heartbeat settings (unused in 1.0).
    #[serde(default)]
    pub hb: Value,
    /// Log settings (unused).
    #[serde(default)]
    pub log: Value,
}

/// `p`: broker parameters. `Debug` never shows `pwd` (a SAS token).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolInfo {
    /// `mqtt` (or `http`/`https`, not supported by this agent).
    #[serde(default)]
    pub n: String,
    /// Broker host.
    #[serde(default)]
    pub h: String,
    /// Broker port.
    #[serde(default)]
    pub p: u16,
    /// MQTT client id.
    #[serde(default)]
    pub id: String,
    /// MQTT username.
    #[serde(default)]
    pub un: String,
    /// Password (a SAS token for auth type 1).
    #[serde(default)]
    pub pwd: String,
    /// D2C topic.
    #[serde(default, rename = "pub")]
    pub publish: String,
    /// C2D filter.
    #[serde(default)]
    pub sub: String,
}

impl std::fmt::Debug for ProtocolInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtocolInfo")
            .field("n", &self.n)
            .field("h", &self.h)
            .field("p", &self.p)
            .field("id", &self.id)
            .field("un", &self.un)
            .field(
                "pwd",
                &if self.pwd.is_empty() {
                    ""
                } else {
                    "[REDACTED]"
                },
            )
            .field("publish", &self.publish)
            .field("sub", &self.sub)
            .finish()
    }
}

#[cfg(test)]
#[test]
fn protocol_info_debug_never_shows_the_password() {
    let p = ProtocolInfo {
        h: "broker.example".into(),
        pwd: "SharedAccessSignature sr=x&sig=SECRETSIG".into(),
        ..ProtocolInfo::default()
    };
    let shown = format!("{p:?}");
    assert!(
        !shown.contains("SECRETSIG") && shown.contains("broker.example"),
        "{shown}"
    );
}

/// An entry of `d`: the gateway first, then its children.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRef {
    /// Unique id.
    pub id: String,
    /// Tag (empty for a plain device).
    #[serde(default)]
    pub tg: String,
}

/// The `d` object of a sync answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncData {
    /// Company id.
    #[serde(rename = "cpId", default, skip_serializing_if = "Option::is_none")]
    pub cp_id: Option<String>,
    /// Device template guid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtg: Option<String>,
    /// Response code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rc: Option<i64>,
    /// Device status (TPM devices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ds: Option<i64>,
    /// Edge enabled (1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ee: Option<i64>,
    /// Auth type: 1 key (SAS), 2 CA-signed, 3 self-signed, 4 TPM, 5 symmetric key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
    /// SDK configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sc: Option<SdkConfig>,
    /// Broker parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<ProtocolInfo>,
    /// Devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<Vec<DeviceRef>>,
    /// Attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub att: Option<Vec<AttributeGroup>>,
    /// Settings (twin definitions), kept as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<Value>,
    /// Edge rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r: Option<Vec<EdgeRule>>,
    /// Pending OTA at sync time (ignored, as by the SDK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ota: Option<Value>,
}

/// A whole sync answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The data.
    pub d: SyncData,
}

impl SyncData {
    /// Parses a sync answer body (`{"d": ...}`, or an error object with `status`).
    pub fn parse_reply(body: &[u8]) -> Result<SyncData, SyncError> {
        let bad = |reason: String| SyncError::BadReply {
            what: "sync",
            reason,
        };
        let v: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
        if let Some(status) = v.get("status") {
            let message = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            return Err(SyncError::Refused {
                status: status.to_string(),
                message: message.to_owned(),
            });
        }
        let r: SyncResponse = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        Ok(r.d)
    }

    /// Checks the status code: `ds` for TPM (`at` 4), `rc` otherwise.
    pub fn check(&self, unique_id: &str) -> Result<(), SyncError> {
        let code = if self.at == Some(4) { self.ds } else { self.rc }.unwrap_or(0);
        if code == 0 {
            return Ok(());
        }
        Err(SyncError::Status {
            code,
            meaning: rc_meaning(code),
            unique_id: unique_id.to_owned(),
        })
    }

    /// Whether the device is edge-enabled.
    pub fn is_edge(&self) -> bool {
        self.ee == Some(1)
    }

    /// Replaces the sections a partial answer for `scope` carries.
    pub fn merge(&mut self, scope: SyncScope, other: SyncData) {
        match scope {
            SyncScope::All => *self = other,
            SyncScope::Attribute => self.att = other.att,
            SyncScope::Setting => self.set = other.set,
            SyncScope::Protocol => self.p = other.p,
            SyncScope::Device => self.d = other.d,
            SyncScope::SdkConfig => self.sc = other.sc,
            SyncScope::Rule => self.r = other.r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_url_matches_the_sdk() {
        assert_eq!(
            discovery_url("https://discovery.iotconnect.io", "CPID", "PROD").unwrap(),
            "https://discovery.iotconnect.io/api/sdk/cpid/CPID/lang/M_PYTHON/ver/2.0/env/PROD"
        );
        assert_eq!(
            discovery_url("https://localhost:8443/iotconnect/", "a b", "DEV").unwrap(),
            "https://localhost:8443/iotconnect/api/sdk/cpid/a%20b/lang/M_PYTHON/ver/2.0/env/DEV"
        );
        assert!(discovery_url("ftp://x", "c", "e").is_err());
        assert!(discovery_url("not a url", "c", "e").is_err());
    }

    #[test]
    fn partial_request_sends_one_flag() {
        let r = SyncRequest {
            unique_id: "d".into(),
            cp_id: "c".into(),
            option: SyncOptions::for_scope(SyncScope::Attribute),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"uniqueId":"d","cpId":"c","option":{"attribute":true}}"#
        );
        let all = serde_json::to_value(SyncOptions::for_scope(SyncScope::All)).unwrap();
        assert_eq!(all.as_object().unwrap().len(), 6);
        assert_eq!(all["sdkConfig"], true);
    }

    #[test]
    fn error_objects_and_codes() {
        let e =
            SyncData::parse_reply(br#"{"status":404,"message":"Device not found"}"#).unwrap_err();
        assert!(e.to_string().contains("Device not found"), "{e}");
        let d = SyncData::parse_reply(br#"{"d":{"rc":3,"at":2}}"#).unwrap();
        assert!(
            d.check("x")
                .unwrap_err()
                .to_string()
                .contains("DEV_NOT_FOUND")
        );
        let d = SyncData::parse_reply(br#"{"d":{"rc":3,"ds":0,"at":4}}"#).unwrap();
        assert!(d.check("x").is_ok(), "TPM devices are judged by ds");
        assert!(SyncData::parse_reply(b"[]").is_err());
    }

    #[test]
    fn merge_replaces_only_the_scope() {
        let mut a = SyncData {
            dtg: Some("t".into()),
            set: Some(Value::from(1)),
            ..SyncData::default()
        };
        let b = SyncData {
            set: Some(Value::from(2)),
            ..SyncData::default()
        };
        a.merge(SyncScope::Setting, b);
        assert_eq!(a.set, Some(Value::from(2)));
        assert_eq!(a.dtg.as_deref(), Some("t"));
    }
}
