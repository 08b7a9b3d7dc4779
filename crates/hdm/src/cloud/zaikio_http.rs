//! The emulated Zaikio directory's HTTPS endpoints under `/hdm/directory` (the env file's
//! `DIRECTORY_HOST` for iot-sim): `POST oauth/device_authorizations/authorize?client_id&scope`,
//! `POST oauth/access_token` (form body, or query as some clients send it), the approval page
//! `GET|POST device` (what the person opens; `POST` with `user_code` and optional
//! `decision=deny`), and with a Zaikio Bearer token `GET api/v1/sites`, `POST api/v1/machines?
//! machine[...]` (201) and `POST api/v1/machines/{id}/machine_ownership?site_id` (201). The
//! rules are `zaikio`'s; here only the HTTP shape.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use super::Shared;
use super::https::{MOUNT, bearer, json_body, message, now_ms};
use crate::protocol::directory::{MachineSpec, encode_machine, encode_sites};
use crate::protocol::oauth::{OAuthError, parse_form};

type St = State<Arc<Shared>>;

fn pairs(query: Option<&str>, body: &[u8]) -> Vec<(String, String)> {
    let mut p = parse_form(query.unwrap_or_default().as_bytes());
    p.extend(parse_form(body));
    p
}

fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    json_body(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        OAuthError::encode(error, description),
    )
}

async fn authorize(
    State(s): St,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = pairs(q.as_deref(), &body);
    let Some(authority) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return message(StatusCode::BAD_REQUEST, "no Host header");
    };
    let uri = format!("https://{authority}{MOUNT}/directory/device");
    let result = s
        .zaikio()
        .authorize(param(&params, "client_id"), &uri, now_ms());
    s.state().report.add("oauth_device_authorizations", 1);
    s.changed();
    match result {
        Ok(a) => json_body(StatusCode::OK, a.encode()),
        Err((status, error, description)) => oauth_error(status, error, &description),
    }
}

async fn access_token(State(s): St, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let params = pairs(q.as_deref(), &body);
    let result = s.zaikio().token(&params, now_ms());
    let answer = match result {
        Ok((grant, via)) => {
            s.state().report.add(&format!("oauth_token_{via}"), 1);
            json_body(StatusCode::OK, grant.encode())
        }
        Err((status, error, description)) => {
            s.state().report.add(&format!("oauth_{error}"), 1);
            oauth_error(status, error, &description)
        }
    };
    s.changed();
    answer
}

async fn device_page(RawQuery(q): RawQuery) -> Html<String> {
    let code: String = param(&parse_form(q.unwrap_or_default().as_bytes()), "user_code")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    Html(format!(
        "<!doctype html><title>iot-sim: approve a device</title><h1>Approve an HDM device</h1>\
         <form method=post><label>Code <input name=user_code value=\"{code}\"></label>\
         <button name=decision value=approve>Approve</button>\
         <button name=decision value=deny>Deny</button></form>"
    ))
}

async fn device_decide(State(s): St, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let params = pairs(q.as_deref(), &body);
    let approve = param(&params, "decision") != Some("deny");
    let known = param(&params, "user_code").is_some_and(|c| s.zaikio().decide(c, approve));
    s.changed();
    if known {
        let word = if approve { "approved" } else { "denied" };
        (
            StatusCode::OK,
            Html(format!("<p>Device {word}. You can close this page.</p>")),
        )
            .into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Html("<p>Unknown or used code.</p>".to_owned()),
        )
            .into_response()
    }
}

/// The organisation of the caller's Zaikio token, or the refusal.
fn org(s: &Shared, headers: &HeaderMap) -> Result<String, Box<Response>> {
    bearer(headers)
        .and_then(|t| s.zaikio().org_of(&t, now_ms()))
        .ok_or_else(|| {
            s.state().report.add("directory_unauthorized", 1);
            Box::new(message(
                StatusCode::UNAUTHORIZED,
                "invalid or expired access token",
            ))
        })
}

async fn sites(State(s): St, headers: HeaderMap) -> Response {
    match org(&s, &headers) {
        Ok(o) => json_body(
            StatusCode::OK,
            encode_sites(&super::zaikio::Zaikio::sites(&o)),
        ),
        Err(r) => *r,
    }
}

async fn machines(State(s): St, RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
    let org_id = match org(&s, &headers) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let spec = match MachineSpec::from_query(&parse_form(q.unwrap_or_default().as_bytes())) {
        Ok(m) => m,
        Err(e) => return message(StatusCode::UNPROCESSABLE_ENTITY, &e),
    };
    let id = s.zaikio().register(&org_id, spec.clone());
    s.state().report.add("directory_machines_registered", 1);
    s.changed();
    json_body(StatusCode::CREATED, encode_machine(&id, &spec))
}

async fn ownership(
    State(s): St,
    Path(machine): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let org_id = match org(&s, &headers) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let params = parse_form(q.unwrap_or_default().as_bytes());
    let Some(site) = param(&params, "site_id") else {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "parameter `site_id` is missing",
        );
    };
    let result = s.zaikio().own(&org_id, &machine, site);
    s.changed();
    match result {
        Ok(()) => {
            s.state().report.add("directory_ownerships", 1);
            json_body(
                StatusCode::CREATED,
                serde_json::json!({"machine_id": machine, "site_id": site})
                    .to_string()
                    .into_bytes(),
            )
        }
        Err(e) => message(StatusCode::UNPROCESSABLE_ENTITY, &e),
    }
}

/// The routes, relative to `/hdm/directory`.
pub(crate) fn router(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    Router::new()
        .route("/oauth/device_authorizations/authorize", post(authorize))
        .route("/oauth/access_token", post(access_token))
        .route("/device", get(device_page).post(device_decide))
        .route("/api/v1/sites", get(sites))
        .route("/api/v1/machines", post(machines))
        .route("/api/v1/machines/{id}/machine_ownership", post(ownership))
        .with_state(shared)
}
