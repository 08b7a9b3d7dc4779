//! The reference client's API generations (the HDM IoT reference client, <https://github.com/hdm-master/iot-reference-client>) as data: which configuration and
//! provisioning calls each makes, how it authenticates, where the key pair is made, which
//! telemetry topic and envelope it uses and which files its `certificate_store/` holds. The
//! agent and the cloud side both read this table; nothing else decides per generation. Pure.
//!
//! | gen | config call | auth | provisioning | key made | topic | envelope |
//! | --- | --- | --- | --- | --- | --- | --- |
//! | 1 | `GET {base}/{api_version}/configuration` | `x-api-key` | `POST provisioningURL`, empty | by the service | `$aws/rules/iot_data_platform_telemetry_{stage}` | camelCase |
//! | 2 | `GET {base}/v3/configuration` | Bearer (`auth_token`) | `POST provisioningURL`, empty | by the service | `{telemetryTopic}/{orgId}/{clientId}` | camelCase |
//! | 2b | `GET {base}/v3/configuration` | Bearer (`auth_token`) | `POST provisioningURL`, CSR | here (RSA-2048) | `{telemetryTopic}/{orgId}/{clientId}` | camelCase |
//! | 3 | `GET {base}/v3/configuration` | Bearer (Zaikio device flow) | `POST {base}/v4/provisioning`, CSR + `siteId` | here (RSA-2048) | `{telemetry_topic}/{org_id}/{client_id}` | lowercase, `headerversion` 3 |

use std::fmt;

/// One API generation of the HDM reference client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Generation {
    /// Jan 2020, "api v2": `x-api-key`, keys from the service, the stage topic.
    #[serde(rename = "1")]
    Gen1,
    /// Feb 2020, "api v3": a Bearer token, keys from the service, `OrgID.txt`, the org topic.
    #[serde(rename = "2")]
    Gen2,
    /// Feb 2020: as gen 2, but the key pair is made on the device and a CSR is sent.
    #[serde(rename = "2b")]
    Gen2b,
    /// Mar–May 2020, "Zaikio": OAuth device flow, directory site and machine, v4 provisioning
    /// with `siteId`, `properties.json`, the lowercase envelope.
    #[serde(rename = "3")]
    Gen3,
}

/// How the configuration and provisioning calls authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Header `x-api-key`.
    ApiKey,
    /// `Authorization: Bearer` with a token from the env file or a token file.
    Bearer,
    /// `Authorization: Bearer` with a token from the Zaikio OAuth device flow.
    DeviceFlow,
}

/// Which telemetry envelope a generation sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The README's camelCase envelope (`payloadVersion`, `eventType`, ...).
    CamelCase,
    /// The gen-3 JSON schemas' lowercase envelope with `headerversion`.
    Lowercase,
}

/// API version of the gen-2+ configuration call.
pub const CONFIG_VERSION_V3: &str = "v3";
/// Path of the gen-3 provisioning call under `base_url`.
pub const PROVISIONING_V4_PATH: &str = "v4/provisioning";

impl Generation {
    /// Every generation, oldest first.
    pub const ALL: [Generation; 4] = [
        Generation::Gen1,
        Generation::Gen2,
        Generation::Gen2b,
        Generation::Gen3,
    ];

    /// `1`, `2`, `2b` or `3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Generation::Gen1 => "1",
            Generation::Gen2 => "2",
            Generation::Gen2b => "2b",
            Generation::Gen3 => "3",
        }
    }

    /// Parses `1`, `2`, `2b`, `3` (a leading `gen` is allowed).
    pub fn parse(s: &str) -> Option<Generation> {
        let s = s.trim();
        let s = s
            .strip_prefix("gen")
            .unwrap_or(s)
            .trim_start_matches(['-', ' ']);
        Generation::ALL
            .into_iter()
            .find(|g| g.as_str().eq_ignore_ascii_case(s))
    }

    /// How the HTTPS calls authenticate.
    pub fn auth(self) -> Auth {
        match self {
            Generation::Gen1 => Auth::ApiKey,
            Generation::Gen2 | Generation::Gen2b => Auth::Bearer,
            Generation::Gen3 => Auth::DeviceFlow,
        }
    }

    /// Whether the key pair is made on the device and a CSR sent.
    pub fn key_made_here(self) -> bool {
        matches!(self, Generation::Gen2b | Generation::Gen3)
    }

    /// Whether the provisioning answer carries `orgId` and the topic has org and client levels.
    pub fn has_org(self) -> bool {
        self != Generation::Gen1
    }

    /// The telemetry envelope.
    pub fn dialect(self) -> Dialect {
        match self {
            Generation::Gen3 => Dialect::Lowercase,
            _ => Dialect::CamelCase,
        }
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "generation {}", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_table_holds() {
        for g in Generation::ALL {
            assert_eq!(Generation::parse(g.as_str()), Some(g));
        }
        assert_eq!(Generation::parse("gen2b"), Some(Generation::Gen2b));
        assert_eq!(Generation::parse("2B"), Some(Generation::Gen2b));
        assert_eq!(Generation::parse("4"), None);
        assert!(!Generation::Gen2.key_made_here() && Generation::Gen2b.key_made_here());
        assert_eq!(Generation::Gen3.dialect(), Dialect::Lowercase);
        assert_eq!(Generation::Gen2b.dialect(), Dialect::CamelCase);
        assert_eq!(Generation::Gen1.auth(), Auth::ApiKey);
        assert!(!Generation::Gen1.has_org() && Generation::Gen2.has_org());
    }
}
