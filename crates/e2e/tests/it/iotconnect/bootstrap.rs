//! Starting up against iot-sim: `rc` 2 (auto-registration pending) is waited out by the
//! long-running set-up and is a clear error for one-shot use; an X.509 device connects with the
//! IoT Hub username (the emulated hub refuses it without); an http:// base URL from the network
//! is refused.

use std::time::Duration;

use iotconnect::agent::setup::{Retry, setup, setup_retrying};
use iotconnect::agent::{Collect, Event};
use serde_json::json;

use super::common::{Cloud, flags};

const GW: &str = "iotc-gateway-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_registration_is_retried_in_long_running_mode_and_fails_fast_once() {
    let c = Cloud::start(None).await;
    c.side.set_registering(GW, 1);
    let events = Collect::default();
    let e = setup(
        c.config(GW, json!({})),
        &flags(None, vec![]),
        None,
        Duration::from_secs(10),
        &events,
    )
    .await
    .err()
    .expect("one-shot set-up fails while the device is being registered");
    assert!(e.to_string().contains("rc 2"), "{e}");

    c.side.set_registering(GW, 2);
    let retry = Retry {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
    };
    let s = setup_retrying(
        c.config(GW, json!({})),
        &flags(None, vec![]),
        None,
        Duration::from_secs(10),
        &events,
        retry,
    )
    .await
    .expect("the third sync answers");
    assert_eq!(s.device.devices().len(), 3);
    let warnings: Vec<String> = events
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Warning { message } => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("trying again"), "{warnings:?}");
    assert_eq!(c.report().get("sync_registering"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_not_reachable_yet_is_retried_until_it_answers() {
    // Discovery on a loopback port where nothing listens yet: connection refused, retried.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = Cloud::start(None).await;
    let cfg = c.config(
        GW,
        json!({"discoveryUrl": format!("http://127.0.0.1:{port}/iotconnect")}),
    );
    let events = std::sync::Arc::new(Collect::default());
    let ev = events.clone();
    let task = tokio::spawn(async move {
        setup_retrying(
            cfg,
            &flags(None, vec![]),
            None,
            Duration::from_secs(5),
            ev.as_ref(),
            Retry {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(100),
            },
        )
        .await
    });
    super::common::wait_for("two failed attempts reported", || {
        events
            .events()
            .iter()
            .filter(|e| matches!(e, Event::Warning { message } if message.contains("discovery")))
            .count()
            >= 2
    })
    .await;
    assert!(!task.is_finished(), "the set-up keeps trying");
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_devices_connect_with_the_iot_hub_username() {
    let c = Cloud::start(None).await;
    let s = setup(
        c.config(GW, json!({})),
        &flags(None, vec![]),
        Some(Duration::ZERO),
        Duration::from_secs(10),
        &Collect::default(),
    )
    .await
    .unwrap();
    let opts =
        iotconnect::agent::bootstrap::session_options(&flags(None, vec![]), &s.config, &s.sync)
            .unwrap();
    let creds = opts
        .credentials
        .clone()
        .expect("X.509 devices send a username");
    assert!(
        creds
            .username
            .ends_with(&format!("/{GW}/?api-version=2018-06-30")),
        "{}",
        creds.username
    );
    assert!(creds.password.is_none(), "the certificate authenticates");
    // The emulated hub checks the username; connecting proves the agent sends it.
    let events = std::sync::Arc::new(Collect::default());
    let (mut agent, _, _) = s
        .connect(&flags(None, vec![]), None, events.clone())
        .await
        .unwrap();
    let rest = agent
        .send_data(
            &iotconnect::protocol::input::parse_line(
                1,
                r#"[{"uniqueId":"iotc-gateway-01","data":{"temperature":20}}]"#,
            )
            .unwrap()
            .unwrap(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    agent.close(Duration::from_secs(2)).await;
    assert_eq!(c.report().get("rejected"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_base_url_from_the_network_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A discovery service on loopback (plain http is fine there) that hands out a plain-http
    // base URL on another machine.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let body = r#"{"baseUrl":"http://agent.example.com/api/2.0/agent/"}"#;
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(resp.as_bytes()).await.unwrap();
    });
    let c = Cloud::start(None).await;
    let cfg = c.config(
        GW,
        json!({"discoveryUrl": format!("http://127.0.0.1:{port}")}),
    );
    let e = setup(
        cfg,
        &flags(None, vec![]),
        None,
        Duration::from_secs(5),
        &Collect::default(),
    )
    .await
    .err()
    .expect("an http:// baseUrl off loopback is refused");
    let text = e.to_string();
    assert!(text.contains("baseUrl") && text.contains("http"), "{text}");
}
