//! The IoTConnect platform side iot-sim runs: discovery and sync over HTTPS backed by a device
//! template file ([`template`]), the D2C recorder, twin and operator requests ([`handler`]), the
//! broker rules for IoTConnect devices ([`policy`]), and the request client ([`admin`]).
//!
//! The broker endpoints the sync answer points devices at are known only once the broker runs:
//! iot-sim hands them over through `CloudSide::on_start` (the `mtls` listener for X.509
//! devices, `tls_password` for key devices; an external broker's URL for both). Without that,
//! [`IotConnectCloud::set_broker`] sets them; until then `p.h` is empty and agents need
//! `--broker`.

pub mod admin;
pub mod dps;
pub mod handler;
pub mod http;
pub mod policy;
pub mod template;
pub mod v21;

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use cloudkit::{AccessPolicy, CloudSide, Listener, Message, Report};

use crate::protocol::v1::topics;
use handler::{CloudState, Endpoints};
use template::TemplateFile;

/// The cloud side's name (and its HTTPS prefix).
pub const NAME: &str = "iotconnect";

/// The emulated IoTConnect platform.
pub struct IotConnectCloud {
    template: Arc<TemplateFile>,
    state: Arc<Mutex<CloudState>>,
    endpoints: Arc<RwLock<Endpoints>>,
    dps: dps::Dps,
}

impl IotConnectCloud {
    /// A platform serving `template`.
    pub fn new(template: TemplateFile) -> Self {
        let template = Arc::new(template);
        let endpoints = Arc::new(RwLock::new(Endpoints::default()));
        IotConnectCloud {
            state: Arc::new(Mutex::new(CloudState::new(template.clone()))),
            dps: dps::Dps::new(template.clone(), endpoints.clone()),
            template,
            endpoints,
        }
    }

    /// The platform with the built-in template (`configs/iotconnect/template.json`); an empty
    /// company if that file were ever broken (a unit test keeps it valid).
    pub fn builtin() -> Self {
        let t = TemplateFile::builtin().unwrap_or_else(|e| {
            tracing::error!("built-in IoTConnect template: {e}");
            TemplateFile {
                cp_id: String::new(),
                env: String::new(),
                templates: std::collections::BTreeMap::default(),
                devices: Vec::new(),
                bulk: Vec::new(),
            }
        });
        IotConnectCloud::new(t)
    }

    /// The emulated Device Provisioning Service (auth type 4): enrol TPMs with
    /// [`dps::Dps::enroll`].
    pub fn dps(&self) -> &dps::Dps {
        &self.dps
    }

    /// The template.
    pub fn template(&self) -> &TemplateFile {
        &self.template
    }

    /// Points sync answers at these broker URLs: `mtls` for X.509 devices, `password` for key
    /// devices (e.g. the `mtls` and `tls_password` listeners of iot-sim).
    pub fn set_broker(&self, mtls: Option<&str>, password: Option<&str>) {
        let mut e = self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        e.mtls = mtls.map(str::to_owned);
        e.password = password.map(str::to_owned);
    }

    /// Answers the next `syncs` syncs of `unique_id` with `rc` 2 (auto-registration pending).
    pub fn set_registering(&self, unique_id: &str, syncs: u32) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_registering(unique_id, syncs);
    }

    /// [`IotConnectCloud::set_broker`] as a builder.
    #[must_use]
    pub fn with_broker(self, mtls: Option<&str>, password: Option<&str>) -> Self {
        self.set_broker(mtls, password);
        self
    }
}

impl Default for IotConnectCloud {
    fn default() -> Self {
        IotConnectCloud::builtin()
    }
}

impl CloudSide for IotConnectCloud {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filters(&self) -> Vec<String> {
        vec![
            topics::D2C_FILTER.to_owned(),
            format!("{}#", topics::TWIN_REPORTED_PREFIX),
            format!("{}#", topics::TWIN_GET_PREFIX),
            admin::REQUEST_FILTER.to_owned(),
            v21::AWS_D2C_FILTER.to_owned(),
            "$aws/things/+/shadow/name/setting_info/report".to_owned(),
            "$aws/things/+/shadow/name/setting_info/get".to_owned(),
        ]
    }

    fn on_message(&self, topic: &str, payload: &[u8], _now: time::OffsetDateTime) -> Vec<Message> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .on_message(topic, payload)
    }

    fn policy(&self) -> Option<Arc<dyn AccessPolicy>> {
        Some(Arc::new(
            policy::Policy::new(self.template.clone()).with_dps(self.dps.state.clone()),
        ))
    }

    fn report(&self) -> Report {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .report()
    }

    fn router(&self) -> Option<axum::Router> {
        Some(
            http::router(http::Shared {
                state: self.state.clone(),
                endpoints: self.endpoints.clone(),
                dps: self.dps.state.clone(),
            })
            .merge(self.dps.clone().router()),
        )
    }

    fn on_start(&self, listeners: &[Listener], _pki_dir: &std::path::Path) {
        let url = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|n| listeners.iter().find(|l| l.name == *n))
                .map(|l| l.url.clone())
        };
        self.set_broker(
            url(["mtls", "external"]).as_deref(),
            url(["tls_password", "external"]).as_deref(),
        );
        // The DPS operator routes take the account iot-sim's own cloud side connects with:
        // the loopback listeners' service account, or an external broker's user.
        let operator = ["plain", "external"].iter().find_map(|n| {
            let c = listeners
                .iter()
                .find(|l| l.name == *n)?
                .credentials
                .as_ref()?;
            Some((c.username.clone(), c.password.as_ref()?))
        });
        if let Some((user, password)) = operator {
            use transport::auth::ExposeSecret as _;
            self.dps.set_operator(&user, password.expose_secret());
        }
    }

    fn device_names(&self) -> Vec<String> {
        self.template
            .devices
            .iter()
            .filter(|d| matches!(d.auth, 2 | 3))
            .map(|d| d.unique_id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_template_is_valid_and_names_x509_devices() {
        let t = TemplateFile::builtin().unwrap();
        assert_eq!(t.cp_id, "EDGEWIRE");
        let c = IotConnectCloud::new(t);
        assert_eq!(c.device_names(), ["iotc-gateway-01", "iotc-edge-01"]);
        assert!(
            c.filters()
                .iter()
                .all(|f| transport::topic::validate_filter(f).is_ok())
        );
    }
}
