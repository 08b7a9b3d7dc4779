//! What Gooee's broker enforces, as an access policy for iot-sim's embedded broker: the API
//! token as the password of username `authorization`, and the topic table for such clients.
//! Every other client (other vendors' devices, the cloud sides on the plain listener) is not
//! this policy's business. Pure decisions.

use cloudkit::{AccessPolicy, Identity, Verdict};

use crate::protocol::{USERNAME, topics};

/// Gooee's broker rules.
#[derive(Debug, Clone)]
pub struct GooeePolicy {
    tokens: Vec<String>,
}

impl GooeePolicy {
    /// Accepts these API tokens.
    pub fn new(tokens: Vec<String>) -> Self {
        GooeePolicy { tokens }
    }

    fn is_gooee_client(who: &Identity) -> bool {
        who.username.as_deref() == Some(USERNAME)
    }
}

impl AccessPolicy for GooeePolicy {
    fn password(&self, username: &str, password: &[u8]) -> Verdict {
        if username != USERNAME {
            return Verdict::Abstain;
        }
        if self.tokens.iter().any(|t| t.as_bytes() == password) {
            Verdict::Allow
        } else {
            Verdict::Deny("the Gooee user API token is not valid".into())
        }
    }

    fn publish(&self, who: &Identity, topic: &str) -> Verdict {
        if !Self::is_gooee_client(who) {
            return Verdict::Abstain;
        }
        match topics::check_publish(topic) {
            Ok(()) => Verdict::Allow,
            Err(e) => Verdict::Deny(format!(
                "{} (Gooee's broker drops the connection)",
                e.reason()
            )),
        }
    }

    fn subscribe(&self, who: &Identity, filter: &str) -> Verdict {
        if !Self::is_gooee_client(who) {
            return Verdict::Abstain;
        }
        match topics::check_subscribe(filter) {
            Ok(()) => Verdict::Allow,
            Err(e) => Verdict::Deny(format!(
                "{} (Gooee's broker drops the connection)",
                e.reason()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudkit::ListenerKind;

    fn who(user: Option<&str>) -> Identity {
        Identity {
            listener: ListenerKind::TlsPassword,
            client_id: "c".into(),
            username: user.map(str::to_owned),
            cert_cn: None,
        }
    }

    #[test]
    fn token_and_table_apply_to_authorization_only() {
        let p = GooeePolicy::new(vec!["tok".into()]);
        assert_eq!(p.password("authorization", b"tok"), Verdict::Allow);
        assert!(matches!(
            p.password("authorization", b"nope"),
            Verdict::Deny(_)
        ));
        assert_eq!(p.password("edgewire", b"x"), Verdict::Abstain);
        let g = who(Some("authorization"));
        assert_eq!(p.publish(&g, "devices/d/meta"), Verdict::Allow);
        assert!(matches!(
            p.publish(&g, "devices/d/meta/als"),
            Verdict::Deny(_)
        ));
        assert!(matches!(p.subscribe(&g, "#"), Verdict::Deny(_)));
        assert_eq!(p.subscribe(&g, "devices/d/meta/rejected"), Verdict::Allow);
        assert_eq!(p.publish(&who(None), "anything"), Verdict::Abstain);
        assert_eq!(p.subscribe(&who(Some("edgewire")), "#"), Verdict::Abstain);
    }
}
