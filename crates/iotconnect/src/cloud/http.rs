//! The platform's HTTPS endpoints (served by iot-sim under `/iotconnect`): discovery
//! `GET /api/sdk/cpid/{cpId}/lang/{lang}/ver/{ver}/env/{env}` answering the agent base URL on the
//! same host, `POST /api/2.0/agent/sync` answering from the template, and `GET /ota/{name}`
//! serving a deterministic firmware image for OTA tests. Message 2.1: discovery
//! `GET /api/v2.1/dsdk/cpId/{cpId}/env/{env}?pf=` (or `/sid/{sid}`, the sim's SID being the
//! company id) answering `d.bu` = `/api/2.1/agent/device-identity/pf/{pf}`, and identity
//! `GET {bu}/uid/{uniqueId}`. Thin: the answers come from
//! [`super::handler::CloudState`].

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::NAME;
use super::handler::{CloudState, Endpoints};
use crate::protocol::v1::sync::{DiscoveryResponse, SyncRequest, SyncResponse};
use crate::protocol::v2::Platform;

/// What the routes share with the MQTT side.
#[derive(Clone)]
pub struct Shared {
    /// Platform state.
    pub state: Arc<Mutex<CloudState>>,
    /// Broker endpoints for sync answers.
    pub endpoints: Arc<RwLock<Endpoints>>,
    /// DPS: an auth type 4 device syncs `ds` 1 until DPS assigned it.
    pub dps: Arc<Mutex<super::dps::DpsState>>,
}

/// The router (relative to `/iotconnect`).
pub fn router(shared: Shared) -> axum::Router {
    axum::Router::new()
        .route(
            "/api/sdk/cpid/{cpid}/lang/{lang}/ver/{ver}/env/{env}",
            get(discovery),
        )
        .route("/api/2.0/agent/sync", post(sync))
        .route("/api/v2.1/dsdk/cpId/{cpid}/env/{env}", get(discovery_21))
        .route("/api/v2.1/dsdk/sid/{sid}", get(discovery_21_sid))
        .route(
            "/api/2.1/agent/device-identity/pf/{pf}/uid/{uid}",
            get(identity_21),
        )
        .route("/ota/{name}", get(firmware))
        .with_state(shared)
}

async fn discovery(
    State(s): State<Shared>,
    Path((cpid, _lang, _ver, _env)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let known = s
        .state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .discovery(&cpid);
    if !known {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"status": 404, "message": format!("company `{cpid}` not found")})),
        )
            .into_response();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    Json(DiscoveryResponse {
        base_url: format!("https://{host}/{NAME}/api/2.0/agent/"),
        log_info: None,
    })
    .into_response()
}

#[derive(serde::Deserialize)]
struct PfQuery {
    #[serde(default)]
    pf: Option<String>,
}

/// 2.1 discovery: `d.bu` on the same host, the platform in its path; `ec` 2 for an unknown
/// company.
fn answer_21(s: &Shared, cpid: &str, pf: Option<&str>, headers: &HeaderMap) -> Response {
    let known = s
        .state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .discovery(cpid);
    let Some(pf) = pf.map_or(Some(Platform::Azure), Platform::parse) else {
        return Json(json!({"d": {"ec": 4}, "status": 400, "message": "pf must be az or aws"}))
            .into_response();
    };
    if !known {
        return Json(json!({"d": {"ec": 2}, "status": 200, "message": "Company not found"}))
            .into_response();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    Json(json!({
        "d": {"ec": 0, "pf": pf.code(),
              "bu": format!("https://{host}/{NAME}/api/2.1/agent/device-identity/pf/{}", pf.code()),
              "log:mqtt": {"hn": "", "un": "", "pwd": "", "topic": ""}},
        "status": 200, "message": "Success"
    }))
    .into_response()
}

async fn discovery_21(
    State(s): State<Shared>,
    Path((cpid, _env)): Path<(String, String)>,
    Query(q): Query<PfQuery>,
    headers: HeaderMap,
) -> Response {
    answer_21(&s, &cpid, q.pf.as_deref(), &headers)
}

/// By SID: the sim's SID is the company id.
async fn discovery_21_sid(
    State(s): State<Shared>,
    Path(sid): Path<String>,
    Query(q): Query<PfQuery>,
    headers: HeaderMap,
) -> Response {
    answer_21(&s, &sid, q.pf.as_deref(), &headers)
}

async fn identity_21(State(s): State<Shared>, Path((pf, uid)): Path<(String, String)>) -> Response {
    let Some(pf) = Platform::parse(&pf) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"status": 404, "message": "no such platform"})),
        )
            .into_response();
    };
    let endpoints = s
        .endpoints
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let now = crate::protocol::timestamp(time::OffsetDateTime::now_utc());
    let body = s
        .state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .identity(pf, &uid, &endpoints, &now);
    Json(body).into_response()
}

async fn sync(State(s): State<Shared>, body: axum::body::Bytes) -> Response {
    let req: SyncRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"status": 400, "message": format!("sync request is not valid: {e}")})),
            )
                .into_response();
        }
    };
    let endpoints = s
        .endpoints
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let d = s
        .state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .sync(&req, &endpoints, now);
    let mut d = d;
    if d.at == Some(4)
        && !s
            .dps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_assigned(&req.unique_id)
    {
        // The TPM SDK registers with DPS on `ds` 1 (DEV_NOT_REG) and syncs again.
        d.ds = Some(1);
    }
    Json(SyncResponse { d }).into_response()
}

/// The firmware image served for `name`: 4 KiB derived from the name.
pub fn firmware_bytes(name: &str) -> Vec<u8> {
    let line = format!("edgewire test firmware {name}\n");
    line.bytes().cycle().take(4096).collect()
}

async fn firmware(Path(name): Path<String>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        firmware_bytes(&name),
    )
        .into_response()
}
