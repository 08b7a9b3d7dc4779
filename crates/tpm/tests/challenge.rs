//! DPS's challenge (made with ordinary crypto in `tpm::cloud`) activated and imported by a real
//! software TPM, and the SAS signatures it then makes checked by the DPS side.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use testkit::Swtpm;
use tpm::{Tpm, TpmOptions, cloud};

fn open(sw: &Swtpm) -> Tpm {
    Tpm::open(&TpmOptions {
        tcti: Some(sw.tcti()),
    })
    .expect("open swtpm")
}

#[test]
fn the_enrolled_tpm_activates_the_key_and_signs_what_dps_verifies() {
    let sw = Swtpm::start();
    let mut t = open(&sw);
    let id = t.identity().expect("identity");
    let hmac_key: [u8; 32] = *b"dps-issued-identity-key-32-bytes";
    let blob = cloud::authentication_key(&id.ek_public, &id.srk_public, &hmac_key)
        .expect("make challenge");
    let key = t.activate_identity_key(&blob).expect("activate + import");
    let to_sign = b"scope%2Fregistrations%2Fregid\n1767225600";
    let sig = t.hmac_sha256(key, to_sign).expect("sign in TPM");
    assert!(cloud::verify_hmac(&hmac_key, to_sign, &sig));
    assert!(!cloud::verify_hmac(b"another key", to_sign, &sig));

    // A restarted device finds the persisted key; a second challenge replaces it.
    drop(t);
    let mut t = open(&sw);
    let again = t.identity_key().expect("lookup").expect("persisted key");
    assert_eq!(t.hmac_sha256(again, to_sign).expect("sign"), sig);
    let key2: [u8; 32] = *b"a-renewed-identity-key-of-32-byt";
    let blob2 = cloud::authentication_key(&id.ek_public, &id.srk_public, &key2).expect("blob 2");
    let k2 = t.activate_identity_key(&blob2).expect("re-provision");
    let sig2 = t.hmac_sha256(k2, to_sign).expect("sign 2");
    assert!(cloud::verify_hmac(&key2, to_sign, &sig2));
}

#[test]
fn another_tpm_cannot_activate_a_challenge_made_for_the_enrolled_ek() {
    let enrolled = Swtpm::start();
    let other = Swtpm::start();
    let id = open(&enrolled).identity().expect("identity");
    let mut thief = open(&other);
    thief.identity().expect("thief identity");
    let blob = cloud::authentication_key(&id.ek_public, &id.srk_public, &[7u8; 32]).expect("blob");
    let err = thief
        .activate_identity_key(&blob)
        .expect_err("another TPM's EK must not decrypt the seed");
    assert!(err.to_string().contains("ActivateCredential"), "{err}");
    assert!(thief.identity_key().expect("lookup").is_none());
}

#[test]
fn malformed_challenges_and_keys_are_named() {
    let sw = Swtpm::start();
    let mut t = open(&sw);
    let err = t.activate_identity_key(&[0, 9, 1]).expect_err("truncated");
    assert!(
        err.to_string().contains("credential blob is truncated"),
        "{err}"
    );
    let err = cloud::authentication_key(&[0, 2, 0, 8], &[], &[1]).expect_err("not RSA");
    assert!(err.to_string().contains("endorsementKey"), "{err}");
}
