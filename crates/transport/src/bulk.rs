//! Publishing a stream of messages through a session: from a fixed payload, generated payloads
//! or lines of a reader, with an optional pace, then waiting for every confirmation. Shared by
//! the command-line publishers (and the load generator the benchmarks use).

use std::collections::VecDeque;
use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::message::{Message, Qos};
use crate::session::{Accepting, PublishError, Session};

/// Messages taken into the outbox and not yet declared accepted: a disk spool stores them with
/// one write and one sync (group commit) instead of one each.
const ACCEPT_WINDOW: usize = 512;

/// Where payloads come from.
pub enum PayloadSource {
    /// The same bytes every time.
    Fixed(Bytes),
    /// `n` bytes of `x` (the benchmark payload).
    Sized(usize),
    /// The message's number, 0-based (for loss and order checks).
    Numbered,
    /// One message per line of the reader (trailing `\n`/`\r\n` removed); ends with the input.
    Lines(Box<dyn AsyncBufRead + Send + Unpin>),
}

/// What to publish.
pub struct BulkPlan {
    /// Topic.
    pub topic: String,
    /// QoS.
    pub qos: Qos,
    /// Retain flag.
    pub retain: bool,
    /// How many messages (`None`: until the source ends; required for all but `Lines`).
    pub count: Option<u64>,
    /// Payloads.
    pub source: PayloadSource,
    /// Pause between messages.
    pub interval: Option<Duration>,
    /// How long to wait for the last confirmations.
    pub confirm_timeout: Duration,
}

/// How a bulk publish ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BulkSummary {
    /// Messages accepted into the outbox in this run.
    pub accepted: u64,
    /// Confirmed by the broker in this run (includes spooled messages from an earlier run).
    pub acked: u64,
    /// Still unconfirmed at the end.
    pub unacked: u64,
    /// Whether the unconfirmed ones wait in a disk spool.
    pub spooled: bool,
    /// Dropped by a full spool.
    pub dropped: u64,
    /// Whether a shutdown signal cut the run short.
    pub interrupted: bool,
    /// Seconds from the first publish to the last confirmation.
    pub elapsed_s: f64,
    /// Confirmed messages per second.
    pub rate: f64,
}

/// Publishes per `plan`, waits for confirmations, closes the session. `on_accepted` is called
/// after each accepted message (for progress bars).
pub async fn publish_all(
    session: &Session,
    mut plan: BulkPlan,
    shutdown: impl Future<Output = ()>,
    mut on_accepted: impl FnMut(u64),
) -> Result<BulkSummary, PublishError> {
    tokio::pin!(shutdown);
    let start = Instant::now();
    let mut accepted = 0u64;
    let mut taken = 0u64;
    let mut interrupted = false;
    let mut accepting: VecDeque<Accepting> = VecDeque::new();
    let sized = match &plan.source {
        PayloadSource::Sized(n) => Some(Bytes::from(vec![b'x'; *n])),
        _ => None,
    };
    loop {
        if plan.count.is_some_and(|c| taken >= c) {
            break;
        }
        let payload = match &mut plan.source {
            PayloadSource::Fixed(b) => b.clone(),
            PayloadSource::Sized(_) => sized.clone().unwrap_or_default(),
            PayloadSource::Numbered => Bytes::from(taken.to_string()),
            PayloadSource::Lines(reader) => {
                let mut line = String::new();
                let read = tokio::select! {
                    r = reader.read_line(&mut line) => r,
                    () = &mut shutdown => { interrupted = true; break; }
                };
                match read {
                    Ok(0) => break,
                    Ok(_) => Bytes::from(line.trim_end_matches(['\n', '\r']).to_owned()),
                    Err(e) => {
                        tracing::error!("reading input lines failed: {e}");
                        break;
                    }
                }
            }
        };
        let msg = Message {
            topic: plan.topic.clone(),
            payload,
            qos: plan.qos,
            retain: plan.retain,
        };
        tokio::select! {
            r = session.enqueue(msg) => accepting.push_back(r?),
            () = &mut shutdown => { interrupted = true; break; }
        }
        taken += 1;
        // Keep a window in flight; with nothing else to do (a pause follows), settle all.
        while accepting.len() >= ACCEPT_WINDOW || (plan.interval.is_some() && !accepting.is_empty())
        {
            if let Some(a) = accepting.pop_front() {
                a.accepted().await?;
                accepted += 1;
                on_accepted(accepted);
            }
        }
        if let Some(pause) = plan.interval {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = &mut shutdown => { interrupted = true; break; }
            }
        }
    }
    // Whatever was taken is settled, interrupted or not: accepted or an error.
    while let Some(a) = accepting.pop_front() {
        a.accepted().await?;
        accepted += 1;
        on_accepted(accepted);
    }
    if !interrupted {
        tracing::info!(
            "accepted {accepted} message(s); waiting up to {} s for the broker to confirm {} unconfirmed",
            plan.confirm_timeout.as_secs(),
            session.status().unacked
        );
        tokio::select! {
            _ = session.flush(plan.confirm_timeout) => {}
            () = &mut shutdown => interrupted = true,
        }
    }
    let summary = session.close(Duration::from_secs(2)).await;
    let elapsed = start.elapsed().as_secs_f64();
    Ok(BulkSummary {
        accepted,
        acked: summary.acked,
        unacked: summary.unacked,
        spooled: summary.spooled,
        dropped: summary.dropped,
        interrupted,
        elapsed_s: elapsed,
        rate: if elapsed > 0.0 {
            summary.acked as f64 / elapsed
        } else {
            0.0
        },
    })
}
