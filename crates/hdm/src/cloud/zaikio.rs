//! The emulated Zaikio directory that gen-3 onboarding talks to: the OAuth 2.0 device flow
//! (RFC 8628: device authorization, polling with `authorization_pending`, `slow_down` when
//! polled faster than the interval, `expired_token`, `access_denied`; refresh with rotation),
//! one organisation with one site, machine registration and ownership. Pure: the HTTPS routes
//! (`zaikio_http`) pass the time in and turn the results into answers.

use std::collections::BTreeMap;

use transport::auth::{ExposeSecret, Secret};

use crate::protocol::directory::{MachineSpec, Site};
use crate::protocol::oauth::{DEVICE_CODE_GRANT, DeviceAuthorization, REFRESH_GRANT, TokenGrant};

/// The OAuth client id the local directory knows. Not a secret: it only opens iot-sim.
pub const DEV_OAUTH_CLIENT_ID: &str = "edgewire-hdm-dev-client";
/// The organisation every approval belongs to.
pub const DEV_ORG_ID: &str = "org-zaikio-sim";
/// Its one site.
pub const DEV_SITE_ID: &str = "site-sim-1";

/// Timing of the emulated directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZaikioOptions {
    /// `interval` given to devices (seconds).
    pub interval_s: u64,
    /// `expires_in` of a device code (seconds).
    pub code_lifetime_s: u64,
    /// `expires_in` of an access token (seconds).
    pub token_lifetime_s: u64,
    /// Answer `slow_down` to this many polls regardless of their timing (to exercise clients).
    pub force_slow_down: u32,
}

impl Default for ZaikioOptions {
    fn default() -> Self {
        ZaikioOptions {
            interval_s: 1,
            code_lifetime_s: 600,
            token_lifetime_s: 3600,
            force_slow_down: 0,
        }
    }
}

#[derive(Debug, Clone)]
struct Pending {
    user_code: String,
    client_id: String,
    approved: bool,
    denied: bool,
    expires_at_ms: i64,
    interval_ms: i64,
    last_poll_ms: Option<i64>,
}

/// A machine in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// What was registered.
    pub spec: MachineSpec,
    /// The organisation that registered it.
    pub org: String,
    /// The site owning it, once owned.
    pub site: Option<String>,
}

/// An OAuth error answer: status, `error`, `error_description`.
pub type OAuthRefusal = (u16, &'static str, String);

/// The directory's state.
#[derive(Debug, Default)]
pub struct Zaikio {
    /// Timing.
    pub options: ZaikioOptions,
    pending: BTreeMap<String, Pending>,
    access: BTreeMap<String, (String, i64)>,
    refresh: BTreeMap<String, String>,
    /// Registered machines by id.
    pub machines: BTreeMap<String, Machine>,
    slowed: u32,
}

fn token(prefix: &str) -> String {
    format!(
        "{prefix}-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

fn user_code() -> String {
    // RFC 8628 §6.1: consonants only, so no word can be spelt; XXXX-XXXX.
    const CHARS: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut s = String::with_capacity(9);
    for i in 0..8 {
        if i == 4 {
            s.push('-');
        }
        s.push(char::from(CHARS[fastrand::usize(..CHARS.len())]));
    }
    s
}

impl Zaikio {
    /// The device authorization for `client_id` (any scope), `verification_uri` being the
    /// approval page.
    pub fn authorize(
        &mut self,
        client_id: Option<&str>,
        verification_uri: &str,
        now_ms: i64,
    ) -> Result<DeviceAuthorization, OAuthRefusal> {
        if client_id != Some(DEV_OAUTH_CLIENT_ID) {
            return Err((
                401,
                "invalid_client",
                format!("unknown client_id; the local directory knows `{DEV_OAUTH_CLIENT_ID}`"),
            ));
        }
        let device_code = token("dc");
        let code = user_code();
        let lifetime = self.options.code_lifetime_s;
        self.pending.insert(
            device_code.clone(),
            Pending {
                user_code: code.clone(),
                client_id: DEV_OAUTH_CLIENT_ID.into(),
                approved: false,
                denied: false,
                expires_at_ms: now_ms + i64::try_from(lifetime * 1000).unwrap_or(i64::MAX),
                interval_ms: i64::try_from(self.options.interval_s * 1000).unwrap_or(5000),
                last_poll_ms: None,
            },
        );
        Ok(DeviceAuthorization {
            device_code: device_code.into(),
            verification_uri_complete: Some(format!("{verification_uri}?user_code={code}")),
            user_code: code,
            verification_uri: verification_uri.to_owned(),
            expires_in: lifetime,
            interval: Some(self.options.interval_s),
        })
    }

    /// Codes waiting for a person.
    pub fn pending_codes(&self) -> Vec<String> {
        self.pending
            .values()
            .filter(|p| !p.approved && !p.denied)
            .map(|p| p.user_code.clone())
            .collect()
    }

    /// A person approves (or denies) `user_code`; `false` for an unknown code.
    pub fn decide(&mut self, user_code: &str, approve: bool) -> bool {
        let code = user_code.trim().to_ascii_uppercase();
        match self.pending.values_mut().find(|p| p.user_code == code) {
            Some(p) => {
                p.approved = approve;
                p.denied = !approve;
                true
            }
            None => false,
        }
    }

    fn issue(&mut self, org: &str, now_ms: i64) -> TokenGrant {
        let access = token("at");
        let refresh = token("rt");
        let lifetime = self.options.token_lifetime_s;
        self.access.insert(
            access.clone(),
            (
                org.to_owned(),
                now_ms + i64::try_from(lifetime * 1000).unwrap_or(i64::MAX),
            ),
        );
        self.refresh.insert(refresh.clone(), org.to_owned());
        TokenGrant {
            access_token: access.into(),
            refresh_token: Some(refresh.into()),
            expires_in: Some(lifetime),
            scope: Some(crate::protocol::env::DEFAULT_SCOPE.into()),
        }
    }

    /// The token endpoint: a device-code poll or a refresh, from the form pairs.
    pub fn token(
        &mut self,
        form: &[(String, String)],
        now_ms: i64,
    ) -> Result<(TokenGrant, &'static str), OAuthRefusal> {
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        match get("grant_type") {
            Some(DEVICE_CODE_GRANT) => self.poll(get("device_code"), get("client_id"), now_ms),
            Some(REFRESH_GRANT) => {
                let Some(org) = get("refresh_token").and_then(|t| self.refresh.remove(t)) else {
                    return Err((400, "invalid_grant", "unknown or used refresh token".into()));
                };
                Ok((self.issue(&org, now_ms), "refresh"))
            }
            _ => Err((
                400,
                "unsupported_grant_type",
                "grant_type must be the device code grant or refresh_token".into(),
            )),
        }
    }

    fn poll(
        &mut self,
        device_code: Option<&str>,
        client_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(TokenGrant, &'static str), OAuthRefusal> {
        let Some(code) = device_code else {
            return Err((400, "invalid_request", "device_code is missing".into()));
        };
        let Some(p) = self.pending.get_mut(code) else {
            return Err((400, "invalid_grant", "unknown device_code".into()));
        };
        if client_id.is_some_and(|c| c != p.client_id) {
            return Err((400, "invalid_grant", "device_code of another client".into()));
        }
        if now_ms >= p.expires_at_ms {
            self.pending.remove(code);
            return Err((400, "expired_token", "the device code expired".into()));
        }
        if p.denied {
            self.pending.remove(code);
            return Err((400, "access_denied", "the user denied the request".into()));
        }
        // Allow a quarter second of jitter between the client's clock and ours.
        let early = p
            .last_poll_ms
            .is_some_and(|last| now_ms - last + 250 < p.interval_ms);
        p.last_poll_ms = Some(now_ms);
        if early || self.slowed < self.options.force_slow_down {
            self.slowed += 1;
            p.interval_ms += 5000;
            return Err((400, "slow_down", "polling too fast".into()));
        }
        if !p.approved {
            return Err((
                400,
                "authorization_pending",
                "waiting for the user to approve".into(),
            ));
        }
        self.pending.remove(code);
        Ok((self.issue(DEV_ORG_ID, now_ms), "device"))
    }

    /// The organisation of a valid access token.
    pub fn org_of(&self, bearer: &Secret, now_ms: i64) -> Option<String> {
        self.access
            .get(bearer.expose_secret())
            .filter(|(_, exp)| *exp > now_ms)
            .map(|(org, _)| org.clone())
    }

    /// The sites of `org`.
    pub fn sites(org: &str) -> Vec<Site> {
        if org == DEV_ORG_ID {
            vec![Site {
                id: DEV_SITE_ID.into(),
                name: Some("iot-sim print shop".into()),
            }]
        } else {
            Vec::new()
        }
    }

    /// Registers a machine for `org`; returns its id.
    pub fn register(&mut self, org: &str, spec: MachineSpec) -> String {
        let id = format!("machine-{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff);
        self.machines.insert(
            id.clone(),
            Machine {
                spec,
                org: org.to_owned(),
                site: None,
            },
        );
        id
    }

    /// Gives `machine` to `site`; `Err` says why not.
    pub fn own(&mut self, org: &str, machine: &str, site: &str) -> Result<(), String> {
        if !Self::sites(org).iter().any(|s| s.id == site) {
            return Err(format!("site `{site}` is not a site of your organisation"));
        }
        match self.machines.get_mut(machine) {
            Some(m) if m.org == org => {
                m.site = Some(site.to_owned());
                Ok(())
            }
            _ => Err(format!("machine `{machine}` is not yours")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_form(code: &Secret) -> Vec<(String, String)> {
        vec![
            ("grant_type".into(), DEVICE_CODE_GRANT.into()),
            ("device_code".into(), code.expose_secret().into()),
            ("client_id".into(), DEV_OAUTH_CLIENT_ID.into()),
        ]
    }

    #[test]
    fn device_flow_pending_slow_down_approve_and_refresh_rotation() {
        let mut z = Zaikio::default();
        assert_eq!(
            z.authorize(Some("other"), "https://v", 0).unwrap_err().0,
            401
        );
        let a = z
            .authorize(Some(DEV_OAUTH_CLIENT_ID), "https://v/device", 0)
            .unwrap();
        assert_eq!(a.interval, Some(1));
        let form = poll_form(&a.device_code);
        assert_eq!(z.token(&form, 1000).unwrap_err().1, "authorization_pending");
        assert_eq!(
            z.token(&form, 1200).unwrap_err().1,
            "slow_down",
            "0.2 s after the last poll"
        );
        assert_eq!(
            z.token(&form, 6300).unwrap_err().1,
            "slow_down",
            "the interval is 6 s now"
        );
        assert_eq!(
            z.token(&form, 17_400).unwrap_err().1,
            "authorization_pending"
        );
        assert!(z.decide(&a.user_code.to_lowercase(), true));
        assert!(z.pending_codes().is_empty());
        let (grant, via) = z.token(&form, 28_500).unwrap();
        assert_eq!(via, "device");
        assert_eq!(
            z.org_of(&grant.access_token, 28_500).as_deref(),
            Some(DEV_ORG_ID)
        );
        assert_eq!(
            z.token(&form, 20_000).unwrap_err().1,
            "invalid_grant",
            "codes are single use"
        );
        let refresh = grant.refresh_token.unwrap();
        let rform = vec![
            ("grant_type".to_owned(), REFRESH_GRANT.to_owned()),
            (
                "refresh_token".to_owned(),
                refresh.expose_secret().to_owned(),
            ),
        ];
        let (again, via) = z.token(&rform, 30_000).unwrap();
        assert_eq!(via, "refresh");
        assert!(z.org_of(&again.access_token, 30_000).is_some());
        assert_eq!(
            z.token(&rform, 30_100).unwrap_err().1,
            "invalid_grant",
            "rotated"
        );
        assert_eq!(z.org_of(&again.access_token, 3_630_001), None, "expired");
    }

    #[test]
    fn denial_and_expiry_end_the_flow() {
        let mut z = Zaikio::default();
        let a = z
            .authorize(Some(DEV_OAUTH_CLIENT_ID), "https://v", 0)
            .unwrap();
        z.decide(&a.user_code, false);
        assert_eq!(
            z.token(&poll_form(&a.device_code), 5000).unwrap_err().1,
            "access_denied"
        );
        let a = z
            .authorize(Some(DEV_OAUTH_CLIENT_ID), "https://v", 0)
            .unwrap();
        assert_eq!(
            z.token(&poll_form(&a.device_code), 600_001).unwrap_err().1,
            "expired_token"
        );
    }

    #[test]
    fn machines_belong_to_sites_of_the_same_organisation() {
        let mut z = Zaikio::default();
        let spec = MachineSpec {
            name: "n".into(),
            manufacturer: "m".into(),
            serial_number: "s".into(),
            kind: "digital_press".into(),
        };
        let id = z.register(DEV_ORG_ID, spec.clone());
        assert!(z.own(DEV_ORG_ID, &id, "elsewhere").is_err());
        assert!(z.own("org-2", &id, DEV_SITE_ID).is_err());
        z.own(DEV_ORG_ID, &id, DEV_SITE_ID).unwrap();
        assert_eq!(z.machines[&id].site.as_deref(), Some(DEV_SITE_ID));
    }
}
