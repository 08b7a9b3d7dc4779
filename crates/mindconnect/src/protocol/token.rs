//! The agent access token (`o/agm_v3/t` → `i/agm_v3/tr`): the request is `{"id"}`, the answer
//! carries `data.access_token` (a JWT, role `mdsp:core:DefaultAgent`), `token_type`,
//! `expires_in` (3600 in the docs), `scope`, `jti`, `timestamp`. Pure; includes when to refresh.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::envelope::Reply;

/// `{"id": "<requestId>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// Request id.
    pub id: String,
}

/// `i/agm_v3/tr`.
pub type TokenReply = Reply<TokenData>;

/// The token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenData {
    /// The JWT.
    pub access_token: String,
    /// `Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Lifetime in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// Scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope: Vec<String>,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Issued at (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// The lifetime the docs give ("valid for one hour"), used when `expires_in` is absent.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

impl TokenData {
    /// The lifetime.
    pub fn lifetime(&self) -> Duration {
        self.expires_in
            .map_or(DEFAULT_LIFETIME, Duration::from_secs)
    }

    /// When, after receipt, to ask for a new one: at three quarters of the lifetime (the sample
    /// refreshes a one-hour token every 30 minutes), at least one second.
    pub fn refresh_after(&self) -> Duration {
        (self.lifetime() * 3 / 4).max(Duration::from_secs(1))
    }
}

impl std::fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}…({} chars)",
            self.0.chars().take(8).collect::<String>(),
            self.0.chars().count()
        )
    }
}

/// A token shown in logs: its first characters and length only.
pub struct Redacted<'a>(pub &'a str);

#[cfg(test)]
mod tests {
    use super::super::envelope::{decode, encode, strategies};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn documented_answer_decodes() {
        // protocols/mindconnect.md 3.9, from [D-tok].
        let r: TokenReply = decode("token response", br#"{"id":"01G16N3F","correlationId":"01G16N3F","requestId":"request1","data":{"access_token":"eyJhbGciOi","token_type":"Bearer","expires_in":3600,"scope":["mdsp:core:DefaultAgent"],"jti":"16c4229a","timestamp":1650564644}}"#).unwrap();
        assert_eq!(r.request_id.as_deref(), Some("request1"));
        assert_eq!(r.data.refresh_after(), Duration::from_secs(2700));
        assert_eq!(
            format!("{:?}", Redacted(&r.data.access_token)),
            "eyJhbGci…(10 chars)"
        );
    }

    #[test]
    fn refresh_is_never_immediate() {
        let d = TokenData {
            access_token: "x".into(),
            token_type: None,
            expires_in: Some(0),
            scope: vec![],
            jti: None,
            timestamp: None,
        };
        assert_eq!(d.refresh_after(), Duration::from_secs(1));
        assert_eq!(
            TokenData {
                expires_in: None,
                ..d
            }
            .lifetime(),
            DEFAULT_LIFETIME
        );
    }

    proptest! {
        #[test]
        fn roundtrips(id in strategies::text(), tok in strategies::text(), exp in proptest::option::of(any::<u64>()), ts in proptest::option::of(any::<i64>())) {
            let req = TokenRequest { id: id.clone() };
            prop_assert_eq!(decode::<TokenRequest>("token request", &encode(&req)).unwrap(), req);
            let r = TokenReply { id: "p".into(), correlation_id: None, request_id: Some(id), data: TokenData {
                access_token: tok, token_type: Some("Bearer".into()), expires_in: exp, scope: vec!["mdsp:core:DefaultAgent".into()], jti: None, timestamp: ts } };
            prop_assert_eq!(decode::<TokenReply>("token response", &encode(&r)).unwrap(), r);
        }

        #[test]
        fn hostile_input_never_panics(bytes in strategies::hostile()) {
            if let Ok(r) = decode::<TokenReply>("token response", &bytes) { let _ = r.data.refresh_after(); }
            let _ = decode::<TokenRequest>("token request", &bytes);
        }
    }
}
