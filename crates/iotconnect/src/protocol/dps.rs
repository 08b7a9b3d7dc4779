//! Azure Device Provisioning Service registration with TPM attestation (IoTConnect auth type
//! 4), as data: the request, the TPM challenge answer, the operation status, the SAS token's
//! resource. Pure: no sockets, no TPM; the signature comes in through a closure.
//!
//! TPM attestation runs over DPS's HTTPS REST API ("Device Registration - Register Device",
//! <https://learn.microsoft.com/en-us/rest/api/iot-dps/device/runtime-registration/register-device>,
//! and "Operation Status Lookup"), as azure-iot-sdk-node's `azure-iot-provisioning-device-http`
//! does: `PUT {idScope}/registrations/{registrationId}/register?api-version=...` with the EK and
//! SRK, answered 401 with `authenticationKey` and `keyName`; the same PUT with
//! `Authorization: SharedAccessSignature sr=...&skn=registration` signed by the imported key,
//! answered 202 with `operationId`; then `GET .../operations/{operationId}` until `assigned`.
//!
//! Sources: "Communicate with DPS using the MQTT protocol"
//! (<https://learn.microsoft.com/en-us/azure/iot/iot-mqtt-connect-to-iot-dps>) for topics,
//! username and the SAS token (`sr={idScope}/registrations/{registrationId}`, `skn=registration`);
//! "TPM attestation" (<https://learn.microsoft.com/en-us/azure/iot-dps/concepts-tpm-attestation>)
//! and azure-iot-sdk-node's `azure-iot-security-tpm` for the challenge. That MQTT page says DPS
//! does not take TPM attestation over MQTT (only HTTPS and AMQP): the bodies here are the
//! same on every transport; the MQTT topics serve iot-sim's DPS.

use serde_json::{Value, json};

/// The DPS REST/MQTT api-version Azure's MQTT page documents.
pub const API_VERSION: &str = "2019-03-31";
/// The topic filter a device subscribes to before registering.
pub const RESPONSE_FILTER: &str = "$dps/registrations/res/#";

/// Why a DPS answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpsError {
    /// The answer is not the JSON DPS documents.
    #[error("DPS answer on {topic}: {detail}")]
    Malformed {
        /// Where it came from.
        topic: String,
        /// What was wrong.
        detail: String,
    },
    /// DPS refused the registration (the sentence it gave, with its error code).
    #[error(
        "DPS refused the registration of {registration_id}: {message} (status {status}, errorCode {code})"
    )]
    Refused {
        /// The registration id.
        registration_id: String,
        /// The topic status.
        status: u16,
        /// `errorCode`.
        code: i64,
        /// `message`.
        message: String,
    },
}

/// The global DPS endpoint Azure's SDKs and IoTConnect's TPM SDK use.
pub const GLOBAL_ENDPOINT: &str = "https://global.azure-devices-provisioning.net";

/// The registration id IoTConnect's TPM SDKs register with: `{cpId}-{uniqueId}`.
pub fn iotconnect_registration_id(cp_id: &str, unique_id: &str) -> String {
    format!("{cp_id}-{unique_id}")
}

/// `PUT` target of a registration: `{base}/{idScope}/registrations/{registrationId}/register`.
pub fn register_url(base: &str, id_scope: &str, registration_id: &str) -> String {
    format!(
        "{}/{id_scope}/registrations/{registration_id}/register?api-version={API_VERSION}",
        base.trim_end_matches('/')
    )
}

/// `GET` target of an operation's status.
pub fn operation_url(
    base: &str,
    id_scope: &str,
    registration_id: &str,
    operation_id: &str,
) -> String {
    format!(
        "{}/{id_scope}/registrations/{registration_id}/operations/{operation_id}?api-version={API_VERSION}",
        base.trim_end_matches('/')
    )
}

/// The MQTT username: `{idScope}/registrations/{registrationId}/api-version=...`.
pub fn username(id_scope: &str, registration_id: &str) -> String {
    format!("{id_scope}/registrations/{registration_id}/api-version={API_VERSION}")
}

/// The SAS token resource DPS checks: `{idScope}/registrations/{registrationId}`.
pub fn sas_resource(id_scope: &str, registration_id: &str) -> String {
    format!("{id_scope}/registrations/{registration_id}")
}

/// The register topic for request id `rid`.
pub fn register_topic(rid: u64) -> String {
    format!("$dps/registrations/PUT/iotdps-register/?$rid={rid}")
}

/// The operation-status topic for request id `rid` and DPS's `operation_id`.
pub fn status_topic(rid: u64, operation_id: &str) -> String {
    format!(
        "$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={operation_id}"
    )
}

/// The register body with TPM attestation: the EK and SRK public areas, base64.
pub fn register_body(registration_id: &str, ek_b64: &str, srk_b64: &str) -> Vec<u8> {
    json!({
        "registrationId": registration_id,
        "tpm": { "endorsementKey": ek_b64, "storageRootKey": srk_b64 },
    })
    .to_string()
    .into_bytes()
}

/// What a DPS response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 401 with the TPM challenge: activate and import it, then register again signed.
    Challenge {
        /// base64 `authenticationKey`.
        authentication_key: String,
    },
    /// 202: still assigning; ask again after `retry_after` seconds.
    Assigning {
        /// `operationId`.
        operation_id: String,
        /// `retry-after` from the topic, seconds (DPS's default 3 when absent).
        retry_after: u64,
    },
    /// 200 `assigned`: the hub and device id; with TPM, a fresh `authenticationKey` may come
    /// along, to import for the hub's SAS tokens.
    Assigned {
        /// `registrationState.assignedHub`.
        hub: String,
        /// `registrationState.deviceId`.
        device_id: String,
        /// `registrationState.tpm.authenticationKey`, when sent.
        authentication_key: Option<String>,
    },
}

/// `$dps/registrations/res/{status}/?$rid={rid}[&retry-after=N]` → (status, rid, retry-after).
pub fn parse_response_topic(topic: &str) -> Option<(u16, u64, Option<u64>)> {
    let rest = topic.strip_prefix("$dps/registrations/res/")?;
    let (status, query) = rest.split_once("/?")?;
    let status = status.parse().ok()?;
    let (mut rid, mut retry) = (None, None);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("$rid", v)) => rid = v.parse().ok(),
            Some(("retry-after", v)) => retry = v.parse().ok(),
            _ => {}
        }
    }
    Some((status, rid?, retry))
}

/// Reads a response on `topic` for `registration_id`.
pub fn parse_answer(
    topic: &str,
    payload: &[u8],
    registration_id: &str,
) -> Result<Answer, DpsError> {
    let (status, _, retry) = parse_response_topic(topic).ok_or_else(|| DpsError::Malformed {
        topic: topic.to_owned(),
        detail: "not $dps/registrations/res/{status}/?$rid=N".into(),
    })?;
    parse_status_answer(topic, status, retry, payload, registration_id)
}

/// Reads an HTTPS answer of status `status` (with its `Retry-After` header, seconds) to a
/// request on `what` (the URL without its query, for errors).
pub fn parse_http_answer(
    what: &str,
    status: u16,
    retry_after: Option<u64>,
    body: &[u8],
    registration_id: &str,
) -> Result<Answer, DpsError> {
    parse_status_answer(what, status, retry_after, body, registration_id)
}

fn parse_status_answer(
    topic: &str,
    status: u16,
    retry: Option<u64>,
    payload: &[u8],
    registration_id: &str,
) -> Result<Answer, DpsError> {
    let bad = |detail: String| DpsError::Malformed {
        topic: topic.to_owned(),
        detail,
    };
    let v: Value = if payload.is_empty() && status >= 400 {
        Value::Null
    } else {
        serde_json::from_slice(payload).map_err(|e| bad(format!("not JSON: {e}")))?
    };
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    match status {
        401 if s(&v, "authenticationKey").is_some() => Ok(Answer::Challenge {
            authentication_key: s(&v, "authenticationKey").unwrap_or_default(),
        }),
        200..=299 => match s(&v, "status").as_deref() {
            Some("assigning" | "unassigned") => Ok(Answer::Assigning {
                operation_id: s(&v, "operationId")
                    .ok_or_else(|| bad("`operationId` missing while assigning".into()))?,
                retry_after: retry.unwrap_or(3),
            }),
            Some("assigned") => {
                let st = v
                    .get("registrationState")
                    .ok_or_else(|| bad("`registrationState` missing".into()))?;
                Ok(Answer::Assigned {
                    hub: s(st, "assignedHub")
                        .ok_or_else(|| bad("`registrationState.assignedHub` missing".into()))?,
                    device_id: s(st, "deviceId")
                        .ok_or_else(|| bad("`registrationState.deviceId` missing".into()))?,
                    authentication_key: st.get("tpm").and_then(|t| s(t, "authenticationKey")),
                })
            }
            Some("failed" | "disabled") => {
                let st = v.get("registrationState").unwrap_or(&v);
                Err(DpsError::Refused {
                    registration_id: registration_id.to_owned(),
                    status,
                    code: st.get("errorCode").and_then(Value::as_i64).unwrap_or(0),
                    message: s(st, "errorMessage").unwrap_or_else(|| "no message".into()),
                })
            }
            other => Err(bad(format!("unexpected `status` {other:?}"))),
        },
        _ => Err(DpsError::Refused {
            registration_id: registration_id.to_owned(),
            status,
            code: v.get("errorCode").and_then(Value::as_i64).unwrap_or(0),
            message: s(&v, "message").unwrap_or_else(|| "no message".into()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_username_and_resource() {
        assert_eq!(
            username("0ne000A1B2C", "regid"),
            "0ne000A1B2C/registrations/regid/api-version=2019-03-31"
        );
        assert_eq!(
            sas_resource("0ne000A1B2C", "regid"),
            "0ne000A1B2C/registrations/regid"
        );
        assert_eq!(
            register_topic(1),
            "$dps/registrations/PUT/iotdps-register/?$rid=1"
        );
        assert_eq!(
            status_topic(2, "4.abc"),
            "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.abc"
        );
        assert_eq!(
            parse_response_topic("$dps/registrations/res/202/?$rid=7&retry-after=3"),
            Some((202, 7, Some(3)))
        );
        assert_eq!(
            parse_response_topic("$dps/registrations/res/x/?$rid=7"),
            None
        );
    }

    #[test]
    fn https_urls_and_answers() {
        assert_eq!(
            register_url("https://dps.example/", "0ne00", "CP-dev1"),
            "https://dps.example/0ne00/registrations/CP-dev1/register?api-version=2019-03-31"
        );
        assert_eq!(
            operation_url("https://dps.example", "0ne00", "CP-dev1", "4.op"),
            "https://dps.example/0ne00/registrations/CP-dev1/operations/4.op?api-version=2019-03-31"
        );
        assert_eq!(iotconnect_registration_id("CP", "dev1"), "CP-dev1");
        let a = parse_http_answer(
            "u",
            401,
            None,
            br#"{"message":"challenge","authenticationKey":"QUJD","keyName":"registration"}"#,
            "r",
        );
        assert_eq!(
            a,
            Ok(Answer::Challenge {
                authentication_key: "QUJD".into()
            })
        );
        let a = parse_http_answer(
            "u",
            202,
            Some(1),
            br#"{"operationId":"o","status":"assigning"}"#,
            "r",
        );
        assert_eq!(
            a,
            Ok(Answer::Assigning {
                operation_id: "o".into(),
                retry_after: 1
            })
        );
        let err = parse_http_answer("u", 404, None, b"", "r").unwrap_err();
        assert!(err.to_string().contains("status 404"), "{err}");
    }

    #[test]
    fn answers() {
        let t = "$dps/registrations/res/401/?$rid=1";
        assert_eq!(
            parse_answer(t, br#"{"authenticationKey":"QUJD"}"#, "r"),
            Ok(Answer::Challenge {
                authentication_key: "QUJD".into()
            })
        );
        let t = "$dps/registrations/res/202/?$rid=2&retry-after=1";
        assert_eq!(
            parse_answer(t, br#"{"operationId":"op","status":"assigning"}"#, "r"),
            Ok(Answer::Assigning {
                operation_id: "op".into(),
                retry_after: 1
            })
        );
        let t = "$dps/registrations/res/200/?$rid=3";
        let body = br#"{"operationId":"op","status":"assigned","registrationState":{"assignedHub":"h.azure-devices.net","deviceId":"d1","tpm":{"authenticationKey":"S0VZ"}}}"#;
        assert_eq!(
            parse_answer(t, body, "r"),
            Ok(Answer::Assigned {
                hub: "h.azure-devices.net".into(),
                device_id: "d1".into(),
                authentication_key: Some("S0VZ".into())
            })
        );
        let t = "$dps/registrations/res/401/?$rid=4";
        let err = parse_answer(
            t,
            br#"{"errorCode":401002,"message":"The device is unauthorized."}"#,
            "r",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("The device is unauthorized."),
            "{err}"
        );
        assert!(err.to_string().contains("401002"), "{err}");
        let err = parse_answer("$dps/registrations/res/200/?$rid=5", b"{", "r").unwrap_err();
        assert!(err.to_string().contains("not JSON"), "{err}");
    }

    #[test]
    fn sas_signed_by_a_closure_verifies_with_the_same_key() {
        use base64::Engine as _;
        let key = b"dps-issued-identity-key-32-bytes";
        let tok = crate::protocol::sas::build_signed(
            &sas_resource("scope", "reg"),
            5_000,
            Some("registration"),
            |d| {
                Ok::<_, ()>(
                    ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), d)
                        .as_ref()
                        .to_vec(),
                )
            },
        )
        .unwrap();
        assert!(tok.ends_with("&skn=registration"), "{tok}");
        let b64 = base64::engine::general_purpose::STANDARD.encode(key);
        let ok = crate::protocol::sas::verify(&tok, &b64, 1_000).unwrap();
        assert_eq!(ok.resource, "scope/registrations/reg");
    }
}
