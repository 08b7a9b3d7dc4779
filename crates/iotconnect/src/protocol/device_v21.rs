//! The device state machine speaking message 2.1: the same validation, `df` gate, edge windows
//! and rules as 1.0 (the shared half of [`Device`]), with 2.1's wire: the topics of the identity
//! answer, the attributes, children and rules fetched with `{"mt":20x}` on `di` and answered on
//! `c2d`, the flat C2D messages with `ct`, heartbeats, and 2.1 acks.

use std::time::Duration;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{Device, DeviceError, Identity};
use crate::protocol::action::{Action, OutKind, Outgoing};
use crate::protocol::attributes::{AttributeGroup, DataType};
use crate::protocol::rules::EdgeRule;
use crate::protocol::v1::ack::{AckData, AckKind, status as v1_status};
use crate::protocol::v1::c2d::{DeviceCommand, OtaCommand, OtaVersion};
use crate::protocol::v1::envelope::{DeviceEntry, MessageType};
use crate::protocol::v1::sync::{DeviceRef, ProtocolInfo, SdkConfig, SyncData, SyncScope};
use crate::protocol::v2::c2d::C2d21;
use crate::protocol::v2::d2c::{self, Entry, ack_type, status};
use crate::protocol::v2::identity::{Gateway, Has, IdentityAnswer, SetTopics, Topics};
use crate::protocol::v2::{Platform, child_create_ec, identity_ec};
use crate::protocol::{Mono, timestamp};

/// What only a 2.1 device has.
#[derive(Debug, Clone)]
pub(in crate::protocol::device) struct V21 {
    pub(in crate::protocol::device) topics: Topics,
    pub(in crate::protocol::device) has: Has,
    pub(in crate::protocol::device) gateway: Option<Gateway>,
    pub(in crate::protocol::device) platform: Platform,
    /// Heartbeat interval (ct 110), and when the next beat is due (`None`: at the next tick).
    pub(in crate::protocol::device) heartbeat: Option<(Duration, Option<Mono>)>,
    /// Identity requests sent and not answered yet.
    pub(in crate::protocol::device) awaiting: std::collections::BTreeSet<i64>,
    /// Whether values are judged against attributes: `has.attr`, or a 201 answer arrived
    /// later (after a ct 101 refresh).
    pub(in crate::protocol::device) validate: bool,
}

/// 2.1 data types (the 2.1 Python SDK's `DATATYPE`) to the validator's: INT and LONG are
/// numbers, DECIMAL a float, STRING a string, OBJECT an object; dates, times, bits, booleans and
/// lat/long are accepted as sent (the validator does not check them).
pub fn data_type_21(dt: DataType) -> DataType {
    match dt.code() {
        1 | 2 => DataType::Number,
        3 => DataType::Float,
        4 => DataType::String,
        12 => DataType::Object,
        n => DataType::Other(1000 + n),
    }
}

/// A 201 answer's `att`, with its data types turned into the validator's and `agt` dropped.
pub fn attributes_21(att: &Value) -> Result<Vec<AttributeGroup>, String> {
    let mut groups: Vec<AttributeGroup> =
        serde_json::from_value(att.clone()).map_err(|e| format!("`att` is not valid: {e}"))?;
    for g in &mut groups {
        g.dt = g.dt.map(data_type_21);
        // 2.1 aggregates always carry all six values (the 2.1 SDK ignores `agt`).
        g.agt = None;
        for a in &mut g.d {
            a.dt = data_type_21(a.dt);
            a.agt = None;
        }
    }
    Ok(groups)
}

impl Device {
    /// Sets a 2.1 device up from its identity answer at `now`. The attributes, children and
    /// rules arrive later over MQTT ([`Device::identity_requests`]). `df_override` replaces
    /// `meta.df`.
    pub fn new_v21(
        id: Identity,
        answer: &IdentityAnswer,
        platform: Platform,
        df_override: Option<Duration>,
        now: Mono,
    ) -> Result<Device, DeviceError> {
        let p = &answer.p;
        let gateway = answer
            .meta
            .gtw
            .clone()
            .filter(|g| !g.id.is_empty() || !g.tg.is_empty());
        let sync = SyncData {
            cp_id: Some(id.cp_id.clone()),
            at: answer.meta.at,
            ee: Some(i64::from(answer.meta.edge)),
            sc: Some(SdkConfig {
                df: answer.meta.df,
                ..SdkConfig::default()
            }),
            p: Some(ProtocolInfo {
                n: p.n.clone(),
                h: p.h.clone(),
                p: p.p,
                id: p.id.clone(),
                un: p.un.clone(),
                pwd: String::new(),
                publish: p.topics.rpt.clone(),
                sub: p.topics.c2d.clone(),
            }),
            d: Some(vec![DeviceRef {
                id: id.unique_id.clone(),
                tg: gateway.as_ref().map(|g| g.tg.clone()).unwrap_or_default(),
            }]),
            // Without `has.attr` there is no list to wait for: everything is "unknown".
            att: (!answer.has.attr).then(Vec::new),
            ..SyncData::default()
        };
        let mut d = Device::blank(id, df_override);
        d.v21 = Some(Box::new(V21 {
            topics: p.topics.clone(),
            has: answer.has,
            gateway,
            platform,
            heartbeat: None,
            awaiting: std::collections::BTreeSet::new(),
            validate: answer.has.attr,
        }));
        d.apply_sync(SyncScope::All, sync, now)?;
        Ok(d)
    }

    /// Whether this device speaks 2.1.
    pub fn is_v21(&self) -> bool {
        self.v21.is_some()
    }

    /// The identity requests to send once subscribed (`has`): children (204), attributes (201),
    /// settings (202), rules (203), a pending OTA (205). Empty for 1.0.
    pub fn identity_requests(&mut self) -> Vec<Action> {
        let Some(h) = self.v21.as_ref().map(|v| v.has) else {
            return Vec::new();
        };
        let mts: Vec<u16> = [
            (h.d, 204),
            (h.attr, 201),
            (h.set, 202),
            (h.r, 203),
            (h.ota, 205),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, mt)| mt)
        .collect();
        if let Some(v) = self.v21.as_mut() {
            v.awaiting.extend(mts.iter().map(|m| i64::from(*m)));
        }
        mts.into_iter()
            .map(|mt| Action::Publish(self.identity_request(mt)))
            .collect()
    }

    /// Whether the answers the device needs before sending data (attributes 201, children
    /// 204) are still to come.
    pub fn awaiting_identity(&self) -> bool {
        self.attributes_pending() || self.v21.as_ref().is_some_and(|v| v.awaiting.contains(&204))
    }

    /// Whether values are validated: always in 1.0; in 2.1 once there are attributes. A 2.1
    /// device without `has.attr` sends everything on `rpt` unvalidated.
    pub fn validates(&self) -> bool {
        self.v21.as_ref().is_none_or(|v| v.validate)
    }

    /// Whether the attributes are still to arrive (2.1 with `has.attr`, before the 201 answer).
    pub fn attributes_pending(&self) -> bool {
        self.v21.is_some() && self.sync.att.is_none()
    }

    pub(in crate::protocol::device) fn identity_request(&self, mt: u16) -> Outgoing {
        let topic = self
            .v21
            .as_ref()
            .map(|v| v.topics.di.clone())
            .unwrap_or_default();
        Outgoing {
            topic,
            payload: d2c::identity_request(mt),
            kind: OutKind::Identity(mt),
            devices: 1,
            values: 0,
        }
    }

    /// Child create (221) or delete (222) for a gateway.
    pub fn child_request(&self, add: Option<(&str, &str)>, id: &str) -> Result<Outgoing, String> {
        let v = self.v21.as_ref().ok_or("child devices need message 2.1")?;
        let (mt, payload) = match add {
            Some((name, tg)) => {
                let g = v
                    .gateway
                    .as_ref()
                    .ok_or("this device is not a gateway (identity `meta.gtw` is null)")?;
                (221, d2c::child_create(&g.g, name, id, tg))
            }
            None => (222, d2c::child_delete(id)),
        };
        Ok(Outgoing {
            topic: v.topics.di.clone(),
            payload,
            kind: OutKind::Identity(mt),
            devices: 1,
            values: 0,
        })
    }

    pub(in crate::protocol::device) fn subscriptions_v21(v: &V21) -> Vec<String> {
        let mut f = vec![v.topics.c2d.clone()];
        if let Some(s) = &v.topics.set {
            for t in [&s.sub, &s.sub_for_all] {
                if !t.is_empty() && !f.contains(t) {
                    f.push(t.clone());
                }
            }
        }
        f
    }

    /// Whether entries carry `id`/`tg`: only gateways and their children do (2.1 docs).
    fn names_entries(&self) -> bool {
        self.v21.as_ref().is_some_and(|v| v.gateway.is_some())
            || self.sync.d.as_ref().is_some_and(|d| d.len() > 1)
    }

    pub(in crate::protocol::device) fn telemetry_v21(
        &self,
        v: &V21,
        mt: MessageType,
        d: &[DeviceEntry],
        utc: OffsetDateTime,
    ) -> Outgoing {
        let t = &v.topics;
        let topic = match mt {
            MessageType::Faulty => t.flt.clone(),
            MessageType::EdgeAggregate => t.erpt.clone().unwrap_or_else(|| t.rpt.clone()),
            MessageType::RuleMatched => t.erm.clone().unwrap_or_else(|| t.rpt.clone()),
            _ => t.rpt.clone(),
        };
        let named = self.names_entries();
        let values = d
            .iter()
            .map(|e| e.d.iter().map(Map::len).sum::<usize>())
            .sum();
        let entries: Vec<Entry> = d
            .iter()
            .map(|e| Entry {
                id: named.then(|| e.id.clone()),
                tg: if named { e.tg.clone() } else { None },
                dt: Some(e.dt.clone()),
                d: e.d.first().cloned().unwrap_or_default(),
                rule: e.rg.as_ref().map(|rg| {
                    let mut m = Map::new();
                    m.insert("cv".into(), Value::Object(e.cv.clone().unwrap_or_default()));
                    m.insert("rg".into(), json!(rg));
                    m.insert("ct".into(), json!(e.ct.clone().unwrap_or_default()));
                    m.insert("sg".into(), json!(e.sg.clone().unwrap_or_default()));
                    m
                }),
            })
            .collect();
        Outgoing {
            topic,
            payload: d2c::telemetry(&timestamp(utc), &entries),
            kind: OutKind::Message(mt),
            devices: entries.len(),
            values,
        }
    }

    /// The offline topic (`od`) for a telemetry message made while disconnected (2.1 only).
    pub fn offline_topic(&self, kind: OutKind) -> Option<String> {
        let v = self.v21.as_ref()?;
        match kind {
            OutKind::Message(MessageType::Reporting | MessageType::Faulty)
                if !v.topics.od.is_empty() =>
            {
                Some(v.topics.od.clone())
            }
            _ => None,
        }
    }

    pub(in crate::protocol::device) fn ack_v21(
        v: &V21,
        kind: AckKind,
        data: &AckData,
        utc: OffsetDateTime,
    ) -> Outgoing {
        // The agent speaks 1.0 statuses (4 failed, 6 command done, 7 OTA done); 2.1 has its
        // own table. Other values (2 "downloading", or a number given by the user) pass as is.
        let (ty, st) = match (kind, data.st) {
            (AckKind::Command, v1_status::COMMAND_OK) => (ack_type::COMMAND, status::COMMAND_OK),
            (AckKind::Command, v1_status::FAILED) => (ack_type::COMMAND, status::COMMAND_FAILED),
            (AckKind::Module, v1_status::COMMAND_OK) => (ack_type::MODULE, status::COMMAND_OK),
            (AckKind::Module, v1_status::FAILED) => (ack_type::MODULE, status::COMMAND_FAILED),
            (AckKind::Ota, v1_status::OTA_OK) => (ack_type::OTA, status::OTA_DONE),
            (AckKind::Ota, v1_status::FAILED) => (ack_type::OTA, status::OTA_DOWNLOAD_FAILED),
            (AckKind::Command, st) => (ack_type::COMMAND, st),
            (AckKind::Module, st) => (ack_type::MODULE, st),
            (AckKind::Ota, st) => (ack_type::OTA, st),
        };
        Outgoing {
            topic: v.topics.ack.clone(),
            payload: d2c::ack(
                &timestamp(utc),
                &data.ack_id,
                ty,
                st,
                &data.msg,
                Some(&data.child_id),
            ),
            kind: OutKind::Message(kind.mt()),
            devices: 1,
            values: 1,
        }
    }

    /// The heartbeat's part of the next wake-up.
    pub(in crate::protocol::device) fn heartbeat_wake(&self) -> Option<Mono> {
        let (_, next) = self.v21.as_ref()?.heartbeat?;
        Some(next.unwrap_or(Duration::ZERO))
    }

    /// A due heartbeat: `{}` on `hb` every `f` seconds.
    pub(in crate::protocol::device) fn heartbeat_tick(&mut self, now: Mono) -> Option<Action> {
        let barred = self.barred;
        let v = self.v21.as_mut()?;
        let (every, next) = v.heartbeat?;
        if next.is_some_and(|n| n > now) || barred {
            return None;
        }
        v.heartbeat = Some((every, Some(now + every)));
        Some(Action::Publish(Outgoing {
            topic: v.topics.hb.clone(),
            payload: b"{}".to_vec(),
            kind: OutKind::Heartbeat,
            devices: 1,
            values: 0,
        }))
    }

    pub(in crate::protocol::device) fn on_message_v21(
        &mut self,
        topic: &str,
        payload: &[u8],
        now: Mono,
    ) -> Option<Vec<Action>> {
        let v = self.v21.as_ref()?;
        if let Some(set) = self.aws_shadow()
            && (topic == set.sub || topic == set.sub_for_all)
        {
            let doc: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
            let state = doc.get("state").cloned().unwrap_or(doc);
            let desired = state.get("desired").cloned().unwrap_or(state.clone());
            let id = self.id.unique_id.clone();
            return Some(vec![if topic == set.sub {
                Action::TwinDesired(json!({"desired": desired, "uniqueId": id}))
            } else {
                Action::TwinFull(json!({
                    "desired": desired,
                    "reported": state.get("reported").cloned().unwrap_or(json!({})),
                    "uniqueId": id
                }))
            }]);
        }
        if !transport::topic::matches(&v.topics.c2d, topic) && v.topics.c2d != topic {
            // Twin topics are Azure's, handled by the 1.0 half.
            return None;
        }
        Some(self.on_c2d_v21(payload, now))
    }

    fn command(&self, cmd: String, ack: Option<String>, id: Option<String>) -> DeviceCommand {
        DeviceCommand {
            cp_id: self.id.cp_id.clone(),
            guid: String::new(),
            unique_id: id.unwrap_or_else(|| self.id.unique_id.clone()),
            command: cmd,
            ack: ack.is_some(),
            ack_id: ack,
        }
    }

    fn on_c2d_v21(&mut self, payload: &[u8], now: Mono) -> Vec<Action> {
        let msg = match C2d21::parse(payload) {
            Ok(m) => m,
            Err(e) => return vec![Action::Ignored(e.to_string())],
        };
        if self.barred {
            return vec![Action::Ignored(
                "the device was stopped by the platform (ct 106-109); message ignored".into(),
            )];
        }
        let raw = || serde_json::from_slice::<Value>(payload).unwrap_or(Value::Null);
        match msg {
            C2d21::Command { cmd, ack, id } => vec![Action::Command {
                command: self.command(cmd, ack, id),
                raw: raw(),
            }],
            C2d21::Module { cmd, ack, id } => vec![Action::ModuleCommand {
                command: self.command(cmd, ack, id),
                raw: raw(),
            }],
            C2d21::Ota { ack, sw, hw, urls } => vec![Action::Ota {
                ota: OtaCommand {
                    command: self.command("ota".into(), ack, None),
                    ver: OtaVersion { sw, hw },
                    urls,
                },
                raw: raw(),
            }],
            C2d21::Refresh { mt } => vec![Action::Publish(self.identity_request(mt))],
            C2d21::DataFrequency { df } => {
                let df = Duration::from_secs(df);
                self.df.set_df(df);
                self.edge_faulty.set_df(df);
                vec![Action::DfChanged(df)]
            }
            C2d21::Stop { ct } => {
                self.barred = true;
                vec![
                    Action::Ignored(format!(
                        "ct {ct}: {}; stopping and clearing the offline store",
                        C2d21::stop_reason(ct)
                    )),
                    Action::Barred,
                ]
            }
            C2d21::HeartbeatStart { f } => {
                let every = Duration::from_secs(f);
                if let Some(v) = self.v21.as_mut() {
                    v.heartbeat = Some((every, None));
                }
                vec![Action::Heartbeat(Some(every))]
            }
            C2d21::HeartbeatStop => {
                if let Some(v) = self.v21.as_mut() {
                    v.heartbeat = None;
                }
                vec![Action::Heartbeat(None)]
            }
            C2d21::Reply { ct, ec, d } => self.on_reply(ct, ec, &d, now),
            C2d21::Unknown { ct } => vec![Action::Ignored(format!("unknown ct {ct} ignored"))],
        }
    }

    fn on_reply(&mut self, ct: i64, ec: i64, d: &Value, now: Mono) -> Vec<Action> {
        if let Some(v) = self.v21.as_mut() {
            v.awaiting.remove(&ct);
        }
        if matches!(ct, 221 | 222) {
            let what = if ct == 221 { "created" } else { "deleted" };
            return vec![Action::ChildResult {
                ct,
                ec,
                message: if ec == 0 {
                    format!("child {what}")
                } else if ct == 221 {
                    format!("child not created: ec {ec}, {}", child_create_ec(ec))
                } else {
                    format!("child not deleted: ec {ec}")
                },
            }];
        }
        if ec != 0 {
            return vec![Action::Ignored(format!(
                "identity request {ct} answered ec {ec}: {}",
                identity_ec(ec)
            ))];
        }
        let (scope, data, name) = match ct {
            201 => match attributes_21(d.get("att").unwrap_or(&Value::Array(Vec::new()))) {
                Ok(att) => (
                    SyncScope::Attribute,
                    SyncData {
                        att: Some(att),
                        ..SyncData::default()
                    },
                    "attributes",
                ),
                Err(e) => return vec![Action::Ignored(format!("201 answer: {e}"))],
            },
            204 => {
                let mut list = vec![DeviceRef {
                    id: self.id.unique_id.clone(),
                    tg: self
                        .v21
                        .as_ref()
                        .and_then(|v| v.gateway.as_ref())
                        .map(|g| g.tg.clone())
                        .unwrap_or_default(),
                }];
                let children: Vec<DeviceRef> =
                    serde_json::from_value(d.get("d").cloned().unwrap_or(Value::Null))
                        .unwrap_or_default();
                list.extend(children.into_iter().filter(|c| c.id != self.id.unique_id));
                (
                    SyncScope::Device,
                    SyncData {
                        d: Some(list),
                        ..SyncData::default()
                    },
                    "children",
                )
            }
            203 => {
                let r: Vec<EdgeRule> =
                    serde_json::from_value(d.get("r").cloned().unwrap_or(Value::Null))
                        .unwrap_or_default();
                (
                    SyncScope::Rule,
                    SyncData {
                        r: Some(r),
                        ..SyncData::default()
                    },
                    "rules",
                )
            }
            202 => (
                SyncScope::Setting,
                SyncData {
                    set: d.get("set").cloned(),
                    ..SyncData::default()
                },
                "settings",
            ),
            _ => return vec![Action::Refreshed(format!("identity answer {ct}"))],
        };
        match self.apply_sync(scope, data, now) {
            Ok(()) => {
                if scope == SyncScope::Attribute
                    && let Some(v) = self.v21.as_mut()
                {
                    // Attributes exist now: from here on values are judged against them.
                    v.validate = true;
                }
                let mut out: Vec<Action> = self
                    .take_warnings()
                    .into_iter()
                    .map(Action::Ignored)
                    .collect();
                out.push(Action::Refreshed(name.into()));
                out
            }
            Err(e) => vec![Action::Ignored(format!("{ct} answer not applied: {e}"))],
        }
    }

    /// The answer to a desired-settings patch (`{"desired": {...}, "uniqueId"}`): each setting
    /// reported back, as the 2.1 SDK's sample does in its twin callback. Once the 202 settings
    /// are known, a key that is not one of them, or a value its type and `dv` refuse, is not
    /// reported (the 2.1 SDK's `UpdateTwin` refuses the same) but named in a warning. Keys
    /// starting with `$` (Azure's `$version`) are the platform's, not settings.
    pub fn answer_desired(&mut self, twin: &Value) -> Vec<Action> {
        let Some(Value::Object(desired)) = twin.get("desired") else {
            return Vec::new();
        };
        let defs = self
            .sync
            .set
            .as_ref()
            .and_then(crate::protocol::validate::settings)
            .map(|mut defs| {
                for d in &mut defs {
                    d.dt = data_type_21(d.dt);
                }
                defs
            });
        let mut out = Vec::new();
        for (k, v) in desired {
            if k.starts_with('$') {
                continue;
            }
            match defs.as_deref().map_or(Ok(()), |d| {
                crate::protocol::validate::check_setting(d, k, v)
            }) {
                Ok(()) => out.push(Action::Publish(self.twin_report(k, v.clone()))),
                Err(why) => out.push(Action::Ignored(format!(
                    "desired setting not reported: {why}"
                ))),
            }
        }
        out
    }

    /// AWS's named-shadow topics (2.1 on AWS with `set` topics), `None` elsewhere: Azure's
    /// twin topics are the same in 1.0 and 2.1.
    pub(in crate::protocol::device) fn aws_shadow(&self) -> Option<SetTopics> {
        let v = self.v21.as_ref()?;
        (v.platform == Platform::Aws)
            .then(|| v.topics.set.clone())
            .flatten()
            .filter(|s| !s.publish.is_empty())
    }

    /// The platform (2.1 only).
    pub fn platform(&self) -> Option<Platform> {
        self.v21.as_ref().map(|v| v.platform)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::input::parse_line;

    const ID: &[u8] = br#"{"d":{"ec":0,"ct":200,"meta":{"at":2,"df":0,"cd":"X","gtw":null,"edge":0,"v":2.1},
      "has":{"d":0,"attr":1,"set":0,"r":0,"ota":0},
      "p":{"n":"mqtt","h":"hub.example","p":8883,"id":"dev","un":"hub.example/dev/?api-version=2018-06-30",
      "topics":{"rpt":"T/rpt","flt":"T/flt","od":"T/od","hb":"T/hb","ack":"T/ack","dl":"T/dl","di":"T/di",
      "c2d":"devices/dev/messages/devicebound/#",
      "set":{"pub":"$iothub/twin/PATCH/properties/reported/?$rid={version}","sub":"$iothub/twin/PATCH/properties/desired/#",
             "pubForAll":"$iothub/twin/GET/?$rid=0","subForAll":"$iothub/twin/res/#"}}}},"status":200}"#;
    const C2D: &str = "devices/dev/messages/devicebound/%24.to=x";

    fn device() -> Device {
        device_from(ID)
    }

    fn device_from(identity: &[u8]) -> Device {
        let id = Identity {
            cp_id: "CP".into(),
            unique_id: "dev".into(),
            env: "E".into(),
        };
        let answer = IdentityAnswer::parse(identity, "dev").unwrap();
        Device::new_v21(
            id,
            &answer,
            Platform::Azure,
            Some(Duration::ZERO),
            Mono::ZERO,
        )
        .unwrap()
    }

    fn published(a: &[Action]) -> Vec<(String, Value)> {
        a.iter()
            .filter_map(|a| match a {
                Action::Publish(o) => Some((
                    o.topic.clone(),
                    serde_json::from_slice(&o.payload).unwrap_or(Value::Null),
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn attributes_first_then_rpt_and_flt_without_id_for_a_plain_device() {
        let mut d = device();
        assert_eq!(d.subscriptions()[0], "devices/dev/messages/devicebound/#");
        let asks = published(&d.identity_requests());
        assert_eq!(asks, [("T/di".to_owned(), json!({"mt": 201}))]);
        let utc = time::OffsetDateTime::UNIX_EPOCH;
        let rec = parse_line(1, r#"[{"uniqueId":"dev","data":{"temp":20,"extra":"x"}}]"#)
            .unwrap()
            .unwrap();
        assert!(
            matches!(&d.send_data(&rec, Mono::ZERO, utc)[..], [Action::Ignored(m)] if m.contains("201"))
        );
        let reply = br#"{"d":{"ec":0,"ct":201,"att":[{"p":"","tg":"","d":[{"ln":"temp","dt":1,"dv":"0 to 50","tg":""}]}]}}"#;
        let a = d.on_message_at(C2D, reply, Mono::ZERO);
        assert!(
            matches!(&a[..], [Action::Refreshed(s)] if s == "attributes"),
            "{a:?}"
        );
        assert!(!d.awaiting_identity());
        let out = published(&d.send_data(&rec, Mono::ZERO, utc));
        assert_eq!(out[0].0, "T/rpt");
        assert_eq!(out[0].1["d"][0]["d"], json!({"temp": 20}));
        assert!(out[0].1["d"][0].get("id").is_none(), "{}", out[0].1);
        assert_eq!(out[1].0, "T/flt");
        assert_eq!(out[1].1["d"][0]["d"], json!({"extra": "x"}));
    }

    #[test]
    fn without_has_attr_everything_goes_to_rpt_unvalidated_until_a_201_arrives() {
        let id = String::from_utf8_lossy(ID).replace(r#""attr":1"#, r#""attr":0"#);
        let mut d = device_from(id.as_bytes());
        assert!(d.identity_requests().is_empty());
        assert!(!d.awaiting_identity() && !d.validates());
        let utc = time::OffsetDateTime::UNIX_EPOCH;
        let rec = parse_line(
            1,
            r#"[{"uniqueId":"dev","data":{"temp":20,"extra":"x","gyro":{"x":1}}}]"#,
        )
        .unwrap()
        .unwrap();
        let out = published(&d.send_data(&rec, Mono::ZERO, utc));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].0, "T/rpt");
        assert_eq!(
            out[0].1["d"][0]["d"],
            json!({"temp": 20, "extra": "x", "gyro": {"x": 1}})
        );
        // ct 101 and its answer bring attributes: values are judged from then on.
        let ask = published(&d.on_message_at(C2D, br#"{"ct":101}"#, Mono::ZERO));
        assert_eq!(ask, [("T/di".to_owned(), json!({"mt": 201}))]);
        let reply = br#"{"d":{"ec":0,"ct":201,"att":[{"p":"","tg":"","d":[{"ln":"temp","dt":1,"dv":"0 to 50","tg":""}]}]}}"#;
        d.on_message_at(C2D, reply, Mono::ZERO);
        assert!(d.validates());
        let out = published(&d.send_data(&rec, Mono::ZERO, utc));
        assert_eq!(
            out.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
            ["T/rpt", "T/flt"]
        );
    }

    #[test]
    fn desired_settings_are_reported_back_when_the_202_list_allows_them() {
        let mut d = device();
        let twin =
            json!({"desired": {"interval": 30, "firmware": "1.2", "$version": 3, "bogus": 1}});
        // Before the 202 answer nothing can be checked: everything but `$version` goes back.
        assert_eq!(published(&d.answer_desired(&twin)).len(), 3);
        let reply = br#"{"d":{"ec":0,"ct":202,"set":[{"ln":"interval","dt":1,"dv":"1 to 3600"},{"ln":"firmware","dt":4,"dv":""}]}}"#;
        d.on_message_at(C2D, reply, Mono::ZERO);
        let a = d.answer_desired(&twin);
        let out = published(&a);
        assert_eq!(out.len(), 2, "{a:?}");
        assert!(
            out[0]
                .0
                .starts_with("$iothub/twin/PATCH/properties/reported/")
        );
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::Ignored(m) if m.contains("`bogus`"))),
            "{a:?}"
        );
        let a = d.answer_desired(&json!({"desired": {"interval": 99999}}));
        assert!(
            matches!(&a[..], [Action::Ignored(m)] if m.contains("dv `1 to 3600`")),
            "{a:?}"
        );
    }

    #[test]
    fn heartbeat_acks_and_stop() {
        let mut d = device();
        let a = d.on_message_at(C2D, br#"{"v":"2.1","ct":110,"f":5}"#, Mono::ZERO);
        assert_eq!(a, [Action::Heartbeat(Some(Duration::from_secs(5)))]);
        assert_eq!(d.next_wake(), Some(Mono::ZERO));
        let utc = time::OffsetDateTime::UNIX_EPOCH;
        let beat = published(&d.tick(Mono::ZERO, utc));
        assert_eq!(beat, [("T/hb".to_owned(), json!({}))]);
        assert_eq!(d.next_wake(), Some(Duration::from_secs(5)));
        assert!(d.tick(Duration::from_secs(4), utc).is_empty());
        d.on_message_at(C2D, br#"{"ct":111}"#, Mono::ZERO);
        assert_eq!(d.next_wake(), None);

        let ack = |kind, st| {
            let data = AckData {
                ack_id: "A".into(),
                st,
                msg: "m".into(),
                child_id: String::new(),
            };
            let o = d.ack(kind, data, utc);
            (
                o.topic,
                serde_json::from_slice::<Value>(&o.payload).unwrap()["d"].clone(),
            )
        };
        assert_eq!(
            ack(AckKind::Command, v1_status::COMMAND_OK),
            (
                "T/ack".to_owned(),
                json!({"ack":"A","type":0,"st":2,"msg":"m"})
            )
        );
        assert_eq!(ack(AckKind::Ota, v1_status::FAILED).1["st"], 4);
        assert_eq!(
            ack(AckKind::Module, v1_status::FAILED).1,
            json!({"ack":"A","type":2,"st":1,"msg":"m"})
        );

        let a = d.on_message_at(C2D, br#"{"ct":108}"#, Mono::ZERO);
        assert!(a.contains(&Action::Barred), "{a:?}");
        assert!(d.is_barred());
        let after = d.on_message_at(C2D, br#"{"ct":0,"cmd":"x"}"#, Mono::ZERO);
        assert!(matches!(&after[..], [Action::Ignored(_)]));
    }
}
