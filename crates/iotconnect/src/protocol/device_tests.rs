//! Tests of the device state machine: telemetry split, `df`, edge windows and rules, commands,
//! twin, 0x99, driven with a hand-made clock.

use std::time::Duration;

use serde_json::{Value, json};
use time::macros::datetime;

use super::*;
use crate::protocol::input::parse_line;

fn id() -> Identity {
    Identity {
        cp_id: "CPID".into(),
        unique_id: "gw01".into(),
        env: "DEV".into(),
    }
}

fn sync(edge: bool) -> SyncData {
    serde_json::from_value(json!({
        "cpId": "CPID", "dtg": "tpl-guid", "rc": 0, "at": 2, "ee": i32::from(edge),
        "sc": {"df": 10},
        "p": {"n":"mqtt","h":"localhost","p":8883,"id":"gw01","un":"u","pwd":"",
              "pub":"devices/gw01/messages/events/","sub":"devices/gw01/messages/devicebound/#"},
        "d": [{"id":"gw01","tg":"gw"},{"id":"c1","tg":"sensor"},{"id":"c2","tg":"sensor"}],
        "att": [
            {"p":"","tg":"","d":[
                {"ln":"temp","dt":0,"dv":"0 to 50","tg":"gw","tw":"10s","agt":63},
                {"ln":"level","dt":3,"dv":"","tg":"sensor","tw":"5s","agt":3}
            ]}
        ],
        "r": [{"g":"rule-1","es":"es-1","con":"gw#temp > 40","cmd":"fan on"}, {"g":"bad","es":"","con":"temp >","cmd":""}]
    }))
    .unwrap()
}

const T: time::OffsetDateTime = datetime!(2024-05-01 12:00:00 UTC);

fn s(n: u64) -> Mono {
    Duration::from_secs(n)
}

fn records(line: &str) -> Vec<InputRecord> {
    parse_line(1, line).unwrap().unwrap()
}

fn published(actions: &[Action]) -> Vec<Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish(o) => Some(serde_json::from_slice(&o.payload).unwrap()),
            _ => None,
        })
        .collect()
}

#[test]
fn gateway_and_children_split_good_and_faulty() {
    let mut d = Device::new(id(), sync(false), None, s(0)).unwrap();
    let a = d.send_data(
        &records(r#"[{"uniqueId":"gw01","time":"2024-05-01T11:59:59.000Z","data":{"temp":21,"x":1}},
                     {"uniqueId":"c1","data":{"level":"3.5"}},{"uniqueId":"c2","data":{"level":"high"}},
                     {"uniqueId":"stranger","data":{"level":1}}]"#),
        s(0),
        T,
    );
    let msgs = published(&a);
    assert_eq!(msgs.len(), 2);
    let rpt = &msgs[0];
    assert_eq!(rpt["mt"], 0);
    assert_eq!(rpt["cpId"], "CPID");
    assert_eq!(rpt["dtg"], "tpl-guid");
    assert_eq!(rpt["sdk"], json!({"l":"M_PYTHON","v":"2.0","e":"DEV"}));
    assert_eq!(
        rpt["d"][0],
        json!({"id":"gw01","dt":"2024-05-01T11:59:59.000Z","tg":"gw","d":[{"temp":21}]})
    );
    assert_eq!(rpt["d"][1]["d"], json!([{"level":3.5}]));
    assert_eq!(rpt["d"][1]["dt"], "2024-05-01T12:00:00.000Z");
    let flt = &msgs[1];
    assert_eq!(flt["mt"], 1);
    assert_eq!(flt["d"][0]["d"], json!([{"x":"1"}]));
    assert_eq!(flt["d"][1]["id"], "c2");
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::Ignored(m) if m.contains("stranger")))
    );
    assert!(d.take_warnings()[0].contains("rule bad"));
}

#[test]
fn df_discards_early_sends_for_non_edge_devices() {
    let mut d = Device::new(id(), sync(false), None, s(0)).unwrap();
    let line = records(r#"[{"uniqueId":"gw01","data":{"temp":1}}]"#);
    assert_eq!(published(&d.send_data(&line, s(100), T)).len(), 1);
    assert!(
        matches!(d.send_data(&line, s(105), T)[..], [Action::Throttled { records: 1, until }] if until == s(110))
    );
    assert_eq!(published(&d.send_data(&line, s(110), T)).len(), 1);
    // 0x17 changes df.
    let a = d.on_message(
        "devices/gw01/messages/devicebound/x",
        br#"{"cmdType":"0x17","data":{"df":0}}"#,
    );
    assert_eq!(a, vec![Action::DfChanged(Duration::ZERO)]);
    assert_eq!(published(&d.send_data(&line, s(111), T)).len(), 1);
    let mut d = Device::new(id(), sync(false), Some(Duration::ZERO), s(0)).unwrap();
    assert!(
        (0..3).all(|i| published(&d.send_data(&line, s(i), T)).len() == 1),
        "--df 0 override"
    );
}

#[test]
fn edge_devices_aggregate_per_window_and_match_rules() {
    let mut d = Device::new(id(), sync(true), None, s(0)).unwrap();
    assert!(d.is_edge());
    let mut all = Vec::new();
    for (i, t) in [10, 30, 45].into_iter().enumerate() {
        let line = records(&format!(
            r#"[{{"uniqueId":"gw01","data":{{"temp":{t}}}}},{{"uniqueId":"c1","data":{{"level":{i}}}}}]"#
        ));
        all.extend(d.send_data(&line, s(1), T));
    }
    let msgs = published(&all);
    assert_eq!(
        msgs.len(),
        1,
        "edge devices send no reporting; one rule match: {msgs:?}"
    );
    assert_eq!(msgs[0]["mt"], 3);
    assert_eq!(msgs[0]["d"][0]["cv"], json!({"temp":45}));
    assert_eq!(msgs[0]["d"][0]["rg"], "rule-1");
    assert_eq!(msgs[0]["d"][0]["sg"], "es-1");
    assert_eq!(msgs[0]["d"][0]["ct"], "gw#temp > 40");
    assert!(all.iter().any(|a| matches!(a, Action::RuleCommand { unique_id, raw } if unique_id == "gw01" && raw["command"] == "fan on")));

    assert_eq!(d.next_wake(), Some(s(5)));
    let w5 = published(&d.tick(s(5), T));
    assert_eq!(w5[0]["mt"], 2);
    assert_eq!(w5[0]["d"][0]["id"], "c1");
    assert_eq!(w5[0]["d"][0]["d"], json!([{"level":[0, 2]}]));
    assert_eq!(d.pending_until(), Some(s(10)));
    let w10 = published(&d.tick(s(10), T));
    assert_eq!(
        w10[0]["d"][0]["d"],
        json!([{"temp":[10, 45, 85, 85.0 / 3.0, 3, 45]}])
    );
    assert!(d.tick(s(20), T).is_empty());
}

#[test]
fn commands_acks_and_stop() {
    let mut d = Device::new(id(), sync(false), None, s(0)).unwrap();
    let a = d.on_message(
        "devices/gw01/messages/devicebound/%24.to=x",
        br#"{"cmdType":"0x01","data":{"cpid":"CPID","guid":"g","uniqueId":"c1","command":"reboot 5","ack":false,"ackId":"ack-1","cmdType":"0x01"}}"#,
    );
    let [Action::Command { command, raw }] = &a[..] else {
        panic!("{a:?}")
    };
    assert_eq!(command.ack_id.as_deref(), Some("ack-1"));
    assert_eq!(raw["command"], "reboot 5");
    let ack = d.ack(
        AckKind::Command,
        AckData {
            ack_id: "ack-1".into(),
            st: 6,
            msg: "done".into(),
            child_id: String::new(),
        },
        T,
    );
    let v: Value = serde_json::from_slice(&ack.payload).unwrap();
    assert_eq!(v["mt"], 5);
    assert_eq!(v["uniqueId"], "gw01");
    assert_eq!(
        v["d"],
        json!({"ackId":"ack-1","st":6,"msg":"done","childId":""})
    );
    assert_eq!(ack.topic, "devices/gw01/messages/events/");

    assert_eq!(
        d.on_message(
            "devices/gw01/messages/devicebound/",
            br#"{"cmdType":"0x13","data":{}}"#
        ),
        vec![Action::Resync(SyncScope::Device)]
    );
    assert!(
        matches!(&d.on_message("devices/gw01/messages/devicebound/", br#"{"cmdType":"0x14"}"#)[..], [Action::Ignored(m)] if m.contains("0x14"))
    );
    assert!(matches!(
        &d.on_message("devices/gw01/messages/devicebound/", b"not json")[..],
        [Action::Ignored(_)]
    ));
    assert_eq!(
        d.on_message(
            "devices/gw01/messages/devicebound/",
            br#"{"cmdType":"0x99","data":{}}"#
        ),
        vec![Action::Barred]
    );
    assert!(d.is_barred());
    assert!(
        matches!(&d.send_data(&records(r#"{"uniqueId":"gw01","data":{"temp":1}}"#), s(50), T)[..], [Action::Ignored(m)] if m.contains("barred"))
    );
}

#[test]
fn twin_topics_are_matched_to_this_device() {
    let mut d = Device::new(id(), sync(false), None, s(0)).unwrap();
    let r = d.twin_report("fw", json!("1.2"));
    assert!(
        r.topic
            .starts_with("$iothub/twin/PATCH/properties/reported/?$rid=gw01:")
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&r.payload).unwrap(),
        json!({"fw":"1.2"})
    );
    let g = d.twin_get();
    let rid = topics::query_param(&g.topic, "$rid").unwrap();
    let a = d.on_message(
        &topics::twin_res(200, &rid, None),
        br#"{"desired":{"a":1,"$version":2},"reported":{}}"#,
    );
    assert_eq!(
        a,
        vec![Action::TwinFull(
            json!({"desired":{"a":1,"$version":2},"reported":{},"uniqueId":"gw01"})
        )]
    );
    assert!(
        d.on_message(&topics::twin_res(200, "other:1", None), b"{}")
            .is_empty()
    );
    let a = d.on_message(&topics::twin_desired(3, None), br#"{"a":2,"$version":3}"#);
    assert_eq!(
        a,
        vec![Action::TwinDesired(
            json!({"desired":{"a":2,"$version":3},"uniqueId":"gw01"})
        )]
    );
    assert!(
        d.on_message(&topics::twin_desired(3, Some("other")), b"{}")
            .is_empty()
    );
}

#[test]
fn partial_sync_rebuilds_only_what_changed_and_bad_windows_fail() {
    let mut d = Device::new(id(), sync(true), None, s(0)).unwrap();
    let part = SyncData {
        sc: Some(serde_json::from_value(json!({"df": 3})).unwrap()),
        ..SyncData::default()
    };
    d.apply_sync(SyncScope::SdkConfig, part, s(1)).unwrap();
    assert_eq!(d.df(), s(3));
    assert_eq!(d.next_wake(), Some(s(5)), "windows keep their alignment");
    let mut bad = sync(true);
    bad.att = Some(
        serde_json::from_value(json!([{"p":"","tg":"","d":[{"ln":"t","dt":0,"tg":"gw"}]}]))
            .unwrap(),
    );
    assert!(matches!(
        Device::new(id(), bad, None, s(0)),
        Err(DeviceError::Window(_))
    ));
    let mut refused = sync(false);
    refused.rc = Some(4);
    assert!(
        Device::new(id(), refused, None, s(0))
            .unwrap_err()
            .to_string()
            .contains("DEV_INACTIVE")
    );
}

#[test]
fn get_attributes_lists_one_entry_per_tag() {
    let d = Device::new(id(), sync(false), None, s(0)).unwrap();
    let a = d.attributes();
    assert_eq!(a.as_array().unwrap().len(), 2);
    assert_eq!(a[0]["device"], json!({"id":"gw01","tg":"gw"}));
    assert_eq!(a[0]["attributes"][0]["dt"], "NUMBER");
    assert_eq!(a[1]["attributes"][0]["ln"], "level");
    assert_eq!(a[1]["attributes"][0]["dt"], "FLOAT");
}
