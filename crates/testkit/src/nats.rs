//! A private NATS cluster with MQTT enabled: `nats-server` nodes (2.9: MQTT 3.1.1 over
//! JetStream, streams replicated across the nodes) routed to each other on free loopback ports,
//! each with its own JetStream store in one per-run folder. Nodes can be killed and started
//! again on the same ports with their store, to test a node lost mid-stream. Each node has a
//! watchdog, so none outlives the test process.

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::dbserver::{RunDir, ServerProcess, note};
use crate::port::{accepts, free_ports};
use crate::process::unique_token;
use crate::subscriber::PROBE_TOPIC_PREFIX;

/// The NATS server program.
const NATS_SERVER: &str = "nats-server";
/// How long a node may take until it takes a QoS 1 publish on its MQTT port (the first one
/// creates the replicated MQTT streams).
const READY_TIMEOUT: Duration = Duration::from_secs(45);

struct Node {
    name: String,
    client_port: u16,
    cluster_port: u16,
    mqtt_port: u16,
    conf: PathBuf,
    log: PathBuf,
    process: Option<ServerProcess>,
}

/// A running NATS cluster with MQTT on every node. Dropping it stops the nodes and removes
/// their folder.
pub struct NatsCluster {
    nodes: Vec<Node>,
    dir: RunDir,
}

impl std::fmt::Debug for NatsCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsCluster")
            .field("dir", &self.dir.path())
            .field(
                "mqtt_ports",
                &self.nodes.iter().map(|n| n.mqtt_port).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl NatsCluster {
    /// Starts `size` routed nodes (JetStream replicates MQTT state over up to 3 of them) and
    /// returns once every node has taken a QoS 1 publish on its MQTT port. Panics, with the
    /// nodes' logs, when that does not happen in time.
    pub fn start(size: usize) -> NatsCluster {
        assert!(size >= 1, "testkit: a NATS cluster needs a node");
        let dir = RunDir::create("nats", None);
        let ports = free_ports(3 * size);
        let routes: Vec<String> = (0..size)
            .map(|i| format!("nats://127.0.0.1:{}", ports[3 * i + 1]))
            .collect();
        let nodes = (0..size)
            .map(|i| {
                let name = format!("n{}", i + 1);
                let node_dir = dir.path().join(&name);
                fs::create_dir_all(&node_dir).unwrap_or_else(|e| {
                    panic!("testkit: cannot create {}: {e}", node_dir.display())
                });
                let (client_port, cluster_port, mqtt_port) =
                    (ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]);
                let mut c = String::new();
                let _ = writeln!(c, "server_name: {name}");
                let _ = writeln!(c, "listen: 127.0.0.1:{client_port}");
                let _ = writeln!(
                    c,
                    "jetstream {{ store_dir: \"{}\" }}",
                    node_dir.join("js").display()
                );
                let _ = writeln!(c, "mqtt {{ listen: 127.0.0.1:{mqtt_port} }}");
                if size > 1 {
                    let _ = writeln!(
                        c,
                        "cluster {{ name: testkit, listen: 127.0.0.1:{cluster_port}, routes: [{}] }}",
                        routes.join(", ")
                    );
                }
                let conf = node_dir.join("nats.conf");
                fs::write(&conf, c).unwrap_or_else(|e| {
                    panic!("testkit: cannot write {}: {e}", conf.display())
                });
                Node {
                    name,
                    client_port,
                    cluster_port,
                    mqtt_port,
                    log: node_dir.join("nats.log"),
                    conf,
                    process: None,
                }
            })
            .collect();
        let mut cluster = NatsCluster { nodes, dir };
        for i in 0..size {
            cluster.spawn(i);
        }
        for i in 0..size {
            cluster.wait_ready(i);
        }
        cluster
    }

    /// How many nodes.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// `mqtt://127.0.0.1:PORT` of node `i`'s MQTT listener.
    pub fn mqtt_url(&self, i: usize) -> String {
        format!("mqtt://127.0.0.1:{}", self.nodes[i].mqtt_port)
    }

    /// Node `i`'s MQTT port.
    pub fn mqtt_port(&self, i: usize) -> u16 {
        self.nodes[i].mqtt_port
    }

    /// SIGKILLs node `i` (no clean-up; its store stays for [`NatsCluster::restart`]).
    pub fn kill(&mut self, i: usize) {
        if let Some(p) = self.nodes[i].process.take() {
            p.kill();
        }
    }

    /// Starts node `i` again with its config and store, and waits until it takes a QoS 1
    /// publish.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_ready(i);
    }

    /// Node `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let mut cmd = Command::new(NATS_SERVER);
        cmd.arg("-c").arg(&node.conf).current_dir(self.dir.path());
        node.process = Some(ServerProcess::spawn_in(
            &mut cmd, &self.dir, &node.log, "KILL", false,
        ));
    }

    /// Waits until node `i` accepts TCP on its MQTT port and confirms a QoS 1 publish there
    /// (`mosquitto_pub -q 1` exits 0 only after the PUBACK).
    fn wait_ready(&self, i: usize) {
        let node = &self.nodes[i];
        let deadline = Instant::now() + READY_TIMEOUT;
        let topic = format!("{PROBE_TOPIC_PREFIX}{}", unique_token());
        let mut last = String::new();
        loop {
            if let Some(status) = node.process.as_ref().and_then(ServerProcess::exited) {
                self.fail(&format!(
                    "node {} exited during start-up with {status}",
                    node.name
                ));
            }
            if accepts(node.mqtt_port) {
                match Command::new("mosquitto_pub")
                    .args(["-h", "127.0.0.1", "-p", &node.mqtt_port.to_string()])
                    .args(["-q", "1", "-t", &topic, "-m", "probe", "-i"])
                    .arg(format!("testkit-probe-{}", unique_token()))
                    .stdin(Stdio::null())
                    .output()
                {
                    Ok(o) if o.status.success() => return,
                    Ok(o) => String::from_utf8_lossy(&o.stderr)
                        .trim()
                        .clone_into(&mut last),
                    Err(e) => panic!("testkit: cannot run mosquitto_pub: {e}"),
                }
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "node {} took no QoS 1 publish on port {} within {READY_TIMEOUT:?} ({last})",
                    node.name, node.mqtt_port
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn fail(&self, why: &str) -> ! {
        let mut logs = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let _ = write!(
                logs,
                "\n--- {} (client {}, cluster {}, mqtt {}) ---\n{}",
                n.name,
                n.client_port,
                n.cluster_port,
                n.mqtt_port,
                self.log(i)
            );
        }
        for n in &self.nodes {
            note(&n.log, why);
        }
        panic!("testkit: {why}{logs}");
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            // Dropping a process handle stops the node and its watchdog.
            n.process.take();
        }
        let _ = fs::remove_dir_all(self.dir.path());
    }
}
