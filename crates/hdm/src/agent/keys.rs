//! The device key pair of gen 2b and 3, made on the device as the reference client makes it
//! (`onboarding/credentials_manager.py` of the HDM IoT reference client, <https://github.com/hdm-master/iot-reference-client>): RSA 2048 with exponent 65537, the private key as unencrypted PKCS#8 PEM,
//! the public key as SubjectPublicKeyInfo PEM, and a CSR with the subject `C=DE, ST=Berlin,
//! L=Berlin, CN=Referenz-Client` signed with SHA-256. The private key never leaves this module
//! except to be written 0600 into the store.
//!
//! Why two crates: ring (rcgen's backend here) signs with RSA keys but cannot make them, so the
//! key comes from RustCrypto's `rsa` (pure Rust; 0.10 uses constant-time arithmetic) and rcgen
//! builds and signs the CSR with it.

use rcgen::{CertificateParams, DnType, KeyPair, PKCS_RSA_SHA256};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use transport::auth::{ExposeSecret, Secret};

use crate::agent::AgentError;

/// Bits of the RSA modulus.
pub const RSA_BITS: usize = 2048;

/// The CSR subject the reference client uses.
pub const CSR_SUBJECT: [(&str, &str); 4] = [
    ("C", "DE"),
    ("ST", "Berlin"),
    ("L", "Berlin"),
    ("CN", "Referenz-Client"),
];

/// A key pair made here and the CSR for it.
pub struct LocalKey {
    /// PKCS#8 PEM of the private key.
    pub private_pem: Secret,
    /// SubjectPublicKeyInfo PEM of the public key.
    pub public_pem: String,
    /// PEM of the certificate signing request.
    pub csr_pem: String,
}

impl std::fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKey")
            .field("public_pem", &self.public_pem)
            .finish_non_exhaustive()
    }
}

fn setup(what: &str) -> impl Fn(String) -> AgentError + '_ {
    move |e| AgentError::Setup(format!("cannot make the device {what}: {e}"))
}

/// Makes an RSA-2048 key pair and a CSR for it with the reference subject.
pub fn make_key_and_csr() -> Result<LocalKey, AgentError> {
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, RSA_BITS)
        .map_err(|e| setup("key")(e.to_string()))?;
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| setup("key")(e.to_string()))?;
    let public_pem = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| setup("key")(e.to_string()))?;
    let signer = KeyPair::from_pkcs8_pem_and_sign_algo(&private_pem, &PKCS_RSA_SHA256)
        .map_err(|e| setup("CSR")(e.to_string()))?;
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| setup("CSR")(e.to_string()))?;
    for (k, v) in CSR_SUBJECT {
        let t = match k {
            "C" => DnType::CountryName,
            "ST" => DnType::StateOrProvinceName,
            "L" => DnType::LocalityName,
            _ => DnType::CommonName,
        };
        params.distinguished_name.push(t, v);
    }
    let csr_pem = params
        .serialize_request(&signer)
        .and_then(|c| c.pem())
        .map_err(|e| setup("CSR")(e.to_string()))?;
    Ok(LocalKey {
        private_pem: private_pem.as_str().into(),
        public_pem,
        csr_pem,
    })
}

impl LocalKey {
    /// The private key's bytes, for writing 0600.
    pub fn private_bytes(&self) -> &[u8] {
        self.private_pem.expose_secret().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
    use rsa::traits::PublicKeyParts;

    #[test]
    fn rsa_2048_pkcs8_key_and_a_csr_with_the_reference_subject() {
        let k = make_key_and_csr().unwrap();
        let pem = k.private_pem.expose_secret();
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----"),
            "PKCS#8, unencrypted"
        );
        let key = rsa::PrivateKey::from_pkcs8_pem(pem).unwrap();
        assert_eq!(key.size() * 8, RSA_BITS);
        assert_eq!(key.e(), &rsa::BoxedUint::from(65_537u32));
        let public = rsa::PublicKey::from_public_key_pem(&k.public_pem).unwrap();
        assert_eq!(public, key.to_public_key());
        assert!(k.csr_pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let parsed = rcgen::CertificateSigningRequestParams::from_pem(&k.csr_pem).unwrap();
        let dn = format!("{:?}", parsed.params.distinguished_name);
        for v in ["DE", "Berlin", "Referenz-Client"] {
            assert!(dn.contains(v), "{dn}");
        }
        assert!(!format!("{k:?}").contains("PRIVATE"));
    }
}
