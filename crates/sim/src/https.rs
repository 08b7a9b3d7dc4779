//! The HTTPS endpoints of the local cloud: every cloud side's router nested under
//! `/<cloud name>`, served over TLS with the development server certificate on loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use cloudkit::CloudSide;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::SimError;

/// The running HTTPS server.
pub struct HttpsServer {
    /// `https://localhost:PORT`.
    pub base: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl HttpsServer {
    /// Serves the routers of `clouds` (those that have one) on a free port; `None` when none has.
    pub async fn start(
        clouds: &[Arc<dyn CloudSide>],
        cert: &Path,
        key: &Path,
    ) -> Result<Option<Self>, SimError> {
        Self::start_on(clouds, cert, key, 0).await
    }

    /// [`HttpsServer::start`] on `port` of 127.0.0.1 (0: any free port).
    pub async fn start_on(
        clouds: &[Arc<dyn CloudSide>],
        cert: &Path,
        key: &Path,
        port: u16,
    ) -> Result<Option<Self>, SimError> {
        let mut app = axum::Router::new();
        let mut any = false;
        for c in clouds {
            if let Some(r) = c.router() {
                app = app.nest(&format!("/{}", c.name()), r);
                any = true;
            }
        }
        if !any {
            return Ok(None);
        }
        let mut cfg = (*transport::tls::server_config(cert, key, None)
            .map_err(|e| SimError::Setup(e.to_string()))?)
        .clone();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Io {
                op: "listen on",
                path: addr.to_string().into(),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| SimError::Io {
                op: "read the address of",
                path: "the HTTPS listener".into(),
                source,
            })?
            .port();
        let (stop, mut stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = stop_rx.wait_for(|s| *s) => break,
                    accepted = listener.accept() => {
                        let Ok((tcp, peer)) = accepted else { continue };
                        let (acceptor, app) = (acceptor.clone(), app.clone());
                        conns.spawn(async move {
                            let tls = match acceptor.accept(tcp).await {
                                Ok(t) => t,
                                Err(e) => {
                                    tracing::info!("HTTPS: TLS handshake with {peer} failed: {e}");
                                    return;
                                }
                            };
                            let service = TowerToHyperService::new(app);
                            if let Err(e) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(tls), service)
                                .await
                            {
                                tracing::debug!("HTTPS connection from {peer} ended: {e}");
                            }
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
            conns.abort_all();
        });
        Ok(Some(HttpsServer {
            base: format!("https://localhost:{port}"),
            stop,
            task,
        }))
    }

    /// Stops serving.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
