//! One hook process from spawn to reaping: feed stdin, drain both outputs into capped buffers,
//! wait for the exit, all against one deadline; kill the process group when the deadline
//! passes or when the caller stops waiting (the future is dropped).

use std::ffi::OsString;
use std::process::Stdio;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::time::Instant;

use crate::{Call, Captured, Ending, Finished, LINGER};

/// Kills the hook's process group unless the run finished with the group leader reaped.
struct GroupGuard {
    group: Option<Pid>,
}

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pid) = self.group.take()
            && let Err(e) = kill_process_group(pid, Signal::KILL)
            && e != rustix::io::Errno::SRCH
        {
            tracing::warn!("cannot kill the hook's process group {pid:?}: {e}");
        }
    }

    fn disarm(&mut self) {
        self.group = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) async fn supervise(call: &Call, env: Vec<(OsString, OsString)>, cap: usize) -> Finished {
    let mut stdout = Captured::default();
    let mut stderr = Captured::default();
    let mut cmd = tokio::process::Command::new(&call.program);
    cmd.args(&call.args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a timeout kills what it started too, and the terminal's
        // Ctrl-C goes to the agent, which then stops its hooks itself.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Finished {
                ending: Ending::NotStarted(e),
                stdout,
                stderr,
            };
        }
    };
    let mut guard = GroupGuard {
        group: child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw),
    };
    let deadline = Instant::now() + call.timeout;
    let status = watch(
        &mut child,
        &call.stdin,
        &mut stdout,
        &mut stderr,
        cap,
        deadline,
    )
    .await;
    let ending = match status {
        Some(Ok(status)) => {
            guard.disarm();
            Ending::Exited(status)
        }
        Some(Err(e)) => {
            guard.kill();
            Ending::NotStarted(e)
        }
        None => {
            guard.kill();
            // The leader directly too, should the group kill have failed; then reap it
            // (SIGKILL cannot be ignored, so this returns at once).
            let _ = child.start_kill();
            let _ = child.wait().await;
            Ending::TimedOut
        }
    };
    Finished {
        ending,
        stdout,
        stderr,
    }
}

/// Feeds, drains and waits until the hook exited and its pipes closed (or [`LINGER`] after the
/// exit), or until `deadline`: `None` then.
async fn watch(
    child: &mut Child,
    input: &[u8],
    stdout: &mut Captured,
    stderr: &mut Captured,
    cap: usize,
    deadline: Instant,
) -> Option<std::io::Result<std::process::ExitStatus>> {
    let feed = feed(child.stdin.take(), input);
    let out = drain(child.stdout.take(), stdout, cap);
    let err = drain(child.stderr.take(), stderr, cap);
    tokio::pin!(feed, out, err);
    let (mut fed, mut out_done, mut err_done) = (false, false, false);
    let mut status = None;
    let mut until = deadline;
    loop {
        tokio::select! {
            () = &mut feed, if !fed => fed = true,
            () = &mut out, if !out_done => out_done = true,
            () = &mut err, if !err_done => err_done = true,
            s = child.wait(), if status.is_none() => {
                status = Some(s);
                until = deadline.min(Instant::now() + LINGER);
            }
            () = tokio::time::sleep_until(until) => return status,
        }
        if status.is_some() && out_done && err_done {
            return status;
        }
    }
}

/// Writes `input` and closes stdin (EOF); a hook that exits without reading it is fine.
async fn feed(stdin: Option<ChildStdin>, input: &[u8]) {
    if let Some(mut stdin) = stdin {
        let _ = stdin.write_all(input).await;
        let _ = stdin.shutdown().await;
    }
}

/// Reads `pipe` to its end, keeping the first `cap` bytes and counting the rest.
async fn drain(pipe: Option<impl AsyncRead + Unpin>, into: &mut Captured, cap: usize) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let keep = n.min(cap.saturating_sub(into.bytes.len()));
                into.bytes.extend_from_slice(&buf[..keep]);
                into.discarded += (n - keep) as u64;
            }
        }
    }
}
