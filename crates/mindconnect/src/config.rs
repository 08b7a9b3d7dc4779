//! The seed's `configs/mqtt-config.json`, read as is: a JSON object keyed by environment
//! section (`"AWS"`, older `"AWS_PROD"`) or flat, with the keys `IOT_HOST`, `CLIENT_ID`,
//! `DEVICE_NAME`, `TENANT_ID`, `CA_PATH`, `DEVICE_CERT_PATH`, `DEVICE_KET_PATH` (sic; the
//! correct spelling is accepted too), `MODEL_NAME`, `GW_URL`, `SGW_URL`, `PLATFORM`, plus our
//! optional `HTTP_CA_PATH` and `MODEL_API`. Flags override values. Relative paths resolve against the config
//! file's folder, then its parent (the seed keeps `agent_cert/` next to `configs/`), then the
//! current folder. At the end, the certificate identity rule:
//! `CLIENT_ID == TENANT_ID + "_" + <certificate CN>`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use transport::settings::SettingsError;
use transport::tls::{TlsError, TlsOptions};
use transport::{ConnectSettings, SessionOptions};

use crate::protocol::topic::{TopicError, Topics};

/// Where the sample keeps its config.
pub const DEFAULT_CONFIG: &str = "configs/mqtt-config.json";
/// The section the sample reads.
pub const DEFAULT_SECTION: &str = "AWS";
/// The broker port the sample hard-codes.
pub const DEFAULT_PORT: u16 = 8883;

const KEYS: [&str; 17] = [
    "IOT_HOST",
    "CLIENT_ID",
    "DEVICE_NAME",
    "TENANT_ID",
    "CA_PATH",
    "DEVICE_CERT_PATH",
    "DEVICE_KET_PATH",
    "DEVICE_KEY_PATH",
    "MODEL_NAME",
    "GW_URL",
    "SGW_URL",
    "PLATFORM",
    "HTTP_CA_PATH",
    // edgewire's: which asset model generation `mc-agent run` speaks (see [`ModelApi`]).
    "MODEL_API",
    // The 2024 sample's keys: checked below (the custom data format is refused, not ignored).
    "USE_CUSTOM_TIMESERIES",
    "CUSTOM_TOPIC",
    "TENANT_CERT_PATH",
];

/// The asset model generation `mc-agent run` speaks: the 2023 sample's `amo_v3` (model and
/// instance, `instance.conf`) or the 2024 sample's `amo_v4` synchronisation (`agent.ini`).
/// Neither sample has a setting for it (each speaks one generation), so edgewire adds the key
/// `MODEL_API` and the flag `--model-api`; without them the presence of `agent.ini` decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelApi {
    /// `amo_v3`.
    V3,
    /// `amo_v4`.
    V4,
}

impl ModelApi {
    /// `v3` or `v4`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelApi::V3 => "v3",
            ModelApi::V4 => "v4",
        }
    }

    /// `v3`, `v4`, `amo_v3` or `amo_v4`, in any case.
    pub fn parse(s: &str) -> Option<ModelApi> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v3" | "amo_v3" => Some(ModelApi::V3),
            "v4" | "amo_v4" => Some(ModelApi::V4),
            _ => None,
        }
    }

    /// The generation to speak and why: `flag` (`--model-api`) over `key` (`MODEL_API`),
    /// else v4 when `agent_ini_exists` (the 2024 sample ships the file), else v3.
    pub fn choose(
        flag: Option<ModelApi>,
        key: Option<ModelApi>,
        agent_ini_exists: bool,
    ) -> (ModelApi, &'static str) {
        match (flag, key) {
            (Some(a), _) => (a, "--model-api"),
            (None, Some(a)) => (a, "MODEL_API"),
            (None, None) if agent_ini_exists => (ModelApi::V4, "agent.ini exists"),
            (None, None) => (ModelApi::V3, "no agent.ini"),
        }
    }
}

impl std::fmt::Display for ModelApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the configuration cannot be used. Every variant names the file, key or flag.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the config file `{path}`: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// Not JSON.
    #[error("config file `{path}` is not valid JSON: {reason}")]
    Json {
        /// File.
        path: PathBuf,
        /// Parser message with line and column.
        reason: String,
    },
    /// JSON, but not an object of sections or keys.
    #[error(
        "config file `{path}`: expected a JSON object like {{\"AWS\": {{\"CLIENT_ID\": ...}}}} or {{\"CLIENT_ID\": ...}}, found {found}"
    )]
    Shape {
        /// File.
        path: PathBuf,
        /// What was there.
        found: String,
    },
    /// The asked-for section is not there, or no section could be chosen.
    #[error("config file `{path}` has no section `{wanted}`; its sections are: {}; choose one with --section", available.join(", "))]
    Section {
        /// File.
        path: PathBuf,
        /// Wanted (upper-cased, like the sample's parser).
        wanted: String,
        /// Sections found.
        available: Vec<String>,
    },
    /// A key with a value that is not a string.
    #[error("config file `{path}`: `{key}`{} must be a string, found {found}", section_suffix(.section.as_ref()))]
    KeyType {
        /// File.
        path: PathBuf,
        /// Section.
        section: Option<String>,
        /// Key.
        key: String,
        /// JSON type found.
        found: &'static str,
    },
    /// A required value is absent from file and flags.
    #[error("config file `{path}` has no `{key}`{} and {flag} was not given", section_suffix(.section.as_ref()))]
    Missing {
        /// File.
        path: PathBuf,
        /// Section.
        section: Option<String>,
        /// Key.
        key: &'static str,
        /// The overriding flag.
        flag: &'static str,
    },
    /// A certificate or key file does not exist.
    #[error("certificates missing: {key} `{value}` does not exist (looked at {})", tried.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(" and "))]
    MissingFile {
        /// Key or flag.
        key: &'static str,
        /// Value as written.
        value: String,
        /// Paths looked at.
        tried: Vec<PathBuf>,
    },
    /// A PLATFORM this crate does not speak.
    #[error(
        "config file `{path}`: PLATFORM `{value}` is not supported; edgewire speaks the AWS-hosted tenant-client topics (EU1 and compatible), PLATFORM \"AWS\""
    )]
    Platform {
        /// File.
        path: PathBuf,
        /// Value.
        value: String,
    },
    /// A key asks for something this crate does not do; the sentence says what instead.
    #[error("config file `{path}`: {key} {value}: {why}")]
    Unsupported {
        /// File.
        path: PathBuf,
        /// Key.
        key: &'static str,
        /// Value as written.
        value: String,
        /// What is not supported and what to write instead.
        why: &'static str,
    },
    /// CLIENT_ID does not follow `<tenant>_<CN>`.
    #[error(transparent)]
    Identity(Box<IdentityMismatch>),
    /// The certificate has no CN.
    #[error("certificate `{}` has no subject common name (CN); Insights Hub derives the agent name from it", .0.display())]
    NoCommonName(PathBuf),
    /// TLS files.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Tenant or client id unusable in topics.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// Connection settings (broker URL, password source).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// `GW_URL` or `SGW_URL` is refused by the HTTP policy (plain http to another machine,
    /// not a URL); the message names the key or flag and the file.
    #[error(transparent)]
    Url(Box<transport::http::HttpError>),
}

/// The details of a CLIENT_ID that does not match the certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CLIENT_ID `{client_id}` does not match the certificate: Insights Hub expects TENANT_ID + \"_\" + the certificate's CN = `{expected}` (TENANT_ID `{tenant}`, CN `{cn}` of `{}`); {detail}", cert.display())]
pub struct IdentityMismatch {
    /// Client id in use.
    pub client_id: String,
    /// Tenant.
    pub tenant: String,
    /// Certificate CN.
    pub cn: String,
    /// Certificate file.
    pub cert: PathBuf,
    /// What is expected.
    pub expected: String,
    /// What exactly differs.
    pub detail: String,
}

fn section_suffix(s: Option<&String>) -> String {
    s.as_ref()
        .map(|s| format!(" (section `{s}`)"))
        .unwrap_or_default()
}

/// The values of one config file (section), as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFile {
    /// The file.
    pub path: PathBuf,
    /// The section used (`None`: a flat file).
    pub section: Option<String>,
    /// `IOT_HOST`.
    pub iot_host: Option<String>,
    /// `CLIENT_ID`.
    pub client_id: Option<String>,
    /// `DEVICE_NAME`.
    pub device_name: Option<String>,
    /// `TENANT_ID`.
    pub tenant_id: Option<String>,
    /// `CA_PATH`.
    pub ca_path: Option<String>,
    /// `DEVICE_CERT_PATH`.
    pub device_cert_path: Option<String>,
    /// `DEVICE_KET_PATH` (or `DEVICE_KEY_PATH`).
    pub device_key_path: Option<String>,
    /// `MODEL_NAME`.
    pub model_name: Option<String>,
    /// `GW_URL`.
    pub gw_url: Option<String>,
    /// `SGW_URL`.
    pub sgw_url: Option<String>,
    /// `PLATFORM`.
    pub platform: Option<String>,
    /// `HTTP_CA_PATH` (edgewire's addition: trust for the HTTPS steps; default: system roots).
    pub http_ca_path: Option<String>,
    /// `CUSTOM_TOPIC` when `USE_CUSTOM_TIMESERIES` is `"True"` (the 2024 sample's custom data
    /// format; `mc-model register-topic` and `mc-agent custom` use it).
    pub custom_topic: Option<String>,
    /// `MODEL_API` (`"v3"` or `"v4"`; edgewire's key, see [`ModelApi`]).
    pub model_api: Option<ModelApi>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl ConfigFile {
    /// Reads `path`, choosing `section` (default `AWS`, or the only section there is).
    pub fn load(path: &Path, section: Option<&str>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path, section)
    }

    /// Parses the text of `path`.
    pub fn parse(text: &str, path: &Path, section: Option<&str>) -> Result<Self, ConfigError> {
        let p = || path.to_owned();
        let root: Value = serde_json::from_str(text).map_err(|e| ConfigError::Json {
            path: p(),
            reason: e.to_string(),
        })?;
        let Value::Object(root) = root else {
            return Err(ConfigError::Shape {
                path: p(),
                found: type_name(&root).into(),
            });
        };
        let flat = root.keys().any(|k| KEYS.contains(&k.as_str()));
        let (section, map): (Option<String>, &Map<String, Value>) = if flat {
            (None, &root)
        } else {
            let sections: Vec<&String> = root
                .iter()
                .filter(|(_, v)| v.is_object())
                .map(|(k, _)| k)
                .collect();
            let available = || sections.iter().map(|s| (*s).clone()).collect::<Vec<_>>();
            let chosen = match section {
                Some(s) => {
                    let wanted = s.to_uppercase();
                    sections
                        .iter()
                        .find(|k| k.to_uppercase() == wanted)
                        .copied()
                        .ok_or_else(|| ConfigError::Section {
                            path: p(),
                            wanted,
                            available: available(),
                        })?
                }
                None => match sections.iter().find(|k| k.as_str() == DEFAULT_SECTION) {
                    Some(k) => *k,
                    None if sections.len() == 1 => sections[0],
                    None if sections.is_empty() => {
                        return Err(ConfigError::Shape {
                            path: p(),
                            found: "no known keys and no sections".into(),
                        });
                    }
                    None => {
                        return Err(ConfigError::Section {
                            path: p(),
                            wanted: DEFAULT_SECTION.into(),
                            available: available(),
                        });
                    }
                },
            };
            let Some(Value::Object(m)) = root.get(chosen) else {
                return Err(ConfigError::Shape {
                    path: p(),
                    found: "a section that is not an object".into(),
                });
            };
            (Some(chosen.clone()), m)
        };
        let get = |key: &str| -> Result<Option<String>, ConfigError> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v) => Err(ConfigError::KeyType {
                    path: p(),
                    section: section.clone(),
                    key: key.into(),
                    found: type_name(v),
                }),
            }
        };
        for k in map.keys().filter(|k| !KEYS.contains(&k.as_str())) {
            tracing::warn!(
                "config file `{}`: key `{k}` is not one edgewire knows; it is ignored",
                path.display()
            );
        }
        let custom = match map.get("USE_CUSTOM_TIMESERIES") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") || s.is_empty() => false,
            Some(v) => {
                return Err(ConfigError::Unsupported {
                    path: p(),
                    key: "USE_CUSTOM_TIMESERIES",
                    value: v.to_string().chars().take(40).collect(),
                    why: "expected \"True\" or \"False\"",
                });
            }
        };
        let custom_topic = get("CUSTOM_TOPIC")?;
        let custom_topic = match (custom, custom_topic) {
            (true, Some(t)) => Some(t),
            (true, None) => {
                return Err(ConfigError::Unsupported {
                    path: p(),
                    key: "USE_CUSTOM_TIMESERIES",
                    value: "True".into(),
                    why: "the custom data format needs CUSTOM_TOPIC, the topic to register and publish to (e.g. clouddatastore/<CLIENT_ID>/ts)",
                });
            }
            (false, Some(_)) => {
                tracing::warn!(
                    "config file `{}`: CUSTOM_TOPIC is ignored: USE_CUSTOM_TIMESERIES is not \"True\"",
                    path.display()
                );
                None
            }
            (false, None) => None,
        };
        let model_api = match get("MODEL_API")? {
            None => None,
            Some(v) if v.trim().is_empty() => None,
            Some(v) => Some(ModelApi::parse(&v).ok_or_else(|| ConfigError::Unsupported {
                path: p(),
                key: "MODEL_API",
                value: v.chars().take(40).collect(),
                why: "expected \"v3\" (amo_v3 model and instance, instance.conf) or \"v4\" (amo_v4 model synchronisation, agent.ini)",
            })?),
        };
        if map.get("TENANT_CERT_PATH").is_some_and(|v| !v.is_null()) {
            tracing::info!(
                "config file `{}`: TENANT_CERT_PATH is not needed: the agent authenticates with DEVICE_CERT_PATH alone",
                path.display()
            );
        }
        Ok(ConfigFile {
            path: p(),
            iot_host: get("IOT_HOST")?,
            client_id: get("CLIENT_ID")?,
            device_name: get("DEVICE_NAME")?,
            tenant_id: get("TENANT_ID")?,
            ca_path: get("CA_PATH")?,
            device_cert_path: get("DEVICE_CERT_PATH")?,
            device_key_path: match get("DEVICE_KET_PATH")? {
                Some(v) => Some(v),
                None => get("DEVICE_KEY_PATH")?,
            },
            model_name: get("MODEL_NAME")?,
            gw_url: get("GW_URL")?,
            sgw_url: get("SGW_URL")?,
            platform: get("PLATFORM")?,
            http_ca_path: get("HTTP_CA_PATH")?,
            custom_topic,
            model_api,
            section,
        })
    }

    fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// Resolves a relative path from the file: its folder first, then its parent folder (the
    /// seed keeps `agent_cert/` next to `configs/`), then the current folder (as the sample
    /// opens it). Returns the first that exists (else the first tried) and all tried.
    pub fn resolve_path(&self, value: &str) -> (PathBuf, Vec<PathBuf>) {
        let v = Path::new(value);
        if v.is_absolute() {
            return (v.to_owned(), vec![v.to_owned()]);
        }
        let dir = self.dir();
        let mut tried = vec![dir.join(v)];
        if let Some(parent) = dir.parent() {
            tried.push(parent.join(v));
        }
        if !tried.iter().any(|p| p == v) {
            tried.push(v.to_owned());
        }
        let found = tried
            .iter()
            .find(|p| p.exists())
            .cloned()
            .unwrap_or_else(|| tried[0].clone());
        (found, tried)
    }

    fn missing(&self, key: &'static str, flag: &'static str) -> ConfigError {
        ConfigError::Missing {
            path: self.path.clone(),
            section: self.section.clone(),
            key,
            flag,
        }
    }
}

/// Values that override the file (from flags).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--broker`, `--client-id`, keep-alive, timeouts; `--cafile`, `--cert`, `--key`, `--alpn`;
    /// `--username`, `--password-env`, `--password-file` (not used by EU1; kept for other
    /// brokers).
    pub connect: ConnectSettings,
    /// `--tenant`.
    pub tenant: Option<String>,
    /// `--model-name`.
    pub model_name: Option<String>,
    /// `--gw-url`.
    pub gw_url: Option<String>,
    /// `--sgw-url`.
    pub sgw_url: Option<String>,
    /// `--http-cafile`.
    pub http_cafile: Option<PathBuf>,
    /// `--max-message-kb` (KiB; default 128).
    pub max_message_kb: Option<u32>,
}

/// Everything resolved: who we are, where to connect, with what.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file.
    pub file: ConfigFile,
    /// Topics of this agent.
    pub topics: Topics,
    /// Session options (client id, TLS, keep-alive 60; callers choose clean session).
    pub session: SessionOptions,
    /// Certificate CN (the agent name).
    pub agent_name: String,
    /// `MODEL_NAME`.
    pub model_name: Option<String>,
    /// `GW_URL` without a trailing slash.
    pub gw_url: Option<String>,
    /// `SGW_URL` without a trailing slash.
    pub sgw_url: Option<String>,
    /// Trust for the HTTPS steps.
    pub http_tls: TlsOptions,
    /// The largest message payload sent to the broker, in bytes (`--max-message-kb`).
    pub max_message_bytes: usize,
    /// `--allow-plaintext`: plain http to another machine is allowed for the HTTPS steps too
    /// (warned); otherwise only loopback may be plain.
    pub allow_plaintext: bool,
}

/// The broker URL for an `IOT_HOST`: a full URL is used as is; `host:port` and `host` become
/// `mqtts://` (port 8883 like the sample).
pub fn broker_url(iot_host: &str) -> String {
    let h = iot_host.trim().trim_end_matches('/');
    if h.contains("://") {
        h.to_owned()
    } else if h
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.contains(':') && port.parse::<u16>().is_ok())
    {
        format!("mqtts://{h}")
    } else {
        format!("mqtts://{h}:{DEFAULT_PORT}")
    }
}

/// Checks the Insights Hub identity rule and says exactly what differs.
pub fn check_identity(
    client_id: &str,
    tenant: &str,
    cn: &str,
    cert: &Path,
) -> Result<(), ConfigError> {
    let expected = format!("{tenant}_{cn}");
    if client_id == expected {
        return Ok(());
    }
    let prefix = format!("{tenant}_");
    let detail = match client_id.strip_prefix(&prefix) {
        Some(rest) => format!(
            "after `{prefix}` it has `{rest}` where the certificate says `{cn}`; fix CLIENT_ID or use the certificate issued for `{rest}`"
        ),
        None if client_id == cn => {
            format!("it is the bare CN (the EU2/Azure form); on EU1 prefix it with `{prefix}`")
        }
        None => format!("it does not start with `{prefix}`; check TENANT_ID and CLIENT_ID"),
    };
    Err(ConfigError::Identity(Box::new(IdentityMismatch {
        client_id: client_id.to_owned(),
        tenant: tenant.to_owned(),
        cn: cn.to_owned(),
        cert: cert.to_owned(),
        expected,
        detail,
    })))
}

impl Settings {
    /// Applies `o` over `file`, checks the files exist and the identity rule holds.
    pub fn resolve(file: ConfigFile, o: &Overrides) -> Result<Settings, ConfigError> {
        if let Some(p) = &file.platform
            && !p.eq_ignore_ascii_case("AWS")
        {
            return Err(ConfigError::Platform {
                path: file.path.clone(),
                value: p.clone(),
            });
        }
        let broker = &o.connect;
        let tenant = o
            .tenant
            .clone()
            .or_else(|| file.tenant_id.clone())
            .ok_or_else(|| file.missing("TENANT_ID", "--tenant"))?;
        let client_id = broker
            .client_id
            .clone()
            .or_else(|| file.client_id.clone())
            .ok_or_else(|| file.missing("CLIENT_ID", "--client-id"))?;
        let topics = Topics::new(&tenant, &client_id)?;
        let existing = |flag: &Option<PathBuf>,
                        value: &Option<String>,
                        key: &'static str,
                        flag_name: &'static str|
         -> Result<PathBuf, ConfigError> {
            let (path, tried, shown) = match (flag, value) {
                (Some(f), _) => (f.clone(), vec![f.clone()], f.display().to_string()),
                (None, Some(v)) => {
                    let (p, tried) = file.resolve_path(v);
                    (p, tried, v.clone())
                }
                (None, None) => return Err(file.missing(key, flag_name)),
            };
            if path.is_file() {
                Ok(path)
            } else {
                Err(ConfigError::MissingFile {
                    key,
                    value: shown,
                    tried,
                })
            }
        };
        let cert = existing(
            &broker.tls.client_cert,
            &file.device_cert_path,
            "DEVICE_CERT_PATH",
            "--cert",
        )?;
        let key = existing(
            &broker.tls.client_key,
            &file.device_key_path,
            "DEVICE_KET_PATH",
            "--key",
        )?;
        let cafile = match (broker.tls.ca_files.is_empty(), &file.ca_path) {
            (false, _) => broker.tls.ca_files.clone(),
            (true, Some(_)) => vec![existing(&None, &file.ca_path, "CA_PATH", "--cafile")?],
            (true, None) => Vec::new(),
        };
        let cn = transport::tls::common_name_of_file(&cert)?
            .ok_or_else(|| ConfigError::NoCommonName(cert.clone()))?;
        check_identity(&client_id, &tenant, &cn, &cert)?;
        let url = match (&broker.broker, &file.iot_host) {
            (Some(_), _) => None,
            (None, Some(h)) => Some(broker_url(h)),
            (None, None) => return Err(file.missing("IOT_HOST", "--broker")),
        };
        let connect = ConnectSettings {
            tls: TlsOptions {
                ca_files: cafile,
                client_cert: Some(cert),
                client_key: Some(key),
                alpn: broker.tls.alpn.clone(),
            },
            ..broker.clone()
        };
        let mut session = connect.session_options(url.as_deref())?;
        session.client_id.clone_from(&client_id);
        let http_ca = match (&o.http_cafile, &file.http_ca_path) {
            (Some(f), _) => vec![f.clone()],
            (None, Some(_)) => vec![existing(
                &None,
                &file.http_ca_path,
                "HTTP_CA_PATH",
                "--http-cafile",
            )?],
            (None, None) => Vec::new(),
        };
        let trim = |s: Option<String>| s.map(|u| u.trim_end_matches('/').to_owned());
        // The URLs are checked now, so a refused one stops the run before any connection,
        // with the key (or flag) and the file named.
        for (flag_value, file_value, key, flag) in [
            (&o.gw_url, &file.gw_url, "GW_URL", "--gw-url"),
            (&o.sgw_url, &file.sgw_url, "SGW_URL", "--sgw-url"),
        ] {
            let (url, what) = match (flag_value, file_value) {
                (Some(u), _) => (u, flag.to_owned()),
                (None, Some(u)) => (u, format!("`{key}` in `{}`", file.path.display())),
                (None, None) => continue,
            };
            // An empty value is as good as none (the demo writes one when no HTTPS runs).
            if url.trim().is_empty() {
                continue;
            }
            transport::http::check_url(url, &what, broker.allow_plaintext)
                .map_err(|e| ConfigError::Url(Box::new(e)))?;
        }
        Ok(Settings {
            topics,
            session,
            agent_name: cn,
            model_name: o.model_name.clone().or_else(|| file.model_name.clone()),
            gw_url: trim(o.gw_url.clone().or_else(|| file.gw_url.clone())),
            sgw_url: trim(o.sgw_url.clone().or_else(|| file.sgw_url.clone())),
            http_tls: TlsOptions {
                ca_files: http_ca,
                ..TlsOptions::default()
            },
            max_message_bytes: o
                .max_message_kb
                .map_or(crate::agent::source::DEFAULT_MAX_MESSAGE, |kb| {
                    kb as usize * 1024
                }),
            allow_plaintext: broker.allow_plaintext,
            file,
        })
    }

    /// The settings of an agent made without a config file (a fleet's simulated agents):
    /// `session` carries its client id, which must be `{tenant}_{agent_name}` (the identity rule
    /// [`Settings::resolve`] checks against the certificate's CN), and its TLS set-up; no HTTPS
    /// steps.
    pub fn for_agent(
        tenant: &str,
        agent_name: &str,
        session: SessionOptions,
        model_name: Option<String>,
    ) -> Result<Settings, ConfigError> {
        let cert = session.tls.client_cert.clone().unwrap_or_default();
        check_identity(&session.client_id, tenant, agent_name, &cert)?;
        Ok(Settings {
            topics: Topics::new(tenant, &session.client_id)?,
            allow_plaintext: false,
            session,
            agent_name: agent_name.to_owned(),
            model_name,
            gw_url: None,
            sgw_url: None,
            http_tls: TlsOptions::default(),
            max_message_bytes: crate::agent::source::DEFAULT_MAX_MESSAGE,
            file: ConfigFile::default(),
        })
    }

    /// `GW_URL` and `SGW_URL`, or an error naming the missing one.
    pub fn require_urls(&self) -> Result<(&str, &str), ConfigError> {
        let gw = self
            .gw_url
            .as_deref()
            .ok_or_else(|| self.file.missing("GW_URL", "--gw-url"))?;
        let sgw = self
            .sgw_url
            .as_deref()
            .ok_or_else(|| self.file.missing("SGW_URL", "--sgw-url"))?;
        Ok((gw, sgw))
    }

    /// `MODEL_NAME`, or an error naming the key and flag.
    pub fn require_model_name(&self) -> Result<&str, ConfigError> {
        self.model_name
            .as_deref()
            .ok_or_else(|| self.file.missing("MODEL_NAME", "--model-name"))
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
