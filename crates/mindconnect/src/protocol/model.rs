//! The Asset Modeler v3 messages: the asset model (`o/amo_v3/m`: types, instance template,
//! mappings), the instantiation request (`o/amo_v3/i`) and the platform's job status answers
//! (`i/amo_v3/ms`, `i/amo_v3/ip`: `InProgress`, then `Success` or `Failed` with `errors`). Both
//! directions live here; the agent encodes requests and decodes answers, the platform side the
//! other way round. Unknown optional fields of user model files are not modelled here: the agent
//! publishes the filled template as written, these types are for checking and answering.

use serde::{Deserialize, Serialize};

use super::envelope::{Reply, Request};

/// `o/amo_v3/m`.
pub type ModelRequest = Request<AssetModel>;
/// `o/amo_v3/i`.
pub type InstantiationRequest = Request<Instantiation>;
/// `i/amo_v3/ms` and `i/amo_v3/ip`.
pub type JobReply = Reply<JobStatus>;

/// An asset model: types, the instance template and the data point mappings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetModel {
    /// The model's name, referenced by `modelExternalId` when instantiating.
    pub external_id: String,
    /// Aspect types and asset types.
    pub type_model: TypeModel,
    /// Assets to create per instantiation.
    #[serde(default)]
    pub instance_model: InstanceModel,
    /// Data point → asset/aspect/variable.
    #[serde(default)]
    pub mapping_model: MappingModel,
}

/// Aspect types and asset types.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeModel {
    /// Aspect types.
    #[serde(default)]
    pub aspect_types: Vec<AspectType>,
    /// Asset types.
    #[serde(default)]
    pub asset_types: Vec<AssetType>,
}

/// An aspect type: a named group of variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AspectType {
    /// `<tenant>.<name>`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `dynamic` (timeseries) or `static`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// `private` or `public`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Variables.
    #[serde(default)]
    pub variables: Vec<Variable>,
}

/// A variable of an aspect type or asset type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Variable {
    /// Name.
    pub name: String,
    /// `DOUBLE`, `INT`, `LONG`, `STRING`, `BOOLEAN`, `TIMESTAMP`, `BIG_STRING`.
    pub data_type: String,
    /// Unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Searchable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub searchable: Option<bool>,
    /// Length (strings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
    /// Whether values carry a quality code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_code: Option<bool>,
}

/// An asset type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetType {
    /// `<tenant>.<name>`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Parent type, e.g. `core.basicasset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_type_id: Option<String>,
    /// Asset-level variables.
    #[serde(default)]
    pub variables: Vec<Variable>,
    /// Aspects of this type.
    #[serde(default)]
    pub aspects: Vec<TypeAspect>,
}

/// An aspect of an asset type: a name and the aspect type it instantiates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeAspect {
    /// Aspect name, used by mappings' `aspectName`.
    pub name: String,
    /// Aspect type id.
    pub aspect_type_id: String,
}

/// The assets one instantiation creates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceModel {
    /// Assets.
    #[serde(default)]
    pub assets: Vec<AssetTemplate>,
}

/// One asset of the instance template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetTemplate {
    /// Reference used by mappings and children.
    pub reference_id: String,
    /// Asset type id.
    pub type_id: String,
    /// Name; `${param}` is replaced from the instantiation's parameters.
    pub name: String,
    /// Parent asset's `referenceId` (none: a child of the agent's asset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_reference_id: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Data point mappings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MappingModel {
    /// Mappings.
    #[serde(default)]
    pub mappings: Vec<Mapping>,
}

/// The agent's `dataPointId` → a variable of an aspect of an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mapping {
    /// Data point id the agent sends in timeseries.
    pub data_point_id: String,
    /// Asset (`referenceId` in the instance model).
    pub asset_reference_id: String,
    /// Aspect name of that asset's type.
    pub aspect_name: String,
    /// Variable of that aspect's type.
    pub variable_name: String,
}

/// An instantiation request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instantiation {
    /// The model's `externalId`.
    pub model_external_id: String,
    /// Values for the model's `${param}`s.
    #[serde(default)]
    pub parameterization: Parameterization,
    /// An existing asset to create the assets under (inferred; commented out in the sample).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_parent_asset_id: Option<String>,
}

/// Parameter values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameterization {
    /// Name/value pairs.
    #[serde(default)]
    pub values: Vec<Parameter>,
}

/// One parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    /// Name, as in `${name}`.
    pub name: String,
    /// Value.
    pub value: String,
}

/// The state of an Asset Modeler job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Status {
    /// Still working.
    InProgress,
    /// Done.
    Success,
    /// Refused; see `errors`.
    Failed,
    /// Anything else (treated as in progress, like the sample does).
    Other(String),
}

impl From<String> for Status {
    fn from(s: String) -> Self {
        match s.as_str() {
            "InProgress" => Status::InProgress,
            "Success" => Status::Success,
            "Failed" => Status::Failed,
            _ => Status::Other(s),
        }
    }
}

impl From<Status> for String {
    fn from(s: Status) -> Self {
        match s {
            Status::InProgress => "InProgress".into(),
            Status::Success => "Success".into(),
            Status::Failed => "Failed".into(),
            Status::Other(s) => s,
        }
    }
}

/// The `data` of an `ms`/`ip` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// Job id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Model id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// State.
    pub status: Status,
    /// Progress text, e.g. "20% completed.".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<JobError>,
}

/// One error of a failed job. Its shape is not documented for v3: we send
/// `{"code", "message"}` and accept a bare string too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ErrorRepr")]
pub struct JobError {
    /// Machine-readable code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorRepr {
    Text(String),
    Object {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
    },
}

impl From<ErrorRepr> for JobError {
    fn from(r: ErrorRepr) -> Self {
        match r {
            ErrorRepr::Text(message) => JobError {
                code: None,
                message,
            },
            ErrorRepr::Object { code, message } => JobError {
                code,
                message: message.unwrap_or_default(),
            },
        }
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(c) => write!(f, "{}: {}", c, self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// What one answer means for a request we wait on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStep {
    /// For another request.
    NotOurs,
    /// Still working (message, if any).
    Progress(Option<String>),
    /// Done.
    Succeeded,
    /// Refused, with the errors (and the message, if any).
    Failed(Vec<JobError>, Option<String>),
}

/// Interprets `reply` for the request `request_id`. An answer without `requestId` is taken as
/// ours (the sample does not correlate at all); one with another `requestId` is not.
pub fn step(reply: &JobReply, request_id: &str) -> JobStep {
    if reply.request_id.as_deref().is_some_and(|r| r != request_id) {
        return JobStep::NotOurs;
    }
    match &reply.data.status {
        Status::Success => JobStep::Succeeded,
        Status::Failed => JobStep::Failed(reply.data.errors.clone(), reply.data.message.clone()),
        Status::InProgress | Status::Other(_) => JobStep::Progress(reply.data.message.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::envelope::{decode, encode, strategies};
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.${}]{1,12}"
    }

    fn model() -> impl Strategy<Value = AssetModel> {
        (
            name(),
            proptest::collection::vec(
                (
                    name(),
                    name(),
                    name(),
                    proptest::option::of(strategies::text()),
                ),
                0..3,
            ),
            proptest::collection::vec((name(), name(), name(), proptest::option::of(name())), 0..3),
            proptest::option::of(name()),
        )
            .prop_map(|(ext, aspects, assets, parent)| AssetModel {
                external_id: ext,
                type_model: TypeModel {
                    aspect_types: aspects
                        .iter()
                        .map(|(id, n, v, d)| AspectType {
                            id: id.clone(),
                            name: n.clone(),
                            description: d.clone(),
                            category: Some("dynamic".into()),
                            scope: None,
                            variables: vec![Variable {
                                name: v.clone(),
                                data_type: "DOUBLE".into(),
                                unit: d.clone(),
                                searchable: Some(true),
                                length: None,
                                quality_code: None,
                            }],
                        })
                        .collect(),
                    asset_types: vec![AssetType {
                        id: "t.a".into(),
                        name: "A".into(),
                        description: None,
                        parent_type_id: parent.clone(),
                        variables: vec![],
                        aspects: aspects
                            .iter()
                            .map(|(id, n, _, _)| TypeAspect {
                                name: n.clone(),
                                aspect_type_id: id.clone(),
                            })
                            .collect(),
                    }],
                },
                instance_model: InstanceModel {
                    assets: assets
                        .iter()
                        .map(|(r, t, n, p)| AssetTemplate {
                            reference_id: r.clone(),
                            type_id: t.clone(),
                            name: n.clone(),
                            parent_reference_id: p.clone(),
                            description: None,
                        })
                        .collect(),
                },
                mapping_model: MappingModel {
                    mappings: assets
                        .iter()
                        .map(|(r, t, n, _)| Mapping {
                            data_point_id: n.clone(),
                            asset_reference_id: r.clone(),
                            aspect_name: t.clone(),
                            variable_name: n.clone(),
                        })
                        .collect(),
                },
            })
    }

    fn status() -> impl Strategy<Value = Status> {
        prop_oneof![
            Just(Status::InProgress),
            Just(Status::Success),
            Just(Status::Failed),
            "[a-z]{0,8}".prop_map(Status::Other),
        ]
    }

    proptest! {
        #[test]
        fn model_request_roundtrips(id in strategies::text(), m in model()) {
            let req = ModelRequest { id, data: m };
            prop_assert_eq!(decode::<ModelRequest>("model", &encode(&req)).unwrap(), req);
        }

        #[test]
        fn instantiation_roundtrips(id in strategies::text(), ext in strategies::text(),
                                   params in proptest::collection::vec((name(), strategies::text()), 0..4),
                                   parent in proptest::option::of(name())) {
            let req = InstantiationRequest { id, data: Instantiation {
                model_external_id: ext,
                parameterization: Parameterization { values: params.into_iter().map(|(name, value)| Parameter { name, value }).collect() },
                model_parent_asset_id: parent,
            }};
            prop_assert_eq!(decode::<InstantiationRequest>("instantiation", &encode(&req)).unwrap(), req);
        }

        #[test]
        fn job_reply_roundtrips(id in strategies::text(), rid in proptest::option::of(strategies::text()),
                                st in status(), msg in proptest::option::of(strategies::text()),
                                errs in proptest::collection::vec((proptest::option::of(name()), strategies::text()), 0..3)) {
            // `Other` with a known name decodes as that status, by design.
            prop_assume!(!matches!(&st, Status::Other(s) if ["InProgress", "Success", "Failed"].contains(&s.as_str())));
            let r = JobReply { id, correlation_id: Some("c".into()), request_id: rid, data: JobStatus {
                id: Some("job".into()), model_id: None, status: st, message: msg,
                errors: errs.into_iter().map(|(code, message)| JobError { code, message }).collect(),
            }};
            prop_assert_eq!(decode::<JobReply>("answer", &encode(&r)).unwrap(), r);
        }

        #[test]
        fn hostile_input_never_panics(bytes in strategies::hostile()) {
            let _ = decode::<ModelRequest>("model", &bytes);
            let _ = decode::<InstantiationRequest>("instantiation", &bytes);
            let _ = decode::<JobReply>("answer", &bytes);
        }
    }

    #[test]
    fn documented_v4_progress_answer_decodes() {
        // protocols/mindconnect.md 3.4, from [D-dm4].
        let r: JobReply = decode("answer", br#"{"id":"01HFV9RX","correlationId":"01HFV9RN","requestId":"myrequest1","data":{"id":"01HFV9RR","modelId":"01HFV9RR","message":"20% completed.","status":"InProgress"}}"#).unwrap();
        assert_eq!(
            step(&r, "myrequest1"),
            JobStep::Progress(Some("20% completed.".into()))
        );
        assert_eq!(step(&r, "other"), JobStep::NotOurs);
    }

    #[test]
    fn errors_may_be_strings_or_objects() {
        let r: JobReply = decode("answer", br#"{"id":"x","data":{"status":"Failed","errors":["bad",{"code":"E1","message":"worse"}]}}"#).unwrap();
        match step(&r, "any") {
            JobStep::Failed(e, _) => {
                assert_eq!(e[0].to_string(), "bad");
                assert_eq!(e[1].to_string(), "E1: worse");
            }
            other => panic!("{other:?}"),
        }
    }
}
