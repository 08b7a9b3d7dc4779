//! The user's command hook: a program (never a shell line) run for each device command, edge
//! rule command and OTA, with the command's JSON on stdin and in `IOTC_DATA`, and
//! `IOTC_CMD_TYPE`, `IOTC_COMMAND`, `IOTC_UNIQUE_ID`, `IOTC_ACK_ID` (and `IOTC_OTA_FILES`) in
//! its environment. Exit status 0 means success; the first line of its output becomes the
//! acknowledgement message. A hook that outlives its timeout is killed and counts as failed.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// A program to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// The program.
    pub program: PathBuf,
    /// Arguments before the command text.
    pub args: Vec<String>,
    /// Longest run.
    pub timeout: Duration,
}

/// What to tell the hook.
#[derive(Debug, Clone, Default)]
pub struct HookCall {
    /// `0x01`, `0x02`, `rule`.
    pub cmd_type: String,
    /// Command text (also the last argument).
    pub command: String,
    /// Target device.
    pub unique_id: String,
    /// Acknowledgement id.
    pub ack_id: String,
    /// The command's data.
    pub data: Value,
    /// Downloaded OTA files.
    pub files: Vec<PathBuf>,
}

/// How the hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOutcome {
    /// Exit status 0.
    pub ok: bool,
    /// First line of stdout (success) or the last line of stderr/stdout (failure).
    pub msg: String,
}

fn clip(s: &str) -> String {
    let s = s.trim();
    if s.len() > 200 {
        format!("{}…", &s[..s.floor_char_boundary(200)])
    } else {
        s.to_owned()
    }
}

impl Hook {
    /// Runs the hook.
    pub async fn run(&self, call: &HookCall) -> HookOutcome {
        let files = call
            .files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join("\n");
        let data = call.data.to_string();
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .arg(&call.command)
            .env("IOTC_CMD_TYPE", &call.cmd_type)
            .env("IOTC_COMMAND", &call.command)
            .env("IOTC_UNIQUE_ID", &call.unique_id)
            .env("IOTC_ACK_ID", &call.ack_id)
            .env("IOTC_DATA", &data)
            .env("IOTC_OTA_FILES", files)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return HookOutcome {
                    ok: false,
                    msg: format!("cannot run hook `{}`: {e}", self.program.display()),
                };
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            // A hook that does not read stdin closes it early; that is not an error.
            let _ = stdin.write_all(data.as_bytes()).await;
        }
        match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Err(_) => HookOutcome {
                ok: false,
                msg: format!("hook timed out after {} s", self.timeout.as_secs()),
            },
            Ok(Err(e)) => HookOutcome {
                ok: false,
                msg: format!("hook failed: {e}"),
            },
            Ok(Ok(out)) => {
                let stdout = String::from_utf8_lossy(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr);
                if out.status.success() {
                    HookOutcome {
                        ok: true,
                        msg: clip(stdout.lines().next().unwrap_or("")),
                    }
                } else {
                    let last_of =
                        |t: &str| t.lines().rfind(|l| !l.trim().is_empty()).map(str::to_owned);
                    let last = last_of(&stderr).or_else(|| last_of(&stdout));
                    HookOutcome {
                        ok: false,
                        msg: clip(
                            &last.unwrap_or_else(|| format!("hook exited with {}", out.status)),
                        ),
                    }
                }
            }
        }
    }
}
