//! What the sink tells its caller while it runs: counters ([`Stats`]) and [`Event`]s, handed
//! to a [`Reporter`] the binary supplies (it prints them as text or NDJSON; tests collect
//! them). Nothing here prints.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

/// The counters of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Messages received from the broker (redeliveries included).
    pub received: u64,
    /// Rows inserted.
    pub stored: u64,
    /// Messages already stored (redeliveries, repeats): acknowledged, not stored again.
    pub duplicates: u64,
    /// Messages written to the dead-letter table.
    pub dead_lettered: u64,
    /// Failed write attempts that were retried.
    pub retries: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Received but not committed (so not acknowledged) at the time of the report.
    pub pending: u64,
    /// Seconds since the sink subscribed.
    pub elapsed_s: f64,
    /// Rows stored per second over the run.
    pub rate: f64,
}

impl Stats {
    /// One line for people.
    pub fn text(&self) -> String {
        let mut s = format!(
            "received {}, stored {}, duplicates {}, dead-lettered {}, retries {}, batches {} in {:.1} s ({:.0} rows/s)",
            self.received,
            self.stored,
            self.duplicates,
            self.dead_lettered,
            self.retries,
            self.batches,
            self.elapsed_s,
            self.rate
        );
        if self.pending > 0 {
            s.push_str(&format!("; {} not yet committed", self.pending));
        }
        s
    }
}

/// Shared counters, updated by the reader and the writer.
#[derive(Debug)]
pub(crate) struct Counters {
    pub received: AtomicU64,
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub retries: AtomicU64,
    pub batches: AtomicU64,
    pub acked: AtomicU64,
    start: Instant,
}

impl Counters {
    pub fn new() -> Counters {
        Counters {
            received: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            start: Instant::now(),
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let elapsed = self.start.elapsed().as_secs_f64();
        let stored = get(&self.stored);
        Stats {
            received: get(&self.received),
            stored,
            duplicates: get(&self.duplicates),
            dead_lettered: get(&self.dead_lettered),
            retries: get(&self.retries),
            batches: get(&self.batches),
            pending: get(&self.received).saturating_sub(get(&self.acked)),
            elapsed_s: elapsed,
            rate: if elapsed > 0.0 {
                stored as f64 / elapsed
            } else {
                0.0
            },
        }
    }
}

/// Something worth telling the user.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Event {
    /// Subscribed; the database and table are ready.
    Ready {
        /// The database, password removed.
        db: String,
        /// Target table.
        table: String,
        /// Dead-letter table.
        dead_letter_table: String,
        /// Topic filters.
        topics: Vec<String>,
    },
    /// Counters so far.
    Progress(Stats),
    /// A write failed in a way worth retrying; nothing is acknowledged until it succeeds.
    DatabaseDown {
        /// What failed.
        error: String,
        /// Failed attempts in a row.
        attempt: u32,
        /// Wait before the next attempt, in milliseconds.
        retry_in_ms: u64,
    },
    /// Writes succeed again.
    DatabaseUp {
        /// Failed attempts before this success.
        after_attempts: u32,
    },
    /// A message went to the dead-letter table.
    DeadLetter {
        /// Its topic.
        topic: String,
        /// Why.
        error: String,
    },
}

impl Event {
    /// The NDJSON `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Ready { .. } => "ready",
            Event::Progress(_) => "progress",
            Event::DatabaseDown { .. } => "database_down",
            Event::DatabaseUp { .. } => "database_up",
            Event::DeadLetter { .. } => "dead_letter",
        }
    }

    /// The line for people.
    pub fn text(&self) -> String {
        match self {
            Event::Ready {
                db,
                table,
                dead_letter_table,
                topics,
            } => format!(
                "storing {} into {db} table {table} (dead letters: {dead_letter_table})",
                topics.join(", ")
            ),
            Event::Progress(s) => s.text(),
            Event::DatabaseDown {
                error,
                attempt,
                retry_in_ms,
            } => format!(
                "database write failed (attempt {attempt}): {error}; nothing is acknowledged, retrying in {retry_in_ms} ms"
            ),
            Event::DatabaseUp { after_attempts } => {
                format!("database writes succeed again after {after_attempts} failed attempt(s)")
            }
            Event::DeadLetter { topic, error } => format!("dead letter from `{topic}`: {error}"),
        }
    }
}

/// Receives events. Implemented for any `Fn(&Event) + Send + Sync`.
pub trait Reporter: Send + Sync {
    /// Handles one event.
    fn report(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> Reporter for F {
    fn report(&self, event: &Event) {
        self(event);
    }
}
