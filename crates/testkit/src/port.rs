//! Free loopback port discovery and "does this port accept TCP yet" probing.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A port on 127.0.0.1 that was free a moment ago: binds `127.0.0.1:0`, reads
/// the port the kernel chose and releases it.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free ports on 127.0.0.1, all bound at the same time before
/// being released (so they are guaranteed distinct from each other).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap_or_else(|e| {
                panic!("testkit: cannot bind 127.0.0.1:0 to find a free port: {e}")
            })
        })
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .unwrap_or_else(|e| panic!("testkit: local_addr of a bound listener failed: {e}"))
                .port()
        })
        .collect()
}

/// Whether something accepts a TCP connection on `127.0.0.1:port` right now.
pub(crate) fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok()
}
