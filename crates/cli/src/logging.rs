//! Logs go to stderr through tracing, never to stdout (which carries the events).

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Sets up tracing to stderr. `RUST_LOG` wins; otherwise `-v` steps warn → info → debug → trace
/// and `--quiet` shows errors only.
///
/// `RUST_LOG` takes `level` and `target=level` directives, comma-separated (tracing's
/// `Targets` syntax): the span and field filters of `EnvFilter` are left out because their
/// regex engine was the largest single piece of every agent's code.
pub fn init(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| s.parse::<Targets>().ok());
    let filter = from_env.unwrap_or_else(|| {
        format!("{level},rumqttc=error,mqtt5=error")
            .parse()
            .unwrap_or_default()
    });
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .with_max_level(tracing::Level::TRACE)
        .finish()
        .with(filter)
        .try_init();
}
