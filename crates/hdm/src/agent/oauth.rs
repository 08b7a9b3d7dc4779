//! The gen-3 Bearer token from the Zaikio directory: the stored token while it is fresh, else a
//! refresh with the stored refresh token (before the access token expires), else the OAuth
//! device flow — the verification URL and user code reported (text and NDJSON), the token
//! endpoint polled at the server's interval (slower when told `slow_down`), the tokens stored
//! 0600 in `oauth_token.json`. The polling rules are `protocol::oauth`'s; this module only
//! waits and sends.

use reqwest::Method;
use transport::auth::Secret;

use crate::agent::api::{Api, Body, Credential};
use crate::agent::{AgentError, Event, Reporter, Store};
use crate::protocol::oauth::{
    AUTHORIZE_PATH, DeviceAuthorization, DevicePoll, OAuthError, StoredToken, TOKEN_PATH,
    TokenGrant, device_token_form, form, refresh_form,
};

/// Where to authorize.
#[derive(Debug, Clone)]
pub struct Directory<'a> {
    /// `DIRECTORY_HOST`, without a trailing `/`.
    pub host: &'a str,
    /// `DIRECTORY_OAUTH_CLIENT_ID`.
    pub client_id: &'a str,
    /// `SCOPE`.
    pub scope: &'a str,
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A usable Bearer token: stored, refreshed or newly authorized (see the module doc).
pub async fn bearer_token(
    api: &Api,
    dir: &Directory<'_>,
    store: &Store,
    reporter: &dyn Reporter,
) -> Result<Secret, AgentError> {
    let stored = store
        .token()
        .filter(|t| t.belongs_to(dir.host, dir.client_id));
    if let Some(t) = &stored
        && t.fresh(now_unix())
    {
        reporter.report(Event::Authorized { via: "stored" });
        return Ok(t.access_token.clone());
    }
    if let Some(refresh) = stored.and_then(|t| t.refresh_token) {
        if let Some(grant) = refresh_token(api, dir, &refresh).await? {
            let t =
                StoredToken::from_grant(grant, now_unix(), dir.host, dir.client_id, Some(refresh));
            store.write_token(&t)?;
            reporter.report(Event::Authorized { via: "refresh" });
            return Ok(t.access_token);
        }
        tracing::warn!(
            "the directory no longer accepts the stored refresh token; authorizing this device again"
        );
    }
    let grant = device_flow(api, dir, reporter).await?;
    let t = StoredToken::from_grant(grant, now_unix(), dir.host, dir.client_id, None);
    store.write_token(&t)?;
    reporter.report(Event::Authorized { via: "device flow" });
    Ok(t.access_token)
}

/// A refresh; `None` when the directory refuses the refresh token (`invalid_grant`).
async fn refresh_token(
    api: &Api,
    dir: &Directory<'_>,
    refresh: &Secret,
) -> Result<Option<TokenGrant>, AgentError> {
    let url = format!("{}/{TOKEN_PATH}", dir.host);
    let answer = api
        .raw(
            "the Zaikio token refresh",
            Method::POST,
            &url,
            Credential::None,
            Some(Body::form(refresh_form(dir.client_id, refresh))),
        )
        .await?;
    if (200..300).contains(&answer.status) {
        return Ok(Some(TokenGrant::decode(&answer.body)?));
    }
    match OAuthError::decode(&answer.body) {
        Some(e) if matches!(e.error.as_str(), "invalid_grant" | "expired_token") => Ok(None),
        e => Err(AgentError::HttpStatus {
            what: "the Zaikio token refresh",
            url,
            status: answer.status,
            message: e.map_or_else(|| "no OAuth error body".into(), |e| e.error),
        }),
    }
}

/// The device flow: authorize, report the code, poll until approved.
async fn device_flow(
    api: &Api,
    dir: &Directory<'_>,
    reporter: &dyn Reporter,
) -> Result<TokenGrant, AgentError> {
    let url = format!(
        "{}/{AUTHORIZE_PATH}?{}",
        dir.host,
        form(&[("client_id", dir.client_id), ("scope", dir.scope)])
    );
    let body = api
        .call(
            "the Zaikio device authorization",
            Method::POST,
            &url,
            Credential::None,
            None,
        )
        .await?;
    let auth = DeviceAuthorization::decode(&body)?;
    let what = "`verification_uri` of the device authorization response";
    api.check(&auth.verification_uri, what)?;
    if let Some(u) = &auth.verification_uri_complete {
        api.check(u, what)?;
    }
    reporter.report(Event::DeviceAuthorization {
        verification_uri: auth.verification_uri.clone(),
        verification_uri_complete: auth.verification_uri_complete.clone(),
        user_code: auth.user_code.clone(),
        expires_in: auth.expires_in,
    });
    let token_url = format!("{}/{TOKEN_PATH}", dir.host);
    let mut poll = DevicePoll::new(&auth, std::time::Instant::now());
    loop {
        let at = poll
            .next_at()
            .map_err(|e| AgentError::Authorization(e.to_string()))?;
        // The server's interval, not a guess: polling faster earns `slow_down`.
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        let sent = std::time::Instant::now();
        let answer = api
            .raw(
                "the Zaikio token poll",
                Method::POST,
                &token_url,
                Credential::None,
                Some(Body::form(device_token_form(
                    dir.client_id,
                    &auth.device_code,
                ))),
            )
            .await?;
        if (200..300).contains(&answer.status) {
            return Ok(TokenGrant::decode(&answer.body)?);
        }
        let Some(e) = OAuthError::decode(&answer.body) else {
            return Err(AgentError::HttpStatus {
                what: "the Zaikio token poll",
                url: token_url,
                status: answer.status,
                message: "the answer is not an OAuth error document".into(),
            });
        };
        if e.error == "slow_down" {
            tracing::info!(
                "the directory asked to poll more slowly; polling every {} s",
                (poll.interval() + crate::protocol::oauth::SLOW_DOWN_STEP).as_secs()
            );
        }
        poll.on_error(&e, sent)
            .map_err(|e| AgentError::Authorization(e.to_string()))?;
    }
}
