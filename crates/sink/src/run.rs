//! The sink loop: subscribe at QoS 1 with manual acknowledgements, gather received messages
//! into batches (closed at `batch_rows` or when the oldest is `batch_age` old), write each batch
//! in one transaction, and only after its COMMIT acknowledge its messages, in the order they
//! arrived. Batches are not cut short when a writer is idle: at high rates that made many small
//! transactions, and PostgreSQL spent more CPU on commits than on rows. While the database is down
//! the writer keeps the batch and retries with back-off; nothing is acknowledged, so the
//! broker stops sending once its in-flight window is full and resends after a reconnect.
//!
//! Tasks: the reader (this function's own task: MQTT in, batches mapped into jobs), one or
//! more writers (each on its own connection; see `pipeline`) and the acker (PUBACKs in
//! arrival order). On stop (signal, `--count`, `--duration`) the reader hands over what it
//! holds and the writers get `drain_timeout` to commit it; what they cannot commit stays
//! unacknowledged at the broker.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use transport::{Outbox, Qos, Session, SessionOptions};

use crate::config::{SinkConfig, SinkError};
use crate::db::Backend;
use crate::db::write::Writer;
use crate::extract::Column;
use crate::pipeline::{self, Acker, Batch, Job, Shared, WriterTask};
use crate::report::{Counters, Event, Reporter, Stats};

/// How long the session lets incoming messages gather between reads.
const READ_COALESCE: Duration = Duration::from_millis(5);

/// Shortest pause in arrivals that closes a batch before `batch_age`.
const IDLE_GAP: Duration = Duration::from_millis(4);

/// Most rows in one transaction (`--batch`).
pub const MAX_BATCH: usize = 20_000;

/// A sink with its database ready: connected, tables checked or created (`setup::prepare`).
#[derive(Debug)]
pub struct Sink {
    pub(crate) config: SinkConfig,
    pub(crate) writer: Writer,
    pub(crate) columns: Vec<Column>,
}

/// Why the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Signal,
    Done,
    Duration,
    SessionEnded,
}

impl Sink {
    /// Runs until `shutdown` resolves, `count` messages are stored or dead-lettered, the
    /// duration passes, or a fatal error. `session` gets manual acknowledgements and a memory
    /// outbox; pass `clean_session = false` and a fixed client id so the broker keeps what
    /// arrives while the sink is down.
    pub async fn run(
        self,
        mut session: SessionOptions,
        shutdown: impl Future<Output = ()>,
        reporter: &dyn Reporter,
    ) -> Result<Stats, SinkError> {
        let Sink {
            config,
            writer,
            mut columns,
        } = self;
        let writers = match (config.writers, config.db.backend()) {
            // SQLite has one writer at a time anyway; MySQL's duplicate count is exact only
            // when no two batches commit side by side (see `insert`).
            (0, Backend::Sqlite | Backend::MySql) => 1,
            (0, Backend::Postgres) => 2,
            (n, _) => n,
        };
        let mut all_writers = vec![writer];
        for _ in 1..writers {
            let sibling = all_writers[0]
                .sibling()
                .await
                .map_err(|e| SinkError::Connect {
                    db: config.db.to_string(),
                    reason: config.db.describe_failure(&e),
                })?;
            all_writers.push(sibling);
        }
        session.manual_acks = true;
        // The sink is long-running: a broker that is down or refuses it at start is retried
        // (with back-off, each cause said once) until it takes the sink, or --give-up-after.
        session.start_mode = transport::StartMode::WaitForConnection;
        session.incoming_bytes = session.incoming_bytes.max(config.batch_rows * 1024);
        // Rows wait up to `batch_age` anyway; reading in gulps costs them next to nothing.
        let read_coalesce = READ_COALESCE.min(config.batch_age / 4);
        session.read_coalesce = read_coalesce;
        let (session, mut incoming) = Session::start(session, Outbox::memory(1)).await?;
        let filters: Vec<(String, Qos)> = config
            .subscriptions()
            .into_iter()
            .map(|t| (t, Qos::AtLeastOnce))
            .collect();
        if let Err(e) = session.subscribe(&filters).await {
            session.close(Duration::from_secs(1)).await;
            return Err(e.into());
        }
        let counters = Arc::new(Counters::new());
        reporter.report(&Event::Ready {
            db: config.db.to_string(),
            table: config.table.to_string(),
            dead_letter_table: config.dead_letter_table.to_string(),
            topics: config.topics.clone(),
        });

        let (job_tx, job_rx) = mpsc::channel::<Job>(1);
        let job_rx = Arc::new(tokio::sync::Mutex::new(job_rx));
        let (done_tx, mut done_rx) = watch::channel(false);
        let (drain_tx, drain_rx) = watch::channel::<Option<Instant>>(None);
        let (event_tx, mut event_rx) = mpsc::unbounded_channel::<Event>();
        let (committed_tx, committed_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            counters: counters.clone(),
            events: event_tx,
            done: done_tx,
            fatal: std::sync::Mutex::new(None),
            drain: drain_rx,
            retry_max: config.retry_max,
        });
        let mut tasks = tokio::task::JoinSet::new();
        for writer in all_writers {
            let task = WriterTask {
                writer,
                shared: shared.clone(),
            };
            tasks.spawn(task.run(job_rx.clone(), committed_tx.clone()));
        }
        drop(committed_tx);
        tasks.spawn(
            Acker {
                session: session.clone(),
                shared: shared.clone(),
                count: config.count,
            }
            .run(committed_rx),
        );

        tokio::pin!(shutdown);
        let max = config.batch_rows;
        let end = config.duration.map(|d| Instant::now() + d);
        let mut ticker =
            tokio::time::interval(config.progress_every.unwrap_or(Duration::from_secs(86_400)));
        ticker.reset();
        let mut seq = 0u64;
        let mut open: Batch = Vec::with_capacity(max);
        let mut open_deadline = Instant::now();
        // A pause in arrivals usually means the broker's in-flight window is full and it waits
        // for our PUBACKs: holding the batch for `batch_age` would then throttle the stream to
        // one window per `batch_age`, so a quiet gap closes the batch early.
        let idle_gap = IDLE_GAP.max(read_coalesce * 2);
        let mut last_arrival = Instant::now();
        let mut closed: Option<Batch> = None;
        let stop = loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break Stop::Signal,
                _ = done_rx.changed() => break Stop::Done,
                () = sleep_until_opt(end) => break Stop::Duration,
                Some(ev) = event_rx.recv() => reporter.report(&ev),
                _ = ticker.tick(), if config.progress_every.is_some() => {
                    reporter.report(&Event::Progress(counters.snapshot()));
                }
                permit = job_tx.reserve(), if closed.is_some() => {
                    let Ok(permit) = permit else { break Stop::Done };
                    let batch = closed.take().unwrap_or_default();
                    permit.send(pipeline::map_batch(&config, &mut columns, batch, seq));
                    seq += 1;
                }
                () = tokio::time::sleep_until(open_deadline.min(last_arrival + idle_gap)), if closed.is_none() && !open.is_empty() => {
                    closed = Some(std::mem::replace(&mut open, Vec::with_capacity(max)));
                }
                msg = incoming.recv(), if open.len() < max => {
                    let Some(msg) = msg else { break Stop::SessionEnded };
                    Counters::add(&counters.received, 1);
                    last_arrival = Instant::now();
                    if open.is_empty() {
                        open_deadline = Instant::now() + config.batch_age;
                    }
                    open.push((msg, OffsetDateTime::now_utc()));
                    if open.len() >= max && closed.is_none() {
                        closed = Some(std::mem::replace(&mut open, Vec::with_capacity(max)));
                    }
                }
            }
        };
        tracing::debug!("reader stopped: {stop:?}");

        // Hand over what is in hand; the writers get `drain_timeout` to commit it.
        let deadline = Instant::now() + config.drain_timeout;
        let _ = drain_tx.send(Some(deadline));
        for batch in [closed.take(), Some(std::mem::take(&mut open))]
            .into_iter()
            .flatten()
            .filter(|b| !b.is_empty())
        {
            let job = pipeline::map_batch(&config, &mut columns, batch, seq);
            seq += 1;
            let sent = tokio::time::timeout_at(deadline, job_tx.send(job)).await;
            if !matches!(sent, Ok(Ok(()))) {
                break;
            }
        }
        drop(job_tx);
        let joined = tokio::time::timeout_at(deadline + Duration::from_secs(5), async {
            loop {
                tokio::select! {
                    Some(ev) = event_rx.recv() => reporter.report(&ev),
                    j = tasks.join_next() => match j {
                        Some(Ok(())) => {}
                        Some(Err(e)) => tracing::error!("a sink task failed: {e}"),
                        None => break,
                    },
                }
            }
        })
        .await;
        if joined.is_err() {
            tasks.abort_all();
        }
        while let Ok(ev) = event_rx.try_recv() {
            reporter.report(&ev);
        }
        let ended = session.status().ended;
        session.close(Duration::from_secs(2)).await;
        let fatal = shared
            .fatal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(e) = fatal {
            return Err(e);
        }
        if stop == Stop::SessionEnded {
            return Err(SinkError::SessionEnded(
                ended.unwrap_or_else(|| "the broker connection closed".into()),
            ));
        }
        Ok(counters.snapshot())
    }
}

async fn sleep_until_opt(end: Option<Instant>) {
    match end {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
