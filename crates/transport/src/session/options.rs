//! Everything a session needs to know before it connects, checked before the first attempt.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::ClientConfig;

use crate::auth::Credentials;
use crate::endpoint::Endpoint;
use crate::message::Message;
use crate::tls::{self, TlsError, TlsOptions};

/// Rewrites a message the session sends again: after a lost connection (sent, not confirmed)
/// or left in a disk spool by an earlier run. Returns the payload to send instead, or `None` to
/// send it unchanged. IoTConnect marks such replays with `"od": 1`.
#[derive(Clone)]
pub struct ResendHook(pub Arc<ResendFn>);

/// The function inside a [`ResendHook`].
pub type ResendFn = dyn Fn(&Message) -> Option<Bytes> + Send + Sync;

impl std::fmt::Debug for ResendHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResendHook(..)")
    }
}

/// Called with every [`super::SessionEvent`] as it happens (the front end prints them as NDJSON
/// `connection` events); must be quick and must not block.
#[derive(Clone)]
pub struct EventHook(pub Arc<dyn Fn(&super::SessionEvent) + Send + Sync>);

static DEFAULT_EVENT_HOOK: std::sync::OnceLock<EventHook> = std::sync::OnceLock::new();

impl EventHook {
    /// Makes `hook` the one every `SessionOptions::new` starts with, for the whole process: the
    /// front end installs its NDJSON reporter once, and every session any library opens reports
    /// its connection events through it. Only the first call has an effect.
    pub fn install_default(hook: EventHook) {
        let _ = DEFAULT_EVENT_HOOK.set(hook);
    }
}

impl std::fmt::Debug for EventHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventHook(..)")
    }
}

/// How `Session::start` treats the first connection, and which failures end the session: the
/// failure policy (docs/transport.md, "Failures").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// One-shot commands: return once connected; the first failure is returned as an error.
    /// Once connected, transient failures are retried and a permanent one ends the session.
    RequireConnection,
    /// Long-running modes without a spool (`run`, `--follow`, the sink): return once connected,
    /// retrying every failure until then; the session never gives up by itself (see
    /// [`SessionOptions::give_up_after`]).
    WaitForConnection,
    /// Long-running modes with a disk spool: return at once and keep trying in the background,
    /// retrying every failure; messages are accepted while offline.
    Background,
}

impl StartMode {
    /// Whether every failure is retried (long-running), not only transient ones.
    pub fn retries_everything(self) -> bool {
        !matches!(self, StartMode::RequireConnection)
    }
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
    /// The back-off starts over only after a connection stayed up this long, so a broker that
    /// accepts and then drops the client (a policy violation, a duplicate client id) is not
    /// hammered with a reconnect every few hundred milliseconds (AWS's device SDKs use 30 s).
    pub stable_after: Duration,
    /// End the session after this long without a connection (or before the first one), even
    /// in long-running modes. `None`: never.
    pub give_up_after: Option<Duration>,
    /// Largest MQTT packet sent or accepted (its remaining length). An incoming PUBLISH over
    /// it is read off the connection without being held and delivered as oversized
    /// ([`crate::Received::oversized`]).
    pub max_packet_size: usize,
    /// Incoming QoS 1 messages are acknowledged by `Session::ack` (after the application stored
    /// them) instead of as `Incoming::recv` hands them over.
    pub manual_acks: bool,
    /// Bytes of incoming messages buffered for the reader before the session stops reading the
    /// socket (back-pressure on the broker).
    pub incoming_bytes: usize,
    /// After a read, wait this long before the next one, so a busy stream arrives in fewer,
    /// larger reads: fewer wake-ups for this process and, on a small machine, fewer delays for
    /// the broker. Zero reads eagerly (lowest latency). Bulk consumers such as the sink set a
    /// few milliseconds.
    pub read_coalesce: Duration,
    /// See [`StartMode`].
    pub start_mode: StartMode,
    /// See [`ResendHook`].
    pub on_resend: Option<ResendHook>,
    /// See [`EventHook`].
    pub on_event: Option<EventHook>,
    /// Slots of the channel behind [`super::Session::events`], allocated up front (about 50
    /// bytes each); a receiver that falls this far behind loses the oldest events. Many
    /// sessions in one process with nobody reading events (a load test) take a few.
    pub event_capacity: usize,
    /// A TLS client configuration built once and shared by many sessions, used instead of
    /// building one from [`SessionOptions::tls`] (which is then not read). Each built config
    /// holds its own root store, certificate chain and resumption cache: tens of KiB per
    /// session.
    pub tls_config: Option<Arc<ClientConfig>>,
    /// Local (source) address the TCP connection binds to before connecting (port chosen by
    /// the system); only broker addresses of the same family are tried. `None`: the system's
    /// choice. One source address limits a host to about 64k connections to one broker port.
    pub bind: Option<std::net::IpAddr>,
    /// What the "spool full" warning tells the user to change (each binary names its own
    /// settings).
    pub spool_full_hint: String,
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
            stable_after: Duration::from_secs(30),
            give_up_after: None,
            max_packet_size: 256 * 1024,
            manual_acks: false,
            incoming_bytes: 4 * 1024 * 1024,
            read_coalesce: Duration::ZERO,
            start_mode: StartMode::RequireConnection,
            on_resend: None,
            on_event: DEFAULT_EVENT_HOOK.get().cloned(),
            event_capacity: 256,
            tls_config: None,
            bind: None,
            spool_full_hint: "raise --spool-max-mb or --spool-files to keep more".into(),
        }
    }

    pub(crate) fn connect_timeout_secs(&self) -> u64 {
        self.connect_timeout.as_secs().max(1)
    }

    /// Checks the settings and builds the TLS client configuration (for `mqtts`/`wss`).
    pub(crate) fn checked_tls(&self) -> Result<Option<Arc<ClientConfig>>, OptionsError> {
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
        if self.max_packet_size < 64 {
            return Err(OptionsError::Invalid(format!(
                "--max-packet-size {} is too small; use at least 64 bytes",
                self.max_packet_size
            )));
        }
        if self.max_packet_size > 268_435_455 {
            return Err(OptionsError::Invalid(format!(
                "--max-packet-size {} is over MQTT's limit of 268,435,455 bytes",
                self.max_packet_size
            )));
        }
        if self.inflight == 0 {
            return Err(OptionsError::Invalid(
                "--inflight must be at least 1".into(),
            ));
        }
        if self.event_capacity == 0 {
            return Err(OptionsError::Invalid(
                "the session's event capacity must be at least 1".into(),
            ));
        }
        if self.endpoint.scheme().is_tls() {
            match &self.tls_config {
                Some(shared) => Ok(Some(shared.clone())),
                None => Ok(Some(tls::client_config(&self.tls)?)),
            }
        } else {
            Ok(None)
        }
    }
}
