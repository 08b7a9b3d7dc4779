//! The layout of the reference client's `certificate_store/` folder (seed README "Authentication",
//! hdm-aws.md A.3) and the `properties.json` this client adds for the MQTT endpoint (the name
//! and keys of the gen-3 reference client's file). File names and content checks only; the
//! agent does the reading and the atomic writing.

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
/// The MQTT endpoint from the configuration response.
pub const PROPERTIES: &str = "properties.json";

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

/// `properties.json`: where the broker is (keys as in the gen-3 client's file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Properties {
    /// `connectivity.mqttEndPoint`.
    pub mqtt_endpoint: String,
    /// `connectivity.mqttPort`.
    pub mqtt_port: u16,
    /// The thing name (also in `ClientID.txt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
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
        };
        let s = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Properties>(&s).unwrap(), p);
        assert!(s.contains("\"mqtt_endpoint\""));
    }
}
