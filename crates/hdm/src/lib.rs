//! HDM (Heidelberger Druckmaschinen) IoT platform on AWS IoT Core: the device agent behind
//! `hdm-telemetry` and the platform side iot-sim runs.
//!
//! # Layout
//! - [`protocol`]: pure, no I/O and no clock: env files, the certificate store's layout, the
//!   configuration/provisioning HTTPS bodies, the camelCase telemetry envelope and its 128 KB
//!   limit, topics, and the device shadow (documents, the device state machine, the cloud-side
//!   shadow service). Device and cloud share these types.
//! - [`agent`]: the device side over `transport`: provisioning into `certificate_store/`,
//!   telemetry to AWS basic ingest, shadow sync, and `run` (both, with the shadow gating
//!   telemetry). Reports through a [`agent::Reporter`].
//! - [`cloud`]: the platform side for iot-sim: configuration and provisioning endpoints issuing
//!   real certificates, a basic-ingest recorder, the shadow service, AWS-like access rules.
//! - [`demo`]: the check `iot-sim demo` runs.

#![deny(missing_docs)]

pub mod agent;
#[cfg(feature = "cloud")]
pub mod cloud;
#[cfg(feature = "cloud")]
pub mod demo;
pub mod protocol;
