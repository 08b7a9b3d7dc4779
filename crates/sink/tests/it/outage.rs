//! The database goes away mid-stream and comes back: the sink stops acknowledging, retries
//! with back-off, and in the end every reading is stored: nothing lost. (That nothing is stored
//! twice is the unique key's doing, which these tests cannot tell from luck; `dedup.rs` tests
//! it with repeats that do arrive, and with the key off.)
//!
//! SQLite: the test takes the database's write lock (`BEGIN EXCLUSIVE` on its own
//! connection) so every write of the sink fails with SQLITE_BUSY until it commits.
//! PostgreSQL: a database made for this test refuses connections
//! (`ALTER DATABASE .. ALLOW_CONNECTIONS false`) and the sink's backend is terminated
//! (`pg_terminate_backend`), as during a server restart; the shared server keeps running.
//! MariaDB: the sink reaches the server through a fault proxy, which cuts its connection
//! mid-stream and refuses new ones for a while (the server unreachable, as during a restart or
//! a network outage); a batch whose COMMIT was in flight when the cut came is written again and
//! the unique key keeps it from doubling.

use std::time::Duration;

use sink::Event;
use sink::db::Conn;

use crate::{
    Running, broker, connect, drop_tables, esp32_config, mysql, pg, publish_lines, reading,
    rows_and_distinct, scalar, session, unique, wait_rows,
};

const N: u64 = 20_000;

/// Publishes N readings in paced chunks from a thread, so the outage lands mid-stream.
fn paced_publisher(port: u16) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for chunk in 0..(N / 1000) {
            publish_lines(
                port,
                "esp32/pub",
                (chunk * 1000..(chunk + 1) * 1000).map(reading),
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// Waits until the sink reported `n` failed attempts to write.
async fn wait_for_failed_attempts(sink: &Running, n: u32) {
    sink.wait_for("database_down", Duration::from_secs(30), |e| {
        matches!(e, Event::DatabaseDown { .. })
    })
    .await;
    sink.wait_for(
        &format!("failed attempt {n}"),
        Duration::from_secs(30),
        |e| matches!(e, Event::DatabaseDown { attempt, .. } if *attempt >= n),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_mid_stream_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("outage.db").display());
    let b = broker();
    let mut cfg = esp32_config(&db, "readings");
    cfg.count = Some(N);
    let sink = Running::start(cfg, session(&b)).await;
    let publisher = paced_publisher(b.port_plain());
    let mut check = connect(&db).await;
    let before = wait_rows(&mut check, "readings", 2000, Duration::from_secs(60)).await;
    assert!(
        (2000..20_000).contains(&before),
        "outage mid-stream ({before} rows)"
    );

    let mut locker = connect(&db).await;
    let Conn::Sqlite(lock) = &mut locker else {
        unreachable!()
    };
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut *lock)
        .await
        .unwrap();
    wait_for_failed_attempts(&sink, 2).await;
    let during = scalar(&mut check, "SELECT COUNT(*) FROM readings").await;
    sqlx::query("COMMIT").execute(&mut *lock).await.unwrap();
    locker.close().await;

    let stats = sink.finish(Duration::from_secs(120)).await;
    publisher.join().unwrap();
    assert!(
        during < 20_000,
        "the lock held while readings were still arriving"
    );
    assert!(stats.retries >= 2, "{stats:?}");
    assert_eq!(stats.stored, N);
    let n = i64::try_from(N).unwrap();
    assert_eq!(rows_and_distinct(&mut check, "readings").await, (n, n));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refusing_connections_mid_stream_loses_and_doubles_nothing() {
    let test_db = pg();
    let dbname = test_db.name().to_owned();
    let db = test_db.url();
    let mut admin = connect(&test_db.server().admin_url()).await;

    let b = broker();
    let mut cfg = esp32_config(&db, "readings");
    cfg.count = Some(N);
    let sink = Running::start(cfg, session(&b)).await;
    let publisher = paced_publisher(b.port_plain());
    let mut check = connect(&db).await;
    let before = wait_rows(&mut check, "readings", 2000, Duration::from_secs(60)).await;
    assert!(
        (2000..20_000).contains(&before),
        "outage mid-stream ({before} rows)"
    );
    check.close().await;

    admin
        .exec(format!("ALTER DATABASE {dbname} ALLOW_CONNECTIONS false"))
        .await
        .unwrap();
    let terminated = scalar(
        &mut admin,
        &format!(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{dbname}'"
        ),
    )
    .await;
    assert!(terminated >= 1, "the sink's connection was cut");
    wait_for_failed_attempts(&sink, 3).await;
    admin
        .exec(format!("ALTER DATABASE {dbname} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();

    let stats = sink.finish(Duration::from_secs(120)).await;
    publisher.join().unwrap();
    assert!(stats.retries >= 3, "{stats:?}");
    assert_eq!(stats.stored, N);
    assert!(
        sink_saw_recovery(&stats),
        "the sink wrote after the outage: {stats:?}"
    );
    let mut check = connect(&db).await;
    let n = i64::try_from(N).unwrap();
    assert_eq!(rows_and_distinct(&mut check, "readings").await, (n, n));
    check.close().await;
    admin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_unreachable_mid_stream_loses_and_doubles_nothing() {
    let test_db = mysql();
    let direct = test_db.url();
    let url: url::Url = direct.parse().expect("the test database URL is a URL");
    let port = url.port().unwrap_or(3306);
    let proxy = tokio::task::block_in_place(|| testkit::FaultProxy::start(port));
    let mut via_proxy = url.clone();
    via_proxy.set_host(Some("127.0.0.1")).unwrap();
    via_proxy.set_port(Some(proxy.port())).unwrap();
    let table = unique("outage");

    let b = broker();
    let mut cfg = esp32_config(via_proxy.as_str(), &table);
    cfg.count = Some(N);
    let sink = Running::start(cfg, session(&b)).await;
    let publisher = paced_publisher(b.port_plain());
    let mut check = connect(&direct).await;
    let before = wait_rows(&mut check, &table, 2000, Duration::from_secs(60)).await;
    assert!(
        (2000..20_000).contains(&before),
        "outage mid-stream ({before} rows)"
    );

    proxy.set_blocked(true);
    wait_for_failed_attempts(&sink, 3).await;
    let during = scalar(&mut check, &format!("SELECT COUNT(*) FROM {table}")).await;
    proxy.set_blocked(false);

    let stats = sink.finish(Duration::from_secs(120)).await;
    publisher.join().unwrap();
    assert!(
        during < 20_000,
        "the outage came while readings were still arriving"
    );
    assert!(stats.retries >= 3, "{stats:?}");
    // A batch cut during its COMMIT is written again; its rows then count as duplicates.
    assert_eq!(stats.stored, N, "{stats:?}");
    let n = i64::try_from(N).unwrap();
    assert_eq!(rows_and_distinct(&mut check, &table).await, (n, n));
    drop_tables(&mut check, &table).await;
    check.close().await;
}

fn sink_saw_recovery(stats: &sink::Stats) -> bool {
    stats.batches > 0 && stats.stored > 0
}
