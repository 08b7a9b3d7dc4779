//! The HTTP policy against real HTTP servers on loopback (plain and TLS): redirects that change
//! origin lose their secrets, https never falls back to http, methods and bodies follow the
//! status code, and downloads outlive the API timeout, resume with Range and stop when silent.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use rustls_pki_types::pem::PemObject;
use testkit::Pki;
use transport::http::{Http, HttpError, HttpOptions};
use transport::tls::TlsOptions;

/// One request as a server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// What a handler does with a request: write a whole response on the stream.
type Handler = dyn Fn(&Seen, &mut dyn Write) + Send + Sync;

struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// Serves on 127.0.0.1 (TLS with `pki`'s server certificate when given), one thread per
    /// connection, one request per connection.
    fn start(
        pki: Option<&Pki>,
        handler: impl Fn(&Seen, &mut dyn Write) + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tls = pki.map(|p| {
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(p.server_cert())
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = rustls_pki_types::PrivateKeyDer::from_pem_file(p.server_key()).unwrap();
            Arc::new(
                rustls::ServerConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
            )
        });
        let handler: Arc<Handler> = Arc::new(handler);
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(tcp) = conn else { break };
                let (handler, log, tls) = (handler.clone(), log.clone(), tls.clone());
                std::thread::spawn(move || {
                    if let Some(cfg) = tls {
                        let Ok(c) = rustls::ServerConnection::new(cfg) else {
                            return;
                        };
                        let mut s = rustls::StreamOwned::new(c, tcp);
                        serve_one(&mut s, &*handler, &log);
                    } else {
                        let mut s = tcp;
                        serve_one(&mut s, &*handler, &log);
                    }
                });
            }
        });
        Server { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_one<S: Read + Write>(s: &mut S, handler: &Handler, log: &Mutex<Vec<Seen>>) {
    let mut r = BufReader::new(&mut *s);
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = r.read_exact(&mut body);
    drop(r);
    let req = Seen {
        method,
        path,
        headers,
        body,
    };
    log.lock().unwrap().push(req.clone());
    handler(&req, s);
    let _ = s.flush();
}

fn respond(out: &mut dyn Write, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(body);
}

fn http(ca: Option<&Pki>) -> Http {
    let mut tls = TlsOptions::default();
    if let Some(p) = ca {
        tls.ca_files = vec![p.ca_cert()];
    }
    let mut o = HttpOptions::new(tls);
    o.timeout = Duration::from_secs(5);
    o.idle_timeout = Duration::from_secs(2);
    Http::new(o).unwrap()
}

fn secrets() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-api-key", HeaderValue::from_static("key-123"));
    h.insert("authorization", HeaderValue::from_static("Bearer tok-456"));
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_origin_loses_the_secrets_and_one_to_the_same_keeps_them() {
    let other = Server::start(None, |_, out| respond(out, "200 OK", &[], b"other"));
    let other_port = other.port;
    let first = Server::start(None, move |req, out| match req.path.as_str() {
        "/away" => respond(
            out,
            "302 Found",
            &[("Location", format!("http://localhost:{other_port}/landed"))],
            b"",
        ),
        "/near" => respond(
            out,
            "307 Temporary Redirect",
            &[("Location", "/here".into())],
            b"",
        ),
        _ => respond(out, "200 OK", &[], b"here"),
    });
    let h = http(None);
    let url = format!("http://127.0.0.1:{}/away", first.port);
    let resp = h
        .send("test", Method::GET, &url, secrets(), None)
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "other");
    let landed = &other.seen()[0];
    assert_eq!(landed.path, "/landed");
    assert!(
        !landed.headers.contains_key("x-api-key") && !landed.headers.contains_key("authorization"),
        "secrets followed the redirect: {:?}",
        landed.headers
    );
    assert_eq!(first.seen()[0].headers["x-api-key"], "key-123");

    let url = format!("http://127.0.0.1:{}/near", first.port);
    let resp = h
        .send("test", Method::GET, &url, secrets(), None)
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "here");
    let here = first
        .seen()
        .into_iter()
        .find(|s| s.path == "/here")
        .unwrap();
    assert_eq!(
        here.headers["x-api-key"], "key-123",
        "same origin keeps them"
    );
    assert_eq!(here.headers["authorization"], "Bearer tok-456");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_never_redirects_to_http_even_on_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path());
    let plain = Server::start(None, |_, out| respond(out, "200 OK", &[], b"plain"));
    let plain_port = plain.port;
    let secure = Server::start(Some(&pki), move |_, out| {
        respond(
            out,
            "307 Temporary Redirect",
            &[(
                "Location",
                format!("http://127.0.0.1:{plain_port}/x?sig=s3cret"),
            )],
            b"",
        );
    });
    let h = http(Some(&pki));
    let err = h
        .send(
            "HDM configuration",
            Method::GET,
            &format!("https://127.0.0.1:{}/config", secure.port),
            secrets(),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Redirect { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("HDM configuration") && msg.contains("https to plain http"),
        "{msg}"
    );
    assert!(!msg.contains("s3cret"), "no query in the message: {msg}");
    assert!(plain.seen().is_empty(), "nothing was sent in plaintext");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_keep_or_change_the_method_by_status_and_stop_after_five() {
    let s = Server::start(None, |req, out| match req.path.as_str() {
        "/307" => respond(
            out,
            "307 Temporary Redirect",
            &[("Location", "/echo".into())],
            b"",
        ),
        "/303" => respond(out, "303 See Other", &[("Location", "/echo".into())], b""),
        "/loop" => respond(out, "302 Found", &[("Location", "/loop".into())], b""),
        _ => respond(
            out,
            "200 OK",
            &[],
            format!("{} {}", req.method, String::from_utf8_lossy(&req.body)).as_bytes(),
        ),
    });
    let h = http(None);
    let base = format!("http://127.0.0.1:{}", s.port);
    let body = Some(b"payload".to_vec());
    let r = h
        .send(
            "t",
            Method::POST,
            &format!("{base}/307"),
            HeaderMap::new(),
            body.clone(),
        )
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "POST payload");
    let r = h
        .send(
            "t",
            Method::POST,
            &format!("{base}/303"),
            HeaderMap::new(),
            body,
        )
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "GET ");
    let err = h
        .send(
            "t",
            Method::GET,
            &format!("{base}/loop"),
            HeaderMap::new(),
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than 5 redirects"), "{err}");
    assert_eq!(s.seen().iter().filter(|r| r.path == "/loop").count(), 6);
}

fn image() -> Vec<u8> {
    (0..1_000_000u32).map(|i| (i % 253) as u8).collect()
}

/// Writes `body[from..]` in pieces with a pause between them; stops after `cut` bytes if given.
fn trickle(out: &mut dyn Write, body: &[u8], pause: Duration, cut: Option<usize>) {
    for (i, piece) in body.chunks(50_000).enumerate() {
        if cut.is_some_and(|c| i * 50_000 >= c) {
            return;
        }
        if out.write_all(piece).and_then(|()| out.flush()).is_err() {
            return;
        }
        std::thread::sleep(pause);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_outlives_the_api_timeout_and_resumes_where_it_broke() {
    let body = image();
    let served = body.clone();
    let calls = Arc::new(Mutex::new(0u32));
    let n = calls.clone();
    let s = Server::start(None, move |req, out| {
        let call = {
            let mut n = n.lock().unwrap();
            *n += 1;
            *n
        };
        let from: usize = req
            .headers
            .get("range")
            .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
            .unwrap_or(0);
        let rest = &served[from..];
        let (status, extra) = if from > 0 {
            (
                "206 Partial Content",
                vec![(
                    "Content-Range",
                    format!("bytes {from}-{}/{}", served.len() - 1, served.len()),
                )],
            )
        } else {
            ("200 OK", vec![])
        };
        let mut head = format!(
            "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
            rest.len()
        );
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let _ = out.write_all(head.as_bytes());
        // The first answer breaks off at 300 kB; the second takes 1.5 s in all, longer than
        // the 1 s API timeout, with no silence longer than the 2 s idle limit.
        if call == 1 {
            trickle(out, rest, Duration::ZERO, Some(300_000));
        } else {
            trickle(out, rest, Duration::from_millis(100), None);
        }
    });
    let mut o = HttpOptions::new(TlsOptions::default());
    o.timeout = Duration::from_secs(1);
    o.idle_timeout = Duration::from_secs(2);
    let h = Http::new(o).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("image.bin");
    let got = h
        .download(
            "OTA image",
            &format!("http://127.0.0.1:{}/fw", s.port),
            HeaderMap::new(),
            &dest,
            10_000_000,
            3,
        )
        .await
        .unwrap();
    assert_eq!(got.resumed, 1);
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        body,
        "the whole image, byte for byte"
    );
    assert_eq!(s.seen()[1].headers["range"], "bytes=300000-");
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_range_gets_the_download_started_over_and_a_silent_one_fails() {
    let body = image();
    let served = body.clone();
    let calls = Arc::new(Mutex::new(0u32));
    let n = calls.clone();
    let s = Server::start(None, move |_, out| {
        let call = {
            let mut n = n.lock().unwrap();
            *n += 1;
            *n
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            served.len()
        );
        let _ = out.write_all(head.as_bytes());
        trickle(out, &served, Duration::ZERO, (call == 1).then_some(400_000));
    });
    let h = http(None);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("image.bin");
    h.download(
        "OTA image",
        &format!("http://127.0.0.1:{}/fw", s.port),
        HeaderMap::new(),
        &dest,
        10_000_000,
        3,
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        body,
        "started over, not appended"
    );

    let silent = Server::start(None, |_, out| {
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        let _ = out.flush();
        // Silent past the 2 s idle limit (the thing under test).
        std::thread::sleep(Duration::from_secs(4));
    });
    let err = h
        .download(
            "OTA image",
            &format!("http://127.0.0.1:{}/fw", silent.port),
            HeaderMap::new(),
            &dir.path().join("x"),
            100,
            0,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("OTA image"), "{err}");
    assert!(
        !dir.path().join("x.part").exists(),
        "no partial file left behind"
    );
}
