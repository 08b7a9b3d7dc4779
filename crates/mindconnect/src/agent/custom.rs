//! The custom data format from the agent's side: register the custom topic at `GW_URL` with
//! the agent token (201 → its id; 409, already registered → look it up by client id), add the
//! JMESPath mappings (201, or 409 when the platform has that mapping already), and publish
//! arbitrary JSON to the topic unchanged.

use std::path::Path;

use reqwest::Method;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use transport::Message;

use crate::protocol::custom::{
    Mapping, REGISTRATIONS_PATH, Registered, Registration, check_topic, find_registration,
};

use super::AgentError;
use super::datalake::{Datalake, bearer, checked, http_err, json};
use super::oneshot::{OneShot, with_session};
use super::{Reporter, publish_confirmed};

/// What a registration did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RegisterOutcome {
    /// The registration's id.
    pub id: String,
    /// `false` when the topic was registered before (HTTP 409).
    pub created: bool,
    /// Mappings the platform took now.
    pub mappings_added: usize,
    /// Mappings it had already (HTTP 409).
    pub mappings_existing: usize,
}

/// Reads a mappings file: a JSON array of [`Mapping`]s (or one object).
pub fn read_mappings(path: &Path) -> Result<Vec<Mapping>, AgentError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        AgentError::Input(format!(
            "cannot read the mappings `{}`: {e}",
            path.display()
        ))
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        AgentError::Input(format!("mappings `{}` are not JSON: {e}", path.display()))
    })?;
    let items = match v {
        serde_json::Value::Array(a) => a,
        one @ serde_json::Value::Object(_) => vec![one],
        _ => {
            return Err(AgentError::Input(format!(
                "mappings `{}`: expected an array of mapping objects",
                path.display()
            )));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            serde_json::from_value(m).map_err(|e| {
                AgentError::Input(format!(
                    "mappings `{}` item {}: {e}; expected assetId, aspectName, variableName, variableValueExpression, variableTimestampExpression and optionally timeConverter",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

impl Datalake {
    /// Registers `topic` for this agent and adds `mappings` (see the module docs).
    pub async fn register_custom_topic(
        &self,
        token: &str,
        topic: &str,
        mappings: &[Mapping],
    ) -> Result<RegisterOutcome, AgentError> {
        check_topic(topic, &self.client_id).map_err(|e| AgentError::Input(e.to_string()))?;
        let url = format!("{}{REGISTRATIONS_PATH}", self.gw);
        let step = "custom topic registration at GW_URL";
        let body = serde_json::to_vec(&Registration {
            mqtt_client_id: self.client_id.clone(),
            topic: topic.to_owned(),
        })
        .map_err(|e| AgentError::Input(e.to_string()))?;
        let mut headers = bearer(token)?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let r = self
            .http
            .send(step, Method::POST, &url, headers.clone(), Some(body))
            .await
            .map_err(|e| http_err("custom topic registration", &url, &e))?;
        let (id, created) = if r.status() == StatusCode::CONFLICT {
            (self.existing_registration(token, topic, &url).await?, false)
        } else {
            let r = checked("custom topic registration", &url, Ok(r)).await?;
            let reg: Registered = json("custom topic registration", &url, r).await?;
            (reg.id, true)
        };
        let mut out = RegisterOutcome {
            id: id.clone(),
            created,
            mappings_added: 0,
            mappings_existing: 0,
        };
        let murl = format!("{url}/{id}/mappings");
        for m in mappings {
            let body = serde_json::to_vec(m).map_err(|e| AgentError::Input(e.to_string()))?;
            let r = self
                .http
                .send(
                    "custom topic mapping at GW_URL",
                    Method::POST,
                    &murl,
                    headers.clone(),
                    Some(body),
                )
                .await
                .map_err(|e| http_err("custom topic mapping", &murl, &e))?;
            if r.status() == StatusCode::CONFLICT {
                out.mappings_existing += 1;
            } else {
                checked("custom topic mapping", &murl, Ok(r)).await?;
                out.mappings_added += 1;
            }
        }
        Ok(out)
    }

    async fn existing_registration(
        &self,
        token: &str,
        topic: &str,
        url: &str,
    ) -> Result<String, AgentError> {
        let mut list = url::Url::parse(url).map_err(|e| AgentError::Input(e.to_string()))?;
        list.query_pairs_mut()
            .append_pair("mqttClientId", &self.client_id);
        let r = self
            .http
            .send(
                "custom topic lookup at GW_URL",
                Method::GET,
                list.as_str(),
                bearer(token)?,
                None,
            )
            .await;
        let listing: serde_json::Value = json(
            "custom topic lookup",
            url,
            checked("custom topic lookup", url, r).await?,
        )
        .await?;
        find_registration(&listing, topic)
            .map(|r| r.id)
            .ok_or_else(|| AgentError::Http {
                step: "custom topic lookup",
                url: url.to_owned(),
                reason: format!(
                    "the platform answered 409 (already registered) but lists no registration of `{topic}` for `{}`",
                    self.client_id
                ),
                status: None,
            })
    }
}

/// Publishes `documents` (each one JSON value, sent as given) to the custom `topic`, each
/// confirmed by the broker; returns how many were sent.
pub async fn publish(
    o: &OneShot,
    topic: &str,
    documents: Vec<Vec<u8>>,
    report: &Reporter,
) -> Result<u64, AgentError> {
    check_topic(topic, o.settings.topics.client_id())
        .map_err(|e| AgentError::Input(e.to_string()))?;
    for (i, d) in documents.iter().enumerate() {
        if d.len() > o.settings.max_message_bytes {
            return Err(AgentError::Input(format!(
                "custom document {} has {} bytes: over the broker's message limit of {} bytes (--max-message-kb)",
                i + 1,
                d.len(),
                o.settings.max_message_bytes
            )));
        }
    }
    with_session(o, report, async |s, _| {
        let mut sent = 0;
        for d in documents {
            publish_confirmed(
                s,
                Message::new(topic.to_owned(), d).with_qos(o.qos),
                "custom data",
                o.timeout,
                report,
            )
            .await?;
            sent += 1;
        }
        Ok(sent)
    })
    .await
}

/// The documents of `path`: the whole file as one JSON document, or for `-` one per line of
/// stdin; each must be JSON (refused naming the line otherwise), and is sent byte for byte.
pub fn read_documents(path: &Path) -> Result<Vec<Vec<u8>>, AgentError> {
    let check = |bytes: &[u8], place: &str| {
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
            .map(|_| ())
            .map_err(|e| AgentError::Input(format!("{place} is not JSON: {e}")))
    };
    if path.as_os_str() == "-" {
        let mut out = Vec::new();
        for (n, line) in std::io::stdin().lines().enumerate() {
            let line = line.map_err(|e| AgentError::Input(format!("cannot read stdin: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            check(line.as_bytes(), &format!("stdin line {}", n + 1))?;
            out.push(line.into_bytes());
        }
        return Ok(out);
    }
    let bytes = std::fs::read(path).map_err(|e| {
        AgentError::Input(format!("cannot read the data `{}`: {e}", path.display()))
    })?;
    check(&bytes, &format!("`{}`", path.display()))?;
    Ok(vec![bytes])
}

/// Requests an agent token over MQTT, then registers `topic` (default: the config's
/// `CUSTOM_TOPIC`) with `mappings` at `GW_URL`, and reports the outcome.
pub async fn register(
    o: &OneShot,
    topic: Option<&str>,
    mappings: &[Mapping],
    report: &Reporter,
) -> Result<RegisterOutcome, AgentError> {
    let topic = custom_topic(o, topic)?;
    let dl = Datalake::new(&o.settings, o.timeout)?;
    let t = super::oneshot::token(o, report).await?;
    let out = dl
        .register_custom_topic(&t.access_token, &topic, mappings)
        .await?;
    report(&super::Event::CustomTopic {
        id: out.id.clone(),
        topic,
        created: out.created,
        mappings_added: out.mappings_added,
        mappings_existing: out.mappings_existing,
    });
    Ok(out)
}

/// `topic`, else the config's `CUSTOM_TOPIC`, else an error naming both.
pub fn custom_topic(o: &OneShot, topic: Option<&str>) -> Result<String, AgentError> {
    topic
        .map(str::to_owned)
        .or_else(|| o.settings.file.custom_topic.clone())
        .ok_or_else(|| {
            AgentError::Input(format!(
                "no custom topic: pass --topic, or set USE_CUSTOM_TIMESERIES \"True\" and CUSTOM_TOPIC in `{}`",
                o.settings.file.path.display()
            ))
        })
}
