//! Running a user's hook program for an agent (`iotc-send --on-command`, `mc-agent
//! --on-command TYPE=PROGRAM`), bounded in every direction, so a hook can neither wedge nor
//! flood the agent nor read its secrets:
//!
//! - **Time**: one deadline covers writing stdin, the run and reading the output. A hook that
//!   never reads a large stdin, never exits, or leaves a child behind is killed at the
//!   deadline, with its whole process group (it is started as the leader of a new group).
//! - **Output**: stdout and stderr are each kept up to [`Settings::output_cap`] bytes (64 KiB by
//!   default); the rest is read and discarded (and counted), so the hook never blocks on a full
//!   pipe and the agent's memory stays bounded.
//! - **Concurrency**: at most [`Settings::concurrency`] hooks of one [`Runner`] run at once
//!   (4 by default); the others wait for a slot (the wait does not count against their timeout).
//! - **Environment**: the hook starts from an empty environment and gets `PATH`, `HOME`,
//!   `LANG`, `LC_*`, `TZ` and `TMPDIR` from the agent, the variables named in
//!   [`Settings::pass_env`] (`--hook-env NAME`), and the context the agent sets for the call.
//!   Nothing else: not `GOOEE_TOKEN`, `HDM_API_KEY` or the variable `--password-env` names.
//!   Even `--hook-env` cannot pass a secret: the names in [`SECRET_VARIABLES`] and in
//!   [`Settings::withhold`] (the variables the agent reads its own secrets from) are dropped
//!   from `pass_env` with a warning.
//!
//! After the hook exits, its output pipes get [`LINGER`] to close (a background child it left
//! may hold them open); then they are dropped and the exit status counts. No clap, no sockets:
//! the agents decide what the hook's status and output mean.

#![deny(missing_docs)]

mod run;

use std::ffi::OsString;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// How long the output pipes may stay open after the hook exited.
pub const LINGER: Duration = Duration::from_millis(500);
/// Default cap on each of stdout and stderr.
pub const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;
/// Default number of hooks running at once.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// What a hook inherits from the agent's environment besides `LC_*` and the `pass_env` names.
pub const INHERITED: [&str; 5] = ["PATH", "HOME", "LANG", "TZ", "TMPDIR"];
/// Variables that hold secrets edgewire reads (or that the database drivers and AWS tools
/// read); a hook never gets them, whatever `pass_env` says.
pub const SECRET_VARIABLES: [&str; 8] = [
    "GOOEE_TOKEN",
    "HDM_API_KEY",
    "HDM_AUTH_TOKEN",
    "PGPASSWORD",
    "MYSQL_PWD",
    "MQTT_SINK_DB",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Limits shared by every hook one runner starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Hooks running at once (at least 1).
    pub concurrency: usize,
    /// Bytes kept of stdout and, separately, of stderr.
    pub output_cap: usize,
    /// Names of the agent's environment variables the hook also gets (`--hook-env`).
    pub pass_env: Vec<String>,
    /// Names the hook never gets even when `pass_env` lists them: the variables this agent
    /// reads secrets from (`--password-env NAME` and the like), besides [`SECRET_VARIABLES`].
    pub withhold: Vec<String>,
}

impl Settings {
    /// Whether `name` holds a secret a hook must not see.
    pub fn is_withheld(&self, name: &str) -> bool {
        SECRET_VARIABLES.contains(&name) || self.withhold.iter().any(|w| w == name)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrency: DEFAULT_CONCURRENCY,
            output_cap: DEFAULT_OUTPUT_CAP,
            pass_env: Vec::new(),
            withhold: Vec::new(),
        }
    }
}

/// One run of a hook.
#[derive(Debug, Clone, Default)]
pub struct Call {
    /// The program (looked up in `PATH` when it has no `/`).
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Context variables the agent sets for this call (documented per agent).
    pub env: Vec<(String, String)>,
    /// What the hook reads on stdin.
    pub stdin: Vec<u8>,
    /// Longest the hook may take, stdin and output included.
    pub timeout: Duration,
}

/// Captured output of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The first bytes, up to the cap.
    pub bytes: Vec<u8>,
    /// How many bytes after those were read and discarded.
    pub discarded: u64,
}

impl Captured {
    /// The kept bytes as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// How a hook ended.
#[derive(Debug)]
pub enum Ending {
    /// It exited (or was killed by a signal) on its own.
    Exited(ExitStatus),
    /// It outlived its timeout; its process group was killed.
    TimedOut,
    /// It could not be started.
    NotStarted(std::io::Error),
}

/// What a run produced.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub ending: Ending,
    /// Its stdout, capped.
    pub stdout: Captured,
    /// Its stderr, capped.
    pub stderr: Captured,
}

impl Finished {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        matches!(&self.ending, Ending::Exited(s) if s.success())
    }
}

/// Starts hooks within shared limits; cheap to clone (clones share the concurrency limit).
#[derive(Debug, Clone)]
pub struct Runner {
    settings: Arc<Settings>,
    slots: Arc<Semaphore>,
    parent_env: Option<Arc<Vec<(OsString, OsString)>>>,
}

impl Default for Runner {
    fn default() -> Self {
        Runner::new(Settings::default())
    }
}

impl Runner {
    /// A runner whose hooks inherit from this process's environment (read at each run). A
    /// `pass_env` name that holds a secret is dropped here, with a warning.
    pub fn new(mut settings: Settings) -> Self {
        let withheld: Vec<String> = settings
            .pass_env
            .iter()
            .filter(|n| settings.is_withheld(n))
            .cloned()
            .collect();
        for name in &withheld {
            tracing::warn!(
                "--hook-env {name} is ignored: `{name}` holds a secret, and hooks never get the agent's secrets (pass the hook its own credentials, e.g. in a file only it reads)"
            );
        }
        settings.pass_env.retain(|n| !withheld.contains(n));
        let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        Runner {
            settings: Arc::new(settings),
            slots,
            parent_env: None,
        }
    }

    /// A runner whose hooks inherit from `env` instead of this process's environment (what an
    /// agent started with that environment would pass on; for tests).
    pub fn with_parent_env(settings: Settings, env: Vec<(OsString, OsString)>) -> Self {
        Runner {
            parent_env: Some(Arc::new(env)),
            ..Runner::new(settings)
        }
    }

    /// The limits.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Runs `call` once a slot is free and waits for it to end (bounded by its timeout).
    pub async fn run(&self, call: Call) -> Finished {
        let Ok(_slot) = self.slots.acquire().await else {
            // The semaphore is never closed; keep the type honest anyway.
            return Finished {
                ending: Ending::NotStarted(std::io::Error::other("hook runner closed")),
                stdout: Captured::default(),
                stderr: Captured::default(),
            };
        };
        let env = self.environment(&call);
        run::supervise(&call, env, self.settings.output_cap).await
    }

    /// The hook's whole environment: the inherited names, the pass-through names, the call's
    /// context (which wins).
    fn environment(&self, call: &Call) -> Vec<(OsString, OsString)> {
        let parent: Vec<(OsString, OsString)> = match &self.parent_env {
            Some(env) => env.as_ref().clone(),
            None => std::env::vars_os().collect(),
        };
        let wanted = |name: &str| {
            (INHERITED.contains(&name)
                || name.starts_with("LC_")
                || self.settings.pass_env.iter().any(|p| p == name))
                && !self.settings.is_withheld(name)
        };
        let mut env: Vec<(OsString, OsString)> = parent
            .into_iter()
            .filter(|(k, _)| k.to_str().is_some_and(wanted))
            .collect();
        for (k, v) in &call.env {
            env.retain(|(name, _)| name.as_os_str() != k.as_str());
            env.push((k.into(), v.into()));
        }
        env
    }
}
