//! Asset Modeler v4 (the 2024 sample's model synchronisation): the download request on
//! `o/amo_v4/m` (`{"id"}`), its answer on `i/amo_v4/m` (`data.content`: a URL to GET, or —
//! accepted too — the model itself), the model with a `referenceId` on every element, the one-step
//! create-or-update-and-instantiate request on `o/amo_v4/mi`, and its progress on `i/amo_v4/mip`
//! (the v3 job envelope: `InProgress`, then `Success` or `Failed` with `errors`).
//!
//! [`plan_sync`] is the sample's `AssetModelHelper` done as a pure function: it matches the
//! local model against the downloaded cloud model by natural keys, reuses the cloud's
//! `referenceId`s for what exists, and returns only what is missing. Fields this crate does not
//! model (`instantiable`, `description`, ...) are kept as written (`extra`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::envelope::{Reply, Request};

/// `o/amo_v4/m`: `{"id": "<uuid>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadRequest {
    /// Request id.
    pub id: String,
}

/// `i/amo_v4/m`.
pub type DownloadReply = Reply<DownloadData>;
/// `o/amo_v4/mi`.
pub type SyncRequest = Request<V4Model>;

/// The `data` of the download answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownloadData {
    /// Where the cloud model is: a URL (the sample GETs it without credentials), or the model
    /// itself.
    pub content: Content,
}

/// `data.content`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// A URL to GET (what the 2024 sample reads).
    Url(String),
    /// The model inline (accepted: a careful client takes both).
    Inline(Box<V4Model>),
}

/// A v4 model: the local file, the payload of `o/amo_v4/mi`, and the downloaded cloud model
/// (which adds `id`, `namespace` and the platform's `assetId`s).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V4Model {
    /// Types.
    #[serde(default)]
    pub type_model: V4TypeModel,
    /// Assets.
    #[serde(default)]
    pub instance_model: V4InstanceModel,
    /// Data point mappings.
    #[serde(default)]
    pub mapping_model: V4MappingModel,
    /// Anything else (the cloud model's `id`, `namespace`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Aspect types and asset types.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V4TypeModel {
    /// Aspect types.
    #[serde(default)]
    pub aspect_types: Vec<V4AspectType>,
    /// Asset types.
    #[serde(default)]
    pub asset_types: Vec<V4AssetType>,
}

/// An aspect type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V4AspectType {
    /// Reference id (reused from the cloud, or new).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    /// `<tenant>.<name>`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Variables.
    #[serde(default)]
    pub variables: Vec<V4Variable>,
    /// `category`, `scope`, `description`, ...
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A variable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V4Variable {
    /// Reference id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    /// Name.
    pub name: String,
    /// Data type.
    pub data_type: String,
    /// Unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// `searchable`, `length`, `qualityCode`, ...
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An asset type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V4AssetType {
    /// Reference id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    /// `<tenant>.<name>`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Asset-level variables.
    #[serde(default)]
    pub variables: Vec<V4Variable>,
    /// Aspects.
    #[serde(default)]
    pub aspects: Vec<V4TypeAspect>,
    /// `parentTypeId`, `instantiable`, `description`, ...
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An aspect of an asset type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V4TypeAspect {
    /// Reference id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    /// Aspect name.
    pub name: String,
    /// Aspect type id.
    pub aspect_type_id: String,
    /// Anything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Assets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V4InstanceModel {
    /// Assets.
    #[serde(default)]
    pub assets: Vec<V4Asset>,
}

/// An asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V4Asset {
    /// Reference id: in a local file a label that mappings and children use; replaced by the
    /// cloud's when the asset exists there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    /// Asset type id.
    pub type_id: String,
    /// Name.
    pub name: String,
    /// The parent's `referenceId` (or an existing asset id); none: under the agent's asset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_reference_id: Option<String>,
    /// The platform's asset id (cloud model only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_id: Option<String>,
    /// `description`, ...
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Mappings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V4MappingModel {
    /// Mappings.
    #[serde(default)]
    pub mappings: Vec<V4Mapping>,
}

/// A data point mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V4Mapping {
    /// Reference id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    /// Data point id.
    pub data_point_id: String,
    /// The asset's `referenceId` (the cloud model may give `assetId` instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_reference_id: Option<String>,
    /// The platform's asset id (cloud model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_id: Option<String>,
    /// Aspect name.
    pub aspect_name: String,
    /// Variable name.
    pub variable_name: String,
    /// Anything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Decodes a v4 model request or file, naming the field that is wrong
/// (`data.typeModel.aspectTypes[0].variables[1].dataType: missing field ...`).
pub fn decode_named<T: serde::de::DeserializeOwned>(
    what: &'static str,
    payload: &[u8],
) -> Result<T, super::envelope::DecodeError> {
    use super::envelope::{DecodeError, MAX_PAYLOAD};
    if payload.len() > MAX_PAYLOAD {
        return Err(DecodeError::TooLarge {
            what,
            size: payload.len(),
        });
    }
    let de = &mut serde_json::Deserializer::from_slice(payload);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        DecodeError::Invalid {
            what,
            reason: if path == "." || path.is_empty() {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            },
        }
    })
}

/// One problem of a v4 model, naming the element by its path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ModelIssue {
    /// E.g. `typeModel.aspectTypes[0].variables[1].referenceId`.
    pub path: String,
    /// What is wrong and what is expected.
    pub problem: String,
}

fn issue(path: String, problem: impl Into<String>) -> ModelIssue {
    ModelIssue {
        path,
        problem: problem.into(),
    }
}

/// Checks a model's references: unique keys, types that exist, mappings that name an asset,
/// aspect and variable. `need_reference_ids`: every element must carry a non-empty
/// `referenceId` (the `o/amo_v4/mi` rule). `known`: what the cloud already has, so a partial
/// update may refer to it.
pub fn check_v4(model: &V4Model, need_reference_ids: bool, known: &V4Model) -> Vec<ModelIssue> {
    let mut out = Vec::new();
    let mut rid = |path: String, r: &Option<String>| {
        if need_reference_ids && r.as_deref().is_none_or(|s| s.trim().is_empty()) {
            out.push(issue(
                format!("{path}.referenceId"),
                "is missing; every element of an o/amo_v4/mi request carries a referenceId",
            ));
        }
    };
    let t = &model.type_model;
    for (i, a) in t.aspect_types.iter().enumerate() {
        rid(format!("typeModel.aspectTypes[{i}]"), &a.reference_id);
        for (j, v) in a.variables.iter().enumerate() {
            rid(
                format!("typeModel.aspectTypes[{i}].variables[{j}]"),
                &v.reference_id,
            );
        }
    }
    for (i, a) in t.asset_types.iter().enumerate() {
        rid(format!("typeModel.assetTypes[{i}]"), &a.reference_id);
        for (j, v) in a.variables.iter().enumerate() {
            rid(
                format!("typeModel.assetTypes[{i}].variables[{j}]"),
                &v.reference_id,
            );
        }
        for (j, x) in a.aspects.iter().enumerate() {
            rid(
                format!("typeModel.assetTypes[{i}].aspects[{j}]"),
                &x.reference_id,
            );
        }
    }
    for (i, a) in model.instance_model.assets.iter().enumerate() {
        rid(format!("instanceModel.assets[{i}]"), &a.reference_id);
    }
    for (i, m) in model.mapping_model.mappings.iter().enumerate() {
        rid(format!("mappingModel.mappings[{i}]"), &m.reference_id);
    }
    // References resolve against this model and what the cloud has.
    let aspect_types: BTreeMap<&str, &V4AspectType> = known
        .type_model
        .aspect_types
        .iter()
        .chain(&t.aspect_types)
        .map(|a| (a.id.as_str(), a))
        .collect();
    let asset_types: BTreeMap<&str, &V4AssetType> = known
        .type_model
        .asset_types
        .iter()
        .chain(&t.asset_types)
        .map(|a| (a.id.as_str(), a))
        .collect();
    for (i, a) in t.asset_types.iter().enumerate() {
        for (j, x) in a.aspects.iter().enumerate() {
            if !aspect_types.contains_key(x.aspect_type_id.as_str()) {
                out.push(issue(
                    format!("typeModel.assetTypes[{i}].aspects[{j}].aspectTypeId"),
                    format!(
                        "`{}` is not an aspect type of this model or of the cloud's",
                        x.aspect_type_id
                    ),
                ));
            }
        }
    }
    let assets: BTreeMap<&str, &V4Asset> = known
        .instance_model
        .assets
        .iter()
        .chain(&model.instance_model.assets)
        .filter_map(|a| a.reference_id.as_deref().map(|r| (r, a)))
        .collect();
    for (i, a) in model.instance_model.assets.iter().enumerate() {
        if !asset_types.contains_key(a.type_id.as_str()) && !a.type_id.starts_with("core.") {
            out.push(issue(
                format!("instanceModel.assets[{i}].typeId"),
                format!(
                    "`{}` is not an asset type of this model or of the cloud's",
                    a.type_id
                ),
            ));
        }
    }
    let by_asset_id: BTreeMap<&str, &V4Asset> = known
        .instance_model
        .assets
        .iter()
        .filter_map(|a| a.asset_id.as_deref().map(|r| (r, a)))
        .collect();
    for (i, m) in model.mapping_model.mappings.iter().enumerate() {
        let p = format!("mappingModel.mappings[{i}]");
        let asset = match (&m.asset_reference_id, &m.asset_id) {
            (Some(r), _) => assets.get(r.as_str()).copied(),
            (None, Some(id)) => by_asset_id.get(id.as_str()).copied(),
            (None, None) => {
                out.push(issue(
                    format!("{p}.assetReferenceId"),
                    "is missing; a mapping names the asset by its referenceId",
                ));
                continue;
            }
        };
        let Some(asset) = asset else {
            out.push(issue(
                format!("{p}.assetReferenceId"),
                format!(
                    "`{}` is not an asset of this model or of the cloud's",
                    m.asset_reference_id
                        .as_deref()
                        .or(m.asset_id.as_deref())
                        .unwrap_or_default()
                ),
            ));
            continue;
        };
        let aspect = asset_types
            .get(asset.type_id.as_str())
            .and_then(|t| t.aspects.iter().find(|a| a.name == m.aspect_name));
        let Some(aspect) = aspect else {
            out.push(issue(
                format!("{p}.aspectName"),
                format!(
                    "asset type `{}` has no aspect `{}`",
                    asset.type_id, m.aspect_name
                ),
            ));
            continue;
        };
        let has_var = aspect_types
            .get(aspect.aspect_type_id.as_str())
            .is_some_and(|at| at.variables.iter().any(|v| v.name == m.variable_name));
        if !has_var {
            out.push(issue(
                format!("{p}.variableName"),
                format!(
                    "aspect type `{}` has no variable `{}`",
                    aspect.aspect_type_id, m.variable_name
                ),
            ));
        }
    }
    out
}

/// What [`plan_sync`] decided.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncPlan {
    /// The `data` of `o/amo_v4/mi`: only what is missing in the cloud, with the cloud's
    /// `referenceId`s where an element exists. `None`: the cloud has everything.
    pub payload: Option<V4Model>,
    /// How many elements took their `referenceId` from the cloud.
    pub reused: usize,
    /// How many elements got a new `referenceId` (or kept the local file's).
    pub created: usize,
    /// The local model with every `referenceId` resolved (what the cloud has after success).
    pub resolved: V4Model,
}

fn same_variable(a: &V4Variable, b: &V4Variable) -> bool {
    a.name == b.name && a.data_type.eq_ignore_ascii_case(&b.data_type) && a.unit == b.unit
}

struct Ids<'a> {
    new_id: &'a mut dyn FnMut() -> String,
    reused: usize,
    created: usize,
}

impl Ids<'_> {
    /// The cloud's id when there is one, else the local one, else a new one.
    // Every caller stores the result in an `Option` field; wrapping here keeps them short.
    #[allow(clippy::unnecessary_wraps)]
    fn pick(&mut self, cloud: Option<&str>, local: Option<&str>) -> Option<String> {
        if let Some(c) = cloud {
            self.reused += 1;
            return Some(c.to_owned());
        }
        self.created += 1;
        let id = local
            .filter(|l| !l.trim().is_empty())
            .map_or_else(|| (self.new_id)(), str::to_owned);
        Some(id)
    }
}

fn variables(
    ids: &mut Ids<'_>,
    local: &[V4Variable],
    cloud: Option<&[V4Variable]>,
) -> (Vec<V4Variable>, bool) {
    let mut missing = false;
    let vars = local
        .iter()
        .map(|v| {
            let c = cloud.and_then(|c| c.iter().find(|x| x.name == v.name));
            missing |= c.is_none_or(|c| !same_variable(c, v));
            V4Variable {
                reference_id: ids.pick(
                    c.and_then(|c| c.reference_id.as_deref()),
                    v.reference_id.as_deref(),
                ),
                ..v.clone()
            }
        })
        .collect();
    (vars, missing)
}

/// Matches `local` against `cloud` and returns what to send. Keys: aspect and asset types by
/// `id`, variables and type aspects by `name` within their type, assets by `name`, `typeId`
/// and parent, mappings by data point + asset + aspect + variable. A type that exists but lacks
/// a variable or aspect (or has one with another data type or unit) is sent whole with its
/// `referenceId`s, since whether a partial type update keeps the rest is not documented;
/// assets and mappings are sent only when missing. `new_id` makes new `referenceId`s (the
/// sample: uuid4 hex).
pub fn plan_sync(local: &V4Model, cloud: &V4Model, new_id: &mut dyn FnMut() -> String) -> SyncPlan {
    let mut ids = Ids {
        new_id,
        reused: 0,
        created: 0,
    };
    let mut send = V4Model::default();
    let mut resolved = local.clone();
    let ct = &cloud.type_model;
    resolved.type_model.aspect_types.clear();
    for a in &local.type_model.aspect_types {
        let c = ct.aspect_types.iter().find(|x| x.id == a.id);
        let (vars, missing) = variables(&mut ids, &a.variables, c.map(|c| c.variables.as_slice()));
        let at = V4AspectType {
            reference_id: ids.pick(
                c.and_then(|c| c.reference_id.as_deref()),
                a.reference_id.as_deref(),
            ),
            variables: vars,
            ..a.clone()
        };
        if c.is_none() || missing {
            send.type_model.aspect_types.push(at.clone());
        }
        resolved.type_model.aspect_types.push(at);
    }
    resolved.type_model.asset_types.clear();
    for a in &local.type_model.asset_types {
        let c = ct.asset_types.iter().find(|x| x.id == a.id);
        let (vars, mut missing) =
            variables(&mut ids, &a.variables, c.map(|c| c.variables.as_slice()));
        let aspects = a
            .aspects
            .iter()
            .map(|x| {
                let cx = c.and_then(|c| c.aspects.iter().find(|y| y.name == x.name));
                missing |= cx.is_none_or(|cx| cx.aspect_type_id != x.aspect_type_id);
                V4TypeAspect {
                    reference_id: ids.pick(
                        cx.and_then(|c| c.reference_id.as_deref()),
                        x.reference_id.as_deref(),
                    ),
                    ..x.clone()
                }
            })
            .collect();
        let at = V4AssetType {
            reference_id: ids.pick(
                c.and_then(|c| c.reference_id.as_deref()),
                a.reference_id.as_deref(),
            ),
            variables: vars,
            aspects,
            ..a.clone()
        };
        if c.is_none() || missing {
            send.type_model.asset_types.push(at.clone());
        }
        resolved.type_model.asset_types.push(at);
    }
    // Assets: parents first is not required of the file, so resolve labels in file order and
    // look parents up by their resolved label.
    let mut label: BTreeMap<String, String> = BTreeMap::new();
    resolved.instance_model.assets.clear();
    let cloud_parent = |a: &V4Asset| a.parent_reference_id.clone();
    for a in &local.instance_model.assets {
        let parent = a
            .parent_reference_id
            .as_ref()
            .map(|p| label.get(p).cloned().unwrap_or_else(|| p.clone()));
        let c = cloud
            .instance_model
            .assets
            .iter()
            .find(|x| x.name == a.name && x.type_id == a.type_id && cloud_parent(x) == parent);
        let r = ids.pick(
            c.and_then(|c| c.reference_id.as_deref()),
            a.reference_id.as_deref(),
        );
        if let (Some(l), Some(r)) = (&a.reference_id, &r) {
            label.insert(l.clone(), r.clone());
        }
        let asset = V4Asset {
            reference_id: r,
            parent_reference_id: parent,
            asset_id: c.and_then(|c| c.asset_id.clone()),
            ..a.clone()
        };
        if c.is_none() {
            send.instance_model.assets.push(V4Asset {
                asset_id: None,
                ..asset.clone()
            });
        }
        resolved.instance_model.assets.push(asset);
    }
    let cloud_asset_ref = |m: &V4Mapping| -> Option<String> {
        m.asset_reference_id.clone().or_else(|| {
            let id = m.asset_id.as_deref()?;
            cloud
                .instance_model
                .assets
                .iter()
                .find(|a| a.asset_id.as_deref() == Some(id))
                .and_then(|a| a.reference_id.clone())
        })
    };
    resolved.mapping_model.mappings.clear();
    for m in &local.mapping_model.mappings {
        let asset = m
            .asset_reference_id
            .as_ref()
            .map(|r| label.get(r).cloned().unwrap_or_else(|| r.clone()));
        let c = cloud.mapping_model.mappings.iter().find(|x| {
            x.data_point_id == m.data_point_id
                && x.aspect_name == m.aspect_name
                && x.variable_name == m.variable_name
                && cloud_asset_ref(x) == asset
        });
        let mapping = V4Mapping {
            reference_id: ids.pick(
                c.and_then(|c| c.reference_id.as_deref()),
                m.reference_id.as_deref(),
            ),
            asset_reference_id: asset,
            asset_id: None,
            ..m.clone()
        };
        if c.is_none() {
            send.mapping_model.mappings.push(mapping.clone());
        }
        resolved.mapping_model.mappings.push(mapping);
    }
    let empty = send.type_model.aspect_types.is_empty()
        && send.type_model.asset_types.is_empty()
        && send.instance_model.assets.is_empty()
        && send.mapping_model.mappings.is_empty();
    SyncPlan {
        payload: (!empty).then_some(send),
        reused: ids.reused,
        created: ids.created,
        resolved,
    }
}

/// The referenceIds of every element of `m` (for checks and tests).
pub fn reference_ids(m: &V4Model) -> BTreeSet<String> {
    let t = &m.type_model;
    let mut s = BTreeSet::new();
    let mut add = |r: &Option<String>| {
        if let Some(r) = r {
            s.insert(r.clone());
        }
    };
    for a in &t.aspect_types {
        add(&a.reference_id);
        a.variables.iter().for_each(|v| add(&v.reference_id));
    }
    for a in &t.asset_types {
        add(&a.reference_id);
        a.variables.iter().for_each(|v| add(&v.reference_id));
        a.aspects.iter().for_each(|v| add(&v.reference_id));
    }
    m.instance_model
        .assets
        .iter()
        .for_each(|a| add(&a.reference_id));
    m.mapping_model
        .mappings
        .iter()
        .for_each(|a| add(&a.reference_id));
    s
}

/// Counts the elements of `m` (types, their variables and aspects, assets, mappings).
pub fn element_count(m: &V4Model) -> usize {
    let t = &m.type_model;
    t.aspect_types
        .iter()
        .map(|a| 1 + a.variables.len())
        .sum::<usize>()
        + t.asset_types
            .iter()
            .map(|a| 1 + a.variables.len() + a.aspects.len())
            .sum::<usize>()
        + m.instance_model.assets.len()
        + m.mapping_model.mappings.len()
}

/// sha256 of `bytes` in lower-case hex (the sample's `model-synchronization-sha` of
/// `local_asset_model.json`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
#[path = "v4_tests.rs"]
mod tests;
