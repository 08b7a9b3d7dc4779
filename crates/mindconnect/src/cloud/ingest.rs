//! The platform side's data handlers: timeseries recorded only for mapped data points (values
//! checked against their variable's type, unmapped ones reported), events checked against their
//! registered type, files decoded from base64, agent tokens issued as signed JWTs on
//! `i/agm_v3/tr`, commands seen on `i/cmd_v3/c` and their statuses on `o/cmd_v3/u`. Pure.

use cloudkit::Message;

use crate::protocol::command::{CommandMessage, CommandStatusMessage, ExecStatus};
use crate::protocol::envelope::decode;
use crate::protocol::event::{
    AGENT_BASE_EVENT, EventsMessage, SENSOR_INTERRUPT_EVENT, sensor_interrupt_event_type,
    severity_ok,
};
use crate::protocol::file::FileMessage;
use crate::protocol::timeseries::TimeseriesMessage;
use crate::protocol::timestamp;
use crate::protocol::token::{TokenData, TokenRequest};
use crate::protocol::topic::{Channel, Topics};
use crate::protocol::validate::value_fits;

use super::jwt::{AGENT_SCOPE, Claims};
use super::state::{CloudState, KEEP_ITEMS, Recorded, StoredFile, answer, too_large};

fn bad(state: &mut CloudState, topics: &Topics, what: &str, e: &dyn std::fmt::Display) {
    state.count("bad_payloads");
    state.note(format!(
        "`{}` sent an unusable {what}: {e}",
        topics.client_id()
    ));
}

fn keep<T>(v: &mut Vec<T>, item: T) {
    v.push(item);
    if v.len() > KEEP_ITEMS {
        v.remove(0);
    }
}

/// `o/mc_v3/ts`.
pub fn on_timeseries(state: &mut CloudState, topics: &Topics, payload: &[u8]) -> Vec<Message> {
    let msg: TimeseriesMessage = match decode("timeseries", payload) {
        Ok(m) => m,
        Err(e) => {
            bad(state, topics, "timeseries", &e);
            return Vec::new();
        }
    };
    state.count("timeseries_messages");
    let client = topics.client_id();
    for s in &msg.timeseries {
        if let Err(e) = timestamp::parse(&s.timestamp) {
            state.report.add("invalid_values", s.values.len() as u64);
            state.note(format!(
                "`{client}`: {e}; its {} value(s) are dropped",
                s.values.len()
            ));
            continue;
        }
        for v in &s.values {
            let targets = state
                .agents
                .get(client)
                .and_then(|a| a.mappings.get(&v.data_point_id))
                .cloned();
            let Some(targets) = targets else {
                state.unmapped(client, &v.data_point_id);
                continue;
            };
            let mut stored = false;
            for t in &targets {
                if value_fits(&t.data_type, &v.value) {
                    if let Some(a) = state.agents.get_mut(client) {
                        a.values.insert(
                            format!("{}/{}/{}", t.asset_id, t.aspect, t.variable),
                            Recorded {
                                timestamp: s.timestamp.clone(),
                                value: v.value.clone(),
                            },
                        );
                    }
                    stored = true;
                } else {
                    state.note(format!(
                        "`{client}`: value {} of data point `{}` is not a {} ({}.{})",
                        v.value.as_text(),
                        v.data_point_id,
                        t.data_type,
                        t.aspect,
                        t.variable
                    ));
                }
            }
            state.count(if stored {
                "timeseries_values"
            } else {
                "invalid_values"
            });
        }
    }
    Vec::new()
}

/// `o/mc_v3/e`.
pub fn on_event(state: &mut CloudState, topics: &Topics, payload: &[u8]) -> Vec<Message> {
    let msg: EventsMessage = match decode("event message", payload) {
        Ok(m) => m,
        Err(e) => {
            bad(state, topics, "event message", &e);
            return Vec::new();
        }
    };
    let client = topics.client_id();
    for ev in msg.events {
        let mut problems = Vec::new();
        if let Err(e) = timestamp::parse(&ev.timestamp) {
            problems.push(e.to_string());
        }
        if !severity_ok(&ev.severity) {
            problems.push(format!(
                "severity {} is not 20, 30 or 40",
                ev.severity.as_text()
            ));
        }
        match ev.event_type.as_str() {
            SENSOR_INTERRUPT_EVENT => problems.extend(sensor_interrupt_event_type().check_details(&ev.details)),
            AGENT_BASE_EVENT => {}
            other => problems.push(format!("event type `{other}` is not registered (known here: {AGENT_BASE_EVENT}, {SENSOR_INTERRUPT_EVENT})")),
        }
        if problems.is_empty() {
            state.count("events");
            let v = serde_json::to_value(&ev).unwrap_or_default();
            if let Some(a) = state.agents.get_mut(client) {
                keep(&mut a.events, v);
            }
        } else {
            state.count("events_rejected");
            state.note(format!(
                "`{client}`: event `{}` dropped: {}",
                ev.id,
                problems.join("; ")
            ));
        }
    }
    Vec::new()
}

/// `o/mc_v3/f`.
pub fn on_file(state: &mut CloudState, topics: &Topics, payload: &[u8]) -> Vec<Message> {
    let msg: FileMessage = match decode("file message", payload) {
        Ok(m) => m,
        Err(e) => {
            bad(state, topics, "file message", &e);
            return Vec::new();
        }
    };
    match msg.content() {
        Ok(content) => {
            state.count("files");
            state.report.add("file_bytes", content.len() as u64);
            if let Some(a) = state.agents.get_mut(topics.client_id()) {
                keep(
                    &mut a.files,
                    StoredFile {
                        name: msg.file.name,
                        content,
                    },
                );
            }
        }
        Err(e) => {
            state.count("files_rejected");
            state.note(format!("`{}`: {e}", topics.client_id()));
        }
    }
    Vec::new()
}

/// `o/agm_v3/t` → `i/agm_v3/tr`.
pub fn on_token(
    state: &mut CloudState,
    topics: &Topics,
    payload: &[u8],
    now: time::OffsetDateTime,
) -> Vec<Message> {
    if too_large(payload) {
        state.count("bad_payloads");
        return Vec::new();
    }
    let req: TokenRequest = match decode("token request", payload) {
        Ok(r) => r,
        Err(e) => {
            bad(state, topics, "token request", &e);
            return Vec::new();
        }
    };
    let iat = now.unix_timestamp();
    let lifetime = state.token_lifetime.as_secs();
    let jti = state.next_id();
    let claims = Claims {
        iss: "https://iot-sim.localhost/mindconnect/oauth/token".into(),
        sub: topics.client_id().to_owned(),
        aud: vec!["gateway".into(), "southgate".into()],
        iat,
        nbf: iat,
        exp: iat.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX)),
        jti: jti.clone(),
        ten: topics.tenant().to_owned(),
        client_id: topics.client_id().to_owned(),
        scope: vec![AGENT_SCOPE.into()],
    };
    let data = TokenData {
        access_token: state.signer.sign(&claims),
        token_type: Some("Bearer".into()),
        expires_in: Some(lifetime),
        scope: vec![AGENT_SCOPE.into()],
        jti: Some(jti),
        timestamp: Some(iat),
    };
    state.count("tokens_issued");
    vec![answer(state, topics, Channel::TokenResponse, &req.id, data)]
}

/// `i/cmd_v3/c` as delivered by an operator (or [`super::MindConnectCloud::command`]).
pub fn on_delivery(state: &mut CloudState, topics: &Topics, payload: &[u8]) -> Vec<Message> {
    match decode::<CommandMessage>("command", payload) {
        Ok(c) => {
            state.count("commands_sent");
            state.jobs.insert(
                c.id,
                super::state::Job {
                    client_id: topics.client_id().to_owned(),
                    job_id: c.data.job_id,
                    statuses: Vec::new(),
                },
            );
        }
        Err(e) => bad(state, topics, "command", &e),
    }
    Vec::new()
}

/// `o/cmd_v3/u`.
pub fn on_command_status(state: &mut CloudState, topics: &Topics, payload: &[u8]) -> Vec<Message> {
    let msg: CommandStatusMessage = match decode("command status", payload) {
        Ok(m) => m,
        Err(e) => {
            bad(state, topics, "command status", &e);
            return Vec::new();
        }
    };
    let status: String = msg.data.status.clone().into();
    let matches = state
        .jobs
        .get(&msg.request_id)
        .is_some_and(|j| j.client_id == topics.client_id() && j.job_id == msg.data.job_id);
    if !matches {
        state.count("command_status_unknown");
        state.note(format!(
            "`{}` reported {status} for request `{}` / job `{}`, which was not delivered to it",
            topics.client_id(),
            msg.request_id,
            msg.data.job_id
        ));
        return Vec::new();
    }
    if let Some(j) = state.jobs.get_mut(&msg.request_id) {
        j.statuses.push(status.clone());
    }
    state.count(match msg.data.status {
        ExecStatus::Executing => "commands_executing",
        ExecStatus::Executed => "commands_executed",
        ExecStatus::Failed => "commands_failed",
        ExecStatus::Other(_) => "commands_other_status",
    });
    Vec::new()
}

/// A message on a topic outside `tc/`: kept when it is a registered custom topic and JSON,
/// else counted and noted (the platform drops it).
pub fn on_custom(state: &mut CloudState, topic: &str, payload: &[u8]) {
    let Some(id) = state
        .custom
        .iter()
        .find(|(_, c)| c.registration.topic == topic)
        .map(|(id, _)| id.clone())
    else {
        state.count("custom_unregistered");
        state.note(format!(
            "a message on `{topic}` dropped: no custom topic registration for it"
        ));
        return;
    };
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(v) => {
            state.count("custom_messages");
            if let Some(c) = state.custom.get_mut(&id) {
                keep(&mut c.documents, v);
            }
        }
        Err(e) => {
            state.count("custom_rejected");
            state.note(format!(
                "a message on custom topic `{topic}` dropped: not JSON ({e})"
            ));
        }
    }
}
