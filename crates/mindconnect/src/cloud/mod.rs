//! MindConnect's platform side as iot-sim runs it: the Asset Modeler (models, instantiations),
//! MindConnect ingest (timeseries for mapped data points only, events, files), Agent Management
//! (tokens), Commanding (jobs and their statuses), the broker's identity and topic rules, and
//! the HTTPS endpoints the agent uses with its token. The MQTT handler is a pure function over
//! [`state::CloudState`]; this module only holds that state behind a lock.

pub mod http;
pub mod ingest;
pub mod jwt;
pub mod policy;
pub mod state;
pub mod v4;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cloudkit::{AccessPolicy, CloudSide, Message, Report};
use serde_json::{Map, Value};

use crate::protocol::command::delivery;
use crate::protocol::encode;
use crate::protocol::timestamp;
use crate::protocol::topic::{Channel, TopicError, Topics, platform_filters};

pub use policy::MindConnectPolicy;
pub use state::{Agent, CloudState};

/// The tenant of the demo and of `iot-sim certs`' MindConnect agent.
pub const DEMO_TENANT: &str = "edgewire";
/// The agent name (certificate CN) iot-sim issues for MindConnect: client id `edgewire_mqttagent`.
pub const DEMO_AGENT: &str = "mqttagent";

/// The platform side.
pub struct MindConnectCloud {
    state: Arc<Mutex<CloudState>>,
    device_names: Vec<String>,
}

impl Default for MindConnectCloud {
    fn default() -> Self {
        MindConnectCloud::new()
    }
}

impl MindConnectCloud {
    /// A platform with one-hour tokens whose agents' certificates are issued for [`DEMO_AGENT`].
    pub fn new() -> Self {
        MindConnectCloud {
            state: Arc::new(Mutex::new(CloudState::new(
                jwt::Signer::random(),
                crate::protocol::token::DEFAULT_LIFETIME,
            ))),
            device_names: vec![DEMO_AGENT.to_owned()],
        }
    }

    /// The same with another token lifetime (tests use seconds to see refreshes).
    #[must_use]
    pub fn with_token_lifetime(self, lifetime: Duration) -> Self {
        self.lock().token_lifetime = lifetime;
        self
    }

    /// The same with other agent names (certificate CNs iot-sim issues and the policy knows).
    #[must_use]
    pub fn with_device_names(mut self, names: Vec<String>) -> Self {
        self.device_names = names;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CloudState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The message that delivers a command (`payload` as in `deliveryJobs`' `data`, e.g.
    /// `{"commandType": "light_control", "execute_command": "ON"}`) to `client_id`; publish it
    /// on the broker. Returns the message and its request id.
    pub fn command(
        tenant: &str,
        client_id: &str,
        job_id: &str,
        payload: Map<String, Value>,
        now: time::OffsetDateTime,
    ) -> Result<(Message, String), TopicError> {
        let topics = Topics::new(tenant, client_id)?;
        let request_id = uuid::Uuid::new_v4().to_string();
        let msg = delivery(
            request_id.clone(),
            job_id.to_owned(),
            timestamp::format(now),
            payload,
        );
        Ok((
            Message::new(topics.topic(Channel::Command), encode(&msg)),
            request_id,
        ))
    }

    /// A copy of what the platform knows about `client_id`.
    pub fn agent(&self, client_id: &str) -> Option<Agent> {
        self.lock().agents.get(client_id).cloned()
    }

    /// The custom topic registration of `topic`, with its mappings and what arrived on it.
    pub fn custom_topic(&self, topic: &str) -> Option<state::CustomTopic> {
        self.lock()
            .custom
            .values()
            .find(|c| c.registration.topic == topic)
            .cloned()
    }

    /// The v4 model the platform keeps for `client_id` (as the download serves it).
    pub fn v4_model(&self, client_id: &str) -> Option<crate::protocol::v4::V4Model> {
        let st = self.lock();
        let tenant = st.agents.get(client_id)?.tenant.clone();
        st.v4_models
            .contains_key(client_id)
            .then(|| v4::cloud_model(&st, &tenant, client_id))
    }

    /// The statuses an agent sent for the command with `request_id`.
    pub fn job_statuses(&self, request_id: &str) -> Vec<String> {
        self.lock()
            .jobs
            .get(request_id)
            .map(|j| j.statuses.clone())
            .unwrap_or_default()
    }
}

impl CloudSide for MindConnectCloud {
    fn name(&self) -> &'static str {
        "mindconnect"
    }

    fn filters(&self) -> Vec<String> {
        let mut f = platform_filters();
        f.push(format!("{}/#", http::CUSTOM_ROOT));
        f
    }

    fn on_message(&self, topic: &str, payload: &[u8], now: time::OffsetDateTime) -> Vec<Message> {
        state::handle(&mut self.lock(), topic, payload, now)
    }

    fn policy(&self) -> Option<Arc<dyn AccessPolicy>> {
        Some(Arc::new(MindConnectPolicy::new(self.device_names.clone())))
    }

    fn report(&self) -> Report {
        self.lock().report.clone()
    }

    fn router(&self) -> Option<axum::Router> {
        Some(http::router(self.state.clone()))
    }

    fn device_names(&self) -> Vec<String> {
        self.device_names.clone()
    }

    fn on_https(&self, base: &str) {
        self.lock().https_base = Some(base.trim_end_matches('/').to_owned());
    }
}
