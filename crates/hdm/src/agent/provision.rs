//! Provisioning per generation (the HDM IoT reference client, <https://github.com/hdm-master/iot-reference-client>), every call through [`Api`]:
//!
//! - gen 1, 2, 2b: `GET` the configuration (gen 1 `{base_url}/{api_version}/configuration` with
//!   `x-api-key`; gen 2/2b `{base_url}/v3/configuration` with the Bearer token), write the root CA
//!   and `properties.json` (every run, like the reference client), and — only when the store has
//!   no private key, or with `force` — `POST` to `provisioning.provisioningURL`: empty (the
//!   service makes the key pair: gen 1, 2) or with a CSR for a key made here (gen 2b, or `csr`).
//! - gen 3: nothing when the store is onboarded (key, certificate, `properties.json`), as the
//!   reference client; else the Zaikio token ([`oauth`](super::oauth)), the directory
//!   steps ([`directory`]), a key made here, `GET {base_url}/v3/
//!   configuration` and `POST {base_url}/v4/provisioning` with `{certificateSigningRequest,
//!   siteId}`, then the store with `properties.json`'s eight keys.
//!
//! Each provisioning creates assets in the backend, so a second one is refused unless forced.

use std::path::PathBuf;

use reqwest::Method;
use transport::auth::Secret;

use crate::agent::api::{Api, ApiOptions, Body, Credential};
use crate::agent::keys::{LocalKey, make_key_and_csr};
use crate::agent::oauth::{Directory, bearer_token};
use crate::agent::store::NewIdentity;
use crate::agent::{AgentError, Event, Reporter, Store, directory};
use crate::protocol::config::{ConfigurationResponse, CsrRequest, Expect, ProvisioningResponse};
use crate::protocol::env::EnvFile;
use crate::protocol::generation::{CONFIG_VERSION_V3, Generation, PROVISIONING_V4_PATH};
use crate::protocol::json::FieldError;
use crate::protocol::store::Properties;

/// How to provision.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    /// The env file (its keys name the generation).
    pub env: EnvFile,
    /// The certificate store folder.
    pub store: PathBuf,
    /// Make the key here and send a CSR (gen 1 and 2; 2b and 3 always do).
    pub csr: bool,
    /// Provision even when an identity is stored.
    pub force: bool,
    /// The HTTPS calls.
    pub api: ApiOptions,
}

/// What provisioning did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvisionOutcome {
    /// A new identity was stored.
    Provisioned {
        /// Thing name.
        thing: String,
    },
    /// The stored identity was kept.
    AlreadyProvisioned {
        /// Thing name.
        thing: String,
    },
}

/// Runs provisioning for the env file's generation.
pub async fn provision(
    opts: &ProvisionOptions,
    reporter: &dyn Reporter,
) -> Result<ProvisionOutcome, AgentError> {
    let generation = opts.env.generation()?;
    let store = Store::new(&opts.store);
    if generation == Generation::Gen3 {
        return provision_gen3(opts, &store, reporter).await;
    }
    let api = Api::new(&opts.api, &opts.env.file)?;
    let base = opts.env.base_url()?;
    let secret: &Secret = match generation {
        Generation::Gen1 => opts.env.api_key()?,
        _ => opts.env.auth_token()?,
    };
    let cred = match generation {
        Generation::Gen1 => Credential::ApiKey(secret),
        _ => Credential::Bearer(secret),
    };
    let url = match generation {
        Generation::Gen1 => format!(
            "{base}/{}/configuration?{}",
            opts.env.api_version(),
            crate::protocol::oauth::form(&[
                (
                    "senderSoftwareVersion",
                    concat!("edgewire-hdm-telemetry/", env!("CARGO_PKG_VERSION")),
                ),
                ("senderType", "prinect"),
            ])
        ),
        _ => format!("{base}/{CONFIG_VERSION_V3}/configuration"),
    };
    let body = api
        .call("the configuration service", Method::GET, &url, cred, None)
        .await?;
    let config = ConfigurationResponse::decode(&body)?;
    let telemetry_topic = config
        .provisioning
        .as_ref()
        .and_then(|p| p.telemetry_topic.clone());
    if generation.has_org() && telemetry_topic.is_none() {
        return Err(missing_field(
            "provisioning.telemetryTopic",
            "the first levels of the telemetry topic (generation 2+)",
        ));
    }
    let root_ca = store.write_root_ca(&config.connectivity.server_root_ca)?;
    let existing = if store.is_provisioned() {
        Some((store.client_id()?, store.org_id()?))
    } else {
        None
    };
    let mut props = Properties {
        mqtt_endpoint: config.connectivity.mqtt_endpoint.clone(),
        mqtt_port: config.connectivity.mqtt_port,
        machine_region: config.connectivity.machine_region.clone(),
        telemetry_topic,
        client_id: existing.as_ref().map(|(c, _)| c.clone()),
        org_id: existing.as_ref().and_then(|(_, o)| o.clone()),
        ..Properties::default()
    };
    store.write_properties(&props)?;
    reporter.report(Event::Configured {
        mqtt_endpoint: config.connectivity.mqtt_endpoint.clone(),
        mqtt_port: config.connectivity.mqtt_port,
        root_ca,
    });
    if let Some((thing, _)) = existing
        && !opts.force
    {
        reporter.report(Event::AlreadyProvisioned {
            thing: thing.clone(),
            store: opts.store.clone(),
        });
        return Ok(ProvisionOutcome::AlreadyProvisioned { thing });
    }
    let prov_url = config
        .provisioning
        .as_ref()
        .and_then(|p| p.provisioning_url.clone())
        .ok_or_else(|| {
            missing_field(
                "provisioning.provisioningURL",
                "an https:// URL (this store is not provisioned yet)",
            )
        })?;
    api.check(
        &prov_url,
        "`provisioning.provisioningURL` of the configuration response",
    )?;
    let local = (generation.key_made_here() || opts.csr)
        .then(make_key_and_csr)
        .transpose()?;
    let body = local.as_ref().map(|k| {
        Body::json(
            CsrRequest {
                certificate_signing_request: k.csr_pem.clone(),
                site_id: None,
            }
            .encode(),
        )
    });
    let answer = api
        .call(
            "the provisioning service",
            Method::POST,
            &prov_url,
            cred,
            body,
        )
        .await?;
    let resp = ProvisioningResponse::decode(
        &answer,
        Expect {
            keys: local.is_none(),
            org: generation.has_org(),
        },
    )?;
    store_identity(&store, &resp, local.as_ref())?;
    props.client_id = Some(resp.client_id.clone());
    props.org_id.clone_from(&resp.org_id);
    store.write_properties(&props)?;
    reporter.report(Event::Provisioned {
        thing: resp.client_id.clone(),
        csr: local.is_some(),
        generation,
        store: opts.store.clone(),
    });
    Ok(ProvisionOutcome::Provisioned {
        thing: resp.client_id,
    })
}

fn missing_field(field: &str, expected: &'static str) -> AgentError {
    AgentError::Body(FieldError {
        what: "configuration response",
        field: field.into(),
        expected,
        found: "nothing (missing)".into(),
    })
}

fn store_identity(
    store: &Store,
    resp: &ProvisioningResponse,
    local: Option<&LocalKey>,
) -> Result<(), AgentError> {
    let (private_key_pem, public_key_pem) = match local {
        Some(k) => (k.private_pem.clone(), Some(k.public_pem.clone())),
        None => (
            resp.device_private_key.clone().unwrap_or_default().into(),
            resp.device_public_key.clone(),
        ),
    };
    store.write_identity(&NewIdentity {
        client_id: resp.client_id.clone(),
        cert_pem: resp.device_cert.clone(),
        private_key_pem,
        public_key_pem,
        org_id: resp.org_id.clone(),
    })?;
    Ok(())
}

/// Generation 3: the Zaikio onboarding.
async fn provision_gen3(
    opts: &ProvisionOptions,
    store: &Store,
    reporter: &dyn Reporter,
) -> Result<ProvisionOutcome, AgentError> {
    let env = &opts.env;
    if store.is_provisioned() && !opts.force {
        // The reference client's test: key, certificate and properties.json present.
        if let Ok(device) = store.load()
            && device.properties.is_some()
        {
            reporter.report(Event::AlreadyProvisioned {
                thing: device.thing.clone(),
                store: opts.store.clone(),
            });
            return Ok(ProvisionOutcome::AlreadyProvisioned {
                thing: device.thing,
            });
        }
    }
    let base = env.base_url()?;
    let dir = Directory {
        host: env.directory_host()?,
        client_id: env.directory_client_id()?,
        scope: env.scope(),
    };
    let api = Api::new(&opts.api, &env.file)?;
    api.check(dir.host, &format!("`DIRECTORY_HOST` in {}", env.file))?;
    let token = bearer_token(&api, &dir, store, reporter).await?;
    let progress = directory::ensure(&api, dir.host, &token, env, store, reporter).await?;
    let site_id = progress.site_id.clone().unwrap_or_default();
    let bearer = Credential::Bearer(&token);
    let body = api
        .call(
            "the configuration service",
            Method::GET,
            &format!("{base}/{CONFIG_VERSION_V3}/configuration"),
            bearer,
            None,
        )
        .await?;
    let config = ConfigurationResponse::decode(&body)?;
    let telemetry_topic = config
        .provisioning
        .as_ref()
        .and_then(|p| p.telemetry_topic.clone())
        .ok_or_else(|| {
            missing_field(
                "provisioning.telemetryTopic",
                "the first levels of the telemetry topic (generation 3)",
            )
        })?;
    let key = make_key_and_csr()?;
    let request = CsrRequest {
        certificate_signing_request: key.csr_pem.clone(),
        site_id: Some(site_id.clone()),
    };
    let answer = api
        .call(
            "the provisioning service (v4)",
            Method::POST,
            &format!("{base}/{PROVISIONING_V4_PATH}"),
            bearer,
            Some(Body::json(request.encode())),
        )
        .await?;
    let resp = ProvisioningResponse::decode(
        &answer,
        Expect {
            keys: false,
            org: true,
        },
    )?;
    let root_ca = store.write_root_ca(&config.connectivity.server_root_ca)?;
    store_identity(store, &resp, Some(&key))?;
    store.write_properties(&Properties {
        mqtt_endpoint: config.connectivity.mqtt_endpoint.clone(),
        mqtt_port: config.connectivity.mqtt_port,
        machine_region: config.connectivity.machine_region.clone(),
        telemetry_topic: Some(telemetry_topic),
        client_id: Some(resp.client_id.clone()),
        org_id: resp.org_id.clone(),
        machine_id: progress.machine_id.clone(),
        site_id: Some(site_id),
    })?;
    reporter.report(Event::Configured {
        mqtt_endpoint: config.connectivity.mqtt_endpoint,
        mqtt_port: config.connectivity.mqtt_port,
        root_ca,
    });
    reporter.report(Event::Provisioned {
        thing: resp.client_id.clone(),
        csr: true,
        generation: Generation::Gen3,
        store: opts.store.clone(),
    });
    Ok(ProvisionOutcome::Provisioned {
        thing: resp.client_id,
    })
}
