//! The configuration service redirects to another origin: the redirect is followed by the HTTP
//! policy, and the other origin never sees the credential — neither gen 1's `x-api-key` nor
//! gen 2's `Authorization: Bearer`. Two real HTTP servers on loopback (plain http is allowed
//! there by the policy) record every request head they get.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdm::agent::api::ApiOptions;
use hdm::agent::config::{Overrides, load_env_with};
use hdm::agent::provision::{ProvisionOptions, provision};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Heads = Arc<Mutex<Vec<String>>>;

/// An HTTP server that records each request head (lower-cased) and answers `reply(head)`.
async fn server(reply: impl Fn(&str) -> String + Send + Sync + 'static) -> (u16, Heads) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads: Heads = Arc::default();
    let h = heads.clone();
    let reply = Arc::new(reply);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (h, reply) = (h.clone(), reply.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_lowercase();
                let answer = reply(&head);
                h.lock().unwrap().push(head);
                let _ = sock.write_all(answer.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (port, heads)
}

fn status(code: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {code}\r\n{extra}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn redirected_config_call(env_text: impl Fn(u16) -> String, secret: &str) {
    // The other origin: answers anything with a refusal, so provisioning stops there.
    let (other, other_heads) =
        server(|_| status("503 Service Unavailable", "", "{\"message\":\"down\"}")).await;
    let (origin, origin_heads) = server(move |head| {
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        status(
            "307 Temporary Redirect",
            &format!("location: http://127.0.0.1:{other}{path}\r\n"),
            "",
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("env.dev");
    std::fs::write(&env_file, env_text(origin)).unwrap();
    let opts = ProvisionOptions {
        env: load_env_with(&env_file, None, Overrides::default()).unwrap(),
        store: dir.path().join("cs"),
        csr: false,
        force: false,
        api: ApiOptions {
            timeout: Duration::from_secs(10),
            ..ApiOptions::default()
        },
    };
    let e = provision(&opts, &|_| {}).await.unwrap_err().to_string();
    assert!(
        e.contains("503"),
        "the redirect was followed to the other origin: {e}"
    );
    let origin_heads = origin_heads.lock().unwrap().clone();
    let other_heads = other_heads.lock().unwrap().clone();
    assert_eq!(origin_heads.len(), 1, "{origin_heads:?}");
    assert!(
        origin_heads[0].contains(secret),
        "the service itself got the credential"
    );
    assert_eq!(other_heads.len(), 1, "{other_heads:?}");
    assert!(other_heads[0].contains("/configuration"), "{other_heads:?}");
    for h in &other_heads {
        assert!(
            !h.contains("x-api-key") && !h.contains("authorization") && !h.contains(secret),
            "the other origin saw a credential: {h}"
        );
    }
}

#[tokio::test]
async fn gen1_api_key_does_not_follow_a_redirect_to_another_origin() {
    redirected_config_call(
        |port| format!("stage=dev\nbase_url=http://127.0.0.1:{port}\napi_key=k3y-of-gen1\n"),
        "k3y-of-gen1",
    )
    .await;
}

#[tokio::test]
async fn gen2_bearer_token_does_not_follow_a_redirect_to_another_origin() {
    redirected_config_call(
        |port| {
            format!(
                "stage=dev\nbase_url=http://127.0.0.1:{port}\nauth_token=t0ken-of-gen2\napi_version=v3\n"
            )
        },
        "t0ken-of-gen2",
    )
    .await;
}
