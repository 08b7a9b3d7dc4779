//! Connecting with each kind of authentication, and each failure reported as a sentence.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use testkit::{Broker, BrokerOpts, KeyFormat, Pki, Subscriber};
use transport::session::StartError;
use transport::{ConnectError, Message, Outbox, Session};

use crate::{blocking, broker, opts};

async fn connect_err(o: transport::SessionOptions) -> ConnectError {
    match Session::start(o, Outbox::memory(10)).await {
        Err(StartError::Connect(e)) => e,
        Err(e) => panic!("expected a connection error, got {e}"),
        Ok(_) => panic!("expected the connection to fail"),
    }
}

/// Session options for each way in: plain TCP, WebSocket, mTLS, TLS with a password.
fn every_kind(b: &Broker) -> Vec<(&'static str, transport::SessionOptions)> {
    let client = b.pki().client("device-1");
    let mut kinds = vec![("plain", opts(&b.url_plain())), ("ws", opts(&b.url_ws()))];
    let mut m = opts(&b.url_mtls());
    m.tls.ca_files = vec![b.pki().ca_cert()];
    m.tls.client_cert = Some(client.cert.clone());
    m.tls.client_key = Some(client.key.clone());
    kinds.push(("mtls", m));
    let mut p = opts(&b.url_tls_password());
    p.tls.ca_files = vec![b.pki().ca_cert()];
    let (user, pass) = b.user();
    p.credentials = Some(transport::auth::Credentials {
        username: user.into(),
        password: Some(pass.into()),
    });
    kinds.push(("password", p));
    kinds
}

/// Every stream type carries a burst both ways through one session: many packets per write and
/// per read (the connection loop batches them) over TCP, WebSocket frames and TLS records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_carries_two_thousand_messages_both_ways() {
    const N: u64 = 2_000;
    let b = broker(BrokerOpts::new().max_queued(100_000).max_inflight(1000));
    for (kind, o) in every_kind(&b) {
        let (session, mut incoming) = Session::start(o, Outbox::memory(N as usize))
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let filter = format!("burst/{kind}/#");
        session
            .subscribe(&[(filter, transport::Qos::AtLeastOnce)])
            .await
            .unwrap();
        // Read while publishing: a full incoming queue stops the session reading its socket
        // (back-pressure), and with it the PUBACKs the publishes wait for.
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while (got.len() as u64) < N {
                let Ok(Some(m)) =
                    tokio::time::timeout(Duration::from_secs(15), incoming.recv()).await
                else {
                    break;
                };
                got.push(String::from_utf8_lossy(&m.payload).parse::<u64>().unwrap());
            }
            got
        });
        for n in 0..N {
            session
                .publish(Message::new(format!("burst/{kind}/n"), n.to_string()))
                .await
                .unwrap();
        }
        assert_eq!(session.flush(Duration::from_secs(30)).await, 0, "{kind}");
        let got = reader.await.unwrap();
        assert_eq!(
            got,
            (0..N).collect::<Vec<_>>(),
            "{kind}: all back, in order"
        );
        session.close(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_auth_kind_connects_and_gets_a_publish_confirmed() {
    let b = broker(BrokerOpts::new());
    let sub = blocking(|| Subscriber::start(&b, "auth/#", 1, None));
    for (kind, o) in every_kind(&b) {
        let (session, _in) = Session::start(o, Outbox::memory(10))
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let d = session
            .publish(Message::new(format!("auth/{kind}"), kind))
            .await
            .unwrap();
        d.confirmed()
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        session.close(Duration::from_secs(1)).await;
    }
    let got = blocking(|| sub.wait_for_count(4, Duration::from_secs(10)));
    let mut topics: Vec<_> = got.iter().map(|(t, _)| t.as_str()).collect();
    topics.sort_unstable();
    assert_eq!(
        topics,
        ["auth/mtls", "auth/password", "auth/plain", "auth/ws"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs1_and_sec1_keys_are_accepted() {
    let b = broker(BrokerOpts::new());
    for fmt in [KeyFormat::Sec1, KeyFormat::Pkcs1] {
        let c = blocking(|| b.pki().client_with_key_format("device-k", fmt));
        let mut o = opts(&b.url_mtls());
        o.tls.ca_files = vec![b.pki().ca_cert()];
        o.tls.client_cert = Some(c.cert);
        o.tls.client_key = Some(c.key);
        let (s, _) = Session::start(o, Outbox::memory(1))
            .await
            .unwrap_or_else(|e| panic!("{fmt:?}: {e}"));
        s.close(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_says_the_server_certificate_is_untrusted() {
    let b = broker(BrokerOpts::new());
    let other = tempfile::tempdir().unwrap();
    let other = blocking(|| Pki::generate(other.path()));
    let mut o = opts(&b.url_tls_password());
    o.tls.ca_files = vec![other.ca_cert()];
    let err = connect_err(o).await;
    assert!(
        matches!(err, ConnectError::ServerCertificate { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("unknown issuer") && msg.contains("--cafile"),
        "{msg}"
    );
    assert!(err.is_permanent());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_for_another_host_name_is_named() {
    // The test PKI's server certificate lists localhost, 127.0.0.1 and ::1, not 127.0.0.2.
    let dir = tempfile::tempdir().unwrap();
    let pki = blocking(|| Pki::generate(dir.path()));
    let (port, _seen) = tls_server(&pki, "127.0.0.2:0").await;
    let mut o = opts(&format!("mqtts://127.0.0.2:{port}"));
    o.tls.ca_files = vec![pki.ca_cert()];
    let err = connect_err(o).await;
    let msg = err.to_string();
    assert!(
        matches!(err, ConnectError::ServerCertificate { .. }) && msg.contains("`127.0.0.2`"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_problems_are_reported_as_rejected() {
    let b = broker(BrokerOpts::new());
    let other = tempfile::tempdir().unwrap();
    let other = blocking(|| Pki::generate(other.path()));
    let foreign = blocking(|| other.client("intruder"));
    let expired = blocking(|| b.pki().expired_client("old-device"));
    for (case, cert) in [
        ("foreign CA", Some(foreign)),
        ("expired", Some(expired)),
        ("none", None),
    ] {
        let mut o = opts(&b.url_mtls());
        o.tls.ca_files = vec![b.pki().ca_cert()];
        if let Some(c) = cert {
            o.tls.client_cert = Some(c.cert);
            o.tls.client_key = Some(c.key);
        }
        let err = connect_err(o).await;
        let msg = err.to_string();
        eprintln!("{case}: {msg}");
        assert!(
            matches!(
                err,
                ConnectError::ClientCertificate { .. } | ConnectError::Tls { .. }
            ),
            "{case}: expected a client-certificate sentence, got {err:?}"
        );
        assert!(err.is_permanent(), "{case}");
        match case {
            "foreign CA" => assert!(msg.contains("CA"), "{case}: {msg}"),
            "expired" => assert!(msg.contains("expired"), "{case}: {msg}"),
            _ => assert!(msg.contains("--cert"), "{case}: {msg}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_password_gets_the_connack_meaning_and_the_flags_to_check() {
    let b = broker(BrokerOpts::new());
    let mut o = opts(&b.url_tls_password());
    o.tls.ca_files = vec![b.pki().ca_cert()];
    o.credentials = Some(transport::auth::Credentials {
        username: b.user().0.into(),
        password: Some("wrong".into()),
    });
    let err = connect_err(o).await;
    let msg = err.to_string();
    assert!(
        matches!(err, ConnectError::Refused { code: 4 | 5, .. }),
        "{err:?}"
    );
    assert!(
        msg.contains("--password-env") && msg.contains("CONNACK code"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_failures_each_have_their_sentence() {
    let port = testkit::free_port();
    let err = connect_err(opts(&format!("mqtt://127.0.0.1:{port}"))).await;
    assert!(
        matches!(err, ConnectError::NotListening { .. })
            && err.to_string().contains("is the broker running"),
        "{err}"
    );
    assert!(!err.is_permanent());

    let err = connect_err(opts("mqtt://no-such-host.invalid:1883")).await;
    assert!(
        matches!(err, ConnectError::Dns { ref host, .. } if host == "no-such-host.invalid"),
        "{err:?}"
    );

    // A listener that never accepts: TCP completes in the backlog, CONNACK never comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut o = opts(&format!(
        "mqtt://127.0.0.1:{}",
        silent.local_addr().unwrap().port()
    ));
    o.connect_timeout = Duration::from_secs(1);
    let err = connect_err(o).await;
    assert!(
        matches!(err, ConnectError::Timeout { secs: 1, .. }),
        "{err:?}"
    );

    let b = broker(BrokerOpts::new());
    let url = format!("mqtts://127.0.0.1:{}", b.port_plain());
    let mut o = opts(&url);
    o.tls.ca_files = vec![b.pki().ca_cert()];
    let err = connect_err(o).await;
    assert!(err.to_string().contains("TLS"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_path_that_is_not_mqtt_is_explained() {
    let b = broker(BrokerOpts::new());
    // mosquitto's WebSocket listener serves any path; a plain MQTT port is no WebSocket server.
    let url = format!("ws://127.0.0.1:{}/mqtt", b.port_plain());
    let err = connect_err(opts(&url)).await;
    assert!(
        err.to_string().contains(&b.port_plain().to_string()),
        "{err}"
    );
}

type Seen = Arc<Mutex<Option<(Option<Vec<u8>>, Option<String>)>>>;

/// A TLS server (the test PKI's server certificate, ALPN `x-amzn-mqtt-ca`) that records the
/// ALPN and SNI of the first handshake and then says nothing; mosquitto ignores ALPN, so this
/// is how ALPN is observed.
async fn tls_server(pki: &Pki, addr: &str) -> (u16, Seen) {
    use tokio_rustls::rustls;
    let chain: Vec<_> = rustls::pki_types::pem::PemObject::pem_file_iter(pki.server_cert())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls::pki_types::pem::PemObject::from_pem_file(pki.server_key()).unwrap();
    let mut server = rustls::ServerConfig::builder_with_provider(transport::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    server.alpn_protocols = vec![b"x-amzn-mqtt-ca".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
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
async fn alpn_and_sni_are_offered() {
    let dir = tempfile::tempdir().unwrap();
    let pki = blocking(|| Pki::generate(dir.path()));
    let (port, seen) = tls_server(&pki, "127.0.0.1:0").await;
    let mut o = opts(&format!("mqtts://localhost:{port}"));
    o.tls.ca_files = vec![pki.ca_cert()];
    o.tls.alpn = vec!["x-amzn-mqtt-ca".into()];
    o.connect_timeout = Duration::from_secs(1);
    let err = connect_err(o).await; // the server never answers CONNECT
    assert!(matches!(err, ConnectError::Timeout { .. }), "{err:?}");
    let seen = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the TLS server saw a handshake");
    assert_eq!(seen.0.as_deref(), Some(&b"x-amzn-mqtt-ca"[..]));
    assert_eq!(seen.1.as_deref(), Some("localhost"));
}
