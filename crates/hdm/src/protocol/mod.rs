//! The HDM protocol as data: pure functions and types shared by the agent and the cloud side.
//! Nothing here opens a file or a socket or reads the clock; time comes in as an argument.

pub mod config;
pub mod env;
pub mod envelope;
pub mod json;
pub mod shadow;
pub mod store;
pub mod topics;
