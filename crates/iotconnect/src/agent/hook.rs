//! The user's command hook: a program (never a shell line) run for each device command, edge
//! rule command and OTA, with the command's JSON on stdin and in `IOTC_DATA`, and
//! `IOTC_CMD_TYPE`, `IOTC_COMMAND`, `IOTC_UNIQUE_ID`, `IOTC_ACK_ID` (and `IOTC_OTA_FILES`) in
//! its environment. Exit status 0 means success; the first line of its output becomes the
//! acknowledgement message. The shared runner (`hook`) bounds it: a timeout that kills its
//! process group (the hook counts as failed), capped output, a limit on hooks at once, and an
//! environment of `PATH`, `HOME`, `LANG`, `LC_*`, `TZ`, `TMPDIR`, the `IOTC_*` context and the
//! `--hook-env` names only.

use std::path::PathBuf;
use std::time::Duration;

use hook::{Ending, Runner};
use serde_json::Value;

/// A program to run.
#[derive(Debug, Clone)]
pub struct Hook {
    /// The program.
    pub program: PathBuf,
    /// Arguments before the command text.
    pub args: Vec<String>,
    /// Longest run.
    pub timeout: Duration,
    /// The limits it runs in (shared by the agent's hooks).
    pub runner: Runner,
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
        let mut args: Vec<std::ffi::OsString> = self.args.iter().map(Into::into).collect();
        args.push(call.command.clone().into());
        let done = self
            .runner
            .run(hook::Call {
                program: self.program.clone().into(),
                args,
                env: vec![
                    ("IOTC_CMD_TYPE".into(), call.cmd_type.clone()),
                    ("IOTC_COMMAND".into(), call.command.clone()),
                    ("IOTC_UNIQUE_ID".into(), call.unique_id.clone()),
                    ("IOTC_ACK_ID".into(), call.ack_id.clone()),
                    ("IOTC_DATA".into(), data.clone()),
                    ("IOTC_OTA_FILES".into(), files),
                ],
                stdin: data.into_bytes(),
                timeout: self.timeout,
            })
            .await;
        let (stdout, stderr) = (done.stdout.text(), done.stderr.text());
        match done.ending {
            Ending::NotStarted(e) => HookOutcome {
                ok: false,
                msg: format!("cannot run hook `{}`: {e}", self.program.display()),
            },
            Ending::TimedOut => HookOutcome {
                ok: false,
                msg: format!("hook timed out after {} s", self.timeout.as_secs()),
            },
            Ending::Exited(status) if status.success() => HookOutcome {
                ok: true,
                msg: clip(stdout.lines().next().unwrap_or("")),
            },
            Ending::Exited(status) => {
                let last_of =
                    |t: &str| t.lines().rfind(|l| !l.trim().is_empty()).map(str::to_owned);
                let last = last_of(&stderr).or_else(|| last_of(&stdout));
                HookOutcome {
                    ok: false,
                    msg: clip(&last.unwrap_or_else(|| format!("hook exited with {status}"))),
                }
            }
        }
    }
}
