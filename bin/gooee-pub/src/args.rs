//! The flags every `gooee-pub` subcommand shares: connection (the shared transport groups plus
//! `--ws`), publishing options, targets; and `sub`. Parsing and validation only.

use clap::Args;
use cli::args::{AuthArgs, BrokerArgs, TlsArgs, parse_qos};
use gooee::protocol::Entity;
use transport::Qos;

/// Where and how to connect. The token comes from `GOOEE_TOKEN`, `--password-env VAR` or
/// `--password-file PATH`; the username defaults to `authorization`.
#[derive(Debug, Args)]
pub struct Conn {
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// WebSockets over TLS on port 443 (wss://ws.gooee.io:443/mqtt) instead of MQTT over TLS on 8883.
    #[arg(long, help_heading = "Connection")]
    pub ws: bool,
    /// The WebSocket path with --ws (not documented by Gooee; /mqtt is the usual one).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/mqtt",
        help_heading = "Connection"
    )]
    pub ws_path: String,
}

/// How to publish.
#[derive(Debug, Args)]
#[command(next_help_heading = "Publishing")]
pub struct PubOpts {
    /// QoS: 1 waits for the broker's confirmation, 0 does not.
    #[arg(long, short = 'q', value_name = "QOS", default_value = "1", value_parser = parse_qos)]
    pub qos: Qos,
    /// Subscribe to the matching rejected topic first and wait for the platform's verdict; exit 3
    /// with its message when it rejects the publish.
    #[arg(long)]
    pub watch_rejected: bool,
    /// How long --watch-rejected waits after the broker confirmed the publish.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 3000,
        requires = "watch_rejected"
    )]
    pub rejected_wait: u64,
    /// Check only the topic table, not the payload rules, so the platform judges the payload.
    #[arg(long)]
    pub no_local_check: bool,
}

/// Who an action is for (buildings are subscribe-only: the topic table check explains).
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ActionTarget {
    /// Device id.
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    /// Space id.
    #[arg(long, value_name = "ID")]
    pub space: Option<String>,
    /// Building id (refused: Gooee's table makes building actions subscribe-only).
    #[arg(long, value_name = "ID")]
    pub building: Option<String>,
}

/// Who a fault alarm is about.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct AlarmTarget {
    /// Device id.
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    /// Building id.
    #[arg(long, value_name = "ID")]
    pub building: Option<String>,
}

/// Whose head count.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct CountTarget {
    /// Area id.
    #[arg(long, value_name = "ID")]
    pub area: Option<String>,
    /// Space id.
    #[arg(long, value_name = "ID")]
    pub space: Option<String>,
    /// Building id.
    #[arg(long, value_name = "ID")]
    pub building: Option<String>,
}

/// `sub`: print what arrives.
#[derive(Debug, Args)]
pub struct SubArgs {
    /// Topics or filters from the table (`+` may stand for an id, name or type).
    #[arg(value_name = "TOPIC", required = true)]
    pub topics: Vec<String>,
    /// Stop after N messages (default: until Ctrl-C).
    #[arg(long, short = 'C', value_name = "N")]
    pub count: Option<u64>,
    /// QoS of the subscription.
    #[arg(long, short = 'q', value_name = "QOS", default_value = "1", value_parser = parse_qos)]
    pub qos: Qos,
    #[command(flatten)]
    pub conn: Conn,
}

fn pick(options: [(Entity, Option<&String>); 3]) -> (Entity, String) {
    options
        .into_iter()
        .find_map(|(e, id)| id.map(|id| (e, id.clone())))
        .unwrap_or((options[0].0, String::new()))
}

impl ActionTarget {
    /// The entity and id given.
    pub fn get(&self) -> (Entity, String) {
        pick([
            (Entity::Device, self.device.as_ref()),
            (Entity::Space, self.space.as_ref()),
            (Entity::Building, self.building.as_ref()),
        ])
    }
}

impl AlarmTarget {
    /// The entity and id given.
    pub fn get(&self) -> (Entity, String) {
        pick([
            (Entity::Device, self.device.as_ref()),
            (Entity::Building, self.building.as_ref()),
            (Entity::Building, None),
        ])
    }
}

impl CountTarget {
    /// The entity and id given.
    pub fn get(&self) -> (Entity, String) {
        pick([
            (Entity::Area, self.area.as_ref()),
            (Entity::Space, self.space.as_ref()),
            (Entity::Building, self.building.as_ref()),
        ])
    }
}
