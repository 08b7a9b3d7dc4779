//! A software TPM 2.0 (`swtpm`, Debian package `swtpm`) per test: a fresh state folder, free
//! loopback ports for the command and control channels, started already initialised
//! (`not-need-init,startup-clear`) so a client's first command works, killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::port::{accepts, free_ports};
use crate::process::kill_and_reap;

/// A running swtpm; its state lives in a temporary folder removed on drop.
pub struct Swtpm {
    child: Child,
    port: u16,
    _state: tempfile::TempDir,
}

impl Swtpm {
    /// Starts swtpm with a fresh state folder and waits (up to 10 s) until its command port
    /// accepts connections.
    pub fn start() -> Self {
        let state = tempfile::tempdir().expect("testkit: tempdir for swtpm state");
        // swtpm wants the control port; two adjacent free ports are asked for until a pair is
        // found, since free_ports gives no adjacency.
        let (port, ctrl) = adjacent_free_ports();
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2"])
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"))
            .arg("--tpmstate")
            .arg(format!("dir={}", state.path().display()))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("testkit: cannot start swtpm (apt-get install swtpm swtpm-tools): {e}")
            });
        let mut tpm = Self {
            child,
            port,
            _state: state,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(accepts(port) && accepts(ctrl)) {
            if let Ok(Some(status)) = tpm.child.try_wait() {
                panic!("testkit: swtpm exited with {status} before listening on {port}");
            }
            assert!(
                Instant::now() < deadline,
                "testkit: swtpm did not listen on 127.0.0.1:{port} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        tpm
    }

    /// The command port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TCTI string tss-esapi and tpm2-tools take for this TPM.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

fn adjacent_free_ports() -> (u16, u16) {
    for _ in 0..64 {
        let p = free_ports(1)[0];
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return (p, p + 1);
        }
    }
    panic!("testkit: no two adjacent free loopback ports for swtpm after 64 tries");
}
