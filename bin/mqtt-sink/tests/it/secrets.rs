//! Secrets stay out of the command line and the output: no flag of `mqtt-sink` takes a secret as
//! its value (its `--help` and every subcommand's are walked), and its failure paths, run with
//! `-vvv` and `--output json` and known secrets in their environment and files, never print
//! them.

use std::process::Command;

use testkit::secrets::{assert_no_secret, assert_no_secret_taking_flags, public_file};

const BIN: &str = env!("CARGO_BIN_EXE_mqtt-sink");

fn bin() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("RUST_LOG").env_remove("EDGEWIRE_BROKER");
    c
}

#[test]
fn no_flag_takes_a_secret_as_its_value() {
    assert_no_secret_taking_flags(BIN.as_ref(), 3);
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
