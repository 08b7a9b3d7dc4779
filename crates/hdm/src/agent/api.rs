//! Every HTTPS step of onboarding (configuration, provisioning, OAuth, directory) goes through
//! here, and from here through `transport::http::Http`, which applies the one HTTP policy to
//! every URL: `base_url`, `DIRECTORY_HOST` and each URL an answer names are checked (https only
//! off loopback), redirects are followed by the policy (never to plain http, `x-api-key` and
//! `Authorization` dropped on a change of origin). This module adds the credential header, turns
//! error statuses into sentences with advice, and never lets a secret into a message.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use transport::auth::{ExposeSecret, Secret};
use transport::http::{Http, HttpOptions};
use transport::tls::TlsOptions;

use crate::agent::AgentError;
use crate::protocol::config::{API_KEY_HEADER, BEARER};

/// How a call authenticates.
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    /// Header `x-api-key` (gen 1).
    ApiKey(&'a Secret),
    /// `Authorization: Bearer` (gen 2, 3, the directory).
    Bearer(&'a Secret),
    /// None (the OAuth endpoints authenticate by their form).
    None,
}

/// A request body and its type.
pub struct Body {
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Body {
    /// A JSON body.
    pub fn json(bytes: Vec<u8>) -> Self {
        Body {
            content_type: "application/json",
            bytes,
        }
    }

    /// A form body.
    pub fn form(bytes: Vec<u8>) -> Self {
        Body {
            content_type: "application/x-www-form-urlencoded",
            bytes,
        }
    }
}

/// An answer: status and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body (at most what reqwest read).
    pub body: Vec<u8>,
}

/// Settings of the HTTPS calls.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// CA files to trust (empty: the system's roots).
    pub https_ca: Vec<PathBuf>,
    /// Limit of each call.
    pub timeout: Duration,
    /// Allow plain http to other machines (warned).
    pub allow_plaintext: bool,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            https_ca: Vec::new(),
            timeout: Duration::from_secs(30),
            allow_plaintext: false,
        }
    }
}

/// The HTTPS client of onboarding.
#[derive(Debug, Clone)]
pub struct Api {
    http: Http,
    env_file: String,
}

fn status_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            ["message", "error_description", "error"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|m| m.as_str()).map(str::to_owned))
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

impl Api {
    /// A client for the env file `env_file` (named in advice).
    pub fn new(opts: &ApiOptions, env_file: &str) -> Result<Self, AgentError> {
        let mut h = HttpOptions::new(TlsOptions {
            ca_files: opts.https_ca.clone(),
            ..TlsOptions::default()
        });
        h.timeout = opts.timeout;
        h.connect_timeout = opts.timeout.min(Duration::from_secs(10));
        h.allow_plaintext = opts.allow_plaintext;
        Ok(Api {
            http: Http::new(h)?,
            env_file: env_file.to_owned(),
        })
    }

    /// Checks a URL against the policy before it is used; `what` says where it came from.
    pub fn check(&self, url: &str, what: &str) -> Result<url::Url, AgentError> {
        Ok(self.http.check(url, what)?)
    }

    /// `url` as messages may show it (no query, no userinfo).
    fn shown(url: &str) -> String {
        url::Url::parse(url).map_or_else(|_| "(a URL)".into(), |u| transport::http::redact(&u))
    }

    /// Sends one request and returns the answer whatever its status.
    pub async fn raw(
        &self,
        step: &str,
        method: Method,
        url: &str,
        cred: Credential<'_>,
        body: Option<Body>,
    ) -> Result<Answer, AgentError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let secret_header = |v: &str| {
            HeaderValue::from_str(v)
                .map(|mut h| {
                    h.set_sensitive(true);
                    h
                })
                .map_err(|_| {
                    AgentError::Config(format!(
                        "the credential for {step} holds characters a header cannot carry (check {})",
                        self.env_file
                    ))
                })
        };
        match cred {
            Credential::ApiKey(k) => {
                headers.insert(API_KEY_HEADER, secret_header(k.expose_secret())?);
            }
            Credential::Bearer(t) => {
                headers.insert(
                    AUTHORIZATION,
                    secret_header(&format!("{BEARER}{}", t.expose_secret()))?,
                );
            }
            Credential::None => {}
        }
        let bytes = body.map(|b| {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(b.content_type));
            b.bytes
        });
        let resp = self.http.send(step, method, url, headers, bytes).await?;
        let status = resp.status().as_u16();
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Err(AgentError::Http {
                    url: Self::shown(url),
                    reason: e.to_string(),
                });
            }
        };
        Ok(Answer {
            status,
            body: body.to_vec(),
        })
    }

    /// Sends one request; a status outside 200–299 is an error with the service's message and,
    /// for 401/403, advice on the credential (`hint`).
    pub async fn call(
        &self,
        step: &'static str,
        method: Method,
        url: &str,
        cred: Credential<'_>,
        body: Option<Body>,
    ) -> Result<Vec<u8>, AgentError> {
        let answer = self.raw(step, method, url, cred, body).await?;
        if (200..300).contains(&answer.status) {
            return Ok(answer.body);
        }
        let mut message = status_message(&answer.body);
        if matches!(answer.status, 401 | 403) {
            let hint = match cred {
                Credential::ApiKey(_) => format!(
                    "the service refused the API key; check `api_key` in {} (or HDM_API_KEY) — it is sent as the {API_KEY_HEADER} header",
                    self.env_file
                ),
                Credential::Bearer(_) => format!(
                    "the service refused the Bearer token; check `auth_token`/`auth_token_file` in {} (or HDM_AUTH_TOKEN, --token-file), or for generation 3 delete oauth_token.json to authorize again",
                    self.env_file
                ),
                Credential::None => "the service refused the request".into(),
            };
            message = format!("{message}; {hint}");
        }
        Err(AgentError::HttpStatus {
            what: step,
            url: Self::shown(url),
            status: answer.status,
            message,
        })
    }
}
