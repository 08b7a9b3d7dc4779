//! The platform's HTTPS endpoints (served by iot-sim under `/iotconnect`): discovery
//! `GET /api/sdk/cpid/{cpId}/lang/{lang}/ver/{ver}/env/{env}` answering the agent base URL on the
//! same host, `POST /api/2.0/agent/sync` answering from the template, and `GET /ota/{name}`
//! serving a deterministic firmware image for OTA tests. Thin: the answers come from
//! [`super::handler::CloudState`].

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::NAME;
use super::handler::{CloudState, Endpoints};
use crate::protocol::v1::sync::{DiscoveryResponse, SyncRequest, SyncResponse};

/// What the routes share with the MQTT side.
#[derive(Clone)]
pub struct Shared {
    /// Platform state.
    pub state: Arc<Mutex<CloudState>>,
    /// Broker endpoints for sync answers.
    pub endpoints: Arc<RwLock<Endpoints>>,
}

/// The router (relative to `/iotconnect`).
pub fn router(shared: Shared) -> axum::Router {
    axum::Router::new()
        .route(
            "/api/sdk/cpid/{cpid}/lang/{lang}/ver/{ver}/env/{env}",
            get(discovery),
        )
        .route("/api/2.0/agent/sync", post(sync))
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
