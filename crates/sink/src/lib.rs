//! `sink`: MQTT readings into SQL without losing or doubling one. Subscribes at QoS 1 with
//! manual acknowledgements, maps JSON fields to columns with RFC 6901 pointers, writes
//! batches in transactions into SQLite, PostgreSQL or MariaDB/MySQL (sqlx, parameters
//! only), and acknowledges each message only after the COMMIT that stored it, or stored it
//! as a dead letter.
//!
//! # Layout
//! - [`ident`]: table and column names, validated and quoted.
//! - [`mapping`]: `column[:type]=/pointer` specs, the `esp32` preset, the mapping file, dedup modes.
//! - [`extract`]: payload → row values or a rejection (pure).
//! - [`db`]: backends and URLs, error classes; `db::schema` (DDL), `db::write` (one batch, one transaction).
//! - [`run`]: the reader loop; `pipeline`: mapping, writers with retries, acknowledgements after COMMIT in arrival order.
//! - [`report`]: counters and events for the caller to print.
//! - [`config`]: settings and errors; [`settings`]: command-line values resolved into settings.
//! - [`simulate`]: the seed's ESP32 as a publisher; [`bridge`]: a mosquitto bridge section for AWS IoT.

// A sink built with some of the drivers leaves code for the others unused; the full build (the
// default, and what CI lints) keeps every warning.
#![cfg_attr(
    not(all(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(unused, unreachable_code)
)]

pub mod bridge;
pub mod config;
pub mod db;
#[cfg(feature = "cloud")]
pub mod demo;
pub mod extract;
pub mod ident;
pub mod mapping;
pub mod partition;
mod pipeline;
pub mod report;
pub mod run;
pub mod settings;
pub mod setup;
pub mod simulate;

pub use config::{SinkConfig, SinkError};
pub use db::{DbAccess, DbTls, DbUrl};
pub use ident::Ident;
pub use mapping::{ColumnSpec, Dedup, Kind, Mapping};
pub use report::{Event, Reporter, Stats};
pub use run::Sink;
pub use settings::{DbPassword, RawSettings};
pub use setup::prepare;
