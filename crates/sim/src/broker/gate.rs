//! The embedded broker's gatekeeper: the front listeners record where each upstream connection
//! came from (which listener, which certificate); mqtt5's `AuthProvider` hook turns that into an
//! [`Identity`] and asks the access policies. It fails closed:
//!
//! - A connection that did not come through a front listener (straight to the loopback plain
//!   or WebSocket port) must log in as the service account (`BrokerSetup::service`); anyone
//!   else on this machine is refused, so the plain ports cannot be used to pose as a cloud side
//!   or to take over a device's client id without its certificate.
//! - A client is admitted only when a vendor's policy allows it (its connect, or its password)
//!   or it is one of the broker's own identities: the service account, a configured user of
//!   the password listeners, or a certificate in `BrokerSetup::own_certificates`. A client
//!   that matches no policy is refused.
//! - Publishes and subscriptions of a client the gatekeeper does not know are refused.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use mqtt5::broker::auth::{AuthProvider, AuthResult};
use mqtt5::packet::connect::ConnectPacket;
use mqtt5::protocol::v5::reason_codes::ReasonCode;

use cloudkit::access::{AccessPolicy, Identity, ListenerKind, combine};

/// Where an upstream connection from a front listener came from.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) kind: ListenerKind,
    pub(crate) cert_cn: Option<String>,
}

/// Upstream socket address (the front listener's side) → origin.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    map: Mutex<HashMap<SocketAddr, Origin>>,
}

impl Registry {
    pub(crate) fn insert(&self, addr: SocketAddr, origin: Origin) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(addr, origin);
    }
    pub(crate) fn remove(&self, addr: &SocketAddr) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(addr);
    }
    fn get(&self, addr: &SocketAddr) -> Option<Origin> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(addr)
            .cloned()
    }
}

pub(crate) struct Gatekeeper {
    pub(crate) registry: Arc<Registry>,
    pub(crate) users: HashMap<String, String>,
    pub(crate) service: Option<(String, String)>,
    pub(crate) own_certificates: Vec<String>,
    pub(crate) policies: Vec<Arc<dyn AccessPolicy>>,
    pub(crate) clients: Mutex<HashMap<String, Identity>>,
}

impl Gatekeeper {
    fn decide(
        &self,
        connect: &ConnectPacket,
        client_addr: SocketAddr,
    ) -> Result<Identity, (ReasonCode, String)> {
        let origin = self.registry.get(&client_addr).unwrap_or(Origin {
            kind: ListenerKind::Plain,
            cert_cn: None,
        });
        let who = Identity {
            listener: origin.kind,
            client_id: connect.client_id.clone(),
            username: connect.username.clone(),
            cert_cn: origin.cert_cn,
        };
        // One of the broker's own identities (admitted without a vendor's policy claiming it).
        let own;
        // A vendor's policy accepted its password.
        let mut claimed = false;
        match who.listener {
            ListenerKind::Plain => {
                let service = self.service.as_ref().is_some_and(|(user, pass)| {
                    connect.username.as_deref() == Some(user.as_str())
                        && connect
                            .password
                            .as_deref()
                            .is_some_and(|p| p == pass.as_bytes())
                });
                if !service {
                    let hint = self.service.as_ref().map_or_else(
                        || "nobody may use them here".to_owned(),
                        |(user, _)| format!("log in as `{user}` with the service password from iot-sim's state folder, or use the mtls, tls_password or wss listener"),
                    );
                    return Err((
                        ReasonCode::BadUsernameOrPassword,
                        format!(
                            "the plain and ws listeners are iot-sim's own (cloud sides, tools): {hint}"
                        ),
                    ));
                }
                own = true;
            }
            ListenerKind::Mtls => {
                let Some(cn) = &who.cert_cn else {
                    return Err((
                        ReasonCode::NotAuthorized,
                        "no client certificate common name".into(),
                    ));
                };
                own = self.own_certificates.iter().any(|c| c == cn);
            }
            ListenerKind::TlsPassword | ListenerKind::Wss => {
                let (Some(user), Some(pass)) = (&connect.username, &connect.password) else {
                    return Err((
                        ReasonCode::BadUsernameOrPassword,
                        "username and password required".into(),
                    ));
                };
                own = self
                    .users
                    .get(user)
                    .is_some_and(|p| p.as_bytes() == pass.as_slice());
                if !own {
                    match combine(self.policies.iter().map(|p| p.password(user, pass)), false) {
                        Ok(true) => claimed = true,
                        Ok(false) => {
                            return Err((
                                ReasonCode::BadUsernameOrPassword,
                                format!("unknown user `{user}` or wrong password"),
                            ));
                        }
                        Err(reason) => return Err((ReasonCode::BadUsernameOrPassword, reason)),
                    }
                }
            }
        }
        match combine(self.policies.iter().map(|p| p.connect(&who)), false) {
            Ok(true) => Ok(who),
            Ok(false) if own || claimed => Ok(who),
            Ok(false) => Err((
                ReasonCode::NotAuthorized,
                format!(
                    "no cloud side claims client `{}`{}: iot-sim admits only the identities a vendor's rules accept and its own users and certificates",
                    who.client_id,
                    who.cert_cn
                        .as_deref()
                        .map(|cn| format!(" (certificate `{cn}`)"))
                        .unwrap_or_default()
                ),
            )),
            Err(reason) => Err((ReasonCode::NotAuthorized, reason)),
        }
    }

    fn identity(&self, client_id: &str) -> Option<Identity> {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(client_id)
            .cloned()
    }
}

impl AuthProvider for Gatekeeper {
    fn authenticate<'a>(
        &'a self,
        connect: &'a ConnectPacket,
        client_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = mqtt5::error::Result<AuthResult>> + Send + 'a>> {
        let result = match self.decide(connect, client_addr) {
            Ok(who) => {
                let user = who
                    .cert_cn
                    .clone()
                    .or_else(|| who.username.clone())
                    .unwrap_or_default();
                self.clients
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(who.client_id.clone(), who);
                AuthResult::success_with_user(user)
            }
            Err((code, reason)) => {
                tracing::info!(
                    "embedded broker refused client `{}`: {reason}",
                    connect.client_id
                );
                AuthResult::fail_with_reason(code, reason)
            }
        };
        Box::pin(async move { Ok(result) })
    }

    fn authorize_publish<'a>(
        &'a self,
        client_id: &str,
        _user_id: Option<&'a str>,
        topic: &'a str,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        // A client the gatekeeper did not admit gets nothing (fail closed).
        let ok = self.identity(client_id).is_some_and(|who| {
            match combine(self.policies.iter().map(|p| p.publish(&who, topic)), true) {
                Ok(ok) => ok,
                Err(reason) => {
                    tracing::info!(
                        "embedded broker refused publish by `{}` to `{topic}`: {reason}",
                        who.client_id
                    );
                    false
                }
            }
        });
        Box::pin(async move { ok })
    }

    fn authorize_subscribe<'a>(
        &'a self,
        client_id: &str,
        _user_id: Option<&'a str>,
        topic_filter: &'a str,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        let ok = self.identity(client_id).is_some_and(|who| {
            match combine(self.policies.iter().map(|p| p.subscribe(&who, topic_filter)), true) {
                Ok(ok) => ok,
                Err(reason) => {
                    tracing::info!("embedded broker refused subscription of `{}` to `{topic_filter}`: {reason}", who.client_id);
                    false
                }
            }
        });
        Box::pin(async move { ok })
    }
}
