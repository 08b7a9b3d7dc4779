//! Provisioning (hdm-aws.md A.3): `GET {base_url}/{api_version}/configuration` with
//! `x-api-key`, write the root CA (every run) and `properties.json`, and — only when the store
//! has no private key, or with `force` — `POST` to `provisioning.provisioningURL`: with an
//! empty body the service makes the key pair (gen 1); with `csr` a key is made here and the
//! service signs its CSR (gen 2b). Each provisioning creates assets in the backend, so a second
//! one is refused unless forced.

use std::path::PathBuf;
use std::time::Duration;

use rcgen::{CertificateParams, DnType, KeyPair};
use transport::tls::TlsOptions;

use crate::agent::store::NewIdentity;
use crate::agent::{AgentError, Event, Reporter, Store};
use crate::protocol::config::{
    API_KEY_HEADER, ConfigurationResponse, CsrRequest, ProvisioningResponse,
};
use crate::protocol::env::EnvFile;
use crate::protocol::json::FieldError;
use crate::protocol::store::Properties;

/// The CSR subject the reference client uses (gen 2b).
pub const CSR_SUBJECT: [(&str, &str); 4] = [
    ("C", "DE"),
    ("ST", "Berlin"),
    ("L", "Berlin"),
    ("CN", "Referenz-Client"),
];

/// How to provision.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    /// The env file (`base_url`, `api_key`, `api_version`).
    pub env: EnvFile,
    /// The certificate store folder.
    pub store: PathBuf,
    /// Make the key here and send a CSR.
    pub csr: bool,
    /// Provision even when an identity is stored.
    pub force: bool,
    /// CA files to trust for the HTTPS calls (empty: the system's roots).
    pub https_ca: Vec<PathBuf>,
    /// Timeout of each HTTPS call.
    pub timeout: Duration,
}

/// What provisioning did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvisionOutcome {
    /// A new identity was stored.
    Provisioned {
        /// Thing name.
        thing: String,
    },
    /// The stored identity was kept.
    AlreadyProvisioned {
        /// Thing name.
        thing: String,
    },
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

fn status_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

async fn call(
    what: &'static str,
    req: reqwest::RequestBuilder,
    url: &str,
    env_file: &str,
) -> Result<Vec<u8>, AgentError> {
    let resp = req.send().await.map_err(|e| AgentError::Http {
        url: url.to_owned(),
        reason: error_chain(&e),
    })?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| AgentError::Http {
        url: url.to_owned(),
        reason: error_chain(&e),
    })?;
    if (200..300).contains(&status) {
        return Ok(body.to_vec());
    }
    let mut message = status_message(&body);
    if matches!(status, 401 | 403) {
        message = format!("{message}; {}", AgentError::forbidden_hint(env_file));
    }
    Err(AgentError::HttpStatus {
        what,
        url: url.to_owned(),
        status,
        message,
    })
}

fn check_url(url: &str) -> Result<(), FieldError> {
    let ok = url::Url::parse(url).is_ok_and(|u| {
        u.scheme() == "https"
            || (u.scheme() == "http"
                && matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")))
    });
    if ok {
        Ok(())
    } else {
        Err(FieldError {
            what: "configuration response",
            field: "provisioning.provisioningURL".into(),
            expected: "an https:// URL",
            found: format!("`{url}`"),
        })
    }
}

/// A local key (ECDSA P-256, PKCS#8 PEM) and a CSR for it with the reference client's subject.
pub fn make_key_and_csr() -> Result<(KeyPair, String), AgentError> {
    let setup =
        |e: rcgen::Error| AgentError::Setup(format!("cannot make the device key and CSR: {e}"));
    let key = KeyPair::generate().map_err(setup)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(setup)?;
    for (k, v) in CSR_SUBJECT {
        let t = match k {
            "C" => DnType::CountryName,
            "ST" => DnType::StateOrProvinceName,
            "L" => DnType::LocalityName,
            _ => DnType::CommonName,
        };
        params.distinguished_name.push(t, v);
    }
    let csr = params
        .serialize_request(&key)
        .map_err(setup)?
        .pem()
        .map_err(setup)?;
    Ok((key, csr))
}

/// Runs the configuration call and, when needed, provisioning.
pub async fn provision(
    opts: &ProvisionOptions,
    reporter: &dyn Reporter,
) -> Result<ProvisionOutcome, AgentError> {
    let env_file = opts.env.file.clone();
    let base = opts.env.base_url()?;
    let api_key = opts.env.api_key()?.expose().to_owned();
    let version = opts.env.api_version();
    let tls = TlsOptions {
        ca_files: opts.https_ca.clone(),
        ..TlsOptions::default()
    };
    let client = transport::http::client(&tls, opts.timeout)
        .map_err(|e| AgentError::Setup(e.to_string()))?;
    let url = format!("{base}/{version}/configuration");
    let req = client
        .get(&url)
        .query(&[
            (
                "senderSoftwareVersion",
                concat!("edgewire-hdm-telemetry/", env!("CARGO_PKG_VERSION")),
            ),
            ("senderType", "prinect"),
        ])
        .header("accept", "application/json")
        .header(API_KEY_HEADER, &api_key);
    let body = call("the configuration service", req, &url, &env_file).await?;
    let config = ConfigurationResponse::decode(&body)?;
    let store = Store::new(&opts.store);
    let root_ca = store.write_root_ca(&config.connectivity.server_root_ca)?;
    let existing = store
        .is_provisioned()
        .then(|| store.client_id())
        .transpose();
    store.write_properties(&Properties {
        mqtt_endpoint: config.connectivity.mqtt_endpoint.clone(),
        mqtt_port: config.connectivity.mqtt_port,
        client_id: existing.as_ref().ok().cloned().flatten(),
    })?;
    reporter.report(Event::Configured {
        mqtt_endpoint: config.connectivity.mqtt_endpoint.clone(),
        mqtt_port: config.connectivity.mqtt_port,
        root_ca,
    });
    if store.is_provisioned() && !opts.force {
        let thing = existing?.unwrap_or_default();
        reporter.report(Event::AlreadyProvisioned {
            thing: thing.clone(),
            store: opts.store.clone(),
        });
        return Ok(ProvisionOutcome::AlreadyProvisioned { thing });
    }
    let prov_url = config
        .provisioning
        .as_ref()
        .map(|p| p.provisioning_url.clone())
        .ok_or_else(|| FieldError {
            what: "configuration response",
            field: "provisioning.provisioningURL".into(),
            expected: "an https:// URL (this store is not provisioned yet)",
            found: "nothing (missing)".into(),
        })?;
    check_url(&prov_url)?;
    let local = if opts.csr {
        Some(make_key_and_csr()?)
    } else {
        None
    };
    let mut req = client
        .post(&prov_url)
        .header("accept", "application/json")
        .header(API_KEY_HEADER, &api_key);
    if let Some((_, csr)) = &local {
        req = req.header("content-type", "application/json").body(
            CsrRequest {
                certificate_signing_request: csr.clone(),
            }
            .encode(),
        );
    }
    let body = call("the provisioning service", req, &prov_url, &env_file).await?;
    let resp = ProvisioningResponse::decode(&body, local.is_none())?;
    let identity = match &local {
        Some((key, _)) => NewIdentity {
            client_id: resp.client_id.clone(),
            cert_pem: resp.device_cert.clone(),
            private_key_pem: key.serialize_pem(),
            public_key_pem: Some(key.public_key_pem()),
        },
        None => NewIdentity {
            client_id: resp.client_id.clone(),
            cert_pem: resp.device_cert.clone(),
            private_key_pem: resp.device_private_key.clone().unwrap_or_default(),
            public_key_pem: resp.device_public_key.clone(),
        },
    };
    store.write_identity(&identity)?;
    store.write_properties(&Properties {
        mqtt_endpoint: config.connectivity.mqtt_endpoint,
        mqtt_port: config.connectivity.mqtt_port,
        client_id: Some(resp.client_id.clone()),
    })?;
    reporter.report(Event::Provisioned {
        thing: resp.client_id.clone(),
        csr: opts.csr,
        store: opts.store.clone(),
    });
    Ok(ProvisionOutcome::Provisioned {
        thing: resp.client_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_carries_the_reference_subject() {
        let (_key, csr) = make_key_and_csr().unwrap();
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let parsed = rcgen::CertificateSigningRequestParams::from_pem(&csr).unwrap();
        let cn = parsed
            .params
            .distinguished_name
            .get(&DnType::CommonName)
            .unwrap();
        assert!(
            matches!(cn, rcgen::DnValue::Utf8String(s) if s == "Referenz-Client")
                || format!("{cn:?}").contains("Referenz-Client")
        );
    }

    #[test]
    fn provisioning_urls_must_be_https() {
        assert!(check_url("https://cfg.iot.connectprint.cloud/v2/provisioning").is_ok());
        assert!(check_url("http://localhost:1/x").is_ok());
        let e = check_url("http://evil.example/x").unwrap_err();
        assert_eq!(e.field, "provisioning.provisioningURL");
    }
}
