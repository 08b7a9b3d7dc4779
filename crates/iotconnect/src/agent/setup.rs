//! From the user's settings and the config file to a ready device: the HTTPS client, discovery,
//! the full sync, the [`Device`] state machine and the session options. What every `iotc-send`
//! subcommand does first.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use transport::tls::TlsOptions;
use transport::{ConnectSettings, SessionOptions, SpoolConfig};

use super::bootstrap::{self, Platform};
use super::{Agent, AgentError, Event, Reporter};
use crate::config::{Config, Protocol};
use crate::protocol::device::{Device, Identity};
use crate::protocol::v1::sync::{SyncData, SyncScope};

/// Everything the device needs before connecting.
pub struct Setup {
    /// The config file.
    pub config: Config,
    /// Discovery result and HTTPS client.
    pub platform: Platform,
    /// The full sync answer.
    pub sync: SyncData,
    /// The device.
    pub device: Device,
}

/// How [`setup_retrying`] waits between attempts: jittered doubling from `initial` to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// First wait.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for Retry {
    /// 1 s doubling to 60 s: the SDK 3.0.5 waits 60 s after an `rc` other than 0.
    fn default() -> Self {
        Retry {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// Whether a failed start is worth trying again: the network or the platform not reachable
/// (yet), or `rc` 2 ("auto-registered, sync again"). Refusals and bad answers are final.
pub fn is_transient(e: &AgentError) -> bool {
    matches!(
        e,
        AgentError::Http { .. }
            | AgentError::Sync(crate::protocol::v1::sync::SyncError::Status { code: 2, .. })
    )
}

/// [`setup`] for long-running use: a transient failure ([`is_transient`]) is reported as a
/// warning and tried again after a back-off, as the SDK keeps re-syncing; anything else ends it.
pub async fn setup_retrying(
    config: Config,
    settings: &ConnectSettings,
    df: Option<Duration>,
    http_timeout: Duration,
    reporter: &dyn Reporter,
    retry: Retry,
) -> Result<Setup, AgentError> {
    let mut backoff = transport::backoff::Backoff::new(retry.initial, retry.max);
    loop {
        match setup(config.clone(), settings, df, http_timeout, reporter).await {
            Err(e) if is_transient(&e) => {
                let wait = backoff.next_delay(fastrand::f64());
                reporter.event(Event::Warning {
                    message: format!(
                        "{e}; trying again in {:.1} s (attempt {})",
                        wait.as_secs_f64(),
                        backoff.attempts()
                    ),
                });
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// Discovery and sync (1.0) or discovery and identity (2.1); sets the device up (`df` replaces `sc.df` when given). HTTPS trusts the
/// settings' CA files, or the config's when none are given. Fails at the first error.
pub async fn setup(
    config: Config,
    settings: &ConnectSettings,
    df: Option<Duration>,
    http_timeout: Duration,
    reporter: &dyn Reporter,
) -> Result<Setup, AgentError> {
    let http = bootstrap::http_client(
        &TlsOptions {
            ca_files: settings.ca_files_or(config.ca.clone()),
            ..TlsOptions::default()
        },
        http_timeout,
    )?;
    let id = Identity {
        cp_id: config.cp_id.clone(),
        unique_id: config.unique_id.clone(),
        env: config.env.clone(),
    };
    let (platform, mut device) = if config.protocol == Protocol::V21 {
        let (platform, answer) = bootstrap::identify(&config, http).await?;
        let device = Device::new_v21(id, &answer, config.platform, df, Duration::ZERO)?;
        (platform, device)
    } else {
        let platform = bootstrap::discover(&config, http).await?;
        let (sync, provisioned) = sync_registered(&config, &platform, SyncScope::All).await?;
        if let Some(p) = provisioned {
            reporter.event(p);
        }
        (platform, Device::new(id, sync, df, Duration::ZERO)?)
    };
    let sync = device.sync().clone();
    for w in device.take_warnings() {
        reporter.event(Event::Warning { message: w });
    }
    Ok(Setup {
        config,
        platform,
        sync,
        device,
    })
}

/// `sync` for `scope`; when auth type 4 answers `ds` 1 (not registered), DPS first and then
/// sync again, as the TPM SDK's `init_provisioning_client` does. At start and on every re-sync:
/// a platform that moved the device (a new hub, a new key) answers `ds` 1 again. The
/// `provisioned` event comes back for the caller to report.
pub(crate) async fn sync_registered(
    config: &Config,
    platform: &Platform,
    scope: SyncScope,
) -> Result<(SyncData, Option<Event>), AgentError> {
    let mut sync = platform.sync_unchecked(config, scope).await?;
    let mut provisioned = None;
    if sync.at == Some(4) && sync.ds == Some(1) {
        provisioned = Some(provision(config, platform).await?);
        sync = platform.sync_unchecked(config, scope).await?;
    }
    if scope == SyncScope::All {
        sync.check(&config.unique_id)?;
    }
    Ok((sync, provisioned))
}

/// DPS registration with the config's TPM, id scope and DPS URL: the `provisioned` event.
async fn provision(config: &Config, platform: &Platform) -> Result<Event, AgentError> {
    let tpm = config.tpm.as_ref().ok_or(AgentError::Unsupported(format!(
        "auth type 4 (TPM via Azure DPS) needs a TPM: {}",
        super::NO_TPM_FEATURE
    )))?;
    let id_scope = config.scope_id.clone().ok_or_else(|| {
        AgentError::Input(format!(
            "auth type 4 needs the DPS id scope: set `scopeId` in `{}` (IoTConnect: Settings → Key Vault → DPS Info)",
            config.path.display()
        ))
    })?;
    let opts = super::dps::DpsOptions {
        url: config.dps_url.clone(),
        id_scope,
        registration_id: crate::protocol::dps::iotconnect_registration_id(
            &config.cp_id,
            &config.unique_id,
        ),
        max_polls: 20,
    };
    let a = super::dps::register(&platform.http, &opts, tpm.0.as_ref()).await?;
    Ok(Event::Provisioned {
        registration_id: opts.registration_id,
        hub: a.hub,
        device_id: a.device_id,
    })
}

/// New session options after a protocol re-sync (0x12), from the same settings and config.
pub fn reconnect_with(settings: ConnectSettings, config: Config) -> super::Reconnect {
    Arc::new(move |sync: &SyncData| bootstrap::session_options(&settings, &config, sync))
}

impl Setup {
    /// The offline store: the config's `offlineStorage` in `dir` (default
    /// `logs/offline/{cpId}_{uniqueId}` beside the config file).
    pub fn offline(&self, dir: Option<PathBuf>) -> Option<SpoolConfig> {
        let dir = dir.unwrap_or_else(|| self.config.default_offline_dir());
        self.config.offline.spool(dir)
    }

    /// Connects: session options from the settings, the config and sync ([`Setup::session_options`]),
    /// then [`Setup::start`].
    pub async fn connect(
        self,
        settings: &ConnectSettings,
        offline: Option<SpoolConfig>,
        reporter: Arc<dyn Reporter>,
    ) -> Result<(Agent, Platform, Config), AgentError> {
        let opts = self.session_options(settings, None)?;
        // Boxed: the setup moves into the start, and callers' futures stay small.
        Box::pin(self.start(opts, offline, reporter)).await
    }

    /// The session options from the settings, the config and sync; over `tls_config` when the
    /// caller made one ([`bootstrap::session_options_with_tls`]).
    pub fn session_options(
        &self,
        settings: &ConnectSettings,
        tls_config: Option<Arc<transport::tls::ClientConfig>>,
    ) -> Result<SessionOptions, AgentError> {
        bootstrap::session_options_with_tls(settings, &self.config, &self.sync, tls_config)
    }

    /// Reports `synced` and starts the session with `opts` (from [`Setup::session_options`],
    /// perhaps tuned: `iot-sim fleet` sets its pacing and shared TLS config).
    pub async fn start(
        self,
        opts: SessionOptions,
        offline: Option<SpoolConfig>,
        reporter: Arc<dyn Reporter>,
    ) -> Result<(Agent, Platform, Config), AgentError> {
        reporter.event(Event::Synced {
            cp_id: self.config.cp_id.clone(),
            unique_id: self.config.unique_id.clone(),
            devices: self.device.devices().len(),
            attributes: self.sync.att.iter().flatten().map(|g| g.d.len()).sum(),
            edge: self.device.is_edge(),
            df: self.device.df().as_secs(),
            auth_type: self.sync.at.unwrap_or(2),
            broker: opts.endpoint.to_string(),
        });
        let agent = Agent::start(opts, offline, self.device, reporter).await?;
        Ok((agent, self.platform, self.config))
    }
}
