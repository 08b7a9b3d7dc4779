//! v4 model synchronisation as the 2024 sample does it (`mc-model sync`, and `mc-agent run`
//! when v4 is selected): when `agent.ini` records a successful synchronisation of a local model
//! with the same sha256, nothing is sent. Otherwise: ask for the cloud model (`o/amo_v4/m`),
//! follow `data.content` (GET the URL with the HTTPS policy and no credentials, or take the
//! inline model), reuse the cloud's `referenceId`s, send only what is missing (`o/amo_v4/mi`),
//! follow `i/amo_v4/mip` (an `InProgress` restarts the wait) to `Success` or `Failed`, and keep
//! `agent.ini` at each step in the sample's format, leaving keys it does not own alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use tokio::time::Instant;
use transport::http::{Http, HttpOptions, redact};
use transport::session::Incoming;
use transport::{Message, Outbox, Qos, Session};

use crate::config::Settings;
use crate::protocol::agent_ini::{self, ModelState, SyncRecord};
use crate::protocol::envelope::{Request, encode};
use crate::protocol::model::{JobReply, JobStep, step};
use crate::protocol::topic::Channel;
use crate::protocol::v4::{
    Content, DownloadReply, DownloadRequest, V4Model, decode_named, element_count, plan_sync,
    sha256_hex,
};

use super::{AgentError, Event, Reporter, connect, publish_confirmed, request_id, subscribe};

/// The 2024 sample's local model file (in the templates folder).
pub const LOCAL_MODEL: &str = "local_asset_model.json";
/// Where the downloaded cloud model is saved, next to `agent.ini` (the sample's name).
pub const CLOUD_MODEL: &str = "cloud_asset_model.json";

/// What a synchronisation needs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// `local_asset_model.json`.
    pub local_model: PathBuf,
    /// `agent.ini`.
    pub agent_ini: PathBuf,
    /// How long to wait for each answer.
    pub timeout: Duration,
    /// QoS of the requests.
    pub qos: Qos,
    /// Synchronise even when the sha matches.
    pub force: bool,
}

/// The shipped local model (the 2024 sample's, as `iot-sim demo` and `iot-sim fleet` use it),
/// with the `<tenantId>` placeholder [`read_local`] fills.
pub fn builtin_local_model() -> String {
    include_str!("../../tests/vectors/v4_local_model.json").replace("tenantid.", "<tenantId>.")
}

/// The local model: its bytes' sha256 and its content with `<tenantId>` filled.
pub fn read_local(path: &Path, tenant: &str) -> Result<(String, V4Model), AgentError> {
    let bytes = std::fs::read(path).map_err(|e| {
        AgentError::Input(format!(
            "cannot read the local model `{}`: {e} (the 2024 sample keeps it as example_json/{LOCAL_MODEL}; pass --local-model)",
            path.display()
        ))
    })?;
    let sha = sha256_hex(&bytes);
    let text = String::from_utf8_lossy(&bytes).replace("<tenantId>", tenant);
    let model = decode_named("local model", text.as_bytes())
        .map_err(|e| AgentError::Input(format!("`{}`: {e}", path.display())))?;
    Ok((sha, model))
}

/// `agent.ini` as read (a missing file is an empty record).
pub fn read_record(path: &Path) -> Result<(String, SyncRecord), AgentError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(AgentError::Input(format!(
                "cannot read `{}`: {e}",
                path.display()
            )));
        }
    };
    let rec = agent_ini::parse(&text)
        .map_err(|e| AgentError::Input(format!("`{}` {e}", path.display())))?;
    Ok((text, rec))
}

struct Ini {
    path: PathBuf,
    text: String,
    rec: SyncRecord,
}

impl Ini {
    fn set(&mut self, state: ModelState, status: Option<ModelState>) -> Result<(), AgentError> {
        self.rec.state = Some(state.as_str().to_owned());
        if let Some(s) = status {
            self.rec.status = Some(s.as_str().to_owned());
        }
        self.text = agent_ini::update(&self.text, &self.rec);
        write_atomic(&self.path, &self.text)
    }
}

fn write_atomic(path: &Path, text: &str) -> Result<(), AgentError> {
    let tmp = path.with_extension("ini.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| AgentError::Write {
            path: path.to_owned(),
            source,
        })
}

/// Whether `agent.ini` says the local model is synchronised already (then nothing is sent).
pub fn in_sync(settings: &Settings, opts: &SyncOptions) -> Result<bool, AgentError> {
    let (sha, _) = read_local(&opts.local_model, settings.topics.tenant())?;
    let (_, rec) = read_record(&opts.agent_ini)?;
    Ok(!opts.force && rec.in_sync(&sha))
}

/// Connects, synchronises, disconnects (`mc-model sync`).
pub async fn sync(
    settings: &Settings,
    opts: &SyncOptions,
    report: &Reporter,
) -> Result<(), AgentError> {
    if in_sync(settings, opts)? {
        report(&not_sent(opts));
        return Ok(());
    }
    let (session, mut incoming) = connect(settings, false, Outbox::memory(16), report).await?;
    let r = async {
        subscribe(&session, settings, &Channel::V4_SUBSCRIPTIONS, report).await?;
        sync_on(
            &session,
            &mut incoming,
            settings,
            opts,
            report,
            &mut Vec::new(),
        )
        .await
    }
    .await;
    session.close(Duration::from_secs(2)).await;
    r
}

fn not_sent(opts: &SyncOptions) -> Event {
    Event::ModelSynced {
        path: opts.agent_ini.display().to_string(),
        sent: false,
        elements: 0,
        reused: 0,
        created: 0,
    }
}

/// Waits on `topic` until `take` says done (`Some(Ok(true))`; `Some(Ok(false))` restarts the
/// wait); other messages are kept in `other` for the
/// caller (a running agent hands them to its machine afterwards).
async fn answer(
    session: &Session,
    incoming: &mut Incoming,
    topic: String,
    what: &'static str,
    timeout: Duration,
    other: &mut Vec<transport::Received>,
    mut take: impl FnMut(&[u8]) -> Option<Result<bool, AgentError>>,
) -> Result<(), AgentError> {
    let mut deadline = Instant::now() + timeout;
    loop {
        let m = tokio::select! {
            m = incoming.recv() => m.ok_or_else(|| AgentError::Ended(session.status().ended.unwrap_or_else(|| "closed".into())))?,
            () = tokio::time::sleep_until(deadline) => {
                return Err(AgentError::NoAnswer { what, topic, waited: timeout });
            }
        };
        if m.topic != topic {
            other.push(m);
            continue;
        }
        match take(&m.payload) {
            None => {}
            Some(Ok(true)) => return Ok(()),
            Some(Ok(false)) => deadline = Instant::now() + timeout,
            Some(Err(e)) => return Err(e),
        }
    }
}

/// Synchronises on an open session subscribed to `i/amo_v4/m` and `i/amo_v4/mip`.
pub async fn sync_on(
    session: &Session,
    incoming: &mut Incoming,
    settings: &Settings,
    opts: &SyncOptions,
    report: &Reporter,
    other: &mut Vec<transport::Received>,
) -> Result<(), AgentError> {
    let (sha, local) = read_local(&opts.local_model, settings.topics.tenant())?;
    let (text, rec) = read_record(&opts.agent_ini)?;
    let mut ini = Ini {
        path: opts.agent_ini.clone(),
        text,
        rec,
    };
    if !opts.force && ini.rec.in_sync(&sha) {
        report(&not_sent(opts));
        return Ok(());
    }
    let r = run_sync(
        session, incoming, settings, opts, report, other, &sha, &local, &mut ini,
    )
    .await;
    if r.is_err() {
        // The state shows how far it got; the status makes the next start try again.
        ini.rec.status = Some(ModelState::ModelSynchronizationFailed.as_str().to_owned());
        ini.text = agent_ini::update(&ini.text, &ini.rec);
        write_atomic(&ini.path, &ini.text)?;
    }
    r
}

#[allow(clippy::too_many_arguments)]
async fn run_sync(
    session: &Session,
    incoming: &mut Incoming,
    settings: &Settings,
    opts: &SyncOptions,
    report: &Reporter,
    other: &mut Vec<transport::Received>,
    sha: &str,
    local: &V4Model,
    ini: &mut Ini,
) -> Result<(), AgentError> {
    ini.set(ModelState::InitiateModelDownload, None)?;
    let cloud = download(session, incoming, settings, opts, report, other, Some(ini)).await?;
    ini.set(ModelState::ModelDownloaded, None)?;
    let plan = plan_sync(local, &cloud, &mut || {
        uuid::Uuid::new_v4().simple().to_string()
    });
    let Some(payload) = plan.payload else {
        ini.rec.sha = Some(sha.to_owned());
        ini.set(
            ModelState::ModelSynchronizationFinished,
            Some(ModelState::ModelSynchronizationSuccessful),
        )?;
        report(&not_sent(opts));
        return Ok(());
    };
    let elements = element_count(&payload);
    let id = request_id();
    let req = encode(&Request {
        id: id.clone(),
        data: payload,
    });
    request(
        session,
        settings,
        Channel::V4Instantiate,
        req,
        "model instantiation",
        &id,
        opts,
        report,
    )
    .await?;
    ini.set(ModelState::UpdateModelTriggered, None)?;
    answer(
        session,
        incoming,
        settings.topics.topic(Channel::V4Progress),
        "model instantiation",
        opts.timeout,
        other,
        |p| {
            let reply: JobReply = match decode_named("model instantiation progress", p) {
                Ok(r) => r,
                Err(e) => {
                    report(&Event::Warning {
                        message: e.to_string(),
                    });
                    return None;
                }
            };
            match step(&reply, &id) {
                JobStep::NotOurs => None,
                JobStep::Progress(message) => {
                    report(&Event::Progress {
                        what: "model instantiation".into(),
                        message,
                    });
                    Some(Ok(false))
                }
                JobStep::Succeeded => Some(Ok(true)),
                JobStep::Failed(errors, message) => Some(Err(AgentError::Rejected {
                    what: "model instantiation",
                    errors,
                    message,
                })),
            }
        },
    )
    .await?;
    ini.rec.sha = Some(sha.to_owned());
    ini.set(
        ModelState::ModelSynchronizationSuccessful,
        Some(ModelState::ModelSynchronizationSuccessful),
    )?;
    // Like the sample, download again so cloud_asset_model.json shows the model as the
    // platform now has it (with the ids it gave); the synchronisation stands either way.
    if let Err(e) = download(session, incoming, settings, opts, report, other, None).await {
        report(&Event::Warning {
            message: format!(
                "the model synchronisation succeeded, but downloading the updated cloud model failed ({e}); `{}` still holds the model from before the update",
                cloud_model_path(opts).display()
            ),
        });
    }
    ini.set(ModelState::ModelSynchronizationFinished, None)?;
    report(&Event::ModelSynced {
        path: opts.agent_ini.display().to_string(),
        sent: true,
        elements,
        reused: plan.reused,
        created: plan.created,
    });
    Ok(())
}

/// Publishes request `id` on `channel`, waits for its PUBACK and reports it as sent; its answer
/// comes on another channel ([`answer`]).
#[allow(clippy::too_many_arguments)]
async fn request(
    session: &Session,
    settings: &Settings,
    channel: Channel,
    payload: Vec<u8>,
    what: &'static str,
    id: &str,
    opts: &SyncOptions,
    report: &Reporter,
) -> Result<(), AgentError> {
    let topic = settings.topics.topic(channel);
    let m = Message::new(topic.clone(), payload).with_qos(opts.qos);
    publish_confirmed(session, m, what, opts.timeout, report).await?;
    report(&Event::Requested {
        what: what.into(),
        request_id: id.to_owned(),
        topic,
    });
    Ok(())
}

/// `cloud_asset_model.json` next to `agent.ini`.
pub fn cloud_model_path(opts: &SyncOptions) -> PathBuf {
    opts.agent_ini
        .parent()
        .map_or_else(|| PathBuf::from(CLOUD_MODEL), |d| d.join(CLOUD_MODEL))
}

/// Asks for the cloud model (`o/amo_v4/m`), follows `data.content` and saves the model as
/// `cloud_asset_model.json`; `ini` (the first download) records the sample's states.
async fn download(
    session: &Session,
    incoming: &mut Incoming,
    settings: &Settings,
    opts: &SyncOptions,
    report: &Reporter,
    other: &mut Vec<transport::Received>,
    ini: Option<&mut Ini>,
) -> Result<V4Model, AgentError> {
    let id = request_id();
    let payload = encode(&DownloadRequest { id: id.clone() });
    request(
        session,
        settings,
        Channel::V4Download,
        payload,
        "model download",
        &id,
        opts,
        report,
    )
    .await?;
    if let Some(ini) = ini {
        ini.set(ModelState::InitiatedModelDownload, None)?;
    }
    let mut content = None;
    answer(
        session,
        incoming,
        settings.topics.topic(Channel::V4Model),
        "model download",
        opts.timeout,
        other,
        |p| match decode_named::<DownloadReply>("model download answer", p) {
            Ok(r) if r.request_id.as_deref().is_none_or(|r| r == id) => {
                content = Some(r.data.content);
                Some(Ok(true))
            }
            Ok(_) => None,
            Err(e) => {
                report(&Event::Warning {
                    message: e.to_string(),
                });
                None
            }
        },
    )
    .await?;
    let cloud = match content {
        Some(Content::Inline(m)) => *m,
        Some(Content::Url(u)) => fetch(settings, &u, opts.timeout).await?,
        None => V4Model::default(),
    };
    let path = cloud_model_path(opts);
    std::fs::write(&path, encode(&cloud)).map_err(|source| AgentError::Write { path, source })?;
    Ok(cloud)
}

/// GETs the cloud model from `data.content` with the HTTPS policy (https only, loopback
/// excepted) and no credentials, as the sample does; no message shows the URL's query.
async fn fetch(settings: &Settings, url: &str, timeout: Duration) -> Result<V4Model, AgentError> {
    let shown = url::Url::parse(url).map_or_else(|_| "the model URL".into(), |u| redact(&u));
    let mut o = HttpOptions::new(settings.http_tls.clone());
    o.timeout = timeout;
    o.connect_timeout = timeout.min(Duration::from_secs(10));
    o.allow_plaintext = settings.allow_plaintext;
    let http = Http::new(o).map_err(|e| super::datalake::http_err("model download", &shown, &e))?;
    let r = http
        .send(
            "the model URL from i/amo_v4/m data.content",
            Method::GET,
            url,
            HeaderMap::new(),
            None,
        )
        .await;
    let r = super::datalake::checked("model download", &shown, r).await?;
    let bytes = r.bytes().await.map_err(|e| AgentError::Http {
        step: "model download",
        url: shown.clone(),
        reason: e.to_string(),
        status: None,
    })?;
    decode_named("cloud model", &bytes).map_err(|e| AgentError::Http {
        step: "model download",
        url: shown,
        reason: e.to_string(),
        status: None,
    })
}
