//! edgewire's transport: the only crate that opens MQTT connections.
//!
//! # Layout
//! - [`endpoint`]: broker URLs and the plaintext rule.
//! - [`tls`]: rustls client (and server) configs, PEM loading, key permission checks.
//! - [`auth`]: username and password from env or file.
//! - [`settings`]: the connection as a user describes it, before a vendor fills in defaults.
//! - [`session`]: the connection: publish-and-confirm, subscribe-and-wait, reconnect.
//! - [`outbox`]: where messages wait for their PUBACK, in memory or in a disk spool.
//! - [`error`]: connection failures as sentences.
//! - [`topic`], [`message`], [`backoff`], [`payload`], [`outcome`]: small pure pieces;
//!   [`bulk`]: publish a stream and confirm it; [`http`] (feature `http`): the HTTPS client.
//!
//! No command line and no terminal here: the front end (`cli`) turns flags into
//! [`ConnectSettings`] and prints what the libraries report.

pub mod auth;
pub mod backoff;
pub mod bulk;
pub mod endpoint;
pub mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod message;
pub mod outbox;
pub mod outcome;
pub mod payload;
pub mod session;
pub mod settings;
pub mod tls;
pub mod topic;

pub use endpoint::{Endpoint, Scheme};
pub use error::ConnectError;
pub use message::{Message, Qos, Received};
pub use outbox::{Outbox, SpoolConfig, SpoolSync};
pub use outcome::Outcome;
pub use session::{Session, SessionEvent, SessionOptions, StartMode, Status};
pub use settings::ConnectSettings;
