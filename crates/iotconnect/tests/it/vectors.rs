//! The documented payloads under `tests/vectors/` (each names its source) parsed by the protocol
//! types, and re-encoded where the type is used in both directions.

use iotconnect::protocol::v1::ack::AckMessage;
use iotconnect::protocol::v1::c2d::{C2d, ota_targets};
use iotconnect::protocol::v1::envelope::D2c;
use iotconnect::protocol::v1::sync::{
    DeviceRef, DiscoveryResponse, SyncData, SyncOptions, SyncRequest, SyncScope,
};
use serde_json::{Value, json};

fn vector(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(
        v["source"].as_str().is_some_and(|s| !s.is_empty()),
        "{name} must cite its source"
    );
    serde_json::to_vec(&v["payload"]).unwrap()
}

#[test]
fn ota_with_plain_string_urls() {
    let C2d::Ota(o) = C2d::parse(&vector("c2d_ota_string_urls.json")).unwrap() else {
        panic!()
    };
    assert_eq!(o.urls.len(), 1);
    assert!(
        o.urls[0]
            .url
            .starts_with("https://pociotconnectblobstorage")
    );
    assert_eq!(o.ver.sw, "0.1");
    assert_eq!(
        o.command.ack_id.as_deref(),
        Some("8a4510e3-1f87-452a-9763-05647fdc3f0e")
    );
    assert_eq!(o.command.cp_id, "MyCpid");
}

#[test]
fn ota_with_url_objects_and_gateway_targets() {
    let C2d::Ota(o) = C2d::parse(&vector("c2d_ota_object_urls.json")).unwrap() else {
        panic!()
    };
    assert_eq!(o.ver.hw, "0.1");
    assert!(o.urls[0].tag.is_none() && o.urls[0].unique_id.is_none());
    let C2d::Ota(o) = C2d::parse(&vector("c2d_ota_gateway_children.json")).unwrap() else {
        panic!()
    };
    let devices =
        [("gw01", "gw"), ("child01", "sensor"), ("child02", "sensor")].map(|(id, tg)| DeviceRef {
            id: id.into(),
            tg: tg.into(),
        });
    let t = ota_targets(&o, &devices, "gw01");
    let ids: Vec<(&str, &str, usize)> = t
        .iter()
        .map(|t| (t.unique_id.as_str(), t.child_id.as_str(), t.urls.len()))
        .collect();
    assert_eq!(
        ids,
        [
            ("gw01", "", 1),
            ("child01", "child01", 2),
            ("child02", "child02", 1)
        ]
    );
    // Round trip through the cloud's encoder.
    assert_eq!(
        C2d::parse(C2d::Ota(o.clone()).to_json().to_string().as_bytes()).unwrap(),
        C2d::Ota(o)
    );
}

#[test]
fn command_df_stop_resync_and_connection_status() {
    let c = C2d::parse(&vector("c2d_command.json")).unwrap();
    let C2d::Command(cmd) = &c else { panic!() };
    assert_eq!(cmd.command, "led on");
    assert!(!cmd.ack);
    assert_eq!(C2d::parse(c.to_json().to_string().as_bytes()).unwrap(), c);
    assert_eq!(
        C2d::parse(&vector("c2d_df.json")).unwrap(),
        C2d::DataFrequency { df: 30 }
    );
    assert_eq!(C2d::parse(&vector("c2d_stop.json")).unwrap(), C2d::Stop);
    assert!(matches!(
        C2d::parse(&vector("c2d_resync_attribute.json")).unwrap(),
        C2d::Resync {
            scope: SyncScope::Attribute,
            ..
        }
    ));
    assert_eq!(
        C2d::parse(&vector("c2d_connection_status.json")).unwrap(),
        C2d::ConnectionStatus { connected: true }
    );
    let made = iotconnect::protocol::v1::c2d::connection_status("MyCpid", "MyDeviceId", true);
    assert_eq!(
        serde_json::to_vec(&made).unwrap(),
        vector("c2d_connection_status.json")
    );
}

#[test]
fn d2c_messages_roundtrip() {
    let raw = vector("d2c_telemetry.json");
    let D2c::Telemetry(t) = D2c::decode(&raw).unwrap() else {
        panic!()
    };
    assert_eq!(t.d[0].d[0]["gyro"], json!({"x": -1.2}));
    assert_eq!(
        serde_json::to_value(&t).unwrap(),
        serde_json::from_slice::<Value>(&raw).unwrap()
    );
    for name in ["d2c_ack_ota_child.json", "d2c_ack_c_library.json"] {
        let D2c::Ack(a) = D2c::decode(&vector(name)).unwrap() else {
            panic!("{name}")
        };
        assert_eq!(a.d.st, 7);
        let back: AckMessage = serde_json::from_slice(&a.to_bytes()).unwrap();
        assert_eq!(back, a);
    }
}

#[test]
fn discovery_and_sync() {
    let d = DiscoveryResponse::parse(&vector("discovery_response.json")).unwrap();
    assert_eq!(
        d.sync_url(),
        "https://avnetagent.iotconnect.io/api/2.0/agent/sync"
    );
    let req: SyncRequest = serde_json::from_slice(&vector("sync_request.json")).unwrap();
    assert_eq!(req.option, SyncOptions::for_scope(SyncScope::All));
    assert_eq!(
        serde_json::to_value(&req).unwrap(),
        serde_json::from_slice::<Value>(&vector("sync_request.json")).unwrap()
    );
    let s = SyncData::parse_reply(&vector("sync_response.json")).unwrap();
    s.check("your-device-duid").unwrap();
    let p = s.p.clone().unwrap();
    assert_eq!(
        (p.h.as_str(), p.p),
        ("poc-iotconnect-iothub-eu.azure-devices.net", 8883)
    );
    assert_eq!(p.publish, "devices/your-device-duid/messages/events/");
    assert_eq!(s.sc.as_ref().unwrap().df, Some(30));
    assert!(!s.is_edge());
    assert_eq!(s.at, Some(2));
}

#[test]
fn v21_discovery_and_identity_answers() {
    use iotconnect::protocol::v2::Discovery;
    use iotconnect::protocol::v2::identity::IdentityAnswer;
    let d = Discovery::parse(&vector("v21_discovery_response.json"), "dev").unwrap();
    assert!(d.bu.starts_with("https://diavnet.iotconnect.io/api/2.1/agent/device-identity/"));
    let az = IdentityAnswer::parse(&vector("v21_identity_azure.json"), "mydevice").unwrap();
    assert_eq!(az.p.topics.c2d, "devices/mydevice/messages/devicebound/#");
    assert!(az.p.topics.di.contains("&di=1&"));
    assert!(az.has.attr && az.meta.gtw.is_none());
    let aws = IdentityAnswer::parse(&vector("v21_identity_aws.json"), "apptest").unwrap();
    assert_eq!(aws.p.topics.rpt, "$aws/rules/msg_d2c_rpt/apptest/2.1/0");
    assert_eq!(aws.meta.at, Some(7));
    assert!(aws.p.un.is_empty());
}

#[test]
fn v21_c2d_and_d2c_shapes() {
    use iotconnect::protocol::v2::c2d::C2d21;
    use iotconnect::protocol::v2::d2c;
    assert_eq!(
        C2d21::parse(&vector("v21_c2d_command.json")).unwrap(),
        C2d21::Command {
            cmd: "test enabled".into(),
            ack: Some("ABCDEFG".into()),
            id: None
        }
    );
    let C2d21::Ota { urls, sw, ack, .. } = C2d21::parse(&vector("v21_c2d_ota.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!((sw.as_str(), ack.as_deref()), ("1.5", Some("ABCDEFG")));
    assert_eq!(urls[0].file_name.as_deref(), Some("file1.bin"));
    // Our ack encodes to the library's shape plus the optional `dt`.
    let ours: Value =
        serde_json::from_slice(&d2c::ack("T", "ABCDEFG", 1, 3, "Test", None)).unwrap();
    let theirs: Value = serde_json::from_slice(&vector("v21_d2c_ack.json")).unwrap();
    assert_eq!(ours["d"], theirs["d"]);
    assert_eq!(ours["dt"], "T");
    let t: Value = serde_json::from_slice(&vector("v21_d2c_telemetry.json")).unwrap();
    let entry = d2c::Entry {
        id: Some("child01".into()),
        tg: Some("sensor".into()),
        dt: Some("2024-10-25T20:57:50.000Z".into()),
        d: t["d"][0]["d"].as_object().unwrap().clone(),
        rule: None,
    };
    let ours: Value =
        serde_json::from_slice(&d2c::telemetry("2024-10-25T20:57:57.481Z", &[entry])).unwrap();
    assert_eq!(ours, t);
}
