//! Secrets stay out of the command line and the output: no flag of `hdm-telemetry` takes a secret as
//! its value (its `--help` and every subcommand's are walked), and its failure paths, run with
//! `-vvv` and `--output json` and known secrets in their environment and files, never print
//! them.

use std::process::Command;

use testkit::secrets::{assert_no_secret, assert_no_secret_taking_flags, public_file};

const BIN: &str = env!("CARGO_BIN_EXE_hdm-telemetry");

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
fn failure_paths_never_print_the_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = |c: &mut Command| testkit::cli::run(c);
    // `api_key VALUE` with the `=` forgotten: the error names file and line, not the line.
    let broken = public_file(dir.path(), "env.dev", "stage=dev\napi_key hdm-key-Qv51\n");
    let out = run(bin()
        .current_dir(dir.path())
        .args(["provision", "--env-file"])
        .arg(&broken)
        .args(["-vvv", "--output", "json"]));
    assert_eq!(out.status.code(), Some(2));
    assert_no_secret("a malformed env line", &out, &["hdm-key-Qv51"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("env.dev") && err.contains("line 2"), "{err}");
    // A well-formed env file others can read, and a service that is not there.
    let env = public_file(
        dir.path(),
        "env.stg",
        "stage=stg\nbase_url=https://127.0.0.1:1/hdm\napi_key=hdm-key-Qv52\n",
    );
    let out = run(bin()
        .current_dir(dir.path())
        .env("HDM_AUTH_TOKEN", "hdm-bearer-Qv53")
        .args(["provision", "--env-file"])
        .arg(&env)
        .args(["-vvv", "--output", "json"]));
    assert_ne!(out.status.code(), Some(0));
    assert_no_secret(
        "an unreachable service",
        &out,
        &["hdm-key-Qv52", "hdm-bearer-Qv53"],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chmod 600"),
        "the readable env file is warned about: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
