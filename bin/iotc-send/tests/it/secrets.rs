//! Secrets stay out of the command line and the output: no flag of `iotc-send` takes a secret as
//! its value (its `--help` and every subcommand's are walked), and its failure paths, run with
//! `-vvv` and `--output json` and known secrets in their environment and files, never print
//! them.

use std::process::Command;

use testkit::secrets::{assert_no_secret, assert_no_secret_taking_flags, public_file};

const BIN: &str = env!("CARGO_BIN_EXE_iotc-send");

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
fn failure_paths_never_print_the_device_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = |c: &mut Command| testkit::cli::run(c);
    let cfg = public_file(
        dir.path(),
        "iotconnect.json",
        r#"{"cpId":"CP","uniqueId":"dev-1","env":"DEV","discoveryUrl":"http://192.0.2.1/","sdkOptions":{"devicePrimaryKey":"aW90Yy1rZXktUXY2MQ=="}}"#,
    );
    // Plain-http discovery is refused; the key from the file, from an env var.
    let out = run(bin().arg("--config").arg(&cfg).args([
        "attributes",
        "--http-timeout",
        "3",
        "-vvv",
        "--output",
        "json",
    ]));
    assert_ne!(out.status.code(), Some(0));
    assert_no_secret(
        "devicePrimaryKey in the config",
        &out,
        &["aW90Yy1rZXktUXY2MQ=="],
    );
    let out = run(bin()
        .env("IOTC_TEST_KEY", "aW90Yy1rZXktUXY2Mg==")
        .arg("--config")
        .arg(&cfg)
        .args(["--device-key-env", "IOTC_TEST_KEY"])
        .args([
            "attributes",
            "--http-timeout",
            "3",
            "-vvv",
            "--output",
            "json",
        ]));
    assert_ne!(out.status.code(), Some(0));
    assert_no_secret("--device-key-env", &out, &["aW90Yy1rZXktUXY2Mg=="]);
}
