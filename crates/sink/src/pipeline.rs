//! The stages behind the reader: mapping a batch of received messages into rows and dead
//! letters ([`map_batch`], run by the reader), writers that commit jobs on their own
//! connections with back-off while the database is down ([`WriterTask`]), and the acker that
//! acknowledges committed jobs strictly in the order their messages arrived ([`Acker`]), even
//! when two writers commit out of order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Mutex, mpsc, watch};
use tokio::time::Instant;
use transport::backoff::Backoff;
use transport::{Received, Session};

use crate::config::{SinkConfig, SinkError};
use crate::db::write::{Item, Meta, WriteError, Writer};
use crate::extract::{self, Column, Value};
use crate::mapping::{Dedup, Kind};
use crate::report::{Counters, Event};

/// Received messages with the time they arrived.
pub(crate) type Batch = Vec<(Received, OffsetDateTime)>;

/// One transaction's worth of work.
pub(crate) struct Job {
    /// Position in arrival order (acknowledgements follow it).
    pub seq: u64,
    /// Rows and dead letters.
    pub items: Vec<Item>,
    /// Insert column types at the time of mapping.
    pub kinds: Vec<Option<Kind>>,
    /// The messages, to acknowledge after COMMIT.
    pub msgs: Vec<Received>,
}

/// The type of every insert column: mapped (as settled so far), then the extras, then the key.
pub(crate) fn column_kinds(config: &SinkConfig, columns: &[Column]) -> Vec<Option<Kind>> {
    let m = &config.mapping;
    let mut kinds: Vec<Option<Kind>> = columns.iter().map(|c| c.kind).collect();
    if m.topic_column.is_some() {
        kinds.push(Some(Kind::Text));
    }
    if m.received_at_column.is_some() {
        kinds.push(Some(Kind::Timestamp));
    }
    if m.payload_column.is_some() {
        kinds.push(Some(Kind::Text));
    }
    if m.dedup == Dedup::Hash {
        kinds.push(Some(Kind::Text));
    }
    kinds
}

/// Maps a batch into a job: each message becomes a row or a dead letter.
pub(crate) fn map_batch(
    config: &SinkConfig,
    columns: &mut [Column],
    batch: Batch,
    seq: u64,
) -> Job {
    let m = &config.mapping;
    let mut items = Vec::with_capacity(batch.len());
    let mut msgs = Vec::with_capacity(batch.len());
    for (msg, at) in batch {
        let meta = Meta {
            topic: msg.topic.clone(),
            received_at: at,
            payload: msg.payload.clone(),
            key: extract::msg_key(&msg.topic, &msg.payload),
        };
        if let Some(size) = msg.oversized {
            // Only its first bytes were kept: store them as a dead letter, never as a row.
            items.push(Item::Dead {
                error: format!(
                    "message of {size} bytes is over the packet limit (--max-packet-size); it was skipped, and the payload here is its first {} bytes",
                    msg.payload.len()
                ),
                meta,
            });
            msgs.push(msg);
            continue;
        }
        items.push(match extract::extract(columns, &msg.payload) {
            Ok(mut values) => {
                if m.topic_column.is_some() {
                    values.push(Value::Text(msg.topic.clone()));
                }
                if m.received_at_column.is_some() {
                    values.push(Value::Timestamp(at));
                }
                if m.payload_column.is_some() {
                    values.push(Value::Text(
                        String::from_utf8_lossy(&msg.payload).into_owned(),
                    ));
                }
                if m.dedup == Dedup::Hash {
                    values.push(Value::Text(meta.key.clone()));
                }
                Item::Row { values, meta }
            }
            Err(rejection) => Item::Dead {
                error: rejection.to_string(),
                meta,
            },
        });
        msgs.push(msg);
    }
    Job {
        seq,
        items,
        kinds: column_kinds(config, columns),
        msgs,
    }
}

/// A committed job on its way to the acker.
pub(crate) struct Committed {
    pub seq: u64,
    pub msgs: Vec<Received>,
}

/// What the writers and the acker share.
pub(crate) struct Shared {
    pub counters: Arc<Counters>,
    pub events: mpsc::UnboundedSender<Event>,
    /// Set when the run should stop (count reached, or a fatal error).
    pub done: watch::Sender<bool>,
    /// The first fatal error.
    pub fatal: std::sync::Mutex<Option<SinkError>>,
    /// Set on stop: the time by which what is in hand must be committed.
    pub drain: watch::Receiver<Option<Instant>>,
    pub retry_max: Duration,
}

/// One writer: takes jobs, commits them (retrying while the database is down), passes them on.
pub(crate) struct WriterTask {
    pub writer: Writer,
    pub shared: Arc<Shared>,
}

impl WriterTask {
    pub async fn run(
        mut self,
        jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
        committed: mpsc::UnboundedSender<Committed>,
    ) {
        let mut drain = self.shared.drain.clone();
        loop {
            let job = { jobs.lock().await.recv().await };
            let Some(job) = job else { break };
            let t0 = std::time::Instant::now();
            match self.write_with_retry(&job, &mut drain).await {
                Ok(true) => {
                    tracing::debug!(
                        "job {} of {} committed in {} µs",
                        job.seq,
                        job.msgs.len(),
                        t0.elapsed().as_micros()
                    );
                    let _ = committed.send(Committed {
                        seq: job.seq,
                        msgs: job.msgs,
                    });
                }
                Ok(false) => {
                    tracing::warn!(
                        "stopping with {} message(s) not committed: they are not acknowledged, so a persistent session gets them again",
                        job.msgs.len()
                    );
                    break;
                }
                Err(e) => {
                    let mut fatal = self
                        .shared
                        .fatal
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    fatal.get_or_insert(e);
                    drop(fatal);
                    let _ = self.shared.done.send(true);
                    break;
                }
            }
        }
        self.writer.close().await;
    }

    /// Writes until committed (`Ok(true)`), or the drain deadline passes (`Ok(false)`).
    async fn write_with_retry(
        &mut self,
        job: &Job,
        drain: &mut watch::Receiver<Option<Instant>>,
    ) -> Result<bool, SinkError> {
        let mut backoff = Backoff::new(Duration::from_millis(100), self.shared.retry_max);
        loop {
            match self.writer.write(&job.items, &job.kinds).await {
                Ok(out) => {
                    let c = &self.shared.counters;
                    Counters::add(&c.stored, out.stored);
                    Counters::add(&c.duplicates, out.duplicates);
                    Counters::add(&c.dead_lettered, out.dead_lettered);
                    Counters::add(&c.batches, 1);
                    if backoff.attempts() > 0 {
                        let _ = self.shared.events.send(Event::DatabaseUp {
                            after_attempts: backoff.attempts(),
                        });
                    }
                    if out.dead_lettered > 0 {
                        self.report_dead_letters(&job.items, &out.refused);
                    }
                    return Ok(true);
                }
                Err(WriteError::Fatal(msg)) => return Err(SinkError::Database(msg)),
                Err(WriteError::Transient(msg)) => {
                    Counters::add(&self.shared.counters.retries, 1);
                    let delay = backoff.next_delay(fastrand::f64());
                    tracing::warn!("{msg}; retrying in {} ms", delay.as_millis());
                    let _ = self.shared.events.send(Event::DatabaseDown {
                        error: msg,
                        attempt: backoff.attempts(),
                        retry_in_ms: delay.as_millis() as u64,
                    });
                    let wake = Instant::now() + delay;
                    if drain.borrow().is_some_and(|d| d <= wake) {
                        return Ok(false);
                    }
                    tokio::select! {
                        () = tokio::time::sleep_until(wake) => {}
                        passed = async {
                            drain.wait_for(|d| d.is_some_and(|d| d <= wake)).await.is_ok()
                        } => {
                            if passed {
                                return Ok(false);
                            }
                            tokio::time::sleep_until(wake).await;
                        }
                    }
                }
            }
        }
    }

    fn report_dead_letters(&self, items: &[Item], refused: &[(String, String)]) {
        let dead = items.iter().filter_map(|item| match item {
            Item::Dead { error, meta } => Some((meta.topic.as_str(), error.as_str())),
            Item::Row { .. } => None,
        });
        let refused = refused.iter().map(|(t, e)| (t.as_str(), e.as_str()));
        for (topic, error) in dead.chain(refused) {
            tracing::warn!("dead letter from `{topic}`: {error}");
            let _ = self.shared.events.send(Event::DeadLetter {
                topic: topic.to_owned(),
                error: error.to_owned(),
            });
        }
    }
}

/// Acknowledges committed jobs in arrival order.
pub(crate) struct Acker {
    pub session: Session,
    pub shared: Arc<Shared>,
    pub count: Option<u64>,
}

impl Acker {
    pub async fn run(self, mut committed: mpsc::UnboundedReceiver<Committed>) {
        let mut next = 0u64;
        let mut waiting: BTreeMap<u64, Vec<Received>> = BTreeMap::new();
        while let Some(c) = committed.recv().await {
            waiting.insert(c.seq, c.msgs);
            while let Some(msgs) = waiting.remove(&next) {
                self.session.ack_all(&msgs);
                Counters::add(&self.shared.counters.acked, msgs.len() as u64);
                next += 1;
            }
            let c = &self.shared.counters;
            let finished =
                c.stored.load(Ordering::Relaxed) + c.dead_lettered.load(Ordering::Relaxed);
            if self.count.is_some_and(|n| finished >= n) {
                let _ = self.shared.done.send(true);
            }
        }
        if !waiting.is_empty() {
            tracing::info!(
                "{} committed batch(es) wait behind an uncommitted one and stay unacknowledged (the broker resends them; the unique key skips them)",
                waiting.len()
            );
        }
    }
}
