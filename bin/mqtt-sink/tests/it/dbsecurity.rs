//! Database TLS and passwords, as a user meets them: against testkit's TLS-only PostgreSQL
//! (`ssl = on`, `hostssl` lines only) and MariaDB (`require_secure_transport`), each signed by a
//! per-run CA. verify-full with that CA stores readings; another CA, plaintext, and plaintext
//! off this machine are refused with a sentence; a password from a variable, a file or the URL
//! logs in, a wrong one fails naming its source; and no password ever shows in stdout or
//! stderr, at `-vvv` with `--output json`.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::cli::output::exit;
use testkit::cli::{Running, run};
use testkit::{Broker, BrokerOpts, MariaDb, Pki, Postgres};

use crate::mqtt_sink;

/// Readings each storing run waits for.
const N: u64 = 5;

fn broker() -> Broker {
    Broker::start(BrokerOpts::new())
}

/// `mqtt-sink` storing N seed readings from `broker` into `db`, with `extra` flags and `env`.
fn sink_cmd(broker: &Broker, db: &str, extra: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = mqtt_sink();
    c.args([
        "-vvv",
        "--output",
        "json",
        "-b",
        &broker.url_plain(),
        "--preset",
        "esp32",
        "--create-table",
        "--count",
        &N.to_string(),
        "--db",
        db,
    ])
    .args(extra)
    .env_remove("PGPASSWORD")
    .env_remove("MYSQL_PWD")
    .env_remove("PGSSLMODE")
    .env("HOME", "/nonexistent");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Publishes N seed readings, each call's on a day of its own (a repeat would be a duplicate).
fn publish(broker: &Broker) {
    static DAY: AtomicU64 = AtomicU64::new(1);
    let day = DAY.fetch_add(1, Ordering::Relaxed);
    let out = run(mqtt_sink().args([
        "simulate",
        "-b",
        &broker.url_plain(),
        "--count",
        &N.to_string(),
        "--rate",
        "0",
        "--start",
        &format!("2026-03-{day:02} 00:00:00"),
    ]));
    assert_eq!(out.status.code(), Some(0), "simulate: {out:?}");
}

/// Runs the sink until it stored N readings; returns everything it printed (stdout + stderr).
fn store_readings(broker: &Broker, cmd: &mut Command) -> String {
    let mut sink = Running::spawn(cmd);
    sink.wait_for_stdout_line("\"type\":\"ready\"", Duration::from_secs(30));
    publish(broker);
    let code = sink.wait(Duration::from_secs(60));
    let all = printed(&sink);
    assert_eq!(
        code,
        Some(0),
        "the sink stores {N} readings and exits 0:\n{all}"
    );
    assert!(all.contains(&format!("\"stored\":{N}")), "{all}");
    all
}

fn printed(r: &Running) -> String {
    let out = r.stdout.lock().unwrap().join("\n");
    let err = r.stderr.lock().unwrap().join("\n");
    format!("{out}\n{err}")
}

/// Runs a sink that must fail before subscribing; returns (exit code, stdout + stderr).
fn failing(cmd: &mut Command) -> (Option<i32>, String) {
    let out = run(cmd);
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn assert_secret_absent(text: &str, secret: &str) {
    assert!(
        !text.contains(secret),
        "the password `{secret}` appears in the output:\n{text}"
    );
}

fn ca_arg(ca: &Path) -> String {
    ca.display().to_string()
}

#[test]
fn postgres_verify_full_with_the_servers_ca_stores_readings() {
    let pg = Postgres::shared_tls();
    let db = pg.database();
    let url = format!("postgres://postgres@localhost:{}/{}", pg.port(), db.name());
    let ca = ca_arg(&pg.ca_file().unwrap());
    let b = broker();
    store_readings(
        &b,
        &mut sink_cmd(
            &b,
            &url,
            &["--db-tls", "verify-full", "--db-cafile", &ca],
            &[],
        ),
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM readings").trim(),
        N.to_string()
    );
}

#[test]
fn postgres_with_another_ca_is_refused_with_a_sentence() {
    let pg = Postgres::shared_tls();
    let db = pg.database();
    let url = format!("postgres://postgres@localhost:{}/{}", pg.port(), db.name());
    let other = tempfile::tempdir().unwrap();
    let wrong = Pki::generate(other.path()).ca_cert();
    let (code, text) = failing(&mut sink_cmd(
        &broker(),
        &url,
        &["--db-cafile", &ca_arg(&wrong)],
        &[],
    ));
    assert_eq!(code, Some(i32::from(exit::FAILURE)), "{text}");
    assert!(
        text.contains("the server's TLS certificate is not signed by a CA this sink trusts")
            && text.contains(&format!("--db-cafile `{}`", wrong.display())),
        "{text}"
    );
}

#[test]
fn postgres_plaintext_to_a_tls_only_server_is_refused_with_a_sentence() {
    let pg = Postgres::shared_tls();
    let db = pg.database();
    let url = format!("postgres://postgres@127.0.0.1:{}/{}", pg.port(), db.name());
    let (code, text) = failing(&mut sink_cmd(
        &broker(),
        &url,
        &["--db-tls", "disable"],
        &[],
    ));
    assert_eq!(code, Some(i32::from(exit::FAILURE)), "{text}");
    assert!(
        text.contains("no encryption") && text.contains("takes this user only over TLS"),
        "{text}"
    );
}

#[test]
fn plaintext_off_this_machine_is_refused_before_connecting() {
    let cases: [(&str, &[&str], &str); 4] = [
        (
            "postgres://sink@db.example.com/iot",
            &["--db-tls", "disable"],
            "--db-tls says `disable`",
        ),
        (
            "postgres://sink@db.example.com/iot?sslmode=prefer",
            &[],
            "`sslmode=prefer` in --db says `prefer`",
        ),
        (
            "mysql://sink@10.1.2.3/iot?ssl-mode=DISABLED",
            &[],
            "`ssl-mode=DISABLED` in --db",
        ),
        (
            "postgres://sink@localhost/iot?sslmode=verify-full",
            &["--db-tls", "disable"],
            "conflicts with `sslmode=verify-full`",
        ),
    ];
    for (url, extra, want) in cases {
        let (code, text) = failing(&mut sink_cmd(&broker(), url, extra, &[]));
        assert_eq!(code, Some(i32::from(exit::USAGE)), "{url}: {text}");
        assert!(text.contains(want), "{url}: wanted `{want}` in:\n{text}");
    }
}

#[test]
fn postgres_password_from_a_variable_a_file_or_the_url_never_shows() {
    let pg = Postgres::shared_tls();
    let user = testkit::unique_name("sink_pw");
    let secret = "pw-7d1e-visible-nowhere";
    pg.create_password_user(&user, secret);
    let db = pg.database_owned_by(Some(&user));
    let url = format!("postgres://{user}@localhost:{}/{}", pg.port(), db.name());
    let ca = ca_arg(&pg.ca_file().unwrap());
    let b = broker();

    // From a variable.
    let all = store_readings(
        &b,
        &mut sink_cmd(
            &b,
            &url,
            &["--db-cafile", &ca, "--db-password-env", "SINK_TEST_DB_PW"],
            &[("SINK_TEST_DB_PW", secret)],
        ),
    );
    assert_secret_absent(&all, secret);

    // From a file other users may read: used, with a warning naming the file and the fix.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db.pw");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let file_arg = file.display().to_string();
    let all = store_readings(
        &b,
        &mut sink_cmd(
            &b,
            &url,
            &["--db-cafile", &ca, "--db-password-file", &file_arg],
            &[],
        ),
    );
    assert!(
        all.contains(&format!("chmod 600 {file_arg}")),
        "no permission warning:\n{all}"
    );
    assert_secret_absent(&all, secret);

    // Inside the URL: works, warned about, and redacted everywhere.
    let with_pw = format!(
        "postgres://{user}:{secret}@localhost:{}/{}",
        pg.port(),
        db.name()
    );
    let all = store_readings(&b, &mut sink_cmd(&b, &with_pw, &["--db-cafile", &ca], &[]));
    assert!(all.contains("the --db URL holds a password"), "{all}");
    assert_secret_absent(&all, secret);

    // PGPASSWORD, as libpq reads it.
    store_readings(
        &b,
        &mut sink_cmd(&b, &url, &["--db-cafile", &ca], &[("PGPASSWORD", secret)]),
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM readings").trim(),
        (4 * N).to_string()
    );
}

#[test]
fn postgres_wrong_password_fails_naming_its_source() {
    let pg = Postgres::shared_tls();
    let user = testkit::unique_name("sink_pw");
    pg.create_password_user(&user, "the-right-one");
    let db = pg.database_owned_by(Some(&user));
    let url = format!("postgres://{user}@localhost:{}/{}", pg.port(), db.name());
    let wrong = "wrong-pw-3f9a-visible-nowhere";
    let (code, text) = failing(&mut sink_cmd(
        &broker(),
        &url,
        &[
            "--db-cafile",
            &ca_arg(&pg.ca_file().unwrap()),
            "--db-password-env",
            "SINK_TEST_DB_PW",
        ],
        &[("SINK_TEST_DB_PW", wrong)],
    ));
    assert_eq!(code, Some(i32::from(exit::FAILURE)), "{text}");
    assert!(
        text.contains("password authentication failed")
            && text.contains("the password came from --db-password-env SINK_TEST_DB_PW"),
        "{text}"
    );
    assert_secret_absent(&text, wrong);
}

#[test]
fn mariadb_verify_full_stores_readings_and_plaintext_or_another_ca_is_refused() {
    let my = MariaDb::shared_tls();
    let user = testkit::unique_name("sink_pw");
    let secret = "mysql-pw-51c2-visible-nowhere";
    my.create_password_user(&user, secret);
    let db = my.database();
    let url = format!("mysql://{user}@127.0.0.1:{}/{}", my.port(), db.name());
    let ca = ca_arg(&my.ca_file().unwrap());
    let b = broker();

    let all = store_readings(
        &b,
        &mut sink_cmd(
            &b,
            &url,
            &["--db-tls", "verify-full", "--db-cafile", &ca],
            &[("MYSQL_PWD", secret)],
        ),
    );
    assert_secret_absent(&all, secret);
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM readings").trim(),
        N.to_string()
    );

    let (code, text) = failing(&mut sink_cmd(
        &b,
        &url,
        &["--db-tls", "disable"],
        &[("MYSQL_PWD", secret)],
    ));
    assert_eq!(code, Some(i32::from(exit::FAILURE)), "{text}");
    assert!(
        text.contains("Access denied") && text.contains("require_secure_transport"),
        "{text}"
    );

    let other = tempfile::tempdir().unwrap();
    let wrong = Pki::generate(other.path()).ca_cert();
    let (code, text) = failing(&mut sink_cmd(
        &b,
        &url,
        &["--db-cafile", &ca_arg(&wrong)],
        &[("MYSQL_PWD", secret)],
    ));
    assert_eq!(code, Some(i32::from(exit::FAILURE)), "{text}");
    assert!(
        text.contains("not signed by a CA this sink trusts"),
        "{text}"
    );

    let (code, text) = failing(&mut sink_cmd(
        &b,
        &url,
        &["--db-cafile", &ca],
        &[("MYSQL_PWD", "not-the-password")],
    ));
    assert_eq!(code, Some(i32::from(exit::FAILURE)), "{text}");
    assert!(
        text.contains("Access denied") && text.contains("the password came from MYSQL_PWD"),
        "{text}"
    );
    assert_secret_absent(&text, "not-the-password");
}
