//! The `iot-sim demo` check for the sink: the seed's ESP32 simulation on `esp32/pub` stored into
//! SQLite by the same code path `mqtt-sink` runs, plus one malformed payload that must end in the
//! dead-letter table. Counts come from the sink's own statistics after its last COMMIT.

use std::sync::Mutex;
use std::time::Duration;

use cloudkit::{DemoEnv, DemoRow};
use tokio::sync::oneshot;
use transport::{Message, Outbox, Session};

use crate::report::Event;
use crate::simulate::{SimulatePlan, simulate, start_time};
use crate::{DbUrl, Dedup, Ident, Mapping, SinkConfig, prepare};

const VENDOR: &str = "mqtt-sink";
const TOPIC: &str = "esp32/pub";

fn failed(check: &str, why: impl std::fmt::Display) -> Vec<DemoRow> {
    vec![DemoRow::new(VENDOR, check, 1, 0, Some(why.to_string()))]
}

/// Runs the check against the local cloud's plain listener (or the external broker).
pub async fn run(env: DemoEnv) -> Vec<DemoRow> {
    let Some(listener) = env
        .listener("plain")
        .or_else(|| env.listener("external"))
        .cloned()
    else {
        return failed("set-up", "no plain or external listener");
    };
    let db_path = env.work_dir.join("readings.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    let n = env.messages;
    let db: DbUrl = match format!("sqlite://{}", db_path.display()).parse() {
        Ok(db) => db,
        Err(e) => return failed("set-up", e),
    };
    let table = match Ident::new("readings", "table") {
        Ok(t) => t,
        Err(e) => return failed("set-up", e),
    };
    let mapping = Mapping {
        columns: Mapping::esp32_columns(),
        topic_column: None,
        received_at_column: None,
        payload_column: None,
        dedup: Dedup::Hash,
    };
    let mut config = SinkConfig::new(db, table, mapping, vec![TOPIC.into()]);
    config.create_table = true;
    config.count = Some(n + 1);
    config.duration = Some(Duration::from_secs(60));
    let sink = match prepare(config).await {
        Ok(s) => s,
        Err(e) => return failed("sink ready", e),
    };
    let (mut sink_opts, mut pub_opts) =
        match (listener.session_options(), listener.session_options()) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return failed("set-up", e),
        };
    sink_opts.client_id = "demo-mqtt-sink".into();
    pub_opts.client_id = "demo-esp32".into();
    let (ready_tx, ready_rx) = oneshot::channel();
    let ready = Mutex::new(Some(ready_tx));
    let task = tokio::spawn(async move {
        let reporter = move |ev: &Event| {
            if matches!(ev, Event::Ready { .. })
                && let Some(tx) = ready
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take()
            {
                let _ = tx.send(());
            }
        };
        sink.run(sink_opts, std::future::pending::<()>(), &reporter)
            .await
    });
    if tokio::time::timeout(Duration::from_secs(20), ready_rx)
        .await
        .is_err()
    {
        task.abort();
        return failed("sink subscribed", "the sink did not subscribe within 20 s");
    }
    let session = match Session::start(
        pub_opts,
        Outbox::memory(usize::try_from(n).unwrap_or(1) + 16),
    )
    .await
    {
        Ok((s, _)) => s,
        Err(e) => {
            task.abort();
            return failed("ESP32 connected", e);
        }
    };
    // Its outcome shows in the dead-letter count below.
    if let Ok(d) = session
        .publish(Message::new(TOPIC, "{\"Temperature\": not json"))
        .await
    {
        let _ = d.confirmed().await;
    }
    let plan = SimulatePlan {
        topic: TOPIC.into(),
        count: n,
        rate: None,
        start: match start_time(None) {
            Ok(t) => t,
            Err(e) => return failed("set-up", e),
        },
        confirm_timeout: Duration::from_secs(20),
    };
    let confirmed = match simulate(&session, plan, std::future::pending::<()>()).await {
        // The session's confirmation count also holds the malformed message sent before.
        Ok(s) => s.published - s.unconfirmed.min(s.published),
        Err(e) => {
            task.abort();
            return failed("ESP32 readings published", e);
        }
    };
    let stats = match tokio::time::timeout(Duration::from_secs(60), task).await {
        Ok(Ok(Ok(stats))) => stats,
        Ok(Ok(Err(e))) => return failed("readings stored", e),
        Ok(Err(e)) => return failed("readings stored", e),
        Err(_) => return failed("readings stored", "the sink did not finish within 60 s"),
    };
    vec![
        DemoRow::new(
            VENDOR,
            "ESP32 readings confirmed by the broker (esp32/pub)",
            n,
            confirmed,
            None,
        ),
        DemoRow::new(
            VENDOR,
            "readings stored in SQLite, once each",
            n,
            stats.stored,
            None,
        ),
        DemoRow::new(
            VENDOR,
            "malformed payload dead-lettered (and acknowledged)",
            1,
            stats.dead_lettered,
            None,
        ),
    ]
}
