//! Secrets stay out of the command line and the output: no flag of `mc-agent` takes a secret as
//! its value (its `--help` and every subcommand's are walked), and its failure paths, run with
//! `-vvv` and `--output json` and known secrets in their environment and files, never print
//! them.

use std::process::Command;

use testkit::secrets::{assert_no_secret, assert_no_secret_taking_flags, public_file};

const BIN: &str = env!("CARGO_BIN_EXE_mc-agent");

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
    let pw = public_file(dir.path(), "pw", "mc-pw-Qv72\n");
    for auth in [
        vec!["--password-env".to_owned(), "MC_TEST_PW".to_owned()],
        vec!["--password-file".to_owned(), pw.display().to_string()],
    ] {
        let out = run(bin()
            .current_dir(dir.path())
            .env("MC_TEST_PW", "mc-pw-Qv71")
            .args(["timeseries", "-u", "agent", "-b", "mqtts://127.0.0.1:1"])
            .args(&auth)
            .args(["-vvv", "--output", "json"]));
        assert_ne!(out.status.code(), Some(0));
        assert_no_secret("mc-agent", &out, &["mc-pw-Qv71", "mc-pw-Qv72"]);
    }
}
