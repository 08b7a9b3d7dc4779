//! `iot-sim certs | up | demo | status`: arguments to `sim` calls, results to output and exit codes.

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

pub async fn up(a: &SimArgs, out: Output) -> u8 {
    let opts = match sim_options(a) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("{e}");
            return exit::USAGE;
        }
    };
    let sim = match sim::engine::Sim::start(opts, sim::registry::clouds()).await {
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
