//! edgewire's transport: the only crate that opens MQTT connections.
//!
//! # Layout
//! - [`endpoint`]: broker URLs and the plaintext rule.
//! - [`tls`]: rustls client configs, PEM loading, key permission checks.
//! - [`auth`]: username and password from env or file.
//! - [`session`]: the connection: publish-and-confirm, subscribe-and-wait, reconnect.
//! - [`outbox`]: where messages wait for their PUBACK, in memory or in a disk spool.
//! - [`error`]: connection failures as sentences.
//! - [`access`]: identities and access policies; `broker` (feature `broker`): the embedded broker iot-sim runs.
//! - [`topic`], [`message`], [`backoff`]: small pure pieces; [`bulk`]: publish a stream and confirm it.
//! - [`args`]: clap argument groups every binary flattens in; [`output`]: text/NDJSON output,
//!   logging, exit codes; [`signal`]: Ctrl-C/SIGTERM.

pub mod access;
pub mod args;
pub mod auth;
pub mod backoff;
#[cfg(feature = "broker")]
pub mod broker;
pub mod bulk;
pub mod endpoint;
pub mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod message;
pub mod outbox;
pub mod output;
pub mod session;
pub mod signal;
pub mod tls;
pub mod topic;

pub use endpoint::{Endpoint, Scheme};
pub use error::ConnectError;
pub use message::{Message, Qos, Received};
pub use outbox::{Outbox, SpoolConfig, SpoolSync};
pub use session::{Session, SessionEvent, SessionOptions, StartMode, Status};
