//! Faults a field deployment meets every week (issue #13): a TLS handshake cut short by a load
//! balancer or a restarting broker, a broker that accepts and then drops the client, a message
//! over the packet limit, connections cut while messages come in, and a consumer that falls
//! behind. Each through testkit's fault proxy in front of a real mosquitto.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::Packet;
use testkit::{BrokerOpts, Fault, FaultProxy, Subscriber};
use transport::session::StartError;
use transport::{ConnectError, Message, Outbox, Qos, Session, SpoolConfig, StartMode};

use crate::{blocking, broker, opts, tally};

/// Waits (polling, with a deadline) until `cond` holds.
async fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn gaps(arrivals: &[Instant]) -> Vec<Duration> {
    arrivals.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Every way a TLS handshake can be cut short, once each, in front of an mTLS broker.
fn handshake_faults() -> [Fault; 5] {
    [
        Fault::ResetOnAccept,
        Fault::CloseAfterClientBytes,
        Fault::ResetAfterClientBytes,
        // Part of the server's flight (ServerHello, certificate...), then the close.
        Fault::CloseAfterServerBytes(300),
        Fault::CloseOnAccept,
    ]
}

// See: issue #13, case 1 (`iot-sim pub --spool` exited at once on a handshake reset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshakes_cut_short_are_retried_on_the_first_connect_and_on_reconnects() {
    let b = broker(BrokerOpts::new().max_queued(100_000));
    let sub = blocking(|| Subscriber::start(&b, "hs/#", 1, Some("hs-sub")));
    let proxy = FaultProxy::start(b.port_mtls());
    proxy.script(handshake_faults());
    let client = b.pki().client("device-hs");
    let mut o = opts(&format!("mqtts://127.0.0.1:{}", proxy.port()));
    o.tls.ca_files = vec![b.pki().ca_cert()];
    o.tls.client_cert = Some(client.cert);
    o.tls.client_key = Some(client.key);
    o.start_mode = StartMode::Background;
    o.backoff_initial = Duration::from_millis(40);
    o.backoff_max = Duration::from_millis(400);
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Session::start(o, Outbox::disk(SpoolConfig::new(dir.path())).unwrap())
        .await
        .unwrap();
    for i in 0..100u64 {
        s.publish(Message::new("hs/n", i.to_string()))
            .await
            .unwrap();
    }
    assert_eq!(s.flush(Duration::from_secs(30)).await, 0, "all confirmed");
    let first = proxy.arrivals();
    assert_eq!(
        first.len(),
        6,
        "five cut handshakes, then the one that worked"
    );
    for (i, gap) in gaps(&first).iter().enumerate() {
        // The back-off doubles from 40 ms with "equal jitter": at least half of each step.
        let floor = Duration::from_millis(20 << i).min(Duration::from_millis(200));
        assert!(
            *gap >= floor,
            "attempt {} came after {gap:?} (< {floor:?})",
            i + 2
        );
    }

    // Mid-stream: the connection is cut and every reconnect meets the same faults first.
    proxy.script(handshake_faults());
    proxy.cut();
    for i in 100..200u64 {
        s.publish(Message::new("hs/n", i.to_string()))
            .await
            .unwrap();
    }
    assert_eq!(s.flush(Duration::from_secs(30)).await, 0, "all confirmed");
    let all = proxy.arrivals();
    assert_eq!(all.len(), 12, "five more cut handshakes, then a good one");
    for gap in gaps(&all[6..]) {
        assert!(
            gap >= Duration::from_millis(20),
            "reconnects are spaced: {gap:?}"
        );
    }
    assert!(s.status().ended.is_none());
    s.close(Duration::from_secs(1)).await;
    let got = blocking(|| sub.wait_until(Duration::from_secs(20), |m| tally(m, 200).0.is_empty()));
    assert!(tally(&got, 200).0.is_empty(), "all 200 delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_session_still_fails_fast_on_a_handshake_reset_and_says_it_may_pass() {
    let b = broker(BrokerOpts::new());
    let proxy = FaultProxy::start(b.port_mtls());
    proxy.set_fallback(Fault::ResetAfterClientBytes);
    let mut o = opts(&format!("mqtts://127.0.0.1:{}", proxy.port()));
    o.tls.ca_files = vec![b.pki().ca_cert()];
    let started = Instant::now();
    let err = match Session::start(o, Outbox::memory(10)).await {
        Err(StartError::Connect(e)) => e,
        other => panic!("expected a connection error, got {:?}", other.err()),
    };
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    assert!(!err.is_permanent(), "a reset handshake is transient: {err}");
    assert!(err.to_string().contains("TLS handshake"), "{err}");
    assert_eq!(proxy.arrivals().len(), 1, "one attempt, no retry loop");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_accepts_then_drops_the_client_gets_ever_slower_reconnects() {
    let b = broker(BrokerOpts::new());
    let proxy = FaultProxy::start(b.port_plain());
    // The CONNACK (4 bytes) reaches the client, then the connection goes: a policy violation
    // or a duplicate client id at AWS IoT looks like this.
    proxy.set_fallback(Fault::CloseAfterServerBytes(4));
    let mut o = opts(&proxy.url());
    o.start_mode = StartMode::Background;
    o.backoff_initial = Duration::from_millis(40);
    o.backoff_max = Duration::from_secs(5);
    let (s, _) = Session::start(o, Outbox::memory(10)).await.unwrap();
    until("seven connections", Duration::from_secs(30), || {
        proxy.arrivals().len() >= 7
    })
    .await;
    let g = gaps(&proxy.arrivals()[..7]);
    for (i, gap) in g.iter().enumerate() {
        let floor = Duration::from_millis(20 << i);
        assert!(
            *gap >= floor,
            "reconnect {} came after {gap:?}; the back-off must not start over on each CONNACK",
            i + 1
        );
    }
    assert!(s.status().connections >= 6, "each attempt got its CONNACK");
    s.close(Duration::from_millis(100)).await;
}

// See: issue #13, case 2 (one message over 256 KiB wedged a subscriber for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_skipped_once_and_the_messages_behind_it_flow() {
    let b = broker(BrokerOpts::new().persistence(true).max_queued(10_000));
    let mut o = opts(&b.url_plain());
    o.client_id = "oversized-sub".into();
    o.clean_session = false;
    let (sub, mut incoming) = Session::start(o.clone(), Outbox::memory(10)).await.unwrap();
    sub.subscribe(&[("big/#".into(), Qos::AtLeastOnce)])
        .await
        .unwrap();
    let mut po = opts(&b.url_plain());
    po.max_packet_size = 1024 * 1024;
    let (publisher, _) = Session::start(po, Outbox::memory(200)).await.unwrap();
    let huge: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    publisher
        .publish(Message::new("big/huge", huge.clone()))
        .await
        .unwrap();
    for i in 0..100u32 {
        publisher
            .publish(Message::new("big/n", i.to_string()))
            .await
            .unwrap();
    }
    assert_eq!(publisher.flush(Duration::from_secs(10)).await, 0);
    let recv = async |incoming: &mut transport::session::Incoming| {
        tokio::time::timeout(Duration::from_secs(10), incoming.recv())
            .await
            .expect("a message within 10 s")
            .expect("the session is open")
    };
    let first = recv(&mut incoming).await;
    assert_eq!(first.topic, "big/huge");
    assert_eq!(first.oversized, Some(300_000));
    assert_eq!(
        &first.payload[..],
        &huge[..transport::message::OVERSIZED_PREFIX]
    );
    for i in 0..100u32 {
        let m = recv(&mut incoming).await;
        assert_eq!((m.topic.as_str(), m.oversized), ("big/n", None));
        assert_eq!(m.payload, i.to_string());
    }
    assert_eq!(sub.status().connections, 1, "no reconnect loop");
    sub.close(Duration::from_secs(1)).await;
    drop(incoming);
    // It was acknowledged: the stored session does not hold it for the next start.
    let (again, mut incoming) = Session::start(o, Outbox::memory(10)).await.unwrap();
    publisher
        .publish(Message::new("big/marker", "after"))
        .await
        .unwrap();
    let next = recv(&mut incoming).await;
    assert_eq!(
        next.topic, "big/marker",
        "nothing was left to redeliver, got {next:?}"
    );
    again.close(Duration::from_secs(1)).await;
    publisher.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_qos1_survives_fifty_cuts_at_random_points() {
    const N: u64 = 3_000;
    let b = broker(BrokerOpts::new().persistence(true).max_queued(100_000));
    let proxy = FaultProxy::start(b.port_plain());
    let mut o = opts(&proxy.url());
    o.client_id = "inbound-cuts".into();
    o.clean_session = false;
    o.start_mode = StartMode::WaitForConnection;
    o.backoff_initial = Duration::from_millis(5);
    o.backoff_max = Duration::from_millis(50);
    o.stable_after = Duration::from_millis(1);
    let (sub, mut incoming) = Session::start(o, Outbox::memory(10)).await.unwrap();
    sub.subscribe(&[("cuts/#".into(), Qos::AtLeastOnce)])
        .await
        .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(m) = incoming.recv().await {
                let n: u64 = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
                seen.lock().unwrap().insert(n);
            }
        })
    };
    let (publisher, _) = Session::start(opts(&b.url_plain()), Outbox::memory(N as usize))
        .await
        .unwrap();
    let sending = {
        let publisher = publisher.clone();
        tokio::spawn(async move {
            for i in 0..N {
                publisher
                    .publish(Message::new("cuts/n", i.to_string()))
                    .await
                    .unwrap();
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    for _ in 0..50 {
        let before = seen.lock().unwrap().len();
        let step = fastrand::usize(1..=N as usize / 60);
        until(
            "more messages between cuts",
            Duration::from_secs(30),
            || seen.lock().unwrap().len() >= (before + step).min(N as usize),
        )
        .await;
        proxy.cut();
    }
    sending.await.unwrap();
    until("every message", Duration::from_secs(60), || {
        seen.lock().unwrap().len() == N as usize
    })
    .await;
    assert!(sub.status().connections >= 2, "the cuts took effect");
    sub.close(Duration::from_secs(1)).await;
    publisher.close(Duration::from_secs(1)).await;
    reader.abort();
}

/// The PUBLISH packets in `wire` (bytes a client sent), as (packet id, dup, payload).
fn publishes(wire: &[u8]) -> Vec<(u16, bool, String)> {
    let mut buf = BytesMut::from(wire);
    let mut out = Vec::new();
    while let Ok(p) = Packet::read(&mut buf, 1 << 20) {
        if let Packet::Publish(p) = p {
            out.push((
                p.pkid,
                p.dup,
                String::from_utf8_lossy(&p.payload).into_owned(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_session_resends_with_the_same_packet_ids_and_dup_set() {
    let b = broker(BrokerOpts::new().persistence(true));
    let proxy = FaultProxy::start(b.port_plain());
    proxy.capture();
    // The first connection gets its CONNACK, and then no PUBACK ever comes back.
    proxy.script([Fault::DropServerBytesAfter(4)]);
    let mut o = opts(&proxy.url());
    o.client_id = "resend-dup".into();
    o.clean_session = false;
    o.keep_alive = Duration::ZERO;
    let (s, _) = Session::start(o, Outbox::memory(10)).await.unwrap();
    for i in 0..5 {
        s.publish(Message::new("dup/n", format!("m{i}")))
            .await
            .unwrap();
    }
    until(
        "five PUBLISH packets on the wire",
        Duration::from_secs(10),
        || publishes(&proxy.client_bytes(0)).len() == 5,
    )
    .await;
    proxy.cut();
    assert_eq!(
        s.flush(Duration::from_secs(10)).await,
        0,
        "confirmed after the resend"
    );
    let sent = publishes(&proxy.client_bytes(0));
    let resent = publishes(&proxy.client_bytes(1));
    assert!(sent.iter().all(|(_, dup, _)| !dup), "{sent:?}");
    assert_eq!(
        resent,
        sent.iter()
            .map(|(id, _, p)| (*id, true, p.clone()))
            .collect::<Vec<_>>(),
        "each message again, with its packet id and DUP set"
    );
    s.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_falls_behind_does_not_cause_a_false_ping_timeout() {
    const N: u32 = 300;
    let b = broker(BrokerOpts::new().max_queued(10_000));
    let mut o = opts(&b.url_plain());
    o.keep_alive = Duration::from_secs(1);
    o.incoming_bytes = 2048;
    let (sub, mut incoming) = Session::start(o, Outbox::memory(10)).await.unwrap();
    sub.subscribe(&[("slow/#".into(), Qos::AtLeastOnce)])
        .await
        .unwrap();
    let (publisher, _) = Session::start(opts(&b.url_plain()), Outbox::memory(N as usize))
        .await
        .unwrap();
    for i in 0..N {
        publisher
            .publish(Message::new("slow/n", format!("{i:0>100}")))
            .await
            .unwrap();
    }
    // The thing under test: the application takes nothing for three keep-alive intervals
    // while the session's inbox is full, so the socket is not read.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    for i in 0..N {
        let m = tokio::time::timeout(Duration::from_secs(10), incoming.recv())
            .await
            .expect("a message within 10 s")
            .unwrap();
        assert_eq!(m.payload, format!("{i:0>100}"));
    }
    assert_eq!(sub.status().connections, 1, "no ping timeout, no reconnect");
    sub.close(Duration::from_secs(1)).await;
    publisher.close(Duration::from_secs(1)).await;
}
