//! `mc-agent run` and `timeseries` flags, turned into the library's run options.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use cli::args::{HookArgs, SpoolArgs};
use mindconnect::agent::oneshot::EventSource;
use mindconnect::agent::run::RunOptions;
use mindconnect::agent::source::ValueSource;
use mindconnect::agent::{AgentError, Event, Reporter};
use mindconnect::config::{ModelApi, Settings};
use mindconnect::protocol::event::EventInput;
use mindconnect::protocol::machine::{Plan, Task};
use mindconnect_cli::{ConfigArgs, parse_interval};

/// An interval flag: a duration, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub Option<Duration>);

fn interval(s: &str) -> Result<Interval, String> {
    parse_interval(s).map(Interval)
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_interval(s)?.ok_or_else(|| "a duration cannot be `off`".into())
}

fn hook(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((t, p)) if !t.is_empty() && !p.trim().is_empty() => Ok((t.to_owned(), p.to_owned())),
        _ => Err(format!(
            "`{s}` is not TYPE=PROGRAM (e.g. firmware_update=./update.sh, or *=./any.sh)"
        )),
    }
}

fn model_api(s: &str) -> Result<ModelApi, String> {
    ModelApi::parse(s).ok_or_else(|| {
        format!("`{s}` is not an asset model generation; use v3 (amo_v3, instance.conf) or v4 (amo_v4, agent.ini)")
    })
}

fn point(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not DATAPOINT=VALUE"))
}

/// Where timeseries values come from.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Values")]
pub struct ValueArgs {
    /// JSON lines file of {"dataPointId": value, ...} (or whole timeseries messages); `-` for stdin.
    #[arg(long, value_name = "FILE|-", conflicts_with = "value")]
    pub values: Option<PathBuf>,
    /// One data point value, repeatable (e.g. --value temperature=31.5).
    #[arg(long, value_name = "DATAPOINT=VALUE", value_parser = point)]
    pub value: Vec<(String, String)>,
    /// At most this many messages (default: 1 when simulated, all lines of a file or stdin).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

impl ValueArgs {
    /// The value source.
    pub fn source(&self) -> ValueSource {
        match (&self.values, self.value.is_empty()) {
            (Some(p), _) if p.as_os_str() == "-" => ValueSource::Stdin,
            (Some(p), _) => ValueSource::File(p.clone()),
            (None, false) => ValueSource::Points(self.value.clone()),
            (None, true) => ValueSource::Simulated,
        }
    }
}

/// `mc-agent event`: one event from flags, JSON lines from a file or stdin, or the template.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Event")]
pub struct EventArgs {
    /// The event type (SensorInterruptEvent, or one registered in Event Management).
    #[arg(long = "type", value_name = "TYPE", conflicts_with = "events")]
    pub event_type: Option<String>,
    /// 20 (error), 30 (warning) or 40 (information); the names work too.
    #[arg(long, value_name = "20|30|40", requires = "event_type", value_parser = severity)]
    pub severity: Option<u8>,
    /// The description.
    #[arg(long, value_name = "TEXT", requires = "event_type")]
    pub description: Option<String>,
    /// The event type's custom fields, as a JSON object (e.g. '{"utilizedPercentage": 60}').
    #[arg(long, value_name = "JSON", requires = "event_type", value_parser = details)]
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
    /// When it happened (RFC 3339 UTC; default: now).
    #[arg(long, value_name = "TIME", requires = "event_type")]
    pub timestamp: Option<String>,
    /// JSON lines of {"type", "severity", "description", "timestamp", "details"}; `-` for stdin.
    #[arg(long, value_name = "FILE|-")]
    pub events: Option<PathBuf>,
}

fn severity(s: &str) -> Result<u8, String> {
    mindconnect::protocol::event::parse_severity(s).map_err(|e| e.to_string())
}

fn details(s: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_str(s) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err("expected a JSON object such as {\"utilizedPercentage\": 60}".into()),
        Err(e) => Err(format!("not JSON ({e})")),
    }
}

impl EventArgs {
    /// The events to send, or `None` for the template.
    pub fn source(&self) -> Result<Option<EventSource>, AgentError> {
        if let Some(p) = &self.events {
            return Ok(Some(EventSource::Lines(p.clone())));
        }
        let Some(t) = &self.event_type else {
            return Ok(None);
        };
        let severity = self.severity.ok_or_else(|| {
            AgentError::Input(
                "--type needs --severity 20|30|40 (error, warning, information)".into(),
            )
        })?;
        Ok(Some(EventSource::One(EventInput {
            event_type: t.clone(),
            severity: severity.into(),
            description: self.description.clone(),
            timestamp: self.timestamp.clone(),
            details: self.details.clone().unwrap_or_default(),
        })))
    }
}

/// `mc-agent run`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Run")]
pub struct RunArgs {
    /// Stop after every enabled task ran N times (and the commands of --wait-commands were answered).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this long (e.g. 90s, 10m, 2h).
    #[arg(long, value_name = "TIME", value_parser = duration)]
    pub duration: Option<Duration>,
    /// The asset already exists: write instance.conf as CREATED instead of instantiating the model.
    #[arg(long)]
    pub assume_instantiated: bool,
    /// Asset model generation: v3 (amo_v3 instantiation, instance.conf) or v4 (amo_v4
    /// synchronisation, agent.ini). Overrides MODEL_API; without both, v4 when agent.ini exists.
    #[arg(long, value_name = "v3|v4", value_parser = model_api)]
    pub model_api: Option<ModelApi>,
    /// With --count: do not stop before N commands were answered.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub wait_commands: u64,
    /// Timeseries interval (`off` to disable).
    #[arg(long, value_name = "TIME", default_value = "60s", value_parser = interval)]
    pub ts_interval: Interval,
    /// Event interval (`off` to disable).
    #[arg(long, value_name = "TIME", default_value = "120s", value_parser = interval)]
    pub event_interval: Interval,
    /// File upload interval over MQTT (`off` to disable).
    #[arg(long, value_name = "TIME", default_value = "120s", value_parser = interval)]
    pub file_interval: Interval,
    /// Datalake upload interval over HTTPS (`off` to disable).
    #[arg(long, value_name = "TIME", default_value = "120s", value_parser = interval)]
    pub datalake_interval: Interval,
    /// JSON lines of values (`-` for stdin, sent as lines arrive); default: the built-in simulation.
    #[arg(long, value_name = "FILE|-")]
    pub values: Option<PathBuf>,
    /// File sent by the file task (default: the sample's execution log).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// File uploaded by the datalake task (default: a generated sensor-map-TIME.obj).
    #[arg(long, value_name = "PATH")]
    pub datalake_file: Option<PathBuf>,
    /// Run PROGRAM (sh -c, payload on stdin) for commands of TYPE; `*` for any type. Repeatable.
    #[arg(long = "on-command", value_name = "TYPE=PROGRAM", value_parser = hook)]
    pub hooks: Vec<(String, String)>,
    /// Longest a command hook may run.
    #[arg(long, value_name = "TIME", default_value = "60s", value_parser = duration)]
    pub hook_timeout: Duration,
    /// How many hooks at once, and what else of the environment they see.
    #[command(flatten)]
    pub hook_limits: HookArgs,
    /// Store-and-forward spool.
    #[command(flatten)]
    pub spool: SpoolArgs,
}

impl RunArgs {
    /// The library's run options.
    pub fn options(
        &self,
        cfg: &ConfigArgs,
        settings: Settings,
        report: &Reporter,
    ) -> Result<RunOptions, AgentError> {
        let (api, chosen_by) = ModelApi::choose(
            self.model_api,
            settings.file.model_api,
            cfg.agent_ini.is_file(),
        );
        report(&Event::ModelApi {
            api: api.as_str().into(),
            chosen_by: chosen_by.into(),
        });
        if api == ModelApi::V4 && self.assume_instantiated {
            return Err(AgentError::Input(format!(
                "--assume-instantiated is for v3 (instance.conf); the v4 synchronisation (chosen by {chosen_by}) downloads the cloud model and sends only what is missing, so an existing asset needs no flag"
            )));
        }
        let intervals: BTreeMap<Task, Duration> = [
            (Task::Timeseries, self.ts_interval.0),
            (Task::Event, self.event_interval.0),
            (Task::File, self.file_interval.0),
            (Task::Datalake, self.datalake_interval.0),
        ]
        .into_iter()
        .filter_map(|(t, i)| Some((t, i?)))
        .collect();
        let values = match &self.values {
            Some(p) if p.as_os_str() == "-" => ValueSource::Stdin,
            Some(p) => ValueSource::File(p.clone()),
            None => ValueSource::Simulated,
        };
        Ok(RunOptions {
            settings,
            templates: cfg.template_dir()?,
            instance_conf: Some(cfg.instance_conf.clone()),
            plan: Plan {
                intervals,
                count: self.count,
                duration: self.duration,
                wait_commands: self.wait_commands,
                answer_timeout: cfg.answer_timeout(),
            },
            values,
            file: self.file.clone(),
            datalake_file: self.datalake_file.clone(),
            hooks: self.hooks.iter().cloned().collect(),
            hook_timeout: self.hook_timeout,
            hook_runner: self.hook_limits.runner_withholding(&cfg.auth.password_env),
            qos: cfg.qos,
            outbox: self
                .spool
                .open(1024)
                .map_err(|e| AgentError::Input(e.to_string()))?,
            assume_instantiated: self.assume_instantiated,
            model_sync: if api == ModelApi::V4 {
                Some(mindconnect::agent::sync::SyncOptions {
                    local_model: cfg.local_model()?,
                    agent_ini: cfg.agent_ini.clone(),
                    timeout: cfg.answer_timeout(),
                    qos: cfg.qos,
                    force: false,
                })
            } else {
                None
            },
        })
    }
}
