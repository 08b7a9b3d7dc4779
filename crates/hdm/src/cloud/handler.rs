//! The platform's MQTT side as a pure function: a message on a basic-ingest topic goes to the
//! telemetry recorder (which checks the envelope of the topic's generation — camelCase on the
//! stage topic, lowercase when it carries `headerversion` — and, on a gen-2+ topic
//! `…/{orgId}/{clientId}`, that the organisation is the thing's; basic ingest never answers the
//! device), a message on a shadow request topic goes to the shadow service, whose answers are
//! returned for publishing. Counters and notable events land in the report.

use std::collections::{BTreeMap, VecDeque};

use cloudkit::{Message, Report};
use time::OffsetDateTime;

use crate::protocol::envelope::{Envelope, EnvelopeError};
use crate::protocol::lowercase::LowerEnvelope;
use crate::protocol::shadow::service::{Effect, ShadowService};
use crate::protocol::topics::{ShadowTopic, parse_ingest};

/// How many accepted events and report notes are kept.
pub const KEEP: usize = 1000;
const NOTES: usize = 50;

/// An accepted telemetry event in either dialect.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestedEvent {
    /// Gen 1, 2, 2b.
    CamelCase(Envelope),
    /// Gen 3 (`headerversion`).
    Lowercase(LowerEnvelope),
}

/// An accepted telemetry event and where it was published.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    /// The basic-ingest topic.
    pub topic: String,
    /// The event.
    pub event: IngestedEvent,
}

/// Everything the platform side remembers.
#[derive(Debug, Default)]
pub struct CloudState {
    /// The shadows.
    pub shadows: ShadowService,
    /// The newest accepted telemetry events, oldest first.
    pub ingested: VecDeque<Ingested>,
    /// The organisation of each thing provisioned in gen 2+.
    pub orgs: BTreeMap<String, String>,
    /// Counters and notes.
    pub report: Report,
}

fn decode_any(payload: &[u8]) -> Result<IngestedEvent, EnvelopeError> {
    let lowercase = serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .is_some_and(|v| v.get("headerversion").is_some());
    if lowercase {
        LowerEnvelope::decode(payload).map(IngestedEvent::Lowercase)
    } else {
        Envelope::decode(payload).map(IngestedEvent::CamelCase)
    }
}

/// On a gen-2+ topic, why its org and client levels do not fit, if they do not.
fn org_mismatch(state: &CloudState, rest: &str) -> Option<String> {
    let mut levels = rest.split('/');
    let (Some(org), Some(client), None) = (levels.next(), levels.next(), levels.next()) else {
        return Some(format!("`{rest}` is not `{{orgId}}/{{clientId}}`"));
    };
    match state.orgs.get(client) {
        Some(o) if o == org => None,
        Some(o) => Some(format!(
            "thing `{client}` belongs to org `{o}`, not `{org}`"
        )),
        None => Some(format!(
            "thing `{client}` was not provisioned with an organisation"
        )),
    }
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
    if let Some(rest) = t.rest
        && let Some(why) = org_mismatch(state, rest)
    {
        state.report.add("telemetry_wrong_org", 1);
        state
            .report
            .note(format!("telemetry on `{topic}` refused: {why}"), NOTES);
        return;
    }
    match decode_any(payload) {
        Ok(event) => {
            state.report.add(
                match event {
                    IngestedEvent::CamelCase(_) => "telemetry_accepted",
                    IngestedEvent::Lowercase(_) => "telemetry_accepted_lowercase",
                },
                1,
            );
            if state.ingested.len() >= KEEP {
                state.ingested.pop_front();
            }
            state.ingested.push_back(Ingested {
                topic: topic.to_owned(),
                event,
            });
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
        assert!(
            matches!(&s.ingested[0].event, IngestedEvent::CamelCase(e) if e.event_type == "ODA")
        );
    }

    #[test]
    fn gen3_events_on_the_org_topic_are_checked_against_the_thing() {
        let mut s = CloudState::default();
        s.orgs.insert("hdm-1".into(), "org-1".into());
        let body = include_str!("../../tests/vectors/gen3_status_event.json");
        let t = "$aws/rules/iot_data_platform_telemetry_stg";
        handle(&mut s, &format!("{t}/org-1/hdm-1"), body.as_bytes(), now());
        handle(&mut s, &format!("{t}/org-2/hdm-1"), body.as_bytes(), now());
        handle(&mut s, &format!("{t}/org-1/hdm-9"), body.as_bytes(), now());
        handle(&mut s, &format!("{t}/org-1"), body.as_bytes(), now());
        let camel = include_str!("../../tests/vectors/readme_envelope.json");
        handle(&mut s, &format!("{t}/org-1/hdm-1"), camel.as_bytes(), now());
        let bad = body.replace("\"system\"", "\"printer\"");
        handle(&mut s, &format!("{t}/org-1/hdm-1"), bad.as_bytes(), now());
        assert_eq!(s.report.get("telemetry_accepted_lowercase"), 1);
        assert_eq!(
            s.report.get("telemetry_accepted"),
            1,
            "gen 2 sends camelCase"
        );
        assert_eq!(s.report.get("telemetry_wrong_org"), 3);
        assert_eq!(s.report.get("telemetry_invalid"), 1);
        assert!(
            matches!(&s.ingested[0].event, IngestedEvent::Lowercase(e) if e.eventtype == "generic.signal")
        );
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
