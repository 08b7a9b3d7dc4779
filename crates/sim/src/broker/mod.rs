//! The in-process MQTT broker `iot-sim` runs: mqtt5's broker on loopback (plain MQTT and
//! WebSocket), behind our own TLS front listeners for mutual TLS, TLS with a password and
//! WebSocket over TLS. Vendors' access policies decide who may connect, publish and subscribe,
//! and the broker fails closed: see the gatekeeper (`gate.rs`) for who gets in.

mod front;
mod gate;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use cloudkit::access::{AccessPolicy, Identity, ListenerKind, Verdict};

use transport::tls::{self, TlsError};

/// Ports and files of the embedded broker.
#[derive(Clone)]
pub struct BrokerSetup {
    /// Address to listen on (loopback by default).
    pub host: IpAddr,
    /// Plain MQTT port (0: any free port).
    pub plain_port: u16,
    /// WebSocket port, path `/mqtt`.
    pub ws_port: u16,
    /// TLS with required client certificates.
    pub mtls_port: u16,
    /// TLS with username and password.
    pub tls_password_port: u16,
    /// WebSocket inside TLS with username and password, path `/mqtt`.
    pub wss_port: u16,
    /// CA that signs client certificates (and the server certificate).
    pub ca_cert: PathBuf,
    /// Server certificate chain.
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
    /// Username → password for the password listeners.
    pub users: HashMap<String, String>,
    /// Username and password that a client connecting straight to the loopback plain or
    /// WebSocket port must present (the cloud sides, iot-sim's tools); `None`: nobody may.
    /// Those ports carry no TLS identity, so without this any local user could pose as a
    /// cloud side there.
    pub service: Option<(String, String)>,
    /// Common names of client certificates admitted on the mtls listener without a vendor's
    /// policy claiming them (iot-sim's general-purpose certificates such as the demo device).
    pub own_certificates: Vec<String>,
    /// Vendor rules.
    pub policies: Vec<Arc<dyn AccessPolicy>>,
}

impl BrokerSetup {
    /// Loopback, any free ports, no users, no service account, no policies.
    pub fn new(ca_cert: PathBuf, server_cert: PathBuf, server_key: PathBuf) -> Self {
        BrokerSetup {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            plain_port: 0,
            ws_port: 0,
            mtls_port: 0,
            tls_password_port: 0,
            wss_port: 0,
            ca_cert,
            server_cert,
            server_key,
            users: HashMap::new(),
            service: None,
            own_certificates: Vec::new(),
            policies: Vec::new(),
        }
    }
}

/// Where the running broker listens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BrokerEndpoints {
    /// `mqtt://…`
    pub plain: String,
    /// `ws://…/mqtt`
    pub ws: String,
    /// `mqtts://localhost:…` (client certificate required)
    pub mtls: String,
    /// `mqtts://localhost:…` (username and password)
    pub tls_password: String,
    /// `wss://localhost:…/mqtt` (username and password)
    pub wss: String,
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// Certificate files.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// mqtt5 refused the configuration.
    #[error("the embedded broker could not start: {0}")]
    Broker(String),
}

/// A running embedded broker; stops on [`EmbeddedBroker::stop`] or drop.
pub struct EmbeddedBroker {
    endpoints: BrokerEndpoints,
    stop: watch::Sender<bool>,
    shutdown: mqtt5::broker::BrokerShutdownHandle,
    tasks: Mutex<JoinSet<()>>,
}

impl EmbeddedBroker {
    /// Binds every listener and starts serving.
    pub async fn start(setup: BrokerSetup) -> Result<Self, BrokerError> {
        use mqtt5::broker::config::{StorageBackend, StorageConfig, WebSocketConfig};
        let host = setup.host;
        let mut storage = StorageConfig::default().with_backend(StorageBackend::Memory);
        storage.enable_persistence = false;
        let mut config = mqtt5::broker::BrokerConfig::default()
            .with_bind_address(SocketAddr::new(host, setup.plain_port))
            .with_max_packet_size(1024 * 1024)
            .with_websocket(
                WebSocketConfig::new()
                    .with_bind_address(SocketAddr::new(host, setup.ws_port))
                    .with_path("/mqtt"),
            );
        config.storage_config = storage;
        let registry = Arc::new(gate::Registry::default());
        let gatekeeper = gate::Gatekeeper {
            registry: registry.clone(),
            users: setup.users.clone(),
            service: setup.service.clone(),
            own_certificates: setup.own_certificates.clone(),
            policies: setup.policies.clone(),
            clients: Mutex::new(HashMap::new()),
        };
        let mut broker = mqtt5::broker::MqttBroker::with_config(config)
            .await
            .map_err(|e| BrokerError::Broker(e.to_string()))?
            .with_auth_provider(Arc::new(gatekeeper));
        let plain = broker
            .local_addr()
            .ok_or_else(|| BrokerError::Broker("no plain listener address".into()))?;
        let ws = broker
            .ws_local_addr()
            .ok_or_else(|| BrokerError::Broker("no WebSocket listener address".into()))?;
        let mtls_cfg =
            tls::server_config(&setup.server_cert, &setup.server_key, Some(&setup.ca_cert))?;
        let pw_cfg = tls::server_config(&setup.server_cert, &setup.server_key, None)?;
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut front_addr = |port: u16,
                              upstream: SocketAddr,
                              kind: ListenerKind,
                              cfg: Arc<rustls::ServerConfig>| {
            let addr = SocketAddr::new(host, port);
            let std_listener = std::net::TcpListener::bind(addr)
                .map_err(|source| BrokerError::Bind { addr, source })?;
            std_listener
                .set_nonblocking(true)
                .map_err(|source| BrokerError::Bind { addr, source })?;
            let local = std_listener
                .local_addr()
                .map_err(|source| BrokerError::Bind { addr, source })?;
            let listener = TcpListener::from_std(std_listener)
                .map_err(|source| BrokerError::Bind { addr, source })?;
            let front = front::Front {
                listener,
                acceptor: tokio_rustls::TlsAcceptor::from(cfg),
                upstream,
                kind,
                registry: registry.clone(),
            };
            tasks.spawn(front.serve(stop_rx.clone()));
            Ok::<_, BrokerError>(local.port())
        };
        let mtls = front_addr(setup.mtls_port, plain, ListenerKind::Mtls, mtls_cfg)?;
        let tls_password = front_addr(
            setup.tls_password_port,
            plain,
            ListenerKind::TlsPassword,
            pw_cfg.clone(),
        )?;
        let wss = front_addr(setup.wss_port, ws, ListenerKind::Wss, pw_cfg)?;
        let shutdown = broker.shutdown_handle();
        tasks.spawn(async move {
            if let Err(e) = broker.run().await {
                tracing::error!("embedded broker stopped: {e}");
            }
        });
        let h = if host.is_loopback() {
            "localhost".to_owned()
        } else {
            host.to_string()
        };
        let endpoints = BrokerEndpoints {
            plain: format!("mqtt://{plain}"),
            ws: format!("ws://{ws}/mqtt"),
            mtls: format!("mqtts://{h}:{mtls}"),
            tls_password: format!("mqtts://{h}:{tls_password}"),
            wss: format!("wss://{h}:{wss}/mqtt"),
        };
        Ok(EmbeddedBroker {
            endpoints,
            stop,
            shutdown,
            tasks: Mutex::new(tasks),
        })
    }

    /// Where it listens.
    pub fn endpoints(&self) -> &BrokerEndpoints {
        &self.endpoints
    }

    /// Stops every listener and the broker.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.shutdown.shutdown();
        let tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut tasks = tasks;
        if tokio::time::timeout(std::time::Duration::from_secs(3), async {
            while tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tasks.abort_all();
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.shutdown.shutdown();
    }
}
