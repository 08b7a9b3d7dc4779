//! Connection settings for a provisioned device (the reference client's `iot_client.py`; AWS IoT developer guide, "Protocols, port mappings, and authentication"): MQTT over TLS to
//! `mqttEndPoint:mqttPort` from `properties.json`, trusting `amazonRootCA1.pem`, presenting
//! `deviceCert.cert` and `devicePrivateKey.pem`, client id = thing name, keep-alive 120 s.
//! On port 443 the TLS handshake offers ALPN `x-amzn-mqtt-ca`, which AWS IoT requires there.

use std::time::Duration;

use transport::SessionOptions;
use transport::endpoint::Scheme;

use crate::agent::{AgentError, Provisioned, StoreError};
use crate::protocol::store::PROPERTIES;

/// The ALPN protocol AWS IoT needs for MQTT with client certificates on port 443.
pub const ALPN_MQTT_CA: &str = "x-amzn-mqtt-ca";
/// The reference client's keep-alive.
pub const KEEP_ALIVE: Duration = Duration::from_secs(120);

/// The broker URL of a provisioned device, with `port` replacing the configured one.
pub fn broker_url(device: &Provisioned, port: Option<u16>) -> Result<String, AgentError> {
    let p = device.properties.as_ref().ok_or_else(|| {
        AgentError::Store(StoreError::Missing {
            dir: device.dir.clone(),
            file: PROPERTIES,
            hint: "it names the MQTT endpoint; run `hdm-telemetry provision` (it fetches the configuration without provisioning again) or pass --broker",
        })
    })?;
    Ok(format!(
        "mqtts://{}:{}",
        p.mqtt_endpoint,
        port.unwrap_or(p.mqtt_port)
    ))
}

/// Fills in what the command line left open: trust, client certificate and key, the thing
/// name as client id (unless `keep_client_id`), and ALPN for port 443.
pub fn complete(opts: &mut SessionOptions, device: &Provisioned, keep_client_id: bool) {
    if opts.tls.ca_files.is_empty() {
        opts.tls.ca_files = vec![device.root_ca.clone()];
    }
    if opts.tls.client_cert.is_none() && opts.tls.client_key.is_none() {
        opts.tls.client_cert = Some(device.cert.clone());
        opts.tls.client_key = Some(device.key.clone());
    }
    if !keep_client_id {
        opts.client_id.clone_from(&device.thing);
    }
    if opts.endpoint.port() == 443
        && matches!(opts.endpoint.scheme(), Scheme::Mqtts)
        && opts.tls.alpn.is_empty()
    {
        opts.tls.alpn = vec![ALPN_MQTT_CA.to_owned()];
    }
}

/// Session options for a provisioned device as the reference client connects.
pub fn session_options(
    device: &Provisioned,
    port: Option<u16>,
) -> Result<SessionOptions, AgentError> {
    let url = broker_url(device, port)?;
    let endpoint = url
        .parse()
        .map_err(|e: transport::endpoint::EndpointError| {
            AgentError::Config(format!("{}/{PROPERTIES}: {e}", device.dir.display()))
        })?;
    let mut opts = SessionOptions::new(endpoint);
    opts.keep_alive = KEEP_ALIVE;
    complete(&mut opts, device, false);
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::store::Properties;

    fn device(port: u16) -> Provisioned {
        Provisioned {
            dir: "cs".into(),
            thing: "hdm-1".into(),
            root_ca: "cs/amazonRootCA1.pem".into(),
            cert: "cs/deviceCert.cert".into(),
            key: "cs/devicePrivateKey.pem".into(),
            org_id: None,
            properties: Some(Properties {
                mqtt_endpoint: "a1b2.iot.eu-west-1.amazonaws.com".into(),
                mqtt_port: port,
                ..Properties::default()
            }),
        }
    }

    #[test]
    fn port_443_offers_the_aws_alpn() {
        let o = session_options(&device(8883), None).unwrap();
        assert!(o.tls.alpn.is_empty());
        assert_eq!(o.client_id, "hdm-1");
        assert_eq!(o.keep_alive, KEEP_ALIVE);
        let o = session_options(&device(8883), Some(443)).unwrap();
        assert_eq!(o.tls.alpn, vec!["x-amzn-mqtt-ca".to_owned()]);
        assert_eq!(o.endpoint.port(), 443);
        let o = session_options(&device(443), None).unwrap();
        assert_eq!(o.tls.alpn, vec!["x-amzn-mqtt-ca".to_owned()]);
    }

    #[test]
    fn no_properties_names_the_file() {
        let mut d = device(1);
        d.properties = None;
        let e = session_options(&d, None).unwrap_err().to_string();
        assert!(
            e.contains("properties.json") && e.contains("--broker"),
            "{e}"
        );
    }
}
