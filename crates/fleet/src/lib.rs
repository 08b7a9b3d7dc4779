//! Many simulated devices in one process, for load tests of a broker or an IoT backend.
//!
//! Each device is one [`transport::Session`] with its own client id (a pattern with `%i` for
//! the device number) and, optionally, its own certificate issued from a CA when it is about
//! to connect. Devices connect at a paced rate (or as fast as a bounded number of handshakes in
//! flight allows), publish at a rate per device, and count what happened: connect failures by
//! cause, reconnects, publishes, confirmations and the publish-to-PUBACK latency in an HDR
//! histogram. [`Summary::merge`] merges the summaries of shards run on several hosts.
//!
//! This is the client side only: it links no broker and no cloud side.

mod gooee_profile;
mod hdm_profile;
mod identity;
mod iotconnect_profile;
mod mindconnect_profile;
mod stats;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use transport::session::{EventHook, StartError};
use transport::{ConnectSettings, Message, Outbox, Qos, Session, SessionEvent, StartMode};

pub use identity::expand;
pub use stats::{Latency, Snapshot, Summary, peak_rss_bytes, rss_bytes};

use identity::CertFactory;
use stats::Counters;

/// How long a device may go without a connection before it counts as failed for good, when
/// `ConnectSettings::give_up_after` says nothing.
pub const DEFAULT_GIVE_UP: Duration = Duration::from_secs(60);
/// Connection attempts in flight at once by default: under mosquitto's listen backlog (100), whose
/// overflow drops SYNs that the kernel retries only after a second; at 256 a 1,000-device
/// fleet connected at 790/s and at 32 to 64 at 1,200 to 1,430/s on the same broker
/// (docs/benchmarks.md, "Fleet").
pub const DEFAULT_MAX_CONNECTING: usize = 64;
/// How long closing waits for in-flight PUBACKs; with the session's own 1 s wait for the
/// broker to close, a stopped fleet ends within 5 s.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Hard bound on the whole shutdown, after which unfinished devices are dropped.
const SHUTDOWN_BOUND: Duration = Duration::from_millis(4_000);

/// Where each device's identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Whatever the connection settings say: one shared certificate (`tls.client_cert`), a
    /// username and password, or nothing.
    Shared,
    /// A certificate per device, issued from this CA with the common name `cn_pattern` (`%i`
    /// is the device number).
    Issued {
        /// The issuer's certificate (PEM).
        cert: PathBuf,
        /// The issuer's private key (PEM).
        key: PathBuf,
        /// The devices' common name, with `%i`.
        cn_pattern: String,
    },
}

/// Which slice of a fleet this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 1.
    pub index: u64,
    /// Shards in all.
    pub count: u64,
}

impl Shard {
    /// The device numbers (before the id offset) of this shard of a fleet of `devices`: the
    /// shards together cover `0..devices` once, in contiguous ranges of nearly equal size.
    pub fn range(self, devices: u64) -> std::ops::Range<u64> {
        let n = self.count.max(1);
        let k = self.index.clamp(1, n) - 1;
        let at = |k: u64| (u128::from(devices) * u128::from(k) / u128::from(n)) as u64;
        at(k)..at(k + 1)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a shard; use K/N with 1 <= K <= N, e.g. 2/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = k.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// What each device speaks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Profile {
    /// Plain MQTT: `size` bytes on `topic` at `rate`, latency to each PUBACK.
    #[default]
    Raw,
    /// HDM on AWS IoT: each device runs HDM's agent loop (shadow sync and gate, the camelCase
    /// envelope to basic ingest); `topic` is not used.
    Hdm(HdmProfile),
    /// Gooee: each device is Gooee's agent (`gooee-pub`'s code), logging in as `authorization`
    /// with the API token and publishing its meta list on `devices/{client id}/meta`, each
    /// checked against the topic table and payload rules, confirmed before the next; `topic`
    /// is not used.
    Gooee,
    /// IoTConnect: each device runs `iotc-send run`'s agent (HTTPS bootstrap, the MQTT session
    /// the platform points it at, telemetry records at `rate`, commands acknowledged); `topic`
    /// is not used.
    Iotconnect(IotcProfile),
    /// Siemens Insights Hub MindConnect: each device is mc-agent's agent loop (`mc-agent run`'s
    /// code) as `{tenant}_{CN}`: the model instantiated (v3) or synchronised (v4) once, then
    /// simulated timeseries at `rate`, commands answered; `topic` and `size` are not used.
    Mindconnect(McProfile),
}

/// The MindConnect profile's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McProfile {
    /// The tenant: client ids are `{tenant}_{agent name}`.
    pub tenant: String,
    /// The asset model generation: v3 (`amo_v3` instantiation) or v4 (`amo_v4` sync).
    pub model_api: McModelApi,
}

pub use mindconnect::config::ModelApi as McModelApi;

/// The HDM profile's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HdmProfile {
    /// The stage of the basic-ingest rule `$aws/rules/iot_data_platform_telemetry_{stage}`.
    pub stage: String,
    /// Sync and follow each device's classic shadow (it gates telemetry).
    pub shadow: bool,
}

impl Default for HdmProfile {
    fn default() -> Self {
        HdmProfile {
            stage: "dev".into(),
            shadow: true,
        }
    }
}

pub use hdm_profile::{EVENT_SUBTYPE as HDM_EVENT_SUBTYPE, EVENT_TYPE as HDM_EVENT_TYPE};
pub use iotconnect_profile::{
    IotcProfile, IotcProtocol, KeySource, SAS_LIFETIME as IOTC_SAS_LIFETIME,
};

/// What to run.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// What each device speaks.
    pub profile: Profile,
    /// The connection, as for one device; `client_id` is the pattern (`%i`), default
    /// `fleet-%i`.
    pub settings: ConnectSettings,
    /// Where device identities come from.
    pub identity: Identity,
    /// Devices in the whole fleet (all shards).
    pub devices: u64,
    /// The slice of it this process runs (`None`: all).
    pub shard: Option<Shard>,
    /// Added to every device number (`%i`), so separate runs can use separate ranges.
    pub id_offset: u64,
    /// First connections started per second (0: as fast as `max_connecting` allows).
    pub connect_rate: f64,
    /// Connection attempts in progress at once, at most.
    pub max_connecting: usize,
    /// Messages per device per second (0: none, unless `count` asks for some: then as fast as
    /// the in-flight window allows).
    pub rate: f64,
    /// Payload size in bytes.
    pub size: usize,
    /// QoS of the messages.
    pub qos: Qos,
    /// Topic with `%i` for the device number.
    pub topic: String,
    /// Messages per device, then the device disconnects (unless `duration` keeps it).
    pub count: Option<u64>,
    /// Run this long, then stop every device.
    pub duration: Option<Duration>,
    /// How often the `on_tick` callback gets a snapshot.
    pub tick: Duration,
    /// Source addresses, given to the devices in turn (device number modulo their count):
    /// each address is good for about as many connections as the ephemeral port range holds.
    /// Empty: the system's choice.
    pub bind: Vec<std::net::IpAddr>,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            profile: Profile::Raw,
            settings: ConnectSettings::default(),
            identity: Identity::Shared,
            devices: 1,
            shard: None,
            id_offset: 0,
            connect_rate: 0.0,
            max_connecting: DEFAULT_MAX_CONNECTING,
            rate: 0.0,
            size: 16,
            qos: Qos::AtLeastOnce,
            topic: "fleet/%i".into(),
            count: None,
            duration: None,
            tick: Duration::from_millis(500),
            bind: Vec::new(),
        }
    }
}

/// Why the fleet could not run. Each says which file or option is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// Options that cannot work together.
    #[error("{0}")]
    Invalid(String),
    /// The issuer's certificate or key.
    #[error("issuer `{path}`: {problem}")]
    Issuer {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A device certificate could not be made.
    #[error("cannot issue the certificate for `{cn}`: {problem}")]
    Issue {
        /// Its common name.
        cn: String,
        /// Why.
        problem: String,
    },
    /// The settings do not make session options (no broker, bad URL, password source).
    #[error(transparent)]
    Settings(#[from] transport::settings::SettingsError),
    /// The session options are refused (keep-alive, client id, TLS files).
    #[error(transparent)]
    Session(#[from] transport::session::OptionsError),
    /// Local I/O (the MindConnect profile's shared templates and folders).
    #[error("{0}")]
    Io(String),
    /// A summary to merge is damaged.
    #[error("{name}: {problem}")]
    Report {
        /// The file (or name) it came from.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// The platform failed or refused a step every device needs before it starts (the
    /// MindConnect profile's v3 asset model).
    #[error("{message}")]
    Platform {
        /// What failed, as a sentence.
        message: String,
        /// Failure (not reached, not confirmed) or Rejected (the platform said no).
        outcome: transport::Outcome,
    },
}

impl FleetError {
    /// How the run ends: options and files are usage errors; local I/O, issuing a certificate
    /// and the platform are runtime failures (or a rejection), so a script can tell a typo from
    /// a broker that is down.
    pub fn outcome(&self) -> transport::Outcome {
        match self {
            FleetError::Platform { outcome, .. } => *outcome,
            FleetError::Io(_) | FleetError::Issue { .. } => transport::Outcome::Failure,
            FleetError::Invalid(_)
            | FleetError::Issuer { .. }
            | FleetError::Settings(_)
            | FleetError::Session(_)
            | FleetError::Report { .. } => transport::Outcome::Usage,
        }
    }
}

/// What the devices' TLS set-ups share: parsing a root store, a certificate chain and a key,
/// and a resumption cache of 256 servers, per device was a large part of each connection's
/// memory (docs/benchmarks.md, "Fleet").
enum TlsShare {
    /// No TLS.
    None,
    /// One certificate (or none) for every device: one config, one resumption cache (every
    /// device is the same client to the broker).
    Config(Arc<rustls::ClientConfig>),
    /// A certificate per device, issued in memory when the device is about to connect: one
    /// root store, and no resumption (a shared ticket cache would carry one device's identity
    /// into another's connection).
    Issued {
        roots: Arc<rustls::RootCertStore>,
        certs: Box<CertFactory>,
    },
}

impl TlsShare {
    fn new(
        first: &transport::SessionOptions,
        certs: Option<CertFactory>,
    ) -> Result<Self, FleetError> {
        if !first.endpoint.scheme().is_tls() {
            if certs.is_some() {
                return Err(FleetError::Invalid(format!(
                    "--issuer-cert issues device certificates for TLS, but the broker `{}` is not a TLS one; use mqtts:// or wss://",
                    first.endpoint
                )));
            }
            return Ok(TlsShare::None);
        }
        let tls_err = |e| FleetError::Session(transport::session::OptionsError::Tls(e));
        if let Some(certs) = certs {
            return Ok(TlsShare::Issued {
                roots: transport::tls::roots(&first.tls.ca_files).map_err(tls_err)?,
                certs: Box::new(certs),
            });
        }
        Ok(TlsShare::Config(
            transport::tls::client_config(&first.tls).map_err(tls_err)?,
        ))
    }

    /// Sets `so.tls_config` for device `id` (issuing its certificate, when the fleet issues
    /// them).
    fn apply(&self, so: &mut transport::SessionOptions, id: u64) -> Result<(), FleetError> {
        if let Some(c) = self.config(&so.tls.alpn, id)? {
            so.tls_config = Some(c);
        }
        Ok(())
    }

    /// Device `id`'s TLS config offering `alpn` (`None` without TLS).
    fn config(
        &self,
        alpn: &[String],
        id: u64,
    ) -> Result<Option<Arc<rustls::ClientConfig>>, FleetError> {
        match self {
            TlsShare::None => Ok(None),
            TlsShare::Config(c) => Ok(Some(c.clone())),
            TlsShare::Issued { roots, certs } => {
                let issued = certs.issue(id)?;
                let mut config = transport::tls::client_config_with_identity(
                    roots.clone(),
                    Some((issued.chain, issued.key)),
                    alpn,
                )
                .map_err(|e| FleetError::Issue {
                    cn: certs.cn(id),
                    problem: e.to_string(),
                })?;
                // Its own cache would size itself for 256 servers and keep each ticket with the
                // server's chain (6 KiB a device, docs/benchmarks.md); a reconnect makes a full
                // handshake instead.
                config.resumption = rustls::client::Resumption::disabled();
                Ok(Some(Arc::new(config)))
            }
        }
    }
}

struct Ctx {
    opts: FleetOptions,
    tls: TlsShare,
    /// `--profile hdm` and its telemetry topic.
    hdm: Option<(HdmProfile, String)>,
    /// `--profile iotconnect`, checked.
    iotc: Option<iotconnect_profile::Prepared>,
    /// `--profile mindconnect` and what its devices share.
    mc: Option<(McProfile, mindconnect_profile::Shared)>,
    counters: Arc<Counters>,
    payload: Bytes,
    start: Instant,
    connecting: Arc<Semaphore>,
    give_up: Duration,
}

/// Raises this process's open-file limit to its hard limit (a fleet needs one descriptor per
/// device); returns the soft limit now in force.
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        let raised = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!("cannot raise the open-file limit: {e}");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Runs the fleet until every device is done, `duration` passes or `shutdown` resolves (then
/// every device closes within about 3 s and the summary still comes back). `on_tick` gets a
/// snapshot every `tick`. Errors are the options' (found before any device connects).
pub async fn run(
    opts: FleetOptions,
    shutdown: impl Future<Output = ()>,
    mut on_tick: impl FnMut(&Snapshot),
) -> Result<Summary, FleetError> {
    let range = opts
        .shard
        .map_or(0..opts.devices, |s| s.range(opts.devices));
    if opts.topic.is_empty() {
        return Err(FleetError::Invalid("--topic is empty".into()));
    }
    transport::topic::validate_name(&expand(&opts.topic, range.start + opts.id_offset))
        .map_err(|e| FleetError::Invalid(format!("--topic: {e}")))?;
    if !opts.rate.is_finite() || opts.rate < 0.0 {
        return Err(FleetError::Invalid("--rate must be 0 or more".into()));
    }
    if !opts.connect_rate.is_finite() || opts.connect_rate < 0.0 {
        return Err(FleetError::Invalid(
            "--connect-rate must be 0 or more".into(),
        ));
    }
    let pattern = opts.settings.client_id.as_deref().unwrap_or("fleet-%i");
    if range.end - range.start > 1 && !pattern.contains("%i") {
        return Err(FleetError::Invalid(format!(
            "--client-id `{pattern}` has no %i: every device would take the same client id and the broker would drop each for the next"
        )));
    }
    let certs = match &opts.identity {
        Identity::Shared => None,
        Identity::Issued {
            cert,
            key,
            cn_pattern,
        } => Some(CertFactory::open(cert, key, cn_pattern)?),
    };
    // Check the settings once, with the first device, so a bad URL or password source is one
    // error and not one per device.
    let mut opts = opts;
    let mut iotc = None;
    if let Profile::Iotconnect(p) = &opts.profile {
        let (prepared, broker) =
            iotconnect_profile::check(&opts, p, range.start + opts.id_offset).await?;
        iotc = Some(prepared);
        // The platform says where its devices connect (a --broker still wins).
        if opts.settings.broker.is_none() {
            opts.settings.broker = broker;
        }
    }
    let hdm = match &opts.profile {
        Profile::Raw | Profile::Iotconnect(_) => None,
        Profile::Hdm(p) => Some((p.clone(), hdm_profile::check(&opts, p)?)),
        Profile::Gooee => {
            gooee_profile::check(&opts, range.start + opts.id_offset)?;
            None
        }
        Profile::Mindconnect(p) => {
            mindconnect_profile::check(&opts, p, range.start + opts.id_offset)?;
            None
        }
    };
    let first_id = range.start + opts.id_offset;
    let first = device_options(&opts, first_id)?;
    check_bind_families(&opts.bind, &first.endpoint).await?;
    let tls = TlsShare::new(&first, certs)?;
    // The shared parts (and issuing) are checked here, once, with the first device.
    tls.apply(&mut first.clone(), first_id)?;
    let limit = raise_open_file_limit();
    let n = range.end - range.start;
    if n + 64 > limit {
        tracing::warn!(
            "the open-file limit is {limit} and this fleet needs about {} descriptors; raise it (ulimit -n) or some devices will fail to connect",
            n + 64
        );
    }
    let mut ctx = Ctx {
        give_up: opts.settings.give_up_after.unwrap_or(DEFAULT_GIVE_UP),
        payload: Bytes::from(vec![b'x'; opts.size]),
        connecting: Arc::new(Semaphore::new(opts.max_connecting.max(1))),
        counters: Arc::new(Counters::new()),
        start: Instant::now(),
        tls,
        hdm,
        iotc,
        mc: None,
        opts,
    };
    if let Profile::Mindconnect(p) = &ctx.opts.profile {
        let shared =
            mindconnect_profile::prepare(&ctx, p, range.start + ctx.opts.id_offset).await?;
        ctx.mc = Some((p.clone(), shared));
    }
    let ctx = Arc::new(ctx);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut devices = JoinSet::new();
    for (k, i) in range.enumerate() {
        let at = if ctx.opts.connect_rate > 0.0 {
            ctx.start + Duration::from_secs_f64(k as f64 / ctx.opts.connect_rate)
        } else {
            ctx.start
        };
        devices.spawn(device(
            ctx.clone(),
            i + ctx.opts.id_offset,
            at,
            stop_rx.clone(),
        ));
    }
    let deadline = ctx.opts.duration.map(|d| ctx.start + d);
    let mut ticker = tokio::time::interval(ctx.opts.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut interrupted = false;
    loop {
        tokio::select! {
            () = &mut shutdown => { interrupted = true; break; }
            () = sleep_until_opt(deadline) => break,
            _ = ticker.tick() => on_tick(&ctx.counters.snapshot(n, ctx.start.elapsed())),
            next = devices.join_next() => if next.is_none() { break },
        }
    }
    let _ = stop_tx.send(true);
    let bound = Instant::now() + SHUTDOWN_BOUND;
    while let Ok(Some(_)) = tokio::time::timeout_at(bound, devices.join_next()).await {}
    if !devices.is_empty() {
        tracing::warn!("{} device(s) did not close in time; dropped", devices.len());
        devices.abort_all();
    }
    let elapsed = ctx.start.elapsed();
    on_tick(&ctx.counters.snapshot(n, elapsed));
    Ok(ctx.counters.summary(n, elapsed, interrupted))
}

/// Refuses a `--bind` address of a family the broker has no address in: every connection from
/// it would fail, and retrying would not help.
async fn check_bind_families(
    bind: &[std::net::IpAddr],
    endpoint: &transport::Endpoint,
) -> Result<(), FleetError> {
    if bind.is_empty() {
        return Ok(());
    }
    // A name that does not resolve now is the devices' own (counted, retried) DNS failure.
    let Ok(addrs) = tokio::net::lookup_host((endpoint.host(), endpoint.port())).await else {
        return Ok(());
    };
    let addrs: Vec<_> = addrs.map(|a| a.ip()).collect();
    if addrs.is_empty() {
        return Ok(());
    }
    let family = |ip: &std::net::IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    if let Some(bad) = bind
        .iter()
        .find(|b| !addrs.iter().any(|a| a.is_ipv4() == b.is_ipv4()))
    {
        let theirs = family(&addrs[0]);
        let list = addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        return Err(FleetError::Invalid(format!(
            "--bind {bad} is an {} address but the broker {} has only {theirs} addresses ({list}); give source addresses of the broker's family",
            family(bad),
            endpoint.host(),
        )));
    }
    Ok(())
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The connection settings of device `id`: the fleet's, with its client id.
fn device_settings(opts: &FleetOptions, id: u64) -> ConnectSettings {
    let mut settings = opts.settings.clone();
    settings.client_id = Some(expand(
        settings.client_id.as_deref().unwrap_or("fleet-%i"),
        id,
    ));
    settings
}

/// The session options of device `id`: its client id, its credentials; its TLS set-up (and
/// issued certificate) comes from [`TlsShare::apply`].
fn device_options(opts: &FleetOptions, id: u64) -> Result<transport::SessionOptions, FleetError> {
    let mut so = device_settings(opts, id).session_options(None)?;
    tune(opts, &mut so, id);
    Ok(so)
}

/// What every device's session gets, whatever its profile made of the settings: the fleet's
/// pacing, a small inbox, its source address.
fn tune(opts: &FleetOptions, so: &mut transport::SessionOptions, id: u64) {
    // The fleet paces and retries first connections itself (it counts each failure's cause);
    // once connected, the session reconnects on its own.
    so.start_mode = StartMode::RequireConnection;
    so.give_up_after = None;
    // A device's messages are small and few at a time: keep its inbox small.
    so.incoming_bytes = 64 * 1024;
    // Nobody reads a raw device's session events (its hook counts them); a vendor agent reads
    // them as they come. Each slot is allocated up front.
    so.event_capacity = 8;
    if !opts.bind.is_empty() {
        so.bind = Some(opts.bind[(id % opts.bind.len() as u64) as usize]);
    }
}

/// A device's first-connection retries: back-off, each failure counted by cause, and the
/// verdict whether to try again.
struct Retry {
    first_try: Instant,
    backoff: transport::backoff::Backoff,
}

impl Retry {
    fn new(ctx: &Ctx) -> Self {
        Retry {
            first_try: Instant::now(),
            backoff: transport::backoff::Backoff::new(
                Duration::from_millis(200),
                ctx.opts.settings.reconnect_max.max(Duration::from_secs(1)),
            ),
        }
    }

    /// Counts `err`; waits the back-off and says `true` (try again), or says `false` when the
    /// device failed for good (counted) or the fleet stopped.
    async fn again(
        &mut self,
        ctx: &Ctx,
        id: u64,
        err: &transport::ConnectError,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let c = &ctx.counters;
        c.connect_error(err.cause());
        if err.is_permanent() || self.first_try.elapsed() >= ctx.give_up {
            tracing::warn!("device {id} failed for good: {err}");
            c.failed.fetch_add(1, Relaxed);
            return false;
        }
        tracing::debug!("device {id}: {err}");
        let delay = self.backoff.next_delay(fastrand::f64());
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            _ = stop.wait_for(|s| *s) => false,
        }
    }
}

async fn device(ctx: Arc<Ctx>, id: u64, at: Instant, mut stop: watch::Receiver<bool>) {
    tokio::select! {
        () = tokio::time::sleep_until(at) => {}
        _ = stop.wait_for(|s| *s) => return,
    }
    let c = &ctx.counters;
    c.started.fetch_add(1, Relaxed);
    // The vendor agents' futures are boxed: unboxed, every device's task would be as large as
    // the largest of them (the IoTConnect agent's added 7.7 KiB to each raw device).
    if let Some((p, topic)) = &ctx.hdm {
        Box::pin(hdm_profile::run_device(&ctx, p, topic, id, &mut stop)).await;
        return;
    }
    if let Some(p) = &ctx.iotc {
        Box::pin(iotconnect_profile::run_device(&ctx, p, id, &mut stop)).await;
        return;
    }
    if let Some((p, shared)) = &ctx.mc {
        Box::pin(mindconnect_profile::run_device(
            &ctx, p, shared, id, &mut stop,
        ))
        .await;
        return;
    }
    if ctx.opts.profile == Profile::Gooee {
        Box::pin(gooee_profile::run_device(&ctx, id, &mut stop)).await;
        return;
    }
    let Some((session, _incoming)) = connect(&ctx, id, &mut stop).await else {
        return;
    };
    let (mut task, counted) = if *stop.borrow() {
        (None, None)
    } else {
        match publish_loop(&ctx, &session, id, &mut stop).await {
            Some((t, n)) => (Some(t), Some(n)),
            None => (None, None),
        }
    };
    if !*stop.borrow() {
        // Done publishing: wait for the last confirmations (and their latencies), then hold
        // the connection while a --duration still runs.
        tokio::select! {
            _ = session.flush(Duration::from_secs(30)) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
        if let Some(t) = task.as_mut()
            && tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .is_ok()
        {
            // Finished: a JoinHandle must not be polled again.
            task = None;
        }
        if ctx.opts.duration.is_some() {
            let _ = stop.wait_for(|s| *s).await;
        }
    }
    let ended = session.status().ended;
    let closed = session.close(CLOSE_GRACE).await;
    // Closing resolved every delivery still awaited; the bound is a safety net.
    if let Some(t) = task
        && tokio::time::timeout(Duration::from_secs(1), t)
            .await
            .is_err()
    {
        tracing::debug!("device {id}: confirmations still pending after close");
    }
    let counted = counted.map_or(0, |n| n.load(Relaxed));
    // A PUBACK that came while the confirmer was not yet waiting for it (a busy runtime),
    // just before the close, is in the session's count but not the confirmer's.
    c.confirmed
        .fetch_add(closed.acked.saturating_sub(counted), Relaxed);
    if let Some(why) = ended {
        c.failed.fetch_add(1, Relaxed);
        tracing::debug!("device {id} ended: {why}");
    }
}

/// Connects device `id`, retrying transient failures with back-off until `give_up`; counts
/// each failure by cause. `None`: failed for good (counted) or stopped.
async fn connect(
    ctx: &Ctx,
    id: u64,
    stop: &mut watch::Receiver<bool>,
) -> Option<(Session, transport::session::Incoming)> {
    let c = &ctx.counters;
    let mut retry = Retry::new(ctx);
    let mut base = None;
    loop {
        let permit = connect_slot(ctx, stop).await?;
        // Made (and its certificate issued) once per device, under the permit, so that
        // issuing is bounded like the handshakes and a retry reuses the certificate.
        if base.is_none() {
            match device_options(&ctx.opts, id)
                .and_then(|mut so| ctx.tls.apply(&mut so, id).map(|()| so))
            {
                Ok(so) => base = Some(so),
                Err(e) => {
                    tracing::warn!("device {id}: {e}");
                    c.failed.fetch_add(1, Relaxed);
                    return None;
                }
            }
        }
        let mut so = base.clone()?;
        so.on_event = Some(event_hook(ctx));
        let outcome = tokio::select! {
            r = Session::start(so, Outbox::memory(usize::from(ctx.opts.settings.inflight).max(16) * 2)) => r,
            _ = stop.wait_for(|s| *s) => return None,
        };
        drop(permit);
        let err = match outcome {
            // Nothing is subscribed, so nothing arrives for the inbox: the device holds it
            // without a task of its own to drain it (a task per device is memory).
            Ok(pair) => return Some(pair),
            Err(StartError::Connect(e)) => e,
            Err(e) => {
                tracing::warn!("device {id}: {e}");
                c.failed.fetch_add(1, Relaxed);
                return None;
            }
        };
        if !retry.again(ctx, id, &err, stop).await {
            return None;
        }
    }
}

/// One of the `max_connecting` slots for a connection attempt, or `None` once the fleet stops.
async fn connect_slot(
    ctx: &Ctx,
    stop: &mut watch::Receiver<bool>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    tokio::select! {
        p = ctx.connecting.clone().acquire_owned() => p.ok(),
        _ = stop.wait_for(|s| *s) => None,
    }
}

/// Counts connections and losses of one device from its session's events. The device, not the
/// session, is counted: a hook handed on to the session that replaces one (an IoTConnect
/// re-sync or SAS renewal) counts that session's connections as reconnects. Every CONNACK after
/// the device's first is a reconnect, also one that no loss came before: a session closed on
/// purpose (`Session::close`) says nothing to its hook.
fn event_hook(ctx: &Ctx) -> EventHook {
    let up = AtomicBool::new(false);
    let ever = AtomicBool::new(false);
    let start = ctx.start;
    let c = ctx.counters.clone();
    EventHook(Arc::new(move |ev: &SessionEvent| match ev {
        SessionEvent::Connected { .. } => {
            if !up.swap(true, Relaxed) {
                c.connected_now.fetch_add(1, Relaxed);
            }
            if ever.swap(true, Relaxed) {
                c.reconnects.fetch_add(1, Relaxed);
            } else {
                c.connected_once.fetch_add(1, Relaxed);
                c.last_first_connect_us
                    .fetch_max(start.elapsed().as_micros() as u64, Relaxed);
            }
        }
        SessionEvent::Disconnected { .. } | SessionEvent::Failed { .. }
            if up.swap(false, Relaxed) =>
        {
            c.connected_now.fetch_sub(1, Relaxed);
        }
        _ => {}
    }))
}

/// Publishes device `id`'s messages; returns the task that counts their confirmations (it
/// ends when the last one resolves or the session closes).
async fn publish_loop(
    ctx: &Ctx,
    session: &Session,
    id: u64,
    stop: &mut watch::Receiver<bool>,
) -> Option<(tokio::task::JoinHandle<()>, Arc<AtomicU64>)> {
    let opts = &ctx.opts;
    let c = &ctx.counters;
    let count = match (opts.count, opts.rate > 0.0) {
        (Some(n), _) => n,
        (None, true) => u64::MAX,
        (None, false) => return None,
    };
    if count == 0 {
        return None;
    }
    let topic = expand(&opts.topic, id);
    let period = (opts.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / opts.rate));
    // Spread the devices' first messages over one period so the fleet publishes evenly
    // instead of in bursts.
    let first = period.map_or(Instant::now(), |p| {
        Instant::now() + p.mul_f64(fastrand::f64())
    });
    let mut ticker = period.map(|p| {
        let mut t = tokio::time::interval_at(first, p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    // Confirmations come back in order (one connection, MQTT's in-order PUBACKs), so one
    // task awaiting them in turn times each one.
    let counted = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, transport::session::Delivery)>();
    let confirmer = {
        let c = ctx.counters.clone();
        let counted = counted.clone();
        tokio::spawn(async move {
            while let Some((sent, d)) = rx.recv().await {
                if d.confirmed().await.is_ok() {
                    counted.fetch_add(1, Relaxed);
                    c.confirmed.fetch_add(1, Relaxed);
                    c.latency(sent.elapsed());
                }
            }
        })
    };
    let mut sent = 0;
    while sent < count {
        if let Some(t) = ticker.as_mut() {
            tokio::select! {
                _ = t.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        } else if *stop.borrow() {
            break;
        }
        let msg = Message::new(topic.clone(), ctx.payload.clone()).with_qos(opts.qos);
        let at = Instant::now();
        let r = tokio::select! {
            r = session.publish(msg) => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        match r {
            Ok(d) => {
                c.published.fetch_add(1, Relaxed);
                sent += 1;
                let _ = tx.send((at, d));
            }
            Err(e) => {
                c.publish_errors.fetch_add(1, Relaxed);
                tracing::debug!("device {id}: {e}");
                break;
            }
        }
    }
    drop(tx);
    Some((confirmer, counted))
}
