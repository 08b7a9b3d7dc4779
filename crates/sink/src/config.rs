//! Settings of one sink run and the errors that stop it. `SinkConfig` is what the binary
//! resolves from its flags and mapping file; [`SinkError`] says what went wrong, naming the
//! table, column, topic or URL, and whether it was the user's configuration (exit 2) or a
//! runtime failure (exit 1).

use std::time::Duration;

use crate::db::{DbUrl, UrlError};
use crate::ident::{Ident, IdentError};
use crate::mapping::{Mapping, MappingError};
use crate::partition::Partitioning;

/// Everything a sink run needs besides the MQTT session options.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// The database.
    pub db: DbUrl,
    /// Target table.
    pub table: Ident,
    /// Dead-letter table (default `<table>_dead_letters`).
    pub dead_letter_table: Ident,
    /// Columns and idempotency.
    pub mapping: Mapping,
    /// `mapping.dedup` was asked for (flag or mapping file); otherwise an existing table's
    /// columns and unique keys decide it.
    pub dedup_given: bool,
    /// Numbers sent as strings (`"23.5"`) are taken as numbers in number and integer columns.
    pub coerce: bool,
    /// Subscribe through this shared-subscription group (`$share/GROUP/<filter>`).
    pub share: Option<String>,
    /// PostgreSQL range partitions for `create_table`.
    pub partition: Option<Partitioning>,
    /// Create the target table when it is missing.
    pub create_table: bool,
    /// Topic filters, subscribed at QoS 1.
    pub topics: Vec<String>,
    /// Most rows per transaction.
    pub batch_rows: usize,
    /// Longest a batch keeps filling before it is written.
    pub batch_age: Duration,
    /// Stop once this many messages were stored or dead-lettered.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// On stop, how long to keep trying to commit what is in hand.
    pub drain_timeout: Duration,
    /// Longest wait between database retries.
    pub retry_max: Duration,
    /// How often to report progress (`None`: never).
    pub progress_every: Option<Duration>,
    /// Writer connections committing batches side by side (0: 2 for PostgreSQL, 1 otherwise).
    pub writers: usize,
}

impl SinkConfig {
    /// The filters to subscribe to: the topics, each as `$share/GROUP/<topic>` with a share
    /// group.
    pub fn subscriptions(&self) -> Vec<String> {
        self.topics
            .iter()
            .map(|t| match &self.share {
                Some(g) => format!("$share/{g}/{t}"),
                None => t.clone(),
            })
            .collect()
    }

    /// A configuration with the defaults: batches of 1,000 rows / 100 ms, drain 10 s,
    /// retry back-off up to 30 s, no progress reports.
    pub fn new(db: DbUrl, table: Ident, mapping: Mapping, topics: Vec<String>) -> SinkConfig {
        let dead_letter_table = dead_letter_name(&table);
        SinkConfig {
            db,
            table,
            dead_letter_table,
            mapping,
            dedup_given: false,
            coerce: false,
            share: None,
            partition: None,
            create_table: false,
            topics,
            batch_rows: 5000,
            batch_age: Duration::from_millis(100),
            count: None,
            duration: None,
            drain_timeout: Duration::from_secs(10),
            retry_max: Duration::from_secs(30),
            progress_every: None,
            writers: 0,
        }
    }
}

/// `<table>_dead_letters`, or `<table>_dl` when that would pass 63 characters.
pub fn dead_letter_name(table: &Ident) -> Ident {
    Ident::new(&format!("{table}_dead_letters"), "table")
        .or_else(|_| {
            Ident::new(
                &format!("{}_dl", &table.as_str()[..table.as_str().len().min(60)]),
                "table",
            )
        })
        .unwrap_or_else(|_| table.clone())
}

/// Why a sink run could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Bad mapping.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// Bad table or column name.
    #[error(transparent)]
    Ident(#[from] IdentError),
    /// Bad `--db`.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// Other bad settings.
    #[error("{0}")]
    Config(String),
    /// The database is unreachable at start.
    #[error("cannot connect to the database {db}: {reason}")]
    Connect {
        /// The URL, password removed.
        db: String,
        /// The driver's reason.
        reason: String,
    },
    /// The table is missing or lacks columns, and will not be created.
    #[error("table `{table}` in {db}: {reason}; {hint}")]
    Schema {
        /// The table.
        table: String,
        /// The URL, password removed.
        db: String,
        /// The database's reason.
        reason: String,
        /// What to do.
        hint: String,
    },
    /// The MQTT session could not start.
    #[error(transparent)]
    Broker(#[from] transport::session::StartError),
    /// A topic filter was refused.
    #[error(transparent)]
    Subscribe(#[from] transport::session::SubscribeError),
    /// A database failure that retrying cannot fix.
    #[error("{0}")]
    Database(String),
    /// The broker session ended for good.
    #[error("the MQTT session ended: {0}")]
    SessionEnded(String),
}

impl SinkError {
    /// Whether this is a usage or configuration error (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SinkError::Mapping(_)
                | SinkError::Ident(_)
                | SinkError::Url(_)
                | SinkError::Config(_)
                | SinkError::Schema { .. }
                | SinkError::Broker(transport::session::StartError::Options(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_table_name_stays_a_valid_identifier() {
        let t = Ident::new("readings", "table").unwrap();
        assert_eq!(dead_letter_name(&t).as_str(), "readings_dead_letters");
        let long = Ident::new(&"r".repeat(63), "table").unwrap();
        let dl = dead_letter_name(&long);
        assert!(dl.as_str().ends_with("_dl") && dl.as_str().len() <= 63);
    }
}
