//! The front end every edgewire binary shares, and the only library crate that knows about a
//! command line or a terminal. Libraries (`transport`, the vendor crates, `sink`) take plain
//! option structs and report through their own callbacks; the binaries turn flags into those
//! structs with the conversions here and print what the libraries report through [`output`].
//!
//! # Layout
//! - [`args`]: clap argument groups every binary flattens in (`--broker`, `--cafile`,
//!   `--password-env`, `--spool`, `--output`, ...) and their conversion into
//!   [`transport::ConnectSettings`], [`transport::SessionOptions`] and [`transport::SpoolConfig`].
//! - [`output`]: text or NDJSON events on stdout, progress bars on a terminal; `output::contract`
//!   holds the exit codes and the event envelope that `docs/output.md` documents.
//! - [`logging`]: tracing to stderr (`-v`, `-q`, `RUST_LOG`).
//! - [`signal`]: the Ctrl-C/SIGTERM future long-running commands stop on.
//! - [`builtin`]: the `completions` and `man` subcommands every binary gets through [`parse`].
//! - [`runtime`]: the async runtime every binary runs its `main` on.

#![deny(missing_docs)]

pub mod args;
pub mod builtin;
pub mod logging;
pub mod output;
pub mod runtime;
pub mod signal;

pub use builtin::parse;
pub use output::{Format, Output, exit};
