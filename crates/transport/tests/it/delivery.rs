//! Nothing acknowledged is lost: bulk delivery, broker restarts and network cuts mid-stream,
//! subscriptions confirmed and restored.

use std::time::Duration;

use testkit::{BrokerOpts, FaultProxy, Subscriber};
use transport::session::SubscribeError;
use transport::{Message, Outbox, Qos, Session};

use crate::{blocking, broker, opts, tally};

fn mosquitto_pub(port: u16, topic: &str, msg: &str) {
    let st = std::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            msg,
        ])
        .status()
        .expect("mosquitto_pub runs");
    assert!(st.success(), "mosquitto_pub to {topic} failed");
}

/// Publishes `n` numbered messages on `topic`, pausing 1 ms every `pace` messages (0: no pause),
/// so that faults injected on acknowledgement counts land mid-stream.
async fn publish_numbered(session: Session, topic: &'static str, n: u64, pace: u64) {
    for i in 0..n {
        session
            .publish(Message::new(topic, i.to_string()))
            .await
            .expect("accepted");
        if pace > 0 && i % pace == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_messages_complete_once_written_through_a_small_window() {
    let b = broker(BrokerOpts::new());
    let mut o = opts(&b.url_plain());
    o.inflight = 4;
    let (s, _) = Session::start(o, Outbox::memory(100)).await.unwrap();
    let mut last = None;
    for i in 0..5_000u32 {
        let msg = Message::new("q0/n", i.to_string()).with_qos(Qos::AtMostOnce);
        last = Some(s.publish(msg).await.expect("accepted"));
    }
    tokio::time::timeout(Duration::from_secs(20), last.unwrap().confirmed())
        .await
        .expect("the last QoS 0 message is written, not stuck behind the window")
        .unwrap();
    assert_eq!(s.flush(Duration::from_secs(5)).await, 0);
    assert_eq!(s.status().acked, 5_000);
    s.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_numbered_qos1_messages_all_arrive() {
    let b = broker(BrokerOpts::new().max_queued(1_000_000).max_inflight(1000));
    let sub = blocking(|| Subscriber::start(&b, "load/#", 1, Some("load-sub")));
    let (s, _) = Session::start(opts(&b.url_plain()), Outbox::memory(20_000))
        .await
        .unwrap();
    publish_numbered(s.clone(), "load/n", 10_000, 0).await;
    assert_eq!(
        s.flush(Duration::from_secs(60)).await,
        0,
        "every message confirmed"
    );
    let st = s.status();
    assert_eq!(st.acked, 10_000);
    s.close(Duration::from_secs(1)).await;
    let got =
        blocking(|| sub.wait_until(Duration::from_secs(60), |m| tally(m, 10_000).0.is_empty()));
    let (missing, dups) = tally(&got, 10_000);
    assert!(
        missing.is_empty(),
        "{} missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(dups, 0, "no reconnects, so no duplicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarted_three_times_mid_stream_loses_nothing() {
    const N: u64 = 20_000;
    // The broker keeps the subscriber's session across restarts; our publisher uses a clean
    // session, the case where rumqttc alone drops in-flight messages.
    let mut b = broker(
        BrokerOpts::new()
            .persistence(true)
            .max_queued(1_000_000)
            .max_inflight(1000),
    );
    let sub = blocking(|| Subscriber::start(&b, "restart/#", 1, Some("restart-sub")));
    let (s, _) = Session::start(opts(&b.url_plain()), Outbox::memory(N as usize))
        .await
        .unwrap();
    let publisher = tokio::spawn(publish_numbered(s.clone(), "restart/n", N, 20));
    let mut status = s.watch_status();
    for k in 1..=3u64 {
        status.wait_for(|st| st.acked >= k * N / 4).await.unwrap();
        assert!(s.status().acked < N, "restart {k} must happen mid-stream");
        blocking(|| {
            b.stop();
            b.restart();
        });
    }
    publisher.await.unwrap();
    assert_eq!(
        s.flush(Duration::from_secs(90)).await,
        0,
        "every message confirmed after the restarts"
    );
    assert!(
        s.status().connections >= 4,
        "reconnected after each restart: {:?}",
        s.status()
    );
    s.close(Duration::from_secs(1)).await;
    let got = blocking(|| sub.wait_until(Duration::from_secs(90), |m| tally(m, N).0.is_empty()));
    let (missing, dups) = tally(&got, N);
    eprintln!(
        "restart test: {} delivered, {dups} duplicates (QoS 1 resends)",
        got.len()
    );
    assert!(
        missing.is_empty(),
        "{} missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_cut_three_times_mid_stream_loses_nothing() {
    const N: u64 = 20_000;
    let b = broker(BrokerOpts::new().max_queued(1_000_000).max_inflight(1000));
    let proxy = FaultProxy::start(b.port_plain());
    let sub = blocking(|| Subscriber::start(&b, "cut/#", 1, Some("cut-sub")));
    let (s, _) = Session::start(opts(&proxy.url()), Outbox::memory(N as usize))
        .await
        .unwrap();
    let publisher = tokio::spawn(publish_numbered(s.clone(), "cut/n", N, 20));
    let mut status = s.watch_status();
    for k in 1..=3u64 {
        status.wait_for(|st| st.acked >= k * N / 4).await.unwrap();
        assert!(s.status().acked < N, "cut {k} must happen mid-stream");
        proxy.cut();
    }
    publisher.await.unwrap();
    assert_eq!(s.flush(Duration::from_secs(60)).await, 0);
    assert!(s.status().connections >= 4, "{:?}", s.status());
    s.close(Duration::from_secs(1)).await;
    let got = blocking(|| sub.wait_until(Duration::from_secs(60), |m| tally(m, N).0.is_empty()));
    let (missing, dups) = tally(&got, N);
    eprintln!("cut test: {} delivered, {dups} duplicates", got.len());
    assert!(
        missing.is_empty(),
        "{} missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_resent_after_a_cut_go_through_the_resend_hook() {
    const N: u64 = 5_000;
    let b = broker(BrokerOpts::new().max_queued(1_000_000).max_inflight(1000));
    let proxy = FaultProxy::start(b.port_plain());
    let sub = blocking(|| Subscriber::start(&b, "hook/#", 1, Some("hook-sub")));
    let mut o = opts(&proxy.url());
    o.on_resend = Some(transport::session::ResendHook(std::sync::Arc::new(
        |m: &Message| {
            let mut p = m.payload.to_vec();
            p.extend_from_slice(b"+resent");
            Some(p.into())
        },
    )));
    let (s, _) = Session::start(o, Outbox::memory(N as usize)).await.unwrap();
    // No pauses: the window stays full until the end, so the cut always finds messages in flight.
    let publisher = tokio::spawn(publish_numbered(s.clone(), "hook/n", N, 0));
    s.watch_status()
        .wait_for(|st| st.acked >= N / 2)
        .await
        .unwrap();
    let acked_before_cut = s.status().acked;
    proxy.cut();
    publisher.await.unwrap();
    assert_eq!(s.flush(Duration::from_secs(60)).await, 0);
    s.close(Duration::from_secs(1)).await;
    let got = blocking(|| {
        sub.wait_until(Duration::from_secs(60), |m| {
            tally(&strip_marks(m), N).0.is_empty()
        })
    });
    let (missing, _) = tally(&strip_marks(&got), N);
    assert!(missing.is_empty(), "{} missing", missing.len());
    let marked: Vec<u64> = got
        .iter()
        .filter_map(|(_, p)| p.strip_suffix("+resent")?.parse().ok())
        .collect();
    // Only what was in flight at the cut (at most the window of 100, none of it confirmed
    // before the cut; mosquitto confirms in order) is resent, so only that is marked.
    assert!(!marked.is_empty(), "nothing was in flight at the cut");
    assert!(marked.len() <= 100, "{} marked", marked.len());
    assert!(
        marked.iter().all(|k| *k >= acked_before_cut),
        "a message confirmed before the cut was marked: {marked:?} (acked before: {acked_before_cut})"
    );
}

fn strip_marks(msgs: &[(String, String)]) -> Vec<(String, String)> {
    msgs.iter()
        .map(|(t, p)| (t.clone(), p.trim_end_matches("+resent").to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_broker_is_noticed_by_keep_alive_and_the_session_comes_back() {
    let mut b = broker(BrokerOpts::new());
    let mut o = opts(&b.url_plain());
    o.keep_alive = Duration::from_secs(1);
    o.connect_timeout = Duration::from_secs(2);
    let (s, _) = Session::start(o, Outbox::memory(10)).await.unwrap();
    let mut status = s.watch_status();
    blocking(|| b.freeze());
    let frozen_at = std::time::Instant::now();
    let lost = tokio::time::timeout(Duration::from_secs(10), status.wait_for(|st| !st.connected))
        .await
        .expect("the stall is noticed")
        .unwrap()
        .clone();
    let noticed_after = frozen_at.elapsed();
    let why = lost.last_error.map(|e| e.to_string()).unwrap_or_default();
    assert!(why.contains("PINGRESP"), "{why}");
    assert!(
        noticed_after <= Duration::from_secs(4),
        "two keep-alive intervals at most, took {noticed_after:?}"
    );
    blocking(|| b.thaw());
    tokio::time::timeout(
        Duration::from_secs(20),
        status.wait_for(|st| st.connected && st.connections >= 2),
    )
    .await
    .expect("reconnected after the broker resumed")
    .unwrap();
    let d = s.publish(Message::new("ka/after", "x")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), d.confirmed())
        .await
        .expect("confirmed after the stall")
        .unwrap();
    s.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_for_a_persistent_session_arrive_right_after_connack() {
    let b = broker(BrokerOpts::new());
    let mut o = opts(&b.url_plain());
    o.client_id = "queued-reader".into();
    o.clean_session = false;
    let (s, _) = Session::start(o.clone(), Outbox::memory(10)).await.unwrap();
    s.subscribe(&[("queued/#".into(), Qos::AtLeastOnce)])
        .await
        .unwrap();
    s.close(Duration::from_secs(1)).await;
    let port = b.port_plain();
    for k in 0..5 {
        blocking(|| mosquitto_pub(port, "queued/x", &k.to_string()));
    }
    // The broker sends CONNACK and the queued messages back to back, often in one read; nothing
    // else follows for a keep-alive interval, so they must not wait for more bytes.
    let (s, mut incoming) = Session::start(o, Outbox::memory(10)).await.unwrap();
    for k in 0..5 {
        let m = tokio::time::timeout(Duration::from_secs(3), incoming.recv())
            .await
            .unwrap_or_else(|_| panic!("queued message {k} not delivered promptly"))
            .unwrap();
        assert_eq!(&m.payload[..], k.to_string().as_bytes());
        s.ack(&m);
    }
    s.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_is_confirmed_and_restored_after_a_broker_restart() {
    let mut b = broker(BrokerOpts::new()); // no persistence: the broker forgets every subscription
    let (s, mut incoming) = Session::start(opts(&b.url_plain()), Outbox::memory(10))
        .await
        .unwrap();
    s.subscribe(&[("cmd/#".into(), Qos::AtLeastOnce)])
        .await
        .unwrap();
    let port = b.port_plain();
    blocking(|| mosquitto_pub(port, "cmd/a", "one"));
    let m = tokio::time::timeout(Duration::from_secs(5), incoming.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((m.topic.as_str(), &m.payload[..]), ("cmd/a", &b"one"[..]));
    blocking(|| {
        b.stop();
        b.restart();
    });
    let mut status = s.watch_status();
    tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|st| st.connections >= 2 && st.connected),
    )
    .await
    .unwrap()
    .unwrap();
    // The re-subscribe is in flight with the CONNACK; publish until it is in place.
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            blocking(|| mosquitto_pub(port, "cmd/b", "two"));
            if let Ok(Some(m)) =
                tokio::time::timeout(Duration::from_millis(200), incoming.recv()).await
            {
                return m;
            }
        }
    })
    .await
    .expect("re-subscribed after the restart");
    assert_eq!(&got.payload[..], b"two");
    s.close(Duration::from_secs(1)).await;
}

/// mosquitto 2.0 grants every subscription (it filters deliveries by ACL instead), so a
/// SUBACK refusal (0x80), which AWS IoT and others send, comes from this scripted broker: it
/// answers CONNECT with CONNACK and refuses each filter under `secret/`.
async fn refusing_broker() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn read_packet(s: &mut tokio::net::TcpStream) -> Option<(u8, Vec<u8>)> {
        let first = s.read_u8().await.ok()?;
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let b = s.read_u8().await.ok()?;
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        s.read_exact(&mut body).await.ok()?;
        Some((first >> 4, body))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        while let Some((kind, body)) = read_packet(&mut s).await {
            match kind {
                1 => s.write_all(&[0x20, 2, 0, 0]).await.unwrap(),
                8 => {
                    let mut codes = Vec::new();
                    let mut at = 2;
                    while at + 2 <= body.len() {
                        let n = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
                        let filter = &body[at + 2..at + 2 + n];
                        codes.push(if filter.starts_with(b"secret/") {
                            0x80
                        } else {
                            0x01
                        });
                        at += 2 + n + 1;
                    }
                    let mut reply = vec![0x90, 2 + codes.len() as u8, body[0], body[1]];
                    reply.extend(codes);
                    s.write_all(&reply).await.unwrap();
                }
                12 => s.write_all(&[0xd0, 0]).await.unwrap(),
                _ => {}
            }
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_subscription_names_the_filter() {
    let port = refusing_broker().await;
    let (s, _) = Session::start(
        opts(&format!("mqtt://127.0.0.1:{port}")),
        Outbox::memory(10),
    )
    .await
    .unwrap();
    s.subscribe(&[("allowed/x".into(), Qos::AtLeastOnce)])
        .await
        .unwrap();
    let err = s
        .subscribe(&[
            ("allowed/y".into(), Qos::AtLeastOnce),
            ("secret/#".into(), Qos::AtLeastOnce),
        ])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SubscribeError::Refused(vec!["secret/#".into()]),
        "{err}"
    );
    assert!(err.to_string().contains("`secret/#`"));
    s.close(Duration::from_secs(1)).await;
}
