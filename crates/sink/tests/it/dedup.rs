//! The dedup itself, with the means to see it fail: every reading reaches the sink twice (what
//! a QoS 1 retry or a redelivery after a crash looks like to it). With `--dedup hash` and
//! `columns=` each is stored once and the repeat counted as a duplicate; with `--dedup none`,
//! the same run stores every reading twice, which shows that the repeats really arrive and that
//! "stored once" is the unique key's doing, not the test's.
//!
//! (The outage and kill tests check for loss; their "nothing doubled" could not fail while the
//! key exists, so doubling is tested here.)

use crate::seed::{settings, store_twice};
use crate::{mysql, pg};

const N: u64 = 200;
const MAPS: [&str; 2] = [
    "temperature:number=/Temperature",
    "data_hora:text=/Data Hora",
];

async fn each_mode(url: &str) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    for (i, mode) in ["hash", "columns=data_hora", "none"]
        .into_iter()
        .enumerate()
    {
        let mut raw = settings(url, &MAPS, Some(mode), true);
        raw.table = Some(format!("dedup_{i}"));
        let stats = store_twice(raw.resolve().unwrap(), N).await;
        out.push((mode.to_owned(), stats.stored, stats.duplicates));
    }
    out
}

fn assert_modes(got: &[(String, u64, u64)]) {
    assert_eq!(
        got,
        [
            ("hash".to_owned(), N, N),
            ("columns=data_hora".to_owned(), N, N),
            ("none".to_owned(), 2 * N, 0),
        ],
        "(mode, stored, duplicates)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stores_a_repeated_reading_once_unless_dedup_is_off() {
    let db = pg();
    assert_modes(&each_mode(&db.url()).await);
    assert_eq!(db.sql("SELECT count(*) FROM dedup_0").trim(), N.to_string());
    assert_eq!(
        db.sql("SELECT count(*) FROM dedup_2").trim(),
        (2 * N).to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_stores_a_repeated_reading_once_unless_dedup_is_off() {
    let db = mysql();
    assert_modes(&each_mode(&db.url()).await);
    assert_eq!(db.sql("SELECT COUNT(*) FROM dedup_1").trim(), N.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_stores_a_repeated_reading_once_unless_dedup_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("dedup.db").display());
    assert_modes(&each_mode(&url).await);
}
