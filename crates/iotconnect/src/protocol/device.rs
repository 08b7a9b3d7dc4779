//! The IoTConnect device as a state machine: it holds what `sync` said (devices, attributes,
//! rules, `df`, edge flag), takes events — data to send, a message from the broker, a connection
//! change, the clock reaching a window's end — and returns [`Action`]s: messages to publish,
//! commands to run, syncs to make, things to report. No I/O; time is an argument ([`Mono`] for
//! `df` and windows, UTC for timestamps). The agent executes the actions; tests drive it directly.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

pub use super::action::{Action, OutKind, Outgoing};
use super::attributes::TwError;
use super::df::{DEFAULT_DF_SECS, DfGate};
use super::edge::EdgeWindows;
use super::input::InputRecord;
use super::rules::{EdgeRule, Expr};
use super::v1::ack::{AckData, AckKind, AckMessage};
use super::v1::c2d::{self, C2d};
use super::v1::envelope::{DeviceEntry, MessageType, SdkInfo, Telemetry};
use super::v1::sync::{DeviceRef, SyncData, SyncError, SyncScope};
use super::v1::{topics, twin_desired_event, twin_full_event, twin_report};
use super::validate::judge;
use super::{Mono, timestamp};

/// Who the device is (from the config file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Company id.
    pub cp_id: String,
    /// The connected device's unique id (the gateway's, for a gateway).
    pub unique_id: String,
    /// Environment (`sdk.e`).
    pub env: String,
}

/// Why the device could not be set up from a sync answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The answer itself.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// An edge attribute's window.
    #[error("edge set-up failed: {0}")]
    Window(#[from] TwError),
}

#[derive(Debug, Clone)]
struct CompiledRule {
    rule: EdgeRule,
    expr: Expr,
}

/// The device.
#[derive(Debug, Clone)]
pub struct Device {
    id: Identity,
    sync: SyncData,
    df: DfGate,
    df_override: Option<Duration>,
    /// Faulty values of edge devices are sent at most once per `df` (SDK 3.0.5).
    edge_faulty: DfGate,
    edge: Option<EdgeWindows>,
    rules: Vec<CompiledRule>,
    live: BTreeSet<String>,
    barred: bool,
    rid: u64,
    warnings: Vec<String>,
    /// Message 2.1: the identity answer's topics and what goes with them.
    v21: Option<Box<v21::V21>>,
}

impl Device {
    /// Sets the device up from a full sync answer at `now`. `df_override` replaces `sc.df`.
    pub fn new(
        id: Identity,
        sync: SyncData,
        df_override: Option<Duration>,
        now: Mono,
    ) -> Result<Device, DeviceError> {
        sync.check(&id.unique_id)?;
        if sync.dtg.as_deref().unwrap_or("").is_empty() {
            return Err(SyncError::Missing { field: "d.dtg" }.into());
        }
        let mut d = Device::blank(id, df_override);
        d.apply_sync(SyncScope::All, sync, now)?;
        Ok(d)
    }

    fn blank(id: Identity, df_override: Option<Duration>) -> Device {
        Device {
            id,
            sync: SyncData::default(),
            df: DfGate::new(Duration::ZERO),
            df_override,
            edge_faulty: DfGate::new(Duration::ZERO),
            edge: None,
            rules: Vec::new(),
            live: BTreeSet::new(),
            barred: false,
            rid: 0,
            warnings: Vec::new(),
            v21: None,
        }
    }

    /// Applies a (partial) sync answer.
    pub fn apply_sync(
        &mut self,
        scope: SyncScope,
        data: SyncData,
        now: Mono,
    ) -> Result<(), DeviceError> {
        let mut next = self.sync.clone();
        next.merge(scope, data);
        let edge = if next.is_edge() {
            let atts = next.att.as_deref().unwrap_or_default();
            Some(match (&self.edge, scope) {
                (
                    Some(e),
                    SyncScope::Device
                    | SyncScope::Setting
                    | SyncScope::Protocol
                    | SyncScope::SdkConfig
                    | SyncScope::Rule,
                ) => e.clone(),
                _ => EdgeWindows::from_attributes(atts, now)?,
            })
        } else {
            None
        };
        self.edge = edge;
        self.rules.clear();
        for rule in next.r.iter().flatten() {
            match super::rules::parse(&rule.con) {
                Ok(expr) => self.rules.push(CompiledRule {
                    rule: rule.clone(),
                    expr,
                }),
                Err(e) => self.warnings.push(format!("rule {} skipped: {e}", rule.g)),
            }
        }
        let df = self.df_override.unwrap_or_else(|| {
            Duration::from_secs(
                next.sc
                    .as_ref()
                    .and_then(|s| s.df)
                    .unwrap_or(DEFAULT_DF_SECS),
            )
        });
        self.df.set_df(df);
        self.edge_faulty.set_df(df);
        self.sync = next;
        Ok(())
    }

    /// Warnings collected while setting up (skipped rules), emptied by the call.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The merged sync data.
    pub fn sync(&self) -> &SyncData {
        &self.sync
    }

    /// The identity.
    pub fn identity(&self) -> &Identity {
        &self.id
    }

    /// Whether the device is edge-enabled.
    pub fn is_edge(&self) -> bool {
        self.edge.is_some()
    }

    /// Whether 0x99 arrived.
    pub fn is_barred(&self) -> bool {
        self.barred
    }

    /// The current `df`.
    pub fn df(&self) -> Duration {
        self.df.df()
    }

    /// The devices (gateway first); a plain device when `sync` lists none.
    pub fn devices(&self) -> Vec<DeviceRef> {
        match self.sync.d.as_deref() {
            Some(d) if !d.is_empty() => d.to_vec(),
            _ => vec![DeviceRef {
                id: self.id.unique_id.clone(),
                tg: String::new(),
            }],
        }
    }

    fn cp_id(&self) -> String {
        self.sync
            .cp_id
            .clone()
            .unwrap_or_else(|| self.id.cp_id.clone())
    }

    fn d2c(&self) -> String {
        topics::d2c_topic(&self.sync.p.clone().unwrap_or_default(), &self.id.unique_id)
    }

    /// Filters to subscribe to: commands, desired properties, twin answers.
    pub fn subscriptions(&self) -> Vec<String> {
        if let Some(v) = &self.v21 {
            return Device::subscriptions_v21(v);
        }
        vec![
            topics::c2d_filter(&self.sync.p.clone().unwrap_or_default(), &self.id.unique_id),
            topics::TWIN_DESIRED_FILTER.to_owned(),
            topics::TWIN_RES_FILTER.to_owned(),
        ]
    }

    fn telemetry(&self, mt: MessageType, d: Vec<DeviceEntry>, utc: OffsetDateTime) -> Outgoing {
        if let Some(v) = &self.v21 {
            return self.telemetry_v21(v, mt, &d, utc);
        }
        let t = Telemetry {
            cp_id: self.cp_id(),
            dtg: self.sync.dtg.clone().unwrap_or_default(),
            t: timestamp(utc),
            mt,
            sdk: SdkInfo::new(&self.id.env),
            d,
            od: None,
        };
        Outgoing {
            topic: self.d2c(),
            payload: t.to_bytes(),
            kind: OutKind::Message(mt),
            devices: t.d.len(),
            values: t.value_count(),
        }
    }

    /// `SendData`: validates, splits, throttles, aggregates and evaluates rules.
    pub fn send_data(
        &mut self,
        records: &[InputRecord],
        now: Mono,
        utc: OffsetDateTime,
    ) -> Vec<Action> {
        if self.barred {
            return vec![Action::Ignored(
                "the device is barred (0x99): SendData is not permitted".into(),
            )];
        }
        if self.attributes_pending() {
            // As the 2.1 SDK: no data before the attribute list (201) has arrived.
            return vec![Action::Ignored(format!(
                "{} record(s) dropped: the attributes (201) have not arrived yet",
                records.len()
            ))];
        }
        let edge = self.edge.is_some();
        if !edge && !self.df.admit(now) {
            return vec![Action::Throttled {
                records: records.len(),
                until: self.df.next_open().unwrap_or(now),
            }];
        }
        let devices = self.devices();
        let atts = self.sync.att.clone().unwrap_or_default();
        let mut out = Vec::new();
        let (mut rpt, mut flt) = (Vec::new(), Vec::new());
        let mut matched: BTreeMap<usize, Vec<DeviceEntry>> = BTreeMap::new();
        let now_text = timestamp(utc);
        for rec in records {
            let Some(dev) = devices.iter().find(|d| d.id == rec.unique_id) else {
                out.push(Action::Ignored(format!(
                    "uniqueId `{}` is not this device or one of its children; its data was dropped",
                    rec.unique_id
                )));
                continue;
            };
            self.live.insert(dev.id.clone());
            let j = if self.validates() {
                judge(&atts, &dev.tg, &rec.data)
            } else {
                super::validate::unvalidated(&rec.data)
            };
            let dt = rec.time.clone().unwrap_or_else(|| now_text.clone());
            let entry = |d: Map<String, Value>| DeviceEntry {
                id: dev.id.clone(),
                dt: dt.clone(),
                tg: Some(dev.tg.clone()),
                d: vec![d],
                cv: None,
                rg: None,
                ct: None,
                sg: None,
            };
            if let Some(e) = self.edge.as_mut() {
                for v in &j.numeric {
                    e.record(&dev.id, &dev.tg, v);
                }
                for (i, r) in self.rules.iter().enumerate() {
                    let mut used = Map::new();
                    if r.expr.eval(&dev.tg, &j.good, &mut used) {
                        let mut m = entry(j.good.clone());
                        m.dt.clone_from(&now_text);
                        m.tg = None;
                        m.cv = Some(used);
                        m.rg = Some(r.rule.g.clone());
                        m.ct = Some(r.rule.con.clone());
                        m.sg = Some(r.rule.es.clone());
                        matched.entry(i).or_default().push(m);
                        if !r.rule.cmd.is_empty() {
                            out.push(Action::RuleCommand {
                                unique_id: dev.id.clone(),
                                raw: c2d::rule_command(&self.cp_id(), &dev.id, &r.rule.cmd),
                            });
                        }
                    }
                }
            } else if !j.good.is_empty() {
                rpt.push(entry(j.good.clone()));
            }
            if !j.faulty.is_empty() {
                flt.push(entry(j.faulty));
            }
        }
        if !rpt.is_empty() {
            out.push(Action::Publish(self.telemetry(
                MessageType::Reporting,
                rpt,
                utc,
            )));
        }
        if !flt.is_empty() {
            if !edge || self.edge_faulty.admit(now) {
                out.push(Action::Publish(self.telemetry(
                    MessageType::Faulty,
                    flt,
                    utc,
                )));
            } else {
                out.push(Action::Ignored(
                    "faulty values of an edge device are sent at most once per df; dropped".into(),
                ));
            }
        }
        for (_, entries) in matched {
            out.push(Action::Publish(self.telemetry(
                MessageType::RuleMatched,
                entries,
                utc,
            )));
        }
        out
    }

    /// When [`Device::tick`] has work next.
    pub fn next_wake(&self) -> Option<Mono> {
        let edge = self.edge.as_ref().and_then(EdgeWindows::next_wake);
        match (edge, self.heartbeat_wake()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the last window holding values closes (None: nothing pending).
    pub fn pending_until(&self) -> Option<Mono> {
        self.edge.as_ref().and_then(EdgeWindows::pending_until)
    }

    /// Closes due edge windows and returns the aggregate message (`mt` 2), if any.
    pub fn tick(&mut self, now: Mono, utc: OffsetDateTime) -> Vec<Action> {
        let mut out: Vec<Action> = self.heartbeat_tick(now).into_iter().collect();
        let Some(e) = self.edge.as_mut() else {
            return out;
        };
        let due = e.due(now);
        if due.is_empty() || self.barred {
            return out;
        }
        let mut per_device: BTreeMap<(String, String), Map<String, Value>> = BTreeMap::new();
        for a in due {
            let m = per_device.entry((a.device, a.tag)).or_default();
            let values = Value::Array(a.values);
            match a.path.parent {
                None => {
                    m.insert(a.path.name, values);
                }
                Some(p) => {
                    if let Value::Object(o) = m.entry(p).or_insert_with(|| json!({})) {
                        o.insert(a.path.name, values);
                    }
                }
            }
        }
        let dt = timestamp(utc);
        let entries = per_device
            .into_iter()
            .map(|((id, tg), d)| DeviceEntry {
                id,
                dt: dt.clone(),
                tg: Some(tg),
                d: vec![d],
                cv: None,
                rg: None,
                ct: None,
                sg: None,
            })
            .collect();
        out.push(Action::Publish(self.telemetry(
            MessageType::EdgeAggregate,
            entries,
            utc,
        )));
        out
    }

    /// The connection came up or went down: the locally made 0x16.
    pub fn connection(&self, connected: bool) -> Action {
        Action::ConnectionStatus(
            c2d::connection_status(&self.cp_id(), &self.id.unique_id, connected)["data"].clone(),
        )
    }

    /// A message from the broker (at monotonic time zero; see [`Device::on_message_at`]).
    pub fn on_message(&mut self, topic: &str, payload: &[u8]) -> Vec<Action> {
        self.on_message_at(topic, payload, Duration::ZERO)
    }

    /// A message from the broker at `now` (2.1 attribute answers start edge windows then).
    pub fn on_message_at(&mut self, topic: &str, payload: &[u8], now: Mono) -> Vec<Action> {
        if let Some(actions) = self.on_message_v21(topic, payload, now) {
            return actions;
        }
        if self.v21.is_none() && topics::is_c2d(topic) {
            return self.on_c2d(payload);
        }
        if topic.starts_with(topics::TWIN_DESIRED_PREFIX) {
            if topics::query_param(topic, "deviceId").is_some_and(|d| d != self.id.unique_id) {
                return Vec::new();
            }
            return match serde_json::from_slice::<Value>(payload) {
                Ok(patch) => vec![Action::TwinDesired(twin_desired_event(
                    patch,
                    &self.id.unique_id,
                ))],
                Err(e) => vec![Action::Ignored(format!(
                    "desired-property patch on `{topic}` is not JSON: {e}"
                ))],
            };
        }
        if topic.starts_with(topics::TWIN_RES_PREFIX) {
            let rid = topics::query_param(topic, "$rid").unwrap_or_default();
            if topics::device_of_rid(&rid).is_some_and(|d| d != self.id.unique_id) {
                return Vec::new();
            }
            return match (
                topics::twin_res_status(topic),
                serde_json::from_slice::<Value>(payload),
            ) {
                (Some(200), Ok(doc)) => {
                    vec![Action::TwinFull(twin_full_event(&doc, &self.id.unique_id))]
                }
                (Some(s), _) if (200..300).contains(&s) => Vec::new(),
                (s, _) => vec![Action::Ignored(format!(
                    "twin request {rid} answered with status {s:?}"
                ))],
            };
        }
        vec![Action::Ignored(format!(
            "message on unexpected topic `{topic}`"
        ))]
    }

    fn on_c2d(&mut self, payload: &[u8]) -> Vec<Action> {
        let msg = match C2d::parse(payload) {
            Ok(m) => m,
            Err(e) => return vec![Action::Ignored(e.to_string())],
        };
        if self.barred {
            return vec![Action::Ignored(format!(
                "the device is barred (0x99); {} ignored",
                msg.code()
            ))];
        }
        let raw = || {
            serde_json::from_slice::<Value>(payload)
                .ok()
                .and_then(|v| v.get("data").cloned())
                .unwrap_or(Value::Null)
        };
        match msg {
            C2d::Command(command) => vec![Action::Command {
                command,
                raw: raw(),
            }],
            C2d::Ota(ota) => vec![Action::Ota { ota, raw: raw() }],
            C2d::ModuleUpdate(v) => vec![Action::ModuleUpdate(v)],
            C2d::Resync { scope, .. } => vec![Action::Resync(scope)],
            C2d::DataFrequency { df } => {
                let df = Duration::from_secs(df);
                self.df.set_df(df);
                self.edge_faulty.set_df(df);
                vec![Action::DfChanged(df)]
            }
            C2d::Stop => {
                self.barred = true;
                vec![Action::Barred]
            }
            C2d::UpdateCertificate => vec![Action::Ignored(
                "updatecrt is not acted on (as in the SDK)".into(),
            )],
            C2d::ConnectionStatus { .. } => vec![Action::Ignored(
                "0x16 from the cloud ignored: it is made locally".into(),
            )],
            C2d::Unknown { code } => {
                vec![Action::Ignored(format!("unknown cmdType `{code}` ignored"))]
            }
        }
    }

    /// An acknowledgement (`mt` 5 or 11) from the connected device.
    pub fn ack(&self, kind: AckKind, data: AckData, utc: OffsetDateTime) -> Outgoing {
        if let Some(v) = &self.v21 {
            return Device::ack_v21(v, kind, &data, utc);
        }
        let m = AckMessage {
            cp_id: self.cp_id(),
            unique_id: self.id.unique_id.clone(),
            t: timestamp(utc),
            mt: kind.mt(),
            d: data,
            sdk: SdkInfo::new(&self.id.env),
            od: None,
        };
        Outgoing {
            topic: self.d2c(),
            payload: m.to_bytes(),
            kind: OutKind::Message(kind.mt()),
            devices: 1,
            values: 1,
        }
    }

    /// A reported property (`UpdateTwin(key, value)`).
    pub fn twin_report(&mut self, key: &str, value: Value) -> Outgoing {
        self.rid += 1;
        if let Some(set) = self.aws_shadow() {
            // AWS: the named shadow `setting_info`, an AWS shadow document.
            return Outgoing {
                topic: set.publish,
                payload: serde_json::to_vec(&json!({"state": {"reported": {key: value}}}))
                    .unwrap_or_default(),
                kind: OutKind::TwinReport,
                devices: 1,
                values: 1,
            };
        }
        Outgoing {
            topic: topics::twin_reported(&topics::rid(&self.id.unique_id, self.rid)),
            payload: serde_json::to_vec(&twin_report(key, value)).unwrap_or_default(),
            kind: OutKind::TwinReport,
            devices: 1,
            values: 1,
        }
    }

    /// A request for the full twin.
    pub fn twin_get(&mut self) -> Outgoing {
        self.rid += 1;
        if let Some(set) = self.aws_shadow() {
            return Outgoing {
                topic: set.pub_for_all,
                payload: b"{}".to_vec(),
                kind: OutKind::TwinGet,
                devices: 1,
                values: 0,
            };
        }
        Outgoing {
            topic: topics::twin_get(&topics::rid(&self.id.unique_id, self.rid)),
            payload: Vec::new(),
            kind: OutKind::TwinGet,
            devices: 1,
            values: 0,
        }
    }

    /// `GetAttributes()`: one entry per distinct device tag.
    pub fn attributes(&self) -> Value {
        let atts = self.sync.att.clone().unwrap_or_default();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for dev in self.devices() {
            if !seen.insert(dev.tg.clone()) {
                continue;
            }
            let mut list = Vec::new();
            for g in &atts {
                if g.is_object() {
                    if g.tg == dev.tg {
                        let d: Vec<Value> =
                            g.d.iter()
                                .map(|a| json!({"ln": a.ln, "dt": a.dt.name(), "dv": a.dv}))
                                .collect();
                        list.push(json!({"ln": g.p, "dt": "OBJECT", "tg": g.tg, "d": d}));
                    }
                } else {
                    for a in g.d.iter().filter(|a| a.tg == dev.tg) {
                        list.push(json!({"ln": a.ln, "dt": a.dt.name(), "dv": a.dv, "tg": a.tg}));
                    }
                }
            }
            out.push(json!({"device": {"id": dev.id, "tg": dev.tg}, "attributes": list}));
        }
        Value::Array(out)
    }
}

#[path = "device_v21.rs"]
mod v21;
pub use v21::{attributes_21, data_type_21};

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
