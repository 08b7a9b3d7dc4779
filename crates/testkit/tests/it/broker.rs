//! The broker's listeners, their authentication, ACL and stop/kill/restart.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use testkit::{Broker, BrokerOpts, KeyFormat, Pki, Subscriber};

use crate::{Auth, assert_fails, assert_ok, ca, mosquitto_pub};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn starts_and_all_four_ports_accept() {
    let broker = Broker::start(BrokerOpts::new());
    let ports = [
        broker.port_plain(),
        broker.port_mtls(),
        broker.port_tls_password(),
        broker.port_ws(),
    ];
    for port in ports {
        TcpStream::connect(("127.0.0.1", port)).expect("port accepts");
    }
    let mut distinct = ports.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "ports must be distinct: {ports:?}");
    assert_eq!(broker.url_plain(), format!("mqtt://127.0.0.1:{}", ports[0]));
    assert_eq!(broker.url_mtls(), format!("mqtts://localhost:{}", ports[1]));
    assert_eq!(
        broker.url_tls_password(),
        format!("mqtts://localhost:{}", ports[2])
    );
    assert_eq!(broker.url_ws(), format!("ws://127.0.0.1:{}/mqtt", ports[3]));
    assert_eq!(broker.user(), ("edge", "secret-pass"));
    assert!(broker.log().contains("running"), "log: {}", broker.log());
}

#[test]
fn websockets_listener_upgrades_mqtt() {
    let broker = Broker::start(BrokerOpts::new());
    let mut ws = TcpStream::connect(("127.0.0.1", broker.port_ws())).expect("connect ws");
    ws.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        ws,
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: mqtt\r\n\r\n",
        broker.port_ws()
    )
    .expect("send upgrade");
    let mut buf = [0u8; 512];
    let n = ws.read(&mut buf).expect("read upgrade response");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-protocol: mqtt"),
        "{head}"
    );
}

#[test]
fn plain_listener_is_anonymous() {
    let broker = Broker::start(BrokerOpts::new());
    let sub = Subscriber::start(&broker, "plain/#", 1, None);
    assert_ok(
        &mosquitto_pub(&Auth::Plain(broker.port_plain()), "plain/a", "hello world"),
        "anonymous plain publish",
    );
    let got = sub.wait_for_count(1, WAIT);
    assert_eq!(got, vec![("plain/a".into(), "hello world".into())]);
}

#[test]
fn mtls_accepts_a_client_cert_of_its_ca_only() {
    let broker = Broker::start(BrokerOpts::new());
    let sub = Subscriber::start(&broker, "mtls/#", 1, None);
    let ca = ca(&broker);
    let port = broker.port_mtls();

    let good = broker.pki().client("device-1");
    assert_ok(
        &mosquitto_pub(
            &Auth::Mtls {
                port,
                ca: &ca,
                client: Some(&good),
            },
            "mtls/ok",
            "1",
        ),
        "client cert of the broker's CA",
    );
    for fmt in [KeyFormat::Sec1, KeyFormat::Pkcs1] {
        let c = broker.pki().client_with_key_format("device-2", fmt);
        assert_ok(
            &mosquitto_pub(
                &Auth::Mtls {
                    port,
                    ca: &ca,
                    client: Some(&c),
                },
                "mtls/ok",
                "2",
            ),
            &format!("client cert with a {fmt:?} key"),
        );
    }
    assert_eq!(sub.wait_for_count(3, WAIT).len(), 3);
    assert!(
        broker.log().contains("device-1"),
        "the CN is the user name; log:\n{}",
        broker.log()
    );

    assert_fails(
        &mosquitto_pub(
            &Auth::Mtls {
                port,
                ca: &ca,
                client: None,
            },
            "mtls/bad",
            "x",
        ),
        "no client cert",
    );
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = Pki::generate(other_dir.path()).client("device-1");
    assert_fails(
        &mosquitto_pub(
            &Auth::Mtls {
                port,
                ca: &ca,
                client: Some(&other),
            },
            "mtls/bad",
            "x",
        ),
        "client cert of another CA",
    );
    let expired = broker.pki().expired_client("device-1");
    assert_fails(
        &mosquitto_pub(
            &Auth::Mtls {
                port,
                ca: &ca,
                client: Some(&expired),
            },
            "mtls/bad",
            "x",
        ),
        "expired client cert",
    );
    // The broker's certificate does not verify against another CA either.
    let other_ca = other_dir.path().join("ca.pem");
    assert_fails(
        &mosquitto_pub(
            &Auth::Mtls {
                port,
                ca: &other_ca,
                client: Some(&good),
            },
            "mtls/bad",
            "x",
        ),
        "server cert checked against another CA",
    );
    // A marker through the good path after the refused ones: the broker routes in order, so
    // once the marker is here, anything a refused client got through would be here too.
    assert_ok(
        &mosquitto_pub(
            &Auth::Mtls {
                port,
                ca: &ca,
                client: Some(&good),
            },
            "mtls/ok",
            "marker",
        ),
        "marker after the refused clients",
    );
    let got = sub.wait_until(WAIT, |m| m.iter().any(|(_, p)| p == "marker"));
    let topics: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(topics, ["mtls/ok"; 4], "{got:?}");
}

#[test]
fn password_listener_needs_a_valid_user() {
    let broker = Broker::start(BrokerOpts::new().user("second", "pw2"));
    let sub = Subscriber::start(&broker, "pw/#", 1, None);
    let ca = ca(&broker);
    let port = broker.port_tls_password();
    let (user, pass) = broker.user();

    assert_ok(
        &mosquitto_pub(
            &Auth::Password {
                port,
                ca: &ca,
                user: Some((user, pass)),
            },
            "pw/ok",
            "1",
        ),
        "first user",
    );
    assert_ok(
        &mosquitto_pub(
            &Auth::Password {
                port,
                ca: &ca,
                user: Some(("second", "pw2")),
            },
            "pw/ok",
            "2",
        ),
        "second user",
    );
    assert_fails(
        &mosquitto_pub(
            &Auth::Password {
                port,
                ca: &ca,
                user: Some((user, "wrong")),
            },
            "pw/bad",
            "x",
        ),
        "wrong password",
    );
    assert_fails(
        &mosquitto_pub(
            &Auth::Password {
                port,
                ca: &ca,
                user: Some(("nobody", pass)),
            },
            "pw/bad",
            "x",
        ),
        "unknown user",
    );
    assert_fails(
        &mosquitto_pub(
            &Auth::Password {
                port,
                ca: &ca,
                user: None,
            },
            "pw/bad",
            "x",
        ),
        "anonymous",
    );
    assert_eq!(
        sub.wait_for_count(2, WAIT),
        vec![("pw/ok".into(), "1".into()), ("pw/ok".into(), "2".into())]
    );
}

#[test]
fn acl_applies_and_subscriber_probes_still_work() {
    let acl = "topic read acl/#\n\nuser edge\ntopic readwrite acl/#\n";
    let broker = Broker::start(BrokerOpts::new().acl(acl));
    let sub = Subscriber::start(&broker, "acl/#", 1, None);
    let ca = ca(&broker);
    // Anonymous may read but not write: QoS 1 is still acknowledged (MQTT
    // 3.1.1 has no way to say "denied"), but nothing is delivered.
    assert_ok(
        &mosquitto_pub(&Auth::Plain(broker.port_plain()), "acl/denied", "x"),
        "anonymous publish (acked, dropped)",
    );
    let (user, pass) = broker.user();
    assert_ok(
        &mosquitto_pub(
            &Auth::Password {
                port: broker.port_tls_password(),
                ca: &ca,
                user: Some((user, pass)),
            },
            "acl/allowed",
            "y",
        ),
        "edge publish",
    );
    // A marker after both: once it is here, the denied message would be too, had it been
    // delivered (the broker routes in order).
    assert_ok(
        &mosquitto_pub(
            &Auth::Password {
                port: broker.port_tls_password(),
                ca: &ca,
                user: Some((user, pass)),
            },
            "acl/allowed",
            "marker",
        ),
        "marker publish",
    );
    let got = sub.wait_until(WAIT, |m| m.iter().any(|(_, p)| p == "marker"));
    assert_eq!(
        got,
        vec![
            ("acl/allowed".into(), "y".into()),
            ("acl/allowed".into(), "marker".into())
        ]
    );
}

#[test]
fn restart_keeps_ports_and_kill_is_hard() {
    let mut broker = Broker::start(BrokerOpts::new());
    let plain = broker.port_plain();
    assert!(broker.is_running());
    broker.kill();
    assert!(!broker.is_running());
    assert!(TcpStream::connect(("127.0.0.1", plain)).is_err());
    broker.restart();
    assert!(broker.is_running());
    assert_eq!(broker.port_plain(), plain);
    assert_ok(
        &mosquitto_pub(&Auth::Plain(plain), "after/restart", "x"),
        "publish after restart",
    );
    broker.stop();
    assert!(!broker.is_running());
    broker.restart(); // from stopped
    broker.restart(); // while running: stops first
    assert!(broker.is_running());
    for port in [
        broker.port_mtls(),
        broker.port_tls_password(),
        broker.port_ws(),
    ] {
        TcpStream::connect(("127.0.0.1", port)).expect("port accepts after restart");
    }
}

#[test]
#[should_panic(expected = "Unknown configuration variable")]
fn start_failure_panics_with_the_broker_output() {
    let _ = Broker::start(BrokerOpts::new().extra_conf("no_such_option 1"));
}

#[test]
#[should_panic(expected = "the test itself failed")]
fn dropping_a_broker_while_panicking_is_safe() {
    let broker = Broker::start(BrokerOpts::new());
    assert!(broker.port_plain() == 0, "the test itself failed");
}
