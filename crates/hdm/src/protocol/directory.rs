//! The Zaikio directory steps of gen-3 onboarding (the reference client's `onboarding/zaikio_manager.py`), with the Bearer token
//! of the device flow: `GET /api/v1/sites` (the first site is used), `POST /api/v1/machines?
//! machine[name]=…&machine[manufacturer]=…&machine[serial_number]=…&machine[kind]=digital_press`
//! (201, the new machine's `id`) and `POST /api/v1/machines/{id}/machine_ownership?site_id=…`
//! (201). Each step is done once: [`Progress`] (`directory.json`) remembers what is done, so a
//! failed or repeated onboarding does not register a second machine. Both directions; pure.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::protocol::json::{FieldError, Fields, kind};

/// Path of the site list under `DIRECTORY_HOST`.
pub const SITES_PATH: &str = "api/v1/sites";
/// Path of machine registration under `DIRECTORY_HOST`.
pub const MACHINES_PATH: &str = "api/v1/machines";
/// The machine kind the reference client registers.
pub const DEFAULT_KIND: &str = "digital_press";

/// The path of a machine's ownership call.
pub fn ownership_path(machine_id: &str) -> String {
    format!("{MACHINES_PATH}/{machine_id}/machine_ownership")
}

/// Whether `id` can be a path segment and a query value: 1 to 128 of `A-Za-z0-9-_.`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A site of the organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Its id (`siteId` of v4 provisioning).
    pub id: String,
    /// Its name, if given.
    pub name: Option<String>,
}

const WHAT_SITES: &str = "Zaikio site list";
const ID: &str = "an id of letters, digits, `-`, `_`, `.`";

/// Decodes the site list (a JSON array of objects with `id`).
pub fn decode_sites(body: &[u8]) -> Result<Vec<Site>, FieldError> {
    let err = |field: String, expected, found: String| FieldError {
        what: WHAT_SITES,
        field,
        expected,
        found,
    };
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        err(
            "(document)".into(),
            "a JSON array",
            format!("invalid JSON ({e})"),
        )
    })?;
    let Value::Array(items) = v else {
        return Err(err("(document)".into(), "a JSON array", kind(&v).into()));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(o) = item else {
                return Err(err(format!("[{i}]"), "an object", kind(item).into()));
            };
            let path = format!("[{i}]");
            let f = Fields::new(WHAT_SITES, "", o);
            let id = f.str("id", ID).map_err(|e| FieldError {
                field: format!("{path}.{}", e.field),
                ..e
            })?;
            if !valid_id(id) {
                return Err(err(format!("{path}.id"), ID, format!("`{id}`")));
            }
            Ok(Site {
                id: id.to_owned(),
                name: o.get("name").and_then(Value::as_str).map(str::to_owned),
            })
        })
        .collect()
}

/// Encodes a site list (the cloud side).
pub fn encode_sites(sites: &[Site]) -> Vec<u8> {
    Value::Array(
        sites
            .iter()
            .map(|s| json!({"id": s.id, "name": s.name}))
            .collect(),
    )
    .to_string()
    .into_bytes()
}

/// The machine to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineSpec {
    /// `machine[name]`.
    pub name: String,
    /// `machine[manufacturer]`.
    pub manufacturer: String,
    /// `machine[serial_number]`.
    pub serial_number: String,
    /// `machine[kind]`.
    pub kind: String,
}

impl MachineSpec {
    /// The query pairs of the registration call.
    pub fn query(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("machine[name]", &self.name),
            ("machine[manufacturer]", &self.manufacturer),
            ("machine[serial_number]", &self.serial_number),
            ("machine[kind]", &self.kind),
        ]
    }

    /// Reads the query pairs (the cloud side); `Err` names the missing parameter.
    pub fn from_query(pairs: &[(String, String)]) -> Result<Self, String> {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, v)| key == k && !v.is_empty())
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("parameter `{k}` is missing or empty"))
        };
        Ok(MachineSpec {
            name: get("machine[name]")?,
            manufacturer: get("machine[manufacturer]")?,
            serial_number: get("machine[serial_number]")?,
            kind: get("machine[kind]")?,
        })
    }
}

/// Decodes the registration answer: the machine's `id`.
pub fn decode_machine(body: &[u8]) -> Result<String, FieldError> {
    const WHAT: &str = "Zaikio machine registration response";
    let root = Fields::parse(WHAT, body)?;
    let f = Fields::new(WHAT, "", &root);
    let id = f.str("id", ID)?;
    if valid_id(id) {
        Ok(id.to_owned())
    } else {
        Err(f.error("id", ID, format!("`{id}`")))
    }
}

/// Encodes the registration answer (the cloud side).
pub fn encode_machine(id: &str, spec: &MachineSpec) -> Vec<u8> {
    json!({
        "id": id,
        "name": spec.name,
        "manufacturer": spec.manufacturer,
        "serial_number": spec.serial_number,
        "kind": spec.kind,
    })
    .to_string()
    .into_bytes()
}

/// `directory.json`: the steps done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The site chosen (the first of the organisation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<String>,
    /// The machine registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// The machine's serial number (made once, so a retry registers the same machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Whether the site owns the machine.
    #[serde(default)]
    pub owned: bool,
}

impl Progress {
    /// Whether every step is done.
    pub fn complete(&self) -> bool {
        self.site_id.is_some() && self.machine_id.is_some() && self.owned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_decode_and_bad_ids_are_named() {
        let sites = vec![
            Site {
                id: "3f1c-aa".into(),
                name: Some("Wiesloch".into()),
            },
            Site {
                id: "b2".into(),
                name: None,
            },
        ];
        assert_eq!(decode_sites(&encode_sites(&sites)).unwrap(), sites);
        assert_eq!(decode_sites(b"[]").unwrap(), vec![]);
        let e = decode_sites(br#"[{"id":"ok"},{"id":"a/b"}]"#).unwrap_err();
        assert_eq!(e.field, "[1].id");
        let e = decode_sites(br#"[{"name":"x"}]"#).unwrap_err();
        assert_eq!(e.field, "[0].id");
        assert!(decode_sites(b"{}").is_err());
    }

    #[test]
    fn machine_query_round_trips() {
        let m = MachineSpec {
            name: "Press 1".into(),
            manufacturer: "Heidelberg".into(),
            serial_number: "SN-1".into(),
            kind: DEFAULT_KIND.into(),
        };
        let pairs: Vec<(String, String)> = m
            .query()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(MachineSpec::from_query(&pairs).unwrap(), m);
        assert!(
            MachineSpec::from_query(&pairs[1..])
                .unwrap_err()
                .contains("machine[name]")
        );
        assert_eq!(decode_machine(&encode_machine("m-1", &m)).unwrap(), "m-1");
        assert_eq!(
            ownership_path("m-1"),
            "api/v1/machines/m-1/machine_ownership"
        );
    }

    #[test]
    fn progress_is_complete_after_the_three_steps() {
        let mut p = Progress::default();
        assert!(!p.complete());
        p.site_id = Some("s".into());
        p.machine_id = Some("m".into());
        assert!(!p.complete());
        p.owned = true;
        assert!(p.complete());
        let back: Progress = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    proptest::proptest! {
        #[test]
        fn hostile_bodies_do_not_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = decode_sites(&bytes);
            let _ = decode_machine(&bytes);
        }
    }
}
