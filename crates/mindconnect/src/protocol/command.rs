//! Commands (`i/cmd_v3/c`) and their execution status (`o/cmd_v3/u`: `EXECUTING`, then
//! `EXECUTED` or `FAILED`), both directions; the sample's built-in command types
//! (`actuator_control`, `light_control`, `firmware_update`) as a pure plan; and which user hook
//! handles a command type. Running a hook is the agent's job; this module only decides.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::envelope::Request;

/// `i/cmd_v3/c`: `{"id", "data": {"jobId", "createdAt", "payload"}}`.
pub type CommandMessage = Request<CommandData>;

/// A command's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandData {
    /// Delivery job id.
    pub job_id: String,
    /// When the job was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// What the operator sent (`commandType`, `execute_command`, ...).
    #[serde(default)]
    pub payload: Map<String, Value>,
}

impl CommandData {
    /// `payload.commandType`.
    pub fn command_type(&self) -> Option<&str> {
        self.payload.get("commandType").and_then(Value::as_str)
    }

    /// `payload.execute_command`.
    pub fn execute_command(&self) -> Option<&str> {
        self.payload.get("execute_command").and_then(Value::as_str)
    }
}

/// `o/cmd_v3/u`: `{"id", "requestId", "data": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandStatusMessage {
    /// A new id per status message.
    pub id: String,
    /// The command message's `id`.
    pub request_id: String,
    /// The status.
    pub data: CommandStatus,
}

/// One status of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandStatus {
    /// RFC 3339 UTC.
    pub timestamp: String,
    /// The job.
    pub job_id: String,
    /// State.
    pub status: ExecStatus,
    /// Free-form response, e.g. `{"message": "..."}`.
    #[serde(default)]
    pub response: Value,
}

/// Execution state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ExecStatus {
    /// Working on it.
    Executing,
    /// Done.
    Executed,
    /// Could not be done.
    Failed,
    /// Anything else.
    Other(String),
}

impl From<String> for ExecStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            "EXECUTING" => ExecStatus::Executing,
            "EXECUTED" => ExecStatus::Executed,
            "FAILED" => ExecStatus::Failed,
            _ => ExecStatus::Other(s),
        }
    }
}

impl From<ExecStatus> for String {
    fn from(s: ExecStatus) -> Self {
        match s {
            ExecStatus::Executing => "EXECUTING".into(),
            ExecStatus::Executed => "EXECUTED".into(),
            ExecStatus::Failed => "FAILED".into(),
            ExecStatus::Other(s) => s,
        }
    }
}

impl ExecStatus {
    /// Whether this ends the job.
    pub fn is_final(&self) -> bool {
        matches!(self, ExecStatus::Executed | ExecStatus::Failed)
    }
}

/// A status message for `cmd`.
pub fn status_message(
    cmd: &CommandMessage,
    id: String,
    timestamp: String,
    status: ExecStatus,
    response: Value,
) -> CommandStatusMessage {
    CommandStatusMessage {
        id,
        request_id: cmd.id.clone(),
        data: CommandStatus {
            timestamp,
            job_id: cmd.data.job_id.clone(),
            status,
            response,
        },
    }
}

/// A command as the platform delivers it (`POST /api/commanding/v3/deliveryJobs` passes its
/// `data` through as `payload`).
pub fn delivery(
    request_id: String,
    job_id: String,
    created_at: String,
    payload: Map<String, Value>,
) -> CommandMessage {
    CommandMessage {
        id: request_id,
        data: CommandData {
            job_id,
            created_at: Some(created_at),
            payload,
        },
    }
}

/// What to do with a command after the first `EXECUTING`.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Built-in handling: these statuses, in order (the last one final).
    Builtin(Vec<(ExecStatus, Value)>),
    /// Run this user program; its outcome decides `EXECUTED` or `FAILED`.
    Hook(String),
}

/// The hook key that handles every type without its own hook.
pub const ANY_TYPE: &str = "*";

/// Decides how to handle `cmd`: a hook for its type (or `*`) wins; otherwise the sample's
/// built-in types; anything else fails with the sample's "Invalid Command Type Entered.".
pub fn plan(cmd: &CommandData, hooks: &BTreeMap<String, String>) -> Plan {
    let kind = cmd.command_type();
    if let Some(h) = kind
        .and_then(|k| hooks.get(k))
        .or_else(|| hooks.get(ANY_TYPE))
    {
        return Plan::Hook(h.clone());
    }
    let exec = cmd.execute_command();
    let switch = |allowed: [&str; 2]| match exec {
        Some(e) if allowed.contains(&e) => vec![(
            ExecStatus::Executed,
            json!({"message": format!("Successfully Executed {e}")}),
        )],
        _ => vec![(
            ExecStatus::Failed,
            json!({"message": "Invalid Command Provided"}),
        )],
    };
    Plan::Builtin(match kind {
        Some("actuator_control") => switch(["START", "STOP"]),
        Some("light_control") => switch(["ON", "OFF"]),
        Some("firmware_update") => vec![
            (
                ExecStatus::Executing,
                json!({"progress": "50% upgrade done", "overall_status": "healthy"}),
            ),
            (
                ExecStatus::Executed,
                json!({"progress": "100% upgrade done", "overall_status": "healthy"}),
            ),
        ],
        _ => vec![(
            ExecStatus::Failed,
            json!({"message": "Invalid Command Type Entered."}),
        )],
    })
}

/// The first status every command gets.
pub fn executing_response(cmd: &CommandData) -> Value {
    json!({"message": format!("Executing {}", cmd.command_type().unwrap_or("command"))})
}

#[cfg(test)]
mod tests {
    use super::super::envelope::{decode, encode, strategies};
    use super::*;
    use proptest::prelude::*;

    fn cmd(payload: &Value) -> CommandData {
        CommandData {
            job_id: "j".into(),
            created_at: None,
            payload: payload.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn documented_command_decodes() {
        // protocols/mindconnect.md 3.10, from [D-cmd].
        let c: CommandMessage = decode("command", br#"{"id":"9960","data":{"jobId":"2134","createdAt":"2011-08-12T20:17:46.384Z","payload":{"commandType":"actuator_control","execute_command":"START"}}}"#).unwrap();
        assert_eq!(c.data.command_type(), Some("actuator_control"));
        let s = status_message(
            &c,
            "n".into(),
            "t".into(),
            ExecStatus::Executed,
            json!({"message":"ok"}),
        );
        assert_eq!(
            String::from_utf8(encode(&s)).unwrap(),
            r#"{"id":"n","requestId":"9960","data":{"timestamp":"t","jobId":"2134","status":"EXECUTED","response":{"message":"ok"}}}"#
        );
    }

    #[test]
    fn builtin_types_follow_the_sample() {
        let hooks = BTreeMap::new();
        let last = |p: Plan| match p {
            Plan::Builtin(v) => v.last().cloned().unwrap(),
            Plan::Hook(_) => panic!(),
        };
        assert_eq!(
            last(plan(
                &cmd(&json!({"commandType":"light_control","execute_command":"ON"})),
                &hooks
            ))
            .0,
            ExecStatus::Executed
        );
        assert_eq!(
            last(plan(
                &cmd(&json!({"commandType":"light_control","execute_command":"DIM"})),
                &hooks
            ))
            .1["message"],
            "Invalid Command Provided"
        );
        assert_eq!(
            last(plan(&cmd(&json!({"commandType":"reboot"})), &hooks)).1["message"],
            "Invalid Command Type Entered."
        );
        assert_eq!(last(plan(&cmd(&json!({})), &hooks)).0, ExecStatus::Failed);
    }

    #[test]
    fn hooks_win_by_type_then_wildcard() {
        let hooks = BTreeMap::from([
            ("reboot".to_owned(), "reboot.sh".to_owned()),
            ("*".to_owned(), "any.sh".to_owned()),
        ]);
        assert_eq!(
            plan(&cmd(&json!({"commandType":"reboot"})), &hooks),
            Plan::Hook("reboot.sh".into())
        );
        assert_eq!(
            plan(&cmd(&json!({"commandType":"light_control"})), &hooks),
            Plan::Hook("any.sh".into())
        );
    }

    proptest! {
        #[test]
        fn roundtrips(id in strategies::text(), job in strategies::text(), k in strategies::text(), v in strategies::text(), st in "[A-Z]{0,10}") {
            let mut payload = Map::new();
            payload.insert(k, Value::String(v));
            let c = delivery(id, job, "2020-01-01T00:00:00.000Z".into(), payload);
            prop_assert_eq!(decode::<CommandMessage>("command", &encode(&c)).unwrap(), c.clone());
            let s = status_message(&c, "x".into(), "t".into(), ExecStatus::from(st), json!({"message": "m"}));
            prop_assert_eq!(decode::<CommandStatusMessage>("command status", &encode(&s)).unwrap(), s);
        }

        #[test]
        fn hostile_input_never_panics(bytes in strategies::hostile()) {
            if let Ok(c) = decode::<CommandMessage>("command", &bytes) { let _ = plan(&c.data, &BTreeMap::new()); }
            let _ = decode::<CommandStatusMessage>("command status", &bytes);
        }
    }
}
