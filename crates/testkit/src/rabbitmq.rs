//! A private RabbitMQ node with the MQTT plugin: `rabbitmq-server` (3.10) with its own node
//! name, ports, Mnesia and log folders and cookie in a per-run folder, anonymous MQTT on a free
//! loopback port. Starting one takes 10-20 s (the Erlang VM and the plugin), so tests share one
//! per process ([`RabbitMq::shared`]). A watchdog stops it when the process ends.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::dbserver::{RunDir, ServerProcess};
use crate::port::{accepts, free_ports};
use crate::process::unique_token;
use crate::subscriber::PROBE_TOPIC_PREFIX;

/// The server script (the one under `/usr/sbin` switches to the `rabbitmq` user as root).
const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Unacknowledged messages the plugin hands one MQTT subscriber (`mqtt.prefetch`; RabbitMQ's
/// default is 10, which throttles a sink that acknowledges after its commit to 10 per batch).
pub const RABBITMQ_PREFETCH: u32 = 1000;

/// A running private RabbitMQ node.
pub struct RabbitMq {
    mqtt_port: u16,
    log: PathBuf,
    // Declared before `dir`: the process (and its watchdog) goes first.
    process: ServerProcess,
    dir: RunDir,
}

impl std::fmt::Debug for RabbitMq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMq")
            .field("mqtt_port", &self.mqtt_port)
            .field("dir", &self.dir.path())
            .field("pid", &self.process.pid())
            .finish_non_exhaustive()
    }
}

static SHARED: OnceLock<RabbitMq> = OnceLock::new();

impl RabbitMq {
    /// The node of this process, started on first use.
    pub fn shared() -> &'static RabbitMq {
        SHARED.get_or_init(RabbitMq::start)
    }

    /// Starts a node and returns once its MQTT port confirms a QoS 1 publish. Panics with its
    /// log when it does not within 90 s.
    pub fn start() -> RabbitMq {
        assert!(
            std::path::Path::new(RABBITMQ_SERVER).is_file(),
            "testkit: {RABBITMQ_SERVER} is missing: install rabbitmq-server"
        );
        let dir = RunDir::create("rabbitmq", None);
        let d = dir.path();
        let p = free_ports(3);
        let (amqp, dist, mqtt) = (p[0], p[1], p[2]);
        let write = |name: &str, text: String| {
            fs::write(d.join(name), text)
                .unwrap_or_else(|e| panic!("testkit: cannot write {}/{name}: {e}", d.display()));
        };
        write("enabled_plugins", "[rabbitmq_mqtt].\n".into());
        write(
            "rabbitmq.conf",
            format!(
                "listeners.tcp.default = 127.0.0.1:{amqp}\n\
                 mqtt.listeners.tcp.default = 127.0.0.1:{mqtt}\n\
                 mqtt.allow_anonymous = true\n\
                 mqtt.prefetch = {RABBITMQ_PREFETCH}\n\
                 loopback_users = none\n"
            ),
        );
        let log = d.join("console.log");
        let node = format!("testkit_{}@localhost", unique_token().replace('-', "_"));
        let mut cmd = Command::new(RABBITMQ_SERVER);
        cmd.env("HOME", d)
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", amqp.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", d.join("plugins-expand"))
            .env("RABBITMQ_PID_FILE", d.join("rabbitmq.pid"))
            .current_dir(d);
        let process = ServerProcess::spawn(&mut cmd, &dir, &log, "KILL");
        let node = RabbitMq {
            mqtt_port: mqtt,
            log,
            process,
            dir,
        };
        node.wait_ready();
        node
    }

    /// `mqtt://127.0.0.1:PORT` of the MQTT listener (anonymous).
    pub fn mqtt_url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.mqtt_port)
    }

    /// The MQTT port.
    pub fn mqtt_port(&self) -> u16 {
        self.mqtt_port
    }

    /// The node's console output and logs so far.
    pub fn log(&self) -> String {
        let mut s = fs::read_to_string(&self.log).unwrap_or_default();
        if let Ok(entries) = fs::read_dir(self.dir.path().join("log")) {
            for e in entries.flatten() {
                s.push_str(&format!("\n--- {} ---\n", e.path().display()));
                s.push_str(&fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        s
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let topic = format!("{PROBE_TOPIC_PREFIX}{}", unique_token());
        loop {
            if let Some(status) = self.process.exited() {
                panic!(
                    "testkit: rabbitmq-server exited during start-up with {status}:\n{}",
                    self.log()
                );
            }
            if accepts(self.mqtt_port)
                && Command::new("mosquitto_pub")
                    .args(["-h", "127.0.0.1", "-p", &self.mqtt_port.to_string()])
                    .args(["-q", "1", "-t", &topic, "-m", "probe"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "testkit: RabbitMQ took no QoS 1 publish on port {} within {READY_TIMEOUT:?}:\n{}",
                self.mqtt_port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
