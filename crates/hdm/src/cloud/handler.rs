//! The platform's MQTT side as a pure function: a message on a basic-ingest topic goes to the
//! telemetry recorder (which checks the envelope and counts; basic ingest never answers the
//! device), a message on a shadow request topic goes to the shadow service, whose answers are
//! returned for publishing. Counters and notable events land in the report.

use std::collections::VecDeque;

use cloudkit::{Message, Report};
use time::OffsetDateTime;

use crate::protocol::envelope::{Envelope, EnvelopeError};
use crate::protocol::shadow::service::{Effect, ShadowService};
use crate::protocol::topics::{ShadowTopic, parse_ingest};

/// How many accepted events and report notes are kept.
pub const KEEP: usize = 1000;
const NOTES: usize = 50;

/// Everything the platform side remembers.
#[derive(Debug, Default)]
pub struct CloudState {
    /// The shadows.
    pub shadows: ShadowService,
    /// The newest accepted telemetry events, oldest first.
    pub ingested: VecDeque<Envelope>,
    /// Counters and notes.
    pub report: Report,
}

fn record_ingest(state: &mut CloudState, topic: &str, payload: &[u8]) {
    let Some(t) = parse_ingest(topic) else { return };
    if t.telemetry_stage().is_none() {
        state.report.add("telemetry_unknown_rule", 1);
        state.report.note(
            format!(
                "basic ingest: no rule `{}` (AWS logs RuleNotFound; the device is not told)",
                t.rule
            ),
            NOTES,
        );
        return;
    }
    match Envelope::decode(payload) {
        Ok(e) => {
            state.report.add("telemetry_accepted", 1);
            if state.ingested.len() >= KEEP {
                state.ingested.pop_front();
            }
            state.ingested.push_back(e);
        }
        Err(e) => {
            let key = match e {
                EnvelopeError::TooLarge { .. } => "telemetry_too_large",
                _ => "telemetry_invalid",
            };
            state.report.add(key, 1);
            state
                .report
                .note(format!("telemetry on `{topic}` refused: {e}"), NOTES);
        }
    }
}

fn count_shadow(report: &mut Report, topic: &ShadowTopic, effect: &Effect) {
    match effect {
        Effect::Got { .. } => report.add("shadow_get", 1),
        Effect::Updated {
            created,
            delta,
            version,
        } => {
            report.add(
                if *created {
                    "shadow_created"
                } else {
                    "shadow_updated"
                },
                1,
            );
            if *delta {
                report.add("shadow_delta", 1);
            }
            report.note(
                format!("shadow of `{}` is at version {version}", topic.thing),
                NOTES,
            );
        }
        Effect::Deleted { .. } => report.add("shadow_deleted", 1),
        Effect::Rejected { op, code } => {
            report.add(&format!("shadow_rejected_{code}"), 1);
            report.note(
                format!(
                    "shadow {} of `{}` rejected with {code}",
                    op.as_str(),
                    topic.thing
                ),
                NOTES,
            );
        }
        Effect::Ignored => {}
    }
}

/// Handles one message; returns what the platform publishes.
pub fn handle(
    state: &mut CloudState,
    topic: &str,
    payload: &[u8],
    now: OffsetDateTime,
) -> Vec<Message> {
    if parse_ingest(topic).is_some() {
        record_ingest(state, topic, payload);
        return Vec::new();
    }
    let Some(t) = ShadowTopic::parse(topic) else {
        return Vec::new();
    };
    let outcome = state.shadows.handle(&t, payload, now.unix_timestamp());
    count_shadow(&mut state.report, &t, &outcome.effect);
    outcome
        .messages
        .into_iter()
        .map(|o| Message::new(o.topic, o.payload))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2020-01-20 08:00 UTC)
    }

    #[test]
    fn readme_sample_is_accepted_and_garbage_counted() {
        let mut s = CloudState::default();
        let sample = include_str!("../../tests/vectors/readme_envelope.json");
        let code = include_str!("../../tests/vectors/reference_code_envelope.json");
        for body in [sample, code] {
            assert!(
                handle(
                    &mut s,
                    "$aws/rules/iot_data_platform_telemetry_stg",
                    body.as_bytes(),
                    now()
                )
                .is_empty()
            );
        }
        handle(
            &mut s,
            "$aws/rules/iot_data_platform_telemetry_stg",
            b"{}",
            now(),
        );
        handle(&mut s, "$aws/rules/other_rule", sample.as_bytes(), now());
        assert_eq!(s.report.get("telemetry_accepted"), 2);
        assert_eq!(s.report.get("telemetry_invalid"), 1);
        assert_eq!(s.report.get("telemetry_unknown_rule"), 1);
        assert_eq!(s.ingested[0].event_type, "ODA");
    }

    #[test]
    fn shadow_requests_are_answered() {
        let mut s = CloudState::default();
        let out = handle(&mut s, "$aws/things/hdm-1/shadow/get", b"", now());
        assert_eq!(out[0].topic, "$aws/things/hdm-1/shadow/get/rejected");
        assert!(!out[0].retain);
        let body = include_str!("../../tests/vectors/readme_reported.json");
        let out = handle(
            &mut s,
            "$aws/things/hdm-1/shadow/update",
            body.as_bytes(),
            now(),
        );
        assert_eq!(out[0].topic, "$aws/things/hdm-1/shadow/update/accepted");
        assert_eq!(s.report.get("shadow_created"), 1);
        assert_eq!(s.report.get("shadow_rejected_404"), 1);
        assert!(handle(&mut s, "some/other", b"x", now()).is_empty());
    }
}
