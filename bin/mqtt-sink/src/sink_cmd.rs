//! The sink's flags and their hand-over to `sink::prepare` / `Sink::run`.

use std::path::PathBuf;

use clap::Args;
use cli::args::{AuthArgs, BrokerArgs, TlsArgs};
use cli::output::{Output, exit};

use crate::Usage;

/// Default broker: the local mosquitto of the seed's set-up.
const DEFAULT_BROKER: &str = "mqtt://127.0.0.1:1883";

#[derive(Debug, Args)]
pub struct SinkArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    auth: AuthArgs,
    /// Topic filter to subscribe to at QoS 1 (repeatable; default with --preset esp32: esp32/pub).
    #[arg(long, short = 't', value_name = "FILTER", help_heading = "Sink")]
    topic: Vec<String>,
    /// Database: sqlite://FILE (created if missing), postgres://USER@HOST/DB or mysql://USER@HOST/DB.
    #[arg(
        long,
        value_name = "URL",
        env = "MQTT_SINK_DB",
        hide_env_values = true,
        help_heading = "Sink"
    )]
    db: Option<String>,
    /// Read the database password from this environment variable.
    #[arg(
        long,
        value_name = "VAR",
        conflicts_with = "db_password_file",
        help_heading = "Sink"
    )]
    db_password_env: Option<String>,
    /// Read the database password from this file (warned about when group or others may read it).
    #[arg(long, value_name = "PATH", help_heading = "Sink")]
    db_password_file: Option<PathBuf>,
    /// TLS to the database: disable, require, verify-ca, verify-full (libpq's names). Default:
    /// verify-full off this machine; on it, TLS when the server offers it, else plaintext.
    #[arg(long, value_name = "MODE", value_parser = sink::DbTls::NAMES, help_heading = "Sink")]
    db_tls: Option<String>,
    /// CA certificate (PEM) that signed the database server's certificate (default: the system's CAs).
    #[arg(long, value_name = "PEM", help_heading = "Sink")]
    db_cafile: Option<PathBuf>,
    /// Target table (letters, digits, `_`).
    #[arg(long, value_name = "NAME", help_heading = "Sink")]
    table: Option<String>,
    /// Table for messages that cannot be stored (default: `<table>_dead_letters`).
    #[arg(long, value_name = "NAME", help_heading = "Sink")]
    dead_letter_table: Option<String>,
    /// `COLUMN[:TYPE]=/json/pointer`, repeatable; TYPE: number, integer, text, bool, json, timestamp.
    #[arg(long, value_name = "SPEC", help_heading = "Mapping")]
    pub map: Vec<String>,
    /// JSON mapping file (table, columns, topic_column, received_at_column, payload_column, dedup).
    #[arg(long, value_name = "FILE", help_heading = "Mapping")]
    mapping: Option<PathBuf>,
    /// Built-in mapping: esp32 = temperature:number=/Temperature, data_hora:text=/Data Hora.
    #[arg(long, value_name = "NAME", help_heading = "Mapping")]
    preset: Option<String>,
    /// Also store the topic (in COL, default `topic`).
    #[arg(long, value_name = "COL", num_args = 0..=1, default_missing_value = "topic", help_heading = "Mapping")]
    store_topic: Option<String>,
    /// Also store when the sink received the message (in COL, default `received_at`).
    #[arg(long, value_name = "COL", num_args = 0..=1, default_missing_value = "received_at", help_heading = "Mapping")]
    store_received_at: Option<String>,
    /// Also store the raw payload text (in COL, default `payload`).
    #[arg(long, value_name = "COL", num_args = 0..=1, default_missing_value = "payload", help_heading = "Mapping")]
    store_raw: Option<String>,
    /// Redeliveries: hash (msg_key = hash of topic+payload, unique), columns=A,B (unique on those), none.
    #[arg(long, value_name = "MODE", help_heading = "Mapping")]
    dedup: Option<String>,
    /// Create the table when it is missing (types from --map or from the first values), and the
    /// unique index --dedup columns=.. needs on an existing table.
    #[arg(long, help_heading = "Mapping")]
    create_table: bool,
    /// Take numbers sent as strings ("23.5") as numbers in number and integer columns.
    #[arg(long, help_heading = "Mapping")]
    coerce: bool,
    /// With --create-table (PostgreSQL): range partitions of one UTC day or month over a mapped
    /// timestamp column, created as rows need them.
    #[arg(long, value_name = "WIDTH", value_parser = ["day", "month"], help_heading = "Mapping")]
    partition_by: Option<String>,
    /// The timestamp column to partition by (default: the one mapped timestamp column).
    #[arg(
        long,
        value_name = "COL",
        requires = "partition_by",
        help_heading = "Mapping"
    )]
    partition_column: Option<String>,
    /// Subscribe as a member of this shared-subscription group ($share/GROUP/TOPIC): the broker
    /// deals the stream among the sinks of the group. Give each its own --client-id.
    #[arg(long, value_name = "GROUP", help_heading = "Sink")]
    share: Option<String>,
    /// Most rows per transaction.
    #[arg(long, value_name = "N", default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=20_000), help_heading = "Batching")]
    batch: u32,
    /// Longest a batch keeps filling before it is written, in ms (the most a reading waits).
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 100,
        help_heading = "Batching"
    )]
    batch_ms: u64,
    /// Connections committing batches side by side, acknowledged in arrival order
    /// (default: 2 for PostgreSQL, 1 otherwise).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=8), help_heading = "Batching")]
    writers: Option<u8>,
    /// Stop after N messages were stored or dead-lettered.
    #[arg(long, short = 'C', value_name = "N", help_heading = "Run")]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", help_heading = "Run")]
    duration: Option<f64>,
    /// On stop, seconds to keep trying to commit what is in hand (the rest stays unacknowledged).
    #[arg(long, value_name = "SECS", default_value_t = 10, help_heading = "Run")]
    drain_timeout: u64,
    /// Longest wait between database retries, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30, help_heading = "Run")]
    retry_max: u64,
    /// Report counters every SECS seconds (0: only at the end).
    #[arg(long, value_name = "SECS", default_value_t = 10, help_heading = "Run")]
    progress: u64,
}

pub async fn run(args: SinkArgs, out: Output) -> anyhow::Result<u8> {
    let mut session = args
        .broker
        .to_options(&args.tls, &args.auth, Some(DEFAULT_BROKER))
        .map_err(|e| Usage(e.to_string()))?;
    if args.broker.persistent && args.broker.client_id.is_none() {
        return Err(Usage(
            "--persistent needs a fixed --client-id, or the session cannot be resumed".into(),
        )
        .into());
    }
    // A fixed client id means "resume me": the broker keeps what arrives while the sink is down.
    session.clean_session = !(args.broker.persistent || args.broker.client_id.is_some());
    if session.clean_session {
        tracing::warn!(
            "no -i/--client-id: the session is clean, so the broker drops readings published while this sink is down; pass -i/--client-id NAME (the same on every start) to keep them"
        );
    }
    let db_password = match (args.db_password_env, args.db_password_file) {
        (Some(var), _) => Some(sink::DbPassword::Env(var)),
        (None, Some(path)) => Some(sink::DbPassword::File(path)),
        (None, None) => None,
    };
    let config = sink::RawSettings {
        db: args.db,
        db_password,
        db_tls: args.db_tls,
        db_cafile: args.db_cafile,
        table: args.table,
        dead_letter_table: args.dead_letter_table,
        maps: args.map,
        mapping_file: args.mapping,
        preset: args.preset,
        store_topic: args.store_topic,
        store_received_at: args.store_received_at,
        store_raw: args.store_raw,
        dedup: args.dedup,
        create_table: args.create_table,
        coerce: args.coerce,
        share: args.share,
        partition_by: args.partition_by,
        partition_column: args.partition_column,
        topics: args.topic,
        batch: args.batch as usize,
        batch_ms: args.batch_ms,
        count: args.count,
        duration_s: args.duration,
        drain_s: args.drain_timeout,
        retry_max_s: args.retry_max,
        progress_s: args.progress,
        writers: args.writers.map_or(0, usize::from),
    }
    .resolve()?;
    let ready = sink::prepare(config).await?;
    let reporter = move |ev: &sink::Event| out.event(ev.kind(), ev, || ev.text());
    let stats = ready
        .run(session, cli::signal::shutdown_signal(), &reporter)
        .await?;
    out.event("summary", &stats, || stats.text());
    Ok(exit::OK)
}
