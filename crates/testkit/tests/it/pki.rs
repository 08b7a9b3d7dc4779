//! The PKI's files: names, key encodings, modes, validity and chains.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use testkit::{KeyFormat, Pki};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn first_line(path: &Path) -> String {
    fs::read_to_string(path)
        .expect("read")
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// `openssl verify -CAfile ca cert` (also checks validity dates).
fn verifies(ca: &Path, cert: &Path) -> bool {
    Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(ca)
        .arg(cert)
        .output()
        .expect("run openssl verify")
        .status
        .success()
}

fn subject(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
            "-in",
        ])
        .arg(cert)
        .output()
        .expect("run openssl x509");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn files_modes_and_formats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::generate(&dir.path().join("nested"));
    assert_eq!(pki.dir(), dir.path().join("nested"));
    for key in [pki.dir().join("ca.key"), pki.server_key()] {
        assert_eq!(mode(&key), 0o600, "{}", key.display());
        assert_eq!(first_line(&key), "-----BEGIN PRIVATE KEY-----");
    }
    assert!(verifies(&pki.ca_cert(), &pki.server_cert()));
    let server = subject(&pki.server_cert());
    for san in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
    ] {
        assert!(server.contains(san), "{san} missing in {server}");
    }

    let c = pki.client("dev-a");
    assert_eq!(c.cert, pki.dir().join("dev-a.pem"));
    assert_eq!(c.key, pki.dir().join("dev-a.key"));
    assert_eq!(mode(&c.key), 0o600);
    assert_eq!(first_line(&c.key), "-----BEGIN PRIVATE KEY-----");
    assert!(
        subject(&c.cert).contains("CN = dev-a"),
        "{}",
        subject(&c.cert)
    );
    assert!(verifies(&pki.ca_cert(), &c.cert));
    // Issued once: the same files, unchanged.
    let before = fs::read(&c.key).expect("read key");
    assert_eq!(pki.client("dev-a"), c);
    assert_eq!(fs::read(&c.key).expect("read key"), before);
    assert_eq!(pki.client_with_key_format("dev-a", KeyFormat::Pkcs8), c);

    let sec1 = pki.client_with_key_format("dev-a", KeyFormat::Sec1);
    assert_eq!(sec1.cert, c.cert);
    assert_eq!(mode(&sec1.key), 0o600);
    assert_eq!(first_line(&sec1.key), "-----BEGIN EC PRIVATE KEY-----");

    let rsa = pki.client_with_key_format("dev-a", KeyFormat::Pkcs1);
    assert_eq!(mode(&rsa.key), 0o600);
    assert_eq!(first_line(&rsa.key), "-----BEGIN RSA PRIVATE KEY-----");
    assert!(verifies(&pki.ca_cert(), &rsa.cert));
    assert!(subject(&rsa.cert).contains("CN = dev-a"));
    assert_eq!(pki.client_with_key_format("dev-a", KeyFormat::Pkcs1), rsa);

    let expired = pki.expired_client("dev-a");
    assert_eq!(mode(&expired.key), 0o600);
    assert!(!verifies(&pki.ca_cert(), &expired.cert), "must be expired");
    let checkend = Command::new("openssl")
        .args(["x509", "-checkend", "0", "-noout", "-in"])
        .arg(&expired.cert)
        .output()
        .expect("run openssl x509 -checkend");
    assert!(!checkend.status.success(), "not_after must be in the past");
}

#[test]
fn each_pki_has_its_own_ca() {
    let a_dir = tempfile::tempdir().expect("tempdir");
    let b_dir = tempfile::tempdir().expect("tempdir");
    let a = Pki::generate(a_dir.path());
    let b = Pki::generate(b_dir.path());
    assert_ne!(subject(&a.ca_cert()), subject(&b.ca_cert()));
    assert!(!verifies(&a.ca_cert(), &b.client("x").cert));
    assert!(!verifies(&b.ca_cert(), &a.server_cert()));
}

#[test]
#[should_panic(expected = "not usable as a file name")]
fn rejects_cn_with_slash() {
    let dir = tempfile::tempdir().expect("tempdir");
    Pki::generate(dir.path()).client("../evil");
}
