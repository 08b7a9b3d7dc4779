//! `mc-model`'s work: fill `asset_model.json` or `instance.json`, check it the way the Asset
//! Modeler will, publish it to `o/amo_v3/m` or `o/amo_v3/i`, and follow the answers on
//! `i/amo_v3/ms` / `i/amo_v3/ip` (correlated by request id) through `InProgress` to `Success`
//! (an instantiation then writes `instance.conf`) or `Failed` with the platform's errors.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use transport::{Message, Outbox, Qos};

use crate::config::Settings;
use crate::protocol::envelope::{decode, encode};
use crate::protocol::model::{InstantiationRequest, JobReply, JobStep, ModelRequest, step};
use crate::protocol::template::{Kind, Placeholder, Template, TemplateError, Values};
use crate::protocol::topic::Channel;
use crate::protocol::validate::check_model;

use super::{AgentError, Event, Reporter, connect, mark_instance_created, subscribe};

/// A filled request, ready to show or send.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// `model` or `instantiation`.
    pub what: &'static str,
    /// The template file.
    pub file: String,
    /// Request id (`<uuid>`).
    pub request_id: String,
    /// Where it goes.
    pub channel: Channel,
    /// The filled payload.
    pub payload: Value,
    /// Problems the platform would refuse it for.
    pub issues: Vec<String>,
    /// Things worth knowing that are not errors.
    pub warnings: Vec<String>,
}

impl Prepared {
    /// The event that shows it.
    pub fn event(&self, settings: &Settings) -> Event {
        Event::Prepared {
            what: self.what.into(),
            topic: settings.topics.topic(self.channel),
            payload: self.payload.clone(),
            issues: self.issues.clone(),
        }
    }
}

fn base(settings: &Settings, id: uuid::Uuid) -> Values {
    let mut v = Values::new()
        .with_uuid(id)
        .with(Placeholder::TenantId, settings.topics.tenant());
    if let Some(m) = &settings.model_name {
        v = v.with(Placeholder::ModelName, m.clone());
    }
    v
}

fn hint_model_name(e: TemplateError) -> AgentError {
    match e {
        TemplateError::Missing { file, name, .. } if name == "model_name" => AgentError::Input(
            format!("{file}: `<model_name>` needs MODEL_NAME in the config file or --model-name"),
        ),
        other => AgentError::Template(other.into()),
    }
}

/// Fills the model template.
pub fn prepare_model(settings: &Settings, template: &Template) -> Result<Prepared, AgentError> {
    let id = uuid::Uuid::new_v4();
    let (payload, req) = template
        .fill_as::<ModelRequest>(&base(settings, id), "asset model request")
        .map_err(hint_model_name)?;
    let issues = check_model(&req.data, settings.topics.tenant(), &BTreeSet::new())
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut warnings = Vec::new();
    if let Some(m) = &settings.model_name
        && m != &req.data.external_id
    {
        warnings.push(format!("the model's externalId is `{}` but MODEL_NAME is `{m}`; instance.json will instantiate `{m}`", req.data.external_id));
    }
    Ok(Prepared {
        what: "model",
        file: template.file().to_owned(),
        request_id: req.id,
        channel: Channel::Model,
        payload,
        issues,
        warnings,
    })
}

/// Fills the instance template (needs `MODEL_NAME`).
pub fn prepare_instance(settings: &Settings, template: &Template) -> Result<Prepared, AgentError> {
    let id = uuid::Uuid::new_v4();
    if template.placeholders().contains(&Placeholder::ModelName) {
        settings.require_model_name()?;
    }
    let (payload, req) = template
        .fill_as::<InstantiationRequest>(&base(settings, id), "instantiation request")
        .map_err(hint_model_name)?;
    Ok(Prepared {
        what: "instantiation",
        file: template.file().to_owned(),
        request_id: req.id,
        channel: Channel::Instantiate,
        payload,
        issues: Vec::new(),
        warnings: Vec::new(),
    })
}

/// Fills the template of `kind` (model or instance).
pub fn prepare(
    settings: &Settings,
    kind: Kind,
    template: &Template,
) -> Result<Prepared, AgentError> {
    match kind {
        Kind::Instance => prepare_instance(settings, template),
        _ => prepare_model(settings, template),
    }
}

/// How to send.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// How long to wait for each answer (an `InProgress` restarts the wait).
    pub timeout: Duration,
    /// QoS of the request.
    pub qos: Qos,
    /// Where to record a successful instantiation.
    pub instance_conf: Option<PathBuf>,
}

/// Publishes `p` and waits for the platform's verdict.
pub async fn send(
    settings: &Settings,
    p: &Prepared,
    opts: &SendOptions,
    report: &Reporter,
) -> Result<(), AgentError> {
    let (session, mut incoming) = connect(settings, false, Outbox::memory(16), report).await?;
    let result = async {
        subscribe(&session, settings, &Channel::MODEL_SUBSCRIPTIONS, report).await?;
        let answer_channel = if p.channel == Channel::Instantiate { Channel::InstanceProgress } else { Channel::ModelStatus };
        let topic = settings.topics.topic(p.channel);
        let msg = Message::new(topic.clone(), encode(&p.payload)).with_qos(opts.qos);
        super::publish_confirmed(&session, msg, p.what, opts.timeout, report).await?;
        report(&Event::Requested { what: p.what.into(), request_id: p.request_id.clone(), topic });
        let mut deadline = Instant::now() + opts.timeout;
        loop {
            let m = tokio::select! {
                m = incoming.recv() => m.ok_or_else(|| AgentError::Ended(session.status().ended.unwrap_or_else(|| "closed".into())))?,
                () = tokio::time::sleep_until(deadline) => {
                    return Err(AgentError::NoAnswer { what: p.what, topic: settings.topics.topic(answer_channel), waited: opts.timeout });
                }
            };
            if settings.topics.route(&m.topic) != Some(answer_channel) {
                continue;
            }
            let reply: JobReply = match decode("Asset Modeler answer", &m.payload) {
                Ok(r) => r,
                Err(e) => {
                    report(&Event::Warning { message: format!("{e} (on {})", m.topic) });
                    continue;
                }
            };
            match step(&reply, &p.request_id) {
                JobStep::NotOurs => {}
                JobStep::Progress(message) => {
                    report(&Event::Progress { what: p.what.into(), message });
                    deadline = Instant::now() + opts.timeout;
                }
                JobStep::Succeeded => {
                    report(&Event::Succeeded { what: p.what.into(), request_id: p.request_id.clone() });
                    if let (Channel::Instantiate, Some(path)) = (p.channel, &opts.instance_conf) {
                        mark_instance_created(path)?;
                        report(&Event::InstanceCreated { path: path.display().to_string() });
                    }
                    return Ok(());
                }
                JobStep::Failed(errors, message) => return Err(AgentError::Rejected { what: p.what, errors, message }),
            }
        }
    }
    .await;
    session.close(Duration::from_secs(2)).await;
    result
}
