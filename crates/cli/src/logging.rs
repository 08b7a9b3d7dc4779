//! Logs go to stderr through tracing, never to stdout (which carries the events).

use std::io::IsTerminal;

/// Sets up tracing to stderr. `RUST_LOG` wins; otherwise `-v` steps warn → info → debug → trace
/// and `--quiet` shows errors only.
pub fn init(verbose: u8, quiet: bool) {
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
