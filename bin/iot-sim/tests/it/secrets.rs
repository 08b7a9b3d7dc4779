//! Secrets stay out of the command line and the output: no flag of `iot-sim` takes a secret as
//! its value (its `--help` and every subcommand's are walked), and its failure paths, run with
//! `-vvv` and `--output json` and known secrets in their environment and files, never print
//! them.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use testkit::secrets::{assert_no_secret, help_pages, secret_taking_flags};

const BIN: &str = env!("CARGO_BIN_EXE_iot-sim");

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
        help_pages(BIN.as_ref()) >= 5,
        "the walk reads the subcommands too"
    );
    let bad = secret_taking_flags(BIN.as_ref());
    assert!(
        bad.is_empty(),
        "flags that take the secret itself (visible in ps): {bad:?}"
    );
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
