//! Who each device is: its client id, and its certificate when the fleet issues one per device
//! from an issuer CA (ECDSA P-256, made when the device is about to connect, so a 10,000-device
//! fleet does not spend its first seconds signing certificates nobody uses yet). Issued
//! certificates and keys stay in memory: writing two files per device was most of an issued
//! fleet's CPU on ext4 (docs/benchmarks.md, "Fleet"), and a key that is never written cannot
//! be left behind by a killed fleet.

use std::path::Path;

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::FleetError;

/// Replaces every `%i` in `pattern` with the device number.
pub fn expand(pattern: &str, id: u64) -> String {
    pattern.replace("%i", &id.to_string())
}

/// Issues device certificates from a CA certificate and its key.
pub(crate) struct CertFactory {
    issuer: Issuer<'static, KeyPair>,
    cn_pattern: String,
}

/// One device's certificate (the chain rustls sends) and its private key.
pub(crate) struct Issued {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

impl CertFactory {
    /// Reads the issuer's PEM files; errors name the file.
    pub(crate) fn open(cert: &Path, key: &Path, cn_pattern: &str) -> Result<Self, FleetError> {
        let read = |path: &Path, what: &'static str| {
            std::fs::read_to_string(path).map_err(|e| FleetError::Issuer {
                path: path.to_path_buf(),
                problem: format!("cannot read the {what}: {e}"),
            })
        };
        let cert_pem = read(cert, "issuer certificate")?;
        let key_pem = read(key, "issuer key")?;
        if let Some(w) = transport::tls::key_permission_warning(key) {
            tracing::warn!("{w}");
        }
        let key_pair = KeyPair::from_pem(&key_pem).map_err(|e| FleetError::Issuer {
            path: key.to_path_buf(),
            problem: format!(
                "not a PEM private key rcgen can sign with (PKCS#8 ECDSA, Ed25519 or RSA): {e}"
            ),
        })?;
        let issuer =
            Issuer::from_ca_cert_pem(&cert_pem, key_pair).map_err(|e| FleetError::Issuer {
                path: cert.to_path_buf(),
                problem: format!("not a PEM CA certificate: {e}"),
            })?;
        Ok(CertFactory {
            issuer,
            cn_pattern: cn_pattern.to_owned(),
        })
    }

    /// The common name of device `id`'s certificate.
    pub(crate) fn cn(&self, id: u64) -> String {
        expand(&self.cn_pattern, id)
    }

    /// Issues the certificate of device `id`.
    pub(crate) fn issue(&self, id: u64) -> Result<Issued, FleetError> {
        let cn = self.cn(id);
        let fail = |problem: String| FleetError::Issue {
            cn: cn.clone(),
            problem,
        };
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| fail(e.to_string()))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| fail(e.to_string()))?;
        params
            .distinguished_name
            .push(DnType::CommonName, cn.clone());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        // A day back covers a skewed clock on the broker's host; a year covers any load test.
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(365);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Issued {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_i_becomes_the_number_everywhere() {
        assert_eq!(expand("dev-%i/x/%i", 42), "dev-42/x/42");
        assert_eq!(expand("fixed", 7), "fixed");
    }
}
