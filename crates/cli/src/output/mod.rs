//! Output for people and for scripts: human lines or NDJSON on stdout, progress bars only when
//! stderr is a terminal. The one place that prints (logs go to stderr through
//! [`crate::logging`]).

mod connection;
pub mod contract;

use std::io::{IsTerminal, Write};

use serde::Serialize;

pub use contract::{Envelope, PayloadJson, exit};

/// `--output` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Sentences for people.
    #[default]
    Text,
    /// One JSON object per line: `{"type": ..., "data": ...}`.
    Json,
}

/// Prints events on stdout in the chosen format.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    format: Format,
}

impl Output {
    /// An output in `format`.
    pub fn new(format: Format) -> Self {
        Output { format }
    }

    /// Makes this output where every session the process opens reports its connection events
    /// (JSON format only; see `connection.rs`). Agents call it once in `main`; iot-sim only for
    /// `pub`, since its cloud sides' own sessions are not the user's connection.
    #[must_use]
    pub fn with_connection_events(self) -> Self {
        if self.format == Format::Json {
            connection::install(self);
        }
        self
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Prints one event: as NDJSON `{"type": kind, "data": data}`, or as the human `text`.
    /// A closed stdout (`| head`) is not an error.
    pub fn event<T: Serialize>(&self, kind: &str, data: &T, text: impl FnOnce() -> String) {
        let line = match self.format {
            Format::Json => match serde_json::to_string(&Envelope { kind, data }) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("cannot encode {kind} event: {e}");
                    return;
                }
            },
            Format::Text => text(),
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }

    /// A progress bar for `len` steps, drawn on stderr only for a terminal in text mode.
    pub fn progress(&self, len: u64, what: &str) -> indicatif::ProgressBar {
        if self.format == Format::Text && std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(len);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what.to_owned());
            bar
        } else {
            indicatif::ProgressBar::hidden()
        }
    }
}
