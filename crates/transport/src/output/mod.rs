//! Output for people and for scripts: human lines or NDJSON on stdout, logs on stderr via
//! tracing, progress bars only when stderr is a terminal. The one place that prints.

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

/// Sets up tracing to stderr. `RUST_LOG` wins; otherwise `-v` steps warn → info → debug → trace
/// and `--quiet` shows errors only.
pub fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},rumqttc=error,mqtt5=error"))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .try_init();
}

/// Runs a binary's async `main` on the runtime every edgewire binary uses (two worker threads:
/// the machines we target are small) and turns its exit code into an [`std::process::ExitCode`].
pub fn block_on(main: impl std::future::Future<Output = u8>) -> std::process::ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => std::process::ExitCode::from(rt.block_on(main)),
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            std::process::ExitCode::from(exit::FAILURE)
        }
    }
}
