//! Secrets stay out of the command line and the output: no flag of `iotc-send` takes a secret as
//! its value (its `--help` and every subcommand's are walked), and its failure paths, run with
//! `-vvv` and `--output json` and known secrets in their environment and files, never print
//! them.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use testkit::secrets::{assert_no_secret, help_pages, secret_taking_flags};

const BIN: &str = env!("CARGO_BIN_EXE_iotc-send");

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
