//! TLS front listeners of the embedded broker: terminate TLS (with or without a required client
//! certificate), note where the connection came from, and forward the bytes to the broker's
//! loopback listener. TLS is ours, so the certificate identity reaches the access policies.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::gate::{Origin, Registry};
use cloudkit::access::ListenerKind;

pub(crate) struct Front {
    pub(crate) listener: TcpListener,
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) upstream: SocketAddr,
    pub(crate) kind: ListenerKind,
    pub(crate) registry: Arc<Registry>,
}

impl Front {
    pub(crate) async fn serve(self, mut stop: watch::Receiver<bool>) {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let (acceptor, upstream, kind, registry) =
                            (self.acceptor.clone(), self.upstream, self.kind, self.registry.clone());
                        conns.spawn(async move { forward(tcp, peer, acceptor, upstream, kind, registry).await });
                    }
                    Err(e) => tracing::warn!("embedded broker: accept failed: {e}"),
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        conns.abort_all();
    }
}

async fn forward(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    upstream: SocketAddr,
    kind: ListenerKind,
    registry: Arc<Registry>,
) {
    let _ = tcp.set_nodelay(true);
    let mut tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(e) => {
            tracing::info!("embedded broker: TLS handshake with {peer} failed: {e}");
            return;
        }
    };
    let cert_cn = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| transport::tls::common_name(c));
    let mut up = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("embedded broker: cannot reach its own listener {upstream}: {e}");
            return;
        }
    };
    let _ = up.set_nodelay(true);
    let Ok(local) = up.local_addr() else { return };
    registry.insert(local, Origin { kind, cert_cn });
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
    registry.remove(&local);
}
