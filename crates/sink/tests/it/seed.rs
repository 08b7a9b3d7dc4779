//! The seed's own tables, as its scripts insert into them: PostgreSQL `temperature(temp, dh)`
//! and MariaDB `temperature(temperature, data_hora)`. The seed shows only the INSERTs
//! (`INSERT INTO temperature(temp, dh) VALUES ({temp}, '{dh}')`); the DDL below is the plain
//! table such a script writes into: a serial id, a float and a timestamp without time zone
//! (the device sends local time without an offset), no unique key.
//!
//! Without `--dedup` the start fails naming the flag that fits; with `--dedup columns=dh
//! --create-table` the sink adds the unique index and stores each reading once, the device's
//! wall-clock time unchanged; a table that already has a unique key is used without a flag;
//! `--coerce` takes `"23.5"` as a number.

use std::time::Duration;

use sink::{RawSettings, SinkConfig};

use crate::{Running, broker, mysql, pg, publish_lines, session};

const PG_SEED: &str = "CREATE TABLE temperature (id SERIAL PRIMARY KEY, temp REAL, dh TIMESTAMP)";
const MARIADB_SEED: &str = "CREATE TABLE temperature (id INT AUTO_INCREMENT PRIMARY KEY, temperature FLOAT, data_hora DATETIME)";

pub(crate) fn settings(db: &str, maps: &[&str], dedup: Option<&str>, create: bool) -> RawSettings {
    RawSettings {
        db: Some(db.to_owned()),
        table: Some("temperature".into()),
        maps: maps.iter().map(|m| (*m).to_owned()).collect(),
        topics: vec!["esp32/pub".into()],
        dedup: dedup.map(str::to_owned),
        create_table: create,
        batch: 1000,
        batch_ms: 50,
        drain_s: 10,
        retry_max_s: 1,
        ..RawSettings::default()
    }
}

fn reading(i: u64) -> String {
    format!(
        r#"{{"Temperature": {}.5, "Data Hora": "2026-11-24 10:00:{:02}"}}"#,
        20 + i % 10,
        i
    )
}

/// Publishes readings 0..n twice (a QoS 1 publisher retrying, or a redelivery) and runs the
/// sink until it has handled all 2n; returns its counters.
pub(crate) async fn store_twice(mut config: SinkConfig, n: u64) -> sink::Stats {
    let b = broker();
    config.progress_every = Some(Duration::from_millis(50));
    let sink = Running::start(config, session(&b)).await;
    let port = b.port_plain();
    tokio::task::spawn_blocking(move || {
        publish_lines(port, "esp32/pub", (0..n).chain(0..n).map(reading));
    })
    .await
    .unwrap();
    sink.stop_after_handled(2 * n, Duration::from_secs(60))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_seed_table_needs_a_dedup_flag_and_gets_its_unique_index() {
    let db = pg();
    db.sql(PG_SEED);
    let maps = ["temp=/Temperature", "dh=/Data Hora"];
    let e = sink::prepare(settings(&db.url(), &maps, None, false).resolve().unwrap())
        .await
        .unwrap_err();
    assert!(e.is_usage(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("no unique msg_key column and no unique key")
            && text.contains("--dedup columns=dh --create-table")
            && text.contains("--dedup none"),
        "{text}"
    );
    let e = sink::prepare(
        settings(&db.url(), &maps, Some("columns=dh"), false)
            .resolve()
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        e.is_usage()
            && e.to_string()
                .contains("CREATE UNIQUE INDEX IF NOT EXISTS \"temperature_dh_key\""),
        "{e}"
    );

    let cfg = settings(&db.url(), &maps, Some("columns=dh"), true)
        .resolve()
        .unwrap();
    let stats = store_twice(cfg, 50).await;
    assert_eq!((stats.stored, stats.duplicates), (50, 50), "{stats:?}");
    assert_eq!(
        db.sql("SELECT count(*), count(DISTINCT dh) FROM temperature")
            .trim(),
        "50|50"
    );
    assert_eq!(
        db.sql("SELECT dh::text, temp FROM temperature WHERE dh = '2026-11-24 10:00:07'")
            .trim(),
        "2026-11-24 10:00:07|27.5",
        "the device's wall-clock time and value, unchanged"
    );
    assert!(
        db.sql("SELECT indexdef FROM pg_indexes WHERE tablename = 'temperature'")
            .contains("UNIQUE INDEX temperature_dh_key ON public.temperature USING btree (dh)")
    );

    // The next start needs no flag: the table's unique key decides.
    let again = sink::prepare(settings(&db.url(), &maps, None, false).resolve().unwrap())
        .await
        .unwrap();
    drop(again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_seed_table_needs_a_dedup_flag_and_gets_its_unique_index() {
    let db = mysql();
    db.sql(MARIADB_SEED);
    let maps = ["temperature=/Temperature", "data_hora=/Data Hora"];
    let e = sink::prepare(settings(&db.url(), &maps, None, false).resolve().unwrap())
        .await
        .unwrap_err();
    assert!(
        e.is_usage()
            && e.to_string()
                .contains("--dedup columns=data_hora --create-table"),
        "{e}"
    );
    let cfg = settings(&db.url(), &maps, Some("columns=data_hora"), true)
        .resolve()
        .unwrap();
    let stats = store_twice(cfg, 50).await;
    assert_eq!((stats.stored, stats.duplicates), (50, 50), "{stats:?}");
    assert_eq!(
        db.sql("SELECT COUNT(*), COUNT(DISTINCT data_hora) FROM temperature")
            .trim(),
        "50\t50"
    );
    assert_eq!(
        db.sql(
            "SELECT data_hora FROM temperature WHERE temperature = 27.5 ORDER BY data_hora LIMIT 1"
        )
        .trim(),
        "2026-11-24 10:00:07"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_with_its_own_unique_key_is_used_without_a_flag_and_coerce_takes_strings() {
    let db = pg();
    db.sql(
        "CREATE TABLE temperature (id SERIAL PRIMARY KEY, temp NUMERIC(5,2), dh TIMESTAMP UNIQUE)",
    );
    let maps = ["temp=/Temperature", "dh=/Data Hora"];
    let mut raw = settings(&db.url(), &maps, None, false);
    raw.coerce = true;
    let mut cfg = raw.resolve().unwrap();
    cfg.count = Some(3);
    let b = broker();
    let sink = Running::start(cfg, session(&b)).await;
    let port = b.port_plain();
    tokio::task::spawn_blocking(move || {
        publish_lines(
            port,
            "esp32/pub",
            [
                r#"{"Temperature": "23.5", "Data Hora": "2026-11-24 10:00:00"}"#,
                r#"{"Temperature": " 24 ", "Data Hora": "2026-11-24 10:00:01"}"#,
                r#"{"Temperature": "warm", "Data Hora": "2026-11-24 10:00:02"}"#,
            ]
            .into_iter()
            .map(str::to_owned),
        );
    })
    .await
    .unwrap();
    let stats = sink.finish(Duration::from_secs(30)).await;
    assert_eq!((stats.stored, stats.dead_lettered), (2, 1), "{stats:?}");
    assert_eq!(
        db.sql("SELECT string_agg(temp::text, ',' ORDER BY dh) FROM temperature")
            .trim(),
        "23.50,24.00"
    );
    assert!(
        db.sql("SELECT error FROM temperature_dead_letters")
            .contains("must be a number (or a string holding one), got the string \"warm\"")
    );
}
