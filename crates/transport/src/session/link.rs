//! One connection to the broker: the byte stream (TCP with NODELAY, TLS over rustls, WebSocket
//! or WebSocket over TLS with the `mqtt` subprotocol), the CONNECT/CONNACK exchange, and MQTT
//! framing over it. Packets are read out of one buffer filled by large reads, and written from one
//! buffer in a single write: a thousand PUBACKs or PUBLISHes leave in one syscall, where a
//! client that flushes per packet (rumqttc 0.25) makes a thousand and wakes the broker as often.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use rumqttc::mqttbytes::{
    self,
    v4::{Connect, ConnectReturnCode, Login, Packet},
};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tungstenite::client::IntoClientRequest;

use super::SessionOptions;
use crate::auth::ExposeSecret;
use crate::endpoint::Scheme;
use crate::message::OVERSIZED_PREFIX;

/// A byte stream to the broker.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Why a connection could not be made or ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    /// The host name did not resolve.
    #[error("{0}")]
    Dns(#[source] std::io::Error),
    /// Socket failure (TLS failures after the handshake arrive here too, wrapped by rustls).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The TLS handshake failed.
    #[error("{0}")]
    TlsHandshake(#[source] std::io::Error),
    /// The host is not a valid TLS server name.
    #[error("not a valid TLS server name")]
    BadServerName,
    /// The WebSocket upgrade failed.
    #[error("{0}")]
    WebSocket(Box<tungstenite::Error>),
    /// The server upgraded without agreeing to the `mqtt` subprotocol.
    #[error("the server did not agree to the `mqtt` WebSocket subprotocol (it answered {0:?})")]
    Subprotocol(Option<String>),
    /// CONNACK with a refusal.
    #[error("CONNACK refused: {0:?}")]
    Refused(ConnectReturnCode),
    /// TCP, TLS and CONNACK took longer than the connect timeout.
    #[error("timed out")]
    Timeout,
    /// A packet could not be written in time.
    #[error("writing to the broker stalled for {0} s")]
    WriteStalled(u64),
    /// The broker broke the protocol.
    #[error("{0}")]
    Protocol(String),
    /// The broker closed the connection.
    #[error("the broker closed the connection")]
    Closed,
    /// No PINGRESP within the keep-alive interval.
    #[error("no PINGRESP within the keep-alive interval")]
    PingTimeout,
}

impl From<tungstenite::Error> for LinkError {
    fn from(e: tungstenite::Error) -> Self {
        LinkError::WebSocket(Box::new(e))
    }
}

/// An MQTT connection after a successful CONNACK.
pub(crate) struct Link {
    io: Box<dyn Stream>,
    rbuf: BytesMut,
    /// Bytes of an oversized packet still to be read and thrown away.
    skip: usize,
    /// Encoded packets waiting for the next [`Link::flush`].
    pub wbuf: BytesMut,
    max_packet: usize,
    write_limit: Duration,
}

const READ_CHUNK: usize = 64 * 1024;

/// Connects, sends CONNECT and waits for CONNACK, all within the connect timeout. Returns the
/// link and whether the broker resumed a stored session.
pub(crate) async fn open(
    opts: &SessionOptions,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<(Link, bool), LinkError> {
    tokio::time::timeout(opts.connect_timeout, open_within(opts, tls))
        .await
        .unwrap_or(Err(LinkError::Timeout))
}

async fn open_within(
    opts: &SessionOptions,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<(Link, bool), LinkError> {
    let ep = &opts.endpoint;
    let tcp = QuickAck {
        tcp: tcp_connect(ep.host(), ep.port(), opts.bind).await?,
        reads_left: QUICKACK_READS,
    };
    let scheme = ep.scheme();
    let stream: Box<dyn Stream> = match (scheme, tls) {
        (Scheme::Mqtts | Scheme::Wss, Some(cfg)) => {
            let name =
                ServerName::try_from(ep.host().to_owned()).map_err(|_| LinkError::BadServerName)?;
            let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
                .map_err(LinkError::TlsHandshake)?;
            Box::new(tls)
        }
        _ => Box::new(tcp),
    };
    let stream = if scheme.is_websocket() {
        websocket(&ep.websocket_url(), stream).await?
    } else {
        stream
    };
    let mut link = Link {
        io: stream,
        rbuf: BytesMut::with_capacity(READ_CHUNK),
        skip: 0,
        wbuf: BytesMut::with_capacity(4096),
        max_packet: opts.max_packet_size,
        write_limit: opts.connect_timeout.max(Duration::from_secs(1)),
    };
    let mut connect = Connect::new(opts.client_id.clone());
    connect.keep_alive = u16::try_from(opts.keep_alive.as_secs()).unwrap_or(u16::MAX);
    connect.clean_session = opts.clean_session;
    if let Some(c) = &opts.credentials {
        connect.login = Some(Login::new(
            c.username.clone(),
            c.password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default(),
        ));
    }
    link.queue(&Packet::Connect(connect))?;
    link.flush().await?;
    loop {
        if let Some(frame) = link.next_frame()? {
            let Frame::Packet(packet) = frame else {
                return Err(LinkError::Protocol(
                    "expected CONNACK, got an oversized PUBLISH".into(),
                ));
            };
            return match packet {
                Packet::ConnAck(ack) if ack.code == ConnectReturnCode::Success => {
                    Ok((link, ack.session_present))
                }
                Packet::ConnAck(ack) => Err(LinkError::Refused(ack.code)),
                other => Err(LinkError::Protocol(format!(
                    "expected CONNACK, got {}",
                    packet_name(&other)
                ))),
            };
        }
        link.fill().await?;
    }
}

/// Reads during which our ACKs go out at once (TCP_QUICKACK re-armed after each read, since
/// Linux leaves quick-ack mode by itself): enough for the TLS handshake and CONNACK.
const QUICKACK_READS: u8 = 8;

/// A TCP stream that acknowledges at once during its first reads. A broker with Nagle on (the
/// mosquitto default) sends its TLS session tickets and then the CONNACK as two small writes;
/// the second waits for our ACK of the first, which Linux would otherwise delay by ~40 ms, and a
/// one-shot publish took 53 ms instead of under 10 (docs/benchmarks.md).
struct QuickAck {
    tcp: TcpStream,
    reads_left: u8,
}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let polled = std::pin::Pin::new(&mut self.tcp).poll_read(cx, buf);
        if polled.is_ready() && self.reads_left > 0 {
            self.reads_left -= 1;
            // Best effort: without it the connection works, only slower to start.
            let _ = self.tcp.set_quickack(true);
        }
        polled
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// How long one address may try alone before the next one starts beside it (RFC 8305
/// "Connection Attempt Delay").
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Connects to the first address that answers ("Happy Eyeballs", RFC 8305, simplified):
/// addresses alternate between IPv6 and IPv4, and each gets `ATTEMPT_DELAY` before the next
/// one starts beside it, so one address that drops packets does not hold up the others for the
/// whole connect timeout.
async fn tcp_connect(
    host: &str,
    port: u16,
    bind: Option<std::net::IpAddr>,
) -> Result<TcpStream, LinkError> {
    let mut addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(LinkError::Dns)?
        .collect();
    if addrs.is_empty() {
        return Err(LinkError::Dns(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the name resolved to no address",
        )));
    }
    if let Some(local) = bind {
        addrs.retain(|a| a.is_ipv4() == local.is_ipv4());
        if addrs.is_empty() {
            return Err(LinkError::Io(std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!(
                    "{host} has no {} address to reach from the source address {local}",
                    if local.is_ipv4() { "IPv4" } else { "IPv6" }
                ),
            )));
        }
    }
    connect_first(interleave(addrs), bind).await
}

/// A TCP connection to `addr`, from `bind` (any port) when given.
async fn connect_from(
    addr: std::net::SocketAddr,
    bind: Option<std::net::IpAddr>,
) -> std::io::Result<TcpStream> {
    let Some(local) = bind else {
        return TcpStream::connect(addr).await;
    };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket
        .bind(std::net::SocketAddr::new(local, 0))
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot bind the source address {local}: {e}"),
            )
        })?;
    socket.connect(addr).await
}

/// Tries `addrs` in order, each `ATTEMPT_DELAY` after the one before (or at once when the one
/// before failed); the first connection wins.
async fn connect_first(
    addrs: Vec<std::net::SocketAddr>,
    bind: Option<std::net::IpAddr>,
) -> Result<TcpStream, LinkError> {
    let mut queue = addrs.into_iter();
    let mut attempts = tokio::task::JoinSet::new();
    let mut last = None;
    if let Some(a) = queue.next() {
        attempts.spawn(connect_from(a, bind));
    }
    loop {
        let more = queue.len() > 0;
        tokio::select! {
            done = attempts.join_next() => match done {
                Some(Ok(Ok(s))) => {
                    attempts.abort_all();
                    // A lone CONNECT or PUBLISH must not wait for the peer's delayed ACK (~40 ms).
                    s.set_nodelay(true)?;
                    let _ = s.set_quickack(true);
                    return Ok(s);
                }
                Some(Ok(Err(e))) => {
                    last = Some(e);
                    if let Some(a) = queue.next() {
                        attempts.spawn(connect_from(a, bind));
                    }
                }
                Some(Err(_)) => {}
                None => break,
            },
            () = tokio::time::sleep(ATTEMPT_DELAY), if more => {
                if let Some(a) = queue.next() {
                    attempts.spawn(connect_from(a, bind));
                }
            }
        }
    }
    Err(LinkError::Io(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "no address could be tried",
        )
    })))
}

/// IPv6 and IPv4 addresses in turn, starting with the family the resolver put first.
fn interleave(addrs: Vec<std::net::SocketAddr>) -> Vec<std::net::SocketAddr> {
    let first_v6 = addrs.first().is_some_and(std::net::SocketAddr::is_ipv6);
    let (mut a, mut b): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|x| x.is_ipv6() == first_v6);
    let mut out = Vec::with_capacity(a.len() + b.len());
    a.reverse();
    b.reverse();
    loop {
        match (a.pop(), b.pop()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

async fn websocket(url: &str, stream: Box<dyn Stream>) -> Result<Box<dyn Stream>, LinkError> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tungstenite::http::HeaderValue::from_static("mqtt"),
    );
    let (ws, response) = async_tungstenite::tokio::client_async(request, stream).await?;
    let agreed = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned());
    if agreed.as_deref() != Some("mqtt") {
        return Err(LinkError::Subprotocol(agreed));
    }
    Ok(Box::new(ws_stream_tungstenite::WsStream::new(ws)))
}

impl Link {
    /// Reads whatever the broker sent next (at least one byte). Cancel-safe: bytes are only
    /// taken from the socket when the read completes.
    pub(crate) async fn fill(&mut self) -> Result<(), LinkError> {
        self.make_room();
        match self.io.read_buf(&mut self.rbuf).await? {
            0 => Err(LinkError::Closed),
            _ => Ok(()),
        }
    }

    fn make_room(&mut self) {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
    }

    /// After DISCONNECT: waits (at most `limit`) for the broker to close the connection, so
    /// everything written before it (the last PUBACKs) was taken before this session is gone,
    /// and a new connection with the same client id cannot overtake it.
    pub(crate) async fn wait_closed(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            loop {
                self.rbuf.clear();
                self.make_room();
                match self.io.read_buf(&mut self.rbuf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }

    /// Reads what is already there, without waiting.
    pub(crate) fn fill_now(&mut self) -> Result<(), LinkError> {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            self.make_room();
            let read = std::pin::pin!(self.io.read_buf(&mut self.rbuf)).poll(&mut cx);
            match read {
                Poll::Ready(Ok(0)) => return Err(LinkError::Closed),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Err(e.into()),
                Poll::Pending => return Ok(()),
            }
        }
    }

    /// The next complete packet in the read buffer, if any. A PUBLISH over the packet limit
    /// comes out as soon as its header and the first bytes of its payload are in; the rest of
    /// it is discarded as it arrives, so it is never held in memory whole.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, LinkError> {
        if self.skip > 0 {
            let n = self.skip.min(self.rbuf.len());
            self.rbuf.advance(n);
            self.skip -= n;
            if self.skip > 0 {
                return Ok(None);
            }
        }
        next_frame(&mut self.rbuf, self.max_packet, &mut self.skip)
    }

    /// Encodes `packet` into the write buffer.
    pub(crate) fn queue(&mut self, packet: &Packet) -> Result<(), LinkError> {
        encode(packet, &mut self.wbuf)
    }

    /// Writes the write buffer out in one go.
    pub(crate) async fn flush(&mut self) -> Result<(), LinkError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let limit = self.write_limit;
        let io = &mut self.io;
        let wbuf = &self.wbuf;
        tokio::time::timeout(limit, async {
            io.write_all(wbuf).await?;
            io.flush().await
        })
        .await
        .map_err(|_| LinkError::WriteStalled(limit.as_secs()))??;
        self.wbuf.clear();
        Ok(())
    }
}

/// What the read buffer yields.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A whole packet.
    Packet(Packet),
    /// A PUBLISH over the packet limit, read up to the first bytes of its payload.
    Oversized(OversizedPublish),
}

/// The head of a PUBLISH too large to accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OversizedPublish {
    pub topic: String,
    pub qos: u8,
    pub pkid: u16,
    pub retain: bool,
    pub dup: bool,
    /// Payload bytes of the whole message.
    pub size: usize,
    /// The first bytes of the payload.
    pub prefix: Bytes,
}

/// The first byte and the remaining length of the packet at the start of `buf`, with the
/// header's length; `None` while the header is incomplete.
fn fixed_header(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, LinkError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut len = 0usize;
    for (i, &b) in buf.iter().skip(1).take(4).enumerate() {
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((first, len, i + 2)));
        }
    }
    if buf.len() >= 5 {
        return Err(LinkError::Protocol(
            "malformed packet from the broker: its remaining length runs past four bytes".into(),
        ));
    }
    Ok(None)
}

/// Takes the next frame off `buf`, if there is one; bytes from the network, so anything may be
/// there (see the property tests below). Sets `skip` to the bytes of an oversized PUBLISH that
/// are not in `buf` yet.
fn next_frame(
    buf: &mut BytesMut,
    max_packet: usize,
    skip: &mut usize,
) -> Result<Option<Frame>, LinkError> {
    let Some((first, remaining, header_len)) = fixed_header(buf)? else {
        return Ok(None);
    };
    if remaining <= max_packet {
        return match Packet::read(buf, max_packet) {
            Ok(p) => Ok(Some(Frame::Packet(p))),
            Err(mqttbytes::Error::InsufficientBytes(n)) => {
                buf.reserve(n);
                Ok(None)
            }
            Err(e) => Err(LinkError::Protocol(format!(
                "malformed packet from the broker: {e}"
            ))),
        };
    }
    if first >> 4 != 3 {
        return Err(LinkError::Protocol(format!(
            "the broker sent a control packet (type {}) of {remaining} bytes, over the limit of {max_packet}",
            first >> 4
        )));
    }
    let qos = (first >> 1) & 0b11;
    if qos > 2 {
        return Err(LinkError::Protocol(
            "malformed packet from the broker: PUBLISH with QoS 3".into(),
        ));
    }
    let body = &buf[header_len..];
    let Some(topic_len) = body
        .get(..2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    else {
        return Ok(None);
    };
    let var_len = 2 + topic_len + if qos > 0 { 2 } else { 0 };
    if var_len > remaining {
        return Err(LinkError::Protocol(
            "malformed packet from the broker: PUBLISH topic runs past the packet".into(),
        ));
    }
    let size = remaining - var_len;
    let head = header_len + var_len + size.min(OVERSIZED_PREFIX);
    if buf.len() < head {
        buf.reserve(head - buf.len());
        return Ok(None);
    }
    let topic = std::str::from_utf8(&buf[header_len + 2..header_len + 2 + topic_len])
        .map_err(|_| {
            LinkError::Protocol("malformed packet from the broker: topic is not UTF-8".into())
        })?
        .to_owned();
    let pkid = if qos > 0 {
        let at = header_len + 2 + topic_len;
        u16::from_be_bytes([buf[at], buf[at + 1]])
    } else {
        0
    };
    let prefix = Bytes::copy_from_slice(&buf[header_len + var_len..head]);
    let total = header_len + remaining;
    let here = total.min(buf.len());
    buf.advance(here);
    *skip = total - here;
    Ok(Some(Frame::Oversized(OversizedPublish {
        topic,
        qos,
        pkid,
        retain: first & 1 != 0,
        dup: first & 0b1000 != 0,
        size,
        prefix,
    })))
}

/// Encodes one packet onto `buf`.
pub(crate) fn encode(packet: &Packet, buf: &mut BytesMut) -> Result<(), LinkError> {
    packet
        .write(buf, usize::MAX)
        .map(|_| ())
        .map_err(|e| LinkError::Protocol(format!("cannot encode {}: {e}", packet_name(packet))))
}

pub(crate) fn packet_name(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rumqttc::mqttbytes::QoS;
    use rumqttc::mqttbytes::v4::{PubAck, Publish};

    /// Feeds `wire` in two pieces cut at `cut`, as a socket would, and collects the frames.
    fn frames_cut_at(wire: &[u8], cut: usize, max: usize) -> Vec<Frame> {
        let mut buf = BytesMut::new();
        let mut skip = 0;
        let mut got = Vec::new();
        for piece in [&wire[..cut], &wire[cut..]] {
            buf.extend_from_slice(piece);
            loop {
                if skip > 0 {
                    let n = skip.min(buf.len());
                    buf.advance(n);
                    skip -= n;
                    if skip > 0 {
                        break;
                    }
                }
                match next_frame(&mut buf, max, &mut skip).unwrap() {
                    Some(f) => got.push(f),
                    None => break,
                }
            }
        }
        got
    }

    #[test]
    fn packets_split_anywhere_come_out_whole_and_in_order() {
        let mut wire = BytesMut::new();
        let mut p = Publish::new("a/b", QoS::AtLeastOnce, vec![7u8; 300]);
        p.pkid = 9;
        encode(&Packet::Publish(p.clone()), &mut wire).unwrap();
        encode(&Packet::PubAck(PubAck::new(4)), &mut wire).unwrap();
        for cut in 0..wire.len() {
            assert_eq!(
                frames_cut_at(&wire, cut, 1024),
                vec![
                    Frame::Packet(Packet::Publish(p.clone())),
                    Frame::Packet(Packet::PubAck(PubAck::new(4)))
                ]
            );
        }
    }

    #[test]
    fn an_oversized_publish_is_skipped_whatever_the_cut_and_the_next_packet_survives() {
        let mut wire = BytesMut::new();
        let payload: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let mut big = Publish::new("big/one", QoS::AtLeastOnce, payload.clone());
        big.pkid = 77;
        big.dup = true;
        encode(&Packet::Publish(big), &mut wire).unwrap();
        encode(&Packet::PubAck(PubAck::new(5)), &mut wire).unwrap();
        let expected = vec![
            Frame::Oversized(OversizedPublish {
                topic: "big/one".into(),
                qos: 1,
                pkid: 77,
                retain: false,
                dup: true,
                size: 5000,
                prefix: Bytes::copy_from_slice(&payload[..OVERSIZED_PREFIX]),
            }),
            Frame::Packet(Packet::PubAck(PubAck::new(5))),
        ];
        for cut in (0..wire.len()).step_by(7) {
            assert_eq!(frames_cut_at(&wire, cut, 2000), expected, "cut at {cut}");
        }
    }

    #[test]
    fn an_oversized_control_packet_is_a_protocol_error() {
        // A SUBACK claiming 3000 bytes of return codes.
        let mut wire = vec![0x90, 0xb8, 0x17, 0, 1];
        wire.extend(std::iter::repeat_n(0u8, 3000 - 2));
        let mut buf = BytesMut::from(&wire[..]);
        let err = next_frame(&mut buf, 1000, &mut 0).unwrap_err().to_string();
        assert!(err.contains("over the limit of 1000"), "{err}");
    }

    #[test]
    fn addresses_alternate_families_starting_with_the_first() {
        let v6 = |p: u16| std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, p));
        let v4 = |p: u16| std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, p));
        assert_eq!(
            interleave(vec![v6(1), v6(2), v6(3), v4(4)]),
            vec![v6(1), v4(4), v6(2), v6(3)]
        );
        assert_eq!(
            interleave(vec![v4(1), v4(2), v6(3), v6(4)]),
            vec![v4(1), v6(3), v4(2), v6(4)]
        );
    }

    #[tokio::test]
    async fn a_source_address_is_bound_before_connecting_and_a_family_mismatch_is_named() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        for source in ["127.0.0.2", "127.0.0.3"] {
            let ip: std::net::IpAddr = source.parse().unwrap();
            let _s = tcp_connect("127.0.0.1", port, Some(ip)).await.unwrap();
            let (_, peer) = listener.accept().await.unwrap();
            assert_eq!(peer.ip(), ip, "the broker sees the bound source address");
        }
        let e = tcp_connect("127.0.0.1", port, Some("::1".parse().unwrap()))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("no IPv6 address") && e.contains("::1"), "{e}");
    }

    #[tokio::test]
    async fn an_address_that_never_answers_does_not_hold_up_the_next() {
        // A listener with a backlog of 0 and one connection waiting in it drops further SYNs:
        // connecting to it hangs, as to a host that drops packets.
        let hole =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        hole.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        hole.listen(0).unwrap();
        let hole_addr = hole.local_addr().unwrap().as_socket().unwrap();
        let _filler = std::net::TcpStream::connect(hole_addr).unwrap();
        let good = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good_addr = good.local_addr().unwrap();
        let start = std::time::Instant::now();
        let s = tokio::time::timeout(
            Duration::from_secs(20),
            connect_first(vec![hole_addr, good_addr], None),
        )
        .await
        .expect("the second address was tried while the first hung")
        .unwrap();
        assert_eq!(s.peer_addr().unwrap(), good_addr);
        assert!(
            start.elapsed() >= ATTEMPT_DELAY,
            "the second address waited its turn"
        );
    }

    proptest! {
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 0usize..600) {
            let mut buf = BytesMut::from(&bytes[..]);
            let mut skip = 0;
            for _ in 0..64 {
                match next_frame(&mut buf, max, &mut skip) {
                    Ok(Some(_)) if skip == 0 => {}
                    Ok(_) | Err(_) => break,
                }
            }
        }
    }
}
