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
use super::state::{CloudState, Ticket};

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
        .route(UPLOAD_URLS_PATH, post(upload_urls_route))
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

#[derive(serde::Deserialize)]
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
