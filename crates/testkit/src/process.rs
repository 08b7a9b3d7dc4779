//! Child-process helpers shared by the broker and the subscriber: signals via
//! the `kill` command (no libc, `unsafe` is forbidden), bounded waits, bounded
//! polling and unique tokens for names.

use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Sends `signal` (e.g. `"TERM"`) to a child that has not been reaped yet
/// (so its pid cannot have been reused). Returns a description on failure.
pub(crate) fn signal(child: &Child, signal: &str) -> Result<(), String> {
    let pid = child.id().to_string();
    match Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(&pid)
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`kill -{signal} {pid}` failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run `kill -{signal} {pid}`: {e}")),
    }
}

/// Polls `child` until it exits or `timeout` passes.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("testkit: try_wait on child {} failed: {e}", child.id()),
        }
    }
}

/// SIGKILLs and reaps a child; errors (e.g. already exited) are ignored.
pub(crate) fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A token unique within this machine for this run: pid, time and a counter.
pub(crate) fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{nanos:09}-{n}", std::process::id())
}
