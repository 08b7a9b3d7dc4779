//! The agent access tokens the platform side issues on `i/agm_v3/tr`: JWTs signed HS256 with a
//! key only this process knows, and their verification by the HTTPS endpoints. Real tokens are
//! RS256 from the tenant's identity service; agents treat them as opaque either way. Time is an
//! argument.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// The claims of an agent token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// The agent's client id.
    pub sub: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expires (Unix seconds).
    pub exp: i64,
    /// Token id.
    pub jti: String,
    /// Tenant.
    pub ten: String,
    /// Client id.
    pub client_id: String,
    /// Scopes.
    pub scope: Vec<String>,
}

/// The scope of agent tokens.
pub const AGENT_SCOPE: &str = "mdsp:core:DefaultAgent";

/// Why a presented token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("the bearer token is not a JWT")]
    Malformed,
    /// Signature does not verify.
    #[error("the bearer token's signature does not verify (not issued by this platform)")]
    Signature,
    /// Expired or not yet valid.
    #[error("the bearer token expired at {exp} (now {now})")]
    Expired {
        /// Expiry.
        exp: i64,
        /// Now.
        now: i64,
    },
}

/// Signs and verifies tokens with one HMAC key.
pub struct Signer {
    key: hmac::Key,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// A signer with this secret.
    pub fn new(secret: &[u8]) -> Self {
        Signer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A signer with a random secret.
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret).is_err() {
            for b in &mut secret {
                *b = fastrand::u8(..);
            }
        }
        Signer::new(&secret)
    }

    /// The compact JWT for `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(crate::protocol::encode(claims));
        let input = format!("{header}.{body}");
        let sig = URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, input.as_bytes()).as_ref());
        format!("{input}.{sig}")
    }

    /// The claims of `token` if it is ours and valid at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(b), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
        hmac::verify(&self.key, format!("{h}.{b}").as_bytes(), &sig)
            .map_err(|_| JwtError::Signature)?;
        let body = URL_SAFE_NO_PAD.decode(b).map_err(|_| JwtError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&body).map_err(|_| JwtError::Malformed)?;
        if now >= claims.exp || now < claims.nbf {
            return Err(JwtError::Expired {
                exp: claims.exp,
                now,
            });
        }
        Ok(claims)
    }

    /// A keyed digest of `data` as 32 hex digits (upload tickets, asset ids).
    pub fn digest(&self, data: &str) -> String {
        let tag = hmac::sign(&self.key, data.as_bytes());
        hex::encode(&tag.as_ref()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            iss: "i".into(),
            sub: "t_a".into(),
            aud: vec![],
            iat: 0,
            nbf: 0,
            exp,
            jti: "j".into(),
            ten: "t".into(),
            client_id: "t_a".into(),
            scope: vec![AGENT_SCOPE.into()],
        }
    }

    #[test]
    fn sign_then_verify_and_refuse_others() {
        let s = Signer::new(b"k");
        let t = s.sign(&claims(100));
        assert_eq!(s.verify(&t, 50).unwrap(), claims(100));
        assert_eq!(
            s.verify(&t, 100),
            Err(JwtError::Expired { exp: 100, now: 100 })
        );
        assert_eq!(
            Signer::new(b"other").verify(&t, 50),
            Err(JwtError::Signature)
        );
        let parts: Vec<&str> = t.split('.').collect();
        let longer = URL_SAFE_NO_PAD.encode(crate::protocol::encode(&claims(10_000)));
        let forged = format!("{}.{longer}.{}", parts[0], parts[2]);
        assert_eq!(s.verify(&forged, 50), Err(JwtError::Signature));
    }

    proptest! {
        #[test]
        fn hostile_tokens_never_panic(t in "\\PC{0,120}") {
            let _ = Signer::new(b"k").verify(&t, 0);
        }
    }
}
