//! Gooee's PubSub message broker for edgewire: the device agent behind `gooee-pub` and the
//! platform side iot-sim runs, over one shared protocol module.
//!
//! # Layout
//! - [`protocol`]: pure. The topic table with its publish/subscribe rights and the check that
//!   refuses anything else; payloads (meta list and single value, actions, fault alarms, head
//!   counts, rejections) with encoder and decoder side by side; the meta name rule and the known
//!   meta types.
//! - [`agent`]: the device side over `transport`: connect with username `authorization` and the
//!   API token, publish with the table check, watch the `.../rejected` topic, receive.
//! - [`cloud`]: the platform side (`cloudkit::CloudSide`): validation, rejections, relays to
//!   per-name and per-type subtopics, the broker policy (token, table).
//! - [`demo`]: Gooee's rows of `iot-sim demo`.
//!
//! The agent and the cloud side both import `protocol`, never each other.

#![deny(missing_docs)]

pub mod agent;
#[cfg(feature = "cloud")]
pub mod cloud;
#[cfg(feature = "cloud")]
pub mod demo;
pub mod protocol;
