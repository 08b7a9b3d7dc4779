//! The session's own events as NDJSON, for every binary: `connection` (connected, disconnected,
//! reconnecting, failed), `spool_dropped`, `oversized` and `subscribe_refused`. Installed once
//! as the process's default event hook, so sessions opened inside the vendor libraries report
//! through it too.

use serde_json::json;
use transport::SessionEvent;
use transport::session::EventHook;

use super::Output;

/// The NDJSON line's type and data for a session event.
pub fn describe(ev: &SessionEvent) -> Option<(&'static str, serde_json::Value)> {
    Some(match ev {
        SessionEvent::Connected {
            connection,
            session_present,
        } => (
            "connection",
            json!({"state": "connected", "connection": connection, "session_present": session_present}),
        ),
        SessionEvent::Disconnected { reason } => (
            "connection",
            json!({"state": "disconnected", "reason": reason}),
        ),
        SessionEvent::Reconnecting { delay, attempt } => (
            "connection",
            json!({"state": "reconnecting", "delay_ms": delay.as_millis() as u64, "attempt": attempt}),
        ),
        SessionEvent::Failed { reason } => {
            ("connection", json!({"state": "failed", "reason": reason}))
        }
        SessionEvent::Dropped { count } => ("spool_dropped", json!({"count": count})),
        SessionEvent::Oversized { topic, size } => {
            ("oversized", json!({"topic": topic, "size": size}))
        }
        SessionEvent::SubscribeRefused { filter } => {
            ("subscribe_refused", json!({"filter": filter}))
        }
        _ => return None,
    })
}

/// Makes every session of this process print its events on `out` (JSON format only; in text
/// mode the logs on stderr say the same).
pub(super) fn install(out: Output) {
    EventHook::install_default(EventHook(std::sync::Arc::new(move |ev| {
        if let Some((kind, data)) = describe(ev) {
            out.event(kind, &data, String::new);
        }
    })));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_session_event_has_its_line() {
        let (kind, data) = describe(&SessionEvent::Reconnecting {
            delay: Duration::from_millis(250),
            attempt: 3,
        })
        .unwrap();
        assert_eq!(kind, "connection");
        assert_eq!(
            data,
            json!({"state": "reconnecting", "delay_ms": 250, "attempt": 3})
        );
        let (kind, data) = describe(&SessionEvent::Oversized {
            topic: "a/b".into(),
            size: 300_000,
        })
        .unwrap();
        assert_eq!(
            (kind, data),
            ("oversized", json!({"topic": "a/b", "size": 300_000}))
        );
    }
}
