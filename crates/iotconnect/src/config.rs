//! The agent's configuration file, `iotconnect.json`, in the shape of the SDK's constructor
//! arguments: `cpId`, `uniqueId`, `env`, `scopeId` (the DPS id scope of auth type 4), `discoveryUrl`,
//! and `sdkOptions` with `certificate {SSLKeyPath, SSLCertPath, SSLCaPath}`,
//! `offlineStorage {disabled, availSpaceInMb, fileCount}`, `discoveryUrl` and
//! `devicePrimaryKey` (auth type 5). Relative paths resolve against the file's folder. Errors
//! name the file, the key and what was expected. [`Config::parse`] is pure; [`Config::load`]
//! reads the file.
//!
//! Message protocol: `"protocol": "2.1"` (default `"1.0"`) with `"platform": "az" | "aws"`
//! (default `az`) and optionally `"sid"` (discovery by SID instead of `cpId`/`env`). The lite
//! SDK's `iotcDeviceConfig.json` (`cpid`, `env`, `uid`, `did`, `disc`, `ver`, `pf`, `at`) is read
//! too; it is always 2.1, and its certificate and key come from `--cert`/`--key`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use transport::SpoolConfig;

use crate::protocol::v1::sync::DEFAULT_DISCOVERY_URL;
use crate::protocol::v2::Platform;

/// The discovery host of IoTConnect on AWS (`iotc-c-lib`'s `IOTCL_DRA_DEFAULT_DISCOVERY_HOST_AWS`).
pub const AWS_DISCOVERY_URL: &str = "https://awsdiscovery.iotconnect.io";

/// The device message protocol a config asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// Message 1.0: discovery, `sync`, one D2C topic (Azure only).
    #[default]
    V10,
    /// Message 2.1: discovery, identity, per-kind topics (Azure or AWS).
    V21,
}

/// Why the configuration is not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// Not JSON.
    #[error("config file `{path}` is not valid JSON at line {line}, column {column}: {reason}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Line.
        line: usize,
        /// Column.
        column: usize,
        /// Parser message.
        reason: String,
    },
    /// A required key is missing or empty.
    #[error("config file `{path}`: `{key}` is missing or empty; {hint}")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The key, e.g. `cpId`.
        key: &'static str,
        /// Where the value comes from.
        hint: &'static str,
    },
    /// A key has the wrong type or value.
    #[error("config file `{path}`: `{key}` must be {expected}, got {got}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What was expected.
        expected: &'static str,
        /// What was there.
        got: String,
    },
}

/// `sdkOptions.offlineStorage`.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineStorage {
    /// `disabled`: no offline storage (messages sent while offline are dropped).
    pub disabled: bool,
    /// `availSpaceInMb`: `None` means unlimited (the SDK's default).
    pub avail_space_mb: Option<f64>,
    /// `fileCount` (default 1).
    pub file_count: u32,
}

impl Default for OfflineStorage {
    fn default() -> Self {
        OfflineStorage {
            disabled: false,
            avail_space_mb: None,
            file_count: 1,
        }
    }
}

/// Files the spool may use when `availSpaceInMb` is unlimited (16 MiB each).
pub const UNLIMITED_FILES: u32 = 4096;
/// Size of each spool file when `availSpaceInMb` is unlimited.
pub const UNLIMITED_FILE_BYTES: u64 = 16 * 1024 * 1024;

impl OfflineStorage {
    /// The transport spool with the SDK's semantics (`availSpaceInMb` split over `fileCount`,
    /// oldest file dropped when all are full), in `dir`; `None` when disabled. "Unlimited" is
    /// bounded at 4096 files of 16 MiB, so the file written while online stays small.
    pub fn spool(&self, dir: PathBuf) -> Option<SpoolConfig> {
        if self.disabled {
            return None;
        }
        let files = self.file_count.max(1);
        Some(match self.avail_space_mb {
            Some(mb) if mb > 0.0 => SpoolConfig {
                max_bytes: ((mb * 1024.0 * 1024.0) as u64).max(4096),
                max_files: files,
                ..SpoolConfig::new(dir)
            },
            _ => SpoolConfig {
                max_bytes: UNLIMITED_FILE_BYTES * u64::from(UNLIMITED_FILES),
                max_files: UNLIMITED_FILES,
                ..SpoolConfig::new(dir)
            },
        })
    }
}

/// The agent's configuration. `Debug` never shows `device_primary_key`.
#[derive(Clone, PartialEq)]
pub struct Config {
    /// The file it came from (relative paths resolve against its folder).
    pub path: PathBuf,
    /// Company id.
    pub cp_id: String,
    /// Device unique id.
    pub unique_id: String,
    /// Environment.
    pub env: String,
    /// DPS id scope (`scopeId`; auth type 4).
    pub scope_id: Option<String>,
    /// The DPS endpoint for auth type 4 (Azure's global one unless `--dps-url` says otherwise).
    pub dps_url: String,
    /// The TPM for auth type 4 (set by the front end, not read from the file).
    pub tpm: Option<crate::agent::dps::Attestation>,
    /// How long a SAS token this agent signs (auth types 4 and 5) is valid.
    pub sas_lifetime: std::time::Duration,
    /// Discovery service URL.
    pub discovery_url: String,
    /// Client certificate chain (`SSLCertPath`).
    pub cert: Option<PathBuf>,
    /// Client key (`SSLKeyPath`).
    pub key: Option<PathBuf>,
    /// CA for the broker and HTTPS (`SSLCaPath`).
    pub ca: Option<PathBuf>,
    /// Offline storage.
    pub offline: OfflineStorage,
    /// Symmetric key for auth type 5 (`devicePrimaryKey`).
    pub device_primary_key: Option<String>,
    /// Message protocol (`protocol`, or 2.1 for an `iotcDeviceConfig.json`).
    pub protocol: Protocol,
    /// Cloud platform (`platform` / `pf`; 2.1).
    pub platform: Platform,
    /// Discovery by SID (`sid`; 2.1).
    pub sid: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("cp_id", &self.cp_id)
            .field("unique_id", &self.unique_id)
            .field("env", &self.env)
            .field("scope_id", &self.scope_id)
            .field("dps_url", &self.dps_url)
            .field("tpm", &self.tpm)
            .field("sas_lifetime", &self.sas_lifetime)
            .field("discovery_url", &self.discovery_url)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("ca", &self.ca)
            .field("offline", &self.offline)
            .field("protocol", &self.protocol)
            .field("platform", &self.platform)
            .field("sid", &self.sid)
            .field(
                "device_primary_key",
                &self.device_primary_key.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

#[cfg(test)]
#[test]
fn config_debug_never_shows_the_device_key() {
    let c = Config {
        path: "iotconnect.json".into(),
        cp_id: "CP".into(),
        unique_id: "dev-1".into(),
        env: "DEV".into(),
        scope_id: None,
        dps_url: String::new(),
        tpm: None,
        sas_lifetime: std::time::Duration::from_secs(1),
        discovery_url: "https://discovery.example".into(),
        cert: None,
        key: None,
        ca: None,
        offline: OfflineStorage::default(),
        device_primary_key: Some("c2VjcmV0LWRldmljZS1rZXk=".into()),
        protocol: Protocol::default(),
        platform: Platform::default(),
        sid: None,
    };
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("c2VjcmV0") && shown.contains("dev-1"),
        "{shown}"
    );
}

#[derive(Debug, Deserialize)]
struct Raw {
    #[serde(rename = "cpId", default)]
    cp_id: Value,
    #[serde(rename = "uniqueId", default)]
    unique_id: Value,
    #[serde(default)]
    env: Value,
    #[serde(rename = "scopeId", default)]
    scope_id: Value,
    #[serde(rename = "discoveryUrl", default)]
    discovery_url: Value,
    #[serde(rename = "sdkOptions", default)]
    sdk_options: Value,
    #[serde(default)]
    protocol: Value,
    #[serde(default)]
    platform: Value,
    #[serde(default)]
    sid: Value,
    // The lite SDK's iotcDeviceConfig.json.
    #[serde(default)]
    uid: Value,
    #[serde(default)]
    ver: Value,
}

/// The lite SDK's `iotcDeviceConfig.json`.
#[derive(Debug, Deserialize)]
struct Lite {
    #[serde(default)]
    cpid: Value,
    #[serde(default)]
    env: Value,
    #[serde(default)]
    uid: Value,
    #[serde(default)]
    disc: Value,
    #[serde(default)]
    ver: Value,
    #[serde(default)]
    pf: Value,
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let c = Config::parse(path, &text)?;
        if c.device_primary_key.is_some() {
            // The device's symmetric key is in this file: others must not read it.
            transport::auth::warn_if_readable(path, "config file holding devicePrimaryKey");
        }
        Ok(c)
    }

    /// Checks the text of a config file that lives at `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: Raw = serde_json::from_str(text).map_err(|e| ConfigError::Json {
            path: path.to_owned(),
            line: e.line(),
            column: e.column(),
            reason: e.to_string(),
        })?;
        let c = Ctx { path };
        if raw.unique_id.is_null() && (!raw.uid.is_null() || !raw.ver.is_null()) {
            return Config::parse_lite(path, text);
        }
        let protocol = match c.text("protocol", &raw.protocol)?.as_deref() {
            None | Some("1.0" | "1") => Protocol::V10,
            Some("2.1") => Protocol::V21,
            Some(_) => return Err(c.invalid("protocol", "\"1.0\" or \"2.1\"", &raw.protocol)),
        };
        let platform = match c.text("platform", &raw.platform)? {
            None => Platform::Azure,
            Some(p) => Platform::parse(&p)
                .ok_or_else(|| c.invalid("platform", "\"az\" or \"aws\"", &raw.platform))?,
        };
        if platform == Platform::Aws && protocol == Protocol::V10 {
            return Err(c.invalid(
                "platform",
                "\"az\" with protocol 1.0 (IoTConnect on AWS speaks 2.1 only: set \"protocol\": \"2.1\")",
                &raw.platform,
            ));
        }
        let sid = c.text("sid", &raw.sid)?;
        let opts = match &raw.sdk_options {
            Value::Null => serde_json::Map::new(),
            Value::Object(m) => m.clone(),
            other => return Err(c.invalid("sdkOptions", "an object", other)),
        };
        let cp_id = c
            .text("cpId", &raw.cp_id)?
            .ok_or(c.missing("cpId", "copy it from Settings → Key Vault"))?;
        let unique_id = c.text("uniqueId", &raw.unique_id)?.ok_or(c.missing(
            "uniqueId",
            "the device's unique id as created in IoTConnect",
        ))?;
        let env = c
            .text("env", &raw.env)?
            .ok_or(c.missing("env", "copy it from Settings → Key Vault"))?;
        let discovery_url = match c.text("discoveryUrl", &raw.discovery_url)? {
            Some(u) => u,
            None => c
                .text(
                    "sdkOptions.discoveryUrl",
                    opts.get("discoveryUrl").unwrap_or(&Value::Null),
                )?
                .unwrap_or_else(|| default_discovery(platform).to_owned()),
        };
        if !discovery_url.contains("http") {
            return Err(c.invalid(
                "discoveryUrl",
                "an https:// URL",
                &Value::from(discovery_url),
            ));
        }
        let cert_obj = match opts.get("certificate") {
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => return Err(c.invalid("sdkOptions.certificate", "an object", other)),
        };
        let file = |k: &'static str| -> Result<Option<PathBuf>, ConfigError> {
            let key = format!("sdkOptions.certificate.{k}");
            Ok(c.text(&key, cert_obj.get(k).unwrap_or(&Value::Null))?
                .map(|p| c.resolve(&p)))
        };
        Ok(Config {
            path: path.to_owned(),
            cp_id,
            unique_id,
            env,
            scope_id: c.text("scopeId", &raw.scope_id)?,
            dps_url: crate::protocol::dps::GLOBAL_ENDPOINT.to_owned(),
            tpm: None,
            sas_lifetime: crate::agent::bootstrap::SAS_LIFETIME,
            discovery_url,
            cert: file("SSLCertPath")?,
            key: file("SSLKeyPath")?,
            ca: file("SSLCaPath")?,
            offline: c.offline(opts.get("offlineStorage"))?,
            device_primary_key: c.text(
                "sdkOptions.devicePrimaryKey",
                opts.get("devicePrimaryKey").unwrap_or(&Value::Null),
            )?,
            protocol,
            platform,
            sid,
        })
    }

    /// The lite SDK's `iotcDeviceConfig.json`: `ver` must be 2.1 (as the lite SDK insists);
    /// `pf` defaults to `aws` (as `iotconnect-lib` does); `did` and `at` are informational.
    fn parse_lite(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let c = Ctx { path };
        let raw: Lite = serde_json::from_str(text).map_err(|e| ConfigError::Json {
            path: path.to_owned(),
            line: e.line(),
            column: e.column(),
            reason: e.to_string(),
        })?;
        let ver = match &raw.ver {
            Value::Number(n) => Some(n.to_string()),
            v => c.text("ver", v)?,
        };
        if ver.as_deref().is_some_and(|v| v != "2.1") {
            return Err(c.invalid(
                "ver",
                "\"2.1\" (the lite SDK's config is protocol 2.1)",
                &raw.ver,
            ));
        }
        let platform = match c.text("pf", &raw.pf)? {
            None => Platform::Aws,
            Some(p) => {
                Platform::parse(&p).ok_or_else(|| c.invalid("pf", "\"az\" or \"aws\"", &raw.pf))?
            }
        };
        let discovery_url = c
            .text("disc", &raw.disc)?
            .unwrap_or_else(|| default_discovery(platform).to_owned());
        if !discovery_url.contains("http") {
            return Err(c.invalid("disc", "an https:// URL", &raw.disc));
        }
        Ok(Config {
            path: path.to_owned(),
            cp_id: c
                .text("cpid", &raw.cpid)?
                .ok_or(c.missing("cpid", "copy it from Settings → Key Vault"))?,
            unique_id: c
                .text("uid", &raw.uid)?
                .ok_or(c.missing("uid", "the device's unique id as created in IoTConnect"))?,
            env: c
                .text("env", &raw.env)?
                .ok_or(c.missing("env", "copy it from Settings → Key Vault"))?,
            scope_id: None,
            dps_url: crate::protocol::dps::GLOBAL_ENDPOINT.to_owned(),
            tpm: None,
            sas_lifetime: crate::agent::bootstrap::SAS_LIFETIME,
            discovery_url,
            cert: None,
            key: None,
            ca: None,
            offline: OfflineStorage::default(),
            device_primary_key: None,
            protocol: Protocol::V21,
            platform,
            sid: None,
        })
    }

    /// The default offline folder: `logs/offline/{cpId}_{uniqueId}` beside the config file (the
    /// SDK's layout).
    pub fn default_offline_dir(&self) -> PathBuf {
        Ctx { path: &self.path }.resolve(&format!("logs/offline/{}_{}", self.cp_id, self.unique_id))
    }
}

fn default_discovery(platform: Platform) -> &'static str {
    match platform {
        Platform::Azure => DEFAULT_DISCOVERY_URL,
        Platform::Aws => AWS_DISCOVERY_URL,
    }
}

struct Ctx<'a> {
    path: &'a Path,
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}…", &s[..s.floor_char_boundary(60)])
    } else {
        s
    }
}

impl Ctx<'_> {
    fn missing(&self, key: &'static str, hint: &'static str) -> ConfigError {
        ConfigError::Missing {
            path: self.path.to_owned(),
            key,
            hint,
        }
    }

    fn invalid(&self, key: &str, expected: &'static str, got: &Value) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            key: key.to_owned(),
            expected,
            got: show(got),
        }
    }

    fn text(&self, key: &str, v: &Value) -> Result<Option<String>, ConfigError> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) if s.trim().is_empty() => Ok(None),
            Value::String(s) => Ok(Some(s.trim().to_owned())),
            other => Err(self.invalid(key, "text", other)),
        }
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            return p;
        }
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(p),
            _ => p,
        }
    }

    fn offline(&self, v: Option<&Value>) -> Result<OfflineStorage, ConfigError> {
        let mut o = OfflineStorage::default();
        let m = match v {
            None | Some(Value::Null) => return Ok(o),
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(self.invalid("sdkOptions.offlineStorage", "an object", other));
            }
        };
        match m.get("disabled") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => o.disabled = *b,
            Some(other) => {
                return Err(self.invalid(
                    "sdkOptions.offlineStorage.disabled",
                    "true or false",
                    other,
                ));
            }
        }
        match m.get("availSpaceInMb") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_f64().is_some_and(|x| x >= 0.0 && x.is_finite()) => {
                o.avail_space_mb = n.as_f64().filter(|x| *x > 0.0);
            }
            Some(other) => {
                return Err(self.invalid(
                    "sdkOptions.offlineStorage.availSpaceInMb",
                    "a number of megabytes (0 = unlimited)",
                    other,
                ));
            }
        }
        match m.get("fileCount") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n))
                if n.as_u64()
                    .is_some_and(|x| (1..=u64::from(u32::MAX)).contains(&x)) =>
            {
                o.file_count = n.as_u64().map_or(1, |x| x as u32);
            }
            Some(other) => {
                return Err(self.invalid(
                    "sdkOptions.offlineStorage.fileCount",
                    "a whole number of files, at least 1",
                    other,
                ));
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/iotc/iotconnect.json"), text)
    }

    #[test]
    fn seed_shape_with_relative_paths() {
        let c = parse(
            r#"{"cpId":"CP","uniqueId":"dev1","env":"PROD","scopeId":"0ne00",
            "sdkOptions":{"certificate":{"SSLKeyPath":"certs/k.pem","SSLCertPath":"/abs/c.pem","SSLCaPath":"ca.pem"},
            "offlineStorage":{"disabled":false,"availSpaceInMb":1,"fileCount":5},"IsDebug":true}}"#,
        )
        .unwrap();
        assert_eq!(c.discovery_url, DEFAULT_DISCOVERY_URL);
        assert_eq!(c.key.as_deref(), Some(Path::new("/etc/iotc/certs/k.pem")));
        assert_eq!(c.cert.as_deref(), Some(Path::new("/abs/c.pem")));
        let spool = c.offline.spool(PathBuf::from("/s")).unwrap();
        assert_eq!((spool.max_bytes, spool.max_files), (1024 * 1024, 5));
        assert_eq!(
            c.default_offline_dir(),
            Path::new("/etc/iotc/logs/offline/CP_dev1")
        );
    }

    #[test]
    fn offline_defaults_disabled_and_unlimited() {
        let c = parse(r#"{"cpId":"CP","uniqueId":"d","env":"E","sdkOptions":{"offlineStorage":{"disabled":true}}}"#).unwrap();
        assert!(c.offline.spool(PathBuf::from("/s")).is_none());
        let c =
            parse(r#"{"cpId":"CP","uniqueId":"d","env":"E","discoveryUrl":"https://x"}"#).unwrap();
        let s = c.offline.spool(PathBuf::from("/s")).unwrap();
        assert_eq!(s.max_bytes / u64::from(s.max_files), UNLIMITED_FILE_BYTES);
        assert_eq!(c.discovery_url, "https://x");
    }

    #[test]
    fn protocol_and_platform_and_the_lite_file() {
        let c =
            parse(r#"{"cpId":"CP","uniqueId":"d","env":"E","protocol":"2.1","platform":"aws"}"#)
                .unwrap();
        assert_eq!((c.protocol, c.platform), (Protocol::V21, Platform::Aws));
        assert_eq!(c.discovery_url, AWS_DISCOVERY_URL);
        let e = parse(r#"{"cpId":"CP","uniqueId":"d","env":"E","platform":"aws"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2.1 only"), "{e}");
        let e = parse(r#"{"cpId":"CP","uniqueId":"d","env":"E","protocol":"3"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`protocol`"), "{e}");
        let lite = parse(
            r#"{"ver":"2.1","pf":"az","cpid":"CP","env":"poc","uid":"dev1","did":"CP-dev1","at":7,"disc":"https://discovery.iotconnect.io"}"#,
        )
        .unwrap();
        assert_eq!(lite.protocol, Protocol::V21);
        assert_eq!(lite.platform, Platform::Azure);
        assert_eq!(
            (lite.cp_id.as_str(), lite.unique_id.as_str()),
            ("CP", "dev1")
        );
        let e = parse(r#"{"ver":"1.0","cpid":"CP","env":"x","uid":"d"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`ver`"), "{e}");
        let e = parse(r#"{"ver":"2.1","env":"x","uid":"d"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`cpid`"), "{e}");
    }

    #[test]
    fn errors_name_file_and_key() {
        let e = parse(r#"{"uniqueId":"d","env":"E"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/etc/iotc/iotconnect.json") && e.contains("`cpId`"),
            "{e}"
        );
        let e = parse(r#"{"cpId":"c","uniqueId":"d","env":"E","sdkOptions":{"offlineStorage":{"fileCount":0}}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fileCount") && e.contains("got 0"), "{e}");
        let e = parse(r#"{"cpId":5}"#).unwrap_err().to_string();
        assert!(e.contains("`cpId` must be text, got 5"), "{e}");
        let e = parse("{\n\"cpId\":").unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        let e = parse(r#"{"cpId":"c","uniqueId":"d","env":"E","discoveryUrl":"discovery"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("discoveryUrl"), "{e}");
    }
}
