//! Secrets stay out of the command line and the output: no flag of `mqtt-sink` takes a secret as
//! its value (its `--help` and every subcommand's are walked), and its failure paths, run with
//! `-vvv` and `--output json` and known secrets in their environment and files, never print
//! them.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use testkit::secrets::{assert_no_secret, help_pages, secret_taking_flags};

const BIN: &str = env!("CARGO_BIN_EXE_mqtt-sink");

fn bin() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("RUST_LOG").env_remove("EDGEWIRE_BROKER");
    c
}

/// A file holding `text`, readable by everyone (as a careless `echo > file` leaves it).
fn public_file(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    p
}

#[test]
fn no_flag_takes_a_secret_as_its_value() {
    assert!(
        help_pages(BIN.as_ref()) >= 3,
        "the walk reads the subcommands too"
    );
    let bad = secret_taking_flags(BIN.as_ref());
    assert!(
        bad.is_empty(),
        "flags that take the secret itself (visible in ps): {bad:?}"
    );
}

#[test]
fn failure_paths_never_print_the_database_or_broker_password() {
    let dir = tempfile::tempdir().unwrap();
    let run = |c: &mut Command| testkit::cli::run(c);
    // A password inside --db (warned about, redacted) and one from --db-password-env.
    let out = run(bin()
        .current_dir(dir.path())
        .args(["--db", "postgres://sink:db-pw-Qv91@127.0.0.1:1/readings"])
        .args([
            "-t",
            "t",
            "-b",
            "mqtt://127.0.0.1:1",
            "-vvv",
            "--output",
            "json",
        ]));
    assert_ne!(out.status.code(), Some(0));
    assert_no_secret("a password in --db", &out, &["db-pw-Qv91"]);
    let f = public_file(dir.path(), "broker-pw", "broker-pw-Qv93\n");
    let out = run(bin()
        .current_dir(dir.path())
        .env("SINK_TEST_PW", "db-pw-Qv92")
        .args(["--db", "postgres://sink@127.0.0.1:1/readings"])
        .args([
            "--db-password-env",
            "SINK_TEST_PW",
            "-u",
            "sink",
            "--password-file",
        ])
        .arg(&f)
        .args([
            "-t",
            "t",
            "-b",
            "mqtt://127.0.0.1:1",
            "-vvv",
            "--output",
            "json",
        ]));
    assert_ne!(out.status.code(), Some(0));
    assert_no_secret("--db-password-env", &out, &["db-pw-Qv92", "broker-pw-Qv93"]);
}
