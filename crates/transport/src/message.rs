//! The message types that cross the transport API: what callers publish and what they receive.

use bytes::Bytes;

/// MQTT quality of service. QoS 2 is deliberately absent: no vendor we target needs it, and
/// QoS 1 with an outbox gives at-least-once delivery.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Qos {
    /// Fire and forget.
    AtMostOnce,
    /// Confirmed by PUBACK; resent until then.
    AtLeastOnce,
}

impl Qos {
    /// The QoS number on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            Qos::AtMostOnce => 0,
            Qos::AtLeastOnce => 1,
        }
    }

    /// From the number on the wire; `None` for anything but 0 or 1.
    pub fn from_u8(n: u8) -> Option<Self> {
        match n {
            0 => Some(Qos::AtMostOnce),
            1 => Some(Qos::AtLeastOnce),
            _ => None,
        }
    }

    pub(crate) fn to_rumqttc(self) -> rumqttc::QoS {
        match self {
            Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
            Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        }
    }
}

/// An outgoing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name (no wildcards).
    pub topic: String,
    /// Payload bytes.
    pub payload: Bytes,
    /// Delivery guarantee.
    pub qos: Qos,
    /// Whether the broker keeps it as the topic's retained message.
    pub retain: bool,
}

impl Message {
    /// A QoS 1, non-retained message.
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Message {
            topic: topic.into(),
            payload: payload.into(),
            qos: Qos::AtLeastOnce,
            retain: false,
        }
    }

    /// The same message at another QoS.
    #[must_use]
    pub fn with_qos(mut self, qos: Qos) -> Self {
        self.qos = qos;
        self
    }

    /// The same message with the retain flag set as given.
    #[must_use]
    pub fn with_retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }
}

/// How many payload bytes of an oversized incoming message are kept (for a report or a dead
/// letter).
pub const OVERSIZED_PREFIX: usize = 1024;

/// A message the broker delivered to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Topic it was published on.
    pub topic: String,
    /// Payload bytes.
    pub payload: Bytes,
    /// QoS it was delivered at.
    pub qos: Qos,
    /// Whether it is a retained message sent on subscribe.
    pub retain: bool,
    /// Set when the broker resent it (it may have been delivered before).
    pub dup: bool,
    /// Set when the payload was larger than the session's packet limit: the full payload size
    /// in bytes. The message was read off the connection without being held, `payload` has
    /// only its first bytes (at most [`OVERSIZED_PREFIX`]), and it is acknowledged like any
    /// other, so it cannot come back and wedge the session. Report or dead-letter it; never
    /// treat the prefix as the message.
    pub oversized: Option<usize>,
    /// Packet id (0 for QoS 0) and the connection it arrived on; used by manual acks.
    pub(crate) pkid: u16,
    pub(crate) connection: u64,
}
