//! 100,000 seed-shaped readings stored exactly once on each backend: every row there, none twice, counted in
//! the database itself.

use std::time::Duration;

use crate::{
    Running, broker, connect, drop_tables, esp32_config, mysql, pg, publish_lines, reading,
    rows_and_distinct, session,
};

async fn stores_each_reading_once(db: &str, table: &str, n: u64) {
    let b = broker();
    let mut conn = connect(db).await;
    drop_tables(&mut conn, table).await;
    let mut cfg = esp32_config(db, table);
    cfg.count = Some(n);
    let sink = Running::start(cfg, session(&b)).await;
    let port = b.port_plain();
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || publish_lines(port, "esp32/pub", (0..n).map(reading)))
        .await
        .unwrap();
    let stats = sink.finish(Duration::from_secs(180)).await;
    eprintln!(
        "{db}: {n} readings in {:.2} s: {}",
        started.elapsed().as_secs_f64(),
        stats.text()
    );
    assert_eq!(stats.stored, n);
    assert_eq!(stats.dead_lettered, 0);
    assert_eq!(stats.received, n, "no redelivery without a reconnect");
    let n = i64::try_from(n).unwrap();
    assert_eq!(rows_and_distinct(&mut conn, table).await, (n, n));
    drop_tables(&mut conn, table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_stores_100k_readings_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("volume.db").display());
    stores_each_reading_once(&db, "readings", 100_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stores_100k_readings_exactly_once() {
    let db = pg();
    stores_each_reading_once(&db.url(), "readings", 100_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_stores_100k_readings_exactly_once() {
    let db = mysql();
    stores_each_reading_once(&db.url(), "readings", 100_000).await;
}
