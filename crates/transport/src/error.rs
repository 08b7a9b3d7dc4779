//! Connection failures as sentences a person can act on, classified from the connection's,
//! rustls' and tungstenite's errors, and whether retrying can help.

use std::error::Error as StdError;

use rustls::{AlertDescription, CertificateError};

use crate::endpoint::Endpoint;
use crate::session::LinkError;

/// Why a connection to the broker failed or ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// CONNACK with a refusal code.
    #[error(
        "the broker at {endpoint} refused the connection: {meaning} (CONNACK code {code}); {hint}"
    )]
    Refused {
        /// Broker.
        endpoint: String,
        /// CONNACK return code.
        code: u8,
        /// What the code means.
        meaning: &'static str,
        /// What to check.
        hint: &'static str,
    },
    /// TCP connection refused.
    #[error(
        "nothing is listening at {endpoint} (connection refused); is the broker running, and is the port right?"
    )]
    NotListening {
        /// Broker.
        endpoint: String,
    },
    /// Host name does not resolve.
    #[error("cannot resolve the broker host `{host}`: {reason}; check the name in the broker URL")]
    Dns {
        /// Host.
        host: String,
        /// Resolver message.
        reason: String,
    },
    /// No CONNACK in time.
    #[error(
        "no answer from {endpoint} within {secs} s (TCP, TLS and MQTT CONNECT); check the address, the port and any firewall"
    )]
    Timeout {
        /// Broker.
        endpoint: String,
        /// Limit.
        secs: u64,
    },
    /// We do not trust the broker's certificate.
    #[error("the certificate of {endpoint} is not accepted: {problem}")]
    ServerCertificate {
        /// Broker.
        endpoint: String,
        /// What is wrong and what to do.
        problem: String,
        /// The certificate is outside its validity period: this machine's clock may be wrong
        /// (not yet set after boot), so a later attempt may succeed.
        clock: bool,
    },
    /// The broker rejected our client certificate.
    #[error("the broker at {endpoint} rejected our client certificate: {problem}")]
    ClientCertificate {
        /// Broker.
        endpoint: String,
        /// What the broker said and what to check.
        problem: String,
    },
    /// Another TLS failure.
    #[error("TLS with {endpoint} failed: {detail}")]
    Tls {
        /// Broker.
        endpoint: String,
        /// Detail.
        detail: String,
        /// The handshake was cut short (reset or closed by the peer, or a server-side error
        /// alert): a load balancer or a restarting broker does this, so a retry may succeed.
        transient: bool,
    },
    /// WebSocket upgrade failed.
    #[error("the WebSocket handshake with {endpoint} failed: {detail}")]
    WebSocket {
        /// Broker.
        endpoint: String,
        /// Detail.
        detail: String,
        /// The HTTP status of a refused upgrade, if the server answered with one.
        status: Option<u16>,
    },
    /// An established connection broke, or the peer closed it.
    #[error("the connection to {endpoint} was lost: {detail}")]
    Lost {
        /// Broker.
        endpoint: String,
        /// Detail.
        detail: String,
    },
}

impl ConnectError {
    /// Whether retrying the same connection cannot succeed until someone changes something: a
    /// refused identity or password, a certificate for another name or from an unknown CA, a
    /// client certificate the broker rejects, a WebSocket path that is not there. Network
    /// failures, handshakes cut short, a broker that is busy or restarting (CONNACK 3, HTTP 429
    /// and 5xx) and certificates outside their validity period (this machine's clock may not be
    /// set yet) are transient. One-shot commands end on a permanent failure; long-running
    /// sessions retry every failure (see `StartMode`).
    pub fn is_permanent(&self) -> bool {
        match self {
            ConnectError::Refused { code, .. } => *code != 3,
            ConnectError::ServerCertificate { clock, .. } => !clock,
            ConnectError::ClientCertificate { .. } => true,
            ConnectError::Tls { transient, .. } => !transient,
            ConnectError::WebSocket { status, .. } => {
                status.is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429)
            }
            ConnectError::NotListening { .. }
            | ConnectError::Dns { .. }
            | ConnectError::Timeout { .. }
            | ConnectError::Lost { .. } => false,
        }
    }

    /// A short name of the failure's cause, for deciding whether it changed between attempts
    /// (logs say a cause once, not once per attempt).
    pub fn cause(&self) -> &'static str {
        match self {
            ConnectError::Refused { .. } => "refused",
            ConnectError::NotListening { .. } => "not_listening",
            ConnectError::Dns { .. } => "dns",
            ConnectError::Timeout { .. } => "timeout",
            ConnectError::ServerCertificate { .. } => "server_certificate",
            ConnectError::ClientCertificate { .. } => "client_certificate",
            ConnectError::Tls { .. } => "tls",
            ConnectError::WebSocket { .. } => "websocket",
            ConnectError::Lost { .. } => "lost",
        }
    }
}

fn connack_meaning(
    code: rumqttc::mqttbytes::v4::ConnectReturnCode,
) -> (u8, &'static str, &'static str) {
    use rumqttc::mqttbytes::v4::ConnectReturnCode as C;
    match code {
        C::Success => (0, "accepted", "this is not an error"),
        C::RefusedProtocolVersion => (
            1,
            "unacceptable protocol version",
            "the broker does not speak MQTT 3.1.1",
        ),
        C::BadClientId => (
            2,
            "identifier rejected",
            "check --client-id (some brokers require a particular form)",
        ),
        C::ServiceUnavailable => (
            3,
            "server unavailable",
            "the broker is up but not taking clients; retrying",
        ),
        C::BadUserNamePassword => (
            4,
            "bad user name or password",
            "check --username and the password given by --password-env or --password-file",
        ),
        C::NotAuthorized => (
            5,
            "not authorized",
            "check the username and password (--password-env/--password-file) or that this client may connect",
        ),
    }
}

/// Walks an error's source chain (and through `io::Error` wrappers) for a value of type `T`.
fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(t) = find::<T>(inner)
        {
            return Some(t);
        }
        cur = e.source();
    }
    None
}

fn server_cert_problem(e: &CertificateError, host: &str) -> String {
    match e {
        CertificateError::UnknownIssuer => {
            "it is not signed by a CA we trust (unknown issuer); pass the CA that signed the broker's certificate with --cafile".into()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "it has expired; the broker needs a new certificate (or this machine's clock is wrong)".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet; check this machine's clock".into()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!("it is not valid for the host name `{host}`; connect with a name the certificate lists")
        }
        other => format!("{other:?}"),
    }
}

fn alert_problem(alert: AlertDescription) -> Option<String> {
    let s = match alert {
        AlertDescription::UnknownCA => {
            "it is not signed by a CA the broker trusts (TLS alert: unknown CA); use a certificate the broker's CA issued"
        }
        AlertDescription::CertificateExpired => {
            "it has expired (TLS alert: certificate expired); issue a new one"
        }
        AlertDescription::CertificateRequired => {
            "the broker requires a client certificate and none was sent (TLS alert: certificate required); pass --cert and --key"
        }
        AlertDescription::BadCertificate
        | AlertDescription::CertificateUnknown
        | AlertDescription::UnsupportedCertificate => {
            "the broker could not verify it (TLS alert: bad certificate); check --cert and --key belong together and to this broker"
        }
        AlertDescription::CertificateRevoked => {
            "it has been revoked (TLS alert: certificate revoked)"
        }
        AlertDescription::AccessDenied => {
            "the broker denied access for this certificate (TLS alert: access denied)"
        }
        _ => return None,
    };
    Some(s.to_owned())
}

/// Turns a connection failure into a `ConnectError` for `endpoint`.
pub(crate) fn classify(err: &LinkError, endpoint: &Endpoint, timeout_secs: u64) -> ConnectError {
    let ep = endpoint.to_string();
    match err {
        LinkError::Refused(code) => {
            let (code, meaning, hint) = connack_meaning(*code);
            return ConnectError::Refused {
                endpoint: ep,
                code,
                meaning,
                hint,
            };
        }
        LinkError::Timeout => {
            return ConnectError::Timeout {
                endpoint: ep,
                secs: timeout_secs,
            };
        }
        LinkError::Dns(e) => {
            return ConnectError::Dns {
                host: endpoint.host().to_owned(),
                reason: e.to_string(),
            };
        }
        LinkError::BadServerName => {
            return ConnectError::Tls {
                endpoint: ep,
                detail: format!("`{}` is not a valid TLS server name", endpoint.host()),
                transient: false,
            };
        }
        LinkError::Subprotocol(_) => {
            return ConnectError::WebSocket {
                endpoint: ep,
                detail: format!("{err}; is this path an MQTT endpoint?"),
                status: None,
            };
        }
        _ => {}
    }
    let as_std: &(dyn StdError + 'static) = match err {
        LinkError::WebSocket(ws) => &**ws,
        other => other,
    };
    if let Some(tls) = find::<rustls::Error>(as_std) {
        return match tls {
            rustls::Error::InvalidCertificate(ce) => ConnectError::ServerCertificate {
                endpoint: ep,
                problem: server_cert_problem(ce, endpoint.host()),
                clock: matches!(
                    ce,
                    CertificateError::Expired
                        | CertificateError::ExpiredContext { .. }
                        | CertificateError::NotValidYet
                        | CertificateError::NotValidYetContext { .. }
                ),
            },
            rustls::Error::AlertReceived(alert) => match alert_problem(*alert) {
                Some(problem) => ConnectError::ClientCertificate { endpoint: ep, problem },
                None if *alert == AlertDescription::HandshakeFailure => ConnectError::Tls {
                    endpoint: ep,
                    detail: "the broker ended the handshake (TLS alert: handshake failure); it may require a client certificate (--cert/--key) or a TLS version we do not offer".into(),
                    transient: false,
                },
                // The server's own trouble (a broker shutting down, an overloaded proxy).
                None => ConnectError::Tls {
                    endpoint: ep,
                    detail: format!("the broker sent TLS alert {alert:?}"),
                    transient: matches!(
                        alert,
                        AlertDescription::InternalError | AlertDescription::CloseNotify | AlertDescription::UserCanceled
                    ),
                },
            },
            other => ConnectError::Tls { endpoint: ep, detail: other.to_string(), transient: false },
        };
    }
    if let LinkError::TlsHandshake(io) = err
        && matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
        )
    {
        // A load balancer or a restarting broker does this as well as a plain listener does.
        return ConnectError::Tls {
            endpoint: ep,
            detail: format!(
                "the server closed the connection during the TLS handshake (if this persists: is port {} a TLS listener? mqtts:// is usually 8883)",
                endpoint.port()
            ),
            transient: true,
        };
    }
    if let LinkError::WebSocket(ws) = err {
        if let tungstenite::Error::Io(io) = &**ws
            && io.kind() == std::io::ErrorKind::ConnectionReset
        {
            return ConnectError::Lost {
                endpoint: ep,
                detail: format!("during the WebSocket handshake: {io}"),
            };
        }
        return websocket_error(ws, ep);
    }
    if let Some(io) = find::<std::io::Error>(as_std)
        && io.kind() == std::io::ErrorKind::ConnectionRefused
    {
        return ConnectError::NotListening { endpoint: ep };
    }
    let detail = match err {
        LinkError::Closed => {
            "the broker closed the connection (if this happens right after connecting, the broker may refuse this client: check its log)".to_owned()
        }
        other => other.to_string(),
    };
    ConnectError::Lost {
        endpoint: ep,
        detail,
    }
}

fn websocket_error(err: &tungstenite::Error, endpoint: String) -> ConnectError {
    let (detail, status) = match err {
        tungstenite::Error::Http(resp) => {
            let status = resp.status();
            let hint = if status.is_server_error() || status.as_u16() == 429 {
                "the server is busy or restarting; retrying"
            } else {
                "check the WebSocket path in the broker URL"
            };
            (
                format!("HTTP {status} from the server; {hint}"),
                Some(status.as_u16()),
            )
        }
        other => (other.to_string(), None),
    };
    ConnectError::WebSocket {
        endpoint,
        detail,
        status,
    }
}
