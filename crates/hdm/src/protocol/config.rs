//! The HTTPS bodies of HDM onboarding (the HDM IoT reference client, <https://github.com/hdm-master/iot-reference-client>): the configuration response
//! (`GET {base_url}/{api_version}/configuration`; gen 2+ add `provisioning.telemetryTopic`, gen 3
//! `connectivity.machineRegion`), the provisioning request (gen 1 and 2: empty body, the server
//! makes the keys; gen 2b: `{"certificateSigningRequest": PEM}`; gen 3 (v4): plus `siteId`) and
//! the provisioning response (gen 2+ with `orgId`). Both directions live here: the agent decodes
//! what the cloud encodes. Decoding checks every field and names it in errors. Pure.

use serde::{Deserialize, Serialize};

use crate::protocol::json::{FieldError, Fields};
use crate::protocol::store::{has_pem, has_private_key};
use crate::protocol::topics::{validate_level, validate_thing_name, validate_topic_base};

/// Header carrying the API key (gen 1).
pub const API_KEY_HEADER: &str = "x-api-key";
/// Prefix of the `Authorization` value of gen 2 and 3.
pub const BEARER: &str = "Bearer ";

/// `connectivity` of the configuration response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connectivity {
    /// PEM of the broker's root CA (written to `amazonRootCA1.pem`).
    #[serde(rename = "serverRootCA")]
    pub server_root_ca: String,
    /// Broker host name.
    #[serde(rename = "mqttEndPoint")]
    pub mqtt_endpoint: String,
    /// Broker port (8883, or 443 with ALPN `x-amzn-mqtt-ca`).
    #[serde(rename = "mqttPort")]
    pub mqtt_port: u16,
    /// AWS region of the broker (gen 3; `properties.json`'s `machine_region`).
    #[serde(
        rename = "machineRegion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub machine_region: Option<String>,
}

/// `provisioning` of the configuration response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisioningInfo {
    /// Where to POST the provisioning request (gen 1 to 2b; gen 3 posts to `v4/provisioning`).
    #[serde(
        rename = "provisioningURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub provisioning_url: Option<String>,
    /// First levels of the telemetry topic, `{telemetryTopic}/{orgId}/{clientId}` (gen 2+).
    #[serde(
        rename = "telemetryTopic",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub telemetry_topic: Option<String>,
}

/// The configuration response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigurationResponse {
    /// Broker and trust.
    pub connectivity: Connectivity,
    /// Provisioning endpoint (absent when the service does not provision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning: Option<ProvisioningInfo>,
}

const WHAT_CONFIG: &str = "configuration response";
const WHAT_PROV: &str = "provisioning response";
const PEM_CERT: &str = "a PEM certificate (-----BEGIN CERTIFICATE-----)";
const TOPIC: &str =
    "a topic without wildcards or empty levels, e.g. $aws/rules/iot_data_platform_telemetry_stg";

fn port(f: &Fields<'_>, key: &str) -> Result<u16, FieldError> {
    const EXPECTED: &str = "a port number from 1 to 65535";
    let v = f
        .get(key)
        .ok_or_else(|| f.error(key, EXPECTED, "nothing (missing)"))?;
    let n = match v {
        serde_json::Value::Number(n) => n.as_u64(),
        // Some gateways send numbers as strings.
        serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| f.error(key, EXPECTED, v.to_string()))
}

fn host(f: &Fields<'_>, key: &str) -> Result<String, FieldError> {
    const EXPECTED: &str = "a host name (no scheme, port or path)";
    let h = f.str(key, EXPECTED)?.trim();
    let ok = !h.is_empty()
        && h.len() <= 253
        && !h.contains("://")
        && !h.contains(['/', ' ', '?', '#', '@']);
    if ok {
        Ok(h.to_owned())
    } else {
        Err(f.error(key, EXPECTED, format!("`{h}`")))
    }
}

impl ConfigurationResponse {
    /// Decodes and checks a configuration response body.
    pub fn decode(body: &[u8]) -> Result<Self, FieldError> {
        let root = Fields::parse(WHAT_CONFIG, body)?;
        let root = Fields::new(WHAT_CONFIG, "", &root);
        let c = root.object("connectivity", "connectivity")?;
        let ca = c.str("serverRootCA", PEM_CERT)?;
        if !has_pem(ca, "CERTIFICATE") {
            return Err(c.error("serverRootCA", PEM_CERT, "text without a PEM certificate"));
        }
        let connectivity = Connectivity {
            server_root_ca: ca.to_owned(),
            mqtt_endpoint: host(&c, "mqttEndPoint")?,
            mqtt_port: port(&c, "mqttPort")?,
            machine_region: c
                .opt_str("machineRegion", "a region name")?
                .map(str::to_owned),
        };
        let provisioning = match root.opt_object("provisioning", "provisioning")? {
            None => None,
            Some(p) => {
                let telemetry_topic = p.opt_str("telemetryTopic", TOPIC)?;
                if let Some(t) = telemetry_topic
                    && validate_topic_base(t).is_err()
                {
                    return Err(p.error("telemetryTopic", TOPIC, format!("`{t}`")));
                }
                Some(ProvisioningInfo {
                    provisioning_url: p
                        .opt_str("provisioningURL", "an https:// URL")?
                        .map(str::to_owned),
                    telemetry_topic: telemetry_topic.map(str::to_owned),
                })
            }
        };
        Ok(ConfigurationResponse {
            connectivity,
            provisioning,
        })
    }

    /// Encodes the body (the cloud side).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The provisioning request body of gen 2b and (with `siteId`) gen 3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsrRequest {
    /// PEM of the certificate signing request.
    #[serde(rename = "certificateSigningRequest")]
    pub certificate_signing_request: String,
    /// The Zaikio site the machine belongs to (gen 3, v4 provisioning).
    #[serde(rename = "siteId", default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<String>,
}

impl CsrRequest {
    /// Decodes and checks a CSR request body.
    pub fn decode(body: &[u8]) -> Result<Self, FieldError> {
        const EXPECTED: &str = "a PEM certificate signing request";
        let root = Fields::parse("provisioning request", body)?;
        let f = Fields::new("provisioning request", "", &root);
        let csr = f.str("certificateSigningRequest", EXPECTED)?;
        if !has_pem(csr, "CERTIFICATE REQUEST") {
            return Err(f.error(
                "certificateSigningRequest",
                EXPECTED,
                "text without -----BEGIN CERTIFICATE REQUEST-----",
            ));
        }
        Ok(CsrRequest {
            certificate_signing_request: csr.to_owned(),
            site_id: f.opt_str("siteId", "a Zaikio site id")?.map(str::to_owned),
        })
    }

    /// Encodes the body.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The provisioning response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningResponse {
    /// The thing name; the MQTT client id (written to `ClientID.txt`).
    pub client_id: String,
    /// PEM of the device certificate.
    pub device_cert: String,
    /// PEM of the private key (gen 1 only: the server made the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_private_key: Option<String>,
    /// PEM of the public key (gen 1 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_public_key: Option<String>,
    /// Organisation (gen 2+; `OrgID.txt`, a level of the telemetry topic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
}

/// What a provisioning response must carry besides `clientId` and `deviceCert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expect {
    /// The key pair (the service made it: gen 1 and 2).
    pub keys: bool,
    /// `orgId` (gen 2+).
    pub org: bool,
}

impl ProvisioningResponse {
    /// Decodes and checks a provisioning response against what the generation promises.
    pub fn decode(body: &[u8], expect: Expect) -> Result<Self, FieldError> {
        const ORG: &str = "an organisation id (one topic level: no `/`, `+`, `#`)";
        const THING: &str = "a thing name (1 to 128 characters of a-zA-Z0-9:_-)";
        const KEY: &str = "a PEM private key";
        const PUB: &str = "a PEM public key (-----BEGIN PUBLIC KEY-----)";
        let root = Fields::parse(WHAT_PROV, body)?;
        let f = Fields::new(WHAT_PROV, "", &root);
        let client_id = f.str("clientId", THING)?;
        if validate_thing_name(client_id).is_err() {
            return Err(f.error("clientId", THING, format!("`{client_id}`")));
        }
        let cert = f.str("deviceCert", PEM_CERT)?;
        if !has_pem(cert, "CERTIFICATE") {
            return Err(f.error("deviceCert", PEM_CERT, "text without a PEM certificate"));
        }
        let private = f.opt_str("devicePrivateKey", KEY)?;
        let public = f.opt_str("devicePublicKey", PUB)?;
        if expect.keys {
            match private {
                Some(k) if has_private_key(k) => {}
                Some(_) => return Err(f.error("devicePrivateKey", KEY, "text without a PEM key")),
                None => return Err(f.error("devicePrivateKey", KEY, "nothing (missing)")),
            }
            match public {
                Some(k) if has_pem(k, "PUBLIC KEY") => {}
                Some(_) => return Err(f.error("devicePublicKey", PUB, "text without a PEM key")),
                None => return Err(f.error("devicePublicKey", PUB, "nothing (missing)")),
            }
        }
        let org_id = f.opt_str("orgId", ORG)?;
        match org_id {
            Some(o) if validate_level(o).is_err() => {
                return Err(f.error("orgId", ORG, format!("`{o}`")));
            }
            None if expect.org => return Err(f.error("orgId", ORG, "nothing (missing)")),
            _ => {}
        }
        Ok(ProvisioningResponse {
            client_id: client_id.to_owned(),
            device_cert: cert.to_owned(),
            device_private_key: private.map(str::to_owned),
            device_public_key: public.map(str::to_owned),
            org_id: org_id.map(str::to_owned),
        })
    }

    /// Encodes the body (the cloud side).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn configuration_decodes_and_names_bad_fields() {
        let body = format!(
            r#"{{"connectivity":{{"serverRootCA":{},"mqttEndPoint":"a.iot.eu-west-1.amazonaws.com","mqttPort":"8883"}},"provisioning":{{"provisioningURL":"https://cfg/v2/provisioning"}}}}"#,
            serde_json::to_string(CERT).unwrap()
        );
        let c = ConfigurationResponse::decode(body.as_bytes()).unwrap();
        assert_eq!(c.connectivity.mqtt_port, 8883);
        let bad = body.replace("\"8883\"", "70000");
        let e = ConfigurationResponse::decode(bad.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("`connectivity.mqttPort`"), "{e}");
        let bad = body.replace("a.iot.eu-west-1.amazonaws.com", "mqtts://x");
        let e = ConfigurationResponse::decode(bad.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("mqttEndPoint"), "{e}");
        let e = ConfigurationResponse::decode(b"{}").unwrap_err();
        assert_eq!(e.field, "connectivity");
    }

    #[test]
    fn provisioning_requires_keys_in_gen1() {
        let r = ProvisioningResponse {
            client_id: "hdm-1".into(),
            device_cert: CERT.into(),
            device_private_key: None,
            device_public_key: None,
            org_id: None,
        };
        let gen1 = Expect {
            keys: true,
            org: false,
        };
        let e = ProvisioningResponse::decode(&r.encode(), gen1).unwrap_err();
        assert_eq!(e.field, "devicePrivateKey");
        assert_eq!(
            ProvisioningResponse::decode(&r.encode(), Expect::default()).unwrap(),
            r
        );
        let gen2b = Expect {
            keys: false,
            org: true,
        };
        let e = ProvisioningResponse::decode(&r.encode(), gen2b).unwrap_err();
        assert_eq!(e.field, "orgId");
        let bad = ProvisioningResponse {
            org_id: Some("a/b".into()),
            ..r.clone()
        };
        let e = ProvisioningResponse::decode(&bad.encode(), gen2b).unwrap_err();
        assert!(e.to_string().contains("`a/b`"), "{e}");
    }

    #[test]
    fn gen3_configuration_and_v4_request() {
        let body = format!(
            r#"{{"connectivity":{{"serverRootCA":{},"mqttEndPoint":"a.iot.eu-west-1.amazonaws.com","mqttPort":8883,"machineRegion":"eu-west-1"}},"provisioning":{{"telemetryTopic":"$aws/rules/iot_data_platform_telemetry_stg"}}}}"#,
            serde_json::to_string(CERT).unwrap()
        );
        let c = ConfigurationResponse::decode(body.as_bytes()).unwrap();
        assert_eq!(c.connectivity.machine_region.as_deref(), Some("eu-west-1"));
        let p = c.provisioning.unwrap();
        assert_eq!(p.provisioning_url, None);
        assert_eq!(
            p.telemetry_topic.as_deref(),
            Some("$aws/rules/iot_data_platform_telemetry_stg")
        );
        let bad = body.replace("_stg\"", "_stg/#\"");
        let e = ConfigurationResponse::decode(bad.as_bytes()).unwrap_err();
        assert_eq!(e.field, "provisioning.telemetryTopic");
        let req = CsrRequest {
            certificate_signing_request:
                "-----BEGIN CERTIFICATE REQUEST-----\nx\n-----END CERTIFICATE REQUEST-----\n".into(),
            site_id: Some("5b0c5a2e".into()),
        };
        let text = String::from_utf8(req.encode()).unwrap();
        assert!(text.contains(r#""siteId":"5b0c5a2e""#), "{text}");
        assert_eq!(CsrRequest::decode(text.as_bytes()).unwrap(), req);
    }

    fn arb_config() -> impl Strategy<Value = ConfigurationResponse> {
        (
            "[a-z]{1,10}(\\.[a-z]{1,10}){0,3}",
            1u16..,
            proptest::option::of("https://[a-z]{1,8}/v2/provisioning"),
        )
            .prop_map(|(h, p, u)| ConfigurationResponse {
                connectivity: Connectivity {
                    server_root_ca: CERT.into(),
                    mqtt_endpoint: h,
                    mqtt_port: p,
                    machine_region: None,
                },
                provisioning: u.map(|url| ProvisioningInfo {
                    provisioning_url: Some(url),
                    telemetry_topic: Some("$aws/rules/iot_data_platform_telemetry_dev".into()),
                }),
            })
    }

    proptest! {
        #[test]
        fn configuration_round_trips(c in arb_config()) {
            prop_assert_eq!(ConfigurationResponse::decode(&c.encode()).unwrap(), c);
        }

        #[test]
        fn provisioning_round_trips(id in "[a-zA-Z0-9:_-]{1,128}", org in proptest::option::of("[a-z0-9-]{1,8}")) {
            let r = ProvisioningResponse {
                client_id: id,
                device_cert: CERT.into(),
                device_private_key: Some("-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n".into()),
                device_public_key: Some("-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n".into()),
                org_id: org,
            };
            let expect = Expect { keys: true, org: r.org_id.is_some() };
            prop_assert_eq!(ProvisioningResponse::decode(&r.encode(), expect).unwrap(), r);
        }

        #[test]
        fn hostile_bodies_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ConfigurationResponse::decode(&bytes);
            let _ = ProvisioningResponse::decode(&bytes, Expect { keys: true, org: true });
            let _ = CsrRequest::decode(&bytes);
        }
    }
}
