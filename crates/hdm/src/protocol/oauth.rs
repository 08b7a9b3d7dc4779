//! The OAuth 2.0 Device Authorization Grant (RFC 8628) as gen 3 runs it against the Zaikio
//! directory (the HDM IoT reference client, <https://github.com/hdm-master/iot-reference-client>, `onboarding/`): `POST {DIRECTORY_HOST}/oauth/device_authorizations/authorize?
//! client_id=…&scope=…` answers `device_code`, `user_code`, `verification_uri[_complete]`,
//! `expires_in`, `interval`; the device polls `POST {DIRECTORY_HOST}/oauth/access_token` with
//! `grant_type=urn:ietf:params:oauth:grant-type:device_code` until the person approved, and later
//! refreshes with `grant_type=refresh_token`. Both directions of every body, the polling rules as
//! a state machine (time is an argument) and the stored token (`oauth_token.json`). Pure.
//!
//! Polling follows RFC 8628 §3.5: wait `interval` seconds (5 when absent) between requests;
//! `slow_down` adds 5 seconds to it for this and every later request (the reference client
//! doubled it instead); `authorization_pending` keeps waiting; `expired_token`, `access_denied`
//! or the code's `expires_in` passing end the flow.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use transport::auth::{ExposeSecret, Secret};

use crate::protocol::json::{FieldError, Fields};

/// Path of the device authorization request under `DIRECTORY_HOST`.
pub const AUTHORIZE_PATH: &str = "oauth/device_authorizations/authorize";
/// Path of the token endpoint under `DIRECTORY_HOST`.
pub const TOKEN_PATH: &str = "oauth/access_token";
/// `grant_type` of the device flow's polls.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// `grant_type` of a refresh.
pub const REFRESH_GRANT: &str = "refresh_token";
/// The poll interval when the server names none (RFC 8628 §3.2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// What `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// A token is refreshed when it expires within this margin.
pub const REFRESH_MARGIN_S: i64 = 60;

const WHAT_AUTH: &str = "device authorization response";
const WHAT_TOKEN: &str = "token response";

/// The answer to the device authorization request.
#[derive(Debug, Clone)]
pub struct DeviceAuthorization {
    /// The code the device polls with (a credential: never shown).
    pub device_code: Secret,
    /// The code the person enters.
    pub user_code: String,
    /// Where the person goes.
    pub verification_uri: String,
    /// The same with the code filled in, if the server offers it.
    pub verification_uri_complete: Option<String>,
    /// Seconds the codes are valid.
    pub expires_in: u64,
    /// Seconds between polls.
    pub interval: Option<u64>,
}

fn seconds(f: &Fields<'_>, key: &str, required: bool) -> Result<Option<u64>, FieldError> {
    const SECS: &str = "a number of seconds";
    match f.get(key) {
        Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64()),
        Some(Value::String(s)) if s.trim().parse::<u64>().is_ok() => Ok(s.trim().parse().ok()),
        None | Some(Value::Null) if !required => Ok(None),
        None => Err(f.error(key, SECS, "nothing (missing)")),
        Some(v) => Err(f.error(key, SECS, crate::protocol::json::kind(v))),
    }
}

impl DeviceAuthorization {
    /// Decodes and checks the body.
    pub fn decode(body: &[u8]) -> Result<Self, FieldError> {
        const URL: &str = "an https:// URL";
        let root = Fields::parse(WHAT_AUTH, body)?;
        let f = Fields::new(WHAT_AUTH, "", &root);
        let user_code = f.str("user_code", "the code to enter")?;
        if user_code.is_empty() || user_code.len() > 64 || user_code.chars().any(char::is_control) {
            return Err(f.error("user_code", "a short code", "an unusable code"));
        }
        Ok(DeviceAuthorization {
            device_code: f.str("device_code", "a device code")?.into(),
            user_code: user_code.to_owned(),
            verification_uri: f.str("verification_uri", URL)?.to_owned(),
            verification_uri_complete: f
                .opt_str("verification_uri_complete", URL)?
                .map(str::to_owned),
            expires_in: seconds(&f, "expires_in", true)?.unwrap_or_default(),
            interval: seconds(&f, "interval", false)?,
        })
    }

    /// Encodes the body (the cloud side).
    pub fn encode(&self) -> Vec<u8> {
        json!({
            "device_code": self.device_code.expose_secret(),
            "user_code": self.user_code,
            "verification_uri": self.verification_uri,
            "verification_uri_complete": self.verification_uri_complete,
            "expires_in": self.expires_in,
            "interval": self.interval,
        })
        .to_string()
        .into_bytes()
    }
}

/// A successful token response.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// The Bearer token.
    pub access_token: Secret,
    /// The refresh token, if issued.
    pub refresh_token: Option<Secret>,
    /// Seconds until `access_token` expires.
    pub expires_in: Option<u64>,
    /// Granted scopes.
    pub scope: Option<String>,
}

impl TokenGrant {
    /// Decodes and checks the body.
    pub fn decode(body: &[u8]) -> Result<Self, FieldError> {
        let root = Fields::parse(WHAT_TOKEN, body)?;
        let f = Fields::new(WHAT_TOKEN, "", &root);
        let token = f.str("access_token", "an access token")?;
        if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
            return Err(f.error(
                "access_token",
                "an access token",
                "an unusable value (not shown)",
            ));
        }
        if let Some(t) = f.opt_str("token_type", "`Bearer`")?
            && !t.eq_ignore_ascii_case("bearer")
        {
            return Err(f.error("token_type", "`Bearer`", format!("`{t}`")));
        }
        Ok(TokenGrant {
            access_token: token.into(),
            refresh_token: f
                .opt_str("refresh_token", "a refresh token")?
                .map(Into::into),
            expires_in: seconds(&f, "expires_in", false)?,
            scope: f.opt_str("scope", "a string")?.map(str::to_owned),
        })
    }

    /// Encodes the body (the cloud side).
    pub fn encode(&self) -> Vec<u8> {
        json!({
            "access_token": self.access_token.expose_secret(),
            "token_type": "bearer",
            "refresh_token": self.refresh_token.as_ref().map(ExposeSecret::expose_secret),
            "expires_in": self.expires_in,
            "scope": self.scope,
        })
        .to_string()
        .into_bytes()
    }
}

/// An error answer of the token endpoint (`{"error": …, "error_description": …}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The code, e.g. `authorization_pending`.
    pub error: String,
    /// The server's explanation.
    pub description: Option<String>,
}

impl OAuthError {
    /// Decodes an error body; `None` when it is not one.
    pub fn decode(body: &[u8]) -> Option<Self> {
        let v: Value = serde_json::from_slice(body).ok()?;
        Some(OAuthError {
            error: v.get("error")?.as_str()?.to_owned(),
            description: v
                .get("error_description")
                .and_then(Value::as_str)
                .map(|s| s.chars().take(200).collect()),
        })
    }

    /// Encodes an error body (the cloud side).
    pub fn encode(error: &str, description: &str) -> Vec<u8> {
        json!({"error": error, "error_description": description})
            .to_string()
            .into_bytes()
    }
}

/// Why the device flow ended without a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowEnd {
    /// The codes expired before the person approved.
    #[error("the device code expired before it was approved; run provision again for a new code")]
    Expired,
    /// The person (or the directory) refused.
    #[error("the authorization was refused (access_denied){}", .0.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Denied(Option<String>),
    /// Another error.
    #[error("the token endpoint answered `{error}`{}", .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Failed {
        /// The code.
        error: String,
        /// The server's explanation.
        description: Option<String>,
    },
}

/// The polling rules: when to poll next, and what an error answer means.
#[derive(Debug, Clone)]
pub struct DevicePoll {
    interval: Duration,
    expires_at: Instant,
    next_at: Instant,
    polls: u32,
}

impl DevicePoll {
    /// Starts polling for `auth`, received at `now`.
    pub fn new(auth: &DeviceAuthorization, now: Instant) -> Self {
        let interval = auth.interval.map_or(DEFAULT_INTERVAL, Duration::from_secs);
        DevicePoll {
            interval,
            expires_at: now + Duration::from_secs(auth.expires_in),
            next_at: now + interval,
            polls: 0,
        }
    }

    /// When to send the next poll; `Err` once the codes have expired.
    pub fn next_at(&self) -> Result<Instant, FlowEnd> {
        if self.next_at >= self.expires_at {
            Err(FlowEnd::Expired)
        } else {
            Ok(self.next_at)
        }
    }

    /// The current interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Polls sent so far.
    pub fn polls(&self) -> u32 {
        self.polls
    }

    /// Takes the error answer to a poll sent at `sent`: `Ok` to poll again (see
    /// [`DevicePoll::next_at`]), `Err` when the flow is over.
    pub fn on_error(&mut self, e: &OAuthError, sent: Instant) -> Result<(), FlowEnd> {
        self.polls += 1;
        match e.error.as_str() {
            "authorization_pending" => {}
            "slow_down" => self.interval += SLOW_DOWN_STEP,
            "expired_token" => return Err(FlowEnd::Expired),
            "access_denied" => return Err(FlowEnd::Denied(e.description.clone())),
            other => {
                return Err(FlowEnd::Failed {
                    error: other.to_owned(),
                    description: e.description.clone(),
                });
            }
        }
        self.next_at = sent + self.interval;
        Ok(())
    }
}

/// `application/x-www-form-urlencoded` of `pairs` (request bodies and queries).
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The pairs of a form body or query (the cloud side).
pub fn parse_form(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

/// The body of a device-code poll.
pub fn device_token_form(client_id: &str, device_code: &Secret) -> Vec<u8> {
    form(&[
        ("grant_type", DEVICE_CODE_GRANT),
        ("device_code", device_code.expose_secret()),
        ("client_id", client_id),
    ])
    .into_bytes()
}

/// The body of a refresh.
pub fn refresh_form(client_id: &str, refresh_token: &Secret) -> Vec<u8> {
    form(&[
        ("grant_type", REFRESH_GRANT),
        ("refresh_token", refresh_token.expose_secret()),
        ("client_id", client_id),
    ])
    .into_bytes()
}

/// `oauth_token.json`: the tokens of one directory and client, kept 0600 between runs.
#[derive(Debug, Clone)]
pub struct StoredToken {
    /// The Bearer token.
    pub access_token: Secret,
    /// The refresh token.
    pub refresh_token: Option<Secret>,
    /// When `access_token` expires (Unix seconds), if known.
    pub expires_at: Option<i64>,
    /// `DIRECTORY_HOST` it came from.
    pub directory_host: String,
    /// `DIRECTORY_OAUTH_CLIENT_ID` it was issued to.
    pub client_id: String,
}

const WHAT_STORED: &str = "oauth_token.json";

impl StoredToken {
    /// The token of a grant received at `now` (Unix seconds); a refresh that issues no new
    /// refresh token keeps `previous_refresh`.
    pub fn from_grant(
        grant: TokenGrant,
        now: i64,
        directory_host: &str,
        client_id: &str,
        previous_refresh: Option<Secret>,
    ) -> Self {
        StoredToken {
            access_token: grant.access_token,
            refresh_token: grant.refresh_token.or(previous_refresh),
            expires_at: grant
                .expires_in
                .map(|s| now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX))),
            directory_host: directory_host.to_owned(),
            client_id: client_id.to_owned(),
        }
    }

    /// Whether the access token can still be used at `now` (it does not expire within
    /// [`REFRESH_MARGIN_S`]).
    pub fn fresh(&self, now: i64) -> bool {
        self.expires_at
            .is_none_or(|t| t > now.saturating_add(REFRESH_MARGIN_S))
    }

    /// Whether it belongs to this directory and client.
    pub fn belongs_to(&self, directory_host: &str, client_id: &str) -> bool {
        self.directory_host == directory_host && self.client_id == client_id
    }

    /// The file's content.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&json!({
            "access_token": self.access_token.expose_secret(),
            "refresh_token": self.refresh_token.as_ref().map(ExposeSecret::expose_secret),
            "expires_at": self.expires_at,
            "directory_host": self.directory_host,
            "client_id": self.client_id,
        }))
        .unwrap_or_default()
    }

    /// Reads the file's content.
    pub fn decode(body: &[u8]) -> Result<Self, FieldError> {
        let root = Fields::parse(WHAT_STORED, body)?;
        let f = Fields::new(WHAT_STORED, "", &root);
        let expires_at = match f.get("expires_at") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
            Some(v) => {
                return Err(f.error("expires_at", "Unix seconds", crate::protocol::json::kind(v)));
            }
        };
        Ok(StoredToken {
            access_token: f.str("access_token", "a token")?.into(),
            refresh_token: f.opt_str("refresh_token", "a token")?.map(Into::into),
            expires_at,
            directory_host: f.str("directory_host", "a URL")?.to_owned(),
            client_id: f.str("client_id", "a client id")?.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(interval: Option<u64>, expires_in: u64) -> DeviceAuthorization {
        DeviceAuthorization {
            device_code: "dc-secret".into(),
            user_code: "WDJB-MJHT".into(),
            verification_uri: "https://directory.sandbox.zaikio.com/device".into(),
            verification_uri_complete: None,
            expires_in,
            interval,
        }
    }

    fn err(code: &str) -> OAuthError {
        OAuthError {
            error: code.into(),
            description: None,
        }
    }

    #[test]
    fn polls_at_the_servers_interval_and_slow_down_adds_five_seconds() {
        let t0 = Instant::now();
        let mut p = DevicePoll::new(&auth(Some(2), 60), t0);
        assert_eq!(p.next_at().unwrap(), t0 + Duration::from_secs(2));
        let sent = t0 + Duration::from_secs(2);
        p.on_error(&err("authorization_pending"), sent).unwrap();
        assert_eq!(p.next_at().unwrap(), sent + Duration::from_secs(2));
        let sent = sent + Duration::from_secs(2);
        p.on_error(&err("slow_down"), sent).unwrap();
        assert_eq!(p.interval(), Duration::from_secs(7));
        assert_eq!(p.next_at().unwrap(), sent + Duration::from_secs(7));
        let sent = sent + Duration::from_secs(7);
        p.on_error(&err("authorization_pending"), sent).unwrap();
        assert_eq!(
            p.next_at().unwrap(),
            sent + Duration::from_secs(7),
            "slow_down stays"
        );
        assert_eq!(p.polls(), 3);
        let d = DevicePoll::new(&auth(None, 60), t0);
        assert_eq!(d.interval(), DEFAULT_INTERVAL);
    }

    #[test]
    fn the_flow_ends_on_expiry_denial_and_unknown_errors() {
        let t0 = Instant::now();
        let mut p = DevicePoll::new(&auth(Some(5), 12), t0);
        p.on_error(&err("authorization_pending"), t0 + Duration::from_secs(5))
            .unwrap();
        p.on_error(&err("authorization_pending"), t0 + Duration::from_secs(10))
            .unwrap();
        assert_eq!(p.next_at(), Err(FlowEnd::Expired));
        let mut p = DevicePoll::new(&auth(Some(1), 60), t0);
        assert_eq!(p.on_error(&err("expired_token"), t0), Err(FlowEnd::Expired));
        let denied = OAuthError {
            error: "access_denied".into(),
            description: Some("user said no".into()),
        };
        let e = p.on_error(&denied, t0).unwrap_err();
        assert!(e.to_string().contains("user said no"), "{e}");
        assert!(matches!(
            p.on_error(&err("invalid_client"), t0),
            Err(FlowEnd::Failed { .. })
        ));
    }

    #[test]
    #[allow(clippy::many_single_char_names)]
    fn bodies_round_trip_and_secrets_stay_hidden() {
        let a = auth(Some(5), 900);
        let d = DeviceAuthorization::decode(&a.encode()).unwrap();
        assert_eq!(d.device_code.expose_secret(), "dc-secret");
        assert_eq!((d.user_code.as_str(), d.interval), ("WDJB-MJHT", Some(5)));
        assert!(!format!("{d:?}").contains("dc-secret"));
        let e = DeviceAuthorization::decode(
            br#"{"device_code":"x","user_code":"u","verification_uri":"https://v"}"#,
        )
        .unwrap_err();
        assert_eq!(e.field, "expires_in");

        let g = TokenGrant {
            access_token: "at-1".into(),
            refresh_token: Some("rt-1".into()),
            expires_in: Some(3600),
            scope: Some("Org.x.r".into()),
        };
        let back = TokenGrant::decode(&g.encode()).unwrap();
        assert_eq!(back.access_token.expose_secret(), "at-1");
        assert_eq!(back.expires_in, Some(3600));
        assert!(!format!("{back:?}").contains("at-1"));
        let e = TokenGrant::decode(br#"{"access_token":"a","token_type":"mac"}"#).unwrap_err();
        assert_eq!(e.field, "token_type");

        let s = StoredToken::from_grant(back, 1_000, "https://d", "cid", None);
        assert_eq!(s.expires_at, Some(4_600));
        assert!(s.fresh(4_500) && !s.fresh(4_550));
        let s2 = StoredToken::decode(&s.encode()).unwrap();
        assert_eq!(s2.refresh_token.as_ref().unwrap().expose_secret(), "rt-1");
        assert!(s2.belongs_to("https://d", "cid") && !s2.belongs_to("https://e", "cid"));
        let kept = StoredToken::from_grant(
            TokenGrant {
                refresh_token: None,
                ..g
            },
            0,
            "https://d",
            "cid",
            Some("rt-old".into()),
        );
        assert_eq!(kept.refresh_token.unwrap().expose_secret(), "rt-old");

        let e = OAuthError::decode(&OAuthError::encode("slow_down", "poll less")).unwrap();
        assert_eq!(e.error, "slow_down");
        assert_eq!(OAuthError::decode(b"{}"), None);
        let f = parse_form(&device_token_form("cid", &"dc".into()));
        assert!(f.contains(&("grant_type".into(), DEVICE_CODE_GRANT.into())));
        assert!(f.contains(&("device_code".into(), "dc".into())));
    }

    proptest::proptest! {
        #[test]
        fn hostile_bodies_do_not_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = DeviceAuthorization::decode(&bytes);
            let _ = TokenGrant::decode(&bytes);
            let _ = OAuthError::decode(&bytes);
            let _ = StoredToken::decode(&bytes);
            let _ = parse_form(&bytes);
        }
    }
}
