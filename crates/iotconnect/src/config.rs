//! The agent's configuration file, `iotconnect.json`, in the shape of the SDK's constructor
//! arguments: `cpId`, `uniqueId`, `env`, `scopeId` (TPM, accepted and unused), `discoveryUrl`,
//! and `sdkOptions` with `certificate {SSLKeyPath, SSLCertPath, SSLCaPath}`,
//! `offlineStorage {disabled, availSpaceInMb, fileCount}`, `discoveryUrl` and
//! `devicePrimaryKey` (auth type 5). Relative paths resolve against the file's folder. Errors
//! name the file, the key and what was expected. [`Config::parse`] is pure; [`Config::load`]
//! reads the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use transport::SpoolConfig;

use crate::protocol::v1::sync::DEFAULT_DISCOVERY_URL;

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
    /// DPS scope id (TPM; unused).
    pub scope_id: Option<String>,
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
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("cp_id", &self.cp_id)
            .field("unique_id", &self.unique_id)
            .field("env", &self.env)
            .field("scope_id", &self.scope_id)
            .field("discovery_url", &self.discovery_url)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("ca", &self.ca)
            .field("offline", &self.offline)
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
        discovery_url: "https://discovery.example".into(),
        cert: None,
        key: None,
        ca: None,
        offline: OfflineStorage::default(),
        device_primary_key: Some("c2VjcmV0LWRldmljZS1rZXk=".into()),
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
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(path, &text)
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
                .unwrap_or_else(|| DEFAULT_DISCOVERY_URL.to_owned()),
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
            discovery_url,
            cert: file("SSLCertPath")?,
            key: file("SSLKeyPath")?,
            ca: file("SSLCaPath")?,
            offline: c.offline(opts.get("offlineStorage"))?,
            device_primary_key: c.text(
                "sdkOptions.devicePrimaryKey",
                opts.get("devicePrimaryKey").unwrap_or(&Value::Null),
            )?,
        })
    }

    /// The default offline folder: `logs/offline/{cpId}_{uniqueId}` beside the config file (the
    /// SDK's layout).
    pub fn default_offline_dir(&self) -> PathBuf {
        Ctx { path: &self.path }.resolve(&format!("logs/offline/{}_{}", self.cp_id, self.unique_id))
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
