//! The HTTPS endpoints of the emulated HDM configuration service, served by iot-sim under
//! `/hdm`: `GET /{api_version}/configuration` (with `x-api-key`; answers the broker's CA, host
//! and port and the provisioning URL), `POST /{api_version}/provisioning` (empty body: the server
//! makes the key pair, gen 1; `{"certificateSigningRequest": PEM}`: it signs the device's CSR,
//! gen 2b) and, like AWS's `GetThingShadow`, `GET /things/{thing}/shadow`. Refusals are JSON
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

use super::{API_VERSION, Shared};
use crate::protocol::config::{
    API_KEY_HEADER, ConfigurationResponse, Connectivity, CsrRequest, ProvisioningInfo,
    ProvisioningResponse,
};
use crate::protocol::shadow::docs::ErrorDoc;
use crate::protocol::shadow::service::ShadowKey;
use crate::protocol::topics::validate_thing_name;

/// Where iot-sim mounts these routes (`/<cloud name>`).
const MOUNT: &str = "/hdm";

type St = State<Arc<Shared>>;

fn json_body(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn message(status: StatusCode, text: &str) -> Response {
    json_body(status, json!({ "message": text }).to_string().into_bytes())
}

/// Checks the API key and the version; `Err` is the refusal to send.
fn admit(s: &Shared, version: &str, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let key = headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok());
    if !s.api_key_ok(key) {
        s.state().report.add("https_forbidden", 1);
        return Err(Box::new(message(StatusCode::FORBIDDEN, "Forbidden")));
    }
    if version != API_VERSION {
        return Err(Box::new(message(
            StatusCode::NOT_FOUND,
            &format!(
                "API version `{version}` is not served here; this local cloud implements {API_VERSION} (x-api-key)"
            ),
        )));
    }
    Ok(())
}

async fn configuration(State(s): St, Path(version): Path<String>, headers: HeaderMap) -> Response {
    if let Err(r) = admit(&s, &version, &headers) {
        return *r;
    }
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
    let body = ConfigurationResponse {
        connectivity: Connectivity {
            server_root_ca: ca.ca_pem().to_owned(),
            mqtt_endpoint: host,
            mqtt_port: port,
        },
        provisioning: Some(ProvisioningInfo {
            provisioning_url: format!("https://{authority}{MOUNT}/{version}/provisioning"),
        }),
    };
    s.state().report.add("configuration_served", 1);
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
    if let Err(r) = admit(&s, &version, &headers) {
        return *r;
    }
    let ca = match s.ca() {
        Ok(ca) => ca,
        Err(e) => return message(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let thing = new_thing_name();
    let now = OffsetDateTime::now_utc();
    let csr_mode = !body.iter().all(u8::is_ascii_whitespace);
    let response = if csr_mode {
        let req = match CsrRequest::decode(&body) {
            Ok(r) => r,
            Err(e) => return message(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        match ca.sign_csr(&req.certificate_signing_request, &thing, now) {
            Ok(cert) => ProvisioningResponse {
                client_id: thing.clone(),
                device_cert: cert,
                device_private_key: None,
                device_public_key: None,
                org_id: None,
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
                org_id: None,
            },
            Err(e) => return message(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    };
    s.register(&thing);
    {
        let mut st = s.state();
        st.report.add(
            if csr_mode {
                "provisioned_csr"
            } else {
                "provisioned_keys"
            },
            1,
        );
        st.report.note(format!("provisioned thing `{thing}`"), 50);
    }
    s.changed();
    json_body(StatusCode::OK, response.encode())
}

async fn shadow(State(s): St, Path(thing): Path<String>, headers: HeaderMap) -> Response {
    if let Err(r) = admit(&s, API_VERSION, &headers) {
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
        .with_state(shared)
}
