//! `--port 443` must offer ALPN `x-amzn-mqtt-ca` (AWS IoT refuses MQTT with client
//! certificates on 443 without it). A small rustls server records what the agent's TLS
//! handshake offers; the port is a free one, since 443 itself cannot be bound in a test.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdm::agent::{Provisioned, connect};
use hdm::protocol::store::Properties;
use tokio_rustls::rustls;
use transport::endpoint::{Endpoint, Scheme};
use transport::{Outbox, Session};

type Seen = Arc<Mutex<Option<(Option<Vec<u8>>, Option<String>)>>>;

async fn tls_server(pki: &testkit::Pki) -> (u16, Seen) {
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(pki.server_cert())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(pki.server_key()).unwrap();
    let mut server = rustls::ServerConfig::builder_with_provider(transport::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    server.alpn_protocols = vec![b"x-amzn-mqtt-ca".to_vec(), b"mqtt".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::new(Mutex::new(None));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        if let Ok(tls) = acceptor.accept(tcp).await {
            let (_, conn) = tls.get_ref();
            *seen2.lock().unwrap() = Some((
                conn.alpn_protocol().map(<[u8]>::to_vec),
                conn.server_name().map(str::to_owned),
            ));
            std::future::pending::<()>().await;
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_443_offers_the_aws_alpn_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let pki = tokio::task::block_in_place(|| testkit::Pki::generate(dir.path()));
    let client = tokio::task::block_in_place(|| pki.client("hdm-0123456789ab"));
    let device = Provisioned {
        dir: dir.path().to_owned(),
        thing: "hdm-0123456789ab".into(),
        root_ca: pki.ca_cert(),
        cert: client.cert,
        key: client.key,
        org_id: None,
        properties: Some(Properties {
            mqtt_endpoint: "localhost".into(),
            mqtt_port: 8883,
            ..Properties::default()
        }),
    };
    let mut opts = connect::session_options(&device, Some(443)).unwrap();
    assert_eq!(opts.endpoint.port(), 443);
    assert_eq!(opts.tls.alpn, vec![connect::ALPN_MQTT_CA.to_owned()]);

    // Same options, pointed at the recording server.
    let (port, seen) = tls_server(&pki).await;
    opts.endpoint = Endpoint::new(Scheme::Mqtts, "localhost", port, "");
    opts.connect_timeout = Duration::from_secs(1);
    let r = Session::start(opts, Outbox::memory(1)).await;
    assert!(r.is_err(), "the server never answers CONNECT");
    let seen = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the server saw a TLS handshake");
    assert_eq!(seen.0.as_deref(), Some(&b"x-amzn-mqtt-ca"[..]));
    assert_eq!(seen.1.as_deref(), Some("localhost"));
}
