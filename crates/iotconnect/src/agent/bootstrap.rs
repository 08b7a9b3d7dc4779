//! The HTTPS half of the agent: discovery (`GET .../env/{env}` → `baseUrl`) and `sync`
//! (`POST {baseUrl}sync`), and turning the sync answer into session options: broker URL from
//! `p.h`/`p.p`, client id `p.id`, and the credentials the auth type (`at`) calls for — an X.509
//! client certificate (2, 3), the SAS token `sync` sends (1), or one signed with the device's
//! primary key (5). TPM (4) is not supported.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use transport::auth::Credentials;
use transport::tls::TlsOptions;
use transport::{ConnectSettings, SessionOptions};

use super::AgentError;
use crate::config::Config;
use crate::protocol::sas;
use crate::protocol::v1::sync::{
    DiscoveryResponse, SyncData, SyncOptions, SyncRequest, SyncScope, discovery_url,
};

/// The result of discovery.
#[derive(Debug, Clone)]
pub struct Platform {
    /// HTTPS client (the config's CA, or the system roots).
    pub http: reqwest::Client,
    /// The discovery answer.
    pub discovery: DiscoveryResponse,
}

/// An HTTPS client for discovery, sync and OTA downloads.
pub fn http_client(tls: &TlsOptions, timeout: Duration) -> Result<reqwest::Client, AgentError> {
    // HTTPS never presents the device certificate: discovery and sync are anonymous.
    let tls = TlsOptions {
        ca_files: tls.ca_files.clone(),
        ..TlsOptions::default()
    };
    transport::http::client(&tls, timeout).map_err(|e| AgentError::Http {
        what: "set up HTTPS",
        url: String::new(),
        reason: e.to_string(),
    })
}

async fn fetch(
    req: reqwest::RequestBuilder,
    what: &'static str,
    url: &str,
) -> Result<Vec<u8>, AgentError> {
    let err = |reason: String| AgentError::Http {
        what,
        url: url.to_owned(),
        reason,
    };
    let resp = req.send().await.map_err(|e| err(transport_reason(&e)))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| err(transport_reason(&e)))?;
    if !status.is_success() && !body.starts_with(b"{") {
        return Err(err(format!("HTTP {status}")));
    }
    Ok(body.to_vec())
}

fn transport_reason(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Discovery: asks `discoveryUrl` for the agent base URL.
pub async fn discover(cfg: &Config, http: reqwest::Client) -> Result<Platform, AgentError> {
    let url = discovery_url(&cfg.discovery_url, &cfg.cp_id, &cfg.env)?;
    let body = fetch(http.get(&url), "discovery", &url).await?;
    let discovery = DiscoveryResponse::parse(&body)?;
    Ok(Platform { http, discovery })
}

impl Platform {
    /// `sync` for `scope`.
    pub async fn sync(&self, cfg: &Config, scope: SyncScope) -> Result<SyncData, AgentError> {
        let url = self.discovery.sync_url();
        let body = SyncRequest {
            unique_id: cfg.unique_id.clone(),
            cp_id: cfg.cp_id.clone(),
            option: SyncOptions::for_scope(scope),
        };
        let req = self
            .http
            .post(&url)
            .header("Accept", "application/json")
            .json(&body);
        let reply = fetch(req, "sync", &url).await?;
        let data = SyncData::parse_reply(&reply)?;
        if scope == SyncScope::All {
            data.check(&cfg.unique_id)?;
        }
        Ok(data)
    }
}

/// What the spool-full warning tells an IoTConnect user to change (the SDK's own settings).
pub const SPOOL_FULL_HINT: &str =
    "raise sdkOptions.offlineStorage.availSpaceInMb or fileCount in the config file to keep more";

/// Session options from the user's settings, the config file and the sync answer: the
/// settings win, then the config (`SSLCaPath`, `SSLCertPath`, `SSLKeyPath`), then sync (`p`).
pub fn session_options(
    settings: &ConnectSettings,
    cfg: &Config,
    sync: &SyncData,
) -> Result<SessionOptions, AgentError> {
    let p = sync.p.clone().unwrap_or_default();
    if !p.n.is_empty() && !p.n.eq_ignore_ascii_case("mqtt") {
        return Err(AgentError::Unsupported(format!(
            "sync asks for protocol `{}`; this agent speaks MQTT only",
            p.n
        )));
    }
    let mut settings = settings.clone();
    settings.tls.ca_files = settings.ca_files_or(cfg.ca.clone());
    if settings.tls.client_cert.is_none() {
        settings.tls.client_cert.clone_from(&cfg.cert);
    }
    if settings.tls.client_key.is_none() {
        settings.tls.client_key.clone_from(&cfg.key);
    }
    let default_broker =
        (!p.h.is_empty()).then(|| format!("mqtts://{}:{}", p.h, if p.p == 0 { 8883 } else { p.p }));
    if settings.broker.is_none() && default_broker.is_none() {
        return Err(crate::protocol::v1::sync::SyncError::Missing { field: "d.p.h" }.into());
    }
    let mut opts = settings.session_options(default_broker.as_deref())?;
    // iotc-send has no --spool-* flags: its offline storage is sized in the config file.
    opts.spool_full_hint = SPOOL_FULL_HINT.into();
    if settings.client_id.is_none() {
        opts.client_id = if p.id.is_empty() {
            cfg.unique_id.clone()
        } else {
            p.id.clone()
        };
    }
    let at = sync.at.unwrap_or(2);
    if settings.username.is_none() {
        let username = if p.un.is_empty() {
            format!("{}/{}/?api-version=2018-06-30", p.h, opts.client_id)
        } else {
            p.un.clone()
        };
        opts.credentials = match at {
            1 => Some(Credentials {
                username,
                password: Some(p.pwd.clone())
                    .filter(|s| !s.is_empty())
                    .map(Into::into),
            }),
            5 => {
                let key = cfg.device_primary_key.as_deref().ok_or(AgentError::Unsupported(
                    "auth type 5 (symmetric key) needs sdkOptions.devicePrimaryKey or --device-key-env/--device-key-file".into(),
                ))?;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let resource = format!("{}/devices/{}", p.h, opts.client_id);
                Some(Credentials {
                    username,
                    password: Some(sas::build(&resource, key, now + 365 * 24 * 3600)?.into()),
                })
            }
            _ => None,
        };
    }
    match at {
        2 | 3 if opts.tls.client_cert.is_none() || opts.tls.client_key.is_none() => {
            Err(AgentError::Unsupported(format!(
                "auth type {at} (X.509) needs a client certificate and key: set sdkOptions.certificate.SSLCertPath and SSLKeyPath in `{}` or pass --cert/--key",
                cfg.path.display()
            )))
        }
        4 => Err(AgentError::Unsupported(
            "auth type 4 (TPM via Azure DPS) is not supported yet; use X.509 (2/3) or a key (1/5)"
                .into(),
        )),
        _ => Ok(opts),
    }
}
