//! What the emulated IoT Hub enforces on the embedded broker for IoTConnect devices (clients
//! whose client id, certificate CN or SAS username names a device of the template): X.509
//! devices on the client-certificate listener with CN = client id; key devices on the password
//! listener with a SAS token signed by their primary key and a username naming them; each device
//! publishes only to its own D2C and twin topics and subscribes only to its own C2D and twin
//! topics. Everyone else is not this policy's business (it abstains), except that operator
//! requests (`iotconnect-sim/…`) are accepted only on the loopback listener.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cloudkit::{AccessPolicy, Identity, ListenerKind, Verdict};

use super::admin;
use super::template::{DeviceEntry, TemplateFile};
use crate::protocol::sas;
use crate::protocol::v1::topics;

/// The policy.
#[derive(Debug, Clone)]
pub struct Policy {
    template: Arc<TemplateFile>,
    dps: Option<Arc<std::sync::Mutex<super::dps::DpsState>>>,
}

impl Policy {
    /// A policy for the devices of `template`.
    pub fn new(template: Arc<TemplateFile>) -> Self {
        Policy {
            template,
            dps: None,
        }
    }

    /// Checks auth type 4 devices' SAS tokens with the keys DPS issued them.
    #[must_use]
    pub fn with_dps(mut self, dps: Arc<std::sync::Mutex<super::dps::DpsState>>) -> Self {
        self.dps = Some(dps);
        self
    }

    fn device_in_username(&self, username: &str) -> Option<Cow<'_, DeviceEntry>> {
        // `{hub}/{deviceId}/?api-version=...`
        let mut parts = username.split('/');
        let _hub = parts.next()?;
        let id = parts.next()?;
        self.template.device(id)
    }

    fn device_of(&self, who: &Identity) -> Option<Cow<'_, DeviceEntry>> {
        self.template
            .device(&who.client_id)
            .or_else(|| {
                who.cert_cn
                    .as_deref()
                    .and_then(|cn| self.template.device(cn))
            })
            .or_else(|| {
                who.username
                    .as_deref()
                    .and_then(|u| self.device_in_username(u))
            })
    }
}

fn own_topic(id: &str, topic: &str) -> bool {
    let shadow = super::v21::aws_shadow(id);
    topics::device_of_d2c(topic) == Some(id)
        || super::v21::parse_d2c(topic).is_some_and(|(_, d, _)| d == id)
        || topic == format!("{shadow}report")
        || topic == format!("{shadow}get")
        || topic.starts_with(topics::TWIN_REPORTED_PREFIX)
        || topic.starts_with(topics::TWIN_GET_PREFIX)
}

fn own_filter(id: &str, filter: &str) -> bool {
    let c2d = topics::azure_c2d_filter(id);
    let shadow = super::v21::aws_shadow(id);
    filter.starts_with(c2d.trim_end_matches('#'))
        || filter == format!("iot/{id}/cmd")
        || filter == format!("{shadow}property-shadow")
        || filter == format!("{shadow}get/all")
        || filter == topics::TWIN_DESIRED_FILTER
        || filter == topics::TWIN_RES_FILTER
        || filter == topics::METHODS_FILTER
}

impl AccessPolicy for Policy {
    fn password(&self, username: &str, password: &[u8]) -> Verdict {
        let Some(dev) = self.device_in_username(username) else {
            return Verdict::Abstain;
        };
        let dps_key = (dev.auth == 4)
            .then(|| {
                self.dps.as_ref().and_then(|d| {
                    d.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .hub_key(&dev.unique_id)
                })
            })
            .flatten();
        if dev.auth == 4 && dps_key.is_none() {
            return Verdict::Deny(format!(
                "IoTConnect device `{}` (TPM) has not been assigned by DPS",
                dev.unique_id
            ));
        }
        let Some(key) = dps_key.as_deref().or(dev
            .primary_key
            .as_deref()
            .filter(|_| matches!(dev.auth, 1 | 5)))
        else {
            return Verdict::Deny(format!(
                "IoTConnect device `{}` does not use key authentication",
                dev.unique_id
            ));
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let token = String::from_utf8_lossy(password);
        match sas::verify(&token, key, now) {
            Ok(t)
                if t.resource.ends_with(&format!("/devices/{}", dev.unique_id))
                    || !t.resource.contains("/devices/") =>
            {
                Verdict::Allow
            }
            Ok(t) => Verdict::Deny(format!(
                "SAS token for `{}` used by device `{}`",
                t.resource, dev.unique_id
            )),
            Err(e) => Verdict::Deny(format!("IoTConnect device `{}`: {e}", dev.unique_id)),
        }
    }

    fn connect(&self, who: &Identity) -> Verdict {
        let Some(dev) = self.device_of(who) else {
            return Verdict::Abstain;
        };
        let id = &dev.unique_id;
        match who.listener {
            ListenerKind::Plain => Verdict::Abstain,
            // IoT Hub wants the username `{hub}/{deviceId}/?api-version=...` from X.509
            // devices too (Azure's "Communicate with an IoT hub using MQTT"), so it is checked
            // here as for key devices.
            ListenerKind::Mtls
                if matches!(dev.auth, 2 | 3)
                    && who
                        .username
                        .as_deref()
                        .and_then(|u| self.device_in_username(u))
                        .is_none_or(|d| d.unique_id != *id) =>
            {
                Verdict::Deny(format!(
                    "IoTConnect device `{id}` (X.509): the MQTT username must be `{{hub}}/{id}/?api-version=2018-06-30`, got {:?}",
                    who.username
                ))
            }
            ListenerKind::Mtls if matches!(dev.auth, 2 | 3) => match who.cert_cn.as_deref() {
                Some(cn) if cn == id && who.client_id == *id => Verdict::Allow,
                cn => Verdict::Deny(format!(
                    "IoTConnect device `{id}`: certificate CN {cn:?} and client id `{}` must both be the device id",
                    who.client_id
                )),
            },
            ListenerKind::TlsPassword | ListenerKind::Wss if matches!(dev.auth, 1 | 4 | 5) => {
                if who.client_id == *id
                    && who.username.as_deref().is_some_and(|u| {
                        self.device_in_username(u)
                            .is_some_and(|d| d.unique_id == *id)
                    })
                {
                    Verdict::Allow
                } else {
                    Verdict::Deny(format!(
                        "IoTConnect device `{id}`: client id and username must name the device"
                    ))
                }
            }
            _ => Verdict::Deny(format!(
                "IoTConnect device `{id}` uses auth type {} and cannot connect on this listener",
                dev.auth
            )),
        }
    }

    fn publish(&self, who: &Identity, topic: &str) -> Verdict {
        if topic.starts_with(admin::REQUEST_PREFIX) && who.listener != ListenerKind::Plain {
            return Verdict::Deny(
                "IoTConnect operator requests are accepted on the loopback listener only".into(),
            );
        }
        match self.device_of(who) {
            Some(dev) if who.listener != ListenerKind::Plain => {
                if own_topic(&dev.unique_id, topic) {
                    Verdict::Allow
                } else {
                    Verdict::Deny(format!(
                        "IoTConnect device `{}` may not publish to `{topic}`",
                        dev.unique_id
                    ))
                }
            }
            _ => Verdict::Abstain,
        }
    }

    fn subscribe(&self, who: &Identity, filter: &str) -> Verdict {
        match self.device_of(who) {
            Some(dev) if who.listener != ListenerKind::Plain => {
                if own_filter(&dev.unique_id, filter) {
                    Verdict::Allow
                } else {
                    Verdict::Deny(format!(
                        "IoTConnect device `{}` may not subscribe to `{filter}`",
                        dev.unique_id
                    ))
                }
            }
            _ => Verdict::Abstain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::new(Arc::new(TemplateFile::builtin().unwrap()))
    }

    fn who(
        listener: ListenerKind,
        client_id: &str,
        cn: Option<&str>,
        user: Option<&str>,
    ) -> Identity {
        Identity {
            listener,
            client_id: client_id.into(),
            username: user.map(Into::into),
            cert_cn: cn.map(Into::into),
        }
    }

    #[test]
    fn x509_devices_need_matching_cn_and_own_topics() {
        let p = policy();
        let gw = who(
            ListenerKind::Mtls,
            "iotc-gateway-01",
            Some("iotc-gateway-01"),
            Some("hub.local/iotc-gateway-01/?api-version=2018-06-30"),
        );
        assert_eq!(p.connect(&gw), Verdict::Allow);
        // IoT Hub wants the username from X.509 devices too.
        let bare = who(
            ListenerKind::Mtls,
            "iotc-gateway-01",
            Some("iotc-gateway-01"),
            None,
        );
        let Verdict::Deny(why) = p.connect(&bare) else {
            panic!("an X.509 device without a username was let in")
        };
        assert!(why.contains("username"), "{why}");
        let spoof = who(
            ListenerKind::Mtls,
            "iotc-gateway-01",
            Some("demo-device"),
            None,
        );
        assert!(matches!(p.connect(&spoof), Verdict::Deny(_)));
        assert_eq!(
            p.publish(&gw, "devices/iotc-gateway-01/messages/events/"),
            Verdict::Allow
        );
        assert!(matches!(
            p.publish(&gw, "devices/iotc-edge-01/messages/events/"),
            Verdict::Deny(_)
        ));
        assert!(matches!(
            p.publish(&gw, "iotconnect-sim/request/command"),
            Verdict::Deny(_)
        ));
        assert_eq!(
            p.subscribe(&gw, "devices/iotc-gateway-01/messages/devicebound/#"),
            Verdict::Allow
        );
        assert!(matches!(
            p.subscribe(&gw, "devices/+/messages/devicebound/#"),
            Verdict::Deny(_)
        ));
        assert_eq!(
            p.connect(&who(ListenerKind::Mtls, "other", Some("other"), None)),
            Verdict::Abstain
        );
        let plain = who(ListenerKind::Plain, "iot-sim-iotconnect", None, None);
        assert_eq!(
            p.publish(&plain, "iotconnect-sim/request/command"),
            Verdict::Abstain
        );
    }

    #[test]
    fn sas_devices_need_a_valid_token() {
        let p = policy();
        let t = TemplateFile::builtin().unwrap();
        let key = t
            .device("iotc-sas-01")
            .unwrap()
            .primary_key
            .clone()
            .unwrap();
        let user = "localhost/iotc-sas-01/?api-version=2018-06-30";
        let tok = sas::build("localhost/devices/iotc-sas-01", &key, u64::MAX / 2).unwrap();
        assert_eq!(p.password(user, tok.as_bytes()), Verdict::Allow);
        assert!(matches!(
            p.password(user, b"SharedAccessSignature sr=x&sig=AAAA&se=99999999999"),
            Verdict::Deny(_)
        ));
        let other = sas::build("localhost/devices/iotc-key-01", &key, u64::MAX / 2).unwrap();
        assert!(matches!(
            p.password(user, other.as_bytes()),
            Verdict::Deny(_)
        ));
        assert_eq!(p.password("edgewire", b"x"), Verdict::Abstain);
        let c = who(ListenerKind::TlsPassword, "iotc-sas-01", None, Some(user));
        assert_eq!(p.connect(&c), Verdict::Allow);
        let wrong = who(ListenerKind::TlsPassword, "iotc-sas-02", None, Some(user));
        assert!(matches!(p.connect(&wrong), Verdict::Deny(_)));
    }
}
