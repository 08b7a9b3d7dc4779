//! The datalake upload with the agent token, over HTTPS (the sample's `upload_to_datalake`,
//! with every answer checked): find the agent's asset by `externalId` = client id at
//! `GW_URL`, ask `SGW_URL` for a signed upload URL under `<assetId>/`, `PUT` the bytes there.
//!
//! Every request goes through `transport::http::Http`, so the one HTTP policy holds for the
//! configured URLs and for the signed URL the platform hands back alike: https only (loopback
//! excepted, or `--allow-plaintext`, warned), redirects never to plain http, and the Bearer
//! token dropped on any change of origin. The token is sent to `GW_URL` and `SGW_URL` only,
//! never to the signed URL (its query is the credential there), and no message shows a
//! signed URL's query.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use transport::http::{Http, HttpError, HttpOptions, redact};
use transport::tls::TlsOptions;

use crate::config::{ConfigError, Settings};
use crate::protocol::datalake::{
    ASSETS_PATH, AssetsPage, ObjectPath, UPLOAD_URLS_PATH, UploadUrlsRequest, UploadUrlsResponse,
    asset_filter, object_name,
};
use crate::protocol::token::Redacted;

use super::AgentError;

/// The HTTPS client and endpoints.
#[derive(Debug, Clone)]
pub struct Datalake {
    pub(crate) http: Http,
    pub(crate) gw: String,
    sgw: String,
    pub(crate) client_id: String,
}

pub(crate) fn http_err(step: &'static str, url: &str, e: &HttpError) -> AgentError {
    AgentError::Http {
        step,
        url: url.to_owned(),
        reason: e.to_string(),
        status: None,
    }
}

pub(crate) async fn checked(
    step: &'static str,
    url: &str,
    r: Result<reqwest::Response, HttpError>,
) -> Result<reqwest::Response, AgentError> {
    let r = r.map_err(|e| http_err(step, url, &e))?;
    let status = r.status();
    if status.is_success() {
        return Ok(r);
    }
    let body: String = r
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    Err(AgentError::Http {
        step,
        url: url.to_owned(),
        reason: format!("HTTP {status}: {body}"),
        status: Some(status.as_u16()),
    })
}

pub(crate) async fn json<T: serde::de::DeserializeOwned>(
    step: &'static str,
    url: &str,
    r: reqwest::Response,
) -> Result<T, AgentError> {
    r.json().await.map_err(|e| AgentError::Http {
        step,
        url: url.to_owned(),
        reason: format!("the answer is not the expected JSON: {e}"),
        status: None,
    })
}

pub(crate) fn bearer(token: &str) -> Result<HeaderMap, AgentError> {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        AgentError::Input("the agent token has characters a header cannot carry".into())
    })?;
    v.set_sensitive(true);
    let mut h = HeaderMap::new();
    h.insert(AUTHORIZATION, v);
    Ok(h)
}

impl Datalake {
    /// The client for `settings` (`GW_URL`, `SGW_URL`, `HTTP_CA_PATH`, `--allow-plaintext`);
    /// requests time out after `timeout`. A URL the policy refuses is a configuration error
    /// naming the key, before any connection.
    pub fn new(settings: &Settings, timeout: Duration) -> Result<Self, AgentError> {
        let (gw, sgw) = settings.require_urls()?;
        Self::with(
            gw,
            sgw,
            settings.topics.client_id(),
            &settings.http_tls,
            timeout,
            settings.allow_plaintext,
        )
        .map_err(|e| match e {
            HttpError::Tls(t) => AgentError::Config(ConfigError::Tls(t)),
            other => AgentError::Config(ConfigError::Url(Box::new(other))),
        })
    }

    /// The client for these endpoints (`gw`, `sgw` without a trailing slash).
    pub(crate) fn with(
        gw: &str,
        sgw: &str,
        client_id: &str,
        tls: &TlsOptions,
        timeout: Duration,
        allow_plaintext: bool,
    ) -> Result<Self, HttpError> {
        let mut opts = HttpOptions::new(tls.clone());
        opts.timeout = timeout;
        opts.connect_timeout = timeout.min(Duration::from_secs(10));
        opts.allow_plaintext = allow_plaintext;
        let http = Http::new(opts)?;
        http.check(gw, "`GW_URL` (--gw-url)")?;
        http.check(sgw, "`SGW_URL` (--sgw-url)")?;
        Ok(Datalake {
            http,
            gw: gw.to_owned(),
            sgw: sgw.to_owned(),
            client_id: client_id.to_owned(),
        })
    }

    /// The agent's own asset id.
    pub async fn asset_id(&self, token: &str) -> Result<String, AgentError> {
        let base = format!("{}{ASSETS_PATH}", self.gw);
        tracing::debug!("asset lookup at {base} with token {:?}", Redacted(token));
        let mut url = url::Url::parse(&base).map_err(|e| AgentError::Http {
            step: "asset lookup",
            url: base.clone(),
            reason: e.to_string(),
            status: None,
        })?;
        url.query_pairs_mut()
            .append_pair("filter", &asset_filter(&self.client_id));
        let r = self
            .http
            .send(
                "the asset lookup at GW_URL",
                Method::GET,
                url.as_str(),
                bearer(token)?,
                None,
            )
            .await;
        let page: AssetsPage = json(
            "asset lookup",
            &base,
            checked("asset lookup", &base, r).await?,
        )
        .await?;
        page.embedded.assets.into_iter().next().map(|a| a.asset_id).ok_or_else(|| AgentError::Http {
            step: "asset lookup",
            url: base,
            reason: format!("no asset has externalId `{}`; the agent's asset appears once the agent is onboarded (first connection)", self.client_id),
            status: None,
        })
    }

    /// Uploads `bytes` as `name` into the agent's folder; returns the object path.
    pub async fn upload(
        &self,
        token: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<String, AgentError> {
        let asset = self.asset_id(token).await?;
        let url = format!("{}{UPLOAD_URLS_PATH}", self.sgw);
        let req = UploadUrlsRequest {
            paths: vec![ObjectPath {
                path: format!("{asset}/{}", object_name(name)),
            }],
        };
        let body = serde_json::to_vec(&req).map_err(|e| AgentError::Input(e.to_string()))?;
        let mut headers = bearer(token)?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let r = self
            .http
            .send(
                "generateUploadObjectUrls at SGW_URL",
                Method::POST,
                &url,
                headers,
                Some(body),
            )
            .await;
        let urls: UploadUrlsResponse = json(
            "generateUploadObjectUrls",
            &url,
            checked("generateUploadObjectUrls", &url, r).await?,
        )
        .await?;
        let Some(obj) = urls.object_urls.into_iter().next() else {
            return Err(AgentError::Http {
                step: "generateUploadObjectUrls",
                url,
                reason: "the answer has no objectUrls".into(),
                status: None,
            });
        };
        // The signed URL comes from the network: the same policy applies, and it gets no
        // Bearer token (its signature is its credential).
        let shown = url::Url::parse(&obj.signed_url)
            .map_or_else(|_| "the signed URL".into(), |u| redact(&u));
        let put = self
            .http
            .send(
                "the signed upload URL from generateUploadObjectUrls",
                Method::PUT,
                &obj.signed_url,
                HeaderMap::new(),
                Some(bytes),
            )
            .await;
        checked("upload to the signed URL", &shown, put).await?;
        Ok(obj.path)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use axum::body::Bytes;
    use axum::http::{HeaderMap as Headers, Method as M, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};

    use super::*;

    /// One request a server saw: method, path and query, `Authorization`, body length.
    type Seen = (String, String, Option<String>, usize);

    /// A local HTTP server playing Asset Management, the Data Lake and the signed-URL store:
    /// `/moved…` answers 307 to `other`; the upload-URL answer names `signed`.
    struct Server {
        url: String,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    async fn bind() -> (tokio::net::TcpListener, String) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        (l, url)
    }

    fn serve(l: tokio::net::TcpListener, url: String, other: String, signed: String) -> Server {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |m: M, uri: Uri, h: Headers, body: Bytes| {
            let (log, other, signed) = (log.clone(), other.clone(), signed.clone());
            async move {
                let auth = h
                    .get("authorization")
                    .map(|v| v.to_str().unwrap_or_default().to_owned());
                let path = uri.path().to_owned();
                log.lock().unwrap().push((
                    m.to_string(),
                    uri.to_string(),
                    auth,
                    body.len(),
                ));
                let r: Response = if let Some(rest) = path.strip_prefix("/moved") {
                    (
                        StatusCode::TEMPORARY_REDIRECT,
                        [("location", format!("{other}{rest}"))],
                    )
                        .into_response()
                } else if path == ASSETS_PATH {
                    axum::Json(serde_json::json!({"_embedded": {"assets": [{"assetId": "a1"}]}}))
                        .into_response()
                } else if path == UPLOAD_URLS_PATH {
                    axum::Json(serde_json::json!({"objectUrls": [{"path": "a1/x.bin", "signedUrl": signed}]}))
                        .into_response()
                } else if m == M::PUT {
                    StatusCode::CREATED.into_response()
                } else {
                    StatusCode::NOT_FOUND.into_response()
                };
                r
            }
        });
        tokio::spawn(axum::serve(l, app).into_future());
        Server { url, seen }
    }

    fn datalake(gw: &str, sgw: &str) -> Datalake {
        Datalake::with(
            gw,
            sgw,
            "t_agent",
            &TlsOptions::default(),
            Duration::from_secs(5),
            false,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn the_token_goes_to_the_gateways_only_never_to_the_signed_url() {
        let ((la, ua), (lb, ub)) = (bind().await, bind().await);
        let a = serve(
            la,
            ua.clone(),
            ub.clone(),
            format!("{ub}/store/x.bin?sig=SIG-s3cr3t"),
        );
        let b = serve(lb, ub.clone(), ua.clone(), String::new());
        let path = datalake(&a.url, &a.url)
            .upload("tok-123", "x.bin", b"hello".to_vec())
            .await
            .unwrap();
        assert_eq!(path, "a1/x.bin");
        let seen_a = a.seen.lock().unwrap().clone();
        assert_eq!(seen_a.len(), 2, "{seen_a:?}");
        assert!(
            seen_a
                .iter()
                .all(|s| s.2.as_deref() == Some("Bearer tok-123")),
            "{seen_a:?}"
        );
        let seen_b = b.seen.lock().unwrap().clone();
        assert_eq!(seen_b.len(), 1, "{seen_b:?}");
        let (method, uri, auth, len) = &seen_b[0];
        assert_eq!(
            (method.as_str(), uri.as_str(), auth, *len),
            ("PUT", "/store/x.bin?sig=SIG-s3cr3t", &None, 5)
        );
    }

    #[tokio::test]
    async fn a_redirect_to_another_origin_loses_the_bearer_token() {
        let ((la, ua), (lb, ub)) = (bind().await, bind().await);
        let signed = format!("{ua}/store/x.bin?sig=s");
        let a = serve(la, ua.clone(), ub.clone(), signed.clone());
        let b = serve(lb, ub.clone(), ua.clone(), signed);
        datalake(&a.url, &format!("{}/moved", a.url))
            .upload("tok-123", "x.bin", b"hello".to_vec())
            .await
            .unwrap();
        let seen_b = b.seen.lock().unwrap().clone();
        assert_eq!(seen_b.len(), 1, "{seen_b:?}");
        assert_eq!(seen_b[0].0, "POST", "a 307 keeps the method and body");
        assert_eq!(seen_b[0].2, None, "the token stayed behind: {seen_b:?}");
    }

    #[tokio::test]
    async fn a_plain_http_signed_url_to_another_machine_is_refused_before_connecting() {
        let (la, ua) = bind().await;
        // TEST-NET-1: nothing answers there, so a connection attempt would hang until timeout.
        let a = serve(
            la,
            ua.clone(),
            ua.clone(),
            "http://192.0.2.7/store/x.bin?sig=SIG-s3cr3t".into(),
        );
        let started = Instant::now();
        let e = datalake(&a.url, &a.url)
            .upload("tok-123", "x.bin", b"hello".to_vec())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "it tried to connect"
        );
        assert!(
            e.contains("signed upload URL") && e.contains("plain http") && e.contains("192.0.2.7"),
            "{e}"
        );
        assert!(!e.contains("SIG-s3cr3t") && !e.contains("tok-123"), "{e}");
    }

    #[test]
    fn plain_http_gateways_off_loopback_are_refused_and_named() {
        let e = Datalake::with(
            "http://gateway.example.com",
            "https://southgate.example.com",
            "t_agent",
            &TlsOptions::default(),
            Duration::from_secs(5),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`GW_URL`") && e.contains("plain http"), "{e}");
    }
}
