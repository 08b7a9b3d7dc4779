//! SharedAccessSignature tokens, the password of IoTConnect's key-based auth types (`at` 1: the
//! platform sends one in `sync`'s `p.pwd`; `at` 5: the device signs one with its primary key).
//! Format: `SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>`, where the
//! signature is base64(HMAC-SHA256(base64-decoded key, url-encoded resource + "\n" + expiry)).
//! Pure: the current time is an argument.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;
use url::form_urlencoded;

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasToken {
    /// Resource (`sr`), decoded.
    pub resource: String,
    /// Expiry, seconds since the Unix epoch (`se`).
    pub expiry: u64,
}

/// Why a token could not be made or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasError {
    /// The device key is not base64.
    #[error("the device primary key is not base64 ({0})")]
    Key(String),
    /// The token is not `SharedAccessSignature sr=..&sig=..&se=..`.
    #[error("not a SharedAccessSignature token: {0}")]
    Malformed(String),
    /// Wrong signature.
    #[error("the SharedAccessSignature signature does not match the device key")]
    BadSignature,
    /// Expired.
    #[error("the SharedAccessSignature expired at {expiry} (now {now})")]
    Expired {
        /// `se`.
        expiry: u64,
        /// Now.
        now: u64,
    },
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn key(key_b64: &str) -> Result<hmac::Key, SasError> {
    let raw = STANDARD
        .decode(key_b64.trim())
        .map_err(|e| SasError::Key(e.to_string()))?;
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &raw))
}

fn string_to_sign(resource: &str, expiry: u64) -> String {
    format!("{}\n{expiry}", encode(resource))
}

/// The primary key of device `unique_id` in a group whose key is `group_key_b64`, as Azure DPS
/// derives a group enrolment's device keys: base64(HMAC-SHA256(group key, unique id)). A fleet
/// of key devices then needs one secret, not one per device.
pub fn derive_device_key(group_key_b64: &str, unique_id: &str) -> Result<String, SasError> {
    let tag = hmac::sign(&key(group_key_b64)?, unique_id.as_bytes());
    Ok(STANDARD.encode(tag.as_ref()))
}

/// Signs a token for `resource` valid until `expiry` (Unix seconds).
pub fn build(resource: &str, key_b64: &str, expiry: u64) -> Result<String, SasError> {
    let tag = hmac::sign(&key(key_b64)?, string_to_sign(resource, expiry).as_bytes());
    let sig = STANDARD.encode(tag.as_ref());
    Ok(format!(
        "SharedAccessSignature sr={}&sig={}&se={expiry}",
        encode(resource),
        encode(&sig)
    ))
}

/// Builds a token whose HMAC is made by `sign` over the string to sign: for a key that never
/// leaves a TPM (auth type 4). `policy` adds `skn` (DPS wants `registration`).
pub fn build_signed<E>(
    resource: &str,
    expiry: u64,
    policy: Option<&str>,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<String, E> {
    let tag = sign(string_to_sign(resource, expiry).as_bytes())?;
    let sig = STANDARD.encode(tag);
    let mut token = format!(
        "SharedAccessSignature sr={}&sig={}&se={expiry}",
        encode(resource),
        encode(&sig)
    );
    if let Some(p) = policy {
        token.push_str("&skn=");
        token.push_str(&encode(p));
    }
    Ok(token)
}

/// Reads a token's fields without checking the signature.
pub fn parse(token: &str) -> Result<(SasToken, String), SasError> {
    let rest = token
        .trim()
        .strip_prefix("SharedAccessSignature ")
        .ok_or_else(|| {
            SasError::Malformed("it does not start with `SharedAccessSignature `".into())
        })?;
    let (mut sr, mut sig, mut se) = (None, None, None);
    for (k, v) in form_urlencoded::parse(rest.as_bytes()) {
        match k.as_ref() {
            "sr" => sr = Some(v.into_owned()),
            "sig" => sig = Some(v.into_owned()),
            "se" => se = Some(v.into_owned()),
            _ => {}
        }
    }
    let missing = |f: &str| SasError::Malformed(format!("field `{f}` is missing"));
    let resource = sr.ok_or_else(|| missing("sr"))?;
    let sig = sig.ok_or_else(|| missing("sig"))?;
    let expiry = se
        .ok_or_else(|| missing("se"))?
        .parse::<u64>()
        .map_err(|_| SasError::Malformed("field `se` is not a number of seconds".into()))?;
    Ok((SasToken { resource, expiry }, sig))
}

/// Checks a token against the device key at `now` (Unix seconds).
pub fn verify(token: &str, key_b64: &str, now: u64) -> Result<SasToken, SasError> {
    let (t, sig) = parse(token)?;
    let sig = STANDARD
        .decode(sig.trim())
        .map_err(|_| SasError::BadSignature)?;
    hmac::verify(
        &key(key_b64)?,
        string_to_sign(&t.resource, t.expiry).as_bytes(),
        &sig,
    )
    .map_err(|_| SasError::BadSignature)?;
    if t.expiry <= now {
        return Err(SasError::Expired {
            expiry: t.expiry,
            now,
        });
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "c2VjcmV0LWRldmljZS1rZXktMzItYnl0ZXMtbG9uZyE=";

    #[test]
    fn device_keys_are_derived_as_dps_group_enrolments_derive_them() {
        // openssl/python: base64(HMAC-SHA256(b"edgewire group key", b"iotc-fleet-7")).
        let k = derive_device_key("ZWRnZXdpcmUgZ3JvdXAga2V5", "iotc-fleet-7").unwrap();
        assert_eq!(k, "n2s51a9Yoyr/QQncwiKqSfMZwaNDNPHt81KDBauWtjU=");
        assert!(matches!(
            derive_device_key("not base64!", "x"),
            Err(SasError::Key(_))
        ));
    }

    #[test]
    fn build_then_verify() {
        let t = build("hub.example.net/devices/dev1", KEY, 2_000).unwrap();
        assert!(t.starts_with("SharedAccessSignature sr=hub.example.net%2Fdevices%2Fdev1&sig="));
        let ok = verify(&t, KEY, 1_000).unwrap();
        assert_eq!(ok.resource, "hub.example.net/devices/dev1");
        assert_eq!(ok.expiry, 2_000);
        assert_eq!(
            verify(&t, KEY, 2_000),
            Err(SasError::Expired {
                expiry: 2_000,
                now: 2_000
            })
        );
        let other = STANDARD.encode(b"another key");
        assert_eq!(verify(&t, &other, 1_000), Err(SasError::BadSignature));
        let tampered = t.replace("dev1", "dev2");
        assert_eq!(verify(&tampered, KEY, 1_000), Err(SasError::BadSignature));
    }

    #[test]
    fn malformed_tokens_say_why() {
        assert!(matches!(parse("Bearer x"), Err(SasError::Malformed(_))));
        let e = parse("SharedAccessSignature sr=a&sig=b").unwrap_err();
        assert!(e.to_string().contains("`se`"), "{e}");
        assert!(matches!(build("r", "***", 1), Err(SasError::Key(_))));
    }
}
