//! The Asset Modeler v4 half of the platform side: one model per agent, served on request
//! (`o/amo_v4/m` answered on `i/amo_v4/m` with `data.content` = a download URL under iot-sim's
//! HTTPS endpoints, like the presigned URL the 2024 sample GETs without credentials; the model
//! inline when no HTTPS endpoint runs), and `o/amo_v4/mi` applied (create or update by
//! `referenceId`, assets instantiated under the agent's asset, mappings live for timeseries)
//! with progress on `i/amo_v4/mip`: `InProgress` ("20% completed."), then `Success`, or `Failed`
//! with `errors: [{code, message}]` naming each bad field. Pure, like the rest of the handler.

use cloudkit::Message;
use serde_json::Value;

use crate::protocol::envelope::{Request, decode, encode};
use crate::protocol::model::{JobError, JobStatus, Status};
use crate::protocol::topic::{Channel, Topics};
use crate::protocol::v4::{
    Content, DownloadData, DownloadRequest, V4Model, check_v4, element_count,
};

use super::state::{AMO_MAX_BODY, Asset, CloudState, Target, answer};

/// Where download URLs point, below the cloud's prefix.
pub const DOWNLOAD_PATH: &str = "/amo_v4/models";
/// How many download snapshots are kept per agent (oldest dropped): an agent fetches each right
/// after the answer, and a synchronisation downloads twice.
pub const KEEP_DOWNLOADS: usize = 4;

/// The download URL of `ticket`, when iot-sim's HTTPS endpoints run.
pub fn download_url(state: &CloudState, ticket: &str) -> Option<String> {
    state
        .https_base
        .as_ref()
        .map(|b| format!("{b}/mindconnect{DOWNLOAD_PATH}/{ticket}"))
}

/// The cloud model of `client_id` as the download serves it (`id`, `namespace`, and the
/// assets' `assetId`s).
pub fn cloud_model(state: &CloudState, tenant: &str, client_id: &str) -> V4Model {
    let mut m = state.v4_models.get(client_id).cloned().unwrap_or_default();
    m.extra.insert(
        "id".into(),
        Value::String(state.signer.digest(&format!("v4-model/{client_id}"))),
    );
    m.extra
        .insert("namespace".into(), Value::String(tenant.to_owned()));
    m
}

/// `o/amo_v4/m`.
pub fn on_download(state: &mut CloudState, topics: &Topics, payload: &[u8]) -> Vec<Message> {
    let req: DownloadRequest = match decode("model download request", payload) {
        Ok(r) => r,
        Err(e) => {
            state.count("bad_payloads");
            state.note(format!(
                "`{}` sent an unusable model download request: {e}",
                topics.client_id()
            ));
            return Vec::new();
        }
    };
    state.count("v4_downloads");
    let model = cloud_model(state, topics.tenant(), topics.client_id());
    let seq = state.next_id();
    let ticket = state
        .signer
        .digest(&format!("v4-download/{}/{seq}", topics.client_id()));
    let content = match download_url(state, &ticket) {
        Some(url) => {
            let kept = state
                .v4_downloads
                .entry(topics.client_id().to_owned())
                .or_default();
            kept.push((ticket, encode(&model)));
            if kept.len() > KEEP_DOWNLOADS {
                kept.remove(0);
            }
            Content::Url(url)
        }
        None => Content::Inline(Box::new(model)),
    };
    vec![answer(
        state,
        topics,
        Channel::V4Model,
        &req.id,
        DownloadData { content },
    )]
}

/// The snapshot behind a download URL.
pub fn download(state: &CloudState, ticket: &str) -> Option<Vec<u8>> {
    state
        .v4_downloads
        .values()
        .flatten()
        .find(|(t, _)| t == ticket)
        .map(|(_, b)| b.clone())
}

fn invalid(message: String) -> JobError {
    JobError {
        code: Some("mdsp.core.generic.invalidRequest".into()),
        message,
    }
}

fn progress(status: Status, message: &str, errors: Vec<JobError>, job: &str) -> JobStatus {
    JobStatus {
        id: Some(job.to_owned()),
        model_id: None,
        status,
        message: Some(message.to_owned()),
        errors,
    }
}

/// `o/amo_v4/mi`: answers nothing when there is no request `id` to answer to (as v3 does).
pub fn on_instantiate(state: &mut CloudState, topics: &Topics, payload: &[u8]) -> Vec<Message> {
    state.count("v4_instantiations_received");
    let rid = match decode::<Request<Value>>("model instantiation", payload) {
        Ok(r) => r.id,
        Err(e) => {
            state.count("bad_payloads");
            state.note(format!(
                "`{}` sent an unusable model instantiation: {e}",
                topics.client_id()
            ));
            return Vec::new();
        }
    };
    let job = state.next_id();
    let mut out = vec![answer(
        state,
        topics,
        Channel::V4Progress,
        &rid,
        progress(Status::InProgress, "20% completed.", vec![], &job),
    )];
    let done = match apply(state, topics, payload) {
        Ok(n) => {
            state.count("v4_instantiations_succeeded");
            state.report.add("v4_elements", n as u64);
            state.note(format!(
                "v4 model of `{}`: {n} element(s) created or updated",
                topics.client_id()
            ));
            progress(Status::Success, "100% completed.", vec![], &job)
        }
        Err(errors) => {
            state.count("v4_instantiations_failed");
            state.note(format!(
                "v4 model instantiation by `{}` refused: {}",
                topics.client_id(),
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
            progress(Status::Failed, "Model instantiation failed.", errors, &job)
        }
    };
    out.push(answer(state, topics, Channel::V4Progress, &rid, done));
    out
}

fn apply(state: &mut CloudState, topics: &Topics, payload: &[u8]) -> Result<usize, Vec<JobError>> {
    if payload.len() > AMO_MAX_BODY {
        return Err(vec![invalid(format!(
            "the body has {} bytes; the maximum size of the body is 128KBs",
            payload.len()
        ))]);
    }
    let req = crate::protocol::v4::decode_named::<Request<V4Model>>("model instantiation", payload)
        .map_err(|e| vec![invalid(e.to_string())])?;
    let client = topics.client_id().to_owned();
    let tenant = topics.tenant();
    let current = state.v4_models.get(&client).cloned().unwrap_or_default();
    let mut errors: Vec<JobError> = check_v4(&req.data, true, &current)
        .into_iter()
        .map(|i| invalid(i.to_string()))
        .collect();
    let t = &req.data.type_model;
    let prefix = format!("{tenant}.");
    for (i, id) in t
        .aspect_types
        .iter()
        .map(|a| &a.id)
        .enumerate()
        .map(|(i, id)| (format!("typeModel.aspectTypes[{i}].id"), id))
        .chain(
            t.asset_types
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("typeModel.assetTypes[{i}].id"), &a.id)),
        )
    {
        if !id.starts_with(&prefix) {
            errors.push(invalid(format!(
                "{i}: `{id}` must start with the tenant, `{prefix}`"
            )));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let n = element_count(&req.data);
    let agent_asset = state.agent(tenant, &client).asset_id.clone();
    let mut model = current;
    let d = req.data;
    for a in d.type_model.aspect_types {
        upsert(&mut model.type_model.aspect_types, a, |x| &x.reference_id);
    }
    for a in d.type_model.asset_types {
        upsert(&mut model.type_model.asset_types, a, |x| &x.reference_id);
    }
    for mut a in d.instance_model.assets {
        let existing = model
            .instance_model
            .assets
            .iter()
            .find(|x| x.reference_id == a.reference_id)
            .and_then(|x| x.asset_id.clone());
        let r = a.reference_id.clone().unwrap_or_default();
        a.asset_id = Some(
            existing.unwrap_or_else(|| state.signer.digest(&format!("v4-asset/{client}/{r}"))),
        );
        upsert(&mut model.instance_model.assets, a, |x| &x.reference_id);
    }
    for mut m in d.mapping_model.mappings {
        m.asset_id = model
            .instance_model
            .assets
            .iter()
            .find(|a| a.reference_id == m.asset_reference_id)
            .and_then(|a| a.asset_id.clone());
        upsert(&mut model.mapping_model.mappings, m, |x| &x.reference_id);
    }
    // What ingest and the HTTPS reads see: the model's assets and mappings.
    let by_ref = |r: &Option<String>| {
        model
            .instance_model
            .assets
            .iter()
            .find(|a| &a.reference_id == r)
            .and_then(|a| a.asset_id.clone())
    };
    let assets: Vec<Asset> = model
        .instance_model
        .assets
        .iter()
        .map(|a| Asset {
            asset_id: a.asset_id.clone().unwrap_or_default(),
            name: a.name.clone(),
            type_id: a.type_id.clone(),
            parent_id: match &a.parent_reference_id {
                Some(p) => by_ref(&Some(p.clone())).or_else(|| Some(p.clone())),
                None => Some(agent_asset.clone()),
            },
            reference_id: a.reference_id.clone(),
        })
        .collect();
    let targets: Vec<(String, Target)> = model
        .mapping_model
        .mappings
        .iter()
        .filter_map(|m| {
            let asset = model
                .instance_model
                .assets
                .iter()
                .find(|a| a.reference_id == m.asset_reference_id)?;
            let data_type = model
                .type_model
                .asset_types
                .iter()
                .find(|t| t.id == asset.type_id)
                .and_then(|t| t.aspects.iter().find(|x| x.name == m.aspect_name))
                .and_then(|x| {
                    model
                        .type_model
                        .aspect_types
                        .iter()
                        .find(|at| at.id == x.aspect_type_id)
                })
                .and_then(|at| at.variables.iter().find(|v| v.name == m.variable_name))
                .map_or_else(|| "STRING".to_owned(), |v| v.data_type.clone());
            Some((
                m.data_point_id.clone(),
                Target {
                    asset_id: asset.asset_id.clone().unwrap_or_default(),
                    aspect: m.aspect_name.clone(),
                    variable: m.variable_name.clone(),
                    data_type,
                },
            ))
        })
        .collect();
    let agent = state.agent(tenant, &client);
    for a in assets {
        match agent.assets.iter_mut().find(|x| x.asset_id == a.asset_id) {
            Some(x) => *x = a,
            None => agent.assets.push(a),
        }
    }
    for (dp, t) in targets {
        let list = agent.mappings.entry(dp).or_default();
        if !list.contains(&t) {
            list.push(t);
        }
    }
    state.v4_models.insert(client, model);
    Ok(n)
}

fn upsert<T>(list: &mut Vec<T>, item: T, key: impl Fn(&T) -> &Option<String>) {
    match list.iter_mut().find(|x| key(x) == key(&item)) {
        Some(x) => *x = item,
        None => list.push(item),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::jwt::Signer;
    use crate::protocol::model::JobReply;
    use crate::protocol::v4::{DownloadReply, plan_sync};

    fn state() -> CloudState {
        CloudState::new(Signer::random(), std::time::Duration::from_secs(3600))
    }

    fn topics() -> Topics {
        Topics::new("tenantid", "tenantid_a").unwrap()
    }

    fn local() -> V4Model {
        decode(
            "m",
            include_bytes!("../../tests/vectors/v4_local_model.json"),
        )
        .unwrap()
    }

    fn last_status(out: &[Message]) -> JobReply {
        decode("p", &out.last().unwrap().payload).unwrap()
    }

    #[test]
    fn download_serves_the_model_inline_or_by_url() {
        let mut s = state();
        let out = on_download(&mut s, &topics(), br#"{"id":"r1"}"#);
        assert_eq!(out[0].topic, "tc/tenantid/tenantid_a/i/amo_v4/m");
        let r: DownloadReply = decode("a", &out[0].payload).unwrap();
        assert_eq!(r.request_id.as_deref(), Some("r1"));
        assert!(matches!(r.data.content, Content::Inline(_)));
        s.https_base = Some("https://localhost:1".into());
        let out = on_download(&mut s, &topics(), br#"{"id":"r2"}"#);
        let r: DownloadReply = decode("a", &out[0].payload).unwrap();
        let Content::Url(u) = r.data.content else {
            panic!("url")
        };
        let ticket = u.rsplit('/').next().unwrap();
        assert!(u.starts_with("https://localhost:1/mindconnect/amo_v4/models/"));
        let m: V4Model = decode("m", &download(&s, ticket).unwrap()).unwrap();
        assert_eq!(m.extra["namespace"], "tenantid");
        assert!(on_download(&mut s, &topics(), b"{}").is_empty());
    }

    #[test]
    fn instantiation_applies_and_maps() {
        let mut s = state();
        let plan = plan_sync(&local(), &V4Model::default(), &mut || {
            uuid::Uuid::new_v4().simple().to_string()
        });
        let req = Request {
            id: "r".into(),
            data: plan.payload.unwrap(),
        };
        let out = on_instantiate(&mut s, &topics(), &encode(&req));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].topic, "tc/tenantid/tenantid_a/i/amo_v4/mip");
        assert_eq!(last_status(&out).data.status, Status::Success);
        let a = s.agents.get("tenantid_a").unwrap();
        assert_eq!(a.mappings.len(), 2);
        assert_eq!(a.assets.len(), 1);
        let m = cloud_model(&s, "tenantid", "tenantid_a");
        assert!(m.instance_model.assets[0].asset_id.is_some());
        assert!(m.mapping_model.mappings[0].asset_id.is_some());
    }

    #[test]
    fn malformed_instantiation_fails_naming_the_field() {
        let mut s = state();
        let req = Request {
            id: "r".into(),
            data: local(),
        };
        let out = on_instantiate(&mut s, &topics(), &encode(&req));
        let r = last_status(&out);
        assert_eq!(r.data.status, Status::Failed);
        assert_eq!(
            r.data.errors[0].code.as_deref(),
            Some("mdsp.core.generic.invalidRequest")
        );
        assert!(
            r.data.errors[0]
                .message
                .starts_with("typeModel.aspectTypes[0].referenceId: is missing"),
            "{:?}",
            r.data.errors
        );
        let out = on_instantiate(&mut s, &topics(), br#"{"id":"r","data":{"typeModel":1}}"#);
        let r = last_status(&out);
        assert!(
            r.data.errors[0]
                .message
                .contains("data.typeModel: invalid type"),
            "{:?}",
            r.data.errors
        );
        assert!(on_instantiate(&mut s, &topics(), b"not json").is_empty());
        assert_eq!(s.report.get("v4_instantiations_failed"), 2);
    }
}
