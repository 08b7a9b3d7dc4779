//! Executing commands from `i/cmd_v3/c`: `EXECUTING` first, then the protocol's plan: the
//! sample's built-in types, or a user hook (`--on-command TYPE=PROGRAM`) run with `sh -c`, the
//! command's payload on stdin and `MC_COMMAND_TYPE`, `MC_EXECUTE_COMMAND`, `MC_JOB_ID`,
//! `MC_REQUEST_ID` in its environment. Exit 0 → `EXECUTED` (stdout as the message, or as the
//! whole response when it is a JSON object); otherwise or on timeout → `FAILED` with the reason.
//! The shared runner (`hook`) bounds each hook: the timeout kills its process group, output is
//! capped, hooks at once are limited, and the environment is `PATH`, `HOME`, `LANG`, `LC_*`,
//! `TZ`, `TMPDIR`, the `MC_*` context and the `--hook-env` names only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hook::{Ending, Runner};
use serde_json::{Value, json};
use transport::{Message, Qos, Session};

use crate::protocol::command::{
    CommandMessage, ExecStatus, Plan, executing_response, plan, status_message,
};
use crate::protocol::envelope::encode;
use crate::protocol::timestamp;
use crate::protocol::topic::{Channel, Topics};

use super::{AgentError, Event, Reporter};

/// Longest hook output kept in a response.
const MAX_OUTPUT: usize = 4096;

/// Executes commands for one agent.
#[derive(Clone)]
pub struct CommandRunner {
    /// Session to answer on.
    pub session: Session,
    /// The agent's topics.
    pub topics: Topics,
    /// Command type (or `*`) → program.
    pub hooks: Arc<BTreeMap<String, String>>,
    /// Longest a hook may run.
    pub hook_timeout: Duration,
    /// The limits hooks run in.
    pub hook_runner: Runner,
    /// QoS of the status messages.
    pub qos: Qos,
    /// Where events go.
    pub report: Reporter,
}

impl CommandRunner {
    /// Executes `cmd` and answers it; returns the final status.
    pub async fn execute(&self, cmd: CommandMessage) -> Result<ExecStatus, AgentError> {
        (self.report)(&Event::CommandReceived {
            job_id: cmd.data.job_id.clone(),
            command_type: cmd.data.command_type().map(str::to_owned),
        });
        self.send(&cmd, ExecStatus::Executing, executing_response(&cmd.data))
            .await?;
        let steps = match plan(&cmd.data, &self.hooks) {
            Plan::Builtin(steps) => steps,
            Plan::Hook(program) => {
                vec![run_hook(&self.hook_runner, &program, &cmd, self.hook_timeout).await]
            }
        };
        let mut last = ExecStatus::Failed;
        for (status, response) in steps {
            self.send(&cmd, status.clone(), response).await?;
            last = status;
        }
        Ok(last)
    }

    async fn send(
        &self,
        cmd: &CommandMessage,
        status: ExecStatus,
        response: Value,
    ) -> Result<(), AgentError> {
        let now = time::OffsetDateTime::now_utc();
        let msg = status_message(
            cmd,
            super::request_id(),
            timestamp::format(now),
            status.clone(),
            response.clone(),
        );
        let topic = self.topics.topic(Channel::CommandStatus);
        self.session
            .publish(Message::new(topic.clone(), encode(&msg)).with_qos(self.qos))
            .await
            .map_err(|source| AgentError::Publish {
                what: "command status",
                topic,
                source,
            })?;
        (self.report)(&Event::CommandStatus {
            job_id: cmd.data.job_id.clone(),
            status: status.into(),
            response,
        });
        Ok(())
    }
}

fn clip(s: &[u8]) -> String {
    String::from_utf8_lossy(s)
        .trim()
        .chars()
        .take(MAX_OUTPUT)
        .collect()
}

/// Runs `program` for `cmd` with `sh -c` in `runner`'s limits; the status and response to send.
pub async fn run_hook(
    runner: &Runner,
    program: &str,
    cmd: &CommandMessage,
    timeout: Duration,
) -> (ExecStatus, Value) {
    let kind = cmd.data.command_type().unwrap_or_default();
    let done = runner
        .run(hook::Call {
            program: "sh".into(),
            args: vec!["-c".into(), program.into()],
            env: vec![
                ("MC_COMMAND_TYPE".into(), kind.to_owned()),
                (
                    "MC_EXECUTE_COMMAND".into(),
                    cmd.data.execute_command().unwrap_or_default().to_owned(),
                ),
                ("MC_JOB_ID".into(), cmd.data.job_id.clone()),
                ("MC_REQUEST_ID".into(), cmd.id.clone()),
            ],
            stdin: encode(&cmd.data.payload),
            timeout,
        })
        .await;
    match done.ending {
        Ending::NotStarted(e) => (
            ExecStatus::Failed,
            json!({"message": format!("cannot run `{program}`: {e}")}),
        ),
        Ending::TimedOut => (
            ExecStatus::Failed,
            json!({"message": format!("`{program}` did not finish within {} s", timeout.as_secs())}),
        ),
        Ending::Exited(status) if status.success() => {
            let text = clip(&done.stdout.bytes);
            match serde_json::from_str::<Value>(&text) {
                Ok(v @ Value::Object(_)) => (ExecStatus::Executed, v),
                _ if text.is_empty() => (
                    ExecStatus::Executed,
                    json!({"message": format!("Successfully Executed {kind}")}),
                ),
                _ => (ExecStatus::Executed, json!({"message": text})),
            }
        }
        Ending::Exited(status) => (
            ExecStatus::Failed,
            json!({"message": format!("`{program}` exited with {status}: {}", clip(&done.stderr.bytes))}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::command::delivery;

    fn cmd() -> CommandMessage {
        delivery(
            "r1".into(),
            "j1".into(),
            "t".into(),
            json!({"commandType":"reboot","execute_command":"NOW"})
                .as_object()
                .cloned()
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn hooks_decide_executed_or_failed() {
        let s = Duration::from_secs(10);
        let runner = Runner::default();
        let (st, r) = run_hook(
            &runner,
            "cat >/dev/null; echo \"done $MC_COMMAND_TYPE $MC_EXECUTE_COMMAND $MC_JOB_ID\"",
            &cmd(),
            s,
        )
        .await;
        assert_eq!(
            (st, r["message"].as_str()),
            (ExecStatus::Executed, Some("done reboot NOW j1"))
        );
        let (st, r) = run_hook(&runner, "echo '{\"progress\":\"100%\"}'", &cmd(), s).await;
        assert_eq!((st, r), (ExecStatus::Executed, json!({"progress":"100%"})));
        let (st, r) = run_hook(&runner, "echo nope >&2; exit 3", &cmd(), s).await;
        assert_eq!(st, ExecStatus::Failed);
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .contains("exit status: 3: nope"),
            "{r}"
        );
        // The payload arrives on stdin; echoed back, it is a JSON object and becomes the response.
        let (st, r) = run_hook(&runner, "read x; echo \"$x\"", &cmd(), s).await;
        assert_eq!(
            (st, &r["commandType"]),
            (ExecStatus::Executed, &json!("reboot")),
            "{r}"
        );
        let (st, r) = run_hook(&runner, "sleep 5", &cmd(), Duration::from_millis(100)).await;
        assert_eq!(st, ExecStatus::Failed);
        assert!(
            r["message"].as_str().unwrap().contains("did not finish"),
            "{r}"
        );
    }
}
