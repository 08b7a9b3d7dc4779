//! The datalake upload with the agent token, over HTTPS (the sample's `upload_to_datalake`,
//! with every answer checked): find the agent's asset by `externalId` = client id at
//! `GW_URL`, ask `SGW_URL` for a signed upload URL under `<assetId>/`, `PUT` the bytes there.

use std::time::Duration;

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
    client: reqwest::Client,
    gw: String,
    sgw: String,
    client_id: String,
}

fn http_err(step: &'static str, url: &str, e: &reqwest::Error) -> AgentError {
    AgentError::Http {
        step,
        url: url.to_owned(),
        reason: e.to_string(),
        status: e.status().map(|s| s.as_u16()),
    }
}

async fn checked(
    step: &'static str,
    url: &str,
    r: Result<reqwest::Response, reqwest::Error>,
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

impl Datalake {
    /// The client for `settings` (`GW_URL`, `SGW_URL`, `HTTP_CA_PATH`); requests time out after `timeout`.
    pub fn new(settings: &Settings, timeout: Duration) -> Result<Self, AgentError> {
        let (gw, sgw) = settings.require_urls()?;
        let client = transport::http::client(&settings.http_tls, timeout).map_err(|e| match e {
            transport::http::HttpError::Tls(t) => AgentError::Config(ConfigError::Tls(t)),
            other => AgentError::Http {
                step: "set-up",
                url: gw.to_owned(),
                reason: other.to_string(),
                status: None,
            },
        })?;
        Ok(Datalake {
            client,
            gw: gw.to_owned(),
            sgw: sgw.to_owned(),
            client_id: settings.topics.client_id().to_owned(),
        })
    }

    /// The agent's own asset id.
    pub async fn asset_id(&self, token: &str) -> Result<String, AgentError> {
        let url = format!("{}{ASSETS_PATH}", self.gw);
        tracing::debug!("asset lookup at {url} with token {:?}", Redacted(token));
        let r = self
            .client
            .get(&url)
            .bearer_auth(token)
            .query(&[("filter", asset_filter(&self.client_id))])
            .send()
            .await;
        let page: AssetsPage = checked("asset lookup", &url, r)
            .await?
            .json()
            .await
            .map_err(|e| http_err("asset lookup", &url, &e))?;
        page.embedded.assets.into_iter().next().map(|a| a.asset_id).ok_or_else(|| AgentError::Http {
            step: "asset lookup",
            url,
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
        let r = self
            .client
            .post(&url)
            .bearer_auth(token)
            .json(&req)
            .send()
            .await;
        let urls: UploadUrlsResponse = checked("generateUploadObjectUrls", &url, r)
            .await?
            .json()
            .await
            .map_err(|e| http_err("generateUploadObjectUrls", &url, &e))?;
        let Some(obj) = urls.object_urls.into_iter().next() else {
            return Err(AgentError::Http {
                step: "generateUploadObjectUrls",
                url,
                reason: "the answer has no objectUrls".into(),
                status: None,
            });
        };
        let put = self.client.put(&obj.signed_url).body(bytes).send().await;
        checked(
            "upload to the signed URL",
            obj.signed_url.split('?').next().unwrap_or_default(),
            put,
        )
        .await?;
        Ok(obj.path)
    }
}
