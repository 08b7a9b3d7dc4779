//! Starting and stopping the local cloud: the development PKI, the embedded broker (or an
//! external one given by `--broker`), the cloud sides, and the state folder that tells users and
//! `iot-sim status` where everything is.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::broker::{BrokerSetup, EmbeddedBroker};
pub use cloudkit::Listener;
use cloudkit::{CloudSide, Report};
use transport::SessionOptions;
use transport::auth::Credentials;
use transport::tls::TlsOptions;

use crate::certs::{self, DevPki};
use crate::runner::{CloudRunner, RunnerError};

/// The username of the password listeners.
pub const DEV_USER: &str = "edgewire";
/// The service account of the plain and ws listeners (password in `state/service-password`).
pub const SERVICE_USER: &str = "iot-sim";
/// The file in the state folder holding the service account's password.
pub const SERVICE_PASSWORD_FILE: &str = "service-password";
/// The client certificate the demo's generic device uses.
pub const DEMO_DEVICE: &str = "demo-device";

/// The listeners in the order `--port-base N` gives them ports: the first listens on `N`, the
/// second on `N + 1`, and so on (`docs/iot-sim.md` documents this order; the example configs
/// in `configs/` name the ports of base [`EXAMPLE_PORT_BASE`]).
pub const PORT_ORDER: [&str; 6] = ["plain", "ws", "mtls", "tls_password", "wss", "https"];

/// The port base the example configs are written for (`iot-sim up --port-base 18880`).
pub const EXAMPLE_PORT_BASE: u16 = 18880;

/// The port of listener `name` for port base `base` (`None`: any free port, i.e. 0).
pub fn port_for(base: Option<u16>, name: &str) -> u16 {
    let offset = PORT_ORDER.iter().position(|n| *n == name).unwrap_or(0) as u16;
    base.map_or(0, |b| b.saturating_add(offset))
}

/// How to start the local cloud.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Folder of the development PKI (`agent_cert`).
    pub cert_dir: PathBuf,
    /// Folder for endpoints, the dev password and status (`.edgewire/sim`).
    pub state_dir: PathBuf,
    /// Use this broker instead of the embedded one.
    pub external: Option<SessionOptions>,
    /// Client certificate names to issue besides the demo device.
    pub client_names: Vec<String>,
}

impl SimOptions {
    /// The embedded broker, the development PKI in `dir/agent_cert` and the state in `dir/state`.
    pub fn in_dir(dir: &Path) -> SimOptions {
        SimOptions {
            cert_dir: dir.join("agent_cert"),
            state_dir: dir.join("state"),
            external: None,
            client_names: Vec::new(),
        }
    }
}

/// Why the local cloud could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// Certificates.
    #[error(transparent)]
    Certs(#[from] certs::CertsError),
    /// Broker.
    #[error(transparent)]
    Broker(#[from] crate::broker::BrokerError),
    /// A cloud side.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// Files in the state folder.
    #[error("cannot {op} `{path}`: {source}")]
    Io {
        /// What.
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// Anything else about the set-up.
    #[error("{0}")]
    Setup(String),
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SimError + use<> {
    let path = path.to_owned();
    move |source| SimError::Io { op, path, source }
}

/// The running local cloud.
pub struct Sim {
    broker: Option<EmbeddedBroker>,
    https: Option<crate::https::HttpsServer>,
    listeners: Vec<Listener>,
    runners: Vec<CloudRunner>,
    pki: DevPki,
    state_dir: PathBuf,
}

/// What `status.json` holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StatusFile {
    /// Process id of `iot-sim up`.
    pub pid: u32,
    /// When written (RFC 3339).
    pub updated: String,
    /// Listener name → URL.
    pub listeners: BTreeMap<String, String>,
    /// Cloud side → what it saw.
    pub clouds: BTreeMap<String, ReportJson>,
    /// The development CA to trust (absolute path), for `iot-sim env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// The folder of the development PKI (client certificates), absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_dir: Option<PathBuf>,
    /// The file holding the password listeners' password (embedded broker only), absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// A report as stored in `status.json`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ReportJson {
    /// Counters.
    pub counters: BTreeMap<String, u64>,
    /// Recent events.
    pub recent: Vec<String>,
}

fn dev_password(state_dir: &Path) -> Result<String, SimError> {
    secret_in(state_dir, "password")
}

/// The password in `state_dir/name`, made (random, mode 0600) when there is none yet.
fn secret_in(state_dir: &Path, name: &str) -> Result<String, SimError> {
    let path = state_dir.join(name);
    if let Ok(p) = fs::read_to_string(&path)
        && !p.trim().is_empty()
    {
        transport::auth::warn_if_readable(&path, "iot-sim password file");
        return Ok(p.trim().to_owned());
    }
    let pw: String = (0..24)
        .map(|_| char::from(b"abcdefghijkmnpqrstuvwxyz23456789"[fastrand::usize(..32)]))
        .collect();
    transport::auth::write_secret_file(&path, pw.as_bytes()).map_err(io("write", &path))?;
    Ok(pw)
}

/// Client certificates in the PKI folder that are not a vendor's device: iot-sim's own
/// (the demo device, `iot-sim certs --client NAME`).
fn own_certificates(pki: &DevPki, vendor_devices: &[String]) -> Vec<String> {
    let mut names: Vec<String> = pki.clients.iter().map(|(n, _)| n.clone()).collect();
    if let Ok(entries) = fs::read_dir(&pki.dir) {
        for e in entries.flatten() {
            let path = e.path();
            if let (Some(stem), Some("pem")) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|s| s.to_str()),
            ) && !["ca", "server"].contains(&stem)
            {
                names.push(stem.to_owned());
            }
        }
    }
    names.retain(|n| !vendor_devices.contains(n));
    names.sort();
    names.dedup();
    names
}

impl Sim {
    /// Issues certificates if needed, starts the broker (unless external) and the cloud sides,
    /// every listener on a free port.
    pub async fn start(opts: SimOptions, clouds: Vec<Arc<dyn CloudSide>>) -> Result<Sim, SimError> {
        Self::start_on(opts, clouds, None).await
    }

    /// [`Sim::start`] with the listeners on `port_base`, `port_base + 1`, … in [`PORT_ORDER`]
    /// (`None`: free ports). A port already taken fails the start with its address.
    pub async fn start_on(
        opts: SimOptions,
        clouds: Vec<Arc<dyn CloudSide>>,
        port_base: Option<u16>,
    ) -> Result<Sim, SimError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&opts.state_dir)
            .map_err(io("create", &opts.state_dir))?;
        let mut names = vec![DEMO_DEVICE.to_owned()];
        names.extend(opts.client_names.iter().cloned());
        let vendor_devices: Vec<String> = clouds.iter().flat_map(|c| c.device_names()).collect();
        names.extend(vendor_devices.iter().cloned());
        names.dedup();
        let pki = certs::ensure(&opts.cert_dir, &names)?;
        let (broker, listeners, cloud_opts) = if let Some(ext) = &opts.external {
            let listener = Listener {
                name: "external",
                url: ext.endpoint.to_string(),
                tls: ext.tls.clone(),
                credentials: ext.credentials.clone(),
            };
            (None, vec![listener], ext.clone())
        } else {
            let password = dev_password(&opts.state_dir)?;
            let mut setup = BrokerSetup::new(
                pki.ca.clone(),
                pki.server.cert.clone(),
                pki.server.key.clone(),
            );
            setup.users = HashMap::from([(DEV_USER.to_owned(), password.clone())]);
            let service = secret_in(&opts.state_dir, SERVICE_PASSWORD_FILE)?;
            setup.service = Some((SERVICE_USER.to_owned(), service.clone()));
            setup.own_certificates = own_certificates(&pki, &vendor_devices);
            setup.plain_port = port_for(port_base, "plain");
            setup.ws_port = port_for(port_base, "ws");
            setup.mtls_port = port_for(port_base, "mtls");
            setup.tls_password_port = port_for(port_base, "tls_password");
            setup.wss_port = port_for(port_base, "wss");
            setup.policies = clouds.iter().filter_map(|c| c.policy()).collect();
            let broker = EmbeddedBroker::start(setup).await?;
            let ep = broker.endpoints().clone();
            let trust = TlsOptions {
                ca_files: vec![pki.ca.clone()],
                ..TlsOptions::default()
            };
            let device = pki.client(DEMO_DEVICE).cloned();
            let creds = Some(Credentials {
                username: DEV_USER.to_owned(),
                password: Some(password.into()),
            });
            let service_creds = Some(Credentials {
                username: SERVICE_USER.to_owned(),
                password: Some(service.into()),
            });
            let listeners = vec![
                Listener {
                    name: "plain",
                    url: ep.plain.clone(),
                    tls: TlsOptions::default(),
                    credentials: service_creds.clone(),
                },
                Listener {
                    name: "ws",
                    url: ep.ws.clone(),
                    tls: TlsOptions::default(),
                    credentials: service_creds,
                },
                Listener {
                    name: "mtls",
                    url: ep.mtls.clone(),
                    tls: TlsOptions {
                        client_cert: device.as_ref().map(|d| d.cert.clone()),
                        client_key: device.as_ref().map(|d| d.key.clone()),
                        ..trust.clone()
                    },
                    credentials: None,
                },
                Listener {
                    name: "tls_password",
                    url: ep.tls_password.clone(),
                    tls: trust.clone(),
                    credentials: creds.clone(),
                },
                Listener {
                    name: "wss",
                    url: ep.wss.clone(),
                    tls: trust,
                    credentials: creds,
                },
            ];
            let cloud_opts = listeners[0]
                .session_options()
                .map_err(|e| SimError::Setup(e.to_string()))?;
            (Some(broker), listeners, cloud_opts)
        };
        for cloud in &clouds {
            cloud.on_start(&listeners, &pki.dir);
        }
        let https = crate::https::HttpsServer::start_on(
            &clouds,
            &pki.server.cert,
            &pki.server.key,
            port_for(port_base, "https"),
        )
        .await?;
        if let Some(h) = &https {
            for cloud in &clouds {
                cloud.on_https(&h.base);
            }
        }
        let mut runners = Vec::new();
        for cloud in clouds {
            runners.push(CloudRunner::start(cloud, cloud_opts.clone()).await?);
        }
        let sim = Sim {
            broker,
            https,
            listeners,
            runners,
            pki,
            state_dir: opts.state_dir,
        };
        sim.write_status()?;
        Ok(sim)
    }

    /// How to reach each listener.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// The listener with this name (`plain`, `ws`, `mtls`, `tls_password`, `wss`, `external`).
    pub fn listener(&self, name: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.name == name)
    }

    /// What a vendor's demo check (or a test) gets to work with against this cloud. Paths are
    /// absolute: vendors write config files into `work_dir`, and relative paths inside a config
    /// file resolve against that file's folder. `cloud` is whose report the check reads.
    pub fn demo_env(
        &self,
        cloud: Option<Arc<dyn CloudSide>>,
        work_dir: &Path,
        messages: u64,
    ) -> cloudkit::DemoEnv {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
        cloudkit::DemoEnv {
            listeners: self.listeners.clone(),
            ca: absolute(&self.pki.ca),
            cert_dir: absolute(&self.pki.dir),
            https_base: self.https_base().map(str::to_owned),
            work_dir: absolute(work_dir),
            messages,
            report: Arc::new(move || cloud.as_ref().map(|c| c.report()).unwrap_or_default()),
        }
    }

    /// Base URL of the HTTPS endpoints (`https://localhost:PORT`), when a cloud side has any.
    pub fn https_base(&self) -> Option<&str> {
        self.https.as_ref().map(|h| h.base.as_str())
    }

    /// The development PKI.
    pub fn pki(&self) -> &DevPki {
        &self.pki
    }

    /// The state folder.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// What each cloud side has seen.
    pub fn reports(&self) -> BTreeMap<String, Report> {
        self.runners
            .iter()
            .map(|r| (r.cloud.name().to_owned(), r.cloud.report()))
            .collect()
    }

    /// Writes `status.json` (atomically) for `iot-sim status`.
    pub fn write_status(&self) -> Result<(), SimError> {
        let status = StatusFile {
            pid: std::process::id(),
            updated: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            listeners: self
                .listeners
                .iter()
                .map(|l| (l.name.to_owned(), l.url.clone()))
                .chain(
                    self.https_base()
                        .map(|b| ("https".to_owned(), b.to_owned())),
                )
                .collect(),
            clouds: self
                .reports()
                .into_iter()
                .map(|(k, r)| {
                    (
                        k,
                        ReportJson {
                            counters: r.counters,
                            recent: r.recent,
                        },
                    )
                })
                .collect(),
            ca: None,
            cert_dir: None,
            password_file: None,
        };
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
        let status = StatusFile {
            ca: Some(absolute(&self.pki.ca)),
            cert_dir: Some(absolute(&self.pki.dir)),
            password_file: self
                .broker
                .is_some()
                .then(|| absolute(&self.state_dir.join("password"))),
            ..status
        };
        let path = self.state_dir.join("status.json");
        let tmp = self.state_dir.join("status.json.tmp");
        let json =
            serde_json::to_vec_pretty(&status).map_err(|e| SimError::Setup(e.to_string()))?;
        fs::write(&tmp, json).map_err(io("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(io("replace", &path))
    }

    /// Stops the cloud sides and the broker; removes `status.json`.
    pub async fn stop(self) {
        for r in self.runners {
            r.stop().await;
        }
        if let Some(h) = self.https {
            h.stop().await;
        }
        if let Some(b) = self.broker {
            b.stop().await;
        }
        let _ = fs::remove_file(self.state_dir.join("status.json"));
    }
}
