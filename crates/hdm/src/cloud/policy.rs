//! AWS IoT's rules for HDM devices, as an access policy for iot-sim's embedded broker. A client
//! on the `mtls` listener whose certificate CN (or client id) is a thing this platform
//! provisioned, or starts with `hdm-`, is an HDM device: its client id must equal the thing
//! name from its certificate; it may publish to basic ingest and to its own shadow's request
//! topics and subscribe to its own shadow topics; nothing else under `$aws/`. On a gen-2+
//! basic-ingest topic `…/{orgId}/{clientId}` the last level must be its own thing name. With
//! the shadow switched off (as the HDM platform's policy had it), shadow topics are refused
//! like any other foreign topic. Nobody may
//! subscribe to `$aws/rules/...` (AWS: "Devices and rules can't subscribe to Basic Ingest
//! topics") except this platform's own rules engine, the cloud side's client. Everything else
//! is not this policy's business. Pure decisions over a shared set of thing names.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use cloudkit::{AccessPolicy, Identity, ListenerKind, Verdict};

use crate::protocol::topics::{
    RULES_PREFIX, ShadowTopic, THINGS_PREFIX, filter_may_match_rules, is_reserved, parse_ingest,
};

/// Prefix of the thing names this platform gives out.
pub const THING_PREFIX: &str = "hdm-";
/// Client id iot-sim gives this cloud side (`iot-sim-<name>`).
pub const RUNNER_CLIENT_ID: &str = "iot-sim-hdm";

/// The HDM/AWS access rules.
#[derive(Debug, Clone)]
pub struct HdmPolicy {
    things: Arc<RwLock<BTreeSet<String>>>,
    shadow: Arc<AtomicBool>,
}

impl Default for HdmPolicy {
    fn default() -> Self {
        HdmPolicy::new(Arc::default())
    }
}

impl HdmPolicy {
    /// A policy over the set of provisioned things (shared with the provisioning service).
    pub fn new(things: Arc<RwLock<BTreeSet<String>>>) -> Self {
        HdmPolicy::with_shadow_switch(things, Arc::new(AtomicBool::new(true)))
    }

    /// The same, with a switch that grants or refuses the shadow topics.
    pub fn with_shadow_switch(
        things: Arc<RwLock<BTreeSet<String>>>,
        shadow: Arc<AtomicBool>,
    ) -> Self {
        HdmPolicy { things, shadow }
    }

    fn shadow_enabled(&self) -> bool {
        self.shadow.load(Ordering::Relaxed)
    }

    fn known(&self, name: &str) -> bool {
        name.starts_with(THING_PREFIX)
            || self
                .things
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(name)
    }

    fn is_device(&self, who: &Identity) -> bool {
        who.listener == ListenerKind::Mtls
            && (who.cert_cn.as_deref().is_some_and(|cn| self.known(cn))
                || self.known(&who.client_id))
    }

    /// The thing a device may act as: its certificate's CN.
    fn thing(who: &Identity) -> &str {
        who.cert_cn.as_deref().unwrap_or(&who.client_id)
    }
}

impl AccessPolicy for HdmPolicy {
    fn connect(&self, who: &Identity) -> Verdict {
        if !self.is_device(who) {
            return Verdict::Abstain;
        }
        match &who.cert_cn {
            Some(cn) if *cn == who.client_id => Verdict::Allow,
            Some(cn) => Verdict::Deny(format!(
                "AWS IoT (HDM): client id `{}` must equal the thing name `{cn}` of the certificate",
                who.client_id
            )),
            None => Verdict::Deny("AWS IoT (HDM): a device certificate is required".into()),
        }
    }

    fn publish(&self, who: &Identity, topic: &str) -> Verdict {
        if !self.is_device(who) || !is_reserved(topic) {
            return Verdict::Abstain;
        }
        if topic.starts_with(RULES_PREFIX) {
            let own = parse_ingest(topic)
                .and_then(|t| t.rest)
                .and_then(|r| r.split('/').nth(1))
                .is_none_or(|client| client == Self::thing(who));
            return if own {
                Verdict::Allow
            } else {
                Verdict::Deny(format!(
                    "AWS IoT (HDM): thing `{}` may only publish telemetry under its own client id, not to `{topic}`",
                    Self::thing(who)
                ))
            };
        }
        match ShadowTopic::parse(topic) {
            Some(t) if t.thing == Self::thing(who) && !self.shadow_enabled() => Verdict::Deny(
                format!("AWS IoT (HDM): the policy grants no shadow topics; `{topic}` refused"),
            ),
            Some(t) if t.thing == Self::thing(who) && t.reply.is_none() => Verdict::Allow,
            Some(t) if t.thing == Self::thing(who) => Verdict::Deny(format!(
                "AWS IoT: `{topic}` is a shadow response topic; devices may only subscribe to it"
            )),
            _ => Verdict::Deny(format!(
                "AWS IoT (HDM): thing `{}` may not publish to `{topic}`",
                Self::thing(who)
            )),
        }
    }

    fn subscribe(&self, who: &Identity, filter: &str) -> Verdict {
        if filter_may_match_rules(filter) {
            // The platforms' own rules engines: iot-sim's cloud-side clients (`iot-sim-{name}`)
            // on the loopback listener — this one, and IoTConnect's AWS side, which reads its
            // devices' `$aws/rules/msg_d2c_*` topics.
            if who.listener == ListenerKind::Plain
                && (who.client_id == RUNNER_CLIENT_ID || who.client_id.starts_with("iot-sim-"))
            {
                return Verdict::Abstain;
            }
            return Verdict::Deny(format!(
                "AWS IoT: nobody can subscribe to basic-ingest topics ($aws/rules/...); `{filter}` refused"
            ));
        }
        if !self.is_device(who) || !is_reserved(filter) {
            return Verdict::Abstain;
        }
        let own = format!("{THINGS_PREFIX}{}/shadow/", Self::thing(who));
        if filter.starts_with(&own) && !self.shadow_enabled() {
            Verdict::Deny(format!(
                "AWS IoT (HDM): the policy grants no shadow topics; `{filter}` refused"
            ))
        } else if filter.starts_with(&own) {
            Verdict::Allow
        } else {
            Verdict::Deny(format!(
                "AWS IoT (HDM): thing `{}` may not subscribe to `{filter}`",
                Self::thing(who)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(client_id: &str, cn: &str) -> Identity {
        Identity {
            listener: ListenerKind::Mtls,
            client_id: client_id.into(),
            username: None,
            cert_cn: Some(cn.into()),
        }
    }

    #[test]
    fn client_id_must_be_the_thing_name() {
        let p = HdmPolicy::default();
        assert_eq!(p.connect(&device("hdm-1", "hdm-1")), Verdict::Allow);
        assert!(
            matches!(p.connect(&device("other", "hdm-1")), Verdict::Deny(r) if r.contains("must equal"))
        );
        assert_eq!(
            p.connect(&device("edgewire-1", "demo-device")),
            Verdict::Abstain
        );
    }

    #[test]
    fn known_things_count_as_devices() {
        let things = Arc::new(RwLock::new(BTreeSet::from(["thing-7".to_owned()])));
        let p = HdmPolicy::new(things);
        assert!(matches!(
            p.connect(&device("x", "thing-7")),
            Verdict::Deny(_)
        ));
    }

    #[test]
    fn devices_use_ingest_and_their_own_shadow_only() {
        let p = HdmPolicy::default();
        let d = device("hdm-1", "hdm-1");
        assert_eq!(
            p.publish(&d, "$aws/rules/iot_data_platform_telemetry_dev"),
            Verdict::Allow
        );
        assert_eq!(
            p.publish(&d, "$aws/things/hdm-1/shadow/update"),
            Verdict::Allow
        );
        assert!(matches!(
            p.publish(&d, "$aws/things/hdm-1/shadow/update/delta"),
            Verdict::Deny(_)
        ));
        assert!(matches!(
            p.publish(&d, "$aws/things/hdm-2/shadow/update"),
            Verdict::Deny(_)
        ));
        assert_eq!(p.publish(&d, "plain/topic"), Verdict::Abstain);
        assert_eq!(
            p.subscribe(&d, "$aws/things/hdm-1/shadow/update/delta"),
            Verdict::Allow
        );
        assert!(matches!(
            p.subscribe(&d, "$aws/things/+/shadow/update/delta"),
            Verdict::Deny(_)
        ));
    }

    #[test]
    fn org_topics_carry_the_own_client_id_and_the_shadow_can_be_switched_off() {
        let switch = Arc::new(AtomicBool::new(true));
        let p = HdmPolicy::with_shadow_switch(Arc::default(), switch.clone());
        let d = device("hdm-1", "hdm-1");
        let t = "$aws/rules/iot_data_platform_telemetry_dev";
        assert_eq!(p.publish(&d, &format!("{t}/org-1/hdm-1")), Verdict::Allow);
        assert!(matches!(
            p.publish(&d, &format!("{t}/org-1/hdm-2")),
            Verdict::Deny(r) if r.contains("own client id")
        ));
        let shadow = "$aws/things/hdm-1/shadow/update/delta";
        assert_eq!(p.subscribe(&d, shadow), Verdict::Allow);
        switch.store(false, Ordering::Relaxed);
        assert!(matches!(p.subscribe(&d, shadow), Verdict::Deny(r) if r.contains("no shadow")));
        assert!(matches!(
            p.publish(&d, "$aws/things/hdm-1/shadow/get"),
            Verdict::Deny(_)
        ));
        assert_eq!(p.publish(&d, t), Verdict::Allow);
    }

    #[test]
    fn nobody_subscribes_to_basic_ingest_but_the_rules_engine() {
        let p = HdmPolicy::default();
        for f in [
            "$aws/rules/iot_data_platform_telemetry_dev",
            "$aws/#",
            "$aws/+/x",
        ] {
            assert!(
                matches!(p.subscribe(&device("hdm-1", "hdm-1"), f), Verdict::Deny(_)),
                "{f}"
            );
            let other = Identity {
                listener: ListenerKind::Plain,
                client_id: "tool".into(),
                username: None,
                cert_cn: None,
            };
            assert!(matches!(p.subscribe(&other, f), Verdict::Deny(_)), "{f}");
        }
        let runner = Identity {
            listener: ListenerKind::Plain,
            client_id: RUNNER_CLIENT_ID.into(),
            username: None,
            cert_cn: None,
        };
        assert_eq!(p.subscribe(&runner, "$aws/rules/#"), Verdict::Abstain);
        assert_eq!(p.subscribe(&runner, "#"), Verdict::Abstain);
    }
}
