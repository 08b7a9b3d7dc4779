//! What a user asked for about the connection, before a vendor fills in its defaults: a plain
//! struct with the same meaning as the shared command-line flags (`--broker`, `--client-id`,
//! `--cafile`, `--username`, `--password-env`, ...), so libraries can take it without knowing
//! about any command line. [`ConnectSettings::session_options`] turns it into
//! [`SessionOptions`] once the vendor's default broker is known; the front end (`cli`) maps its
//! flags onto it field by field.

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::{AuthError, Credentials, PasswordSource};
use crate::endpoint::{Endpoint, EndpointError};
use crate::session::SessionOptions;
use crate::tls::TlsOptions;

/// Keep-alive when nobody says otherwise (seconds).
pub const DEFAULT_KEEP_ALIVE_SECS: u64 = 60;
/// QoS 1 messages awaiting PUBACK at once when nobody says otherwise.
pub const DEFAULT_INFLIGHT: u16 = 100;
/// Seconds allowed for TCP + TLS + CONNACK when nobody says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
/// Longest wait between reconnect attempts when nobody says otherwise (seconds).
pub const DEFAULT_RECONNECT_MAX_SECS: u64 = 30;
/// Largest MQTT packet when nobody says otherwise (bytes).
pub const DEFAULT_MAX_PACKET_SIZE: usize = 256 * 1024;

/// The connection as the user described it. Empty fields are for the vendor (or the caller) to
/// fill in: a default broker URL, a client id from a config file, a token as password.
#[derive(Debug, Clone)]
pub struct ConnectSettings {
    /// Broker URL (`mqtt://`, `mqtts://`, `ws://`, `wss://`, or a bare `host:port`).
    pub broker: Option<String>,
    /// Plaintext to a host that is not this machine was explicitly allowed.
    pub allow_plaintext: bool,
    /// MQTT client id (default: `edgewire-` plus 8 random hex digits).
    pub client_id: Option<String>,
    /// Keep-alive interval (zero: off).
    pub keep_alive: Duration,
    /// Ask the broker to keep the session (clean session off).
    pub persistent: bool,
    /// Most QoS 1 messages awaiting PUBACK at once.
    pub inflight: u16,
    /// Time allowed for TCP + TLS + CONNACK (at least one second is used).
    pub connect_timeout: Duration,
    /// Longest wait between reconnect attempts (at least one second is used).
    pub reconnect_max: Duration,
    /// End the session after this long without a connection (`None`: see `StartMode`).
    pub give_up_after: Option<Duration>,
    /// Largest MQTT packet sent or taken, in bytes.
    pub max_packet_size: usize,
    /// Trust, client identity and ALPN.
    pub tls: TlsOptions,
    /// MQTT username.
    pub username: Option<String>,
    /// Where the password comes from (never a value on the command line).
    pub password: Option<PasswordSource>,
}

impl Default for ConnectSettings {
    /// The defaults of the shared flags, as if none was given.
    fn default() -> Self {
        ConnectSettings {
            broker: None,
            allow_plaintext: false,
            client_id: None,
            keep_alive: Duration::from_secs(DEFAULT_KEEP_ALIVE_SECS),
            persistent: false,
            inflight: DEFAULT_INFLIGHT,
            connect_timeout: Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS),
            reconnect_max: Duration::from_secs(DEFAULT_RECONNECT_MAX_SECS),
            give_up_after: None,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            tls: TlsOptions::default(),
            username: None,
            password: None,
        }
    }
}

/// Why the settings cannot become session options.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// No broker anywhere.
    #[error("no broker given: pass --broker URL (or set EDGEWIRE_BROKER)")]
    NoBroker,
    /// Bad URL or plaintext refused.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The password source failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A password without a username.
    #[error("--password-env/--password-file need --username too")]
    PasswordWithoutUser,
}

impl ConnectSettings {
    /// Session options for the broker given, or `default_broker` (a vendor's documented host,
    /// a value from a config file) when none was. Reads the password now.
    pub fn session_options(
        &self,
        default_broker: Option<&str>,
    ) -> Result<SessionOptions, SettingsError> {
        let url = self
            .broker
            .as_deref()
            .or(default_broker)
            .ok_or(SettingsError::NoBroker)?;
        let endpoint: Endpoint = url.parse()?;
        if endpoint.check_plaintext(self.allow_plaintext)? {
            tracing::warn!(
                "sending plaintext to {} (--allow-plaintext): anyone on the path can read the messages and the password",
                endpoint
            );
        }
        let mut opts = SessionOptions::new(endpoint);
        if let Some(id) = &self.client_id {
            opts.client_id.clone_from(id);
        }
        opts.keep_alive = self.keep_alive;
        opts.clean_session = !self.persistent;
        opts.inflight = self.inflight;
        opts.connect_timeout = self.connect_timeout.max(Duration::from_secs(1));
        opts.backoff_max = self.reconnect_max.max(Duration::from_secs(1));
        opts.give_up_after = self.give_up_after;
        opts.max_packet_size = self.max_packet_size;
        opts.tls = self.tls.clone();
        opts.credentials = self.credentials()?;
        Ok(opts)
    }

    /// The username with the password read now, if a username is configured.
    pub fn credentials(&self) -> Result<Option<Credentials>, SettingsError> {
        match (&self.username, &self.password) {
            (Some(u), p) => Ok(Some(Credentials {
                username: u.clone(),
                password: p.as_ref().map(PasswordSource::read).transpose()?,
            })),
            (None, Some(_)) => Err(SettingsError::PasswordWithoutUser),
            (None, None) => Ok(None),
        }
    }

    /// The CA files to trust: the ones given, or `fallback` (a config file's) when none were.
    pub fn ca_files_or(&self, fallback: impl IntoIterator<Item = PathBuf>) -> Vec<PathBuf> {
        if self.tls.ca_files.is_empty() {
            fallback.into_iter().collect()
        } else {
            self.tls.ca_files.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_given_broker_wins_over_the_default() {
        let s = ConnectSettings {
            broker: Some("mqtt://127.0.0.1:1884".into()),
            client_id: Some("dev1".into()),
            persistent: true,
            ..ConnectSettings::default()
        };
        let o = s
            .session_options(Some("mqtts://vendor.example:8883"))
            .unwrap();
        assert_eq!(o.endpoint.port(), 1884);
        assert_eq!(o.client_id, "dev1");
        assert!(!o.clean_session);
        let o = ConnectSettings::default()
            .session_options(Some("mqtts://vendor.example:8883"))
            .unwrap();
        assert_eq!(o.endpoint.host(), "vendor.example");
        assert!(o.clean_session);
        assert!(matches!(
            ConnectSettings::default().session_options(None),
            Err(SettingsError::NoBroker)
        ));
    }

    #[test]
    fn plaintext_to_a_remote_host_needs_the_opt_in() {
        let mut s = ConnectSettings {
            broker: Some("mqtt://broker.example.com".into()),
            ..ConnectSettings::default()
        };
        let err = s.session_options(None).unwrap_err();
        assert!(err.to_string().contains("--allow-plaintext"), "{err}");
        s.allow_plaintext = true;
        assert!(s.session_options(None).is_ok());
    }

    #[test]
    fn a_password_needs_a_username_and_a_set_variable() {
        let s = ConnectSettings {
            password: Some(PasswordSource::Env("EDGEWIRE_TEST_PW_UNSET".into())),
            ..ConnectSettings::default()
        };
        assert!(matches!(
            s.credentials(),
            Err(SettingsError::PasswordWithoutUser)
        ));
        let s = ConnectSettings {
            username: Some("me".into()),
            ..s
        };
        let err = s.credentials().unwrap_err().to_string();
        assert!(err.contains("EDGEWIRE_TEST_PW_UNSET"), "{err}");
    }
}
