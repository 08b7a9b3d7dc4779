//! The certificate authority behind the emulated provisioning service: issues real device
//! certificates (CN = thing name, client-auth) signed by a CA the broker trusts, either with a
//! key pair it makes (gen 1) or for a device's CSR (gen 2b). Keys are ECDSA P-256 (rcgen with
//! ring cannot make RSA keys; AWS IoT accepts both).

use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// Days a device certificate is valid.
pub const VALIDITY_DAYS: i64 = 365;

/// Why the CA could not be loaded or could not sign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A CA file could not be read.
    #[error("cannot read the CA {what} `{path}`: {source}")]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// A CA file could not be used.
    #[error("the CA {what} cannot be used: {reason}")]
    Parse {
        /// `certificate` or `key`.
        what: &'static str,
        /// rcgen's message.
        reason: String,
    },
    /// The CSR was refused.
    #[error("certificateSigningRequest cannot be signed: {0}")]
    Csr(String),
    /// Signing failed.
    #[error("issuing the device certificate failed: {0}")]
    Sign(String),
}

/// A device identity made by the server (gen 1).
#[derive(Debug, Clone)]
pub struct IssuedKeys {
    /// PEM certificate.
    pub cert_pem: String,
    /// PEM private key (PKCS#8).
    pub key_pem: String,
    /// PEM public key.
    pub public_key_pem: String,
}

/// A CA that can issue device certificates.
pub struct CertAuthority {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

impl std::fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAuthority").finish_non_exhaustive()
    }
}

impl CertAuthority {
    /// A CA from its certificate and key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| CaError::Parse {
            what: "key",
            reason: e.to_string(),
        })?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(|e| CaError::Parse {
            what: "certificate",
            reason: e.to_string(),
        })?;
        Ok(CertAuthority {
            issuer,
            ca_pem: cert_pem.to_owned(),
        })
    }

    /// A CA from PEM files (e.g. iot-sim's `agent_cert/ca.pem` and `ca.key`).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, CaError> {
        let read = |what, path: &Path| {
            std::fs::read_to_string(path).map_err(|source| CaError::Read {
                what,
                path: path.to_owned(),
                source,
            })
        };
        CertAuthority::from_pem(&read("certificate", cert)?, &read("key", key)?)
    }

    /// The CA certificate (what devices trust as `amazonRootCA1.pem`).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    fn params(thing: &str, now: OffsetDateTime) -> Result<CertificateParams, CaError> {
        let mut p = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| CaError::Sign(e.to_string()))?;
        p.distinguished_name.push(DnType::CommonName, thing);
        p.is_ca = IsCa::NoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.use_authority_key_identifier_extension = true;
        p.not_before = now - Duration::days(1);
        p.not_after = now + Duration::days(VALIDITY_DAYS);
        Ok(p)
    }

    /// Makes a key pair and a certificate for `thing` (gen-1 provisioning).
    pub fn issue(&self, thing: &str, now: OffsetDateTime) -> Result<IssuedKeys, CaError> {
        let key = KeyPair::generate().map_err(|e| CaError::Sign(e.to_string()))?;
        let cert = Self::params(thing, now)?
            .signed_by(&key, &self.issuer)
            .map_err(|e| CaError::Sign(e.to_string()))?;
        Ok(IssuedKeys {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            public_key_pem: key.public_key_pem(),
        })
    }

    /// Signs a device's CSR for `thing` (gen-2b provisioning). The subject is replaced by
    /// `CN=thing`: the broker identifies devices by the certificate's common name.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        thing: &str,
        now: OffsetDateTime,
    ) -> Result<String, CaError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::Csr(e.to_string()))?;
        csr.params = Self::params(thing, now)?;
        let cert = csr
            .signed_by(&self.issuer)
            .map_err(|e| CaError::Sign(e.to_string()))?;
        Ok(cert.pem())
    }
}
