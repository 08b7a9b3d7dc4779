//! `mc-agent`'s subcommands: read the config, build the run or one-shot from the flags, call the
//! library; each returns the exit code or the error that decides it.

use cli::output::{Format, Output, exit};
use mindconnect::agent::custom;
use mindconnect::agent::oneshot::{self, OneShot};
use mindconnect::agent::source::{ValueSource, Values};
use mindconnect::agent::{AgentError, Event, Reporter};
use mindconnect::protocol::template::Kind;
use mindconnect_cli::output_reporter;

use crate::{Cli, Command};

fn token_only(out: Output, report: Reporter) -> Reporter {
    if out.format() == Format::Json {
        return report;
    }
    std::sync::Arc::new(move |e: &Event| match e {
        Event::Token { .. } => report(e),
        other => tracing::info!("{other}"),
    })
}

/// Runs the subcommand of `cli`.
pub async fn run(cli: Cli, out: Output) -> Result<u8, AgentError> {
    let (Command::Run { config, .. }
    | Command::Timeseries { config, .. }
    | Command::Event { config, .. }
    | Command::Upload { config, .. }
    | Command::Token { config }
    | Command::Custom { config, .. }) = &cli.command;
    let config = config.clone();
    let settings = config.settings()?;
    let report = output_reporter(out);
    let one = || OneShot {
        settings: settings.clone(),
        timeout: config.answer_timeout(),
        qos: config.qos,
        instance_conf: config.instance_conf.clone(),
    };
    match cli.command {
        Command::Run { run: args, .. } => {
            let opts = args.options(&config, settings.clone(), &report)?;
            mindconnect::agent::run::run(opts, cli::signal::shutdown_signal(), report).await?;
            Ok(exit::OK)
        }
        Command::Timeseries { values: args, .. } => {
            let dir = config.template_dir();
            let source = args.source();
            let template = match source {
                ValueSource::Simulated => Some(dir?.load(Kind::Timeseries)?),
                _ => None,
            };
            let mut values = Values::open(&source, template)?;
            let count = args
                .count
                .or(matches!(source, ValueSource::Simulated).then_some(1));
            oneshot::timeseries(&one(), &mut values, count, &report).await?;
            Ok(exit::OK)
        }
        Command::Event { event, .. } => {
            if let Some(source) = event.source()? {
                oneshot::events(&one(), source, &report).await?;
            } else {
                let template = config.template_dir()?.load(Kind::Event)?;
                oneshot::event(&one(), &template, &report).await?;
            }
            Ok(exit::OK)
        }
        Command::Upload {
            file,
            datalake: false,
            ..
        } => oneshot::file(&one(), Some(&file), &report)
            .await
            .map(|()| exit::OK),
        Command::Upload {
            file,
            datalake: true,
            ..
        } => oneshot::datalake(&one(), &file, &report)
            .await
            .map(|_| exit::OK),
        Command::Custom { topic, data, .. } => {
            let o = one();
            let topic = custom::custom_topic(&o, topic.as_deref())?;
            let documents = tokio::task::spawn_blocking(move || custom::read_documents(&data))
                .await
                .map_err(|e| AgentError::Input(e.to_string()))??;
            custom::publish(&o, &topic, documents, &report).await?;
            Ok(exit::OK)
        }
        Command::Token { .. } => {
            // In text mode stdout carries the token alone (TOKEN=$(mc-agent token)); the rest is logged.
            let report = token_only(out, report);
            let t = oneshot::token(&one(), &report).await?;
            let expires_in = t.lifetime().as_secs();
            report(&Event::Token {
                access_token: t.access_token,
                token_type: t.token_type.unwrap_or_else(|| "Bearer".into()),
                expires_in,
            });
            Ok(exit::OK)
        }
    }
}
