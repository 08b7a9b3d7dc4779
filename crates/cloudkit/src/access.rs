//! Who may connect, publish and subscribe: the identity of a client as a broker sees it, and the
//! access policies vendors' cloud sides impose. Pure data and decisions; iot-sim's embedded
//! broker (`sim::broker`) applies them.

/// Which listener a client came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerKind {
    /// Plain MQTT or WebSocket on loopback (development tools, the cloud sides).
    Plain,
    /// TLS with a required client certificate.
    Mtls,
    /// TLS with username and password.
    TlsPassword,
    /// WebSocket inside TLS, with username and password.
    Wss,
}

/// A connected (or connecting) client as the access policies see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Listener.
    pub listener: ListenerKind,
    /// MQTT client id.
    pub client_id: String,
    /// MQTT username, if any.
    pub username: Option<String>,
    /// Common name of the verified client certificate (mTLS only).
    pub cert_cn: Option<String>,
}

/// An access policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed (unless another policy denies).
    Allow,
    /// Refused, with the reason logged by the broker.
    Deny(String),
    /// Not this policy's business.
    Abstain,
}

/// Rules a vendor's cloud side imposes on the broker (AWS-style certificate identities, Gooee's
/// topic table, tokens as passwords). Every method abstains by default.
pub trait AccessPolicy: Send + Sync {
    /// Checks a username/password that is not one of the broker's configured users.
    fn password(&self, _username: &str, _password: &[u8]) -> Verdict {
        Verdict::Abstain
    }
    /// Checks a connecting client.
    fn connect(&self, _who: &Identity) -> Verdict {
        Verdict::Abstain
    }
    /// Checks a publish.
    fn publish(&self, _who: &Identity, _topic: &str) -> Verdict {
        Verdict::Abstain
    }
    /// Checks a subscription.
    fn subscribe(&self, _who: &Identity, _filter: &str) -> Verdict {
        Verdict::Abstain
    }
}

/// Combines policy answers: any deny wins (with its reason); otherwise any allow; otherwise `default`.
pub fn combine(verdicts: impl Iterator<Item = Verdict>, default: bool) -> Result<bool, String> {
    let mut allowed = None;
    for v in verdicts {
        match v {
            Verdict::Deny(reason) => return Err(reason),
            Verdict::Allow => allowed = Some(true),
            Verdict::Abstain => {}
        }
    }
    Ok(allowed.unwrap_or(default))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_deny_wins_then_any_allow_then_the_default() {
        let v = |xs: Vec<Verdict>, d| combine(xs.into_iter(), d);
        assert_eq!(
            v(vec![Verdict::Allow, Verdict::Deny("no".into())], true),
            Err("no".into())
        );
        assert_eq!(v(vec![Verdict::Abstain, Verdict::Allow], false), Ok(true));
        assert_eq!(v(vec![Verdict::Abstain], false), Ok(false));
        assert_eq!(v(vec![], true), Ok(true));
    }
}
