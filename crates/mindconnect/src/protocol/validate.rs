//! What the Asset Modeler checks before it accepts a model or an instantiation: type ids carry
//! the tenant prefix, every reference points at something declared (aspect types, asset types,
//! parent assets, mapped aspects and variables), names are unique, `${param}`s get values, and
//! timeseries values fit their variable's data type. Pure: the platform side answers with these
//! issues, and `mc-model show` prints them before anything is sent.

use std::collections::{BTreeMap, BTreeSet};

use super::envelope::Scalar;
use super::model::{AssetModel, Instantiation, JobError};

/// Data types a variable may have.
pub const DATA_TYPES: [&str; 7] = [
    "DOUBLE",
    "INT",
    "LONG",
    "STRING",
    "BOOLEAN",
    "TIMESTAMP",
    "BIG_STRING",
];

/// One problem, located by its JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Where, e.g. `data.mappingModel.mappings[1].variableName`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl From<Issue> for JobError {
    fn from(i: Issue) -> Self {
        JobError {
            code: Some("mdsp.core.assetmodeler.validation".into()),
            message: i.to_string(),
        }
    }
}

fn issue(path: String, message: String) -> Issue {
    Issue { path, message }
}

/// Checks a model published by an agent of `tenant`. `known_types` are type ids the tenant
/// already has (from earlier models); `core.` types always exist.
pub fn check_model(m: &AssetModel, tenant: &str, known_types: &BTreeSet<String>) -> Vec<Issue> {
    let mut out = Vec::new();
    let prefix = format!("{tenant}.");
    if m.external_id.trim().is_empty() {
        out.push(issue("data.externalId".into(), "must not be empty".into()));
    }
    let tm = &m.type_model;
    let mut aspect_vars: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for (i, a) in tm.aspect_types.iter().enumerate() {
        let p = format!("data.typeModel.aspectTypes[{i}]");
        if !a.id.starts_with(&prefix) {
            out.push(issue(
                format!("{p}.id"),
                format!("`{}` must start with the tenant prefix `{prefix}`", a.id),
            ));
        }
        let mut vars = BTreeMap::new();
        for (j, v) in a.variables.iter().enumerate() {
            if !DATA_TYPES.contains(&v.data_type.as_str()) {
                out.push(issue(
                    format!("{p}.variables[{j}].dataType"),
                    format!("`{}` is not one of {}", v.data_type, DATA_TYPES.join(", ")),
                ));
            }
            if vars.insert(v.name.as_str(), v.data_type.as_str()).is_some() {
                out.push(issue(
                    format!("{p}.variables[{j}].name"),
                    format!("variable `{}` is declared twice", v.name),
                ));
            }
        }
        if aspect_vars.insert(a.id.as_str(), vars).is_some() {
            out.push(issue(
                format!("{p}.id"),
                format!("aspect type `{}` is declared twice", a.id),
            ));
        }
    }
    let declared = |id: &str| id.starts_with("core.") || known_types.contains(id);
    let mut asset_aspects: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for (i, t) in tm.asset_types.iter().enumerate() {
        let p = format!("data.typeModel.assetTypes[{i}]");
        if !t.id.starts_with(&prefix) {
            out.push(issue(
                format!("{p}.id"),
                format!("`{}` must start with the tenant prefix `{prefix}`", t.id),
            ));
        }
        if let Some(parent) = &t.parent_type_id
            && !declared(parent)
            && !tm.asset_types.iter().any(|o| &o.id == parent)
        {
            out.push(issue(
                format!("{p}.parentTypeId"),
                format!("asset type `{parent}` is not declared"),
            ));
        }
        let mut aspects = BTreeMap::new();
        for (j, a) in t.aspects.iter().enumerate() {
            if !aspect_vars.contains_key(a.aspect_type_id.as_str()) && !declared(&a.aspect_type_id)
            {
                out.push(issue(
                    format!("{p}.aspects[{j}].aspectTypeId"),
                    format!(
                        "aspect type `{}` is not declared in typeModel.aspectTypes",
                        a.aspect_type_id
                    ),
                ));
            }
            if aspects
                .insert(a.name.as_str(), a.aspect_type_id.as_str())
                .is_some()
            {
                out.push(issue(
                    format!("{p}.aspects[{j}].name"),
                    format!("aspect `{}` is declared twice", a.name),
                ));
            }
        }
        if asset_aspects.insert(t.id.as_str(), aspects).is_some() {
            out.push(issue(
                format!("{p}.id"),
                format!("asset type `{}` is declared twice", t.id),
            ));
        }
    }
    let mut assets: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, a) in m.instance_model.assets.iter().enumerate() {
        let p = format!("data.instanceModel.assets[{i}]");
        if !asset_aspects.contains_key(a.type_id.as_str()) && !declared(&a.type_id) {
            out.push(issue(
                format!("{p}.typeId"),
                format!(
                    "asset type `{}` is not declared in typeModel.assetTypes",
                    a.type_id
                ),
            ));
        }
        if assets
            .insert(a.reference_id.as_str(), a.type_id.as_str())
            .is_some()
        {
            out.push(issue(
                format!("{p}.referenceId"),
                format!("`{}` is used twice", a.reference_id),
            ));
        }
    }
    for (i, a) in m.instance_model.assets.iter().enumerate() {
        if let Some(parent) = &a.parent_reference_id
            && !assets.contains_key(parent.as_str())
        {
            out.push(issue(
                format!("data.instanceModel.assets[{i}].parentReferenceId"),
                format!("no asset has referenceId `{parent}`"),
            ));
        }
    }
    if has_cycle(m) {
        out.push(issue(
            "data.instanceModel.assets".into(),
            "parentReferenceId links form a cycle".into(),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, mp) in m.mapping_model.mappings.iter().enumerate() {
        let p = format!("data.mappingModel.mappings[{i}]");
        let Some(type_id) = assets.get(mp.asset_reference_id.as_str()) else {
            out.push(issue(
                format!("{p}.assetReferenceId"),
                format!("no asset has referenceId `{}`", mp.asset_reference_id),
            ));
            continue;
        };
        let Some(aspects) = asset_aspects.get(type_id) else {
            continue;
        };
        let Some(aspect_type) = aspects.get(mp.aspect_name.as_str()) else {
            out.push(issue(
                format!("{p}.aspectName"),
                format!("asset type `{type_id}` has no aspect `{}`", mp.aspect_name),
            ));
            continue;
        };
        if let Some(vars) = aspect_vars.get(aspect_type)
            && !vars.contains_key(mp.variable_name.as_str())
        {
            out.push(issue(
                format!("{p}.variableName"),
                format!(
                    "aspect type `{aspect_type}` has no variable `{}`",
                    mp.variable_name
                ),
            ));
        }
        if !seen.insert((
            &mp.data_point_id,
            &mp.asset_reference_id,
            &mp.aspect_name,
            &mp.variable_name,
        )) {
            out.push(issue(
                p.clone(),
                format!(
                    "data point `{}` is mapped to the same variable twice",
                    mp.data_point_id
                ),
            ));
        }
    }
    out
}

fn has_cycle(m: &AssetModel) -> bool {
    let parent: BTreeMap<&str, &str> = m
        .instance_model
        .assets
        .iter()
        .filter_map(|a| Some((a.reference_id.as_str(), a.parent_reference_id.as_deref()?)))
        .collect();
    parent.keys().any(|start| {
        let mut at = *start;
        for _ in 0..=parent.len() {
            match parent.get(at) {
                Some(p) if p == start => return true,
                Some(p) => at = p,
                None => return false,
            }
        }
        true
    })
}

/// An asset of an instantiation, with its name resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedAsset {
    /// `referenceId` in the model.
    pub reference_id: String,
    /// Type.
    pub type_id: String,
    /// Name with `${param}`s replaced.
    pub name: String,
    /// Parent `referenceId` (none: under the agent's asset).
    pub parent_reference_id: Option<String>,
}

/// Resolves the asset names of instantiating `model` with `inst`'s parameters.
pub fn resolve_instance(
    model: &AssetModel,
    inst: &Instantiation,
) -> Result<Vec<ResolvedAsset>, Vec<Issue>> {
    let params: BTreeMap<&str, &str> = inst
        .parameterization
        .values
        .iter()
        .map(|p| (p.name.as_str(), p.value.as_str()))
        .collect();
    let mut issues = Vec::new();
    let mut out = Vec::new();
    for (i, a) in model.instance_model.assets.iter().enumerate() {
        match substitute(&a.name, &params) {
            Ok(name) if name.trim().is_empty() => issues.push(issue(
                format!("instanceModel.assets[{i}].name"),
                "resolves to an empty name".into(),
            )),
            Ok(name) => out.push(ResolvedAsset {
                reference_id: a.reference_id.clone(),
                type_id: a.type_id.clone(),
                name,
                parent_reference_id: a.parent_reference_id.clone(),
            }),
            Err(missing) => issues.push(issue(
                "data.parameterization.values".into(),
                format!(
                    "no value for parameter `{missing}` (used by asset `{}`)",
                    a.reference_id
                ),
            )),
        }
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(issues)
    }
}

/// Replaces `${name}` with its parameter value; `Err(name)` for the first one without a value.
pub fn substitute(template: &str, params: &BTreeMap<&str, &str>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        match params.get(name) {
            Some(v) => out.push_str(v),
            None => return Err(name.to_owned()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether a timeseries value fits a variable's data type.
pub fn value_fits(data_type: &str, v: &Scalar) -> bool {
    match data_type {
        "DOUBLE" => v.as_f64().is_some(),
        "INT" => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        "LONG" => v.as_i64().is_some(),
        "BOOLEAN" => {
            matches!(v, Scalar::Bool(_)) || matches!(v.as_text().as_str(), "true" | "false")
        }
        "TIMESTAMP" => super::timestamp::parse(&v.as_text()).is_ok(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::super::envelope::decode;
    use super::super::model::ModelRequest;
    use super::*;

    fn seed_model(tenant: &str) -> AssetModel {
        let text = crate::protocol::template::builtin(crate::protocol::template::Kind::Model)
            .replace("<tenantId>", tenant)
            .replace("<uuid>", "u");
        decode::<ModelRequest>("model", text.as_bytes())
            .unwrap()
            .data
    }

    #[test]
    fn the_seed_model_is_valid() {
        assert_eq!(
            check_model(&seed_model("tenantid"), "tenantid", &BTreeSet::new()),
            vec![]
        );
    }

    #[test]
    fn a_model_for_another_tenant_is_refused() {
        let issues = check_model(&seed_model("other"), "tenantid", &BTreeSet::new());
        assert!(
            issues
                .iter()
                .any(|i| i.path == "data.typeModel.aspectTypes[0].id"
                    && i.message.contains("`tenantid.`")),
            "{issues:?}"
        );
    }

    #[test]
    fn mappings_must_reference_declared_aspects_and_variables() {
        let mut m = seed_model("t");
        m.mapping_model.mappings[0].variable_name = "pressure".into();
        m.mapping_model.mappings[1].aspect_name = "noAspect".into();
        m.instance_model.assets[2].type_id = "t.unknownType".into();
        let issues: Vec<String> = check_model(&m, "t", &BTreeSet::new())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(issues.contains(&"data.mappingModel.mappings[0].variableName: aspect type `t.dht11Aspect` has no variable `pressure`".to_owned()), "{issues:?}");
        assert!(issues.contains(&"data.mappingModel.mappings[1].aspectName: asset type `t.jetPumpType` has no aspect `noAspect`".to_owned()), "{issues:?}");
        assert!(
            issues
                .iter()
                .any(|i| i.starts_with("data.instanceModel.assets[2].typeId")),
            "{issues:?}"
        );
    }

    #[test]
    fn cycles_and_dangling_parents_are_found() {
        let mut m = seed_model("t");
        m.instance_model.assets[0].parent_reference_id = Some("ChildJetPump2".into());
        assert!(
            check_model(&m, "t", &BTreeSet::new())
                .iter()
                .any(|i| i.message.contains("cycle"))
        );
        m.instance_model.assets[0].parent_reference_id = Some("Nowhere".into());
        assert!(
            check_model(&m, "t", &BTreeSet::new())
                .iter()
                .any(|i| i.message.contains("`Nowhere`"))
        );
    }

    #[test]
    fn parameters_resolve_names_and_missing_ones_are_named() {
        let m = seed_model("t");
        let inst: Instantiation = serde_json::from_str(r#"{"modelExternalId":"JetPumpModel","parameterization":{"values":[{"name":"assetName","value":"P"},{"name":"childAssetName1","value":"A"}]}}"#).unwrap();
        let e = resolve_instance(&m, &inst).unwrap_err();
        assert!(e[0].message.contains("`childAssetName2`"), "{e:?}");
        let mut inst = inst;
        inst.parameterization
            .values
            .push(super::super::model::Parameter {
                name: "childAssetName2".into(),
                value: "R".into(),
            });
        let names: Vec<String> = resolve_instance(&m, &inst)
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["P", "A", "R"]);
    }

    #[test]
    fn substitution_handles_odd_text() {
        let p = BTreeMap::from([("a", "1")]);
        assert_eq!(substitute("x${a}y${a}", &p).unwrap(), "x1y1");
        assert_eq!(substitute("${", &p).unwrap(), "${");
        assert_eq!(substitute("${b}", &p).unwrap_err(), "b");
    }

    #[test]
    fn values_are_checked_against_data_types() {
        assert!(value_fits("DOUBLE", &"31".into()));
        assert!(!value_fits("DOUBLE", &"warm".into()));
        assert!(!value_fits("INT", &"3000000000".into()));
        assert!(value_fits("BOOLEAN", &"true".into()));
        assert!(value_fits("STRING", &Scalar::Bool(true)));
    }
}
