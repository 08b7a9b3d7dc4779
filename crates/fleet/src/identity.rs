//! Who each device is: its client id, and its certificate when the fleet issues one per device
//! from an issuer CA (ECDSA P-256, made when the device is about to connect, so a 10,000-device
//! fleet does not spend its first seconds signing certificates nobody uses yet).

use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};

use crate::FleetError;

/// Replaces every `%i` in `pattern` with the device number.
pub fn expand(pattern: &str, id: u64) -> String {
    pattern.replace("%i", &id.to_string())
}

/// Where the device files go: `TMPDIR` when set, else `/dev/shm` where there is one. Creating two
/// files per device on ext4 (inode allocation in one large directory) took most of an
/// issued-certificate fleet's CPU, and a memory file system connected 2.5 times as many devices
/// per second (docs/benchmarks.md, "Fleet"); the keys never reach a disk either.
fn files_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("TMPDIR").filter(|t| !t.is_empty()) {
        return t.into();
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        return shm.to_path_buf();
    }
    std::env::temp_dir()
}

/// Issues device certificates from a CA certificate and its key.
pub(crate) struct CertFactory {
    issuer: Issuer<'static, KeyPair>,
    cn_pattern: String,
    /// Where the device files go (mode 0600 keys); removed when the fleet ends.
    dir: tempfile::TempDir,
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
        let builder = {
            let mut b = tempfile::Builder::new();
            b.prefix("edgewire-fleet-");
            b
        };
        let dir = builder
            .tempdir_in(files_dir())
            .or_else(|_| builder.tempdir())
            .map_err(|e| FleetError::Io(format!("cannot create a folder for device keys: {e}")))?;
        Ok(CertFactory {
            issuer,
            cn_pattern: cn_pattern.to_owned(),
            dir,
        })
    }

    /// Issues the certificate of device `id` and writes it and its key (0600); returns the
    /// two paths.
    pub(crate) fn issue(&self, id: u64) -> Result<(PathBuf, PathBuf), FleetError> {
        let cn = expand(&self.cn_pattern, id);
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
        let cert_path = self.dir.path().join(format!("{id}.pem"));
        let key_path = self.dir.path().join(format!("{id}.key"));
        let io = |e: std::io::Error| fail(format!("cannot write its files: {e}"));
        std::fs::write(&cert_path, cert.pem()).map_err(io)?;
        transport::auth::write_secret_file(&key_path, key.serialize_pem().as_bytes())
            .map_err(io)?;
        Ok((cert_path, key_path))
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
