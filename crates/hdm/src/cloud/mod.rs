//! HDM's platform side as iot-sim runs it, for every API generation: the configuration and
//! provisioning HTTPS endpoints (v2 with `x-api-key`, v3 with a Bearer token, v4 with a Zaikio
//! token; issuing real device certificates from iot-sim's CA, so a provisioned agent can connect
//! on the `mtls` listener), the Zaikio directory with its OAuth device flow ([`zaikio`]), the
//! basic-ingest recorder for both envelopes, the device-shadow service (which can be switched
//! off, as the HDM platform had it) and AWS-like access rules. The MQTT handler is pure
//! ([`handler::handle`]); this module holds the shared state behind locks and the wiring iot-sim
//! needs.

pub mod ca;
pub mod handler;
mod https;
pub mod policy;
pub mod zaikio;
mod zaikio_http;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use cloudkit::{AccessPolicy, CloudSide, Listener, Message, Report};
use serde_json::Value;
use time::OffsetDateTime;

pub use ca::{CaError, CertAuthority};
pub use handler::{CloudState, Ingested, IngestedEvent};
pub use policy::HdmPolicy;
pub use zaikio::{DEV_OAUTH_CLIENT_ID, ZaikioOptions};

use crate::protocol::envelope::Envelope;
use crate::protocol::lowercase::LowerEnvelope;
use crate::protocol::shadow::docs::{Rejection, Section, UpdateRequest};
use crate::protocol::shadow::service::ShadowKey;
use crate::protocol::topics::{ShadowOp, ShadowReply, ShadowTopic, cloud_filters};
use transport::auth::{ExposeSecret, Secret};

/// The development API key the local cloud accepts. Not a secret: it only opens iot-sim.
pub const DEV_API_KEY: &str = "edgewire-hdm-dev-api-key-not-a-secret";
/// The API version of gen 1 (`x-api-key`).
pub const API_VERSION: &str = "v2";
/// The development Bearer token (`auth_token`) of gen 2 and 2b. Not a secret: it only opens
/// iot-sim.
pub const DEV_AUTH_TOKEN: &str = "edgewire-hdm-dev-auth-token-not-a-secret";
/// The organisation of things provisioned with [`DEV_AUTH_TOKEN`].
pub const DEV_ORG_ID: &str = "org-sim";
/// `provisioning.telemetryTopic` of the v3 configuration.
pub const TELEMETRY_TOPIC: &str = "$aws/rules/iot_data_platform_telemetry_dev";

enum CaSlot {
    Ready(Arc<CertAuthority>),
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// Learnt in [`HdmCloud::on_start`].
    Unset,
}

pub(crate) struct Shared {
    state: Mutex<CloudState>,
    ca: Mutex<CaSlot>,
    endpoint: Mutex<Option<(String, u16)>>,
    api_keys: Vec<String>,
    auth_tokens: Vec<String>,
    zaikio: Mutex<zaikio::Zaikio>,
    things: Arc<RwLock<BTreeSet<String>>>,
    shadow_enabled: Arc<std::sync::atomic::AtomicBool>,
    changes: tokio::sync::watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, CloudState> {
        lock(&self.state)
    }

    /// The CA, loading it from its files on first use.
    pub(crate) fn ca(&self) -> Result<Arc<CertAuthority>, CaError> {
        let mut slot = lock(&self.ca);
        let ca = match &*slot {
            CaSlot::Ready(ca) => return Ok(ca.clone()),
            CaSlot::Files { cert, key } => Arc::new(CertAuthority::from_files(cert, key)?),
            CaSlot::Unset => {
                return Err(CaError::Parse {
                    what: "certificate",
                    reason: "no CA configured (iot-sim must call HdmCloud::on_start with its PKI folder)".into(),
                });
            }
        };
        *slot = CaSlot::Ready(ca.clone());
        Ok(ca)
    }

    pub(crate) fn endpoint(&self) -> Option<(String, u16)> {
        lock(&self.endpoint).clone()
    }

    pub(crate) fn api_key_ok(&self, key: Option<&str>) -> bool {
        key.is_some_and(|k| self.api_keys.iter().any(|a| a == k))
    }

    pub(crate) fn auth_token_ok(&self, token: &Secret) -> bool {
        self.auth_tokens.iter().any(|a| a == token.expose_secret())
    }

    pub(crate) fn zaikio(&self) -> MutexGuard<'_, zaikio::Zaikio> {
        lock(&self.zaikio)
    }

    /// Tells watchers that something was handled.
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    pub(crate) fn register(&self, thing: &str) {
        self.things
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(thing.to_owned());
    }
}

/// HDM's platform side.
#[derive(Clone)]
pub struct HdmCloud {
    shared: Arc<Shared>,
}

impl Default for HdmCloud {
    /// A platform side that learns its CA and MQTT endpoint in [`HdmCloud::on_start`].
    fn default() -> Self {
        HdmCloud::with_ca(CaSlot::Unset)
    }
}

impl HdmCloud {
    fn with_ca(ca: CaSlot) -> Self {
        HdmCloud {
            shared: Arc::new(Shared {
                state: Mutex::new(CloudState::default()),
                ca: Mutex::new(ca),
                endpoint: Mutex::new(None),
                api_keys: vec![DEV_API_KEY.to_owned()],
                auth_tokens: vec![DEV_AUTH_TOKEN.to_owned()],
                zaikio: Mutex::new(zaikio::Zaikio::default()),
                things: Arc::new(RwLock::new(BTreeSet::new())),
                shadow_enabled: Arc::new(std::sync::atomic::AtomicBool::new(true)),
                changes: tokio::sync::watch::channel(0).0,
            }),
        }
    }

    /// A platform side issuing device certificates from `ca`.
    pub fn new(ca: CertAuthority) -> Self {
        HdmCloud::with_ca(CaSlot::Ready(Arc::new(ca)))
    }

    /// A platform side whose CA is read from these PEM files when first needed (so it can be
    /// built before `iot-sim certs` has written them).
    pub fn from_files(ca_cert: impl Into<PathBuf>, ca_key: impl Into<PathBuf>) -> Self {
        HdmCloud::with_ca(CaSlot::Files {
            cert: ca_cert.into(),
            key: ca_key.into(),
        })
    }

    /// A platform side using iot-sim's development CA: `ca.pem` and `ca.key` in `dir`
    /// (`agent_cert` by default), read when first needed.
    pub fn from_dev_pki(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        HdmCloud::from_files(dir.join("ca.pem"), dir.join("ca.key"))
    }

    /// Tells the configuration endpoint where devices connect (`connectivity.mqttEndPoint`
    /// and `mqttPort`).
    pub fn set_mqtt_endpoint(&self, host: &str, port: u16) {
        *lock(&self.shared.endpoint) = Some((host.to_owned(), port));
    }

    /// What iot-sim knows once its broker runs: the listeners (the `mtls` one becomes the
    /// configuration's `mqttEndPoint`/`mqttPort`) and the development PKI folder, whose
    /// `ca.pem`/`ca.key` sign device certificates unless a CA was given at construction.
    /// Returns whether an `mtls` listener was found.
    pub fn on_start(&self, listeners: &[Listener], pki_dir: &Path) -> bool {
        {
            let mut slot = lock(&self.shared.ca);
            if matches!(*slot, CaSlot::Unset) {
                *slot = CaSlot::Files {
                    cert: pki_dir.join("ca.pem"),
                    key: pki_dir.join("ca.key"),
                };
            }
        }
        self.use_listeners(listeners)
    }

    /// Takes the MQTT endpoint from iot-sim's `mtls` listener (call once the broker runs).
    /// Returns whether one was found.
    pub fn use_listeners(&self, listeners: &[Listener]) -> bool {
        let found = listeners
            .iter()
            .find(|l| l.name == "mtls")
            .and_then(|l| l.url.parse::<transport::Endpoint>().ok());
        if let Some(ep) = &found {
            self.set_mqtt_endpoint(ep.host(), ep.port());
        }
        found.is_some()
    }

    /// Sets `desired` of a thing's classic shadow, as an app's `update` would; returns the
    /// messages to publish (`update/accepted`, `update/delta`, `update/documents`).
    pub fn set_desired(
        &self,
        thing: &str,
        desired: Value,
        now: OffsetDateTime,
    ) -> Result<Vec<Message>, Rejection> {
        let section = match desired {
            Value::Null => Section::Clear,
            Value::Object(m) => Section::Set(m),
            _ => {
                return Err(Rejection {
                    code: 400,
                    message: "Desired node must be an object".into(),
                    client_token: None,
                });
            }
        };
        let req = UpdateRequest {
            desired: section,
            ..UpdateRequest::default()
        };
        let topic = ShadowTopic {
            thing: thing.to_owned(),
            shadow_name: None,
            op: ShadowOp::Update,
            reply: None,
        };
        let out = handler::handle(
            &mut self.shared.state(),
            &topic.to_topic(),
            &req.encode(),
            now,
        );
        self.shared.changed();
        if let Some(m) = out.iter().find(|m| m.topic.ends_with("/rejected")) {
            let doc = crate::protocol::shadow::docs::ErrorDoc::decode(&m.payload).ok();
            return Err(Rejection {
                code: doc.as_ref().map_or(500, |d| d.code),
                message: doc.map_or_else(|| "Internal service failure".into(), |d| d.message),
                client_token: None,
            });
        }
        Ok(out)
    }

    /// The whole classic shadow of `thing` (as `get/accepted` would carry it).
    pub fn shadow(&self, thing: &str, now: OffsetDateTime) -> Option<Value> {
        let key = ShadowKey {
            thing: thing.to_owned(),
            name: None,
        };
        let doc = self
            .shared
            .state()
            .shadows
            .document(&key, None, now.unix_timestamp())?;
        serde_json::to_value(doc).ok()
    }

    /// The newest accepted camelCase telemetry events (gen 1, 2, 2b), oldest first.
    pub fn ingested(&self) -> Vec<Envelope> {
        self.shared
            .state()
            .ingested
            .iter()
            .filter_map(|i| match &i.event {
                IngestedEvent::CamelCase(e) => Some(e.clone()),
                IngestedEvent::Lowercase(_) => None,
            })
            .collect()
    }

    /// The newest accepted lowercase telemetry events (gen 3), oldest first.
    pub fn ingested_lowercase(&self) -> Vec<LowerEnvelope> {
        self.shared
            .state()
            .ingested
            .iter()
            .filter_map(|i| match &i.event {
                IngestedEvent::Lowercase(e) => Some(e.clone()),
                IngestedEvent::CamelCase(_) => None,
            })
            .collect()
    }

    /// The newest accepted events of either dialect with their topics, oldest first.
    pub fn ingested_all(&self) -> Vec<Ingested> {
        self.shared.state().ingested.iter().cloned().collect()
    }

    /// Whether devices may use their shadow. Off, the access rules refuse shadow topics, as the
    /// HDM platform's policy did ("the shadow functionality is not supported").
    pub fn set_shadow_enabled(&self, enabled: bool) {
        self.shared
            .shadow_enabled
            .store(enabled, std::sync::atomic::Ordering::Relaxed);
    }

    /// Timing of the emulated Zaikio directory.
    pub fn set_zaikio_options(&self, options: ZaikioOptions) {
        self.shared.zaikio().options = options;
    }

    /// User codes of device authorizations no person has decided on yet.
    pub fn pending_user_codes(&self) -> Vec<String> {
        self.shared.zaikio().pending_codes()
    }

    /// Approves a user code, as a person on the verification page does; `false` when unknown.
    pub fn approve(&self, user_code: &str) -> bool {
        let known = self.shared.zaikio().decide(user_code, true);
        self.shared.changed();
        known
    }

    /// Machines registered in the directory: (id, serial number, owning site).
    pub fn machines(&self) -> Vec<(String, String, Option<String>)> {
        self.shared
            .zaikio()
            .machines
            .iter()
            .map(|(id, m)| (id.clone(), m.spec.serial_number.clone(), m.site.clone()))
            .collect()
    }

    /// A receiver that changes after every message and HTTPS call the platform handled (so
    /// callers can wait for an effect without polling).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Things provisioned so far.
    pub fn things(&self) -> Vec<String> {
        self.shared
            .things
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// The topic a shadow answer for `thing` goes to (for callers publishing `set_desired`'s
    /// messages selectively).
    pub fn delta_topic(thing: &str) -> String {
        ShadowTopic {
            thing: thing.to_owned(),
            shadow_name: None,
            op: ShadowOp::Update,
            reply: Some(ShadowReply::Delta),
        }
        .to_topic()
    }
}

impl CloudSide for HdmCloud {
    fn name(&self) -> &'static str {
        "hdm"
    }

    fn on_start(&self, listeners: &[Listener], pki_dir: &Path) {
        HdmCloud::on_start(self, listeners, pki_dir);
    }

    fn filters(&self) -> Vec<String> {
        cloud_filters()
    }

    fn on_message(&self, topic: &str, payload: &[u8], now: OffsetDateTime) -> Vec<Message> {
        let out = handler::handle(&mut self.shared.state(), topic, payload, now);
        self.shared.changed();
        out
    }

    fn policy(&self) -> Option<Arc<dyn AccessPolicy>> {
        Some(Arc::new(HdmPolicy::with_shadow_switch(
            self.shared.things.clone(),
            self.shared.shadow_enabled.clone(),
        )))
    }

    fn report(&self) -> Report {
        self.shared.state().report.clone()
    }

    fn router(&self) -> Option<axum::Router> {
        Some(https::router(self.shared.clone()))
    }
}
