//! iot-sim's engine: a local stand-in for the IoT clouds edgewire talks to.
//!
//! # Layout
//! - [`certs`]: the development PKI (`iot-sim certs`).
//! - [`broker`]: the embedded MQTT broker (mqtt5 behind our own TLS front listeners) that
//!   applies the cloud sides' access policies.
//! - [`engine`]: starts the embedded broker (or uses `--broker`) and the cloud sides; writes the
//!   state folder (`iot-sim up`).
//! - [`https`]: the cloud sides' HTTPS endpoints.
//! - [`runner`]: runs one cloud side as an MQTT client of the broker.
//! - [`registry`]: every cloud side iot-sim runs.
//! - [`echo`]: the built-in cloud side behind the demo's transport checks.
//! - [`daemon`]: `up --detach`, `down` and `env` (a local cloud in the background for pipelines).
//! - [`demo`]: `iot-sim demo` and its summary table.
//! - [`status`]: `iot-sim status`.

pub mod broker;
pub mod certs;
pub mod daemon;
pub mod demo;
pub mod echo;
pub mod engine;
pub mod https;
pub mod registry;
pub mod runner;
pub mod status;
