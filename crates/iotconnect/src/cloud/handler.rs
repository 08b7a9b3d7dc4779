//! The platform's state and its pure handlers: the D2C recorder (envelope checks against the
//! template: company, template guid, device and children, values re-validated, acks matched to
//! the commands sent), twin (reported patches answered with 204, full-twin requests with 200),
//! operator requests turned into C2D messages, and the `sync` answer built from the template.
//! Handlers take what arrived and return what to publish; no I/O.

use std::collections::BTreeMap;
use std::sync::Arc;

use cloudkit::{Message, Report};
use serde_json::{Map, Value, json};

use super::admin::{self, AckSeen, Request, Sent};
use super::template::{DeviceEntry, TemplateFile};
use super::v21;
use crate::protocol::sas;
use crate::protocol::v1::ack::AckKind;
use crate::protocol::v1::c2d::{C2d, DeviceCommand, OtaCommand, OtaUrl, OtaVersion, ota_targets};
use crate::protocol::v1::envelope::{D2c, MessageType, Telemetry};
use crate::protocol::v1::sync::{DeviceRef, ProtocolInfo, SdkConfig, SyncData, SyncRequest};
use crate::protocol::v1::topics;
use crate::protocol::v2::Platform;
use crate::protocol::validate::judge;

const KEEP: usize = 50;

/// Where devices connect, set by whoever started the broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// URL of the client-certificate listener (auth 2, 3).
    pub mtls: Option<String>,
    /// URL of the password listener (auth 1, 4, 5).
    pub password: Option<String>,
}

impl Endpoints {
    pub(crate) fn host_port(&self, auth: i64) -> (String, u16) {
        let first = if matches!(auth, 1 | 4 | 5) {
            [&self.password, &self.mtls]
        } else {
            [&self.mtls, &self.password]
        };
        first
            .into_iter()
            .flatten()
            .find_map(|u| {
                let u = url::Url::parse(u).ok()?;
                Some((u.host_str()?.to_owned(), u.port().unwrap_or(8883)))
            })
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Default)]
struct Twin {
    desired: Map<String, Value>,
    desired_version: u64,
    reported: Map<String, Value>,
    reported_version: u64,
}

#[derive(Debug, Clone)]
struct Pending {
    kind: AckKind,
}

/// What the platform knows.
#[derive(Debug)]
pub struct CloudState {
    template: Arc<TemplateFile>,
    report: Report,
    pending: BTreeMap<String, Pending>,
    twins: BTreeMap<String, Twin>,
    /// Syncs still to answer with `rc` 2 (auto-registration pending), per device.
    registering: BTreeMap<String, u32>,
    /// Devices that identified with message 2.1, and on which platform.
    v21: BTreeMap<String, Platform>,
    /// Gateways whose children changed with 221/222: their children now.
    children: BTreeMap<String, Vec<DeviceRef>>,
}

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl CloudState {
    /// A fresh platform for `template`.
    pub fn new(template: Arc<TemplateFile>) -> Self {
        CloudState {
            template,
            report: Report::default(),
            pending: BTreeMap::new(),
            twins: BTreeMap::new(),
            registering: BTreeMap::new(),
            v21: BTreeMap::new(),
            children: BTreeMap::new(),
        }
    }

    /// A device's devices now: itself first, then its children (the template's, as 221 and
    /// 222 changed them).
    pub fn refs(&self, dev: &DeviceEntry) -> Vec<DeviceRef> {
        let mut refs = TemplateFile::device_refs(dev);
        if let Some(children) = self.children.get(&dev.unique_id) {
            refs.truncate(1);
            refs.extend(children.iter().cloned());
        }
        refs
    }

    /// The connecting device `id` is, or is a child of now.
    fn owner(&self, id: &str) -> Option<DeviceEntry> {
        self.template
            .device(id)
            .map(std::borrow::Cow::into_owned)
            .or_else(|| {
                self.template
                    .devices
                    .iter()
                    .find(|d| self.refs(d).iter().any(|r| r.id == id))
                    .cloned()
            })
    }

    /// Keeps what a successful 221 (create) or 222 (delete) changed.
    fn change_children(&mut self, dev: &DeviceEntry, mt: i64, request: &Value) {
        let d = request.get("d").cloned().unwrap_or(Value::Null);
        let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let mut kids: Vec<DeviceRef> = self.refs(dev).into_iter().skip(1).collect();
        if mt == 221 {
            kids.push(DeviceRef {
                id: s("id"),
                tg: s("tg"),
            });
        } else {
            kids.retain(|r| r.id != s("id"));
        }
        self.report.note(
            format!(
                "children of {}: {:?}",
                dev.unique_id,
                kids.iter().map(|k| k.id.as_str()).collect::<Vec<_>>()
            ),
            KEEP,
        );
        self.children.insert(dev.unique_id.clone(), kids);
    }

    /// What it has seen.
    pub fn report(&self) -> Report {
        self.report.clone()
    }

    fn reject(&mut self, why: &str) -> Vec<Message> {
        self.report.add("rejected", 1);
        self.report.note(format!("rejected: {why}"), KEEP);
        Vec::new()
    }

    /// Handles one message from the broker.
    pub fn on_message(&mut self, topic: &str, payload: &[u8]) -> Vec<Message> {
        if let Some((pf, id, kind)) = v21::parse_d2c(topic) {
            return self.on_d2c_21(pf, &id, kind, payload);
        }
        if let Some(id) = topic
            .strip_prefix("$aws/things/")
            .and_then(|r| r.split('/').next())
        {
            return self.on_shadow(id, topic, payload);
        }
        if let Some(id) = topics::device_of_d2c(topic) {
            return self.on_d2c(id, payload);
        }
        if topic.starts_with(topics::TWIN_REPORTED_PREFIX)
            || topic.starts_with(topics::TWIN_GET_PREFIX)
        {
            return self.on_twin(topic, payload);
        }
        if let Some(kind) = topic.strip_prefix(admin::REQUEST_PREFIX) {
            return match serde_json::from_slice::<Request>(payload) {
                Ok(req) if req.kind() == kind => self.on_request(&req),
                Ok(req) => error(&format!("request kind `{}` sent on `{topic}`", req.kind())),
                Err(e) => error(&format!("request on `{topic}` is not valid: {e}")),
            };
        }
        Vec::new()
    }

    fn on_d2c(&mut self, id: &str, payload: &[u8]) -> Vec<Message> {
        let Some(dev) = self.template.device(id).map(std::borrow::Cow::into_owned) else {
            return self.reject(&format!("D2C from unknown device `{id}`"));
        };
        let msg = match D2c::decode(payload) {
            Ok(m) => m,
            Err(e) => return self.reject(&format!("{id}: {e}")),
        };
        if msg.offline() {
            self.report.add("offline_messages", 1);
        }
        match msg {
            D2c::Telemetry(t) => self.on_telemetry(&dev, &t),
            D2c::Ack(a) => {
                if a.cp_id != self.template.cp_id || a.unique_id != dev.unique_id {
                    return self.reject(&format!(
                        "{id}: ack with cpId `{}` / uniqueId `{}`",
                        a.cp_id, a.unique_id
                    ));
                }
                let kind = match a.mt {
                    MessageType::CommandAck => AckKind::Command,
                    _ => AckKind::Ota,
                };
                let name = match (self.pending.get(&a.d.ack_id), a.d.st) {
                    (None, _) => "acks_unknown",
                    (Some(p), _) if p.kind != kind => "acks_wrong_type",
                    (Some(_), 4) => "acks_failed",
                    (Some(_), 6) if kind == AckKind::Command => "acks_command_ok",
                    (Some(_), 7) if kind == AckKind::Ota => "acks_ota_ok",
                    (Some(_), _) => "acks_unexpected_status",
                };
                self.report.add(name, 1);
                self.report.note(
                    format!("{name}: {} st {} {}", a.d.ack_id, a.d.st, a.d.child_id),
                    KEEP,
                );
                let seen = AckSeen {
                    ack_id: a.d.ack_id,
                    unique_id: a.unique_id,
                    mt: a.mt.code(),
                    st: a.d.st,
                    msg: a.d.msg,
                    child_id: a.d.child_id,
                };
                vec![Message::new(
                    admin::EVENT_ACK,
                    serde_json::to_vec(&seen).unwrap_or_default(),
                )]
            }
        }
    }

    /// The 2.1 identity answer (the whole HTTP body) for `unique_id` on `pf`.
    pub fn identity(
        &mut self,
        pf: Platform,
        unique_id: &str,
        endpoints: &Endpoints,
        now: &str,
    ) -> Value {
        let found = self.template.device(unique_id).and_then(|d| {
            Some((
                d.clone().into_owned(),
                self.template.template_of(&d)?.clone(),
            ))
        });
        let Some((dev, tpl)) = found else {
            self.report.add("identity_refused", 1);
            return json!({"d": {"ec": 1, "ct": 200}, "status": 200,
                           "message": "Device not found"});
        };
        self.report.add("identity", 1);
        self.report.add(&format!("identity_{}", pf.code()), 1);
        self.v21.insert(dev.unique_id.clone(), pf);
        json!({"d": v21::identity(pf, &dev, &tpl, endpoints, now), "status": 200,
               "message": "Device info loaded successfully."})
    }

    fn on_d2c_21(&mut self, pf: Platform, id: &str, kind: &str, payload: &[u8]) -> Vec<Message> {
        let found = self.template.device(id).and_then(|d| {
            Some((
                d.clone().into_owned(),
                self.template.template_of(&d)?.clone(),
            ))
        });
        let Some((dev, tpl)) = found else {
            return self.reject(&format!("2.1 D2C from unknown device `{id}`"));
        };
        if self.v21.get(id) != Some(&pf) {
            return self.reject(&format!(
                "{id}: 2.1 message on the {} topics without an identity request for that platform",
                pf.code()
            ));
        }
        let v: Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(e) => return self.reject(&format!("{id}: {kind} message is not JSON: {e}")),
        };
        self.report.add(&format!("v21_{kind}"), 1);
        match kind {
            "di" => {
                let mt = v.get("mt").and_then(Value::as_i64).unwrap_or(-1);
                self.report.add(&format!("identity_request_{mt}"), 1);
                let refs = self.refs(&dev);
                match v21::reply(mt, &v, &dev, &tpl, &refs) {
                    Some(r) => {
                        if matches!(mt, 221 | 222) && r.pointer("/d/ec") == Some(&json!(0)) {
                            self.change_children(&dev, mt, &v);
                        }
                        vec![Message::new(v21::c2d_topic(pf, id), r.to_string())]
                    }
                    None => self.reject(&format!("{id}: identity request mt {mt} unknown")),
                }
            }
            "hb" => {
                self.report.add("heartbeats", 1);
                Vec::new()
            }
            "ack" => self.on_ack_21(&dev, &v),
            "dl" => Vec::new(),
            _ => {
                let mt = match kind {
                    "flt" => MessageType::Faulty,
                    "erpt" => MessageType::EdgeAggregate,
                    "erm" => MessageType::RuleMatched,
                    _ => MessageType::Reporting,
                };
                if kind == "od" {
                    self.report.add("offline_messages", 1);
                }
                match telemetry_21(&self.template.cp_id, &tpl.dtg, &dev, mt, &v) {
                    Ok(t) => self.on_telemetry(&dev, &t),
                    Err(e) => self.reject(&format!("{id}: {kind}: {e}")),
                }
            }
        }
    }

    fn on_ack_21(&mut self, dev: &DeviceEntry, v: &Value) -> Vec<Message> {
        let d = v.get("d").cloned().unwrap_or(Value::Null);
        let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let (ack_id, ty, st) = (
            s("ack"),
            d.get("type").and_then(Value::as_i64).unwrap_or(-1),
            d.get("st").and_then(Value::as_i64).unwrap_or(-1),
        );
        if ack_id.is_empty() || !(0..=2).contains(&ty) {
            return self.reject(&format!(
                "{}: 2.1 ack without `ack` or `type`: {v}",
                dev.unique_id
            ));
        }
        let kind = if ty == 1 {
            AckKind::Ota
        } else {
            AckKind::Command
        };
        let name = match (self.pending.get(&ack_id), ty, st) {
            (None, ..) => "acks_unknown",
            (Some(p), ..) if p.kind != kind => "acks_wrong_type",
            (Some(_), 0 | 2, 2) => "acks_command_ok",
            (Some(_), 0 | 2, 1) | (Some(_), 1, 1 | 4) => "acks_failed",
            (Some(_), 1, 2) => "acks_ota_downloading",
            (Some(_), 1, 3) => "acks_ota_ok",
            _ => "acks_unexpected_status",
        };
        self.report.add(name, 1);
        self.report.note(
            format!("{name}: {ack_id} type {ty} st {st} {}", s("cid")),
            KEEP,
        );
        let seen = AckSeen {
            ack_id,
            unique_id: dev.unique_id.clone(),
            mt: if ty == 1 { 11 } else { 5 },
            st: u8::try_from(st).unwrap_or(u8::MAX),
            msg: s("msg"),
            child_id: s("cid"),
        };
        vec![Message::new(
            admin::EVENT_ACK,
            serde_json::to_vec(&seen).unwrap_or_default(),
        )]
    }

    fn on_shadow(&mut self, id: &str, topic: &str, payload: &[u8]) -> Vec<Message> {
        let prefix = v21::aws_shadow(id);
        let Some(op) = topic.strip_prefix(&prefix) else {
            return Vec::new();
        };
        let twin = self.twins.entry(id.to_owned()).or_default();
        match op {
            "report" => {
                let doc: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
                let Some(Value::Object(r)) = doc.pointer("/state/reported") else {
                    return self.reject(&format!(
                        "{id}: shadow report without `state.reported`: {doc}"
                    ));
                };
                twin.reported.extend(r.clone());
                twin.reported_version += 1;
                self.report.add("twin_reported", 1);
                let r = r.clone();
                self.check_reported(id, &r);
                Vec::new()
            }
            "get" => {
                self.report.add("twin_get", 1);
                let body = json!({"state": {"desired": twin.desired, "reported": twin.reported}});
                vec![Message::new(format!("{prefix}get/all"), body.to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// Checks a reported patch: each key must be a setting of the device's template with a
    /// value its type and `dv` accept (`twin_reported_invalid` otherwise); a value equal to the
    /// desired one counts as `twin_reported_in_sync`. Templates without settings take anything.
    fn check_reported(&mut self, id: &str, reported: &Map<String, Value>) {
        let defs = self
            .template
            .device(id)
            .and_then(|d| self.template.template_of(&d).cloned())
            .and_then(|t| crate::protocol::validate::settings(&t.settings));
        let desired = self
            .twins
            .get(id)
            .map(|t| t.desired.clone())
            .unwrap_or_default();
        for (k, v) in reported {
            if v.is_null() {
                continue;
            }
            if let Some(defs) = defs.as_deref().filter(|d| !d.is_empty())
                && let Err(why) = crate::protocol::validate::check_setting(defs, k, v)
            {
                self.report.add("twin_reported_invalid", 1);
                self.report.note(format!("twin {id}: {why}"), KEEP);
                continue;
            }
            if desired.get(k) == Some(v) {
                self.report.add("twin_reported_in_sync", 1);
            }
        }
    }

    fn on_telemetry(&mut self, dev: &DeviceEntry, t: &Telemetry) -> Vec<Message> {
        let Some(tpl) = self.template.template_of(dev).cloned() else {
            return self.reject(&format!("{}: no template", dev.unique_id));
        };
        if t.cp_id != self.template.cp_id {
            return self.reject(&format!(
                "{}: cpId `{}` is not `{}`",
                dev.unique_id, t.cp_id, self.template.cp_id
            ));
        }
        if t.dtg != tpl.dtg {
            return self.reject(&format!(
                "{}: dtg `{}` is not the template's `{}`",
                dev.unique_id, t.dtg, tpl.dtg
            ));
        }
        let refs = self.refs(dev);
        for e in &t.d {
            let Some(r) = refs.iter().find(|r| r.id == e.id) else {
                self.reject(&format!(
                    "{}: entry for `{}`, which is not this device or its child",
                    dev.unique_id, e.id
                ));
                continue;
            };
            if let Some(tg) = e.tg.as_deref().filter(|t| !t.is_empty() && *t != r.tg) {
                self.reject(&format!(
                    "{}: entry for `{}` tagged `{tg}`, its tag is `{}`",
                    dev.unique_id, e.id, r.tg
                ));
                continue;
            }
            let values = e.d.first().cloned().unwrap_or_default();
            match t.mt {
                // A template without attributes takes values as they come (the device cannot
                // validate them either).
                MessageType::Reporting if tpl.attributes.is_empty() => {
                    let n = leaves(&values);
                    self.report.add("telemetry_values", n);
                    self.report.add(&format!("values:{}", r.id), n);
                }
                MessageType::Reporting => {
                    let j = judge(&tpl.attributes, &r.tg, &values);
                    self.report.add("telemetry_values", j.good_count as u64);
                    self.report
                        .add(&format!("values:{}", r.id), j.good_count as u64);
                    if j.faulty_count > 0 {
                        self.report.add("rpt_invalid", j.faulty_count as u64);
                        self.report.note(
                            format!("{}: reporting carried invalid values {:?}", r.id, j.faulty),
                            KEEP,
                        );
                    }
                }
                MessageType::Faulty => {
                    let n = leaves(&values);
                    self.report.add("faulty_values", n);
                    self.report.add(&format!("faulty:{}", r.id), n);
                }
                MessageType::EdgeAggregate => {
                    if !tpl.edge {
                        self.reject(&format!("{}: edge aggregate from a non-edge device", r.id));
                        continue;
                    }
                    self.report.add("edge_values", leaves(&values));
                    self.report
                        .note(format!("edge {} {}", r.id, Value::Object(values)), KEEP);
                }
                MessageType::RuleMatched => {
                    if !tpl.rules.iter().any(|x| Some(&x.g) == e.rg.as_ref()) {
                        self.reject(&format!(
                            "{}: rule `{}` is not in the template",
                            r.id,
                            e.rg.clone().unwrap_or_default()
                        ));
                        continue;
                    }
                    self.report.add("rule_matches", 1);
                }
                _ => {}
            }
        }
        let name = match t.mt {
            MessageType::Reporting => "telemetry_messages",
            MessageType::Faulty => "faulty_messages",
            MessageType::EdgeAggregate => "edge_messages",
            _ => "rule_messages",
        };
        self.report.add(name, 1);
        Vec::new()
    }

    fn twin_device(&self, rid: &str) -> Option<String> {
        topics::device_of_rid(rid)
            .filter(|d| self.template.device(d).is_some())
            .or_else(|| self.template.devices.first().map(|d| d.unique_id.clone()))
    }

    fn on_twin(&mut self, topic: &str, payload: &[u8]) -> Vec<Message> {
        let rid = topics::query_param(topic, "$rid").unwrap_or_default();
        let Some(id) = self.twin_device(&rid) else {
            return self.reject(&format!("twin request `{topic}` for no known device"));
        };
        let twin = self.twins.entry(id.clone()).or_default();
        let rid = topics::encode(&rid);
        if topic.starts_with(topics::TWIN_GET_PREFIX) {
            self.report.add("twin_get", 1);
            let mut desired = twin.desired.clone();
            desired.insert("$version".into(), Value::from(twin.desired_version));
            let mut reported = twin.reported.clone();
            reported.insert("$version".into(), Value::from(twin.reported_version));
            let body = json!({"desired": desired, "reported": reported});
            return vec![Message::new(
                topics::twin_res(200, &rid, None),
                body.to_string(),
            )];
        }
        let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(payload) else {
            return vec![Message::new(topics::twin_res(400, &rid, None), Vec::new())];
        };
        for (k, v) in patch.clone() {
            if v.is_null() {
                twin.reported.remove(&k);
            } else {
                twin.reported.insert(k, v);
            }
        }
        twin.reported_version += 1;
        let v = twin.reported_version;
        self.report.add("twin_reported", 1);
        self.report.note(
            format!(
                "twin {id} reported {}",
                Value::Object(twin.reported.clone())
            ),
            KEEP,
        );
        self.check_reported(&id, &patch);
        vec![Message::new(
            topics::twin_res(204, &rid, Some(v)),
            Vec::new(),
        )]
    }

    fn on_request(&mut self, req: &Request) -> Vec<Message> {
        let target = req.target().to_owned();
        let Some(owner) = self.owner(&target) else {
            return error(&format!("`{target}` is not a device of the template"));
        };
        let cp_id = self.template.cp_id.clone();
        let command = |text: &str, ack_id: Option<String>| DeviceCommand {
            cp_id: cp_id.clone(),
            guid: guid(),
            unique_id: target.clone(),
            command: text.to_owned(),
            ack: ack_id.is_some(),
            ack_id,
        };
        let (c2d, ack, expect) = match req {
            Request::Command { command: text, .. } => {
                let ack_id = guid();
                (
                    C2d::Command(command(text, Some(ack_id.clone()))),
                    Some((ack_id, AckKind::Command)),
                    1,
                )
            }
            Request::Ota { sw, hw, urls, .. } => {
                let ack_id = guid();
                let ota = OtaCommand {
                    command: command("ota", Some(ack_id.clone())),
                    ver: OtaVersion {
                        sw: sw.clone(),
                        hw: hw.clone(),
                    },
                    urls: urls
                        .iter()
                        .map(|u| OtaUrl {
                            url: u.url.clone(),
                            tag: u.tag.clone(),
                            unique_id: u.unique_id.clone(),
                            file_name: None,
                        })
                        .collect(),
                };
                let n = ota_targets(&ota, &self.refs(&owner), &owner.unique_id).len();
                (C2d::Ota(ota), Some((ack_id, AckKind::Ota)), n)
            }
            Request::Twin { desired, .. } => {
                let twin = self.twins.entry(target.clone()).or_default();
                twin.desired.extend(desired.clone());
                twin.desired_version += 1;
                let version = twin.desired_version;
                self.report.add("twin_desired_sent", 1);
                let sent = Sent {
                    unique_id: target.clone(),
                    cmd_type: "twin".into(),
                    ack_id: None,
                    expect: 0,
                };
                // 2.1 on AWS: the named shadow `setting_info`, an AWS shadow document on the
                // topic the identity answer names `set.sub`; elsewhere IoT Hub's twin patch.
                let push = if self.v21.get(&owner.unique_id) == Some(&Platform::Aws) {
                    Message::new(
                        format!("{}property-shadow", v21::aws_shadow(&owner.unique_id)),
                        json!({"state": {"desired": desired}, "version": version}).to_string(),
                    )
                } else {
                    let mut patch = desired.clone();
                    patch.insert("$version".into(), Value::from(version));
                    Message::new(
                        topics::twin_desired(version, Some(&owner.unique_id)),
                        Value::Object(patch).to_string(),
                    )
                };
                return vec![
                    Message::new(
                        admin::EVENT_SENT,
                        serde_json::to_vec(&sent).unwrap_or_default(),
                    ),
                    push,
                ];
            }
            Request::Message21 { message, .. } => {
                let Some(pf) = self.v21.get(&owner.unique_id).copied() else {
                    return error(&format!(
                        "`{}` has not identified with message 2.1",
                        owner.unique_id
                    ));
                };
                self.report.add("commands_sent", 1);
                let sent = Sent {
                    unique_id: target.clone(),
                    cmd_type: message.get("ct").map(Value::to_string).unwrap_or_default(),
                    ack_id: None,
                    expect: 0,
                };
                return vec![
                    Message::new(
                        admin::EVENT_SENT,
                        serde_json::to_vec(&sent).unwrap_or_default(),
                    ),
                    Message::new(v21::c2d_topic(pf, &owner.unique_id), message.to_string()),
                ];
            }
            Request::Stop { .. } => (C2d::Stop, None, 0),
            Request::Df { df, .. } => (C2d::DataFrequency { df: *df }, None, 0),
            Request::Resync { cmd_type, .. } => match C2d::parse(
                json!({"cmdType": cmd_type, "data": {}})
                    .to_string()
                    .as_bytes(),
            ) {
                Ok(c @ C2d::Resync { .. }) => (c, None, 0),
                _ => {
                    return error(&format!(
                        "`{cmd_type}` is not a re-sync cmdType (0x10-0x13, 0x15, sync, resetpwd)"
                    ));
                }
            },
        };
        if let Some((id, kind)) = &ack {
            self.pending.insert(id.clone(), Pending { kind: *kind });
        }
        self.report.add("commands_sent", 1);
        // 2.1 devices acknowledge an OTA once more first: "downloading".
        let expect = if self.v21.contains_key(&owner.unique_id) && matches!(c2d, C2d::Ota(_)) {
            expect + 1
        } else {
            expect
        };
        let (topic, body, cmd_type) = match self.v21.get(&owner.unique_id) {
            Some(pf) => {
                let body = c2d_21(&c2d, &target, &owner.unique_id);
                let ct = body.get("ct").map(Value::to_string).unwrap_or_default();
                (v21::c2d_topic(*pf, &owner.unique_id), body.to_string(), ct)
            }
            None => (
                topics::c2d_topic(&owner.unique_id),
                c2d.to_json().to_string(),
                c2d.code(),
            ),
        };
        let sent = Sent {
            unique_id: target,
            cmd_type,
            ack_id: ack.map(|a| a.0),
            expect,
        };
        vec![
            Message::new(
                admin::EVENT_SENT,
                serde_json::to_vec(&sent).unwrap_or_default(),
            ),
            Message::new(topic, body),
        ]
    }

    /// Notes a discovery request; whether the company exists.
    pub fn discovery(&mut self, cp_id: &str) -> bool {
        let ok = cp_id == self.template.cp_id;
        self.report
            .add(if ok { "discovery" } else { "discovery_refused" }, 1);
        ok
    }

    /// Answers the next `syncs` syncs (or 2.1 identity requests) of `unique_id` with `rc` 2,
    /// "auto-registered, sync again", as the platform does while it registers a device.
    pub fn set_registering(&mut self, unique_id: &str, syncs: u32) {
        self.registering.insert(unique_id.to_owned(), syncs);
    }

    /// Whether this request is one of those [`CloudState::set_registering`] asked for.
    pub fn take_registering(&mut self, unique_id: &str) -> bool {
        match self.registering.get_mut(unique_id) {
            Some(n) if *n > 0 => {
                *n -= 1;
                self.report.add("sync_registering", 1);
                true
            }
            _ => false,
        }
    }

    /// The sync answer for `req` (Unix time `now` signs SAS passwords).
    pub fn sync(&mut self, req: &SyncRequest, endpoints: &Endpoints, now: u64) -> SyncData {
        let refused = |rc| SyncData {
            rc: Some(rc),
            ds: Some(rc),
            ..SyncData::default()
        };
        if req.cp_id != self.template.cp_id {
            self.report.add("sync_refused", 1);
            return refused(6);
        }
        if self.template.device(&req.unique_id).is_some() && self.take_registering(&req.unique_id) {
            return refused(2);
        }
        let Some((dev, tpl)) = self.template.device(&req.unique_id).and_then(|d| {
            let tpl = self.template.template_of(&d)?.clone();
            Some((d.into_owned(), tpl))
        }) else {
            self.report.add("sync_refused", 1);
            return refused(3);
        };
        self.report.add("sync", 1);
        // A device that syncs speaks 1.0 (again): commands go out in the 1.0 shape.
        self.v21.remove(&req.unique_id);
        let o = req.option;
        let (h, port) = endpoints.host_port(dev.auth);
        let id = dev.unique_id.clone();
        let pwd = match (dev.auth, &dev.primary_key) {
            (1, Some(key)) => {
                sas::build(&format!("{h}/devices/{id}"), key, now + 24 * 3600).unwrap_or_default()
            }
            _ => String::new(),
        };
        let p = ProtocolInfo {
            n: "mqtt".into(),
            un: format!("{h}/{id}/?api-version=2018-06-30"),
            h,
            p: port,
            pwd,
            publish: topics::azure_d2c(&id),
            sub: topics::azure_c2d_filter(&id),
            id,
        };
        SyncData {
            cp_id: Some(self.template.cp_id.clone()),
            dtg: Some(tpl.dtg.clone()),
            rc: Some(0),
            ds: Some(0),
            ee: Some(i64::from(tpl.edge)),
            at: Some(dev.auth),
            sc: o.sdk_config.then_some(SdkConfig {
                df: Some(tpl.df),
                sf: Some(60),
                hb: Value::Null,
                log: Value::Null,
            }),
            p: o.protocol.then_some(p),
            d: o.device.then(|| self.refs(&dev)),
            att: o.attribute.then(|| tpl.attributes.clone()),
            set: o.setting.then(|| tpl.settings.clone()),
            r: o.rule.then(|| tpl.rules.clone()),
            ota: None,
        }
    }
}

fn leaves(values: &Map<String, Value>) -> u64 {
    values
        .values()
        .map(|v| match v {
            Value::Object(o) => o.len() as u64,
            _ => 1,
        })
        .sum()
}

fn error(why: &str) -> Vec<Message> {
    vec![Message::new(admin::EVENT_ERROR, why.to_owned())]
}

/// A 1.0 operator command as the 2.1 message the platform sends instead.
fn c2d_21(c: &C2d, target: &str, owner: &str) -> Value {
    let child = (target != owner).then_some(target);
    match c {
        C2d::Command(cmd) => {
            crate::protocol::v2::c2d::command(0, &cmd.command, cmd.ack_id.as_deref(), child)
        }
        C2d::Ota(o) => {
            let urls: Vec<Value> = o
                .urls
                .iter()
                .map(|u| {
                    let mut m = json!({"url": u.url});
                    if let Some(t) = &u.tag {
                        m["tg"] = json!(t);
                    }
                    if let Some(n) = &u.file_name {
                        m["fileName"] = json!(n);
                    }
                    m
                })
                .collect();
            json!({"v": "2.1", "ct": 1, "cmd": "ota", "ack": o.command.ack_id,
                   "sw": o.ver.sw, "hw": o.ver.hw, "urls": urls})
        }
        C2d::Stop => json!({"v": "2.1", "ct": 109}),
        C2d::DataFrequency { df } => json!({"v": 2.1, "ct": 105, "df": df}),
        C2d::Resync { scope, .. } => {
            use crate::protocol::v1::sync::SyncScope;
            let ct = match scope {
                SyncScope::Setting => 102,
                SyncScope::Rule => 103,
                SyncScope::Device => 104,
                _ => 101,
            };
            json!({"v": "2.1", "ct": ct})
        }
        other => json!({"v": "2.1", "ct": -1, "note": other.code()}),
    }
}

/// A 2.1 telemetry payload as the 1.0 envelope the recorder checks (`id` absent = the device
/// itself).
fn telemetry_21(
    cp_id: &str,
    dtg: &str,
    dev: &DeviceEntry,
    mt: MessageType,
    v: &Value,
) -> Result<Telemetry, String> {
    let Some(Value::Array(entries)) = v.get("d") else {
        return Err("no `d` array".into());
    };
    let mut d = Vec::new();
    for e in entries {
        let values = match e.get("d") {
            Some(Value::Object(m)) => m.clone(),
            Some(Value::Array(a)) if mt == MessageType::RuleMatched => a
                .first()
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            _ => return Err(format!("entry `d` must be an object (2.1), got {e}")),
        };
        let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
        d.push(crate::protocol::v1::envelope::DeviceEntry {
            id: s("id").unwrap_or_else(|| dev.unique_id.clone()),
            dt: s("dt").unwrap_or_default(),
            tg: s("tg"),
            d: vec![values],
            cv: e.get("cv").and_then(Value::as_object).cloned(),
            rg: s("rg"),
            ct: s("ct"),
            sg: s("sg"),
        });
    }
    Ok(Telemetry {
        cp_id: cp_id.to_owned(),
        dtg: dtg.to_owned(),
        t: v.get("dt").and_then(Value::as_str).unwrap_or("").to_owned(),
        mt,
        sdk: crate::protocol::v1::envelope::SdkInfo::new(""),
        d,
        od: None,
    })
}
