//! The agent against a real mosquitto, over TLS + password and over WebSockets inside TLS, with
//! username `authorization` and a token, the cloud side running on the plain listener.

use std::time::Duration;

use gooee::agent::{Agent, AgentError, Event, Outcome, PublishOptions};
use gooee::protocol::{Check, MetaEntry, MetaList, Publication};
use serde_json::json;
use testkit::Subscriber;
use transport::{Qos, SessionOptions};

use crate::{CloudTask, GooeeBroker, TOKEN, blocking};

fn watch(ms: u64) -> PublishOptions {
    PublishOptions {
        watch_rejected: Some(Duration::from_millis(ms)),
        ..PublishOptions::default()
    }
}

fn listeners(gb: &GooeeBroker, token: &str) -> [(&'static str, SessionOptions); 2] {
    [("tls", gb.tls(token)), ("wss", gb.wss(token))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_meta_arrives_on_the_topic_and_its_per_name_subtopic() {
    let gb = blocking(GooeeBroker::start);
    let cloud = CloudTask::start(&gb.broker.url_plain()).await;
    for (i, (kind, opts)) in listeners(&gb, TOKEN).into_iter().enumerate() {
        let device = format!("dev-{kind}");
        let sub =
            blocking(|| Subscriber::start(&gb.broker, &format!("devices/{device}/#"), 1, None));
        let mut agent = Agent::connect(opts)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let list = MetaList(vec![
            MetaEntry::new("temperature", json!(21.5)),
            MetaEntry::new("als", json!(87)),
        ]);
        let p = Publication::meta(&device, &list, Check::Full).unwrap();
        let mut events = Vec::new();
        let outcome = agent
            .publish(&p, watch(300), &mut |e| events.push(e))
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::NotRejected, "{kind}");
        assert!(
            matches!(events[0], Event::Published { qos: 1, .. }),
            "{events:?}"
        );
        let got = blocking(|| sub.wait_for_count(3, Duration::from_secs(10)));
        let topics: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
        assert!(
            topics.contains(&format!("devices/{device}/meta").as_str()),
            "{kind}: {got:?}"
        );
        let temp = got
            .iter()
            .find(|(t, _)| t == &format!("devices/{device}/meta/temperature"))
            .unwrap_or_else(|| panic!("{kind}: no per-name message in {got:?}"));
        let v: serde_json::Value = serde_json::from_str(&temp.1).unwrap();
        assert_eq!(
            (v["name"].clone(), v["value"].clone()),
            (json!("temperature"), json!(21.5))
        );
        assert!(
            topics.contains(&format!("devices/{device}/meta/als").as_str()),
            "{kind}: {got:?}"
        );
        assert_eq!(
            cloud.wait_counter("meta_accepted", i as u64 + 1).await,
            i as u64 + 1
        );
        agent.close().await;
    }
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_meta_name_is_refused_locally_and_nothing_is_sent() {
    let gb = blocking(GooeeBroker::start);
    let sub = blocking(|| Subscriber::start(&gb.broker, "devices/dev-bad/#", 1, None));
    let mut agent = Agent::connect(gb.tls(TOKEN)).await.unwrap();
    let bad = MetaList(vec![MetaEntry::new("Meta_New", json!(10))]);
    let e = Publication::meta("dev-bad", &bad, Check::Full).unwrap_err();
    let e = AgentError::from(e);
    assert_eq!(e.outcome(), transport::Outcome::Usage);
    assert!(e.to_string().contains("`Meta_New`"), "{e}");
    // A valid marker afterwards: once it arrived, anything sent before it would have too.
    let marker = MetaList(vec![MetaEntry::new("als", json!(1))]);
    let p = Publication::meta("dev-bad", &marker, Check::Full).unwrap();
    agent
        .publish(&p, PublishOptions::default(), &mut |_| {})
        .await
        .unwrap();
    let got = blocking(|| sub.wait_for_count(1, Duration::from_secs(10)));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].1.contains("\"als\""),
        "only the marker arrived: {got:?}"
    );
    agent.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_the_platform_rejects_comes_back_through_watch_rejected() {
    let gb = blocking(GooeeBroker::start);
    let cloud = CloudTask::start(&gb.broker.url_plain()).await;
    for (kind, opts) in listeners(&gb, TOKEN) {
        let mut agent = Agent::connect(opts).await.unwrap();
        let bad = MetaList(vec![MetaEntry::new("Meta_New", json!(10))]);
        let p = Publication::meta("dev-r", &bad, Check::TopicOnly).unwrap();
        let mut events = Vec::new();
        let outcome = agent
            .publish(&p, watch(10_000), &mut |e| events.push(e))
            .await
            .unwrap();
        let Outcome::Rejected(r) = outcome else {
            panic!("{kind}: not rejected: {outcome:?}")
        };
        assert_eq!(
            r.error.message,
            "Invalid payload due to regex pattern not matching.  Position: [0]/name. Value: \"Meta_New\"."
        );
        assert!(
            matches!(events.last(), Some(Event::Rejected { matches_sent: true, rejected_topic, .. }) if rejected_topic == "devices/dev-r/meta/rejected"),
            "{kind}: {events:?}"
        );
        agent.close().await;
    }
    assert_eq!(cloud.report().get("meta_rejected"), 2);
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_a_clear_error() {
    let gb = blocking(GooeeBroker::start);
    for (kind, opts) in listeners(&gb, "wrong-token") {
        let Err(e) = Agent::connect(opts).await else {
            panic!("{kind}: connected with a wrong token")
        };
        assert!(
            matches!(e, AgentError::TokenRefused { .. }),
            "{kind}: {e:?}"
        );
        assert_eq!(e.outcome(), transport::Outcome::Failure);
        let s = e.to_string();
        assert!(
            s.contains("refused the login as `authorization`") && s.contains("CONNACK code 5"),
            "{kind}: {s}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_follow_the_table_and_receive_counts() {
    let gb = blocking(GooeeBroker::start);
    let mut agent = Agent::connect(gb.wss(TOKEN)).await.unwrap();
    let e = agent
        .subscribe(&["devices/d/#".into()], Qos::AtLeastOnce)
        .await
        .unwrap_err();
    assert!(matches!(e, AgentError::Refused(_)), "{e:?}");
    agent
        .subscribe(&["spaces/s1/actions/+".into()], Qos::AtLeastOnce)
        .await
        .unwrap();
    let cloud = CloudTask::start(&gb.broker.url_plain()).await;
    let mut sender = Agent::connect(gb.tls(TOKEN)).await.unwrap();
    let a = gooee::protocol::Action::decode(&crate::vector("space_actions.json")).unwrap();
    let p = Publication::action(gooee::protocol::Entity::Space, "s1", &a, Check::Full).unwrap();
    sender
        .publish(&p, PublishOptions::default(), &mut |_| {})
        .await
        .unwrap();
    let mut seen = Vec::new();
    let n = agent
        .receive(
            Some(1),
            tokio::time::sleep(Duration::from_secs(10)),
            &mut |e| seen.push(e),
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(
        matches!(&seen[0], Event::Message { topic, .. } if topic == "spaces/s1/actions/off"),
        "{seen:?}"
    );
    sender.close().await;
    agent.close().await;
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_acl_drops_what_the_table_forbids() {
    // A raw session as `authorization`, bypassing the agent's check: mosquitto's ACL (generated
    // from the table) drops the forbidden publish; the marker after it arrives alone.
    let gb = blocking(GooeeBroker::start);
    let sub = blocking(|| Subscriber::start(&gb.broker, "devices/dev-acl/#", 1, None));
    let (s, _in) = transport::Session::start(gb.tls(TOKEN), transport::Outbox::memory(4))
        .await
        .unwrap();
    for topic in ["devices/dev-acl/meta/als", "devices/dev-acl/meta"] {
        let payload = format!("[{{\"name\":\"als\",\"value\":1,\"via\":\"{topic}\"}}]");
        s.publish(transport::Message::new(topic, payload))
            .await
            .unwrap()
            .confirmed()
            .await
            .unwrap();
    }
    let got = blocking(|| sub.wait_for_count(1, Duration::from_secs(10)));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "devices/dev-acl/meta");
    s.close(Duration::from_secs(1)).await;
}
