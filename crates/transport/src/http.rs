//! HTTPS for the vendors' HTTP steps (discovery, sync, provisioning, tokens, uploads, signed
//! URLs, OTA images), with one policy for every URL, whether it came from a configuration file
//! or from the network:
//!
//! - **https only**, except to this machine (`localhost`, `127.0.0.0/8`, `::1`), or with
//!   `allow_plaintext` (the binaries' `--allow-plaintext`), which warns. A refused URL is an
//!   error naming where it came from, before any connection is made.
//! - **Redirects** are followed by this module, not by reqwest: at most [`MAX_REDIRECTS`], never
//!   from https to http, each target checked as above, and on any change of origin (scheme,
//!   host or port) the secrets — `Authorization`, `Cookie`, `x-api-key` and any header the
//!   caller names — are dropped before the request goes on. (reqwest drops `Authorization` and
//!   cookies itself, but not a custom header such as `x-api-key`.)
//! - TLS as for the MQTT sessions: the CA files or the system roots, an optional client
//!   certificate, verification always on.
//! - Two clients: one for API calls with an overall timeout, and one for bodies of unknown size
//!   (OTA images, uploads) with a connect timeout and an idle-read timeout instead, so a large
//!   image on a slow link is not cut off after 30 s; downloads resume with `Range` when the
//!   server allows it.

use std::io::{Seek, Write};
use std::path::Path;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderName};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::tls::{self, TlsError, TlsOptions};

/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 5;

/// Why an HTTP step could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// TLS files.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// reqwest refused the configuration.
    #[error("cannot build the HTTPS client: {0}")]
    Build(String),
    /// Not a URL.
    #[error("{what} `{url}` is not a URL: {reason}")]
    BadUrl {
        /// Where the URL came from ("`discoveryUrl` in iotconnect.json").
        what: String,
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A plaintext URL to another machine.
    #[error(
        "{what} `{url}` is plain http to another machine; use https (or pass --allow-plaintext to send it, and any key or token with it, readable to anyone on the path)"
    )]
    Plaintext {
        /// Where the URL came from.
        what: String,
        /// The URL.
        url: String,
    },
    /// A redirect this policy does not follow.
    #[error("{what}: the server at {from} redirected to {to}, which is refused: {reason}")]
    Redirect {
        /// What the request was for.
        what: String,
        /// The URL that answered with the redirect (without its query).
        from: String,
        /// The target (without its query).
        to: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The request failed (connection, TLS, timeout).
    #[error("{what}: {method} {url} failed: {reason}")]
    Request {
        /// What the request was for.
        what: String,
        /// Method.
        method: String,
        /// URL (without its query: signed URLs carry secrets there).
        url: String,
        /// What reqwest said, with its causes.
        reason: String,
    },
    /// A download could not be written or was too large.
    #[error("{what}: {reason}")]
    Download {
        /// What the download was for.
        what: String,
        /// What went wrong.
        reason: String,
    },
}

/// A URL as it may appear in messages: scheme, host, port and path, never the query (a signed
/// URL's signature) or userinfo.
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Checks `url` against the policy; `what` says where it came from, for the error.
pub fn check_url(url: &str, what: &str, allow_plaintext: bool) -> Result<Url, HttpError> {
    let parsed = Url::parse(url.trim()).map_err(|e| HttpError::BadUrl {
        what: what.to_owned(),
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback(&parsed) => Ok(parsed),
        "http" if allow_plaintext => {
            tracing::warn!(
                "{what} `{}` is plain http (--allow-plaintext): anyone on the path can read it",
                redact(&parsed)
            );
            Ok(parsed)
        }
        "http" => Err(HttpError::Plaintext {
            what: what.to_owned(),
            url: redact(&parsed),
        }),
        other => Err(HttpError::BadUrl {
            what: what.to_owned(),
            url: redact(&parsed),
            reason: format!("the scheme `{other}` is not https"),
        }),
    }
}

/// Settings for [`Http`].
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Trust and client identity.
    pub tls: TlsOptions,
    /// Overall limit for an API call.
    pub timeout: Duration,
    /// Limit for connecting (both clients).
    pub connect_timeout: Duration,
    /// Longest silence while reading a large body.
    pub idle_timeout: Duration,
    /// Allow plain http to other machines (warned).
    pub allow_plaintext: bool,
    /// Headers besides `Authorization`, `Cookie` and `x-api-key` that carry secrets and must
    /// not follow a redirect to another origin.
    pub secret_headers: Vec<HeaderName>,
}

impl HttpOptions {
    /// The defaults: 30 s per API call, 10 s to connect, 60 s of silence in a body.
    pub fn new(tls: TlsOptions) -> Self {
        HttpOptions {
            tls,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            allow_plaintext: false,
            secret_headers: Vec::new(),
        }
    }
}

/// The HTTPS client with the policy above. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Http {
    api: reqwest::Client,
    bulk: reqwest::Client,
    opts: HttpOptions,
}

/// What a download did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downloaded {
    /// Bytes in the file.
    pub bytes: u64,
    /// Times the transfer was resumed after a break.
    pub resumed: u32,
}

impl Http {
    /// Builds both clients.
    pub fn new(opts: HttpOptions) -> Result<Http, HttpError> {
        let tls_opts = TlsOptions {
            alpn: vec!["http/1.1".into()],
            ..opts.tls.clone()
        };
        let config = (*tls::client_config(&tls_opts)?).clone();
        let base = || {
            reqwest::Client::builder()
                .tls_backend_preconfigured(config.clone())
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(opts.connect_timeout)
                .user_agent(concat!("edgewire/", env!("CARGO_PKG_VERSION")))
        };
        let build =
            |b: reqwest::ClientBuilder| b.build().map_err(|e| HttpError::Build(e.to_string()));
        Ok(Http {
            api: build(base().timeout(opts.timeout))?,
            bulk: build(base().read_timeout(opts.idle_timeout))?,
            opts,
        })
    }

    /// Checks a URL against the policy (see [`check_url`]).
    pub fn check(&self, url: &str, what: &str) -> Result<Url, HttpError> {
        check_url(url, what, self.opts.allow_plaintext)
    }

    /// Sends an API request: `method` to `url` (checked), with `headers` and `body`, following
    /// redirects by the policy. `what` names the step in errors ("IoTConnect discovery").
    pub async fn send(
        &self,
        what: &str,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, HttpError> {
        self.send_with(&self.api, what, method, url, headers, body)
            .await
    }

    async fn send_with(
        &self,
        client: &reqwest::Client,
        what: &str,
        mut method: Method,
        url: &str,
        mut headers: HeaderMap,
        mut body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, HttpError> {
        let mut url = self.check(url, what)?;
        for _ in 0..=MAX_REDIRECTS {
            let mut req = client
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(b) = &body {
                req = req.body(b.clone());
            }
            let resp = req.send().await.map_err(|e| HttpError::Request {
                what: what.to_owned(),
                method: method.to_string(),
                url: redact(&url),
                reason: chain(&e),
            })?;
            let Some(next) = redirect_target(&resp, &url) else {
                return Ok(resp);
            };
            let refuse = |reason| HttpError::Redirect {
                what: what.to_owned(),
                from: redact(&url),
                to: redact(&next),
                reason,
            };
            if url.scheme() == "https" && next.scheme() != "https" {
                return Err(refuse("it would go from https to plain http"));
            }
            let next = check_url(next.as_str(), what, self.opts.allow_plaintext)
                .map_err(|_| refuse("plain http to another machine"))?;
            if next.origin() != url.origin() {
                self.strip_secrets(&mut headers);
            }
            // 303, and 301/302 after a POST, turn into a GET without a body (as browsers do).
            let status = resp.status();
            if status == StatusCode::SEE_OTHER
                || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                    && method == Method::POST)
            {
                method = Method::GET;
                body = None;
                headers.remove(header::CONTENT_TYPE);
                headers.remove(header::CONTENT_LENGTH);
            }
            url = next;
        }
        Err(HttpError::Request {
            what: what.to_owned(),
            method: method.to_string(),
            url: redact(&url),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    fn strip_secrets(&self, headers: &mut HeaderMap) {
        headers.remove(header::AUTHORIZATION);
        headers.remove(header::COOKIE);
        headers.remove(header::PROXY_AUTHORIZATION);
        headers.remove("x-api-key");
        for h in &self.opts.secret_headers {
            headers.remove(h);
        }
    }

    /// Downloads `url` into `dest` (written as `dest` plus `.part`, renamed when complete, mode
    /// 0600). No overall time limit: the connection may take `connect_timeout` and may be silent
    /// for at most `idle_timeout` at a time. A transfer that breaks is resumed (up to `retries`
    /// times) with a `Range` request when the server allows it, and started over when it does
    /// not. Larger than `max_bytes` is an error.
    pub async fn download(
        &self,
        what: &str,
        url: &str,
        headers: HeaderMap,
        dest: &Path,
        max_bytes: u64,
        retries: u32,
    ) -> Result<Downloaded, HttpError> {
        let fail = |reason: String| HttpError::Download {
            what: what.to_owned(),
            reason,
        };
        let shown = redact(&self.check(url, what)?);
        let part = dest.with_extension(match dest.extension() {
            Some(e) => format!("{}.part", e.to_string_lossy()),
            None => "part".into(),
        });
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode_0600()
            .open(&part)
            .map_err(|e| fail(format!("cannot create `{}`: {e}", part.display())))?;
        let mut have = 0u64;
        let mut resumed = 0u32;
        let mut attempt = 0u32;
        loop {
            let mut h = headers.clone();
            if have > 0
                && let Ok(v) = header::HeaderValue::from_str(&format!("bytes={have}-"))
            {
                h.insert(header::RANGE, v);
            }
            let result = async {
                let mut resp = self
                    .send_with(&self.bulk, what, Method::GET, url, h, None)
                    .await?;
                let status = resp.status();
                if have > 0 && status == StatusCode::OK {
                    // The server ignores Range: start over.
                    have = 0;
                    file.set_len(0)
                        .and_then(|()| file.rewind())
                        .map_err(|e| fail(format!("cannot rewrite `{}`: {e}", part.display())))?;
                } else if !status.is_success() {
                    return Err(fail(format!("the server answered HTTP {status}")));
                }
                while let Some(chunk) = resp.chunk().await.map_err(|e| HttpError::Request {
                    what: what.to_owned(),
                    method: "GET".into(),
                    url: shown.clone(),
                    reason: chain(&e),
                })? {
                    have += chunk.len() as u64;
                    if have > max_bytes {
                        return Err(fail(format!("larger than the limit of {max_bytes} bytes")));
                    }
                    file.write_all(&chunk)
                        .map_err(|e| fail(format!("cannot write `{}`: {e}", part.display())))?;
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => break,
                Err(e @ HttpError::Request { .. }) if attempt < retries => {
                    attempt += 1;
                    if have > 0 {
                        resumed += 1;
                    }
                    tracing::warn!("{e}; resuming at byte {have} (attempt {attempt} of {retries})");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&part);
                    return Err(e);
                }
            }
        }
        file.sync_all()
            .map_err(|e| fail(format!("cannot sync `{}`: {e}", part.display())))?;
        std::fs::rename(&part, dest).map_err(|e| {
            fail(format!(
                "cannot move the download to `{}`: {e}",
                dest.display()
            ))
        })?;
        Ok(Downloaded {
            bytes: have,
            resumed,
        })
    }

    /// The API client, for callers that build requests themselves and send them through
    /// [`Http::send`].
    pub fn options(&self) -> &HttpOptions {
        &self.opts
    }
}

/// The Location of a redirect answer, resolved against `base`.
fn redirect_target(resp: &reqwest::Response, base: &Url) -> Option<Url> {
    if !resp.status().is_redirection() || resp.status() == StatusCode::NOT_MODIFIED {
        return None;
    }
    let location = resp.headers().get(header::LOCATION)?.to_str().ok()?;
    base.join(location).ok()
}

/// An error with its causes, as one line (reqwest puts the useful part in the causes).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let more = c.to_string();
        if !s.contains(&more) {
            s.push_str(": ");
            s.push_str(&more);
        }
        cur = c.source();
    }
    s
}

/// `OpenOptions::mode(0o600)` under a name that reads at the call site.
trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

/// An HTTPS client trusting `tls.ca_files` (or the system roots), presenting `tls.client_cert`
/// when given, following no redirects by itself. Prefer [`Http`], which applies the whole
/// policy; this stays for callers that only talk to a fixed, checked base URL.
pub fn client(tls_opts: &TlsOptions, timeout: Duration) -> Result<reqwest::Client, HttpError> {
    let mut opts = HttpOptions::new(tls_opts.clone());
    opts.timeout = timeout;
    opts.connect_timeout = timeout;
    Http::new(opts).map(|h| h.api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_to_this_machine() {
        assert!(check_url("https://example.com/x", "t", false).is_ok());
        for ok in [
            "http://127.0.0.1:8080/",
            "http://localhost/a",
            "http://[::1]:9/",
        ] {
            assert!(check_url(ok, "t", false).is_ok(), "{ok}");
        }
        let err = check_url(
            "http://example.com/x?sig=secret",
            "`discoveryUrl` in iotconnect.json",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`discoveryUrl` in iotconnect.json") && err.contains("https"),
            "{err}"
        );
        assert!(!err.contains("secret"), "the query is not shown: {err}");
        assert!(check_url("http://example.com/x", "t", true).is_ok());
        assert!(check_url("ftp://example.com/x", "t", true).is_err());
        assert!(check_url("not a url", "t", true).is_err());
    }

    #[test]
    fn redacted_urls_lose_query_and_userinfo() {
        let u = Url::parse("https://user:pw@h.example:8443/p/q?sv=1&sig=abc#f").unwrap();
        assert_eq!(redact(&u), "https://h.example:8443/p/q");
    }
}
