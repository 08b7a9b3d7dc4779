//! `mqtt-sink bridge-config`: prints a mosquitto bridge section for AWS IoT Core.

use std::path::PathBuf;

use clap::Args;
use cli::output::{Output, exit};

#[derive(Debug, Args)]
pub struct BridgeArgs {
    /// AWS IoT endpoint (`aws iot describe-endpoint --endpoint-type iot:Data-ATS`).
    #[arg(long, value_name = "HOST")]
    endpoint: String,
    /// Port at AWS IoT.
    #[arg(long, default_value_t = 8883)]
    port: u16,
    /// Local topic filter to forward (repeatable).
    #[arg(long, short = 't', value_name = "FILTER", default_value = "esp32/pub")]
    topic: Vec<String>,
    /// out (local to AWS), in, or both.
    #[arg(long, default_value = "out")]
    direction: String,
    /// QoS of forwarded messages (0 or 1).
    #[arg(long, default_value_t = 1)]
    qos: u8,
    /// Amazon root CA.
    #[arg(
        long,
        value_name = "PEM",
        default_value = "/etc/mosquitto/certs/rootCA.pem"
    )]
    cafile: PathBuf,
    /// The thing's certificate.
    #[arg(
        long,
        value_name = "PEM",
        default_value = "/etc/mosquitto/certs/cert.crt"
    )]
    certfile: PathBuf,
    /// The thing's private key (keep it chmod 600).
    #[arg(
        long,
        value_name = "PEM",
        default_value = "/etc/mosquitto/certs/private.key"
    )]
    keyfile: PathBuf,
    /// Client id of the bridge at AWS IoT.
    #[arg(long, default_value = "bridgeawsiot")]
    client_id: String,
    /// Name of the bridge connection.
    #[arg(long, default_value = "awsiot")]
    name: String,
}

pub fn run(args: &BridgeArgs, out: Output) -> u8 {
    let cfg = sink::bridge::BridgeConfig {
        name: args.name.clone(),
        endpoint: args.endpoint.clone(),
        port: args.port,
        topics: args.topic.clone(),
        direction: args.direction.clone(),
        qos: args.qos,
        cafile: args.cafile.clone(),
        certfile: args.certfile.clone(),
        keyfile: args.keyfile.clone(),
        client_id: args.client_id.clone(),
    };
    match cfg.render() {
        Ok(text) => {
            if let Some(w) = transport::tls::key_permission_warning(&args.keyfile) {
                tracing::warn!("{w}");
            }
            out.event("bridge_config", &serde_json_text(&text), || {
                text.trim_end().to_owned()
            });
            exit::OK
        }
        Err(e) => {
            tracing::error!("{e}");
            exit::USAGE
        }
    }
}

fn serde_json_text(text: &str) -> std::collections::BTreeMap<&'static str, &str> {
    std::collections::BTreeMap::from([("config", text)])
}
