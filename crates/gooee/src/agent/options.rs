//! Turning the user's connection settings into session options for Gooee: the documented hosts
//! (`mqtts://mqtt.gooee.io:8883`, WebSockets on `ws.gooee.io:443`), username `authorization`
//! unless told otherwise, and the API token from `GOOEE_TOKEN` unless `--password-env` or
//! `--password-file` names another source. The token is never a flag value.

use transport::auth::PasswordSource;
use transport::{ConnectSettings, SessionOptions};

use super::AgentError;
use crate::protocol::USERNAME;

/// MQTT over TLS, from the documentation's host table.
pub const DEFAULT_BROKER: &str = "mqtts://mqtt.gooee.io:8883";
/// The WebSocket host (port 443) from the documentation's host table; the path is not documented.
pub const DEFAULT_WS_HOST: &str = "ws.gooee.io";
/// Where the API token is read from by default.
pub const TOKEN_ENV: &str = "GOOEE_TOKEN";

/// The default broker URL: TLS on 8883, or with `ws_path` WebSockets over TLS on 443.
pub fn default_broker(ws_path: Option<&str>) -> Result<String, AgentError> {
    match ws_path {
        None => Ok(DEFAULT_BROKER.to_owned()),
        Some(p) if p.starts_with('/') && !p.contains(char::is_whitespace) => {
            Ok(format!("wss://{DEFAULT_WS_HOST}:443{p}"))
        }
        Some(p) => Err(AgentError::Options(format!(
            "--ws-path `{p}` must start with `/` and contain no spaces, e.g. /mqtt"
        ))),
    }
}

/// Session options from the user's settings with Gooee's defaults. `ws_path` is `Some` with
/// `--ws`.
pub fn session_options(
    settings: &ConnectSettings,
    ws_path: Option<&str>,
) -> Result<SessionOptions, AgentError> {
    let mut settings = settings.clone();
    match settings.username.as_deref() {
        None => settings.username = Some(USERNAME.to_owned()),
        Some(u) if u != USERNAME => tracing::warn!(
            "Gooee's broker expects the username `{USERNAME}` (with the API token as password), not `{u}`"
        ),
        Some(_) => {}
    }
    if settings.password.is_none() {
        match std::env::var(TOKEN_ENV) {
            Ok(v) if !v.is_empty() => {
                settings.password = Some(PasswordSource::Env(TOKEN_ENV.to_owned()));
            }
            _ => return Err(AgentError::NoToken),
        }
    }
    let default = default_broker(ws_path)?;
    if let (Some(_), Some(url)) = (ws_path, &settings.broker) {
        tracing::info!("--ws only chooses the default endpoint; using the broker URL `{url}`");
    }
    settings
        .session_options(Some(&default))
        .map_err(|e| AgentError::Options(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_default_has_the_path() {
        assert_eq!(
            default_broker(Some("/mqtt")).unwrap(),
            "wss://ws.gooee.io:443/mqtt"
        );
        assert_eq!(default_broker(None).unwrap(), DEFAULT_BROKER);
        assert!(default_broker(Some("mqtt")).is_err());
    }
}
