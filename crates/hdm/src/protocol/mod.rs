//! The HDM protocol as data: pure functions and types shared by the agent and the cloud side.
//! Nothing here opens a file or a socket or reads the clock; time comes in as an argument.

pub mod config;
pub mod directory;
pub mod env;
pub mod envelope;
pub mod generation;
pub mod json;
pub mod lowercase;
pub mod oauth;
pub mod shadow;
pub mod store;
pub mod topics;
