//! Secrets stay out of the command line and the output: no flag of `mc-model` takes a secret as
//! its value (its `--help` and every subcommand's are walked), and its failure paths, run with
//! `-vvv` and `--output json` and known secrets in their environment and files, never print
//! them.

use std::process::Command;

use testkit::secrets::{assert_no_secret, assert_no_secret_taking_flags, public_file};

const BIN: &str = env!("CARGO_BIN_EXE_mc-model");

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
fn failure_paths_never_print_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let run = |c: &mut Command| testkit::cli::run(c);
    let out = run(bin()
        .current_dir(dir.path())
        .env("MC_TEST_PW", "mc-pw-Qv81")
        .args(["publish", "-u", "agent", "--password-env", "MC_TEST_PW"])
        .args(["-b", "mqtts://127.0.0.1:1", "-vvv", "--output", "json"]));
    assert_ne!(out.status.code(), Some(0));
    assert_no_secret("mc-model", &out, &["mc-pw-Qv81"]);
    let f = public_file(dir.path(), "pw", "mc-pw-Qv82\n");
    let out = run(bin()
        .current_dir(dir.path())
        .args(["publish", "-u", "agent", "--password-file"])
        .arg(&f)
        .args(["-b", "mqtts://127.0.0.1:1", "-vvv", "--output", "json"]));
    assert_ne!(out.status.code(), Some(0));
    assert_no_secret("mc-model", &out, &["mc-pw-Qv82"]);
}
