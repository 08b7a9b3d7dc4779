//! The AWS IoT Device Shadow, shared by both sides: the documents ([`docs`]), the JSON rules for
//! merging, deltas and metadata ([`state`]), the device state machine ([`device`]) and the
//! device state that gates telemetry ([`gate`]), and the cloud-side service ([`service`]).

pub mod device;
pub mod docs;
pub mod gate;
pub mod service;
pub mod state;

/// A message to publish (QoS 1, never retained: AWS refuses retained `$aws` publishes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Topic.
    pub topic: String,
    /// JSON body.
    pub payload: Vec<u8>,
}
