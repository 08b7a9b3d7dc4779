//! The Zaikio directory steps of gen-3 onboarding, each done once and remembered in
//! `directory.json` right after it succeeds: the organisation's first site, the machine's
//! registration (name, manufacturer and serial number from the env file; the serial number made
//! once when absent, so a retry registers the same machine) and the site's ownership of it.

use reqwest::Method;
use transport::auth::Secret;

use crate::agent::api::{Api, Credential};
use crate::agent::{AgentError, Event, Reporter, Store};
use crate::protocol::directory::{
    DEFAULT_KIND, MACHINES_PATH, MachineSpec, Progress, SITES_PATH, decode_machine, decode_sites,
    ownership_path,
};
use crate::protocol::env::EnvFile;
use crate::protocol::oauth::form;

/// Default `MACHINE_NAME`.
pub const DEFAULT_MACHINE_NAME: &str = "hdm-telemetry";
/// Default `MACHINE_MANUFACTURER`.
pub const DEFAULT_MANUFACTURER: &str = "edgewire";

/// Runs the steps not yet done; returns the complete progress.
pub async fn ensure(
    api: &Api,
    host: &str,
    token: &Secret,
    env: &EnvFile,
    store: &Store,
    reporter: &dyn Reporter,
) -> Result<Progress, AgentError> {
    let mut p = store.directory()?;
    let bearer = Credential::Bearer(token);
    let site_id = if let Some(s) = p.site_id.clone() {
        s
    } else {
        let body = api
            .call(
                "the Zaikio site list",
                Method::GET,
                &format!("{host}/{SITES_PATH}"),
                bearer,
                None,
            )
            .await?;
        let site = decode_sites(&body)?.into_iter().next().ok_or_else(|| {
            AgentError::Authorization(
                "the Zaikio organisation you authorized has no site; create one in the directory first"
                    .into(),
            )
        })?;
        p.site_id = Some(site.id.clone());
        store.write_directory(&p)?;
        reporter.report(Event::Directory {
            step: "site",
            id: site.id.clone(),
        });
        site.id
    };
    let machine_id = if let Some(m) = p.machine_id.clone() {
        m
    } else {
        let serial = match (&env.machine_serial_number, &p.serial_number) {
            (Some(l), _) => l.value.clone(),
            (None, Some(s)) => s.clone(),
            (None, None) => {
                let s = uuid::Uuid::new_v4().to_string();
                p.serial_number = Some(s.clone());
                store.write_directory(&p)?;
                s
            }
        };
        let spec = MachineSpec {
            name: env
                .machine_name
                .as_ref()
                .map_or(DEFAULT_MACHINE_NAME.into(), |l| l.value.clone()),
            manufacturer: env
                .machine_manufacturer
                .as_ref()
                .map_or(DEFAULT_MANUFACTURER.into(), |l| l.value.clone()),
            serial_number: serial,
            kind: DEFAULT_KIND.into(),
        };
        let url = format!("{host}/{MACHINES_PATH}?{}", form(&spec.query()));
        let body = api
            .call(
                "the Zaikio machine registration",
                Method::POST,
                &url,
                bearer,
                None,
            )
            .await?;
        let id = decode_machine(&body)?;
        p.machine_id = Some(id.clone());
        store.write_directory(&p)?;
        reporter.report(Event::Directory {
            step: "machine",
            id: id.clone(),
        });
        id
    };
    if !p.owned {
        let url = format!(
            "{host}/{}?{}",
            ownership_path(&machine_id),
            form(&[("site_id", &site_id)])
        );
        api.call(
            "the Zaikio machine ownership",
            Method::POST,
            &url,
            bearer,
            None,
        )
        .await?;
        p.owned = true;
        store.write_directory(&p)?;
        reporter.report(Event::Directory {
            step: "ownership",
            id: site_id,
        });
    }
    Ok(p)
}
