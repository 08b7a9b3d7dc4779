//! The TPM crate against a real software TPM (swtpm), a fresh one per test.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

use testkit::Swtpm;
use tpm::{EK_HANDLE, SRK_HANDLE, Tpm, TpmError, TpmOptions, registration_id};

fn open(sw: &Swtpm) -> Tpm {
    Tpm::open(&TpmOptions {
        tcti: Some(sw.tcti()),
    })
    .expect("open swtpm")
}

/// tpm2-tools' view of a persistent key, as a TPM2B_PUBLIC: an independent reading.
fn tpm2_readpublic(sw: &Swtpm, handle: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("pub.tss");
    let st = Command::new("tpm2_readpublic")
        .arg("-T")
        .arg(sw.tcti())
        .arg("-c")
        .arg(format!("0x{handle:08x}"))
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run tpm2_readpublic (package tpm2-tools)");
    assert!(
        st.status.success(),
        "tpm2_readpublic: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    std::fs::read(out).expect("read tpm2_readpublic output")
}

#[test]
fn ek_and_srk_are_persisted_and_read_as_tpm2_tools_reads_them() {
    let sw = Swtpm::start();
    let id = open(&sw).identity().expect("identity");
    // RSA 2048: the modulus alone is 256 bytes.
    assert!(
        id.ek_public.len() > 256,
        "EK public {} bytes",
        id.ek_public.len()
    );
    assert_eq!(id.ek_public, tpm2_readpublic(&sw, EK_HANDLE));
    assert_eq!(id.srk_public, tpm2_readpublic(&sw, SRK_HANDLE));
    // A second session finds the persisted keys rather than making new ones.
    let again = open(&sw).identity().expect("identity again");
    assert_eq!(again, id);
    assert_eq!(id.registration_id(), registration_id(&id.ek_public));
    assert_eq!(id.registration_id().len(), 52);
}

#[test]
fn a_fresh_tpm_has_another_ek_and_registration_id() {
    let a = Swtpm::start();
    let b = Swtpm::start();
    let ia = open(&a).identity().expect("identity a");
    let ib = open(&b).identity().expect("identity b");
    assert_ne!(ia.ek_public, ib.ek_public);
    assert_ne!(ia.registration_id(), ib.registration_id());
}

#[test]
fn hmac_in_the_tpm_matches_hmac_sha256_with_the_same_key() {
    let sw = Swtpm::start();
    let mut t = open(&sw);
    let secret = b"0123456789abcdef0123456789abcdef";
    let key = t.load_hmac_key(secret).expect("load HMAC key");
    let data = b"myhub.azure-devices.net%2Fdevices%2Fdev1\n1767225600";
    let mac = t.hmac_sha256(key, data).expect("hmac");
    let expected = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret), data);
    assert_eq!(mac, expected.as_ref());
    let too_long = vec![0u8; 2000];
    let err = t.hmac_sha256(key, &too_long).expect_err("too long");
    assert!(err.to_string().contains("at most 1024"), "{err}");
}

#[test]
fn bad_tcti_and_absent_tpm_say_what_was_given() {
    let err = Tpm::open(&TpmOptions {
        tcti: Some("carrier-pigeon:coop=3".into()),
    })
    .expect_err("bad tcti");
    assert!(err.to_string().contains("carrier-pigeon"), "{err}");
    let port = testkit::free_port();
    let err = Tpm::open(&TpmOptions {
        tcti: Some(format!("swtpm:host=127.0.0.1,port={port}")),
    })
    .expect_err("nothing listening");
    assert!(matches!(err, TpmError::Open { .. }), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}
