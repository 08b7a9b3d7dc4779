//! Hostile and broken payloads on every backend: SQL in a field is stored as text, malformed
//! JSON and wrong types go to the dead-letter table with the reason and the exact bytes, a
//! repeated message is stored once.

use std::time::Duration;

use sink::db::Conn;
use sqlx::AssertSqlSafe;

use crate::{
    Running, broker, connect, drop_tables, esp32_config, mysql, pg, publish_bytes, scalar, session,
    unique,
};

async fn texts(conn: &mut Conn, sql: &str) -> Vec<String> {
    let sql = AssertSqlSafe(sql.to_owned());
    match conn {
        Conn::Sqlite(c) => sqlx::query_scalar::<_, String>(sql).fetch_all(c).await,
        Conn::Postgres(c) => sqlx::query_scalar::<_, String>(sql).fetch_all(c).await,
        Conn::MySql(c) => sqlx::query_scalar::<_, String>(sql).fetch_all(c).await,
    }
    .unwrap()
}

async fn blobs(conn: &mut Conn, sql: &str) -> Vec<Vec<u8>> {
    let sql = AssertSqlSafe(sql.to_owned());
    match conn {
        Conn::Sqlite(c) => sqlx::query_scalar::<_, Vec<u8>>(sql).fetch_all(c).await,
        Conn::Postgres(c) => sqlx::query_scalar::<_, Vec<u8>>(sql).fetch_all(c).await,
        Conn::MySql(c) => sqlx::query_scalar::<_, Vec<u8>>(sql).fetch_all(c).await,
    }
    .unwrap()
}

async fn hostile_payloads(db: &str) {
    let table = unique("hostile");
    let b = broker();
    let mut conn = connect(db).await;
    let injection = format!("Robert'); DROP TABLE {table};--");
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let good = [
        format!(
            r#"{{"Temperature": 1.5, "Data Hora": {}}}"#,
            quote(&injection)
        ),
        r#"{"Temperature": -3, "Data Hora": "ação ☃ 𝄞 \" ` \\ ;"}"#.to_owned(),
        r#"{"Temperature": 22.25, "Data Hora": "2026-11-24 10:00:00"}"#.to_owned(),
    ];
    let bad: [(&[u8], &str); 4] = [
        (b"not json", "payload is not valid JSON"),
        (
            br#"{"Temperature": "hot", "Data Hora": "x"}"#,
            "field `/Temperature` (column temperature) must be a number, got the string \"hot\"",
        ),
        (
            br#"{"Data Hora": "2026-11-24 10:00:01"}"#,
            "field `/Temperature` (column temperature) is missing",
        ),
        (&[0xff, 0xfe, 0x00, b'{'], "payload is not valid JSON"),
    ];
    let mut cfg = esp32_config(db, &table);
    cfg.count = Some(7);
    let sink = Running::start(cfg, session(&b)).await;
    let port = b.port_plain();
    let payloads: Vec<Vec<u8>> = good
        .iter()
        .map(|g| g.as_bytes().to_vec())
        // The same message again: stored once.
        .chain(std::iter::once(good[2].as_bytes().to_vec()))
        .chain(bad.iter().map(|(p, _)| p.to_vec()))
        .collect();
    tokio::task::spawn_blocking(move || {
        for p in &payloads {
            publish_bytes(port, "esp32/pub", p);
        }
    })
    .await
    .unwrap();
    let stats = sink.finish(Duration::from_secs(30)).await;
    assert_eq!(
        (stats.stored, stats.dead_lettered, stats.duplicates),
        (3, 4, 1),
        "{stats:?}"
    );

    // Two writers may commit neighbouring batches in either order: compare as sets.
    let mut stored = texts(&mut conn, &format!("SELECT data_hora FROM {table}")).await;
    stored.sort();
    let mut want_stored = vec![
        injection.clone(),
        "ação ☃ 𝄞 \" ` \\ ;".to_owned(),
        "2026-11-24 10:00:00".to_owned(),
    ];
    want_stored.sort();
    assert_eq!(
        stored, want_stored,
        "stored literally, the table still there"
    );
    let dl = format!("{table}_dead_letters");
    let errors = texts(&mut conn, &format!("SELECT error FROM {dl} ORDER BY id")).await;
    let raw = blobs(&mut conn, &format!("SELECT payload FROM {dl} ORDER BY id")).await;
    assert_eq!(errors.len(), 4);
    for (payload, want) in &bad {
        let i = raw
            .iter()
            .position(|r| r.as_slice() == *payload)
            .unwrap_or_else(|| panic!("no dead letter holds the exact bytes {payload:?}"));
        assert!(
            errors[i].starts_with(want),
            "dead letter error `{}` should start with `{want}`",
            errors[i]
        );
    }
    assert_eq!(
        scalar(
            &mut conn,
            &format!("SELECT COUNT(*) FROM {dl} WHERE topic = 'esp32/pub'")
        )
        .await,
        4
    );
    drop_tables(&mut conn, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_stores_sql_literally_and_dead_letters_bad_payloads() {
    let dir = tempfile::tempdir().unwrap();
    hostile_payloads(&format!("sqlite://{}", dir.path().join("h.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stores_sql_literally_and_dead_letters_bad_payloads() {
    let db = pg();
    hostile_payloads(&db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_stores_sql_literally_and_dead_letters_bad_payloads() {
    let db = mysql();
    hostile_payloads(&db.url()).await;
}

/// A row the database refuses (a CHECK constraint of the user's own table) becomes a dead
/// letter with the database's reason; the rest of its batch is stored.
async fn refused_row_is_dead_lettered(db: &str, ddl: &str) {
    let table = unique("refuse");
    let b = broker();
    let mut conn = connect(db).await;
    conn.exec(ddl.replace("{table}", &table)).await.unwrap();
    let mut cfg = esp32_config(db, &table);
    cfg.create_table = false;
    cfg.count = Some(3);
    let sink = Running::start(cfg, session(&b)).await;
    let port = b.port_plain();
    tokio::task::spawn_blocking(move || {
        crate::publish_lines(
            port,
            "esp32/pub",
            [
                r#"{"Temperature": 1, "Data Hora": "ok-1"}"#,
                r#"{"Temperature": 2, "Data Hora": "far too long for the check"}"#,
                r#"{"Temperature": 3, "Data Hora": "ok-3"}"#,
            ]
            .into_iter()
            .map(str::to_owned),
        );
    })
    .await
    .unwrap();
    let stats = sink.finish(Duration::from_secs(30)).await;
    assert_eq!((stats.stored, stats.dead_lettered), (2, 1), "{stats:?}");
    let dl = format!("{table}_dead_letters");
    let errors = texts(&mut conn, &format!("SELECT error FROM {dl}")).await;
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("the database refused the row: "),
        "{errors:?}"
    );
    let mut stored = texts(&mut conn, &format!("SELECT data_hora FROM {table}")).await;
    stored.sort();
    assert_eq!(stored, vec!["ok-1", "ok-3"]);
    drop_tables(&mut conn, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_dead_letters_a_row_the_database_refuses() {
    let dir = tempfile::tempdir().unwrap();
    refused_row_is_dead_lettered(
        &format!("sqlite://{}", dir.path().join("r.db").display()),
        "CREATE TABLE {table} (id INTEGER PRIMARY KEY, temperature REAL, data_hora TEXT CHECK (length(data_hora) <= 5), msg_key TEXT NOT NULL UNIQUE)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dead_letters_a_row_the_database_refuses() {
    let db = pg();
    refused_row_is_dead_lettered(
        &db.url(),
        "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, temperature DOUBLE PRECISION, data_hora VARCHAR(5), msg_key UUID NOT NULL UNIQUE)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_dead_letters_a_row_the_database_refuses() {
    let db = mysql();
    refused_row_is_dead_lettered(
        &db.url(),
        "CREATE TABLE {table} (id BIGINT AUTO_INCREMENT PRIMARY KEY, temperature DOUBLE, data_hora VARCHAR(5), msg_key CHAR(32) NOT NULL UNIQUE) DEFAULT CHARSET=utf8mb4",
    )
    .await;
}
