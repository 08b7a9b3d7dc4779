//! The mosquitto_sub collector, in particular across a broker restart.

use std::time::Duration;

use testkit::{Broker, BrokerOpts, Subscriber};

use crate::{Auth, assert_ok, mosquitto_pub};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn wait_until_times_out_with_what_arrived() {
    let broker = Broker::start(BrokerOpts::new());
    let sub = Subscriber::start(&broker, "#", 0, None);
    assert_ok(
        &mosquitto_pub(&Auth::Plain(broker.port_plain()), "a/b", "one"),
        "publish",
    );
    let got = sub.wait_until(Duration::from_millis(300), |m| m.len() >= 2);
    assert_eq!(
        got,
        vec![("a/b".into(), "one".into())],
        "probes are filtered out"
    );
}

#[test]
fn persistent_subscriber_survives_broker_restart() {
    let mut broker = Broker::start(BrokerOpts::new().persistence(true));
    let sub = Subscriber::start(&broker, "persist/#", 1, Some("testkit-persist-1"));
    broker.stop();
    broker.restart();
    assert_ok(
        &mosquitto_pub(
            &Auth::Plain(broker.port_plain()),
            "persist/a",
            "after restart",
        ),
        "publish after restart",
    );
    // Published before mosquitto_sub reconnected (it retries every second):
    // delivered from the persisted session when it is back.
    let got = sub.wait_for_count(1, WAIT);
    assert_eq!(
        got,
        vec![("persist/a".into(), "after restart".into())],
        "{}",
        broker.log()
    );
    // And the subscription is live again.
    assert_ok(
        &mosquitto_pub(&Auth::Plain(broker.port_plain()), "persist/b", "live"),
        "publish after reconnect",
    );
    let got = sub.wait_for_count(2, WAIT);
    assert_eq!(
        got.get(1),
        Some(&("persist/b".into(), "live".into())),
        "{}",
        broker.log()
    );
}

#[test]
fn queued_qos1_message_survives_broker_restart() {
    let mut broker = Broker::start(BrokerOpts::new().persistence(true));
    let mut sub = Subscriber::start(&broker, "queued/#", 1, Some("testkit-queued-1"));
    sub.stop();
    assert_ok(
        &mosquitto_pub(
            &Auth::Plain(broker.port_plain()),
            "queued/a",
            "while offline",
        ),
        "publish while the subscriber is offline",
    );
    broker.stop();
    broker.restart();
    let sub = Subscriber::start(&broker, "queued/#", 1, Some("testkit-queued-1"));
    let got = sub.wait_for_count(1, WAIT);
    assert_eq!(
        got,
        vec![("queued/a".into(), "while offline".into())],
        "{}",
        broker.log()
    );
}
