//! The DPS side of TPM attestation with ordinary crypto (no TPM): from an enrolled EK and the
//! SRK the device sent, the `authenticationKey` DPS answers a first registration with, and
//! the verification of SAS signatures made with the key inside it.
//!
//! The blob is what azure-iot-sdk-node's `TpmSecurityClient` unpacks: `TPM2B_ID_OBJECT` and
//! `TPM2B_ENCRYPTED_SECRET` for TPM2_ActivateCredential (EK protects a credential bound to the
//! SRK's name; the credential is the AES key of the inner wrapper), then `TPM2B_PRIVATE`,
//! `TPM2B_ENCRYPTED_SECRET` and `TPM2B_PUBLIC` for TPM2_Import of an HMAC-SHA256 key under the
//! SRK. The constructions are TPM 2.0 Library Part 1's: KDFa (11.4.10.2), credential protection
//! (24), duplication's inner and outer wrappers (23.3).

use aes::Aes128;
use cfb_mode::cipher::{AsyncStreamCipher as _, KeyIvInit as _};
use ring::hmac;

const TPM_ALG_RSA: u16 = 0x0001;
const TPM_ALG_SHA256: u16 = 0x000B;
const TPM_ALG_HMAC: u16 = 0x0005;
const TPM_ALG_KEYEDHASH: u16 = 0x0008;
const TPM_ALG_NULL: u16 = 0x0010;
// userWithAuth | sign; fixedTPM and fixedParent stay clear because TPM2_Import refuses them.
const ID_KEY_ATTRIBUTES: u32 = (1 << 6) | (1 << 18);

/// Why a challenge could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    /// A public key that is not an RSA `TPM2B_PUBLIC`.
    #[error("{what}: {detail}")]
    BadPublic {
        /// Which key (`endorsementKey`, `storageRootKey`).
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// RSA-OAEP or the RNG failed.
    #[error("making the TPM challenge: {0}")]
    Crypto(String),
}

/// An RSA public area as DPS needs it: the marshalled `TPMT_PUBLIC` (for the name) and the key.
struct RsaPublic {
    tpmt: Vec<u8>,
    key: rsa::PublicKey,
    sym_bits: u16,
}

fn take<'a>(b: &mut &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8], ChallengeError> {
    if b.len() < n {
        return Err(ChallengeError::BadPublic {
            what,
            detail: "truncated".into(),
        });
    }
    let (h, t) = b.split_at(n);
    *b = t;
    Ok(h)
}
fn u16_of(b: &mut &[u8], what: &'static str) -> Result<u16, ChallengeError> {
    let s = take(b, 2, what)?;
    Ok(u16::from_be_bytes([s[0], s[1]]))
}
fn tpm2b<'a>(b: &mut &'a [u8], what: &'static str) -> Result<&'a [u8], ChallengeError> {
    let n = u16_of(b, what)? as usize;
    take(b, n, what)
}

fn parse_rsa_public(tpm2b_public: &[u8], what: &'static str) -> Result<RsaPublic, ChallengeError> {
    let bad = |detail: &str| ChallengeError::BadPublic {
        what,
        detail: detail.into(),
    };
    let mut b = tpm2b_public;
    let tpmt = tpm2b(&mut b, what)?;
    if !b.is_empty() {
        return Err(bad("bytes after the TPM2B_PUBLIC"));
    }
    let mut p = tpmt;
    if u16_of(&mut p, what)? != TPM_ALG_RSA {
        return Err(bad("not an RSA key (TPM_ALG_RSA expected)"));
    }
    if u16_of(&mut p, what)? != TPM_ALG_SHA256 {
        return Err(bad("name algorithm is not SHA-256"));
    }
    take(&mut p, 4, what)?; // objectAttributes
    tpm2b(&mut p, what)?; // authPolicy
    let sym = u16_of(&mut p, what)?;
    let mut sym_bits = 0;
    if sym != TPM_ALG_NULL {
        sym_bits = u16_of(&mut p, what)?;
        u16_of(&mut p, what)?; // mode
    }
    if u16_of(&mut p, what)? != TPM_ALG_NULL {
        u16_of(&mut p, what)?;
    }
    u16_of(&mut p, what)?; // keyBits
    let e = take(&mut p, 4, what)?;
    let e = match u32::from_be_bytes([e[0], e[1], e[2], e[3]]) {
        0 => 65_537,
        e => e,
    };
    let n = tpm2b(&mut p, what)?;
    if sym_bits != 128 {
        return Err(bad("symmetric protection is not AES-128-CFB"));
    }
    let n = rsa::BoxedUint::from_be_slice(n, (n.len() * 8) as u32).map_err(|_| bad("modulus"))?;
    let key = rsa::PublicKey::new(n, rsa::BoxedUint::from(e))
        .map_err(|e| bad(&format!("not a usable RSA key: {e}")))?;
    Ok(RsaPublic {
        tpmt: tpmt.to_vec(),
        key,
        sym_bits,
    })
}

/// An object's TPM name: the name algorithm, then the hash of its `TPMT_PUBLIC`.
fn name(tpmt_public: &[u8]) -> Vec<u8> {
    let mut n = TPM_ALG_SHA256.to_be_bytes().to_vec();
    n.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, tpmt_public).as_ref());
    n
}

/// KDFa with HMAC-SHA256; `label` without its NUL (added here, as the spec counts it).
fn kdfa(key: &[u8], label: &str, context_u: &[u8], context_v: &[u8], bits: u32) -> Vec<u8> {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut out = Vec::new();
    let mut counter = 1u32;
    while out.len() * 8 < bits as usize {
        let mut ctx = hmac::Context::with_key(&k);
        ctx.update(&counter.to_be_bytes());
        ctx.update(label.as_bytes());
        ctx.update(&[0]);
        ctx.update(context_u);
        ctx.update(context_v);
        ctx.update(&bits.to_be_bytes());
        out.extend_from_slice(ctx.sign().as_ref());
        counter += 1;
    }
    out.truncate(bits as usize / 8);
    out
}

fn aes128_cfb(key: &[u8], data: &mut [u8]) {
    // Both wrappers use a zero IV: each key is fresh per blob (TPM 2.0 Part 1, 24.4 and 23.3.2).
    cfb_mode::Encryptor::<Aes128>::new(key.into(), &[0u8; 16].into()).encrypt(data);
}

fn push_tpm2b(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

fn random<const N: usize>() -> Result<[u8; N], ChallengeError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| ChallengeError::Crypto(format!("RNG: {e}")))?;
    Ok(b)
}

fn oaep(key: &RsaPublic, label: &str, seed: &[u8]) -> Result<Vec<u8>, ChallengeError> {
    let padding = rsa::Oaep::<sha2_11::Sha256>::new_with_label(format!("{label}\0").into_bytes());
    key.key
        .encrypt(&mut getrandom::SysRng, padding, seed)
        .map_err(|e| ChallengeError::Crypto(format!("RSA-OAEP: {e}")))
}

/// The keyed-hash public area of the HMAC-SHA256 identity key holding `key`.
fn id_key_public(unique: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&TPM_ALG_KEYEDHASH.to_be_bytes());
    p.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    p.extend_from_slice(&ID_KEY_ATTRIBUTES.to_be_bytes());
    push_tpm2b(&mut p, &[]);
    p.extend_from_slice(&TPM_ALG_HMAC.to_be_bytes());
    p.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    push_tpm2b(&mut p, unique);
    p
}

/// The `authenticationKey` DPS sends: `hmac_key` wrapped so that only the TPM holding the EK
/// (and the SRK it named) can activate and import it.
pub fn authentication_key(
    ek_tpm2b_public: &[u8],
    srk_tpm2b_public: &[u8],
    hmac_key: &[u8],
) -> Result<Vec<u8>, ChallengeError> {
    let ek = parse_rsa_public(ek_tpm2b_public, "endorsementKey")?;
    let srk = parse_rsa_public(srk_tpm2b_public, "storageRootKey")?;
    let inner_key: [u8; 16] = random()?;

    // MakeCredential: the inner key as credential, bound to the SRK's name, seed to the EK.
    let seed: [u8; 32] = random()?;
    let encrypted_seed = oaep(&ek, "IDENTITY", &seed)?;
    let srk_name = name(&srk.tpmt);
    let sym = kdfa(&seed, "STORAGE", &srk_name, &[], u32::from(ek.sym_bits));
    let mut enc_identity = Vec::new();
    push_tpm2b(&mut enc_identity, &inner_key);
    aes128_cfb(&sym, &mut enc_identity);
    let hmac_key_1 = kdfa(&seed, "INTEGRITY", &[], &[], 256);
    let integrity = {
        let mut c = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, &hmac_key_1));
        c.update(&enc_identity);
        c.update(&srk_name);
        c.sign()
    };
    let mut id_object = Vec::new();
    push_tpm2b(&mut id_object, integrity.as_ref());
    id_object.extend_from_slice(&enc_identity);

    // The identity key: keyed-hash, unique = H(seedValue || key) as TPM2_Import checks.
    let obfuscate: [u8; 32] = random()?;
    let mut u = obfuscate.to_vec();
    u.extend_from_slice(hmac_key);
    let unique = ring::digest::digest(&ring::digest::SHA256, &u);
    let id_public = id_key_public(unique.as_ref());
    let id_name = name(&id_public);

    let mut sensitive = Vec::new();
    sensitive.extend_from_slice(&TPM_ALG_KEYEDHASH.to_be_bytes());
    push_tpm2b(&mut sensitive, &[]);
    push_tpm2b(&mut sensitive, &obfuscate);
    push_tpm2b(&mut sensitive, hmac_key);
    let mut tpm2b_sensitive = Vec::new();
    push_tpm2b(&mut tpm2b_sensitive, &sensitive);

    // Inner wrapper: integrity over the sensitive area and the name, AES-CFB under the credential.
    let mut ih = tpm2b_sensitive.clone();
    ih.extend_from_slice(&id_name);
    let inner_integrity = ring::digest::digest(&ring::digest::SHA256, &ih);
    let mut inner = Vec::new();
    push_tpm2b(&mut inner, inner_integrity.as_ref());
    inner.extend_from_slice(&tpm2b_sensitive);
    aes128_cfb(&inner_key, &mut inner);

    // Outer wrapper: a seed to the SRK (label DUPLICATE), keys from it bound to the key's name.
    let seed2: [u8; 32] = random()?;
    let encrypted_seed2 = oaep(&srk, "DUPLICATE", &seed2)?;
    let sym2 = kdfa(&seed2, "STORAGE", &id_name, &[], u32::from(srk.sym_bits));
    aes128_cfb(&sym2, &mut inner);
    let hmac_key_2 = kdfa(&seed2, "INTEGRITY", &[], &[], 256);
    let outer = {
        let mut c = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, &hmac_key_2));
        c.update(&inner);
        c.update(&id_name);
        c.sign()
    };
    let mut duplicate = Vec::new();
    push_tpm2b(&mut duplicate, outer.as_ref());
    duplicate.extend_from_slice(&inner);

    let mut blob = Vec::new();
    push_tpm2b(&mut blob, &id_object);
    push_tpm2b(&mut blob, &encrypted_seed);
    push_tpm2b(&mut blob, &duplicate);
    push_tpm2b(&mut blob, &encrypted_seed2);
    push_tpm2b(&mut blob, &id_public);
    Ok(blob)
}

/// Whether `signature` is HMAC-SHA256 of `data` under `hmac_key` (constant time).
pub fn verify_hmac(hmac_key: &[u8], data: &[u8], signature: &[u8]) -> bool {
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, hmac_key),
        data,
        signature,
    )
    .is_ok()
}
