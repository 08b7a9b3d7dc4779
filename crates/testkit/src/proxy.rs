//! A TCP fault proxy on 127.0.0.1 (std threads only): forwards bytes between
//! clients and an upstream port, and on demand cuts every live connection or
//! refuses new ones, to simulate network failures between a client and the
//! broker.

use std::collections::HashMap;
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(10);
/// Bound for connecting to the upstream port.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A TCP proxy `127.0.0.1:port() -> 127.0.0.1:upstream_port` with faults.
///
/// Each accepted connection gets an upstream connection and two copy threads.
/// If the upstream cannot be reached, the client connection is closed.
/// Dropping the proxy stops the accept thread (within ~10 ms) and cuts every
/// connection.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: SocketAddr,
    stop: AtomicBool,
    accepted: AtomicUsize,
    refused: AtomicUsize,
    next_id: AtomicU64,
    /// Live connection pairs (client side, upstream side) plus the blocked
    /// flag, under one lock so that blocking and registering cannot race.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    blocked: bool,
    conns: HashMap<u64, (TcpStream, TcpStream)>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn cut_all(&mut self) {
        for (_, (client, upstream)) in self.conns.drain() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("port", &self.port)
            .field("upstream", &self.shared.upstream)
            .field("accepted", &self.connections_accepted())
            .field("refused", &self.connections_refused())
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port and forwards every connection to
    /// `127.0.0.1:upstream_port`, both ways.
    pub fn start(upstream_port: u16) -> FaultProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("testkit: FaultProxy cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("testkit: FaultProxy local_addr failed: {e}"))
            .port();
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("testkit: FaultProxy set_nonblocking failed: {e}"));
        let shared = Arc::new(Shared {
            upstream: SocketAddr::from((Ipv4Addr::LOCALHOST, upstream_port)),
            stop: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            state: Mutex::new(State::default()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("testkit-proxy-{port}"))
                .spawn(move || accept_loop(&listener, &shared))
                .unwrap_or_else(|e| panic!("testkit: cannot spawn the FaultProxy thread: {e}"))
        };
        FaultProxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Aborts every current connection (both sockets shut down); new
    /// connections are still accepted.
    pub fn cut(&self) {
        self.shared.state().cut_all();
    }

    /// While blocked, new connections are accepted and closed immediately;
    /// blocking also cuts the current ones. Unblocking lets new connections
    /// through again.
    pub fn set_blocked(&self, blocked: bool) {
        let mut state = self.shared.state();
        state.blocked = blocked;
        if blocked {
            state.cut_all();
        }
    }

    /// Connections that were accepted and forwarded upstream so far (not
    /// counting those refused while blocked or for lack of an upstream).
    pub fn connections_accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections closed right after accept (blocked, or upstream
    /// unreachable).
    pub fn connections_refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Connection pairs currently being forwarded.
    pub fn connections_open(&self) -> usize {
        self.shared.state().conns.len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            // Bounded: the loop polls the flag every ACCEPT_POLL, and an
            // upstream connect in progress gives up after its timeout.
            let _ = acceptor.join();
        }
        self.shared.state().cut_all();
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => handle(client, shared),
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(ACCEPT_POLL),
            Err(_) => thread::sleep(ACCEPT_POLL),
        }
    }
}

fn handle(client: TcpStream, shared: &Arc<Shared>) {
    // Counted before the close, so a client that sees the close can read the count.
    let refuse = |client: &TcpStream| {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        let _ = client.shutdown(Shutdown::Both);
    };
    if shared.state().blocked || client.set_nonblocking(false).is_err() {
        return refuse(&client);
    }
    let Ok(upstream) = TcpStream::connect_timeout(&shared.upstream, UPSTREAM_CONNECT_TIMEOUT)
    else {
        return refuse(&client);
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (Ok(c_read), Ok(c_reg), Ok(u_read), Ok(u_reg)) = (
        client.try_clone(),
        client.try_clone(),
        upstream.try_clone(),
        upstream.try_clone(),
    ) else {
        let _ = upstream.shutdown(Shutdown::Both);
        return refuse(&client);
    };
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    {
        let mut state = shared.state();
        if state.blocked {
            drop(state);
            let _ = upstream.shutdown(Shutdown::Both);
            return refuse(&client);
        }
        state.conns.insert(id, (c_reg, u_reg));
        shared.accepted.fetch_add(1, Ordering::SeqCst);
    }
    let pumping = spawn_pump(id, "up", c_read, upstream, shared)
        && spawn_pump(id, "down", u_read, client, shared);
    if !pumping {
        // Without both copy threads the pair cannot work: close it.
        if let Some((c, u)) = shared.state().conns.remove(&id) {
            let _ = c.shutdown(Shutdown::Both);
            let _ = u.shutdown(Shutdown::Both);
        }
    }
}

/// Starts a copy thread; `false` if the thread could not be spawned.
fn spawn_pump(id: u64, dir: &str, from: TcpStream, to: TcpStream, shared: &Arc<Shared>) -> bool {
    let shared = Arc::clone(shared);
    thread::Builder::new()
        .name(format!("testkit-proxy-{id}-{dir}"))
        .spawn(move || pump(id, from, to, &shared))
        .is_ok()
}

/// Copies `from` -> `to` until either side ends, then closes the whole pair.
fn pump(id: u64, mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    shared.state().conns.remove(&id);
}
