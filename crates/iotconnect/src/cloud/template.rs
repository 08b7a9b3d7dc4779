//! The device template file the emulated platform serves discovery and `sync` from: the company
//! (`cpId`, `env`), device templates (template guid `dtg`, `df`, edge flag, attributes in the
//! `att` shape with types, `dv` ranges, `tw` and `agt`, edge rules, settings) and devices (unique
//! id, template, tag, auth type, children, primary key for SAS). See
//! `configs/iotconnect/template.json`. Parsing and lookups only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::attributes::AttributeGroup;
use crate::protocol::rules::EdgeRule;
use crate::protocol::v1::sync::DeviceRef;

/// The built-in template (the example file), used by `iot-sim` and the demo.
pub const BUILTIN: &str = include_str!("../../../../configs/iotconnect/template.json");

/// One device template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceTemplate {
    /// Template guid (`dtg`).
    pub dtg: String,
    /// Data frequency, seconds.
    #[serde(default = "default_df")]
    pub df: u64,
    /// Edge device.
    #[serde(default)]
    pub edge: bool,
    /// Attributes (`att`).
    #[serde(default)]
    pub attributes: Vec<AttributeGroup>,
    /// Edge rules (`r`).
    #[serde(default)]
    pub rules: Vec<EdgeRule>,
    /// Settings / twin definitions (`set`), passed through.
    #[serde(default)]
    pub settings: Value,
}

fn default_df() -> u64 {
    60
}

fn default_auth() -> i64 {
    2
}

/// A child of a gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child {
    /// Unique id.
    #[serde(rename = "uniqueId")]
    pub unique_id: String,
    /// Tag.
    pub tag: String,
}

/// A device that connects (a gateway or a plain device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEntry {
    /// Unique id (also the certificate CN and MQTT client id).
    #[serde(rename = "uniqueId")]
    pub unique_id: String,
    /// Template name.
    pub template: String,
    /// Its own tag (empty for a plain device).
    #[serde(default)]
    pub tag: String,
    /// Auth type: 1 SAS from sync, 2 CA-signed certificate, 3 self-signed, 5 symmetric key.
    #[serde(default = "default_auth")]
    pub auth: i64,
    /// Base64 primary key (auth 1 and 5).
    #[serde(
        rename = "primaryKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub primary_key: Option<String>,
    /// Children.
    #[serde(default)]
    pub children: Vec<Child>,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateFile {
    /// Company id.
    #[serde(rename = "cpId")]
    pub cp_id: String,
    /// Environment.
    pub env: String,
    /// Templates by name.
    pub templates: BTreeMap<String, DeviceTemplate>,
    /// Devices.
    pub devices: Vec<DeviceEntry>,
}

/// Why a template file is not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// Unreadable.
    #[error("cannot read device template file `{path}`: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// Not the expected JSON.
    #[error("device template file `{path}` is not valid: {reason}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl TemplateFile {
    /// Parses and checks a template file's text.
    pub fn parse(path: &Path, text: &str) -> Result<TemplateFile, TemplateError> {
        let bad = |reason: String| TemplateError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let t: TemplateFile = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut seen = std::collections::BTreeSet::new();
        for d in &t.devices {
            let tpl = t.templates.get(&d.template).ok_or_else(|| {
                bad(format!(
                    "device `{}` names template `{}`, which is not defined",
                    d.unique_id, d.template
                ))
            })?;
            if matches!(d.auth, 1 | 5) && d.primary_key.is_none() {
                return Err(bad(format!(
                    "device `{}` uses auth type {} and needs `primaryKey`",
                    d.unique_id, d.auth
                )));
            }
            if tpl.dtg.is_empty() {
                return Err(bad(format!("template `{}` has an empty `dtg`", d.template)));
            }
            for id in std::iter::once(&d.unique_id).chain(d.children.iter().map(|c| &c.unique_id)) {
                if !seen.insert(id.clone()) {
                    return Err(bad(format!("unique id `{id}` appears twice")));
                }
            }
        }
        Ok(t)
    }

    /// Reads a template file.
    pub fn load(path: &Path) -> Result<TemplateFile, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        TemplateFile::parse(path, &text)
    }

    /// The built-in template.
    pub fn builtin() -> Result<TemplateFile, TemplateError> {
        TemplateFile::parse(Path::new("configs/iotconnect/template.json"), BUILTIN)
    }

    /// A connecting device by unique id.
    pub fn device(&self, id: &str) -> Option<&DeviceEntry> {
        self.devices.iter().find(|d| d.unique_id == id)
    }

    /// The connecting device `id` is, or is a child of.
    pub fn owner_of(&self, id: &str) -> Option<&DeviceEntry> {
        self.devices
            .iter()
            .find(|d| d.unique_id == id || d.children.iter().any(|c| c.unique_id == id))
    }

    /// A device's template.
    pub fn template_of(&self, d: &DeviceEntry) -> Option<&DeviceTemplate> {
        self.templates.get(&d.template)
    }

    /// `d` of a device's sync answer: itself first, then its children.
    pub fn device_refs(d: &DeviceEntry) -> Vec<DeviceRef> {
        std::iter::once(DeviceRef {
            id: d.unique_id.clone(),
            tg: d.tag.clone(),
        })
        .chain(d.children.iter().map(|c| DeviceRef {
            id: c.unique_id.clone(),
            tg: c.tag.clone(),
        }))
        .collect()
    }
}
