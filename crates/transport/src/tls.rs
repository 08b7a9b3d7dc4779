//! TLS client configuration with rustls: the process-wide crypto provider, trust anchors from PEM
//! files or the system store, the client certificate chain and key (PKCS#8, PKCS#1, SEC1), ALPN,
//! and the check that a private key is not readable by others. Builds configs; opens no sockets.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The config a session's TLS runs on ([`crate::SessionOptions::tls_config`]), for callers that
/// build one themselves without depending on rustls.
pub use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What TLS needs to know about trust and identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM files with the CA certificates to trust. Empty means the system's trust store.
    pub ca_files: Vec<PathBuf>,
    /// The client certificate chain (PEM), for brokers that authenticate devices by certificate.
    pub client_cert: Option<PathBuf>,
    /// The client private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<PathBuf>,
    /// ALPN protocol names to offer, e.g. `x-amzn-mqtt-ca` for AWS IoT on port 443.
    pub alpn: Vec<String>,
}

/// Why a TLS configuration could not be built. Each names the file it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {what} `{path}`: {reason}")]
    Read {
        /// Which file this was meant to be ("CA file", "client certificate", "client key").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying reason.
        reason: String,
    },
    /// A CA file held no certificate.
    #[error("CA file `{path}` holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCaInFile {
        /// The file.
        path: PathBuf,
    },
    /// A certificate in a CA file was rejected as a trust anchor.
    #[error("CA file `{path}`: a certificate cannot be used as a trust anchor: {reason}")]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The system trust store is empty or unreadable.
    #[error(
        "no CA certificates found in the system trust store; pass --cafile with the broker's CA"
    )]
    NoSystemRoots,
    /// A certificate file with no certificate in it.
    #[error("client certificate `{path}` holds no PEM certificate")]
    NoClientCert {
        /// The file.
        path: PathBuf,
    },
    /// Certificate given without key or the other way round.
    #[error("{0}")]
    Incomplete(&'static str),
    /// rustls refused the certificate/key pair.
    #[error("client certificate `{cert}` and key `{key}` cannot be used together: {reason}")]
    ClientAuth {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The provider does not support the default protocol versions (should not happen).
    #[error("TLS set-up failed: {0}")]
    Setup(String),
}

static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();

/// The crypto provider every TLS config of this process uses (ring), installed as the process
/// default on first use, so that any library calling `ClientConfig::builder()` finds it too.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    PROVIDER
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            // Another library may have installed one first; ours is still used explicitly below.
            let _ = CryptoProvider::install_default((*provider).clone());
            provider
        })
        .clone()
}

/// Builds the rustls client config for `opts`.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, TlsError> {
    // The pair first: its message is the more useful one when both are wrong.
    check_pair(opts)?;
    client_config_with_roots(opts, roots(&opts.ca_files)?)
}

fn check_pair(opts: &TlsOptions) -> Result<(), TlsError> {
    match (&opts.client_cert, &opts.client_key) {
        (Some(_), None) => Err(TlsError::Incomplete(
            "--cert was given without --key; pass both",
        )),
        (None, Some(_)) => Err(TlsError::Incomplete(
            "--key was given without --cert; pass both",
        )),
        _ => Ok(()),
    }
}

/// The trust anchors of `ca_files` (empty: the system's store), parsed once so that many
/// configs can share them ([`client_config_with_roots`]).
pub fn roots(ca_files: &[PathBuf]) -> Result<Arc<RootCertStore>, TlsError> {
    root_store(ca_files).map(Arc::new)
}

/// Builds the rustls client config for `opts` over trust anchors already parsed
/// (`opts.ca_files` is not read again): many sessions with their own client certificates
/// share one root store.
pub fn client_config_with_roots(
    opts: &TlsOptions,
    roots: Arc<RootCertStore>,
) -> Result<Arc<ClientConfig>, TlsError> {
    check_pair(opts)?;
    let (identity, files) = match (&opts.client_cert, &opts.client_key) {
        (Some(cert), Some(key)) => (Some((load_chain(cert)?, load_key(key)?)), Some((cert, key))),
        _ => (None, None),
    };
    client_config_with_identity(roots, identity, &opts.alpn)
        .map(Arc::new)
        .map_err(|e| match (e, files) {
            (ConfigError::ClientAuth(reason), Some((cert, key))) => TlsError::ClientAuth {
                cert: cert.clone(),
                key: key.clone(),
                reason,
            },
            (ConfigError::ClientAuth(reason) | ConfigError::Setup(reason), _) => {
                TlsError::Setup(reason)
            }
        })
}

/// Why [`client_config_with_identity`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The certificate and key do not go together, or rustls cannot use the key.
    #[error("the client certificate and key cannot be used: {0}")]
    ClientAuth(String),
    /// The protocol versions of the crypto provider.
    #[error("{0}")]
    Setup(String),
}

/// Builds a client config over parsed trust anchors, with a client identity already in memory
/// (a certificate chain and its key, e.g. issued by the caller) or none, offering `alpn`.
/// Returned unshared so the caller can tune it (resumption, for instance) before sharing it.
pub fn client_config_with_identity(
    roots: Arc<RootCertStore>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    alpn: &[String],
) -> Result<ClientConfig, ConfigError> {
    let builder = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Setup(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| ConfigError::ClientAuth(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(config)
}

fn root_store(ca_files: &[PathBuf]) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    if ca_files.is_empty() {
        let native = rustls_native_certs::load_native_certs();
        store.add_parsable_certificates(native.certs);
        if store.is_empty() {
            return Err(TlsError::NoSystemRoots);
        }
        return Ok(store);
    }
    for path in ca_files {
        let certs = read_certs(path, "CA file")?;
        if certs.is_empty() {
            return Err(TlsError::NoCaInFile { path: path.clone() });
        }
        for cert in certs {
            store.add(cert).map_err(|e| TlsError::BadCa {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
    }
    Ok(store)
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_err = |reason: String| TlsError::Read {
        what,
        path: path.to_owned(),
        reason,
    };
    // Read first so that a missing file says "No such file" rather than a PEM error.
    let bytes = std::fs::read(path).map_err(|e| read_err(e.to_string()))?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(format!("not valid PEM: {e}")))
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = read_certs(path, "client certificate")?;
    if chain.is_empty() {
        return Err(TlsError::NoClientCert {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let read_err = |reason: String| TlsError::Read {
        what: "client key",
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| read_err(e.to_string()))?;
    if let Some(warning) = key_permission_warning(path) {
        tracing::warn!("{warning}");
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        read_err(format!(
            "no usable private key ({e}); expected PEM with BEGIN PRIVATE KEY, BEGIN RSA PRIVATE KEY or BEGIN EC PRIVATE KEY \
             (encrypted keys are not supported)"
        ))
    })
}

/// A warning for a key file that group or others can read, naming the file and the fix.
pub fn key_permission_warning(path: &Path) -> Option<String> {
    crate::auth::secret_file_warning(path, "private key")
}

/// The common name (CN) of a DER certificate's subject, if it has one. Used to check device
/// identities (MindConnect expects client id = `<tenant>_<CN>`) and by the embedded broker.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(cn)
}

/// The common name of the first certificate in a PEM file.
pub fn common_name_of_file(path: &Path) -> Result<Option<String>, TlsError> {
    let certs = read_certs(path, "certificate")?;
    Ok(certs.first().and_then(|c| common_name(c)))
}

/// A TLS server config (for the embedded broker's listeners and the emulated HTTPS endpoints):
/// `cert`/`key` as the server identity; with `client_ca`, clients must present a certificate
/// signed by that CA.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = load_chain(cert)?;
    let private = load_key(key)?;
    let builder = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let roots = Arc::new(root_store(&[ca.to_owned()])?);
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots,
                crypto_provider(),
            )
            .build()
            .map_err(|e| TlsError::Setup(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, private)
        .map_err(|e| TlsError::ClientAuth {
            cert: cert.to_owned(),
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ca_file_names_it() {
        let err = client_config(&TlsOptions {
            ca_files: vec!["/nonexistent/ca.pem".into()],
            ..Default::default()
        })
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("CA file `/nonexistent/ca.pem`"), "{msg}");
    }

    #[test]
    fn ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = client_config(&TlsOptions {
            ca_files: vec![path.clone()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::NoCaInFile { .. }), "{err}");
    }

    #[test]
    fn cert_without_key_is_a_usage_error() {
        let err = client_config(&TlsOptions {
            client_cert: Some("c.pem".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("--key"), "{err}");
    }
}
