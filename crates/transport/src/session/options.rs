//! Everything a session needs to know before it connects, and its translation into rumqttc's
//! options. Validation happens here so rumqttc's own `assert!`s can never fire.

use std::time::Duration;

use crate::auth::Credentials;
use crate::endpoint::Endpoint;
use crate::tls::{self, TlsError, TlsOptions};

/// How `Session::start` treats the first connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// Return only once connected; the first failure is returned as an error.
    RequireConnection,
    /// Return at once and keep trying in the background (for agents with a disk spool, which
    /// accept messages while offline). Permanent failures still end the session.
    Background,
}

/// Session settings.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Broker endpoint.
    pub endpoint: Endpoint,
    /// MQTT client identifier.
    pub client_id: String,
    /// TLS settings, used when the endpoint scheme is `mqtts` or `wss`.
    pub tls: TlsOptions,
    /// Username and password.
    pub credentials: Option<Credentials>,
    /// Keep-alive interval (0 disables pings).
    pub keep_alive: Duration,
    /// Start a fresh session at the broker (`true`) or resume the stored one.
    pub clean_session: bool,
    /// Most QoS 1 publishes awaiting PUBACK at once.
    pub inflight: u16,
    /// Limit for TCP + TLS + CONNACK.
    pub connect_timeout: Duration,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Largest MQTT packet sent or accepted.
    pub max_packet_size: usize,
    /// Incoming QoS 1 messages are acknowledged by `Session::ack` instead of on arrival.
    pub manual_acks: bool,
    /// Incoming messages buffered for the reader before the session stops reading the socket.
    pub incoming_capacity: usize,
    /// How often acknowledgements are saved to a disk spool.
    pub persist_interval: Duration,
    /// See [`StartMode`].
    pub start_mode: StartMode,
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// Bad value.
    #[error("{0}")]
    Invalid(String),
    /// TLS files.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl SessionOptions {
    /// Defaults for `endpoint` with a random client id.
    pub fn new(endpoint: Endpoint) -> Self {
        SessionOptions {
            endpoint,
            client_id: format!("edgewire-{:08x}", fastrand::u32(..)),
            tls: TlsOptions::default(),
            credentials: None,
            keep_alive: Duration::from_mins(1),
            clean_session: true,
            inflight: 100,
            connect_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            max_packet_size: 256 * 1024,
            manual_acks: false,
            incoming_capacity: 1024,
            persist_interval: Duration::from_millis(200),
            start_mode: StartMode::RequireConnection,
        }
    }

    pub(crate) fn connect_timeout_secs(&self) -> u64 {
        self.connect_timeout.as_secs().max(1)
    }

    pub(crate) fn to_rumqttc(
        &self,
    ) -> Result<(rumqttc::MqttOptions, rumqttc::NetworkOptions), OptionsError> {
        if self.client_id.is_empty() && !self.clean_session {
            return Err(OptionsError::Invalid(
                "a persistent session (clean session off) needs a --client-id".into(),
            ));
        }
        if self.client_id.len() > 65_535 {
            return Err(OptionsError::Invalid(
                "--client-id is longer than 65,535 bytes".into(),
            ));
        }
        let ka = self.keep_alive.as_secs();
        if ka > u64::from(u16::MAX) || (ka == 0 && !self.keep_alive.is_zero()) {
            return Err(OptionsError::Invalid(format!(
                "--keep-alive {} s is out of range; use 0 (off) or 1 to 65535 seconds",
                self.keep_alive.as_secs_f64()
            )));
        }
        if self.inflight == 0 {
            return Err(OptionsError::Invalid(
                "--inflight must be at least 1".into(),
            ));
        }
        let ep = &self.endpoint;
        let scheme = ep.scheme();
        let mut opts = if scheme.is_websocket() {
            rumqttc::MqttOptions::new(self.client_id.clone(), ep.websocket_url(), ep.port())
        } else {
            rumqttc::MqttOptions::new(self.client_id.clone(), ep.host(), ep.port())
        };
        let transport = match scheme {
            crate::endpoint::Scheme::Mqtt => rumqttc::Transport::Tcp,
            crate::endpoint::Scheme::Ws => rumqttc::Transport::Ws,
            crate::endpoint::Scheme::Mqtts => rumqttc::Transport::Tls(
                rumqttc::TlsConfiguration::Rustls(tls::client_config(&self.tls)?),
            ),
            crate::endpoint::Scheme::Wss => rumqttc::Transport::Wss(
                rumqttc::TlsConfiguration::Rustls(tls::client_config(&self.tls)?),
            ),
        };
        opts.set_transport(transport);
        opts.set_keep_alive(Duration::from_secs(ka));
        opts.set_clean_session(self.clean_session);
        opts.set_inflight(self.inflight);
        opts.set_max_packet_size(self.max_packet_size, self.max_packet_size);
        opts.set_manual_acks(self.manual_acks);
        if let Some(c) = &self.credentials {
            opts.set_credentials(c.username.clone(), c.password.clone().unwrap_or_default());
        }
        let mut net = rumqttc::NetworkOptions::new();
        // Without NODELAY a lone CONNECT or PUBLISH waits for the peer's delayed ACK (~40 ms).
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(self.connect_timeout_secs());
        Ok((opts, net))
    }
}
