//! The broker rules of MindConnect as the embedded broker enforces them on its `mtls` listener:
//! a client whose id is `<tenant>_<certificate CN>` is a MindConnect agent and may publish only
//! under `tc/<tenant>/<clientId>/o/` and subscribe only under `tc/<tenant>/<clientId>/i/`; a
//! client presenting one of our agents' certificates with any other id is refused. Everyone
//! else is not MindConnect's business (abstain), so other vendors are unaffected.

use cloudkit::{AccessPolicy, Identity, ListenerKind, Verdict};

use crate::protocol::topic::{Direction, within_namespace};

/// MindConnect's access rules.
#[derive(Debug, Clone, Default)]
pub struct MindConnectPolicy {
    device_names: Vec<String>,
}

impl MindConnectPolicy {
    /// Rules for agents; `device_names` are the certificate CNs issued for MindConnect agents.
    pub fn new(device_names: Vec<String>) -> Self {
        MindConnectPolicy { device_names }
    }

    /// `(tenant, client id)` when `who` is a MindConnect agent by the `<tenant>_<CN>` rule.
    fn agent(who: &Identity) -> Option<(&str, &str)> {
        if who.listener != ListenerKind::Mtls {
            return None;
        }
        let cn = who.cert_cn.as_deref()?;
        let tenant = who.client_id.strip_suffix(cn)?.strip_suffix('_')?;
        (!tenant.is_empty() && !tenant.contains(['/', '+', '#']))
            .then_some((tenant, who.client_id.as_str()))
    }

    fn check(who: &Identity, topic: &str, dir: Direction, verb: &str) -> Verdict {
        match Self::agent(who) {
            Some((tenant, client)) if within_namespace(topic, tenant, client, dir) => {
                Verdict::Allow
            }
            Some((tenant, client)) => Verdict::Deny(format!(
                "MindConnect agent `{client}` may only {verb} under `tc/{tenant}/{client}/{}/…`, not `{topic}`",
                dir.level()
            )),
            None => Verdict::Abstain,
        }
    }
}

impl AccessPolicy for MindConnectPolicy {
    fn connect(&self, who: &Identity) -> Verdict {
        if Self::agent(who).is_some() {
            return Verdict::Allow;
        }
        match who.cert_cn.as_deref() {
            Some(cn)
                if who.listener == ListenerKind::Mtls
                    && self.device_names.iter().any(|d| d == cn) =>
            {
                Verdict::Deny(format!(
                    "client id `{}` does not match the certificate: MindConnect expects `<tenant>_{cn}`",
                    who.client_id
                ))
            }
            _ => Verdict::Abstain,
        }
    }

    fn publish(&self, who: &Identity, topic: &str) -> Verdict {
        // A custom topic (the custom data format) names the agent's client id as a level;
        // whether it was registered is the platform side's business (it drops the rest).
        if let Some((_, client)) = Self::agent(who)
            && crate::protocol::custom::check_topic(topic, client).is_ok()
        {
            return Verdict::Allow;
        }
        Self::check(who, topic, Direction::Out, "publish")
    }

    fn subscribe(&self, who: &Identity, filter: &str) -> Verdict {
        Self::check(who, filter, Direction::In, "subscribe")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(client: &str, cn: Option<&str>, listener: ListenerKind) -> Identity {
        Identity {
            listener,
            client_id: client.into(),
            username: None,
            cert_cn: cn.map(Into::into),
        }
    }

    #[test]
    fn agents_stay_in_their_namespace() {
        let p = MindConnectPolicy::new(vec!["mqttagent".into()]);
        let a = who("t_mqttagent", Some("mqttagent"), ListenerKind::Mtls);
        assert_eq!(p.connect(&a), Verdict::Allow);
        assert_eq!(p.publish(&a, "tc/t/t_mqttagent/o/mc_v3/ts"), Verdict::Allow);
        assert_eq!(p.subscribe(&a, "tc/t/t_mqttagent/i/#"), Verdict::Allow);
        assert!(matches!(
            p.publish(&a, "tc/t/t_other/o/mc_v3/ts"),
            Verdict::Deny(_)
        ));
        assert!(
            matches!(
                p.publish(&a, "tc/t/t_mqttagent/i/cmd_v3/c"),
                Verdict::Deny(_)
            ),
            "agents cannot fake platform messages"
        );
        assert!(matches!(p.subscribe(&a, "tc/#"), Verdict::Deny(_)));
        assert_eq!(
            p.publish(&a, "clouddatastore/t_mqttagent/ts"),
            Verdict::Allow,
            "its custom topic"
        );
        assert!(matches!(
            p.publish(&a, "clouddatastore/t_other/ts"),
            Verdict::Deny(_)
        ));
    }

    #[test]
    fn a_wrong_client_id_for_an_agent_certificate_is_refused() {
        let p = MindConnectPolicy::new(vec!["mqttagent".into()]);
        match p.connect(&who("mqttagent", Some("mqttagent"), ListenerKind::Mtls)) {
            Verdict::Deny(r) => assert!(r.contains("`<tenant>_mqttagent`"), "{r}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn other_clients_are_not_our_business() {
        let p = MindConnectPolicy::new(vec!["mqttagent".into()]);
        let demo = who("demo-mtls", Some("demo-device"), ListenerKind::Mtls);
        assert_eq!(p.connect(&demo), Verdict::Abstain);
        assert_eq!(p.publish(&demo, "demo/mtls/reading"), Verdict::Abstain);
        let plain = who("t_mqttagent", None, ListenerKind::Plain);
        assert_eq!(
            p.publish(&plain, "tc/t/t_mqttagent/i/cmd_v3/c"),
            Verdict::Abstain
        );
        assert_eq!(
            p.connect(&who("_x", Some("x"), ListenerKind::Mtls)),
            Verdict::Abstain
        );
    }
}
