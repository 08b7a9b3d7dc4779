//! A TCP fault proxy on 127.0.0.1 (std threads only): forwards bytes between
//! clients and an upstream port, and on demand cuts every live connection or
//! refuses new ones, to simulate network failures between a client and the
//! broker. A script of [`Fault`]s breaks the next connections in chosen ways
//! (a reset before or after the client's first bytes, mid-way through the
//! server's answer, answers swallowed), and the proxy records when each
//! connection came and, on request, what each client sent.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The bytes one client sent, filled in by its pump.
type Captured = Arc<Mutex<Vec<u8>>>;

/// What the proxy does to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    Pass,
    /// Reset (RST) the connection as soon as it is accepted, before the client sends anything.
    ResetOnAccept,
    /// Close it (FIN) as soon as it is accepted.
    CloseOnAccept,
    /// Wait for the client's first bytes (a TLS ClientHello, an MQTT CONNECT), then reset.
    ResetAfterClientBytes,
    /// Wait for the client's first bytes, then close.
    CloseAfterClientBytes,
    /// Forward, and close the connection once this many bytes came back from the server:
    /// mid-way through a TLS server flight, or right after a CONNACK (4 bytes) to kick a client
    /// the broker accepted.
    CloseAfterServerBytes(usize),
    /// Forward what the client sends, and the server's first bytes (4: a CONNACK); swallow the
    /// rest the server sends back (acknowledgements never arrive).
    DropServerBytesAfter(usize),
}

/// Resets a TCP connection: with a zero linger, closing the last handle sends RST, not FIN.
fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

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
    /// Faults for the next connections, in order; then `fallback`.
    script: Mutex<VecDeque<Fault>>,
    fallback: Mutex<Fault>,
    /// When each connection was accepted (faulted ones included).
    arrivals: Mutex<Vec<Instant>>,
    /// With capture on: the bytes each client sent, by arrival.
    captured: Mutex<Option<Vec<Captured>>>,
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
            script: Mutex::new(VecDeque::new()),
            fallback: Mutex::new(Fault::Pass),
            arrivals: Mutex::new(Vec::new()),
            captured: Mutex::new(None),
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

    /// Breaks the next connections as `faults` say, one fault per connection, in order; after
    /// that, connections get the fallback fault (`Pass` unless [`FaultProxy::set_fallback`]).
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.shared.script).extend(faults);
    }

    /// The fault for connections once the script is used up.
    pub fn set_fallback(&self, fault: Fault) {
        *lock(&self.shared.fallback) = fault;
    }

    /// Faults of the script not used yet.
    pub fn script_left(&self) -> usize {
        lock(&self.shared.script).len()
    }

    /// When each connection arrived (blocked and faulted ones included), in order.
    pub fn arrivals(&self) -> Vec<Instant> {
        lock(&self.shared.arrivals).clone()
    }

    /// Records what clients send from now on (see [`FaultProxy::client_bytes`]).
    pub fn capture(&self) {
        lock(&self.shared.captured).get_or_insert_with(Vec::new);
    }

    /// What the `n`-th connection accepted since [`FaultProxy::capture`] sent (0-based; empty
    /// if there is no such connection).
    pub fn client_bytes(&self, n: usize) -> Vec<u8> {
        lock(&self.shared.captured)
            .as_ref()
            .and_then(|c| c.get(n).map(|b| lock(b).clone()))
            .unwrap_or_default()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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
    lock(&shared.arrivals).push(Instant::now());
    // Counted before the close, so a client that sees the close can read the count.
    let refuse = |client: &TcpStream| {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        let _ = client.shutdown(Shutdown::Both);
    };
    if shared.state().blocked || client.set_nonblocking(false).is_err() {
        return refuse(&client);
    }
    let fault = lock(&shared.script)
        .pop_front()
        .unwrap_or_else(|| *lock(&shared.fallback));
    match fault {
        Fault::ResetOnAccept => return reset(client),
        Fault::CloseOnAccept => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        Fault::ResetAfterClientBytes | Fault::CloseAfterClientBytes => {
            // In a thread of its own, so the accept loop goes on.
            let _ = thread::Builder::new()
                .name("testkit-proxy-fault".into())
                .spawn(move || {
                    let mut client = client;
                    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut buf = [0u8; 1];
                    let _ = client.read(&mut buf);
                    if fault == Fault::ResetAfterClientBytes {
                        reset(client);
                    } else {
                        let _ = client.shutdown(Shutdown::Both);
                    }
                });
            return;
        }
        Fault::Pass | Fault::CloseAfterServerBytes(_) | Fault::DropServerBytesAfter(_) => {}
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
    let capture = lock(&shared.captured).as_mut().map(|c| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        c.push(buf.clone());
        buf
    });
    let down = match fault {
        Fault::CloseAfterServerBytes(n) => Down::CloseAfter(n),
        Fault::DropServerBytesAfter(n) => Down::SwallowAfter(n),
        _ => Down::Forward,
    };
    let pumping = spawn_pump(id, "up", c_read, upstream, shared, Pump::Up(capture))
        && spawn_pump(id, "down", u_read, client, shared, Pump::Down(down));
    if !pumping {
        // Without both copy threads the pair cannot work: close it.
        if let Some((c, u)) = shared.state().conns.remove(&id) {
            let _ = c.shutdown(Shutdown::Both);
            let _ = u.shutdown(Shutdown::Both);
        }
    }
}

/// What a server-to-client pump does with the bytes.
#[derive(Debug, Clone, Copy)]
enum Down {
    Forward,
    /// Forward this many bytes, then close the pair.
    CloseAfter(usize),
    /// Forward this many bytes, then drop the rest.
    SwallowAfter(usize),
}

/// The direction of a pump, with what it does on the way.
enum Pump {
    /// Client to server, recording into the buffer if capturing.
    Up(Option<Captured>),
    Down(Down),
}

/// Starts a copy thread; `false` if the thread could not be spawned.
fn spawn_pump(
    id: u64,
    dir: &str,
    from: TcpStream,
    to: TcpStream,
    shared: &Arc<Shared>,
    how: Pump,
) -> bool {
    let shared = Arc::clone(shared);
    thread::Builder::new()
        .name(format!("testkit-proxy-{id}-{dir}"))
        .spawn(move || pump(id, from, to, &shared, &how))
        .is_ok()
}

/// Copies `from` -> `to` until either side ends, then closes the whole pair.
fn pump(id: u64, mut from: TcpStream, mut to: TcpStream, shared: &Shared, how: &Pump) {
    let mut buf = [0u8; 16 * 1024];
    let mut forwarded = 0usize;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let chunk = &buf[..n];
        let sent = match how {
            Pump::Up(capture) => {
                if let Some(c) = capture {
                    lock(c).extend_from_slice(chunk);
                }
                to.write_all(chunk)
            }
            Pump::Down(Down::Forward) => to.write_all(chunk),
            Pump::Down(Down::SwallowAfter(limit)) => {
                let take = n.min(limit.saturating_sub(forwarded));
                forwarded += take;
                to.write_all(&chunk[..take])
            }
            Pump::Down(Down::CloseAfter(limit)) => {
                let take = n.min(limit.saturating_sub(forwarded));
                let r = to.write_all(&chunk[..take]);
                forwarded += take;
                if forwarded >= *limit {
                    break;
                }
                r
            }
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    shared.state().conns.remove(&id);
}
