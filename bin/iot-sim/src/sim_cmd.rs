//! `iot-sim certs | up | down | env | demo | status`: arguments to `sim` calls, results to
//! output and exit codes.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use cli::args::{AuthArgs, BrokerArgs, TlsArgs};
use cli::output::{Output, exit};

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Folder for the development PKI.
    #[arg(long, value_name = "DIR", default_value = "agent_cert")]
    dir: PathBuf,
    /// Also issue a client certificate with this common name (repeatable).
    #[arg(long = "client", value_name = "CN")]
    clients: Vec<String>,
}

/// Where the local cloud keeps its files, and which broker it uses.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Folder of the development PKI (made by `iot-sim certs` if missing).
    #[arg(long, value_name = "DIR", default_value = "agent_cert")]
    cert_dir: PathBuf,
    /// Folder for endpoints, the development password and status.
    #[arg(long, value_name = "DIR", default_value = ".edgewire/sim")]
    state_dir: PathBuf,
    /// Use this broker instead of the embedded one (e.g. a local mosquitto).
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    auth: AuthArgs,
}

/// `iot-sim up`: the local cloud's files and broker, and where and how it runs.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    sim: SimArgs,
    /// Listen on fixed ports N, N+1, ... in this order: plain, ws, mtls, tls_password, wss,
    /// https. The example configs in configs/ are written for --port-base 18880. Default: free
    /// ports, printed at start.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=65530))]
    port_base: Option<u16>,
    /// Start in the background and return once every listener is up (exit 0), printing the
    /// endpoints; `iot-sim down` stops it. Its log is STATE_DIR/up.log.
    #[arg(long)]
    detach: bool,
}

/// `iot-sim down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// Folder of the `iot-sim up` to stop.
    #[arg(long, value_name = "DIR", default_value = ".edgewire/sim")]
    state_dir: PathBuf,
    /// Seconds to wait for a clean stop before killing it.
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    timeout: u64,
}

/// `iot-sim env --format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EnvFormatArg {
    /// `export NAME='value'` lines: `eval "$(iot-sim env)"`.
    Sh,
    /// One JSON object.
    Json,
    /// `NAME=value` lines: `iot-sim env --format github >> "$GITHUB_ENV"`.
    Github,
}

/// `iot-sim env`.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// Folder of the running `iot-sim up`.
    #[arg(long, value_name = "DIR", default_value = ".edgewire/sim")]
    state_dir: PathBuf,
    /// How to print the variables (default: sh, or json with --output json).
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<EnvFormatArg>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    sim: SimArgs,
    /// Messages per check.
    #[arg(long, value_name = "N", default_value_t = 100)]
    messages: u64,
    /// Break one check on purpose (a listener name: plain, ws, mtls, tls_password, wss).
    #[arg(long, value_name = "CHECK", hide = true)]
    sabotage: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Folder `iot-sim up` writes its status to.
    #[arg(long, value_name = "DIR", default_value = ".edgewire/sim")]
    state_dir: PathBuf,
}

fn sim_options(a: &SimArgs) -> Result<sim::engine::SimOptions, String> {
    let external = match &a.broker.broker {
        Some(_) => Some(
            a.broker
                .to_options(&a.tls, &a.auth, None)
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    Ok(sim::engine::SimOptions {
        cert_dir: a.cert_dir.clone(),
        state_dir: a.state_dir.clone(),
        external,
        client_names: Vec::new(),
    })
}

pub fn certs(a: &CertsArgs, out: Output) -> u8 {
    let mut names = vec![sim::engine::DEMO_DEVICE.to_owned()];
    names.extend(
        sim::registry::clouds()
            .iter()
            .flat_map(|c| c.device_names()),
    );
    names.extend(a.clients.iter().cloned());
    names.dedup();
    match sim::certs::ensure(&a.dir, &names) {
        Ok(pki) => {
            out.event("certs", &pki, || {
                let mut s = format!(
                    "development PKI in {}\n  CA (trust this):  {}\n  server:           {}\n",
                    pki.dir.display(),
                    pki.ca.display(),
                    pki.server.cert.display()
                );
                for (cn, pair) in &pki.clients {
                    s.push_str(&format!(
                        "  client {cn}: {} {}\n",
                        pair.cert.display(),
                        pair.key.display()
                    ));
                }
                s.trim_end().to_owned()
            });
            exit::OK
        }
        Err(e) => {
            tracing::error!("{e}");
            exit::USAGE
        }
    }
}

/// Starts `iot-sim up` again, without `--detach`, as a background process in its own process
/// group (so a Ctrl-C meant for the shell does not reach it), logging to STATE_DIR/up.log;
/// returns once it has written its first status, i.e. once it serves.
fn detach(a: &UpArgs, out: Output) -> u8 {
    let state_dir = &a.sim.state_dir;
    if let Err(e) = sim::daemon::ensure_not_running(state_dir) {
        tracing::error!("{e}");
        return exit::FAILURE;
    }
    let started = std::fs::create_dir_all(state_dir)
        .and_then(|()| std::fs::File::create(sim::daemon::log_path(state_dir)))
        .and_then(|log| Ok((log.try_clone()?, log, std::env::current_exe()?)));
    let (log_out, log_err, exe) = match started {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(
                "cannot prepare `{}` for the background iot-sim: {e}",
                sim::daemon::log_path(state_dir).display()
            );
            return exit::FAILURE;
        }
    };
    let args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|arg| arg != "--detach")
        .collect();
    let child = std::process::Command::new(exe)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log_out)
        .stderr(log_err)
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot start iot-sim in the background: {e}");
            return exit::FAILURE;
        }
    };
    let pid = child.id();
    let ready = sim::daemon::wait_ready(state_dir, pid, Duration::from_secs(60), || {
        child.try_wait().ok().flatten().map(|s| s.to_string())
    });
    match ready {
        Ok(st) => {
            let data = serde_json::json!({ "pid": pid, "listeners": st.listeners, "ca": st.ca });
            out.event("up", &data, || {
                let mut s = format!("iot-sim is up in the background (pid {pid}). Listeners:\n");
                for (name, url) in &st.listeners {
                    s.push_str(&format!("  {name:<13} {url}\n"));
                }
                s.push_str(
                    "Variables for agents: eval \"$(iot-sim env)\". Stop it with `iot-sim down`.",
                );
                s
            });
            exit::OK
        }
        Err(e) => {
            tracing::error!("{e}");
            let _ = child.kill();
            let _ = child.wait();
            exit::FAILURE
        }
    }
}

pub async fn up(a: &UpArgs, out: Output) -> u8 {
    if a.detach {
        return detach(a, out);
    }
    if let Err(e) = sim::daemon::ensure_not_running(&a.sim.state_dir) {
        tracing::error!("{e}");
        return exit::FAILURE;
    }
    let opts = match sim_options(&a.sim) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("{e}");
            return exit::USAGE;
        }
    };
    let sim = match sim::engine::Sim::start_on(opts, sim::registry::clouds(), a.port_base).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return exit::FAILURE;
        }
    };
    let data = serde_json::json!({ "listeners": sim.listeners(), "https": sim.https_base() });
    out.event("up", &data, || {
        let mut s = String::from("iot-sim is up. Listeners:\n");
        for l in sim.listeners() {
            s.push_str(&format!("  {:<13} {}\n", l.name, l.url));
        }
        if let Some(base) = sim.https_base() {
            s.push_str(&format!("  {:<13} {base}/<vendor>/...\n", "https"));
        }
        s.push_str(&format!(
            "Trust {} (--cafile). Client certificates are in {}. Password listeners: --username {} --password-file {}\nplain and ws (iot-sim's own): --username {} --password-file {}\nStatus: iot-sim status. Stop with Ctrl-C.",
            sim.pki().ca.display(),
            sim.pki().dir.display(),
            sim::engine::DEV_USER,
            sim.state_dir().join("password").display(),
            sim::engine::SERVICE_USER,
            sim.state_dir().join(sim::engine::SERVICE_PASSWORD_FILE).display()
        ));
        s
    });
    let shutdown = cli::signal::shutdown_signal();
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {
                if let Err(e) = sim.write_status() {
                    tracing::warn!("{e}");
                }
            }
        }
    }
    sim.stop().await;
    exit::OK
}

pub fn down(a: &DownArgs, out: Output) -> u8 {
    match sim::daemon::down(&a.state_dir, Duration::from_secs(a.timeout)) {
        Ok((how, pid)) => {
            let data = serde_json::json!({ "result": how, "pid": pid });
            out.event("down", &data, || match (how, pid) {
                (sim::daemon::Stopped::Stopped, Some(pid)) => {
                    format!("iot-sim (pid {pid}) stopped")
                }
                (sim::daemon::Stopped::Killed, Some(pid)) => {
                    format!(
                        "iot-sim (pid {pid}) did not stop within {} s and was killed",
                        a.timeout
                    )
                }
                _ => format!(
                    "no iot-sim up running with state folder `{}`; nothing to stop",
                    a.state_dir.display()
                ),
            });
            exit::OK
        }
        Err(e) => {
            tracing::error!("{e}");
            exit::FAILURE
        }
    }
}

pub fn env(a: &EnvArgs, out: Output) -> u8 {
    use sim::daemon::EnvFormat;
    let format = match (a.format, out.format()) {
        (Some(EnvFormatArg::Sh), _) | (None, cli::Format::Text) => EnvFormat::Sh,
        (Some(EnvFormatArg::Json), _) | (None, cli::Format::Json) => EnvFormat::Json,
        (Some(EnvFormatArg::Github), _) => EnvFormat::Github,
    };
    match sim::status::read(&a.state_dir, sim::daemon::FRESH) {
        Ok(st) => {
            let text = sim::daemon::render_env(&sim::daemon::env_vars(&st), format);
            let mut stdout = std::io::stdout().lock();
            let _ = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush());
            exit::OK
        }
        Err(e) => {
            tracing::error!("{e}");
            exit::FAILURE
        }
    }
}

pub async fn demo(a: &DemoArgs, out: Output) -> u8 {
    let opts = match sim_options(&a.sim) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("{e}");
            return exit::USAGE;
        }
    };
    let demo = sim::demo::DemoOptions {
        sim: opts,
        messages: a.messages,
        sabotage: a.sabotage.clone(),
    };
    match sim::demo::run(demo).await {
        Ok(summary) => {
            out.event("demo", &summary, || summary.table().trim_end().to_owned());
            if summary.ok { exit::OK } else { exit::FAILURE }
        }
        Err(e) => {
            tracing::error!("{e}");
            exit::FAILURE
        }
    }
}

pub fn status(a: &StatusArgs, out: Output) -> u8 {
    match sim::status::read(&a.state_dir, Duration::from_secs(5)) {
        Ok(st) => {
            out.event("status", &st, || {
                sim::status::render(&st).trim_end().to_owned()
            });
            exit::OK
        }
        Err(e) => {
            tracing::error!("{e}");
            exit::FAILURE
        }
    }
}
