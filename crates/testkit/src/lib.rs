//! Test support for edgewire's integration tests: a real mosquitto broker on
//! free loopback ports with a PKI generated per run ([`Broker`], [`Pki`]), an
//! independent `mosquitto_sub` collector ([`Subscriber`]), a TCP fault proxy
//! ([`FaultProxy`]), free-port discovery ([`free_port`]), running built binaries ([`cli`]),
//! waiting for a condition in an async test ([`wait`]), private database servers started once
//! per test process ([`Postgres`], [`MariaDb`]), each test in its own database, and other MQTT
//! brokers: a NATS cluster with MQTT ([`NatsCluster`]) and a RabbitMQ node with its MQTT plugin
//! ([`RabbitMq`]); a software TPM per test ([`Swtpm`], package `swtpm`). Everything but [`wait`] is synchronous (std threads and processes only) so
//! any test runtime can use it; [`wait`] runs on tokio's timer, as every async test here does.
//!
//! Requirements on the machine: `/usr/sbin/mosquitto` (2.0.x), `mosquitto_sub`,
//! `mosquitto_pub`, `mosquitto_passwd` and the `openssl` CLI on `PATH`; for the database
//! servers, PostgreSQL's server programs (`/usr/lib/postgresql/*/bin`, package `postgresql`) and
//! MariaDB (`mariadb-install-db`, `/usr/sbin/mariadbd`, `mariadb`; package `mariadb-server`); for
//! the other brokers, `nats-server` (2.9+) and RabbitMQ 3.10 (`rabbitmq-server`).

// Test support: failing loudly with a clear message is the whole point here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod broker;
pub mod cli;
mod dbserver;
mod mariadb;
mod nats;
mod pki;
mod port;
mod postgres;
mod process;
mod proxy;
mod rabbitmq;
pub mod schema;
pub mod secrets;
mod subscriber;
mod swtpm;
pub mod wait;

pub use broker::{Broker, BrokerOpts};
pub use dbserver::unique_name;
pub use mariadb::{MYSQL_URL_ENV, MariaDb, MariaDbDatabase, MariaDbFlavor};
pub use nats::NatsCluster;
pub use pki::{ClientCert, KeyFormat, Pki};
pub use port::{free_port, free_ports};
pub use postgres::{PG_PASSWORD_ROLE, PG_URL_ENV, PgDatabase, PgFlavor, Postgres};
pub use proxy::{Fault, FaultProxy};
pub use rabbitmq::{RABBITMQ_PREFETCH, RabbitMq};
pub use subscriber::{PROBE_TOPIC_PREFIX, Subscriber};
pub use swtpm::Swtpm;
