//! TPM attestation through the Azure Device Provisioning Service over HTTPS (IoTConnect auth
//! type 4): the exchange of [`crate::protocol::dps`] driven through the agent's HTTPS client
//! (its policy: https off loopback, TLS verified, no secret header across origins). The TPM is
//! behind [`Attestor`], so this crate links no TPM library unless the `tpm` feature asks for
//! one (`agent::tpm::TpmAttestor`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use transport::http::Http;

use super::AgentError;
use crate::protocol::dps::{self, Answer};
use crate::protocol::sas;

/// What DPS and IoT Hub need from a TPM. Each call may block briefly on the TPM.
pub trait Attestor: Send + Sync {
    /// The EK's and the SRK's marshalled `TPM2B_PUBLIC`.
    fn public_keys(&self) -> Result<(Vec<u8>, Vec<u8>), String>;
    /// Activates and imports DPS's `authenticationKey` (decoded), the key later signing.
    fn activate(&self, authentication_key: &[u8]) -> Result<(), String>;
    /// HMAC-SHA256 of `data` with the imported key.
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, String>;
}

/// A shared attestor; cheap to clone and shown without contents.
#[derive(Clone)]
pub struct Attestation(pub Arc<dyn Attestor>);

/// The same TPM object, not equal contents (a TPM cannot be compared).
impl PartialEq for Attestation {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for Attestation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Attestation(TPM)")
    }
}

/// Where and as whom to register.
#[derive(Debug, Clone)]
pub struct DpsOptions {
    /// The DPS base URL ([`dps::GLOBAL_ENDPOINT`] for Azure).
    pub url: String,
    /// `scopeId` of the config file.
    pub id_scope: String,
    /// The registration id (IoTConnect: `{cpId}-{uniqueId}`).
    pub registration_id: String,
    /// Most status polls before giving up.
    pub max_polls: u32,
}

/// What DPS assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The IoT hub host.
    pub hub: String,
    /// The device id on it.
    pub device_id: String,
}

/// How long the registration SAS token is valid: DPS checks it per request, and the whole
/// exchange takes seconds.
const REGISTRATION_SAS: Duration = Duration::from_secs(3600);

fn tpm_err(step: &str) -> impl FnOnce(String) -> AgentError + '_ {
    move |e| AgentError::Tpm(format!("{step}: {e}"))
}

/// One DPS request: status, `Retry-After` and body.
async fn call(
    http: &Http,
    method: reqwest::Method,
    url: &str,
    body: Option<Vec<u8>>,
    token: Option<&str>,
) -> Result<(u16, Option<u64>, Vec<u8>), AgentError> {
    let err = |reason: String| AgentError::Http {
        what: "DPS registration",
        url: url.split('?').next().unwrap_or(url).to_owned(),
        reason,
    };
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(t) = token {
        let mut v = HeaderValue::from_str(t).map_err(|e| err(format!("SAS header: {e}")))?;
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    }
    let resp = http
        .send("DPS registration", method, url, headers, body)
        .await
        .map_err(|e| err(e.to_string()))?;
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let body = resp.bytes().await.map_err(|e| err(e.to_string()))?;
    Ok((status, retry, body.to_vec()))
}

/// Registers with TPM attestation: the challenge, its activation in the TPM, the signed
/// registration, the status polls; returns the hub and device id.
pub async fn register(
    http: &Http,
    opts: &DpsOptions,
    tpm: &dyn Attestor,
) -> Result<Assignment, AgentError> {
    http.check(&opts.url, "DPS endpoint (--dps-url)")
        .map_err(|e| AgentError::Input(e.to_string()))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let reg = &opts.registration_id;
    let (ek, srk) = tpm
        .public_keys()
        .map_err(tpm_err("reading the EK and SRK"))?;
    let body = dps::register_body(reg, &b64.encode(&ek), &b64.encode(&srk));
    let url = dps::register_url(&opts.url, &opts.id_scope, reg);
    let what = url.split('?').next().unwrap_or(&url).to_owned();
    let decode = |k: &str| {
        b64.decode(k).map_err(|e| {
            AgentError::Dps(dps::DpsError::Malformed {
                topic: what.clone(),
                detail: format!("`authenticationKey` is not base64: {e}"),
            })
        })
    };

    let (status, retry, answer) =
        call(http, reqwest::Method::PUT, &url, Some(body.clone()), None).await?;
    let Answer::Challenge { authentication_key } =
        dps::parse_http_answer(&what, status, retry, &answer, reg)?
    else {
        return Err(AgentError::Dps(dps::DpsError::Malformed {
            topic: what,
            detail: format!("expected 401 with the TPM challenge, got status {status}"),
        }));
    };
    tpm.activate(&decode(&authentication_key)?)
        .map_err(tpm_err("activating the DPS challenge"))?;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let token = sas::build_signed(
        &dps::sas_resource(&opts.id_scope, reg),
        now + REGISTRATION_SAS.as_secs(),
        Some("registration"),
        |d| tpm.sign(d),
    )
    .map_err(tpm_err("signing the registration SAS token"))?;

    let (status, retry, answer) =
        call(http, reqwest::Method::PUT, &url, Some(body), Some(&token)).await?;
    let mut answer = dps::parse_http_answer(&what, status, retry, &answer, reg)?;
    for _ in 0..opts.max_polls {
        match answer {
            Answer::Assigned {
                hub,
                device_id,
                authentication_key,
            } => {
                // DPS may hand a fresh key along with the assignment: that one signs for the hub.
                if let Some(k) = authentication_key {
                    tpm.activate(&decode(&k)?)
                        .map_err(tpm_err("activating the assignment's key"))?;
                }
                return Ok(Assignment { hub, device_id });
            }
            Answer::Assigning {
                operation_id,
                retry_after,
            } => {
                // DPS's Retry-After paces the polls; capped so a bad header cannot stall us.
                tokio::time::sleep(Duration::from_secs(retry_after.clamp(1, 30))).await;
                let url = dps::operation_url(&opts.url, &opts.id_scope, reg, &operation_id);
                let (status, retry, body) =
                    call(http, reqwest::Method::GET, &url, None, Some(&token)).await?;
                answer = dps::parse_http_answer(&what, status, retry, &body, reg)?;
            }
            Answer::Challenge { .. } => {
                return Err(AgentError::Dps(dps::DpsError::Refused {
                    registration_id: reg.clone(),
                    status: 401,
                    code: 0,
                    message: "DPS did not accept the SAS token signed by the TPM-held key".into(),
                }));
            }
        }
    }
    Err(AgentError::Dps(dps::DpsError::Malformed {
        topic: what,
        detail: format!("still assigning after {} status polls", opts.max_polls),
    }))
}
