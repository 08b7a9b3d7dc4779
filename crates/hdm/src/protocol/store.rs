//! The layout of the reference client's `certificate_store/` folder in every generation (seed
//! README "Authentication", and the later generations of the HDM IoT reference client, <https://github.com/hdm-master/iot-reference-client>): gen 1 `ClientID.txt` and the key pair, gen 2
//! adds `OrgID.txt`, gen 3 keeps everything in `properties.json`. This client writes the union
//! (so a store can be read by any of them) plus its own `oauth_token.json` and
//! `directory.json` (gen 3). File names and content checks only; the agent does the reading
//! and the atomic writing.

use std::path::{Path, PathBuf};

/// The default folder name.
pub const DEFAULT_DIR: &str = "certificate_store";
/// The broker's trust anchor (the server root CA from the configuration response).
pub const ROOT_CA: &str = "amazonRootCA1.pem";
/// The thing name, as the gen-1 code writes it.
pub const CLIENT_ID: &str = "ClientID.txt";
/// The thing name, as the README spells it (read when `ClientID.txt` is absent).
pub const CLIENT_ID_README: &str = "clientID.txt";
/// The device certificate.
pub const DEVICE_CERT: &str = "deviceCert.cert";
/// The device private key (written 0600; its presence means "provisioned").
pub const PRIVATE_KEY: &str = "devicePrivateKey.pem";
/// The device public key (written 0600 too).
pub const PUBLIC_KEY: &str = "devicePublicKey.pem";
/// The MQTT endpoint, topic and ids (the gen-3 client's file; written here for every generation).
pub const PROPERTIES: &str = "properties.json";
/// The organisation id (gen 2+), as the gen-2 code writes it.
pub const ORG_ID: &str = "OrgID.txt";
/// The organisation id, as the gen-2 README spells it (read when `OrgID.txt` is absent).
pub const ORG_ID_README: &str = "OrgId.txt";
/// The Zaikio OAuth tokens (gen 3; this client's file, 0600).
pub const OAUTH_TOKEN: &str = "oauth_token.json";
/// The Zaikio directory steps done so far (gen 3; this client's file).
pub const DIRECTORY: &str = "directory.json";

/// Paths of the files in one store folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLayout {
    dir: PathBuf,
}

impl StoreLayout {
    /// The layout of `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreLayout { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file of the store.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// `properties.json`, with the gen-3 client's keys (the reference client's `onboarding/onboarding_manager.py`): `mqtt_endpoint`,
/// `mqtt_port` (an integer), `machine_region`, `telemetry_topic`, `client_id`, `org_id`,
/// `machine_id`, `site_id`. Keys a generation does not know are left out.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Properties {
    /// `connectivity.mqttEndPoint`.
    pub mqtt_endpoint: String,
    /// `connectivity.mqttPort`.
    pub mqtt_port: u16,
    /// `connectivity.machineRegion` (gen 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_region: Option<String>,
    /// `provisioning.telemetryTopic` (gen 2+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry_topic: Option<String>,
    /// The thing name (also in `ClientID.txt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The organisation (gen 2+; also in `OrgID.txt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// The Zaikio machine (gen 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// The Zaikio site (gen 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<String>,
}

/// Checks the content of `OrgID.txt`: one topic level, surrounding white space ignored.
pub fn parse_org_id(text: &str) -> Result<String, crate::protocol::topics::TopicError> {
    let id = text.trim();
    crate::protocol::topics::validate_level(id)?;
    Ok(id.to_owned())
}

/// Checks the content of `ClientID.txt`: one thing name, surrounding white space ignored.
pub fn parse_client_id(text: &str) -> Result<String, crate::protocol::topics::TopicError> {
    let id = text.trim();
    crate::protocol::topics::validate_thing_name(id)?;
    Ok(id.to_owned())
}

/// Whether `text` holds at least one PEM block of `label` (e.g. `CERTIFICATE`, `PRIVATE KEY`).
pub fn has_pem(text: &str, label: &str) -> bool {
    text.contains(&format!("-----BEGIN {label}-----"))
        && text.contains(&format!("-----END {label}-----"))
}

/// Whether `text` holds a private key in one of the PEM encodings TLS accepts.
pub fn has_private_key(text: &str) -> bool {
    ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"]
        .iter()
        .any(|l| has_pem(text, l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_is_trimmed_and_checked() {
        assert_eq!(parse_client_id("hdm-1\n").unwrap(), "hdm-1");
        assert!(parse_client_id("").is_err());
        assert!(parse_client_id("a/b").is_err());
    }

    #[test]
    fn pem_detection() {
        assert!(has_pem(
            "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
            "CERTIFICATE"
        ));
        assert!(has_private_key(
            "-----BEGIN EC PRIVATE KEY-----\n-----END EC PRIVATE KEY-----"
        ));
        assert!(!has_private_key("hello"));
    }

    #[test]
    fn properties_round_trip() {
        let p = Properties {
            mqtt_endpoint: "a.iot.eu-west-1.amazonaws.com".into(),
            mqtt_port: 8883,
            client_id: Some("t".into()),
            ..Properties::default()
        };
        let s = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Properties>(&s).unwrap(), p);
        assert!(s.contains("\"mqtt_endpoint\"") && !s.contains("site_id"));
        // As the gen-3 Python client writes it.
        let py = r#"{"mqtt_endpoint": "a-ats.iot.eu-west-1.amazonaws.com", "mqtt_port": 8883, "machine_region": "eu-west-1", "telemetry_topic": "$aws/rules/iot_data_platform_telemetry_stg", "client_id": "c-1", "org_id": "o-1", "machine_id": "m-1", "site_id": "s-1"}"#;
        let p: Properties = serde_json::from_str(py).unwrap();
        assert_eq!(p.site_id.as_deref(), Some("s-1"));
        assert_eq!(p.machine_region.as_deref(), Some("eu-west-1"));
    }
}
