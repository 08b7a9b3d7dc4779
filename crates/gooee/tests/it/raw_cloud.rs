//! The platform side on a real mosquitto, fed the documentation's bytes by a raw MQTT client
//! (not our agent), judged by an independent `mosquitto_sub` (on `devices/d1/+/+`, since it
//! prints one line per message and the documentation's payloads span lines).

use std::sync::Arc;
use std::time::Duration;

use cloudkit::CloudSide;
use testkit::Subscriber;
use transport::{Message, Outbox, Session, SessionOptions};

use crate::{CloudTask, GooeeBroker, blocking, vector};

async fn raw_publish(url: &str, topic: &str, payload: Vec<u8>) {
    let (s, _in) = Session::start(SessionOptions::new(url.parse().unwrap()), Outbox::memory(4))
        .await
        .unwrap();
    s.publish(Message::new(topic, payload))
        .await
        .unwrap()
        .confirmed()
        .await
        .unwrap();
    s.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_payloads_get_the_documented_answers() {
    let gb = blocking(GooeeBroker::start);
    let b = &gb.broker;
    let cloud = CloudTask::start(&b.url_plain()).await;
    let sub = blocking(|| Subscriber::start(b, "devices/d1/+/+", 1, None));
    let plain = b.url_plain();
    raw_publish(&plain, "devices/d1/meta", vector("device_meta.json")).await;
    let example: serde_json::Value = serde_json::from_slice(&vector("rejected_meta.json")).unwrap();
    raw_publish(
        &plain,
        "devices/d1/meta",
        serde_json::to_vec(&example["data"]).unwrap(),
    )
    .await;
    raw_publish(&plain, "devices/d1/actions", vector("device_actions.json")).await;
    let got = blocking(|| sub.wait_for_count(4, Duration::from_secs(10)));
    let find = |topic: &str| {
        let (_, p) = got
            .iter()
            .find(|(t, _)| t == topic)
            .unwrap_or_else(|| panic!("nothing on {topic}; got {got:?}"));
        serde_json::from_str::<serde_json::Value>(p).unwrap()
    };
    let one_line = |f: &str| serde_json::from_slice::<serde_json::Value>(&vector(f)).unwrap();
    assert_eq!(
        find("devices/d1/meta/temperature"),
        one_line("device_meta_name.json")
    );
    assert_eq!(find("devices/d1/meta/rejected"), example);
    assert_eq!(
        find("devices/d1/actions/dim"),
        one_line("device_actions_type.json")
    );
    assert_eq!(cloud.report().get("meta_relayed"), 2);
    cloud.stop().await;
}

#[test]
fn the_registry_entry_type_checks() {
    let cloud: Arc<dyn CloudSide> = Arc::new(gooee::cloud::GooeeCloud::default());
    assert_eq!(cloud.name(), "gooee");
    assert_eq!(cloud.filters().len(), 14);
    assert!(cloud.policy().is_some());
}
