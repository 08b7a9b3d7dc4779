//! The device template file the emulated platform serves discovery and `sync` from: the company
//! (`cpId`, `env`), device templates (template guid `dtg`, `df`, edge flag, attributes in the
//! `att` shape with types, `dv` ranges, `tw` and `agt`, edge rules, settings) and devices (unique
//! id, template, tag, auth type, children, primary key for SAS), and devices created in bulk
//! ([`Bulk`]: a unique-id pattern with `%i`, as IoTConnect's device import creates many, for
//! `iot-sim fleet --profile iotconnect`). See `configs/iotconnect/template.json`. Parsing and
//! lookups only.

use std::borrow::Cow;
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

/// Devices created in bulk: every unique id `unique_id` with `%i` replaced by a number below
/// `count` (written without leading zeros) is a plain device of `template`, known before its
/// first sync. Auth type 5 devices' primary keys are derived from `groupKey` as Azure DPS
/// derives a group enrolment's ([`crate::protocol::sas::derive_device_key`]), so a fleet holds
/// one secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bulk {
    /// The unique id pattern, with one `%i`.
    #[serde(rename = "uniqueId")]
    pub unique_id: String,
    /// How many: numbers `0..count`.
    pub count: u64,
    /// Template name.
    pub template: String,
    /// Auth type: 2 CA-signed certificate (CN = unique id) or 5 symmetric key.
    #[serde(default = "default_auth")]
    pub auth: i64,
    /// Base64 group key the devices' primary keys derive from (auth 5).
    #[serde(rename = "groupKey", default, skip_serializing_if = "Option::is_none")]
    pub group_key: Option<String>,
}

impl Bulk {
    /// Device `id`, when it is one of this range.
    pub fn entry(&self, id: &str) -> Option<DeviceEntry> {
        let (prefix, suffix) = self.unique_id.split_once("%i")?;
        let n = id.strip_prefix(prefix)?.strip_suffix(suffix)?;
        let canonical = !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && (n == "0" || !n.starts_with('0'));
        if !canonical || n.parse::<u64>().ok()? >= self.count {
            return None;
        }
        let primary_key = match (&self.group_key, self.auth) {
            (Some(k), 5) => Some(crate::protocol::sas::derive_device_key(k, id).ok()?),
            _ => None,
        };
        Some(DeviceEntry {
            unique_id: id.to_owned(),
            template: self.template.clone(),
            tag: String::new(),
            auth: self.auth,
            primary_key,
            children: Vec::new(),
        })
    }
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
    /// Devices created in bulk.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bulk: Vec<Bulk>,
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
        for b in &t.bulk {
            if !t.templates.contains_key(&b.template) {
                return Err(bad(format!(
                    "bulk devices `{}` name template `{}`, which is not defined",
                    b.unique_id, b.template
                )));
            }
            if b.unique_id.matches("%i").count() != 1 {
                return Err(bad(format!(
                    "bulk devices `{}`: `uniqueId` needs exactly one %i",
                    b.unique_id
                )));
            }
            match (b.auth, &b.group_key) {
                (2, _) => {}
                (5, Some(k)) if crate::protocol::sas::derive_device_key(k, "").is_ok() => {}
                (5, _) => {
                    return Err(bad(format!(
                        "bulk devices `{}` use auth type 5 and need a base64 `groupKey`",
                        b.unique_id
                    )));
                }
                (n, _) => {
                    return Err(bad(format!(
                        "bulk devices `{}`: auth type {n}; bulk devices use 2 (CA-signed certificate) or 5 (symmetric key)",
                        b.unique_id
                    )));
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

    /// A connecting device by unique id: one of `devices`, or of a [`Bulk`] range.
    pub fn device(&self, id: &str) -> Option<Cow<'_, DeviceEntry>> {
        self.devices
            .iter()
            .find(|d| d.unique_id == id)
            .map(Cow::Borrowed)
            .or_else(|| self.bulk.iter().find_map(|b| b.entry(id)).map(Cow::Owned))
    }

    /// The connecting device `id` is, or is a child of.
    pub fn owner_of(&self, id: &str) -> Option<Cow<'_, DeviceEntry>> {
        self.device(id).or_else(|| {
            self.devices
                .iter()
                .find(|d| d.children.iter().any(|c| c.unique_id == id))
                .map(Cow::Borrowed)
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_ranges_know_their_numbers_and_nothing_else() {
        let t = TemplateFile::builtin().unwrap();
        let d = t.device("iotc-fleet-42").unwrap();
        assert_eq!((d.auth, d.template.as_str()), (2, "basic"));
        for not in [
            "iotc-fleet-042",
            "iotc-fleet-",
            "iotc-fleet-1000000",
            "iotc-fleet-4x",
        ] {
            assert!(t.device(not).is_none(), "{not}");
        }
        // A key device's primary key is the one derived from the group key (what a fleet
        // derives on its side), and differs per device.
        let k = t.device("iotc-fleet-key-3").unwrap();
        assert_eq!(k.auth, 5);
        let group = t.bulk[1].group_key.clone().unwrap();
        assert_eq!(
            k.primary_key.as_deref(),
            Some(
                crate::protocol::sas::derive_device_key(&group, "iotc-fleet-key-3")
                    .unwrap()
                    .as_str()
            )
        );
        assert_ne!(
            k.primary_key,
            t.device("iotc-fleet-key-4").unwrap().primary_key
        );
        // The listed devices come first and are borrowed as they are.
        assert!(matches!(t.device("iotc-edge-01"), Some(Cow::Borrowed(_))));
    }

    #[test]
    fn a_bulk_range_without_its_key_or_with_two_patterns_is_refused() {
        let base = r#"{"cpId": "C", "env": "E", "templates": {"t": {"dtg": "g"}}, "devices": [],"#;
        for (bulk, says) in [
            (
                r#""bulk": [{"uniqueId": "k-%i", "count": 5, "template": "t", "auth": 5}]}"#,
                "groupKey",
            ),
            (
                r#""bulk": [{"uniqueId": "k-%i-%i", "count": 5, "template": "t"}]}"#,
                "one %i",
            ),
            (
                r#""bulk": [{"uniqueId": "k-%i", "count": 5, "template": "nope"}]}"#,
                "nope",
            ),
        ] {
            let e = TemplateFile::parse(Path::new("t.json"), &format!("{base}{bulk}")).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        }
    }
}
