//! `iot-sim pub`: arguments to a bulk publish plan, the summary to an exit code.

use std::time::Duration;

use clap::Args;
use cli::args::{AuthArgs, BrokerArgs, SpoolArgs, TlsArgs, parse_qos};
use cli::output::{Output, exit};
use transport::bulk::{self, BulkPlan, PayloadSource};
use transport::session::StartError;
use transport::{Qos, Session, StartMode};

#[derive(Debug, Args)]
pub struct PubArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    spool: SpoolArgs,
    /// Topic to publish on.
    #[arg(long, short = 't', value_name = "TOPIC")]
    topic: String,
    /// QoS: 0 or 1.
    #[arg(long, short = 'q', value_name = "QOS", default_value = "1", value_parser = parse_qos)]
    qos: Qos,
    /// Set the retain flag.
    #[arg(long, short = 'r')]
    retain: bool,
    /// Number of messages (default 1; with --stdin, until the input ends).
    #[arg(long, short = 'C', value_name = "N")]
    count: Option<u64>,
    /// Payload text, sent --count times.
    #[arg(long, short = 'm', value_name = "TEXT", group = "payload")]
    message: Option<String>,
    /// Payload of N bytes of `x`.
    #[arg(long, value_name = "BYTES", group = "payload")]
    size: Option<usize>,
    /// Payload = the message's number (0, 1, 2, ...), for loss and order checks.
    #[arg(long, group = "payload")]
    numbered: bool,
    /// One message per line of standard input.
    #[arg(long, short = 'l', visible_alias = "stdin", group = "payload")]
    lines: bool,
    /// Milliseconds to wait between messages.
    #[arg(long, value_name = "MS")]
    interval_ms: Option<u64>,
    /// Seconds to wait for the last confirmations.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    confirm_timeout: u64,
}

pub async fn run(args: PubArgs, out: Output) -> u8 {
    match run_inner(args, out).await {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            e.downcast_ref::<Usage>()
                .map_or(exit::FAILURE, |_| exit::USAGE)
        }
    }
}

/// Marks errors in the user's arguments or files (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

async fn run_inner(args: PubArgs, out: Output) -> anyhow::Result<u8> {
    transport::topic::validate_name(&args.topic).map_err(|e| Usage(e.to_string()))?;
    let mut opts = args
        .broker
        .to_options(&args.tls, &args.auth, None)
        .map_err(|e| Usage(e.to_string()))?;
    let outbox = args
        .spool
        .open(usize::from(opts.inflight).max(1000) * 10)
        .map_err(|e| Usage(e.to_string()))?;
    if outbox.is_durable() {
        opts.start_mode = StartMode::Background;
    }
    let source = if let Some(m) = args.message {
        PayloadSource::Fixed(m.into_bytes().into())
    } else if let Some(n) = args.size {
        PayloadSource::Sized(n)
    } else if args.numbered {
        PayloadSource::Numbered
    } else if args.lines {
        PayloadSource::Lines(Box::new(tokio::io::BufReader::new(tokio::io::stdin())))
    } else {
        PayloadSource::Fixed(bytes::Bytes::new())
    };
    let count = if args.lines {
        args.count
    } else {
        Some(args.count.unwrap_or(1))
    };
    let (session, _incoming) = match Session::start(opts, outbox).await {
        Ok(s) => s,
        Err(StartError::Options(e)) => return Err(Usage(e.to_string()).into()),
        Err(e) => return Err(anyhow::Error::new(e)),
    };
    let bar = out.progress(count.unwrap_or(0), "publishing");
    let plan = BulkPlan {
        topic: args.topic,
        qos: args.qos,
        retain: args.retain,
        count,
        source,
        interval: args.interval_ms.map(Duration::from_millis),
        confirm_timeout: Duration::from_secs(args.confirm_timeout),
    };
    let summary = bulk::publish_all(&session, plan, cli::signal::shutdown_signal(), |n| {
        bar.set_position(n);
    })
    .await
    .map_err(|e| Usage(e.to_string()))?;
    bar.finish_and_clear();
    out.event("summary", &summary, || {
        let mut s = format!(
            "published {} message(s), {} confirmed in {:.3} s ({:.0} msg/s)",
            summary.accepted, summary.acked, summary.elapsed_s, summary.rate
        );
        if summary.unacked > 0 {
            let place = if summary.spooled {
                "wait in the spool for the next start"
            } else {
                "were not confirmed"
            };
            s.push_str(&format!("; {} {place}", summary.unacked));
        }
        if summary.dropped > 0 {
            s.push_str(&format!(
                "; {} dropped from the full spool",
                summary.dropped
            ));
        }
        s
    });
    Ok(
        if summary.unacked == 0 && summary.dropped == 0 && !summary.interrupted {
            exit::OK
        } else {
            exit::FAILURE
        },
    )
}
