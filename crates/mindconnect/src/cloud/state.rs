//! The platform side's state and its pure MQTT handler: `handle(state, topic, payload, now)`
//! returns what the platform publishes. This file holds the records and the Asset Modeler half
//! (models on `o/amo_v3/m` answered on `i/amo_v3/ms`, instantiations on `o/amo_v3/i` answered on
//! `i/amo_v3/ip`, each `InProgress` then `Success` or `Failed` with errors); `ingest.rs` holds
//! timeseries, events, files, tokens and commands.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cloudkit::{Message, Report};
use serde::Serialize;
use serde_json::Value;

use crate::protocol::envelope::{MAX_PAYLOAD, Reply, Request, Scalar, decode, encode};
use crate::protocol::model::{AssetModel, Instantiation, JobError, JobStatus, Status};
use crate::protocol::topic::{self, Channel, Topics};
use crate::protocol::validate::{check_model, resolve_instance};

use super::jwt::Signer;

/// The Asset Modeler's documented body limit.
pub const AMO_MAX_BODY: usize = 128 * 1024;
/// How many recent notes the report keeps.
pub const KEEP_NOTES: usize = 50;
/// How many events and files per agent are kept for inspection.
pub const KEEP_ITEMS: usize = 50;

/// One asset the platform created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Asset {
    /// Id (32 hex digits).
    pub asset_id: String,
    /// Name.
    pub name: String,
    /// Type.
    pub type_id: String,
    /// Parent asset id (the agent's asset for top-level model assets).
    pub parent_id: Option<String>,
    /// The model and reference it came from.
    pub reference_id: Option<String>,
}

/// Where a data point's values go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Asset id.
    pub asset_id: String,
    /// Aspect name.
    pub aspect: String,
    /// Variable name.
    pub variable: String,
    /// The variable's data type.
    pub data_type: String,
}

/// A recorded value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recorded {
    /// Timestamp as sent.
    pub timestamp: String,
    /// Value as sent.
    pub value: Scalar,
}

/// A stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredFile {
    /// Name.
    pub name: String,
    /// Decoded content.
    pub content: Vec<u8>,
}

/// What the platform knows about one agent (client id).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    /// Tenant.
    pub tenant: String,
    /// The agent's own asset (externalId = client id).
    pub asset_id: String,
    /// Assets created by instantiations (children of the agent's asset).
    pub assets: Vec<Asset>,
    /// Data point id → targets.
    pub mappings: BTreeMap<String, Vec<Target>>,
    /// `assetId/aspect/variable` → latest value.
    pub values: BTreeMap<String, Recorded>,
    /// Recent events (as received).
    pub events: Vec<Value>,
    /// Recent files.
    pub files: Vec<StoredFile>,
    /// Datalake objects: path → size.
    pub objects: BTreeMap<String, usize>,
    /// Successful instantiations.
    pub instantiations: u64,
}

/// A delivered command and the statuses the agent sent for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    /// Client id.
    pub client_id: String,
    /// Job id.
    pub job_id: String,
    /// Statuses received, in order.
    pub statuses: Vec<String>,
}

/// A signed upload URL not yet used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Client id.
    pub client_id: String,
    /// Object path.
    pub path: String,
    /// Unix seconds after which it is refused.
    pub expires: i64,
}

/// A custom topic the platform knows (the custom data format).
#[derive(Debug, Clone)]
pub struct CustomTopic {
    /// The registration.
    pub registration: crate::protocol::custom::Registered,
    /// Its mappings (stored; the local cloud does not evaluate their JMESPath).
    pub mappings: Vec<crate::protocol::custom::Mapping>,
    /// Recent documents that arrived on it, as received.
    pub documents: Vec<Value>,
}

/// Everything the platform side holds.
#[derive(Debug)]
pub struct CloudState {
    /// Counters and notes.
    pub report: Report,
    /// Token lifetime.
    pub token_lifetime: Duration,
    /// Token and ticket signer.
    pub signer: Signer,
    /// Tenant → model externalId → model.
    pub models: BTreeMap<String, BTreeMap<String, AssetModel>>,
    /// Client id → agent.
    pub agents: BTreeMap<String, Agent>,
    /// Command request id → job.
    pub jobs: BTreeMap<String, Job>,
    /// Upload ticket → ticket.
    pub tickets: BTreeMap<String, Ticket>,
    /// Custom topic registrations by id.
    pub custom: BTreeMap<String, CustomTopic>,
    /// Client id → its v4 model (Asset Modeler v4 keeps one model per agent).
    pub v4_models: BTreeMap<String, crate::protocol::v4::V4Model>,
    /// Client id → its v4 download tickets and the model snapshot each serves, oldest first
    /// (kept per agent: many agents synchronising at once must not push each other's out).
    pub v4_downloads: BTreeMap<String, Vec<(String, Vec<u8>)>>,
    /// iot-sim's HTTPS base (`https://localhost:PORT`), once it listens.
    pub https_base: Option<String>,
    seq: u64,
    unmapped_noted: BTreeSet<(String, String)>,
}

impl CloudState {
    /// Fresh state.
    pub fn new(signer: Signer, token_lifetime: Duration) -> Self {
        CloudState {
            report: Report::default(),
            token_lifetime,
            signer,
            models: BTreeMap::new(),
            agents: BTreeMap::new(),
            jobs: BTreeMap::new(),
            tickets: BTreeMap::new(),
            custom: BTreeMap::new(),
            v4_models: BTreeMap::new(),
            v4_downloads: BTreeMap::new(),
            https_base: None,
            seq: 0,
            unmapped_noted: BTreeSet::new(),
        }
    }

    /// A new platform id (26 characters, ULID-like).
    pub fn next_id(&mut self) -> String {
        self.seq += 1;
        format!("01SIM{:021}", self.seq)
    }

    /// Adds a note to the report.
    pub fn note(&mut self, text: String) {
        tracing::info!("mindconnect platform: {text}");
        self.report.note(text, KEEP_NOTES);
    }

    /// Counts one.
    pub fn count(&mut self, name: &str) {
        self.report.add(name, 1);
    }

    /// The agent record for `client_id`, created (with its own asset) on first contact.
    pub fn agent(&mut self, tenant: &str, client_id: &str) -> &mut Agent {
        if !self.agents.contains_key(client_id) {
            let asset_id = self
                .signer
                .digest(&format!("agent-asset/{tenant}/{client_id}"));
            self.report.add("agents", 1);
            self.agents.insert(
                client_id.to_owned(),
                Agent {
                    tenant: tenant.to_owned(),
                    asset_id,
                    ..Agent::default()
                },
            );
        }
        self.agents.entry(client_id.to_owned()).or_default()
    }

    /// Notes an unmapped data point once per agent and counts it every time.
    pub fn unmapped(&mut self, client_id: &str, data_point: &str) {
        self.report.add("unmapped_values", 1);
        self.report
            .add(&format!("unmapped:{client_id}/{data_point}"), 1);
        if self
            .unmapped_noted
            .insert((client_id.to_owned(), data_point.to_owned()))
        {
            self.note(format!("`{client_id}` sent data point `{data_point}`, which no mapping of an instantiated model covers; Insights Hub drops such values"));
        }
    }
}

/// A platform answer on `channel` of `topics`.
pub fn answer<T: Serialize>(
    state: &mut CloudState,
    topics: &Topics,
    channel: Channel,
    request_id: &str,
    data: T,
) -> Message {
    let id = state.next_id();
    let reply = Reply {
        id: id.clone(),
        correlation_id: Some(id),
        request_id: Some(request_id.to_owned()),
        data,
    };
    Message::new(topics.topic(channel), encode(&reply))
}

fn job(
    status: Status,
    message: Option<&str>,
    errors: Vec<JobError>,
    job_id: &str,
    model_id: Option<String>,
) -> JobStatus {
    JobStatus {
        id: Some(job_id.to_owned()),
        model_id,
        status,
        message: message.map(str::to_owned),
        errors,
    }
}

fn generic(message: String) -> JobError {
    JobError {
        code: Some("mdsp.core.generic.invalidRequest".into()),
        message,
    }
}

/// Handles one message; returns what the platform publishes.
pub fn handle(
    state: &mut CloudState,
    topic: &str,
    payload: &[u8],
    now: time::OffsetDateTime,
) -> Vec<Message> {
    let Some(a) = topic::parse(topic) else {
        super::ingest::on_custom(state, topic, payload);
        return Vec::new();
    };
    let Ok(topics) = Topics::new(a.tenant, a.client_id) else {
        state.count("ignored");
        return Vec::new();
    };
    if a.channel.direction() == topic::Direction::Out {
        state.agent(a.tenant, a.client_id);
    }
    match a.channel {
        Channel::Model => on_model(state, &topics, payload),
        Channel::Instantiate => on_instantiate(state, &topics, payload),
        Channel::Timeseries => super::ingest::on_timeseries(state, &topics, payload),
        Channel::Event => super::ingest::on_event(state, &topics, payload),
        Channel::File => super::ingest::on_file(state, &topics, payload),
        Channel::TokenRequest => super::ingest::on_token(state, &topics, payload, now),
        Channel::Command => super::ingest::on_delivery(state, &topics, payload),
        Channel::CommandStatus => super::ingest::on_command_status(state, &topics, payload),
        Channel::V4Download => super::v4::on_download(state, &topics, payload),
        Channel::V4Instantiate => super::v4::on_instantiate(state, &topics, payload),
        Channel::ModelStatus
        | Channel::InstanceProgress
        | Channel::TokenResponse
        | Channel::V4Model
        | Channel::V4Progress => Vec::new(),
    }
}

/// The request `id` of a payload, if it has one (to answer even when the body is bad).
fn request_id(
    state: &mut CloudState,
    topics: &Topics,
    what: &'static str,
    payload: &[u8],
) -> Option<String> {
    match decode::<Request<Value>>(what, payload) {
        Ok(r) => Some(r.id),
        Err(e) => {
            state.count("bad_payloads");
            state.note(format!(
                "`{}` sent an unusable {what}: {e}",
                topics.client_id()
            ));
            None
        }
    }
}

fn on_model(state: &mut CloudState, topics: &Topics, payload: &[u8]) -> Vec<Message> {
    state.count("models_received");
    let Some(rid) = request_id(state, topics, "asset model", payload) else {
        return Vec::new();
    };
    let job_id = state.next_id();
    let mut out = vec![answer(
        state,
        topics,
        Channel::ModelStatus,
        &rid,
        job(
            Status::InProgress,
            Some("0% completed."),
            vec![],
            &job_id,
            None,
        ),
    )];
    let result = if payload.len() > AMO_MAX_BODY {
        Err(vec![generic(format!(
            "the body has {} bytes; the maximum size of the body is 128KBs",
            payload.len()
        ))])
    } else {
        match decode::<Request<AssetModel>>("asset model", payload) {
            Err(e) => Err(vec![generic(e.to_string())]),
            Ok(req) => {
                let tenant = topics.tenant().to_owned();
                let known: BTreeSet<String> = state
                    .models
                    .get(&tenant)
                    .into_iter()
                    .flat_map(|m| m.values())
                    .flat_map(declared_types)
                    .collect();
                let issues = check_model(&req.data, &tenant, &known);
                if issues.is_empty() {
                    let ext = req.data.external_id.clone();
                    state
                        .models
                        .entry(tenant)
                        .or_default()
                        .insert(ext.clone(), req.data);
                    Ok(ext)
                } else {
                    Err(issues.into_iter().map(JobError::from).collect())
                }
            }
        }
    };
    let done = match result {
        Ok(ext) => {
            state.count("models_accepted");
            state.note(format!(
                "model `{ext}` of tenant `{}` accepted",
                topics.tenant()
            ));
            job(
                Status::Success,
                Some("100% completed."),
                vec![],
                &job_id,
                Some(ext),
            )
        }
        Err(errors) => {
            state.count("models_failed");
            state.note(format!(
                "model from `{}` refused: {}",
                topics.client_id(),
                join(&errors)
            ));
            job(
                Status::Failed,
                Some("Model creation failed."),
                errors,
                &job_id,
                None,
            )
        }
    };
    out.push(answer(state, topics, Channel::ModelStatus, &rid, done));
    out
}

fn declared_types(m: &AssetModel) -> Vec<String> {
    let t = &m.type_model;
    t.aspect_types
        .iter()
        .map(|a| a.id.clone())
        .chain(t.asset_types.iter().map(|a| a.id.clone()))
        .collect()
}

fn join(errors: &[JobError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn on_instantiate(state: &mut CloudState, topics: &Topics, payload: &[u8]) -> Vec<Message> {
    state.count("instantiations_received");
    let Some(rid) = request_id(state, topics, "instantiation", payload) else {
        return Vec::new();
    };
    let job_id = state.next_id();
    let mut out = vec![answer(
        state,
        topics,
        Channel::InstanceProgress,
        &rid,
        job(
            Status::InProgress,
            Some("0% completed."),
            vec![],
            &job_id,
            None,
        ),
    )];
    let done = match instantiate(state, topics, payload) {
        Ok(ext) => {
            state.count("instantiations_succeeded");
            state.note(format!(
                "model `{ext}` instantiated for `{}`",
                topics.client_id()
            ));
            job(
                Status::Success,
                Some("100% completed."),
                vec![],
                &job_id,
                Some(ext),
            )
        }
        Err(errors) => {
            state.count("instantiations_failed");
            state.note(format!(
                "instantiation by `{}` refused: {}",
                topics.client_id(),
                join(&errors)
            ));
            job(
                Status::Failed,
                Some("Instantiation failed."),
                errors,
                &job_id,
                None,
            )
        }
    };
    out.push(answer(state, topics, Channel::InstanceProgress, &rid, done));
    out
}

fn instantiate(
    state: &mut CloudState,
    topics: &Topics,
    payload: &[u8],
) -> Result<String, Vec<JobError>> {
    let req = decode::<Request<Instantiation>>("instantiation", payload)
        .map_err(|e| vec![generic(e.to_string())])?;
    let ext = req.data.model_external_id.clone();
    let model = state
        .models
        .get(topics.tenant())
        .and_then(|m| m.get(&ext))
        .cloned()
        .ok_or_else(|| {
            vec![generic(format!(
                "model `{ext}` does not exist for tenant `{}`; publish it first (mc-model publish)",
                topics.tenant()
            ))]
        })?;
    let resolved = resolve_instance(&model, &req.data)
        .map_err(|i| i.into_iter().map(JobError::from).collect::<Vec<_>>())?;
    let (client, signer) = (topics.client_id().to_owned(), &state.signer);
    let n = state.agents.get(&client).map_or(0, |a| a.instantiations);
    let ids: BTreeMap<String, String> = resolved
        .iter()
        .map(|r| {
            (
                r.reference_id.clone(),
                signer.digest(&format!("asset/{client}/{ext}/{n}/{}", r.reference_id)),
            )
        })
        .collect();
    let agent = state
        .agents
        .get_mut(&client)
        .ok_or_else(|| vec![generic("unknown agent".into())])?;
    let root = req
        .data
        .model_parent_asset_id
        .clone()
        .unwrap_or_else(|| agent.asset_id.clone());
    if req.data.model_parent_asset_id.is_some()
        && !agent.assets.iter().any(|a| a.asset_id == root)
        && root != agent.asset_id
    {
        return Err(vec![generic(format!(
            "modelParentAssetId `{root}` is not an asset of this agent"
        ))]);
    }
    let mut new_assets = Vec::new();
    for r in &resolved {
        let parent = match &r.parent_reference_id {
            Some(p) => ids.get(p).cloned(),
            None => Some(root.clone()),
        };
        if agent
            .assets
            .iter()
            .any(|a| a.name == r.name && a.parent_id == parent)
        {
            return Err(vec![JobError {
                code: Some("mdsp.core.assetmanagement.assetNameAlreadyExists".into()),
                message: format!(
                    "an asset named `{}` already exists under the same parent; instantiate once (instance.conf) or change the parameters",
                    r.name
                ),
            }]);
        }
        new_assets.push(Asset {
            asset_id: ids.get(&r.reference_id).cloned().unwrap_or_default(),
            name: r.name.clone(),
            type_id: r.type_id.clone(),
            parent_id: parent,
            reference_id: Some(r.reference_id.clone()),
        });
    }
    let mut mappings: Vec<(String, Target)> = Vec::new();
    for m in &model.mapping_model.mappings {
        let (Some(asset_id), Some(tmpl)) = (
            ids.get(&m.asset_reference_id),
            model
                .instance_model
                .assets
                .iter()
                .find(|a| a.reference_id == m.asset_reference_id),
        ) else {
            continue;
        };
        let data_type = model
            .type_model
            .asset_types
            .iter()
            .find(|t| t.id == tmpl.type_id)
            .and_then(|t| t.aspects.iter().find(|a| a.name == m.aspect_name))
            .and_then(|a| {
                model
                    .type_model
                    .aspect_types
                    .iter()
                    .find(|at| at.id == a.aspect_type_id)
            })
            .and_then(|at| at.variables.iter().find(|v| v.name == m.variable_name))
            .map_or_else(|| "STRING".to_owned(), |v| v.data_type.clone());
        mappings.push((
            m.data_point_id.clone(),
            Target {
                asset_id: asset_id.clone(),
                aspect: m.aspect_name.clone(),
                variable: m.variable_name.clone(),
                data_type,
            },
        ));
    }
    agent.assets.extend(new_assets);
    for (dp, t) in mappings {
        agent.mappings.entry(dp).or_default().push(t);
    }
    agent.instantiations += 1;
    Ok(ext)
}

/// Payload size check shared by the ingest handlers.
pub fn too_large(payload: &[u8]) -> bool {
    payload.len() > MAX_PAYLOAD
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
