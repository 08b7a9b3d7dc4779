//! The publishing subcommands' flags: `meta`, `action`, `alarm`, `headcount`. Parsing only.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use gooee::protocol::HeadCountKind;

use crate::args::{ActionTarget, AlarmTarget, Conn, CountTarget, PubOpts};

/// `meta`: device meta values.
#[derive(Debug, Args)]
pub struct MetaArgs {
    /// Device id.
    #[arg(long, value_name = "ID")]
    pub device: String,
    /// Values as NAME=VALUE; VALUE is JSON when it parses (`21.5`, `true`, `[1,2]`), otherwise text.
    #[arg(
        value_name = "NAME=VALUE",
        required_unless_present = "data",
        conflicts_with = "data"
    )]
    pub values: Vec<String>,
    /// The payload from a file (a JSON array of meta objects, or one object); `-` reads stdin.
    #[arg(long, value_name = "FILE|-")]
    pub data: Option<PathBuf>,
    /// Stamp each NAME=VALUE with the current time.
    #[arg(long)]
    pub timestamp: bool,
    #[command(flatten)]
    pub publish: PubOpts,
    #[command(flatten)]
    pub conn: Conn,
}

/// `action`: an action on a device or space.
#[derive(Debug, Args)]
pub struct ActionArgs {
    #[command(flatten)]
    pub target: ActionTarget,
    /// Action type, e.g. on, off, dim, adjust.
    #[arg(long = "type", value_name = "TYPE", required_unless_present = "data")]
    pub kind: Option<String>,
    /// Label, e.g. "Dim Device".
    #[arg(long, value_name = "TEXT")]
    pub name: Option<String>,
    /// Parameters as a JSON object, e.g. '{"level": 80, "transition_time": 5}'.
    #[arg(long, value_name = "JSON")]
    pub value: Option<String>,
    /// Stamp the action's `created` with the current time.
    #[arg(long)]
    pub timestamp: bool,
    /// The payload from a file (a JSON action object); `-` reads stdin.
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["kind", "name", "value"])]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub publish: PubOpts,
    #[command(flatten)]
    pub conn: Conn,
}

/// `alarm`: a fault alarm for a device or building.
#[derive(Debug, Args)]
pub struct AlarmArgs {
    #[command(flatten)]
    pub target: AlarmTarget,
    /// Alarm type, e.g. high_temperature.
    #[arg(long = "type", value_name = "TYPE", required_unless_present = "data")]
    pub kind: Option<String>,
    /// Level, e.g. info.
    #[arg(long, value_name = "LEVEL", required_unless_present = "data")]
    pub level: Option<String>,
    /// Priority, 0 to 255.
    #[arg(long, value_name = "N", required_unless_present = "data")]
    pub priority: Option<u8>,
    /// The `device` field (default: the --device id).
    #[arg(long, value_name = "ID")]
    pub alarm_device: Option<String>,
    /// Alarm id.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Notes.
    #[arg(long, value_name = "TEXT")]
    pub notes: Option<String>,
    /// Description.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Measured values as JSON, e.g. '{"temp": 100}'.
    #[arg(long, value_name = "JSON")]
    pub value: Option<String>,
    /// When (RFC 3339; default: now).
    #[arg(long, value_name = "TIME")]
    pub timestamp: Option<String>,
    /// The payload from a file (a JSON fault alarm); `-` reads stdin.
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["kind", "level", "priority"])]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub publish: PubOpts,
    #[command(flatten)]
    pub conn: Conn,
}

/// Which head count.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// meta/head_count (payload name `headcount`).
    #[value(name = "head_count")]
    HeadCount,
    /// meta/headcount_in.
    #[value(name = "headcount_in")]
    In,
    /// meta/headcount_out.
    #[value(name = "headcount_out")]
    Out,
}

/// `headcount`: people counted in an area, space or building.
#[derive(Debug, Args)]
pub struct HeadcountArgs {
    #[command(flatten)]
    pub target: CountTarget,
    /// Which count.
    #[arg(long, value_enum, default_value = "head_count")]
    pub kind: Kind,
    /// The count.
    #[arg(value_name = "COUNT")]
    pub value: u64,
    #[command(flatten)]
    pub publish: PubOpts,
    #[command(flatten)]
    pub conn: Conn,
}

impl Kind {
    /// The protocol's kind.
    pub fn get(self) -> HeadCountKind {
        match self {
            Kind::HeadCount => HeadCountKind::HeadCount,
            Kind::In => HeadCountKind::In,
            Kind::Out => HeadCountKind::Out,
        }
    }
}
