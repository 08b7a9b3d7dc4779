//! The HTTPS endpoints of the emulated HDM configuration service, served by iot-sim under `/hdm`,
//! for every API generation:
//!
//! - `GET /v2/configuration` (`x-api-key`, gen 1) and `GET /v3/configuration` (Bearer: the
//!   development `auth_token` of gen 2/2b, or a Zaikio access token of gen 3): the broker's CA,
//!   host and port; v3 adds `provisioning.telemetryTopic` and `connectivity.machineRegion`.
//! - `POST /v2/provisioning` and `POST /v3/provisioning`: an empty body makes the key pair here
//!   (gen 1, 2), `{"certificateSigningRequest": PEM}` signs the device's CSR (gen 2b); v3 answers
//!   `orgId` too. `POST /v4/provisioning` (Zaikio token, gen 3): CSR plus a `siteId` of the
//!   token's organisation.
//! - `GET /things/{thing}/shadow`, like AWS's `GetThingShadow`.
//!
//! The Zaikio directory lives under `/hdm/directory` (`zaikio_http`). Refusals are JSON
//! `{"message": ...}` as API Gateway sends them.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use time::OffsetDateTime;
use transport::auth::Secret;

use super::{Shared, TELEMETRY_TOPIC};
use crate::protocol::config::{
    API_KEY_HEADER, BEARER, ConfigurationResponse, Connectivity, CsrRequest, ProvisioningInfo,
    ProvisioningResponse,
};
use crate::protocol::shadow::docs::ErrorDoc;
use crate::protocol::shadow::service::ShadowKey;
use crate::protocol::topics::validate_thing_name;

/// Where iot-sim mounts these routes (`/<cloud name>`).
pub(crate) const MOUNT: &str = "/hdm";
/// The region the configuration names (gen 3).
pub const MACHINE_REGION: &str = "eu-west-1";

type St = State<Arc<Shared>>;

pub(crate) fn json_body(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(crate) fn message(status: StatusCode, text: &str) -> Response {
    json_body(status, json!({ "message": text }).to_string().into_bytes())
}

/// Who is calling, by version and credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// v2 with the API key.
    ApiKey,
    /// v3 with the development `auth_token`.
    Token,
    /// v3 or v4 with a Zaikio access token.
    Zaikio,
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<Secret> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(BEARER))
        .map(|t| Secret::from(t.trim()))
}

pub(crate) fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Checks version and credential; `Err` is the refusal to send. Returns the caller and its
/// organisation (gen 2+).
fn admit(
    s: &Shared,
    version: &str,
    headers: &HeaderMap,
) -> Result<(Caller, Option<String>), Box<Response>> {
    let forbidden = || {
        s.state().report.add("https_forbidden", 1);
        Box::new(message(StatusCode::FORBIDDEN, "Forbidden"))
    };
    match version {
        "v2" => {
            let key = headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok());
            if s.api_key_ok(key) {
                Ok((Caller::ApiKey, None))
            } else {
                Err(forbidden())
            }
        }
        "v3" | "v4" => {
            let Some(token) = bearer(headers) else {
                s.state().report.add("https_forbidden", 1);
                return Err(Box::new(message(StatusCode::UNAUTHORIZED, "Unauthorized")));
            };
            if version == "v3" && s.auth_token_ok(&token) {
                return Ok((Caller::Token, Some(super::DEV_ORG_ID.to_owned())));
            }
            match s.zaikio().org_of(&token, now_ms()) {
                Some(org) => Ok((Caller::Zaikio, Some(org))),
                None => Err(forbidden()),
            }
        }
        other => Err(Box::new(message(
            StatusCode::NOT_FOUND,
            &format!(
                "API version `{other}` is not served here; this local cloud implements v2 (x-api-key), v3 (Bearer) and v4 provisioning"
            ),
        ))),
    }
}

async fn configuration(State(s): St, Path(version): Path<String>, headers: HeaderMap) -> Response {
    if version == "v4" {
        return message(
            StatusCode::NOT_FOUND,
            "v4 serves provisioning only; GET /v3/configuration",
        );
    }
    let caller = match admit(&s, &version, &headers) {
        Ok((c, _)) => c,
        Err(r) => return *r,
    };
    let Some((host, port)) = s.endpoint() else {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "the HDM cloud side does not know the broker's mtls endpoint (iot-sim must call HdmCloud::use_listeners once the broker runs)",
        );
    };
    let ca = match s.ca() {
        Ok(ca) => ca,
        Err(e) => return message(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let Some(authority) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return message(StatusCode::BAD_REQUEST, "no Host header");
    };
    let v3 = caller != Caller::ApiKey;
    let body = ConfigurationResponse {
        connectivity: Connectivity {
            server_root_ca: ca.ca_pem().to_owned(),
            mqtt_endpoint: host,
            mqtt_port: port,
            machine_region: (caller == Caller::Zaikio).then(|| MACHINE_REGION.to_owned()),
        },
        provisioning: Some(ProvisioningInfo {
            // Gen 3 posts to v4/provisioning, which the configuration does not name.
            provisioning_url: (caller != Caller::Zaikio)
                .then(|| format!("https://{authority}{MOUNT}/{version}/provisioning")),
            telemetry_topic: v3.then(|| TELEMETRY_TOPIC.to_owned()),
        }),
    };
    s.state()
        .report
        .add(&format!("configuration_served_{version}"), 1);
    json_body(StatusCode::OK, body.encode())
}

fn new_thing_name() -> String {
    format!(
        "{}{:012x}",
        super::policy::THING_PREFIX,
        fastrand::u64(..) & 0xffff_ffff_ffff
    )
}

async fn provisioning(
    State(s): St,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (caller, org) = match admit(&s, &version, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if (version == "v4") != (caller == Caller::Zaikio) {
        return message(
            StatusCode::FORBIDDEN,
            "v4 provisioning takes a Zaikio token, v2/v3 provisioning does not",
        );
    }
    let ca = match s.ca() {
        Ok(ca) => ca,
        Err(e) => return message(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let thing = new_thing_name();
    let now = OffsetDateTime::now_utc();
    let csr_mode = !body.iter().all(u8::is_ascii_whitespace);
    if version == "v4" && !csr_mode {
        return message(
            StatusCode::BAD_REQUEST,
            "v4 provisioning needs {\"certificateSigningRequest\", \"siteId\"}",
        );
    }
    let response = if csr_mode {
        let req = match CsrRequest::decode(&body) {
            Ok(r) => r,
            Err(e) => return message(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        if version == "v4" {
            let org = org.clone().unwrap_or_default();
            let site_ok = req.site_id.as_deref().is_some_and(|site| {
                super::zaikio::Zaikio::sites(&org)
                    .iter()
                    .any(|s| s.id == site)
            });
            if !site_ok {
                return message(
                    StatusCode::BAD_REQUEST,
                    "`siteId` must be a site of the organisation the token belongs to",
                );
            }
        }
        match ca.sign_csr(&req.certificate_signing_request, &thing, now) {
            Ok(cert) => ProvisioningResponse {
                client_id: thing.clone(),
                device_cert: cert,
                device_private_key: None,
                device_public_key: None,
                org_id: org.clone(),
            },
            Err(e) => return message(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    } else {
        match ca.issue(&thing, now) {
            Ok(keys) => ProvisioningResponse {
                client_id: thing.clone(),
                device_cert: keys.cert_pem,
                device_private_key: Some(keys.key_pem),
                device_public_key: Some(keys.public_key_pem),
                org_id: org.clone(),
            },
            Err(e) => return message(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    };
    s.register(&thing);
    {
        let mut st = s.state();
        if let Some(o) = &org {
            st.orgs.insert(thing.clone(), o.clone());
        }
        let kind = if csr_mode { "csr" } else { "keys" };
        st.report.add(&format!("provisioned_{kind}"), 1);
        st.report.add(&format!("provisioned_{version}"), 1);
        st.report.note(
            format!("provisioned thing `{thing}` ({version}, {kind})"),
            50,
        );
    }
    s.changed();
    json_body(StatusCode::OK, response.encode())
}

async fn shadow(State(s): St, Path(thing): Path<String>, headers: HeaderMap) -> Response {
    if let Err(r) = admit(&s, "v2", &headers) {
        return *r;
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if validate_thing_name(&thing).is_err() {
        let doc = ErrorDoc {
            code: 400,
            message: "Invalid thing name".into(),
            timestamp: Some(now),
            client_token: None,
        };
        return json_body(StatusCode::BAD_REQUEST, doc.encode());
    }
    let key = ShadowKey {
        thing: thing.clone(),
        name: None,
    };
    let doc = s.state().shadows.document(&key, None, now);
    if let Some(doc) = doc {
        return json_body(StatusCode::OK, doc.encode());
    }
    let doc = ErrorDoc {
        code: 404,
        message: format!("No shadow exists with name: '{thing}'"),
        timestamp: Some(now),
        client_token: None,
    };
    json_body(StatusCode::NOT_FOUND, doc.encode())
}

/// The routes, relative to `/hdm`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{version}/configuration", get(configuration))
        .route("/{version}/provisioning", post(provisioning))
        .route("/things/{thing}/shadow", get(shadow))
        .nest("/directory", super::zaikio_http::router(shared.clone()))
        .with_state(shared)
}
