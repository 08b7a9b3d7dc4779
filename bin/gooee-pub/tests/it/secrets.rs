//! Secrets stay out of the command line and the output: no flag of `gooee-pub` takes a secret as
//! its value (its `--help` and every subcommand's are walked), and its failure paths, run with
//! `-vvv` and `--output json` and known secrets in their environment and files, never print
//! them.

use std::process::Command;

use testkit::secrets::{assert_no_secret, assert_no_secret_taking_flags, public_file};

const BIN: &str = env!("CARGO_BIN_EXE_gooee-pub");

fn bin() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("RUST_LOG").env_remove("EDGEWIRE_BROKER");
    c
}

#[test]
fn no_flag_takes_a_secret_as_its_value() {
    assert_no_secret_taking_flags(BIN.as_ref(), 2);
}

#[test]
fn failure_paths_never_print_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let run = |c: &mut Command| testkit::cli::run(c);
    // The token from the environment; the broker is not there.
    let out = run(bin()
        .env("GOOEE_TOKEN", "gooee-tok-Qv41")
        .args([
            "meta",
            "--device",
            "d1",
            "dim=50",
            "-b",
            "mqtts://127.0.0.1:1",
        ])
        .args(["-vvv", "--output", "json"]));
    assert_ne!(out.status.code(), Some(0));
    assert_no_secret("token from GOOEE_TOKEN", &out, &["gooee-tok-Qv41"]);
    // The token from a file others can read: warned about, never shown.
    let f = public_file(dir.path(), "token", "gooee-tok-Qv42\n");
    let out = run(bin()
        .env_remove("GOOEE_TOKEN")
        .args([
            "meta",
            "--device",
            "d1",
            "dim=50",
            "-b",
            "mqtts://127.0.0.1:1",
        ])
        .arg("--password-file")
        .arg(&f)
        .args(["-vvv", "--output", "json"]));
    assert_ne!(out.status.code(), Some(0));
    assert_no_secret("token from a file", &out, &["gooee-tok-Qv42"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chmod 600"),
        "the readable token file is warned about: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
