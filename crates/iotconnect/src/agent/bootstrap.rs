//! The HTTPS half of the agent: discovery (`GET .../env/{env}` → `baseUrl`) and `sync`
//! (`POST {baseUrl}sync`), and turning the sync answer into session options: broker URL from
//! `p.h`/`p.p`, client id `p.id`, and the credentials the auth type (`at`) calls for — an X.509
//! client certificate (2, 3), the SAS token `sync` sends (1), or one signed with the device's
//! primary key (5), or one signed inside the TPM with the key DPS issued (4, see [`super::dps`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use transport::auth::Credentials;
use transport::http::{Http, HttpOptions};
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
    pub http: Http,
    /// The discovery answer.
    pub discovery: DiscoveryResponse,
}

/// How long a SAS token this agent signs (auth type 5) is valid. One hour, the lifetime the
/// Azure IoT device SDKs default to, instead of the Python SDK's year: a leaked token is
/// useful for an hour only. The agent reconnects with a fresh token at [`SAS_RENEW`].
pub const SAS_LIFETIME: Duration = Duration::from_secs(3600);
/// When the agent renews its SAS token (by reconnecting): 50 minutes after signing, so a
/// reconnect that takes a while still finishes before IoT Hub drops the old token.
pub const SAS_RENEW: Duration = Duration::from_secs(3000);

/// When to renew a token valid for `lifetime`: at five sixths of it ([`SAS_RENEW`] for an hour).
pub fn renew_after(lifetime: Duration) -> Duration {
    lifetime * 5 / 6
}

/// An HTTPS client for discovery, sync and OTA downloads.
pub fn http_client(tls: &TlsOptions, timeout: Duration) -> Result<Http, AgentError> {
    // HTTPS never presents the device certificate: discovery and sync are anonymous.
    let tls = TlsOptions {
        ca_files: tls.ca_files.clone(),
        ..TlsOptions::default()
    };
    let opts = HttpOptions {
        timeout,
        connect_timeout: timeout.min(Duration::from_secs(10)),
        ..HttpOptions::new(tls)
    };
    Http::new(opts).map_err(|e| AgentError::Http {
        what: "set up HTTPS",
        url: String::new(),
        reason: e.to_string(),
    })
}

/// One GET or POST through the policy; the body even of an error status when it is JSON (the
/// platform answers errors as `{"status", "message"}`).
pub(crate) async fn fetch(
    http: &Http,
    what: &'static str,
    method: reqwest::Method,
    url: &str,
    body: Option<Vec<u8>>,
) -> Result<Vec<u8>, AgentError> {
    let err = |reason: String| AgentError::Http {
        what,
        url: url.split('?').next().unwrap_or(url).to_owned(),
        reason,
    };
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    if body.is_some() {
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
    }
    let resp = http
        .send(what, method, url, headers, body)
        .await
        .map_err(|e| err(e.to_string()))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| err(e.to_string()))?;
    if !status.is_success() && !body.starts_with(b"{") {
        return Err(err(format!("HTTP {status}")));
    }
    Ok(body.to_vec())
}

/// Discovery: asks `discoveryUrl` for the agent base URL.
pub async fn discover(cfg: &Config, http: Http) -> Result<Platform, AgentError> {
    let url = discovery_url(&cfg.discovery_url, &cfg.cp_id, &cfg.env)?;
    let body = fetch(&http, "discovery", reqwest::Method::GET, &url, None).await?;
    let discovery = DiscoveryResponse::parse(&body)?;
    // The base URL comes from the network: the same https rule as for the configured URL.
    http.check(&discovery.base_url, "IoTConnect baseUrl from discovery")
        .map_err(|e| crate::protocol::v1::sync::SyncError::BadReply {
            what: "discovery",
            reason: e.to_string(),
        })?;
    Ok(Platform { http, discovery })
}

/// Message 2.1: discovery (`cpId`/`env` or `sid`, with `pf`) → `d.bu`, then identity
/// `GET {bu}/uid/{duid}`. Both URLs from the network are checked by the https rule first.
pub async fn identify(
    cfg: &Config,
    http: Http,
) -> Result<(Platform, crate::protocol::v2::identity::IdentityAnswer), AgentError> {
    use crate::protocol::v2::{self, Discovery, V2Error};
    let url = v2::discovery_url(
        &cfg.discovery_url,
        &cfg.cp_id,
        &cfg.env,
        cfg.sid.as_deref(),
        cfg.platform,
    )?;
    let body = fetch(&http, "discovery", reqwest::Method::GET, &url, None).await?;
    let found = Discovery::parse(&body, &cfg.unique_id)?;
    if let Some(pf) = found.pf
        && pf != cfg.platform
    {
        tracing::warn!(
            "discovery says the account runs on `{}`, the config says `{}`; following the config",
            pf.code(),
            cfg.platform.code()
        );
    }
    http.check(&found.bu, "IoTConnect identity URL (d.bu) from discovery")
        .map_err(|e| V2Error::BadReply {
            what: "discovery",
            reason: e.to_string(),
        })?;
    let url = found.identity_url(&cfg.unique_id)?;
    let body = fetch(&http, "identity", reqwest::Method::GET, &url, None).await?;
    let answer = v2::identity::IdentityAnswer::parse(&body, &cfg.unique_id)?;
    let platform = Platform {
        http,
        discovery: DiscoveryResponse {
            base_url: found.bu,
            log_info: None,
        },
    };
    Ok((platform, answer))
}

impl Platform {
    /// `sync` for `scope`.
    pub async fn sync(&self, cfg: &Config, scope: SyncScope) -> Result<SyncData, AgentError> {
        let data = self.sync_unchecked(cfg, scope).await?;
        if scope == SyncScope::All {
            data.check(&cfg.unique_id)?;
        }
        Ok(data)
    }

    /// `sync` without the status check: auth type 4 reads `ds` 1 as "register with DPS".
    pub async fn sync_unchecked(
        &self,
        cfg: &Config,
        scope: SyncScope,
    ) -> Result<SyncData, AgentError> {
        let url = self.discovery.sync_url();
        let body = SyncRequest {
            unique_id: cfg.unique_id.clone(),
            cp_id: cfg.cp_id.clone(),
            option: SyncOptions::for_scope(scope),
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let reply = fetch(&self.http, "sync", reqwest::Method::POST, &url, Some(body)).await?;
        Ok(SyncData::parse_reply(&reply)?)
    }
}

/// What the spool-full warning tells an IoTConnect user to change (the SDK's own settings).
pub const SPOOL_FULL_HINT: &str =
    "raise sdkOptions.offlineStorage.availSpaceInMb or fileCount in the config file to keep more";

/// The broker the sync (or 2.1 identity) answer points at (`p.h`, `p.p`, 8883 by default).
pub fn broker_url(sync: &SyncData) -> Option<String> {
    let p = sync.p.as_ref()?;
    (!p.h.is_empty()).then(|| format!("mqtts://{}:{}", p.h, if p.p == 0 { 8883 } else { p.p }))
}

/// Session options from the user's settings, the config file and the sync answer: the
/// settings win, then the config (`SSLCaPath`, `SSLCertPath`, `SSLKeyPath`), then sync (`p`).
pub fn session_options(
    settings: &ConnectSettings,
    cfg: &Config,
    sync: &SyncData,
) -> Result<SessionOptions, AgentError> {
    session_options_with_tls(settings, cfg, sync, None)
}

/// [`session_options`] over a TLS config the caller made, with the device's certificate in it
/// (`iot-sim fleet` issues certificates in memory): certificate and key files are then not
/// needed for the X.509 auth types.
pub fn session_options_with_tls(
    settings: &ConnectSettings,
    cfg: &Config,
    sync: &SyncData,
    tls_config: Option<std::sync::Arc<transport::tls::ClientConfig>>,
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
    let default_broker = broker_url(sync);
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
    let v21 = cfg.protocol == crate::config::Protocol::V21;
    if settings.username.is_none() && v21 && p.un.is_empty() && matches!(at, 2 | 3 | 7) {
        // 2.1 without `p.un` (AWS): the certificate alone; nothing is made up.
        opts.credentials = None;
    } else if settings.username.is_none() {
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
            4 => {
                let tpm = cfg.tpm.as_ref().ok_or(AgentError::Unsupported(format!(
                    "auth type 4 (TPM via Azure DPS) needs a TPM: {}",
                    super::NO_TPM_FEATURE
                )))?;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let resource = format!("{}/devices/{}", p.h, opts.client_id);
                let token =
                    sas::build_signed(&resource, now + cfg.sas_lifetime.as_secs(), None, |d| {
                        tpm.0.sign(d)
                    })
                    .map_err(|e| AgentError::Tpm(format!("signing the IoT Hub SAS token: {e}")))?;
                Some(Credentials {
                    username,
                    password: Some(token.into()),
                })
            }
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
                    password: Some(
                        sas::build(&resource, key, now + cfg.sas_lifetime.as_secs())?.into(),
                    ),
                })
            }
            // X.509 (2, 3): the certificate authenticates, but IoT Hub still wants the
            // username `{hub}/{deviceId}/?api-version=...` on CONNECT.
            2 | 3 | 7 => Some(Credentials {
                username,
                password: None,
            }),
            _ => None,
        };
    }
    let identity_given = tls_config.is_some();
    if tls_config.is_some() {
        opts.tls_config = tls_config;
    }
    match at {
        2 | 3 | 7
            if !identity_given
                && (opts.tls.client_cert.is_none() || opts.tls.client_key.is_none()) =>
        {
            Err(AgentError::Unsupported(format!(
                "auth type {at} (X.509) needs a client certificate and key: set sdkOptions.certificate.SSLCertPath and SSLKeyPath in `{}` or pass --cert/--key",
                cfg.path.display()
            )))
        }
        _ => Ok(opts),
    }
}
