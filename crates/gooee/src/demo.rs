//! Gooee's rows of `iot-sim demo`: the real agent code path (the library functions `gooee-pub`
//! calls) against the local cloud's `tls_password` and `wss` listeners with username
//! `authorization` and [`DEV_TOKEN`], counted by the Gooee cloud side's report. With an external
//! broker (`--broker`) it uses that listener's own credentials and skips the rows only the
//! embedded broker can enforce (token, topic table).

use std::time::Duration;

use cloudkit::{DemoEnv, DemoRow, Listener, Report};
use serde_json::json;
use transport::auth::Credentials;
use transport::{Outbox, Qos, Session, SessionOptions};

use crate::agent::{Agent, AgentError, Event, Outcome, PublishOptions};
use crate::cloud::DEV_TOKEN;
use crate::protocol::{
    Action, Check, Entity, FaultAlarm, HeadCount, HeadCountKind, MetaEntry, MetaList, Publication,
    USERNAME, topics,
};

const VENDOR: &str = "gooee";
/// The device id of the documentation's MQTT.fx walk-through.
const DEVICE: &str = "120e54bb-0fdc-4929-a7f4-7fab08cb0469";
/// The space id of the documentation's space action example.
const SPACE: &str = "6f00fb32-2b3d-44c8-90cf-e526c252f6d5";
const WAIT: Duration = Duration::from_secs(10);

/// Runs Gooee's checks and returns one row per check.
pub async fn run(env: DemoEnv) -> Vec<DemoRow> {
    let mut rows = Vec::new();
    let own: Vec<&Listener> = ["tls_password", "wss"]
        .iter()
        .filter_map(|n| env.listener(n))
        .collect();
    if own.is_empty() {
        match env.listener("external") {
            Some(l) => rows.extend(check_listener(&env, l, false).await),
            None => rows.push(DemoRow::new(
                VENDOR,
                "set-up",
                1,
                0,
                Some("no tls_password, wss or external listener".into()),
            )),
        }
        return rows;
    }
    for l in &own {
        rows.extend(check_listener(&env, l, true).await);
    }
    if let Some(l) = own.first() {
        rows.extend(broker_rules(l).await);
    }
    rows
}

fn options(l: &Listener, token: Option<&str>) -> Result<SessionOptions, String> {
    let mut o = l.session_options().map_err(|e| e.to_string())?;
    o.client_id = format!("demo-gooee-{}-{:04x}", l.name, fastrand::u16(..));
    o.connect_timeout = Duration::from_secs(5);
    if let Some(t) = token {
        o.credentials = Some(Credentials {
            username: USERNAME.to_owned(),
            password: Some(t.into()),
        });
    }
    Ok(o)
}

async fn counter_reaches(env: &DemoEnv, name: &str, base: u64, want: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = (env.report)().get(name).saturating_sub(base);
        if got >= want || tokio::time::Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn check_listener(env: &DemoEnv, l: &Listener, own_token: bool) -> Vec<DemoRow> {
    let name = l.name;
    let row = |check: &str, expected, got, note| {
        DemoRow::new(VENDOR, format!("{name}: {check}"), expected, got, note)
    };
    let mut agent = match options(l, own_token.then_some(DEV_TOKEN)) {
        Ok(o) => match Agent::connect(o).await {
            Ok(a) => a,
            Err(e) => {
                return vec![row(
                    "connect with username authorization",
                    1,
                    0,
                    Some(e.to_string()),
                )];
            }
        },
        Err(e) => return vec![row("connect with username authorization", 1, 0, Some(e))],
    };
    let mut rows = Vec::new();
    let n = env.messages.max(1);
    let base: Report = (env.report)();
    let names = ["temperature", "als"];
    let subs: Vec<String> = names
        .iter()
        .filter_map(|m| topics::device_meta_name(DEVICE, m).ok())
        .collect();
    let mut note = agent
        .subscribe(&subs, Qos::AtLeastOnce)
        .await
        .err()
        .map(|e| e.to_string());
    let mut sent = 0;
    for i in 0..n {
        let list = MetaList(vec![
            MetaEntry::new("temperature", json!(20.0 + (i % 100) as f64 / 10.0)),
            MetaEntry::new("als", json!(i % 20_000)),
        ]);
        let r = match Publication::meta(DEVICE, &list, Check::Full) {
            Ok(p) => {
                agent
                    .publish(&p, PublishOptions::default(), &mut |_| {})
                    .await
            }
            Err(e) => Err(AgentError::from(e)),
        };
        match r {
            Ok(_) => sent += 1,
            Err(e) => note = Some(e.to_string()),
        }
    }
    let mut received = 0;
    let deadline = tokio::time::sleep(WAIT);
    let _ = agent
        .receive(Some(2 * n), deadline, &mut |e| {
            if matches!(&e, Event::Message { topic, .. } if subs.contains(topic)) {
                received += 1;
            }
        })
        .await;
    let relayed = counter_reaches(env, "meta_relayed", base.get("meta_relayed"), 2 * n).await;
    rows.push(row("meta confirmed by the broker", n, sent, note.clone()));
    rows.push(row(
        "meta published and relayed to per-name subtopics",
        2 * n,
        relayed,
        note.clone(),
    ));
    rows.push(row(
        "per-name meta received by the device",
        2 * n,
        received,
        note,
    ));

    let bad = MetaList(vec![MetaEntry::new("Meta_New", json!(10))]);
    let local = Publication::meta(DEVICE, &bad, Check::Full);
    rows.push(row(
        "invalid meta name refused locally",
        1,
        u64::from(local.is_err()),
        Some("the local check let `Meta_New` through".into()),
    ));
    let (rejections, note) = match Publication::meta(DEVICE, &bad, Check::TopicOnly) {
        Ok(p) => {
            let opts = PublishOptions {
                watch_rejected: Some(WAIT),
                ..PublishOptions::default()
            };
            match agent.publish(&p, opts, &mut |_| {}).await {
                Ok(Outcome::Rejected(r)) if r.error.message.contains("regex pattern") => (1, None),
                Ok(other) => (0, Some(format!("outcome {other:?}"))),
                Err(e) => (0, Some(e.to_string())),
            }
        }
        Err(e) => (0, Some(e.to_string())),
    };
    let by_report = counter_reaches(env, "meta_rejected", base.get("meta_rejected"), 1).await;
    rows.push(row(
        "invalid meta rejected by the platform via rejected topic",
        1,
        rejections.min(by_report),
        note,
    ));

    rows.push(row(
        "action relayed to its per-type subtopic",
        1,
        action(&mut agent, env, &base).await,
        None,
    ));
    let (accepted, note) = alarm_and_head_count(&mut agent, env, &base).await;
    rows.push(row(
        "fault alarm and head count accepted",
        2,
        accepted,
        note,
    ));
    agent.close().await;
    rows
}

async fn action(agent: &mut Agent, env: &DemoEnv, base: &Report) -> u64 {
    let a = Action {
        name: Some("Turn Off the Office".into()),
        kind: "off".into(),
        target_type: Some(Entity::Space.noun().into()),
        target_id: Some(SPACE.into()),
        value: Some(json!({"transition_time": 5})),
        created: None,
        extra: std::collections::BTreeMap::new(),
    };
    let Ok(p) = Publication::action(Entity::Space, SPACE, &a, Check::Full) else {
        return 0;
    };
    if agent
        .publish(&p, PublishOptions::default(), &mut |_| {})
        .await
        .is_err()
    {
        return 0;
    }
    counter_reaches(env, "actions_relayed", base.get("actions_relayed"), 1).await
}

async fn alarm_and_head_count(
    agent: &mut Agent,
    env: &DemoEnv,
    base: &Report,
) -> (u64, Option<String>) {
    let alarm = FaultAlarm {
        id: None,
        timestamp: crate::agent::input::now_timestamp(),
        priority: 255,
        level: "info".into(),
        kind: "high_temperature".into(),
        device: Some(DEVICE.into()),
        notes: None,
        value: Some(json!({"temp": 100})),
        description: Some("Temperature is above 90°F.".into()),
        extra: std::collections::BTreeMap::new(),
    };
    let pubs = [
        Publication::fault_alarm(Entity::Device, DEVICE, &alarm, Check::Full),
        Publication::head_count(
            Entity::Space,
            SPACE,
            HeadCountKind::HeadCount,
            &HeadCount::new(HeadCountKind::HeadCount, 5),
            Check::Full,
        ),
    ];
    for p in pubs {
        let r = match p {
            Ok(p) => agent
                .publish(&p, PublishOptions::default(), &mut |_| {})
                .await
                .map(|_| ()),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = r {
            return (0, Some(e.to_string()));
        }
    }
    let a = counter_reaches(env, "alarms_accepted", base.get("alarms_accepted"), 1).await;
    let h = counter_reaches(
        env,
        "headcounts_accepted",
        base.get("headcounts_accepted"),
        1,
    )
    .await;
    (a + h, None)
}

/// What only the embedded broker enforces: the token, and the table for subscriptions.
async fn broker_rules(l: &Listener) -> Vec<DemoRow> {
    let mut rows = Vec::new();
    let wrong = match options(l, Some("not-the-token")) {
        Ok(o) => match Agent::connect(o).await {
            Err(AgentError::TokenRefused { .. }) => (1, None),
            Err(e) => (0, Some(e.to_string())),
            Ok(a) => {
                a.close().await;
                (0, Some("connected with a wrong token".into()))
            }
        },
        Err(e) => (0, Some(e)),
    };
    rows.push(DemoRow::new(
        VENDOR,
        "wrong token refused by the broker",
        1,
        wrong.0,
        wrong.1,
    ));
    // A raw session, so that the agent's own table check does not stop the attempt.
    let refused = match options(l, Some(DEV_TOKEN)) {
        Ok(o) => match Session::start(o, Outbox::memory(1)).await {
            Ok((s, _in)) => {
                let r = s
                    .subscribe(&[(
                        format!("{}/{DEVICE}/#", Entity::Device.level()),
                        Qos::AtLeastOnce,
                    )])
                    .await;
                s.close(Duration::from_secs(1)).await;
                match r {
                    Err(transport::session::SubscribeError::Refused(_)) => (1, None),
                    other => (0, Some(format!("subscription outcome {other:?}"))),
                }
            }
            Err(e) => (0, Some(e.to_string())),
        },
        Err(e) => (0, Some(e)),
    };
    rows.push(DemoRow::new(
        VENDOR,
        "subscription outside the topic table refused by the broker",
        1,
        refused.0,
        refused.1,
    ));
    rows
}
