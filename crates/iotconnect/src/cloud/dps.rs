//! The Azure Device Provisioning Service as iot-sim plays it for IoTConnect auth type 4 (TPM),
//! over HTTPS under `/iotconnect/dps`:
//!
//! - `PUT /dps/{idScope}/registrations/{registrationId}/register` — without `Authorization`, an
//!   enrolled EK gets 401 with the TPM challenge (`authenticationKey`, `keyName`
//!   `registration`), made with ordinary crypto by `tpm::cloud`; with a SAS token signed by the
//!   key inside that challenge, 202 `assigning` and an `operationId`;
//! - `GET /dps/{idScope}/registrations/{registrationId}/operations/{operationId}` — 200
//!   `assigned` with `registrationState.assignedHub` and `deviceId`;
//! - `PUT /dps/enrollments/{registrationId}` — the operator's individual enrolment, in the
//!   service API's shape `{"attestation": {"type": "tpm", "tpm": {"endorsementKey": "..."}}}`;
//! - `DELETE /dps/registrations/{registrationId}` — the operator deletes a registration state.
//!
//! The two operator routes (Azure's service API) take iot-sim's service account as HTTP basic
//! authentication ([`Dps::set_operator`]; Azure signs them with a shared access policy's key):
//! without it anyone who reaches the port could enrol a TPM of their own for a device, or knock
//! an assigned device off its hub.
//!
//! An unknown registration id, or an EK other than the enrolled one, is refused with 401 and
//! DPS's sentence. The assigned hub is iot-sim's IoTConnect MQTT side, whose policy checks the
//! device's SAS tokens with the same key ([`DpsState::hub_key`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::handler::Endpoints;
use super::template::TemplateFile;
use crate::protocol::{dps, sas};

/// The id scope iot-sim's DPS answers to (the config file's `scopeId`).
pub const ID_SCOPE: &str = "0ne00EDGEWIRE";

/// DPS's sentence and code for a device it cannot authenticate (DPS error 401002).
const UNAUTHORIZED: (i64, &str) = (401_002, "The device is unauthorized.");

#[derive(Debug, Clone)]
struct Enrollment {
    ek: Vec<u8>,
    device_id: String,
    /// The key of the last challenge: it signs the registration and the hub's tokens.
    key: Option<[u8; 32]>,
}

/// Enrolments, challenges, operations and the keys the hub side checks.
#[derive(Debug, Default)]
pub struct DpsState {
    enrollments: HashMap<String, Enrollment>,
    operations: HashMap<String, String>,
    /// deviceId → the key of its assignment.
    assigned: HashMap<String, [u8; 32]>,
}

impl DpsState {
    /// The key the hub checks `device_id`'s SAS tokens with, once DPS assigned it.
    pub fn hub_key(&self, device_id: &str) -> Option<String> {
        self.assigned.get(device_id).map(|k| STANDARD.encode(k))
    }

    /// Whether `registration_id` has an enrolment.
    pub fn is_enrolled(&self, registration_id: &str) -> bool {
        self.enrollments.contains_key(registration_id)
    }

    /// Whether DPS assigned `device_id` (its sync then answers `ds` 0).
    pub fn is_assigned(&self, device_id: &str) -> bool {
        self.assigned.contains_key(device_id)
    }
}

/// The DPS routes' shared state.
#[derive(Clone)]
pub struct Dps {
    /// Enrolments and keys.
    pub state: Arc<Mutex<DpsState>>,
    template: Arc<TemplateFile>,
    endpoints: Arc<RwLock<Endpoints>>,
    operator: Arc<RwLock<Option<Operator>>>,
}

/// The account the operator routes take, as the SHA-256 of `username:password`: comparing
/// digests does not run shorter the more of the password a guess gets right.
#[derive(Clone, Copy)]
struct Operator([u8; 32]);

impl Operator {
    fn of(username: &str, password: &str) -> Operator {
        Operator(Sha256::digest(format!("{username}:{password}").as_bytes()).into())
    }
}

/// How the operator routes name what they need.
const OPERATOR_NEEDED: &str = "the DPS service API needs iot-sim's service account as HTTP basic authentication: the username in EDGEWIRE_SIM_SERVICE_USERNAME, the password in the file EDGEWIRE_SIM_SERVICE_PASSWORD_FILE names (`iot-sim env`)";

/// Why an enrolment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// Not `{cpId}-{uniqueId}` of an auth type 4 device of the template.
    #[error(
        "registration id `{0}` is not `{{cpId}}-{{uniqueId}}` of an auth type 4 device of the template"
    )]
    UnknownDevice(String),
    /// The EK is not base64.
    #[error("`attestation.tpm.endorsementKey` is not base64: {0}")]
    Key(String),
}

impl Dps {
    /// DPS for the auth type 4 devices of `template`, assigning them to the broker `endpoints`.
    pub fn new(template: Arc<TemplateFile>, endpoints: Arc<RwLock<Endpoints>>) -> Self {
        Dps {
            state: Arc::new(Mutex::new(DpsState::default())),
            template,
            endpoints,
            operator: Arc::new(RwLock::new(None)),
        }
    }

    /// The account the operator routes (enrolment, registration state) require; until it is
    /// set they refuse every request (403).
    pub fn set_operator(&self, username: &str, password: &str) {
        *self
            .operator
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Operator::of(username, password));
    }

    /// `None` when `headers` carry the operator's account; else the refusal to answer with.
    fn refuse_operator(&self, headers: &HeaderMap) -> Option<Response> {
        let operator = self
            .operator
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .copied();
        let Some(operator) = operator else {
            return Some(refuse(
                StatusCode::FORBIDDEN,
                403_001,
                "this iot-sim has no service account (an external broker without a password): enrol through `IotConnectCloud::dps().enroll`",
            ));
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(basic_credentials);
        if given.is_some_and(|(user, password)| Operator::of(&user, &password).0 == operator.0) {
            return None;
        }
        tracing::info!("DPS: an operator request without the service account");
        let mut r = refuse(StatusCode::UNAUTHORIZED, 401_002, OPERATOR_NEEDED);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"iot-sim DPS service API\""),
        );
        Some(r)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DpsState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Enrols a TPM: `registration_id` (`{cpId}-{uniqueId}` of an auth type 4 device) with its
    /// EK (marshalled `TPM2B_PUBLIC`, base64, as `iotc-send tpm ek` prints it).
    pub fn enroll(&self, registration_id: &str, ek_b64: &str) -> Result<(), EnrollError> {
        let device = self
            .template
            .devices
            .iter()
            .find(|d| {
                d.auth == 4
                    && dps::iotconnect_registration_id(&self.template.cp_id, &d.unique_id)
                        == registration_id
            })
            .ok_or_else(|| EnrollError::UnknownDevice(registration_id.to_owned()))?;
        let ek = STANDARD
            .decode(ek_b64.trim())
            .map_err(|e| EnrollError::Key(e.to_string()))?;
        self.lock().enrollments.insert(
            registration_id.to_owned(),
            Enrollment {
                ek,
                device_id: device.unique_id.clone(),
                key: None,
            },
        );
        Ok(())
    }

    /// Deletes the registration state of `registration_id`, as DPS's service API "Delete
    /// Device Registration State" does: the device's sync answers `ds` 1 again, and the hub
    /// refuses its tokens until it has registered anew (a new challenge, a new key). `false`
    /// when the device was not assigned.
    pub fn delete_registration(&self, registration_id: &str) -> bool {
        let mut s = self.lock();
        let Some(device_id) = s
            .enrollments
            .get(registration_id)
            .map(|e| e.device_id.clone())
        else {
            return false;
        };
        s.operations.retain(|_, reg| reg != registration_id);
        s.assigned.remove(&device_id).is_some()
    }

    /// The routes (relative to `/iotconnect`).
    pub fn router(self) -> axum::Router {
        axum::Router::new()
            .route("/dps/{scope}/registrations/{reg}/register", put(register))
            .route(
                "/dps/{scope}/registrations/{reg}/operations/{op}",
                get(operation),
            )
            .route("/dps/enrollments/{reg}", put(enroll))
            .route("/dps/registrations/{reg}", delete(delete_registration))
            .with_state(self)
    }
}

fn refuse(status: StatusCode, code: i64, message: impl Into<String>) -> Response {
    let now = time::OffsetDateTime::now_utc();
    (
        status,
        Json(json!({
            "errorCode": code,
            "trackingId": uuid::Uuid::new_v4().to_string(),
            "message": message.into(),
            "timestampUtc": now.unix_timestamp(),
        })),
    )
        .into_response()
}

fn unauthorized(why: &str) -> Response {
    tracing::info!("DPS: {why}");
    refuse(StatusCode::UNAUTHORIZED, UNAUTHORIZED.0, UNAUTHORIZED.1)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `Authorization: Basic base64(user:password)` → (user, password).
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

async fn enroll(
    State(d): State<Dps>,
    Path(reg): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refusal) = d.refuse_operator(&headers) {
        return refusal;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(ek) = v
        .pointer("/attestation/tpm/endorsementKey")
        .and_then(Value::as_str)
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            400_004,
            "the enrolment needs `attestation.tpm.endorsementKey` (base64, as `iotc-send tpm ek` prints it)",
        );
    };
    match d.enroll(&reg, ek) {
        Ok(()) => Json(json!({
            "registrationId": reg,
            "attestation": {"type": "tpm", "tpm": {"endorsementKey": ek}},
            "provisioningStatus": "enabled",
        }))
        .into_response(),
        Err(e) => refuse(StatusCode::BAD_REQUEST, 400_004, e.to_string()),
    }
}

async fn delete_registration(
    State(d): State<Dps>,
    Path(reg): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = d.refuse_operator(&headers) {
        return refusal;
    }
    if d.delete_registration(&reg) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        refuse(
            StatusCode::NOT_FOUND,
            404_201,
            format!("registration `{reg}` is not assigned"),
        )
    }
}

async fn register(
    State(d): State<Dps>,
    Path((scope, reg)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if scope != ID_SCOPE {
        return refuse(
            StatusCode::NOT_FOUND,
            404_001,
            format!(
                "The ID scope `{scope}` is not known to this provisioning service (iot-sim's is `{ID_SCOPE}`)."
            ),
        );
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let b64 = |k: &str| {
        v.pointer(&format!("/tpm/{k}"))
            .and_then(Value::as_str)
            .and_then(|s| STANDARD.decode(s).ok())
    };
    let (Some(ek), Some(srk)) = (b64("endorsementKey"), b64("storageRootKey")) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            400_004,
            "the registration needs `tpm.endorsementKey` and `tpm.storageRootKey` (base64)",
        );
    };
    let Some(enrolled) = d.lock().enrollments.get(&reg).cloned() else {
        return unauthorized(&format!("registration `{reg}` has no enrolment"));
    };
    if enrolled.ek != ek {
        return unauthorized(&format!(
            "registration `{reg}` presented an EK other than the enrolled one"
        ));
    }
    match headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    {
        None => {
            let Some(key) = rand_key() else {
                return refuse(StatusCode::INTERNAL_SERVER_ERROR, 500_000, "no random key");
            };
            let blob = match tpm::cloud::authentication_key(&ek, &srk, &key) {
                Ok(b) => b,
                Err(e) => return refuse(StatusCode::BAD_REQUEST, 400_004, e.to_string()),
            };
            if let Some(e) = d.lock().enrollments.get_mut(&reg) {
                e.key = Some(key);
            }
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({
                    "message": "TPM challenge: activate the authentication key and sign with it",
                    "authenticationKey": STANDARD.encode(blob),
                    "keyName": "registration",
                })),
            )
                .into_response()
        }
        Some(token) => {
            let Some(key) = enrolled.key else {
                return unauthorized(&format!(
                    "registration `{reg}` sent a SAS token before any challenge"
                ));
            };
            if let Err(why) = check_token(token, &key, &dps::sas_resource(&scope, &reg)) {
                return unauthorized(&format!("registration `{reg}`: {why}"));
            }
            let op = format!("4.{}", uuid::Uuid::new_v4().simple());
            let mut s = d.lock();
            s.operations.insert(op.clone(), reg.clone());
            s.assigned.insert(enrolled.device_id.clone(), key);
            (
                StatusCode::ACCEPTED,
                [(header::RETRY_AFTER, "1")],
                Json(json!({"operationId": op, "status": "assigning"})),
            )
                .into_response()
        }
    }
}

fn check_token(token: &str, key: &[u8], resource: &str) -> Result<(), String> {
    let t = sas::verify(token, &STANDARD.encode(key), now()).map_err(|e| e.to_string())?;
    if t.resource != resource {
        return Err(format!(
            "SAS token for `{}`, expected `{resource}`",
            t.resource
        ));
    }
    Ok(())
}

fn rand_key() -> Option<[u8; 32]> {
    let mut k = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut k).ok()?;
    Some(k)
}

async fn operation(
    State(d): State<Dps>,
    Path((scope, reg, op)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let s = d.lock();
    let (Some(owner), Some(e)) = (s.operations.get(&op), s.enrollments.get(&reg)) else {
        return refuse(
            StatusCode::NOT_FOUND,
            404_002,
            format!("Operation `{op}` of registration `{reg}` not found."),
        );
    };
    if *owner != reg {
        return unauthorized(&format!("operation `{op}` belongs to another registration"));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let key = e.key.unwrap_or_default();
    if let Err(why) = check_token(token, &key, &dps::sas_resource(&scope, &reg)) {
        return unauthorized(&format!("operation status of `{reg}`: {why}"));
    }
    let (hub, _) = d
        .endpoints
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .host_port(4);
    let t = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Json(json!({
        "operationId": op,
        "status": "assigned",
        "registrationState": {
            "registrationId": reg,
            "createdDateTimeUtc": t,
            "assignedHub": hub,
            "deviceId": e.device_id,
            "status": "assigned",
            "substatus": "initialAssignment",
            "lastUpdatedDateTimeUtc": t,
        },
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_split_at_the_first_colon_and_refuse_anything_else() {
        let b = |s: &str| format!("Basic {}", STANDARD.encode(s));
        assert_eq!(
            basic_credentials(&b("iot-sim:pa:ss")),
            Some(("iot-sim".into(), "pa:ss".into()))
        );
        assert_eq!(
            basic_credentials(&format!("basic  {}", STANDARD.encode("u:"))),
            Some(("u".into(), String::new()))
        );
        for bad in [
            String::new(),
            "Basic".into(),
            "Basic %%%".into(),
            b("no colon"),
            format!("Bearer {}", STANDARD.encode("u:p")),
            format!("Basic {}", STANDARD.encode([0xff, b':', 0xfe])),
        ] {
            assert_eq!(basic_credentials(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_operator_matches_only_the_same_user_and_password() {
        let o = Operator::of("iot-sim", "secret");
        assert_eq!(o.0, Operator::of("iot-sim", "secret").0);
        assert_ne!(o.0, Operator::of("iot-sim", "secreT").0);
        assert_ne!(o.0, Operator::of("edgewire", "secret").0);
    }
}
