//! Closing mid-stream: every accepted message is either confirmed or left in the spool, and the
//! next start sends what was left.

use std::time::Duration;

use testkit::{BrokerOpts, Subscriber};
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
    for i in 0..N {
        s.publish(Message::new("close/n", i.to_string()))
            .await
            .unwrap();
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
