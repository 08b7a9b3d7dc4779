//! Siemens Insights Hub "MindConnect MQTT": the device agent behind `mc-model` and `mc-agent`,
//! and the platform side `iot-sim` runs.
//!
//! # Layout
//! - [`protocol`]: pure: topics, payloads (both directions), templates, model checks, the
//!   agent's state machine.
//! - [`config`]: the seed's `configs/mqtt-config.json`, flags over it, the certificate identity
//!   check; [`templates`]: the `example_json/` folder.
//! - [`agent`]: the device side on `transport`: model publishing, the agent loop, one-shots.
//! - [`cloud`]: the platform side for iot-sim (MQTT handler, access policy, HTTPS endpoints).
//! - [`demo`]: the `iot-sim demo` check.
//!
//! No command line here: `mc-model` and `mc-agent` share their flags through `mindconnect-cli`.

pub mod agent;
#[cfg(feature = "cloud")]
pub mod cloud;
pub mod config;
#[cfg(feature = "cloud")]
pub mod demo;
pub mod protocol;
pub mod templates;
