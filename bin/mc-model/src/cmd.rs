//! `mc-model`'s subcommands: read the config, fill the template, ask when on a terminal, send and
//! follow the answer; each returns the exit code or the error that decides it.

use std::path::PathBuf;

use cli::output::{Output, exit};
use mindconnect::agent::custom;
use mindconnect::agent::model::{SendOptions, prepare, send};
use mindconnect::agent::oneshot::OneShot;
use mindconnect::agent::{AgentError, Event, instance_created};
use mindconnect::protocol::template::Kind;
use mindconnect::templates::load_file;
use mindconnect_cli::output_reporter;

use crate::{Cli, Command, prompt};

/// Runs the subcommand of `cli`.
pub async fn run(cli: &Cli, out: Output) -> Result<u8, AgentError> {
    let (Command::Publish { config, .. }
    | Command::Instantiate { config, .. }
    | Command::Show { config, .. }
    | Command::RegisterTopic { config, .. }
    | Command::Sync { config, .. }) = &cli.command;
    let settings = config.settings()?;
    let report = output_reporter(out);
    let ask = prompt::interactive(cli.yes, out);
    let template = |kind: Kind, file: &Option<PathBuf>| -> Result<_, AgentError> {
        if let Some(f) = file {
            return Ok(load_file(f, kind)?);
        }
        let dir = config.template_dir()?;
        let path = if ask && kind == Kind::Model {
            prompt::pick(&dir, &dir.path(kind))?
        } else {
            dir.path(kind)
        };
        Ok(load_file(&path, kind)?)
    };
    let send_opts = |conf: Option<PathBuf>| SendOptions {
        timeout: config.answer_timeout(),
        qos: config.qos,
        instance_conf: conf,
    };
    match &cli.command {
        Command::Sync { force, .. } => {
            let opts = mindconnect::agent::sync::SyncOptions {
                local_model: config.local_model()?,
                agent_ini: config.agent_ini.clone(),
                timeout: config.answer_timeout(),
                qos: config.qos,
                force: *force,
            };
            mindconnect::agent::sync::sync(&settings, &opts, &report).await?;
            Ok(exit::OK)
        }
        Command::RegisterTopic {
            topic, mappings, ..
        } => {
            let mappings = match mappings {
                Some(f) => custom::read_mappings(f)?,
                None => Vec::new(),
            };
            let one = OneShot {
                settings: settings.clone(),
                timeout: config.answer_timeout(),
                qos: config.qos,
                instance_conf: config.instance_conf.clone(),
            };
            custom::register(&one, topic.as_deref(), &mappings, &report).await?;
            Ok(exit::OK)
        }
        Command::Show {
            model, instance, ..
        } => {
            let mut problems = 0;
            for (kind, file) in [(Kind::Model, model), (Kind::Instance, instance)] {
                let p = prepare(&settings, kind, &template(kind, file)?)?;
                problems += p.issues.len();
                p.warnings
                    .iter()
                    .for_each(|w| report(&Event::Warning { message: w.clone() }));
                report(&p.event(&settings));
            }
            Ok(if problems == 0 { exit::OK } else { exit::USAGE })
        }
        Command::Publish { file, no_check, .. } => {
            let p = prepare(&settings, Kind::Model, &template(Kind::Model, file)?)?;
            p.warnings
                .iter()
                .for_each(|w| report(&Event::Warning { message: w.clone() }));
            if !p.issues.is_empty() && !no_check {
                return Err(AgentError::Invalid {
                    what: "model",
                    file: p.file,
                    issues: p.issues,
                });
            }
            if ask
                && !prompt::confirm(&format!(
                    "Publish model from {} to {}?",
                    p.file,
                    settings.topics.topic(p.channel)
                ))?
            {
                return Ok(exit::OK);
            }
            send(&settings, &p, &send_opts(None), &report)
                .await
                .map(|()| exit::OK)
        }
        Command::Instantiate { file, force, .. } => {
            let conf = &config.instance_conf;
            if instance_created(conf) && !force {
                let again = ask
                    && prompt::confirm(&format!(
                        "{} says CREATED; instantiate again?",
                        conf.display()
                    ))?;
                if !again {
                    return Err(AgentError::Input(format!(
                        "`{}` says CREATED: the model is already instantiated; use --force (or delete the file) to instantiate again",
                        conf.display()
                    )));
                }
            }
            let p = prepare(&settings, Kind::Instance, &template(Kind::Instance, file)?)?;
            if ask
                && !prompt::confirm(&format!(
                    "Instantiate `{}` via {}?",
                    p.payload["data"]["modelExternalId"].as_str().unwrap_or("?"),
                    settings.topics.topic(p.channel)
                ))?
            {
                return Ok(exit::OK);
            }
            send(&settings, &p, &send_opts(Some(conf.clone())), &report)
                .await
                .map(|()| exit::OK)
        }
    }
}
