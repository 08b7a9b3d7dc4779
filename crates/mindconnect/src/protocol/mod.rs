//! MindConnect MQTT as data: topics and exact routing, every payload in both directions, the
//! seed's templates as a typed step, the Asset Modeler's checks, and the agent's state machine.
//! Nothing here awaits, reads a clock, generates randomness or touches files and sockets: the
//! agent and the platform side both build on it, so they cannot drift apart.

pub mod agent_ini;
pub mod command;
pub mod custom;
pub mod datalake;
pub mod envelope;
pub mod event;
pub mod file;
pub mod machine;
pub mod model;
pub mod template;
pub mod timeseries;
pub mod timestamp;
pub mod token;
pub mod topic;
pub mod v4;
pub mod validate;

pub use envelope::{DecodeError, Reply, Request, Scalar, decode, encode};
pub use topic::{Channel, Topics};
