//! Gooee's platform side as iot-sim runs it: subscribes to every publishable topic of the table,
//! validates what arrives as the documentation describes, answers rejections on the
//! `.../rejected` topics, relays device meta to per-name subtopics and actions to per-type
//! subtopics, and gives the embedded broker the token and topic-table rules. The handler is a
//! pure function ([`handler::handle`]); this module only holds its state behind a lock.

pub mod handler;
pub mod policy;
pub mod rejection;

use std::sync::{Arc, Mutex, PoisonError};

use cloudkit::{AccessPolicy, CloudSide, Message, Report};

pub use handler::{CloudState, handle};
pub use policy::GooeePolicy;

use crate::protocol::topics::TOPICS;

/// The development API token the local cloud accepts (username `authorization`). Not a secret:
/// it only opens iot-sim's loopback broker.
pub const DEV_TOKEN: &str = "edgewire-gooee-dev-token-not-a-secret";

/// Gooee's platform side.
pub struct GooeeCloud {
    state: Mutex<CloudState>,
    policy: Arc<GooeePolicy>,
}

impl Default for GooeeCloud {
    fn default() -> Self {
        GooeeCloud::new()
    }
}

impl GooeeCloud {
    /// A platform side that accepts [`DEV_TOKEN`].
    pub fn new() -> Self {
        GooeeCloud::with_tokens(vec![DEV_TOKEN.to_owned()])
    }

    /// A platform side that accepts these API tokens.
    pub fn with_tokens(tokens: Vec<String>) -> Self {
        GooeeCloud {
            state: Mutex::new(CloudState::default()),
            policy: Arc::new(GooeePolicy::new(tokens)),
        }
    }

    /// The filters of every topic clients may publish to (`(:id)` as `+`).
    pub fn topic_filters() -> Vec<String> {
        TOPICS
            .iter()
            .filter(|r| r.publish)
            .map(|r| r.pattern.replace("(:id)", "+"))
            .collect()
    }
}

impl CloudSide for GooeeCloud {
    fn name(&self) -> &'static str {
        "gooee"
    }

    fn filters(&self) -> Vec<String> {
        GooeeCloud::topic_filters()
    }

    fn on_message(&self, topic: &str, payload: &[u8], now: time::OffsetDateTime) -> Vec<Message> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        handle(&mut state, topic, payload, now)
    }

    fn policy(&self) -> Option<Arc<dyn AccessPolicy>> {
        Some(self.policy.clone())
    }

    fn report(&self) -> Report {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .report
            .clone()
    }
}
