//! Secrets stay out of the command line and the output: no flag of `iot-sim` takes a secret as
//! its value (its `--help` and every subcommand's are walked), and its failure paths, run with
//! `-vvv` and `--output json` and known secrets in their environment and files, never print
//! them.

use std::process::Command;

use testkit::secrets::{assert_no_secret, assert_no_secret_taking_flags, public_file};

const BIN: &str = env!("CARGO_BIN_EXE_iot-sim");

fn bin() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("RUST_LOG").env_remove("EDGEWIRE_BROKER");
    c
}

#[test]
fn no_flag_takes_a_secret_as_its_value() {
    assert_no_secret_taking_flags(BIN.as_ref(), 5);
}

#[test]
fn failure_paths_never_print_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let run = |c: &mut Command| testkit::cli::run(c);
    let f = public_file(dir.path(), "pw", "sim-pw-Qv02\n");
    let out = run(bin()
        .env("SIM_TEST_PW", "sim-pw-Qv01")
        .args(["pub", "-b", "mqtt://127.0.0.1:1", "-t", "t", "-u", "u"])
        .args(["--password-env", "SIM_TEST_PW", "-vvv", "--output", "json"]));
    assert_ne!(out.status.code(), Some(0));
    assert_no_secret("--password-env", &out, &["sim-pw-Qv01"]);
    let out = run(bin()
        .args([
            "pub",
            "-b",
            "mqtt://127.0.0.1:1",
            "-t",
            "t",
            "-u",
            "u",
            "--password-file",
        ])
        .arg(&f)
        .args(["-vvv", "--output", "json"]));
    assert_ne!(out.status.code(), Some(0));
    assert_no_secret("--password-file", &out, &["sim-pw-Qv02"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chmod 600"),
        "the readable password file is warned about: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
