//! Each subcommand as glue: flags to a `Publication` (checked before connecting), then the
//! agent, then an exit code. No protocol logic lives here.

use std::time::Duration;

use cli::output::{Format, Output, exit};
use gooee::agent::{self, Agent, AgentError, Event, Outcome, PublishOptions};
use gooee::protocol::{Publication, topics};

use crate::args::{Conn, PubOpts, SubArgs};
use crate::build;
use crate::commands::{ActionArgs, AlarmArgs, HeadcountArgs, MetaArgs};

async fn connect(conn: &Conn) -> Result<Agent, AgentError> {
    let ws = conn.ws.then_some(conn.ws_path.as_str());
    Agent::connect(agent::session_options(
        &conn.broker.settings(&conn.tls, &conn.auth),
        ws,
    )?)
    .await
}

/// Prints each agent event as text or NDJSON.
fn reporter(out: Output) -> impl FnMut(Event) + Send {
    move |e: Event| out.event(e.kind(), &e, || e.text())
}

/// Builds, connects, publishes, reports; REJECTED (3) when the platform rejected it.
async fn publish(
    conn: &Conn,
    opts: &PubOpts,
    built: Result<Publication, AgentError>,
    out: Output,
) -> u8 {
    let result = async {
        let p = built?;
        let mut agent = connect(conn).await?;
        let popts = PublishOptions {
            qos: opts.qos,
            watch_rejected: opts
                .watch_rejected
                .then(|| Duration::from_millis(opts.rejected_wait)),
        };
        let r = agent.publish(&p, popts, &mut reporter(out)).await;
        agent.close().await;
        r
    }
    .await;
    match result {
        Ok(Outcome::Rejected(_)) => exit::REJECTED,
        Ok(_) => exit::OK,
        Err(e) => {
            tracing::error!("{e}");
            exit::of(e.outcome())
        }
    }
}

/// `meta`.
pub async fn meta(a: MetaArgs, out: Output) -> u8 {
    publish(&a.conn, &a.publish, build::build_meta(&a), out).await
}

/// `action`.
pub async fn action(a: ActionArgs, out: Output) -> u8 {
    publish(&a.conn, &a.publish, build::build_action(&a), out).await
}

/// `alarm`.
pub async fn alarm(a: AlarmArgs, out: Output) -> u8 {
    publish(&a.conn, &a.publish, build::build_alarm(&a), out).await
}

/// `headcount`.
pub async fn headcount(a: HeadcountArgs, out: Output) -> u8 {
    publish(&a.conn, &a.publish, build::build_headcount(&a), out).await
}

/// `sub`: prints messages until `--count` or Ctrl-C.
pub async fn sub(a: SubArgs, out: Output) -> u8 {
    let result = async {
        for t in &a.topics {
            topics::check_subscribe(t)?;
        }
        let mut agent = connect(&a.conn).await?;
        agent.subscribe(&a.topics, a.qos).await?;
        if out.format() == Format::Json {
            out.event("subscribed", &a.topics, String::new);
        } else {
            tracing::info!(
                "subscribed to {}; waiting for messages (Ctrl-C stops)",
                a.topics.join(", ")
            );
        }
        let shutdown = cli::signal::shutdown_signal();
        let r = agent.receive(a.count, shutdown, &mut reporter(out)).await;
        agent.close().await;
        r
    }
    .await;
    match result {
        Ok(_) => exit::OK,
        Err(e) => {
            tracing::error!("{e}");
            exit::of(e.outcome())
        }
    }
}
