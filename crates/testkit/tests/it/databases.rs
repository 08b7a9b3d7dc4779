//! The private database servers: they start without any service or variable, give each test
//! its own database, ask `pw_users` for their password, refuse plaintext on the TLS flavour,
//! and are gone (process and folder) once the process that started them ends, even by SIGKILL.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::{MariaDb, MariaDbFlavor, PgFlavor, Postgres};

fn psql(conninfo: &str, password: Option<&str>) -> Output {
    let mut c = Command::new(Postgres::psql_program());
    c.args([
        "-X",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "SELECT current_user",
    ])
    .arg(conninfo)
    .env("PGCONNECT_TIMEOUT", "10")
    .env_remove("PGPASSWORD")
    .env_remove("PGSSLMODE")
    .stdin(Stdio::null());
    if let Some(p) = password {
        c.env("PGPASSWORD", p);
    }
    c.output().expect("psql runs")
}

fn mariadb(args: &[&str], password: Option<&str>) -> Output {
    let mut c = Command::new("mariadb");
    c.arg("--no-defaults")
        .args(args)
        .args(["-N", "-B", "-e", "SELECT CURRENT_USER()"])
        .env_remove("MYSQL_PWD")
        .stdin(Stdio::null());
    if let Some(p) = password {
        c.env("MYSQL_PWD", p);
    }
    c.output().expect("the mariadb client runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn postgres_gives_each_test_its_own_database() {
    let pg = Postgres::shared();
    let a = pg.database();
    let b = pg.database();
    assert_ne!(a.name(), b.name());
    a.sql("CREATE TABLE t (x int)");
    a.sql("INSERT INTO t VALUES (1), (2)");
    assert_eq!(a.sql("SELECT count(*) FROM t").trim(), "2");
    assert!(
        !b.sql("SELECT count(*) FROM pg_tables WHERE tablename = 't'")
            .starts_with('1')
    );
    let name = a.name().to_owned();
    drop(a);
    let left = pg.sql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    );
    assert_eq!(left.trim(), "0", "the database is dropped with its handle");
}

#[test]
fn postgres_password_users_need_their_password() {
    let pg = Postgres::shared();
    assert!(pg.is_private() || std::env::var(testkit::PG_URL_ENV).is_ok());
    let user = testkit::unique_name("u");
    pg.create_password_user(&user, "right-pw");
    let db = pg.database_owned_by(Some(&user));
    let url = db.url_as(&user);
    let ok = psql(&url, Some("right-pw"));
    assert!(ok.status.success(), "{}", text(&ok));
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), user);
    if pg.is_private() {
        let bad = psql(&url, Some("wrong-pw"));
        assert!(!bad.status.success());
        assert!(
            text(&bad).contains("password authentication failed"),
            "{}",
            text(&bad)
        );
    }
}

#[test]
fn postgres_tls_flavour_verifies_and_refuses_plaintext() {
    let pg = Postgres::shared_tls();
    let db = pg.database();
    let ca = pg.ca_file().expect("the TLS server has a CA");
    let port = pg.port();
    let verified = format!(
        "host=localhost port={port} dbname={} user=postgres sslmode=verify-full sslrootcert={}",
        db.name(),
        ca.display()
    );
    let ok = psql(&verified, None);
    assert!(ok.status.success(), "{}", text(&ok));
    let plain = format!(
        "host=127.0.0.1 port={port} dbname={} user=postgres sslmode=disable",
        db.name()
    );
    let refused = psql(&plain, None);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("no encryption"),
        "{}",
        text(&refused)
    );
}

#[test]
fn mariadb_gives_each_test_its_own_database_and_checks_passwords() {
    let my = MariaDb::shared();
    let a = my.database();
    let b = my.database();
    assert_ne!(a.name(), b.name());
    a.sql("CREATE TABLE t (x INT); INSERT INTO t VALUES (1), (2)");
    assert_eq!(a.sql("SELECT COUNT(*) FROM t").trim(), "2");
    assert_eq!(
        b.sql(&format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{}'",
            b.name()
        ))
        .trim(),
        "0"
    );
    if my.is_private() {
        let user = testkit::unique_name("u");
        my.create_password_user(&user, "right-pw");
        let port = my.port().to_string();
        let tcp = ["-h", "127.0.0.1", "-P", &port, "-u", &user, "--ssl=0"];
        let ok = mariadb(&tcp, Some("right-pw"));
        assert!(ok.status.success(), "{}", text(&ok));
        let bad = mariadb(&tcp, Some("wrong-pw"));
        assert!(!bad.status.success());
        assert!(text(&bad).contains("Access denied"), "{}", text(&bad));
    }
}

#[test]
fn mariadb_tls_flavour_verifies_and_refuses_plaintext() {
    let my = MariaDb::shared_tls();
    let ca = my.ca_file().expect("the TLS server has a CA");
    let port = my.port().to_string();
    let ca_arg = format!("--ssl-ca={}", ca.display());
    let ok = mariadb(
        &[
            "-h",
            "127.0.0.1",
            "-P",
            &port,
            "-uroot",
            &ca_arg,
            "--ssl-verify-server-cert",
        ],
        None,
    );
    assert!(ok.status.success(), "{}", text(&ok));
    // MariaDB 10.11 reports `require_secure_transport` as a plain "Access denied" (the same
    // user and no password got in over TLS just above).
    let refused = mariadb(&["-h", "127.0.0.1", "-P", &port, "-uroot", "--ssl=0"], None);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("Access denied"),
        "{}",
        text(&refused)
    );
}

/// Set in the child run of [`servers_do_not_outlive_a_killed_test_process`].
const CHILD_ENV: &str = "TESTKIT_WATCHDOG_CHILD";

/// In the child: starts both private servers, prints their pids and folders, then waits to be
/// SIGKILLed. Outside the child run it returns at once.
#[test]
fn watchdog_child() {
    if std::env::var(CHILD_ENV).is_err() {
        return;
    }
    let pg = Postgres::start(PgFlavor::Plain);
    let my = MariaDb::start(MariaDbFlavor::Plain);
    let (pg_pid, pg_dir) = pg.pid_and_folder();
    let (my_pid, my_dir) = my.pid_and_folder();
    println!(
        "SERVERS {pg_pid} {} {my_pid} {}",
        pg_dir.display(),
        my_dir.display()
    );
    std::thread::sleep(Duration::from_secs(600));
}

/// Whether `pid` runs (a zombie, waiting for a parent that may never reap it, does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_owned())
        })
        .is_some_and(|rest| !rest.starts_with('Z'))
}

fn gone(pid: u32, dir: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !alive(pid) && !dir.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn servers_do_not_outlive_a_killed_test_process() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "databases::watchdog_child", "--nocapture"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map_while(Result::ok)
        .find(|l| l.starts_with("SERVERS "))
        .expect("the child reports its servers");
    let f: Vec<&str> = line.split_whitespace().collect();
    let (pg_pid, pg_dir): (u32, PathBuf) = (f[1].parse().unwrap(), f[2].into());
    let (my_pid, my_dir): (u32, PathBuf) = (f[3].parse().unwrap(), f[4].into());
    assert!(alive(pg_pid) && pg_dir.exists());
    assert!(alive(my_pid) && my_dir.exists());
    child.kill().unwrap(); // SIGKILL: no destructor, no clean-up code of the child runs
    child.wait().unwrap();
    assert!(
        gone(pg_pid, &pg_dir, Duration::from_secs(15)),
        "postgres {pg_pid} or {} survived its test process",
        pg_dir.display()
    );
    assert!(
        gone(my_pid, &my_dir, Duration::from_secs(15)),
        "mariadbd {my_pid} or {} survived its test process",
        my_dir.display()
    );
}
