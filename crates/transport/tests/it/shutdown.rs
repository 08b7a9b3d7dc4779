//! Closing mid-stream: every accepted message is either confirmed or left in the spool, and the
//! next start sends what was left.

use std::time::Duration;

use testkit::{BrokerOpts, Subscriber};
use transport::session::{Delivery, DeliveryError};
use transport::{Message, Outbox, Session, SpoolConfig};

use crate::{blocking, broker, opts, tally};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_mid_stream_keeps_every_unconfirmed_message_for_the_next_start() {
    const N: u64 = 20_000;
    let b = broker(BrokerOpts::new().max_queued(1_000_000).max_inflight(1000));
    let sub = blocking(|| Subscriber::start(&b, "close/#", 1, Some("close-sub")));
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Session::start(
        opts(&b.url_plain()),
        Outbox::disk(SpoolConfig::new(dir.path())).unwrap(),
    )
    .await
    .unwrap();
    let mut deliveries = Vec::new();
    for i in 0..N {
        deliveries.push(
            s.publish(Message::new("close/n", i.to_string()))
                .await
                .unwrap(),
        );
    }
    let first = s.close(Duration::ZERO).await;
    assert!(first.spooled);
    assert_eq!(
        first.acked + first.unacked,
        N,
        "each message confirmed or spooled: {first:?}"
    );
    assert!(
        first.unacked > 0,
        "closing at once leaves some unconfirmed: {first:?}"
    );

    let (confirmed, unconfirmed) = awaited_after_close(deliveries).await;
    assert_eq!(
        (confirmed, unconfirmed),
        (first.acked, first.unacked),
        "a delivery first awaited after close learns what the spool knew"
    );

    let outbox = Outbox::disk(SpoolConfig::new(dir.path())).unwrap();
    assert_eq!(
        outbox.unacked(),
        first.unacked,
        "the spool holds exactly what was not confirmed"
    );
    let (s, _) = Session::start(opts(&b.url_plain()), outbox).await.unwrap();
    assert_eq!(s.flush(Duration::from_secs(60)).await, 0);
    let second = s.close(Duration::from_secs(1)).await;
    assert_eq!(second.acked, first.unacked);
    let got = blocking(|| sub.wait_until(Duration::from_secs(60), |m| tally(m, N).0.is_empty()));
    let (missing, _) = tally(&got, N);
    assert!(missing.is_empty(), "{} missing", missing.len());
}

/// Awaits each delivery (every one for the first time) and counts (confirmed, not confirmed).
async fn awaited_after_close(deliveries: Vec<Delivery>) -> (u64, u64) {
    let mut counts = (0, 0);
    for d in deliveries {
        match d.confirmed().await {
            Ok(()) => counts.0 += 1,
            Err(DeliveryError::NotConfirmed) => counts.1 += 1,
            Err(other) => panic!("no message was dropped or lost here: {other}"),
        }
    }
    counts
}

/// An agent that spawns a task per delivery may see that task first polled after `close`
/// (hdm-telemetry did, under load): the memory outbox's acks must still count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_awaited_after_close_of_a_memory_outbox_report_their_acks() {
    let b = broker(BrokerOpts::new());
    let (s, _) = Session::start(opts(&b.url_plain()), Outbox::memory(1_000))
        .await
        .unwrap();
    let mut deliveries = Vec::new();
    for i in 0..500u32 {
        deliveries.push(
            s.publish(Message::new("late/n", i.to_string()))
                .await
                .unwrap(),
        );
    }
    assert_eq!(s.flush(Duration::from_secs(30)).await, 0);
    let closed = s.close(Duration::from_secs(1)).await;
    assert_eq!(closed.acked, 500);
    assert_eq!(awaited_after_close(deliveries).await, (500, 0));
}
