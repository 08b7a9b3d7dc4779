//! The fault proxy: forwarding, cut, blocking.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use testkit::{Broker, BrokerOpts, FaultProxy, Subscriber, free_port};

use crate::{Auth, assert_fails, assert_ok, mosquitto_pub};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn forwards_cuts_and_blocks() {
    let broker = Broker::start(BrokerOpts::new());
    let sub = Subscriber::start(&broker, "proxy/#", 1, None);
    let proxy = FaultProxy::start(broker.port_plain());
    assert_eq!(proxy.url(), format!("mqtt://127.0.0.1:{}", proxy.port()));
    let via_proxy = Auth::Plain(proxy.port());

    assert_ok(
        &mosquitto_pub(&via_proxy, "proxy/1", "a"),
        "through the proxy",
    );
    assert_eq!(proxy.connections_accepted(), 1);

    // A live connection is cut; new ones still work.
    let mut held = TcpStream::connect(("127.0.0.1", proxy.port())).expect("connect");
    held.set_read_timeout(Some(WAIT)).expect("timeout");
    let deadline = std::time::Instant::now() + WAIT;
    while proxy.connections_open() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    proxy.cut();
    let mut buf = [0u8; 8];
    assert!(
        matches!(held.read(&mut buf), Ok(0) | Err(_)),
        "cut closes the client side"
    );
    assert_ok(&mosquitto_pub(&via_proxy, "proxy/2", "b"), "after cut");

    proxy.set_blocked(true);
    assert_fails(
        &mosquitto_pub(&via_proxy, "proxy/bad", "x"),
        "while blocked",
    );
    assert!(proxy.connections_refused() >= 1);
    proxy.set_blocked(false);
    assert_ok(
        &mosquitto_pub(&via_proxy, "proxy/3", "c"),
        "after unblocking",
    );

    let got = sub.wait_for_count(3, WAIT);
    assert_eq!(
        got,
        vec![
            ("proxy/1".into(), "a".into()),
            ("proxy/2".into(), "b".into()),
            ("proxy/3".into(), "c".into()),
        ]
    );
}

#[test]
fn unreachable_upstream_closes_the_client() {
    let proxy = FaultProxy::start(free_port());
    assert_fails(
        &mosquitto_pub(&Auth::Plain(proxy.port()), "x", "y"),
        "no upstream",
    );
    assert_eq!(proxy.connections_accepted(), 0);
}
