//! Waiting for something observable in an async test: poll a condition every few milliseconds
//! until it holds or a deadline passes. The one helper the integration tests share instead of
//! each writing its own loop; never a fixed sleep standing in for a wait.

use std::time::Duration;

/// How often a condition is re-checked.
const POLL: Duration = Duration::from_millis(10);

/// Polls `done` until it returns true or `timeout` passes; returns whether it held. For tests
/// that assert on the value afterwards (the assertion then shows what was there).
pub async fn until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `done` until it returns true; panics naming `what` after `timeout`.
#[track_caller]
pub fn expect(
    what: &str,
    timeout: Duration,
    done: impl FnMut() -> bool,
) -> impl Future<Output = ()> {
    let caller = std::panic::Location::caller();
    let what = what.to_owned();
    async move {
        assert!(
            until(timeout, done).await,
            "timed out after {timeout:?} waiting for {what} (at {caller})"
        );
    }
}
