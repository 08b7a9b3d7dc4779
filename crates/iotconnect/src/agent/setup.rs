//! From the user's settings and the config file to a ready device: the HTTPS client, discovery,
//! the full sync, the [`Device`] state machine and the session options. What every `iotc-send`
//! subcommand does first.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use transport::tls::TlsOptions;
use transport::{ConnectSettings, SpoolConfig};

use super::bootstrap::{self, Platform};
use super::{Agent, AgentError, Event, Reporter};
use crate::config::Config;
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

/// Discovery and sync; sets the device up (`df` replaces `sc.df` when given). HTTPS trusts the
/// settings' CA files, or the config's when none are given.
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
    let platform = bootstrap::discover(&config, http).await?;
    let sync = platform.sync(&config, SyncScope::All).await?;
    let id = Identity {
        cp_id: config.cp_id.clone(),
        unique_id: config.unique_id.clone(),
        env: config.env.clone(),
    };
    let mut device = Device::new(id, sync.clone(), df, Duration::ZERO)?;
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

    /// Connects: session options from the settings, the config and sync; reports `synced`.
    pub async fn connect(
        self,
        settings: &ConnectSettings,
        offline: Option<SpoolConfig>,
        reporter: Arc<dyn Reporter>,
    ) -> Result<(Agent, Platform, Config), AgentError> {
        let opts = bootstrap::session_options(settings, &self.config, &self.sync)?;
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
