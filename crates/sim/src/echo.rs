//! The built-in cloud side behind the demo's transport check: counts what arrives on
//! `demo/<listener>/…`, so the demo can show each listener carried every message.

use std::sync::Mutex;

use cloudkit::{CloudSide, Message, Report};

/// Counts messages per listener name.
#[derive(Debug, Default)]
pub struct EchoCloud {
    report: Mutex<Report>,
}

/// The topic the demo publishes on for `listener`.
pub fn topic(listener: &str) -> String {
    format!("demo/{listener}/reading")
}

impl CloudSide for EchoCloud {
    fn name(&self) -> &'static str {
        "transport"
    }

    fn filters(&self) -> Vec<String> {
        vec!["demo/+/reading".into()]
    }

    fn on_message(&self, topic: &str, _payload: &[u8], _now: time::OffsetDateTime) -> Vec<Message> {
        let mut levels = topic.split('/');
        if let (Some("demo"), Some(listener), Some("reading"), None) =
            (levels.next(), levels.next(), levels.next(), levels.next())
        {
            self.report
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .add(&format!("received_{listener}"), 1);
        }
        Vec::new()
    }

    fn report(&self) -> Report {
        self.report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
