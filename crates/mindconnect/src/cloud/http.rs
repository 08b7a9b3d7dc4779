//! The platform's HTTPS endpoints the agent uses with its token, as iot-sim serves them under
//! `https://localhost:PORT/mindconnect/`: the asset lookup (Asset Management), the datalake's
//! `generateUploadObjectUrls`, the signed-URL `PUT` target, and a latest-values read of IoT Time
//! Series for checking what arrived. Each route is a thin axum wrapper over a function of the
//! state, the presented token and the time.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::protocol::datalake::{
    ASSETS_PATH, AssetFilter, AssetRef, AssetsPage, EmbeddedAssets, ObjectUrl, UPLOAD_URLS_PATH,
    UploadUrlsRequest, UploadUrlsResponse,
};

use super::jwt::Claims;
use super::state::{CloudState, CustomTopic, Ticket};
use crate::protocol::custom::{Mapping, REGISTRATIONS_PATH, Registered, Registration, check_topic};
use serde::Deserialize;

/// Lifetime of a signed upload URL (the docs' example: `X-Amz-Expires=7200`).
pub const TICKET_SECS: i64 = 7200;
/// Where signed URLs point, below the cloud's prefix.
pub const UPLOAD_PATH: &str = "/datalake/upload";

/// An HTTP error in MindSphere's shape: `{"errors": [{"code", "message"}]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpError {
    /// Status.
    pub status: StatusCode,
    /// `mdsp.core.generic.*` code.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

impl HttpError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"errors": [{"code": self.code, "message": self.message}]})),
        )
            .into_response()
    }
}

type Shared = Arc<Mutex<CloudState>>;

/// The routes, relative to the cloud's prefix.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route(ASSETS_PATH, get(assets_route))
        .route(
            REGISTRATIONS_PATH,
            post(register_route).get(registrations_route),
        )
        .route(
            &format!("{REGISTRATIONS_PATH}/{{id}}/mappings"),
            post(mapping_route),
        )
        .route(UPLOAD_URLS_PATH, post(upload_urls_route))
        .route(
            &format!("{}/{{ticket}}", super::v4::DOWNLOAD_PATH),
            get(v4_download_route),
        )
        .route(&format!("{UPLOAD_PATH}/{{ticket}}"), put(upload_route))
        .route(
            "/api/iottimeseries/v3/timeseries/{asset}/{aspect}",
            get(timeseries_route),
        )
        .with_state(state)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, CloudState> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The claims of the bearer token in `headers`.
pub fn authorize(
    state: &mut CloudState,
    headers: &HeaderMap,
    now: i64,
) -> Result<Claims, HttpError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::UNAUTHORIZED,
                "mdsp.core.generic.unauthorized",
                "no `Authorization: Bearer <token>` header",
            )
        })?;
    state.signer.verify(token.trim(), now).map_err(|e| {
        state.count("http_unauthorized");
        HttpError::new(
            StatusCode::UNAUTHORIZED,
            "mdsp.core.generic.unauthorized",
            e.to_string(),
        )
    })
}

/// `GET /api/assetmanagement/v3/assets?filter={"externalId":"…"}`: an agent token sees its own asset.
pub fn assets(
    state: &mut CloudState,
    claims: &Claims,
    filter: Option<&str>,
) -> Result<AssetsPage, HttpError> {
    let f: AssetFilter = serde_json::from_str(filter.unwrap_or("")).map_err(|e| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "mdsp.core.generic.invalidParameter",
            format!("filter must be JSON like {{\"externalId\":\"<clientId>\"}}: {e}"),
        )
    })?;
    state.count("http_asset_lookups");
    let assets = match state.agents.get(&f.external_id) {
        Some(a) if f.external_id == claims.client_id => vec![AssetRef {
            asset_id: a.asset_id.clone(),
            external_id: Some(f.external_id.clone()),
            name: Some(f.external_id.clone()),
        }],
        _ => Vec::new(),
    };
    Ok(AssetsPage {
        embedded: EmbeddedAssets { assets },
    })
}

/// `POST /api/datalake/v3/generateUploadObjectUrls`: paths must lie in the agent's asset folder.
pub fn upload_urls(
    state: &mut CloudState,
    claims: &Claims,
    body: &[u8],
    host: &str,
    now: i64,
) -> Result<UploadUrlsResponse, HttpError> {
    let req: UploadUrlsRequest = serde_json::from_slice(body).map_err(|e| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "mdsp.core.generic.invalidRequest",
            format!("body must be {{\"paths\":[{{\"path\":\"<assetId>/<name>\"}}]}}: {e}"),
        )
    })?;
    let asset = state
        .agents
        .get(&claims.client_id)
        .map(|a| a.asset_id.clone())
        .unwrap_or_default();
    let mut object_urls = Vec::new();
    for p in req.paths {
        let rel = p.path.trim_start_matches('/');
        let inside = rel.strip_prefix(&format!("{asset}/")).is_some_and(|name| {
            !name.is_empty() && !name.split('/').any(|s| s == ".." || s.is_empty())
        });
        if asset.is_empty() || !inside {
            return Err(HttpError::new(
                StatusCode::FORBIDDEN,
                "mdsp.core.generic.forbidden",
                format!("path `{}` is outside the agent's folder `{asset}/`", p.path),
            ));
        }
        let seq = state.next_id();
        let ticket = state.signer.digest(&format!("ticket/{}/{seq}", p.path));
        state.tickets.insert(
            ticket.clone(),
            Ticket {
                client_id: claims.client_id.clone(),
                path: format!("/{rel}"),
                expires: now + TICKET_SECS,
            },
        );
        state.count("datalake_urls");
        object_urls.push(ObjectUrl {
            path: format!("/{rel}"),
            signed_url: format!(
                "https://{host}/mindconnect{UPLOAD_PATH}/{ticket}?X-Amz-Expires={TICKET_SECS}"
            ),
        });
    }
    Ok(UploadUrlsResponse { object_urls })
}

/// `PUT` to a signed URL: stores the object once.
pub fn upload(
    state: &mut CloudState,
    ticket: &str,
    body: &[u8],
    now: i64,
) -> Result<(), HttpError> {
    let t = state.tickets.remove(ticket).ok_or_else(|| {
        HttpError::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "unknown or already used upload URL",
        )
    })?;
    if now >= t.expires {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "the upload URL has expired",
        ));
    }
    state.count("datalake_objects");
    state.report.add("datalake_bytes", body.len() as u64);
    if let Some(a) = state.agents.get_mut(&t.client_id) {
        a.objects.insert(t.path, body.len());
    }
    Ok(())
}

/// Latest values of `aspect` of `asset` (one of the token's agent's assets).
pub fn latest(
    state: &CloudState,
    claims: &Claims,
    asset: &str,
    aspect: &str,
) -> Result<Value, HttpError> {
    let agent = state
        .agents
        .get(&claims.client_id)
        .filter(|a| a.assets.iter().any(|x| x.asset_id == asset));
    let Some(agent) = agent else {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "mdsp.core.generic.notFound",
            format!("asset `{asset}` is not an asset of `{}`", claims.client_id),
        ));
    };
    let prefix = format!("{asset}/{aspect}/");
    let mut row = serde_json::Map::new();
    for (k, v) in agent
        .values
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
    {
        row.insert(
            k[prefix.len()..].to_owned(),
            serde_json::to_value(&v.value).unwrap_or_default(),
        );
        row.insert("_time".into(), Value::String(v.timestamp.clone()));
    }
    Ok(if row.is_empty() {
        json!([])
    } else {
        json!([row])
    })
}

#[derive(Deserialize)]
struct FilterQuery {
    filter: Option<String>,
}

async fn assets_route(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<FilterQuery>,
) -> Response {
    let mut st = lock(&s);
    match authorize(&mut st, &headers, now()).and_then(|c| assets(&mut st, &c, q.filter.as_deref()))
    {
        Ok(page) => axum::Json(page).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn upload_urls_route(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let mut st = lock(&s);
    let t = now();
    match authorize(&mut st, &headers, t).and_then(|c| upload_urls(&mut st, &c, &body, &host, t)) {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A v4 model download: like a presigned URL, the ticket is the credential.
async fn v4_download_route(State(s): State<Shared>, Path(ticket): Path<String>) -> Response {
    match super::v4::download(&lock(&s), &ticket) {
        Some(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        None => HttpError::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "unknown or expired model download URL",
        )
        .into_response(),
    }
}

async fn upload_route(
    State(s): State<Shared>,
    Path(ticket): Path<String>,
    body: Bytes,
) -> Response {
    match upload(&mut lock(&s), &ticket, &body, now()) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn timeseries_route(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((asset, aspect)): Path<(String, String)>,
) -> Response {
    let mut st = lock(&s);
    match authorize(&mut st, &headers, now()).and_then(|c| latest(&st, &c, &asset, &aspect)) {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The first topic level under which the local cloud hears custom topics: it subscribes once
/// at start, so it registers only topics under this root (the sample's).
pub const CUSTOM_ROOT: &str = "clouddatastore";

/// `POST customTopicRegistrations`: 201 with the registration; 409 when the agent has that
/// topic already; 400 when the topic breaks the documented rules or is outside
/// [`CUSTOM_ROOT`]; 403 for another agent's client id.
pub fn register(
    state: &mut CloudState,
    claims: &Claims,
    body: &[u8],
) -> Result<(StatusCode, Registered), HttpError> {
    let bad = |m: String| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "mdsp.core.generic.invalidRequest",
            m,
        )
    };
    let r: Registration = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the body is not a registration ({{\"mqttClientId\", \"topic\"}}): {e}"
        ))
    })?;
    if r.mqtt_client_id != claims.sub {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "mdsp.core.generic.forbidden",
            format!(
                "the token is for `{}`, not `{}`",
                claims.sub, r.mqtt_client_id
            ),
        ));
    }
    check_topic(&r.topic, &r.mqtt_client_id).map_err(|e| bad(e.to_string()))?;
    if r.topic.split('/').next() != Some(CUSTOM_ROOT) {
        return Err(bad(format!(
            "iot-sim hears custom topics under `{CUSTOM_ROOT}/` only, not `{}`",
            r.topic
        )));
    }
    if let Some(c) = state
        .custom
        .values()
        .find(|c| c.registration.topic == r.topic)
    {
        return Ok((StatusCode::CONFLICT, c.registration.clone()));
    }
    let reg = Registered {
        id: state.next_id(),
        mqtt_client_id: r.mqtt_client_id,
        topic: r.topic,
    };
    state.count("custom_topics");
    state.custom.insert(
        reg.id.clone(),
        CustomTopic {
            registration: reg.clone(),
            mappings: Vec::new(),
            documents: Vec::new(),
        },
    );
    Ok((StatusCode::CREATED, reg))
}

/// `POST customTopicRegistrations/{id}/mappings`: 201; 409 for a mapping of the same variable
/// again; 404 for an unknown or another agent's registration.
pub fn add_mapping(
    state: &mut CloudState,
    claims: &Claims,
    id: &str,
    body: &[u8],
) -> Result<StatusCode, HttpError> {
    let m: Mapping = serde_json::from_slice(body).map_err(|e| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "mdsp.core.generic.invalidRequest",
            format!("the body is not a mapping: {e}"),
        )
    })?;
    let Some(c) = state
        .custom
        .get_mut(id)
        .filter(|c| c.registration.mqtt_client_id == claims.sub)
    else {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "mdsp.core.generic.notFound",
            format!("no custom topic registration `{id}` for `{}`", claims.sub),
        ));
    };
    if c.mappings.iter().any(|x| {
        (&x.asset_id, &x.aspect_name, &x.variable_name)
            == (&m.asset_id, &m.aspect_name, &m.variable_name)
    }) {
        return Ok(StatusCode::CONFLICT);
    }
    c.mappings.push(m);
    state.count("custom_mappings");
    Ok(StatusCode::CREATED)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientQuery {
    mqtt_client_id: Option<String>,
}

async fn register_route(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut st = lock(&s);
    match authorize(&mut st, &headers, now()).and_then(|c| register(&mut st, &c, &body)) {
        Ok((status, r)) => (status, axum::Json(r)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn registrations_route(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<ClientQuery>,
) -> Response {
    let mut st = lock(&s);
    match authorize(&mut st, &headers, now()) {
        Ok(c) => {
            let client = q.mqtt_client_id.unwrap_or_else(|| c.sub.clone());
            let list: Vec<Registered> = st
                .custom
                .values()
                .filter(|r| r.registration.mqtt_client_id == client && client == c.sub)
                .map(|r| r.registration.clone())
                .collect();
            axum::Json(serde_json::json!({"_embedded": {"customTopicRegistrations": list}}))
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn mapping_route(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let mut st = lock(&s);
    match authorize(&mut st, &headers, now()).and_then(|c| add_mapping(&mut st, &c, &id, &body)) {
        Ok(status) => status.into_response(),
        Err(e) => e.into_response(),
    }
}
