//! `mqtt-sink simulate`: the seed's ESP32 as a publisher.

use std::time::Duration;

use clap::Args;
use cli::args::{AuthArgs, BrokerArgs, TlsArgs};
use cli::output::{Output, exit};
use transport::Session;
use transport::session::StartError;

use crate::Usage;

#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    auth: AuthArgs,
    /// Topic to publish on.
    #[arg(long, short = 't', value_name = "TOPIC", default_value = "esp32/pub")]
    topic: String,
    /// Number of readings.
    #[arg(long, short = 'C', value_name = "N", default_value_t = 10)]
    count: u64,
    /// Readings per second (0: as fast as the broker confirms).
    #[arg(long, value_name = "PER_SEC", default_value_t = 1.0)]
    rate: f64,
    /// `Data Hora` of the first reading, "YYYY-MM-DD HH:MM:SS" (default: now, UTC).
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// Seconds to wait for the last confirmations.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    confirm_timeout: u64,
}

pub async fn run(args: SimulateArgs, out: Output) -> anyhow::Result<u8> {
    transport::topic::validate_name(&args.topic).map_err(|e| Usage(e.to_string()))?;
    let opts = args
        .broker
        .to_options(&args.tls, &args.auth, Some("mqtt://127.0.0.1:1883"))
        .map_err(|e| Usage(e.to_string()))?;
    let start = sink::simulate::start_time(args.start.as_deref()).map_err(Usage)?;
    let (session, _incoming) = match Session::start(opts, transport::Outbox::memory(10_000)).await {
        Ok(s) => s,
        Err(StartError::Options(e)) => return Err(Usage(e.to_string()).into()),
        Err(e) => return Err(e.into()),
    };
    let plan = sink::simulate::SimulatePlan {
        topic: args.topic,
        count: args.count,
        rate: (args.rate > 0.0).then_some(args.rate),
        start,
        confirm_timeout: Duration::from_secs(args.confirm_timeout),
    };
    let summary = sink::simulate::simulate(&session, plan, cli::signal::shutdown_signal()).await?;
    out.event("summary", &summary, || {
        format!(
            "published {} reading(s), {} confirmed in {:.2} s ({:.0}/s)",
            summary.published, summary.confirmed, summary.elapsed_s, summary.rate
        )
    });
    Ok(if summary.unconfirmed == 0 && !summary.interrupted {
        exit::OK
    } else {
        exit::FAILURE
    })
}
