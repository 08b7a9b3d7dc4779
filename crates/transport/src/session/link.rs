//! One connection to the broker: the byte stream (TCP with NODELAY, TLS over rustls, WebSocket
//! or WebSocket over TLS with the `mqtt` subprotocol), the CONNECT/CONNACK exchange, and MQTT
//! framing over it. Packets are read out of one buffer filled by large reads, and written from one
//! buffer in a single write: a thousand PUBACKs or PUBLISHes leave in one syscall, where a
//! client that flushes per packet (rumqttc 0.25) makes a thousand and wakes the broker as often.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
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
use crate::endpoint::Scheme;

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
        tcp: tcp_connect(ep.host(), ep.port()).await?,
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
            c.password.clone().unwrap_or_default(),
        ));
    }
    link.queue(&Packet::Connect(connect))?;
    link.flush().await?;
    loop {
        if let Some(packet) = link.next_packet()? {
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

async fn tcp_connect(host: &str, port: u16) -> Result<TcpStream, LinkError> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(LinkError::Dns)?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                // A lone CONNECT or PUBLISH must not wait for the peer's delayed ACK (~40 ms).
                s.set_nodelay(true)?;
                let _ = s.set_quickack(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(
        || {
            LinkError::Dns(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the name resolved to no address",
            ))
        },
        LinkError::Io,
    ))
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

    /// The next complete packet in the read buffer, if any.
    pub(crate) fn next_packet(&mut self) -> Result<Option<Packet>, LinkError> {
        next_packet(&mut self.rbuf, self.max_packet)
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

/// Takes the next complete packet off `buf`, if there is one; bytes from the network, so
/// anything may be there (see the property test below).
fn next_packet(buf: &mut BytesMut, max_packet: usize) -> Result<Option<Packet>, LinkError> {
    match Packet::read(buf, max_packet) {
        Ok(p) => Ok(Some(p)),
        Err(mqttbytes::Error::InsufficientBytes(n)) => {
            buf.reserve(n);
            Ok(None)
        }
        Err(mqttbytes::Error::PayloadSizeLimitExceeded(size)) => Err(LinkError::Protocol(format!(
            "the broker sent a packet of {size} bytes, over the limit of {max_packet} (raise the maximum packet size)"
        ))),
        Err(e) => Err(LinkError::Protocol(format!(
            "malformed packet from the broker: {e}"
        ))),
    }
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

    #[test]
    fn packets_split_anywhere_come_out_whole_and_in_order() {
        let mut wire = BytesMut::new();
        let mut p = Publish::new("a/b", QoS::AtLeastOnce, vec![7u8; 300]);
        p.pkid = 9;
        encode(&Packet::Publish(p.clone()), &mut wire).unwrap();
        encode(&Packet::PubAck(PubAck::new(4)), &mut wire).unwrap();
        for cut in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(pkt) = next_packet(&mut buf, 1024).unwrap() {
                got.push(pkt);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(pkt) = next_packet(&mut buf, 1024).unwrap() {
                got.push(pkt);
            }
            assert_eq!(
                got,
                vec![Packet::Publish(p.clone()), Packet::PubAck(PubAck::new(4))]
            );
        }
    }

    #[test]
    fn an_oversized_packet_is_refused_with_the_limit() {
        let mut buf = BytesMut::new();
        encode(
            &Packet::Publish(Publish::new("t", QoS::AtMostOnce, vec![0u8; 2000])),
            &mut buf,
        )
        .unwrap();
        let err = next_packet(&mut buf, 1000).unwrap_err().to_string();
        assert!(err.contains("over the limit of 1000"), "{err}");
    }

    proptest! {
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = BytesMut::from(&bytes[..]);
            for _ in 0..64 {
                match next_packet(&mut buf, 4096) {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
