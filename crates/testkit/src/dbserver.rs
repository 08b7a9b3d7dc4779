//! What the private servers ([`crate::Postgres`], [`crate::MariaDb`], [`crate::NatsCluster`],
//! [`crate::RabbitMq`]) share: the per-run folder, owned by the account the server runs as (PostgreSQL's `initdb` refuses root,
//! so as root the servers run as the `postgres`/`mysql` system users), a watchdog process that
//! stops the server and removes its folder when the test process ends, however it ends, and a
//! sweep that removes what a run left behind when its watchdog was killed too.
//!
//! Nothing here knows SQL; the server modules build their command lines.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::process::{kill_and_reap, unique_token, wait_timeout};

/// A system account a server process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The account to run a server as: `None` (this process's own) unless testkit runs as root,
/// then `system_user` from `/etc/passwd` (a test set-up without it panics saying which
/// package creates it).
pub(crate) fn server_account(system_user: &str, package: &str) -> Option<Account> {
    if !crate::broker::running_as_root() {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd")
        .unwrap_or_else(|e| panic!("testkit: cannot read /etc/passwd: {e}"));
    let found = passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 4 && f[0] == system_user).then(|| Account {
            name: system_user.to_owned(),
            uid: f[2].parse().unwrap_or(u32::MAX),
            gid: f[3].parse().unwrap_or(u32::MAX),
        })
    });
    match found {
        Some(a) if a.uid != u32::MAX && a.gid != u32::MAX => Some(a),
        _ => panic!(
            "testkit: running as root, so the database server must run as the system user \
             `{system_user}`, which /etc/passwd lacks (the {package} package creates it)"
        ),
    }
}

/// Runs `cmd` as `account` (when one is given): uid, gid, no supplementary groups, and a
/// `HOME`/`USER` that fit.
pub(crate) fn run_as(cmd: &mut Command, account: Option<&Account>) {
    if let Some(a) = account {
        cmd.uid(a.uid)
            .gid(a.gid)
            .env("USER", &a.name)
            .env("HOME", "/");
    }
}

/// Changes the owner of `path` to `account` (no-op without one).
pub(crate) fn give_to(path: &Path, account: Option<&Account>) {
    if let Some(a) = account {
        std::os::unix::fs::chown(path, Some(a.uid), Some(a.gid)).unwrap_or_else(|e| {
            panic!(
                "testkit: cannot chown {} to {}: {e}",
                path.display(),
                a.name
            )
        });
    }
}

/// Writes `contents` to `path` with `mode`, owned by `account`.
pub(crate) fn write_owned(path: &Path, contents: &[u8], mode: u32, account: Option<&Account>) {
    fs::write(path, contents)
        .unwrap_or_else(|e| panic!("testkit: cannot write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("testkit: cannot chmod {}: {e}", path.display()));
    give_to(path, account);
}

/// procps `kill`, which takes a negative pid (a process group) after `--`.
const KILL: &str = "/bin/kill";

/// File in a run folder naming the test process that owns it: `<pid> <start time>`.
const OWNER_FILE: &str = "testkit-owner";
/// File in a run folder holding the server's pid (also its process group).
const SERVER_PID_FILE: &str = "testkit-server.pid";

/// A per-run folder under the temp dir, `testkit-<kind>-XXXXXX`, mode 0700, owned by the
/// server's account. It is not removed on drop: the watchdog removes it after the server has
/// stopped.
#[derive(Debug)]
pub(crate) struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Sweeps folders of `kind` whose owner process is gone, then makes a new one.
    pub(crate) fn create(kind: &str, account: Option<&Account>) -> RunDir {
        sweep_stale(kind);
        let path = tempfile::Builder::new()
            .prefix(&format!("testkit-{kind}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("testkit: cannot create the {kind} run folder: {e}"))
            .keep();
        fs::write(
            path.join(OWNER_FILE),
            owner_stamp(std::process::id()).unwrap_or_default(),
        )
        .unwrap_or_else(|e| {
            panic!(
                "testkit: cannot write the owner file in {}: {e}",
                path.display()
            )
        });
        give_to(&path, account);
        RunDir { path }
    }

    /// The folder.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// `<pid> <start time in clock ticks>` of a live process, `None` when it is gone. The start
/// time tells a reused pid from the original.
fn owner_stamp(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2 (comm) may hold spaces and parentheses; the fields after the last `)` are plain.
    let after = stat.rsplit_once(')')?.1;
    let start = after.split_whitespace().nth(19)?;
    Some(format!("{pid} {start}"))
}

/// Removes run folders of `kind` whose owner process is gone: their server (if it still runs
/// from that folder) is SIGKILLed with its process group, then the folder is deleted. Folders
/// of live test processes (other test binaries, other checkouts) are left alone.
fn sweep_stale(kind: &str) {
    let prefix = format!("testkit-{kind}-");
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let dir = entry.path();
        let Ok(owner) = fs::read_to_string(dir.join(OWNER_FILE)) else {
            continue;
        };
        let alive = owner
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .and_then(owner_stamp)
            .is_some_and(|now| now == owner.trim());
        if alive {
            continue;
        }
        let pids = fs::read_to_string(dir.join(SERVER_PID_FILE)).unwrap_or_default();
        for pid in pids.lines().filter_map(|p| p.trim().parse::<u32>().ok()) {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy()) {
                let _ = Command::new(KILL)
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

/// A running server process and the watchdog that outlives the test process to stop it.
///
/// The watchdog is `sh` in its own process group, ignoring terminal signals, blocked reading a
/// pipe whose only writer is this process. When this process exits (normally, by a panic, by
/// SIGKILL), the pipe closes and the watchdog sends `stop_signal` to the server's process group,
/// waits up to 5 s, SIGKILLs what is left and deletes the run folder. Dropping the
/// `ServerProcess` does the same, synchronously.
pub(crate) struct ServerProcess {
    child: Mutex<Child>,
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

impl std::fmt::Debug for ServerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pid = self.child.lock().map_or(0, |c| c.id());
        f.debug_struct("ServerProcess")
            .field("pid", &pid)
            .finish_non_exhaustive()
    }
}

impl ServerProcess {
    /// Spawns `cmd` in its own process group (so a Ctrl-C meant for the tests does not stop it
    /// half-way; the watchdog stops it) with stdout and stderr appended to `log`, then starts
    /// its watchdog, which removes the run folder after stopping the server.
    pub(crate) fn spawn(
        cmd: &mut Command,
        dir: &RunDir,
        log: &Path,
        stop_signal: &str,
    ) -> ServerProcess {
        Self::spawn_in(cmd, dir, log, stop_signal, true)
    }

    /// [`ServerProcess::spawn`] for one of several servers sharing `dir` (a cluster, a server
    /// started again): with `remove_dir` false the watchdog leaves the folder alone, and the
    /// owner removes it (or the next run's sweep does).
    pub(crate) fn spawn_in(
        cmd: &mut Command,
        dir: &RunDir,
        log: &Path,
        stop_signal: &str,
        remove_dir: bool,
    ) -> ServerProcess {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("testkit: cannot open {}: {e}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("testkit: cannot clone a log handle: {e}"));
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("testkit: cannot spawn {cmd:?}: {e}"));
        let pid = child.id();
        if let Ok(mut f) = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join(SERVER_PID_FILE))
        {
            let _ = writeln!(f, "{pid}");
        }
        // procps `kill` (dash's builtin takes no `--`, so a negative pid would be an option).
        let script = "trap '' INT HUP TERM QUIT; cat >/dev/null; \
             /bin/kill -\"$2\" -- \"-$1\" 2>/dev/null; i=0; \
             while /bin/kill -0 -- \"-$1\" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; \
             /bin/kill -KILL -- \"-$1\" 2>/dev/null; [ \"$4\" = remove ] && rm -rf -- \"$3\"; true";
        let mut watchdog = Command::new("sh")
            .args(["-c", script, "testkit-watchdog"])
            .arg(pid.to_string())
            .arg(stop_signal)
            .arg(dir.path())
            .arg(if remove_dir { "remove" } else { "keep" })
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("testkit: cannot spawn the database watchdog: {e}"));
        let stdin = watchdog
            .stdin
            .take()
            .unwrap_or_else(|| panic!("testkit: the watchdog's stdin was piped"));
        ServerProcess {
            child: Mutex::new(child),
            watchdog: Mutex::new(Some((watchdog, stdin))),
        }
    }

    /// The server's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.lock().map_or(0, |c| c.id())
    }

    /// `Some(status text)` once the server has exited.
    pub(crate) fn exited(&self) -> Option<String> {
        let mut child = self.child.lock().ok()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown ({e})")),
        }
    }

    /// Stops the server now: SIGKILL to its process group (the server and its workers), then
    /// reaps it.
    pub(crate) fn kill(&self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = Command::new(KILL)
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            kill_and_reap(&mut child);
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Reaped here first: the watchdog waits while any process of the group is left, and a
        // zombie child of ours would count.
        self.kill();
        if let Ok(mut w) = self.watchdog.lock()
            && let Some((mut watchdog, stdin)) = w.take()
        {
            drop(stdin);
            if wait_timeout(&mut watchdog, Duration::from_secs(10)).is_none() {
                kill_and_reap(&mut watchdog);
            }
        }
    }
}

/// Runs `cmd` to completion (bounded by `timeout`) and returns its stdout; panics with its
/// stderr when it fails. `what` names the step for the message.
pub(crate) fn run_tool(cmd: &mut Command, what: &str, timeout: Duration) -> String {
    try_run_tool(cmd, what, timeout).unwrap_or_else(|e| panic!("testkit: {e}"))
}

/// [`run_tool`] returning the failure as text.
pub(crate) fn try_run_tool(
    cmd: &mut Command,
    what: &str,
    timeout: Duration,
) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir for {what}: {e}"))?;
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let out = fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {what} ({cmd:?}): {e}"))?;
    let status = wait_timeout(&mut child, timeout);
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(stdout),
        Some(s) => Err(format!("{what} failed with {s}:\n{stderr}{stdout}")),
        None => {
            kill_and_reap(&mut child);
            Err(format!(
                "{what} did not finish within {timeout:?}:\n{stderr}{stdout}"
            ))
        }
    }
}

/// Polls `ready` every 20 ms until it holds, the server exits, or `timeout` passes; on failure
/// panics with `what`, the reason and the log.
pub(crate) fn wait_ready(
    server: &ServerProcess,
    what: &str,
    log: &Path,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = server.exited() {
            return Err(format!(
                "{what} exited during start-up with {status}; its log:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            ));
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{what} did not accept connections within {timeout:?}; its log:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A name no other test of any run uses, fit for SQL identifiers: `<prefix>_<pid>_<nanos>_<n>`.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", unique_token().replace('-', "_"))
}

/// A database name no other test of any run uses.
pub(crate) fn unique_db_name() -> String {
    unique_name("t")
}

/// Appends `line` to `path` (used for testkit notes in a server log).
pub(crate) fn note(path: &Path, line: &str) {
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "testkit: {line}");
    }
}

/// `scheme://[user[:password]@]host[:port][/database][?query]` split into its parts (enough for
/// the override URLs; no percent-decoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlParts {
    pub scheme: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub query: Option<String>,
}

impl UrlParts {
    pub(crate) fn parse(url: &str) -> Option<UrlParts> {
        let (scheme, rest) = url.split_once("://")?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q.to_owned())),
            None => (rest, None),
        };
        let (authority, database) = match rest.split_once('/') {
            Some((a, d)) => (a, (!d.is_empty()).then(|| d.to_owned())),
            None => (rest, None),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) =
            match userinfo.map(|u| u.split_once(':').map_or((u, None), |(a, b)| (a, Some(b)))) {
                Some((u, p)) => (Some(u.to_owned()), p.map(str::to_owned)),
                None => (None, None),
            };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
                (h.to_owned(), Some(p.parse().ok()?))
            }
            _ => (hostport.to_owned(), None),
        };
        Some(UrlParts {
            scheme: scheme.to_owned(),
            user,
            password,
            host,
            port,
            database,
            query,
        })
    }

    /// The URL again, with `database` as its path.
    pub(crate) fn with_database(&self, database: &str) -> String {
        let mut s = format!("{}://", self.scheme);
        if let Some(u) = &self.user {
            s.push_str(u);
            if let Some(p) = &self.password {
                s.push(':');
                s.push_str(p);
            }
            s.push('@');
        }
        s.push_str(&self.host);
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        s.push('/');
        s.push_str(database);
        if let Some(q) = &self.query {
            s.push('?');
            s.push_str(q);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_urls_split_and_rejoin() {
        let u = UrlParts::parse("postgres://postgres@127.0.0.1:5432/test").unwrap();
        assert_eq!(u.user.as_deref(), Some("postgres"));
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, Some(5432));
        assert_eq!(u.database.as_deref(), Some("test"));
        assert_eq!(
            u.with_database("t_1"),
            "postgres://postgres@127.0.0.1:5432/t_1"
        );
        let u = UrlParts::parse("mysql://root:pw@db/x?ssl-mode=disabled").unwrap();
        assert_eq!((u.password.as_deref(), u.port), (Some("pw"), None));
        assert_eq!(
            u.with_database("y"),
            "mysql://root:pw@db/y?ssl-mode=disabled"
        );
    }

    #[test]
    fn owner_stamp_tells_live_processes() {
        assert!(owner_stamp(std::process::id()).is_some());
        assert!(owner_stamp(u32::MAX - 1).is_none());
    }
}
