//! Broker endpoints parsed from a URL (`mqtt://`, `mqtts://`, `ws://`, `wss://`), and the rule that
//! plaintext to a host off this machine needs an explicit opt-in. Pure: no sockets, no DNS.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// How the MQTT bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// MQTT over plain TCP.
    Mqtt,
    /// MQTT over TLS.
    Mqtts,
    /// MQTT over a plain WebSocket.
    Ws,
    /// MQTT over a WebSocket inside TLS.
    Wss,
}

impl Scheme {
    /// The port a URL without one means.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Mqtt => 1883,
            Scheme::Mqtts => 8883,
            Scheme::Ws => 80,
            Scheme::Wss => 443,
        }
    }

    /// Whether the scheme wraps the connection in TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Mqtts | Scheme::Wss)
    }

    /// Whether MQTT travels inside WebSocket frames.
    pub fn is_websocket(self) -> bool {
        matches!(self, Scheme::Ws | Scheme::Wss)
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Mqtt => "mqtt",
            Scheme::Mqtts => "mqtts",
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
        }
    }
}

/// Where a broker listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    scheme: Scheme,
    host: String,
    port: u16,
    path: String,
}

/// Why a broker URL could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The text is not a URL or `host[:port]`.
    #[error(
        "broker address `{input}` is not a URL: {reason}; expected e.g. mqtts://broker.example.com:8883"
    )]
    Invalid {
        /// What the user gave.
        input: String,
        /// What the URL parser said.
        reason: String,
    },
    /// The scheme is not one we speak.
    #[error(
        "broker address `{input}` has scheme `{scheme}`; expected mqtt://, mqtts://, ws:// or wss://"
    )]
    UnknownScheme {
        /// What the user gave.
        input: String,
        /// The scheme found.
        scheme: String,
    },
    /// No host in the URL.
    #[error("broker address `{input}` names no host")]
    MissingHost {
        /// What the user gave.
        input: String,
    },
    /// Plaintext to a remote host without `--allow-plaintext`.
    #[error(
        "refusing plaintext {scheme}:// to `{host}`, which is not this machine: anyone on the path can read the traffic \
         and the password. Use mqtts:// or wss://, or pass --allow-plaintext if you accept that"
    )]
    PlaintextRefused {
        /// `mqtt` or `ws`.
        scheme: &'static str,
        /// The remote host.
        host: String,
    },
}

impl Endpoint {
    /// Builds an endpoint from parts; the path is used only for WebSockets.
    pub fn new(
        scheme: Scheme,
        host: impl Into<String>,
        port: u16,
        path: impl Into<String>,
    ) -> Self {
        Endpoint {
            scheme,
            host: host.into(),
            port,
            path: path.into(),
        }
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
    /// Host name or IP literal, without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// WebSocket path (starts with `/`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the host is this machine (`localhost` or a loopback IP).
    pub fn is_loopback(&self) -> bool {
        if self.host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// `host:port`, with brackets around an IPv6 literal.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The full `ws://` or `wss://` URL for the WebSocket handshake.
    pub fn websocket_url(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority(),
            self.path
        )
    }

    /// Applies the plaintext rule: TLS or loopback is fine; plaintext to another host needs
    /// `allow_plaintext`, and then the caller should warn (returns `true` when a warning is due).
    pub fn check_plaintext(&self, allow_plaintext: bool) -> Result<bool, EndpointError> {
        if self.scheme.is_tls() || self.is_loopback() {
            return Ok(false);
        }
        if allow_plaintext {
            return Ok(true);
        }
        Err(EndpointError::PlaintextRefused {
            scheme: self.scheme.as_str(),
            host: self.host.clone(),
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scheme.is_websocket() {
            f.write_str(&self.websocket_url())
        } else {
            write!(f, "{}://{}", self.scheme.as_str(), self.authority())
        }
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    /// Accepts a URL, or a bare `host[:port]` meaning `mqtt://` (as mosquitto_pub's `-h`/`-p`).
    /// A WebSocket URL without a path gets `/mqtt`, the path most brokers serve MQTT on.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let input = input.trim();
        let with_scheme = if input.contains("://") {
            input.to_owned()
        } else {
            format!("mqtt://{input}")
        };
        let url = url::Url::parse(&with_scheme).map_err(|e| EndpointError::Invalid {
            input: input.to_owned(),
            reason: e.to_string(),
        })?;
        let scheme = match url.scheme() {
            "mqtt" | "tcp" => Scheme::Mqtt,
            "mqtts" | "ssl" | "tls" => Scheme::Mqtts,
            "ws" => Scheme::Ws,
            "wss" => Scheme::Wss,
            other => {
                return Err(EndpointError::UnknownScheme {
                    input: input.to_owned(),
                    scheme: other.to_owned(),
                });
            }
        };
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(h) => h.to_string(),
            None => {
                return Err(EndpointError::MissingHost {
                    input: input.to_owned(),
                });
            }
        };
        if host.is_empty() {
            return Err(EndpointError::MissingHost {
                input: input.to_owned(),
            });
        }
        let port = url.port().unwrap_or(scheme.default_port());
        let mut path = url.path().to_owned();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        if scheme.is_websocket() && (path.is_empty() || path == "/") {
            "/mqtt".clone_into(&mut path);
        }
        Ok(Endpoint {
            scheme,
            host,
            port,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    #[test]
    fn schemes_get_their_default_ports() {
        assert_eq!(ep("mqtt://h").port(), 1883);
        assert_eq!(ep("mqtts://h").port(), 8883);
        assert_eq!(ep("ws://h").port(), 80);
        assert_eq!(ep("wss://h").port(), 443);
        assert_eq!(ep("mqtts://h:9000").port(), 9000);
    }

    #[test]
    fn bare_host_port_means_plain_mqtt() {
        let e = ep("127.0.0.1:18830");
        assert_eq!(e.scheme(), Scheme::Mqtt);
        assert_eq!((e.host(), e.port()), ("127.0.0.1", 18830));
    }

    #[test]
    fn websocket_keeps_path_and_defaults_to_mqtt() {
        assert_eq!(
            ep("wss://b.example.com/ws/x").websocket_url(),
            "wss://b.example.com:443/ws/x"
        );
        assert_eq!(ep("ws://127.0.0.1:9001").path(), "/mqtt");
    }

    #[test]
    fn ipv6_literal_is_bracketed_in_authority() {
        let e = ep("mqtt://[::1]:1883");
        assert_eq!(e.host(), "::1");
        assert_eq!(e.authority(), "[::1]:1883");
        assert!(e.is_loopback());
    }

    #[test]
    fn unknown_scheme_names_the_input() {
        let err = "http://h".parse::<Endpoint>().unwrap_err();
        assert!(err.to_string().contains("`http://h`"), "{err}");
        assert!(err.to_string().contains("mqtts://"), "{err}");
    }

    #[test]
    fn plaintext_rule() {
        assert_eq!(ep("mqtt://localhost").check_plaintext(false), Ok(false));
        assert_eq!(ep("mqtt://127.0.0.2").check_plaintext(false), Ok(false));
        assert_eq!(
            ep("mqtts://remote.example").check_plaintext(false),
            Ok(false)
        );
        let refused = ep("ws://remote.example/mqtt")
            .check_plaintext(false)
            .unwrap_err();
        assert!(refused.to_string().contains("--allow-plaintext"));
        assert_eq!(ep("mqtt://remote.example").check_plaintext(true), Ok(true));
    }
}
