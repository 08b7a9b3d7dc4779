//! An HTTPS client (reqwest) built on the same TLS set-up as the MQTT sessions: the CA files or
//! system roots, an optional client certificate, the ring provider, verification always on.
//! Vendors use it for their HTTPS steps (provisioning, tokens, uploads).

use std::time::Duration;

use crate::tls::{self, TlsError, TlsOptions};

/// Why an HTTPS client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// TLS files.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// reqwest refused the configuration.
    #[error("cannot build the HTTPS client: {0}")]
    Build(String),
}

/// An HTTPS client trusting `tls.ca_files` (or the system roots), presenting `tls.client_cert`
/// when given. ALPN is set to HTTP/1.1; requests time out after `timeout`.
pub fn client(tls_opts: &TlsOptions, timeout: Duration) -> Result<reqwest::Client, HttpError> {
    let opts = TlsOptions {
        alpn: vec!["http/1.1".into()],
        ..tls_opts.clone()
    };
    let config = (*tls::client_config(&opts)?).clone();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("edgewire/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| HttpError::Build(e.to_string()))
}
