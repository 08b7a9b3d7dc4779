//! The platform side fed the documented bytes of `tests/vectors/` by a raw MQTT client on the
//! plain listener; the answers are read back raw, as a third-party device would.

use std::time::Duration;

use serde_json::Value;
use transport::{Message, Outbox, Qos, Session};

use super::{Env, vector};

async fn raw(env: &Env, subscribe: &str) -> (Session, transport::session::Incoming) {
    let plain = env
        .sim
        .listeners()
        .iter()
        .find(|l| l.name == "plain")
        .unwrap();
    let mut o = plain.session_options().unwrap();
    o.client_id = "raw-vector-client".into();
    let (s, i) = Session::start(o, Outbox::memory(64)).await.unwrap();
    s.subscribe(&[(subscribe.to_owned(), Qos::AtLeastOnce)])
        .await
        .unwrap();
    (s, i)
}

async fn next_json(i: &mut transport::session::Incoming) -> (String, Value) {
    let m = tokio::time::timeout(Duration::from_secs(15), i.recv())
        .await
        .expect("an answer in time")
        .unwrap();
    (m.topic, serde_json::from_slice(&m.payload).unwrap())
}

/// Publishes and waits for the broker's confirmation.
async fn deliver(s: &Session, msg: Message) {
    s.publish(msg).await.unwrap().confirmed().await.unwrap();
}

/// The two status answers of an asset-model or instance request (notes 3.2-3.4): `InProgress`
/// then `Success`, on `{T}/i/<leaf>`, naming the request.
async fn expect_in_progress_then_success(
    i: &mut transport::session::Incoming,
    leaf: &str,
    request_id: &str,
) {
    for want in ["InProgress", "Success"] {
        let (topic, v) = next_json(i).await;
        assert_eq!(
            (
                topic.as_str(),
                v["requestId"].as_str(),
                v["data"]["status"].as_str()
            ),
            (
                format!("{T}/i/{leaf}").as_str(),
                Some(request_id),
                Some(want)
            )
        );
    }
}

const T: &str = "tc/tenantid/tenantid_mqttagent";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_payloads_get_documented_answers() {
    let env = Env::start(mindconnect::cloud::MindConnectCloud::new()).await;
    let (s, mut i) = raw(&env, &format!("{T}/i/#")).await;
    let send = |leaf: &str, file: &str| Message::new(format!("{T}/o/{leaf}"), vector(file));

    // Token: the reply names our request id and carries a bearer token (notes 3.9).
    deliver(&s, send("agm_v3/t", "token_request.json")).await;
    let (topic, v) = next_json(&mut i).await;
    assert_eq!(topic, format!("{T}/i/agm_v3/tr"));
    assert_eq!(v["requestId"], "request1");
    assert_eq!(v["data"]["token_type"], "Bearer");
    assert_eq!(v["data"]["expires_in"], 3600);
    assert!(
        v["data"]["access_token"]
            .as_str()
            .unwrap()
            .starts_with("eyJ")
    );

    // The documented timeseries before any model: every data point is unmapped (notes 3.6).
    deliver(&s, send("mc_v3/ts", "timeseries_doc.json")).await;
    assert_eq!(env.counter("unmapped_values", 3).await, 3);

    // The seed's model and instance: InProgress then Success, correlated (notes 3.2-3.4).
    deliver(&s, send("amo_v3/m", "asset_model.json")).await;
    expect_in_progress_then_success(&mut i, "amo_v3/ms", "model-request-1").await;
    deliver(&s, send("amo_v3/i", "instance.json")).await;
    expect_in_progress_then_success(&mut i, "amo_v3/ip", "instance-request-1").await;

    // Now the seed's timeseries is recorded, the sample's event accepted (notes 3.6, 3.7).
    deliver(&s, send("mc_v3/ts", "timeseries_seed.json")).await;
    assert_eq!(env.counter("timeseries_values", 2).await, 2);
    deliver(&s, send("mc_v3/e", "event_seed.json")).await;
    assert_eq!(env.counter("events", 1).await, 1);

    // The sample's truncated base64 is refused, and says so (notes 3.8).
    deliver(&s, send("mc_v3/f", "file_sample_truncated.json")).await;
    assert_eq!(env.counter("files_rejected", 1).await, 1);
    assert!(
        env.report()
            .recent
            .iter()
            .any(|n| n.contains("not standard padded base64")),
        "{:?}",
        env.report().recent
    );

    // A documented command seen on i/cmd_v3/c, then the agent's statuses (notes 3.10).
    s.publish(Message::new(
        format!("{T}/i/cmd_v3/c"),
        vector("command_doc.json"),
    ))
    .await
    .unwrap()
    .confirmed()
    .await
    .unwrap();
    let _echo = next_json(&mut i).await;
    assert_eq!(env.counter("commands_sent", 1).await, 1);
    let status = r#"{"id":"s1","requestId":"9960f6a3","data":{"timestamp":"2011-08-12T20:17:46.384Z","jobId":"2134a8c1","status":"EXECUTED","response":{"message":"Successfully Executed START"}}}"#;
    s.publish(Message::new(format!("{T}/o/cmd_v3/u"), status))
        .await
        .unwrap()
        .confirmed()
        .await
        .unwrap();
    assert_eq!(env.counter("commands_executed", 1).await, 1);
    s.close(Duration::from_secs(1)).await;
    env.stop().await;
}
