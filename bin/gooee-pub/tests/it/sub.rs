//! `sub`: prints what arrives (NDJSON here) until `--count`.

use gooee::agent::{Agent, PublishOptions};
use gooee::protocol::{Check, MetaEntry, MetaList, Publication};
use transport::auth::Credentials;

use crate::{CloudTask, GooeeBroker, Running, TOKEN, events, gooee_pub};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_prints_relayed_meta_until_the_count() {
    let gb = GooeeBroker::start();
    let cloud = CloudTask::start(&gb.broker.url_plain()).await;
    let [_, (_, url, ca)] = gb.endpoints();
    let mut child = Running::spawn(
        gooee_pub(Some(TOKEN))
            .args([
                "--output",
                "json",
                "sub",
                "devices/d1/meta/+",
                "-C",
                "2",
                "--ws",
                "-b",
                &url,
                "--cafile",
            ])
            .arg(&ca),
    );
    tokio::task::block_in_place(|| {
        child.wait_for_stdout_line("\"subscribed\"", std::time::Duration::from_secs(10));
    });
    let mut opts = transport::SessionOptions::new(gb.broker.url_tls_password().parse().unwrap());
    opts.tls.ca_files = vec![gb.broker.pki().ca_cert()];
    opts.credentials = Some(Credentials {
        username: "authorization".into(),
        password: Some(TOKEN.into()),
    });
    let mut agent = Agent::connect(opts).await.unwrap();
    let list = MetaList(vec![
        MetaEntry::new("als", serde_json::json!(87)),
        MetaEntry::new("dim", serde_json::json!(50)),
    ]);
    let p = Publication::meta("d1", &list, Check::Full).unwrap();
    agent
        .publish(&p, PublishOptions::default(), &mut |_| {})
        .await
        .unwrap();
    let code = tokio::task::block_in_place(|| child.wait(std::time::Duration::from_secs(20)));
    assert_eq!(code, Some(0));
    let stdout = child.stdout.lock().unwrap().join("\n");
    let ev = events(stdout.as_bytes());
    let msgs: Vec<&serde_json::Value> = ev
        .iter()
        .filter(|(k, _)| k == "message")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(msgs.len(), 2, "{ev:?}");
    assert_eq!(msgs[0]["topic"], "devices/d1/meta/als");
    // A JSON payload arrives as JSON (`{"json": ...}`), parsed once.
    assert_eq!(msgs[0]["payload"]["json"]["value"], 87);
    agent.close().await;
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_refuses_a_filter_outside_the_table() {
    let out = crate::run(gooee_pub(Some(TOKEN)).args([
        "sub",
        "devices/d1/#",
        "-b",
        "mqtts://localhost:1",
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("multi-level wildcard"));
}
