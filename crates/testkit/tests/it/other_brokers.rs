//! The other brokers testkit starts: a 3-node NATS cluster carries a QoS 1 message from one
//! node to a persistent subscriber on another, keeps doing so with a node killed, and takes the
//! node back; a private RabbitMQ node carries MQTT QoS 1 messages.

use std::process::{Command, Stdio};
use std::time::Instant;

use testkit::{NatsCluster, RabbitMq};

/// A confirmed QoS 1 publish, tried again (bounded) when the broker drops the connection, as
/// NATS does while JetStream elects a new leader after a node is lost.
fn publish(port: u16, topic: &str, msg: &str) -> u32 {
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let out = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(["-t", topic, "-m", msg])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if out.status.success() {
            return attempts;
        }
        assert!(Instant::now() < deadline, "mosquitto_pub: {out:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Collects `n` messages from a persistent session `id` on `port` (bounded).
fn receive(port: u16, topic: &str, id: &str, n: usize) -> Vec<String> {
    let out = Command::new("timeout")
        .args([
            "20",
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(["-q", "1", "-c", "-i", id, "-t", topic, "-C", &n.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Makes the persistent session `id` exist (subscribed), then leaves.
fn subscribe_once(port: u16, topic: &str, id: &str) {
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-c"])
        .args(["-i", id, "-t", topic, "-E"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "mosquitto_sub -E: {out:?}");
}

#[test]
fn nats_cluster_routes_qos1_across_nodes_and_survives_a_node() {
    let started = Instant::now();
    let mut c = NatsCluster::start(3);
    eprintln!("3-node NATS cluster up in {:?}", started.elapsed());
    let (n1, n2) = (c.mqtt_port(0), c.mqtt_port(1));
    subscribe_once(n2, "t/a", "sub-on-n2");
    publish(n1, "t/a", "one");
    c.kill(2);
    let attempts = publish(n1, "t/a", "two");
    eprintln!("publish after the kill took {attempts} attempt(s)");
    assert_eq!(receive(n2, "t/a", "sub-on-n2", 2), ["one", "two"]);
    c.restart(2);
    publish(c.mqtt_port(2), "t/a", "three");
    assert_eq!(receive(n2, "t/a", "sub-on-n2", 1), ["three"]);
}

#[test]
fn rabbitmq_node_carries_qos1_to_a_persistent_session() {
    let started = Instant::now();
    let r = RabbitMq::shared();
    eprintln!("RabbitMQ up in {:?}", started.elapsed());
    subscribe_once(r.mqtt_port(), "t/b", "rb-sub");
    publish(r.mqtt_port(), "t/b", "queued while away");
    assert_eq!(
        receive(r.mqtt_port(), "t/b", "rb-sub", 1),
        ["queued while away"]
    );
}
