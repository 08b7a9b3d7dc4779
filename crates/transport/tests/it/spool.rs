//! The disk spool through a real session: offline at start, full spool, restart of the process.

use std::time::Duration;

use testkit::{BrokerOpts, Subscriber};
use transport::{Message, Outbox, Session, SessionEvent, SpoolConfig, StartMode};

use crate::{blocking, broker, first_arrivals_in_order, opts, tally};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_at_start_then_up_delivers_spooled_messages_in_order() {
    let mut b = broker(BrokerOpts::new().persistence(true).max_queued(1_000_000));
    let sub = blocking(|| Subscriber::start(&b, "spool/#", 1, Some("spool-sub")));
    blocking(|| b.stop());
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(&b.url_plain());
    o.start_mode = StartMode::Background;
    let (s, _) = Session::start(o, Outbox::disk(SpoolConfig::new(dir.path())).unwrap())
        .await
        .unwrap();
    for i in 0..1000u64 {
        s.publish(Message::new("spool/n", i.to_string()))
            .await
            .unwrap();
    }
    let st = s.status();
    assert!(
        !st.connected && st.unacked == 1000,
        "all spooled while the broker is down: {st:?}"
    );
    // The first connection attempt runs beside the publishing; wait for its verdict.
    let mut status = s.watch_status();
    let st = tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|st| st.last_error.is_some()),
    )
    .await
    .expect("a connection attempt failed within 10 s")
    .unwrap()
    .clone();
    assert!(
        st.last_error
            .is_some_and(|e| e.to_string().contains("nothing is listening"))
    );
    blocking(|| b.restart());
    assert_eq!(s.flush(Duration::from_secs(30)).await, 0);
    s.close(Duration::from_secs(1)).await;
    let got = blocking(|| sub.wait_until(Duration::from_secs(30), |m| tally(m, 1000).0.is_empty()));
    assert!(tally(&got, 1000).0.is_empty(), "all 1000 delivered");
    assert!(
        first_arrivals_in_order(&got),
        "delivered in the order published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_spool_drops_the_oldest_and_says_how_many() {
    const N: u64 = 2000;
    let mut b = broker(BrokerOpts::new().persistence(true).max_queued(1_000_000));
    let sub = blocking(|| Subscriber::start(&b, "cap/#", 1, Some("cap-sub")));
    blocking(|| b.stop());
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig {
        dir: dir.path().to_owned(),
        max_bytes: 64 * 1024,
        max_files: 4,
        ..SpoolConfig::new(dir.path())
    };
    let mut o = opts(&b.url_plain());
    o.start_mode = StartMode::Background;
    let (s, _) = Session::start(o, Outbox::disk(cfg).unwrap()).await.unwrap();
    let mut events = s.events();
    for i in 0..N {
        s.publish(Message::new("cap/n", format!("{i:0>100}")))
            .await
            .unwrap();
    }
    let dropped = s.status().dropped;
    assert!(dropped > 0 && dropped < N, "some dropped: {dropped}");
    let mut reported = 0;
    while let Ok(ev) = events.try_recv() {
        if let SessionEvent::Dropped { count } = ev {
            reported += count;
        }
    }
    assert_eq!(reported, dropped, "every drop was reported");
    assert_eq!(s.status().unacked, N - dropped);
    blocking(|| b.restart());
    assert_eq!(s.flush(Duration::from_secs(30)).await, 0);
    s.close(Duration::from_secs(1)).await;
    let kept = N - dropped;
    let got = blocking(|| sub.wait_for_count(kept as usize, Duration::from_secs(30)));
    let nums: Vec<u64> = got.iter().map(|(_, p)| p.parse().unwrap()).collect();
    assert_eq!(
        nums,
        (dropped..N).collect::<Vec<_>>(),
        "exactly the newest {kept}, in order"
    );
}
