//! Avnet IoTConnect, message protocols 1.0 and 2.1 (Azure IoT Hub and AWS IoT Core): the
//! device protocol, the device agent `iotc-send` runs, and the platform side `iot-sim` runs.
//!
//! # Layout
//! - [`protocol`]: pure protocol code (discovery and sync, the D2C envelope, validation, edge
//!   aggregation and rules, the `df` gate, C2D commands, acks, twin, the device state machine).
//! - [`config`]: the agent's `iotconnect.json` (`cpId`, `uniqueId`, `env`, `sdkOptions`,
//!   `protocol`, `platform`) or the lite SDK's `iotcDeviceConfig.json`.
//! - [`agent`]: the device agent: HTTPS discovery and sync, the MQTT session, commands, OTA,
//!   twin, offline storage.
//! - [`cloud`]: the platform side for iot-sim: discovery and sync over HTTPS from a device
//!   template file, a D2C recorder that checks envelopes, commands, acks and twin.
//! - [`demo`]: IoTConnect's rows of `iot-sim demo`.
#![deny(missing_docs)]

pub mod agent;
#[cfg(feature = "cloud")]
pub mod cloud;
pub mod config;
#[cfg(feature = "cloud")]
pub mod demo;
pub mod protocol;
