//! What the agent reports while it works, and how a publish ended. The binary renders events as
//! text or NDJSON (`cli::output` in the binary); tests and the demo collect them. No I/O.

use serde::Serialize;
use serde_json::Value;
use transport::Received;
use transport::payload::PayloadJson;

use crate::protocol::Rejection;

/// How a publish ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Confirmed by the broker; not watched.
    Confirmed,
    /// Confirmed, and no rejection arrived within the watch window.
    NotRejected,
    /// The platform rejected it.
    Rejected(Rejection),
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Event {
    /// The broker confirmed a publish (PUBACK for QoS 1, written for QoS 0).
    Published {
        /// Topic.
        topic: String,
        /// Payload size.
        bytes: usize,
        /// QoS.
        qos: u8,
    },
    /// `--watch-rejected` on a topic without a documented rejected topic.
    NothingToWatch {
        /// Topic published to.
        topic: String,
    },
    /// No rejection within the watch window.
    NoRejection {
        /// Topic published to.
        topic: String,
        /// Topic watched.
        rejected_topic: String,
        /// How long.
        waited_ms: u64,
    },
    /// The platform rejected the publish.
    Rejected {
        /// Topic published to.
        topic: String,
        /// Where the rejection came.
        rejected_topic: String,
        /// `error.message`.
        message: String,
        /// `error.context`.
        context: Value,
        /// `data`.
        data: Value,
        /// Whether `data` equals what was sent (otherwise it may be about another publish).
        matches_sent: bool,
    },
    /// A message arrived (for `sub`).
    Message {
        /// Topic.
        topic: String,
        /// Payload: `{"text": ...}` or `{"bytes": base64}`.
        payload: PayloadJson,
        /// QoS.
        qos: u8,
        /// Retained message.
        retain: bool,
    },
}

impl Event {
    /// An event for a received message.
    pub fn message(m: &Received) -> Event {
        Event::Message {
            topic: m.topic.clone(),
            payload: PayloadJson::from_bytes(&m.payload),
            qos: m.qos.as_u8(),
            retain: m.retain,
        }
    }

    /// The NDJSON `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Published { .. } => "published",
            Event::NothingToWatch { .. } => "nothing_to_watch",
            Event::NoRejection { .. } => "no_rejection",
            Event::Rejected { .. } => "rejected",
            Event::Message { .. } => "message",
        }
    }

    /// The line for people.
    pub fn text(&self) -> String {
        match self {
            Event::Published { topic, bytes, qos } => {
                let how = if *qos == 1 {
                    "confirmed by the broker"
                } else {
                    "sent (QoS 0)"
                };
                format!("published {bytes} bytes to {topic}: {how}")
            }
            Event::NothingToWatch { topic } => format!(
                "Gooee documents no rejected topic for {topic}; there is no platform feedback to watch"
            ),
            Event::NoRejection {
                rejected_topic,
                waited_ms,
                ..
            } => {
                format!("no rejection on {rejected_topic} within {waited_ms} ms")
            }
            Event::Rejected {
                rejected_topic,
                message,
                context,
                matches_sent,
                ..
            } => {
                let mut s = format!("REJECTED by the platform (on {rejected_topic}): {message}");
                if !context.is_null() {
                    s.push_str(&format!("\n  context: {context}"));
                }
                if !matches_sent {
                    s.push_str("\n  (its data differs from what was sent: it may be about another publish)");
                }
                s
            }
            Event::Message { topic, payload, .. } => match payload {
                PayloadJson::Text(t) => format!("{topic} {t}"),
                PayloadJson::Bytes(b) => format!("{topic} (binary, base64) {b}"),
            },
        }
    }
}
