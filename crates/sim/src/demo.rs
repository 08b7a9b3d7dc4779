//! `iot-sim demo`: the local cloud, every agent against it for a short run, and a table of what
//! each achieved. Succeeds only when every number is what the run should produce.

use std::time::Duration;

use cloudkit::DemoRow;
use transport::{Message, Outbox, Session};

use crate::echo;
use crate::engine::{Listener, Sim, SimError, SimOptions};

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where and how to start the local cloud.
    pub sim: SimOptions,
    /// Messages per check.
    pub messages: u64,
    /// Break the named check on purpose (a listener name), to see the demo fail.
    pub sabotage: Option<String>,
}

/// The demo's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoSummary {
    /// `embedded` or the external broker's URL.
    pub broker: String,
    /// Every check.
    pub rows: Vec<DemoRow>,
    /// All rows ok.
    pub ok: bool,
}

impl DemoSummary {
    /// The summary as an aligned text table.
    pub fn table(&self) -> String {
        let mut lines = vec![["vendor", "check", "expected", "got", ""].map(str::to_owned)];
        for r in &self.rows {
            let verdict = if r.ok {
                "ok".to_owned()
            } else {
                format!(
                    "FAILED{}",
                    r.note
                        .as_ref()
                        .map(|n| format!(": {n}"))
                        .unwrap_or_default()
                )
            };
            lines.push([
                r.vendor.clone(),
                r.check.clone(),
                r.expected.to_string(),
                r.got.to_string(),
                verdict,
            ]);
        }
        let widths: Vec<usize> = (0..4)
            .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
            .collect();
        let mut out = format!("broker: {}\n", self.broker);
        for l in &lines {
            out.push_str(&format!(
                "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {}\n",
                l[0],
                l[1],
                l[2],
                l[3],
                l[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3]
            ));
        }
        out.push_str(if self.ok {
            "all checks passed\n"
        } else {
            "SOME CHECKS FAILED\n"
        });
        out
    }
}

/// Runs the demo.
pub async fn run(opts: DemoOptions) -> Result<DemoSummary, SimError> {
    let broker = opts
        .sim
        .external
        .as_ref()
        .map_or_else(|| "embedded".to_owned(), |e| e.endpoint.to_string());
    let vendors = crate::registry::vendors();
    let sim = Sim::start(
        opts.sim.clone(),
        vendors.iter().filter_map(|v| v.cloud.clone()).collect(),
    )
    .await?;
    let received = |key: &str| sim.reports().get("transport").map_or(0, |r| r.get(key));
    let mut rows = Vec::new();
    for listener in sim.listeners().to_vec() {
        let sabotaged = opts.sabotage.as_deref() == Some(listener.name);
        let (confirmed, note) = publish_through(&listener, opts.messages, sabotaged).await;
        let received_key = format!("received_{}", listener.name);
        let wait = tokio::time::Instant::now() + Duration::from_secs(10);
        while received(&received_key) < confirmed && tokio::time::Instant::now() < wait {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let received = received(&received_key);
        rows.push(DemoRow::new(
            "transport",
            format!("{}: confirmed by the broker", listener.name),
            opts.messages,
            confirmed,
            note.clone(),
        ));
        rows.push(DemoRow::new(
            "transport",
            format!("{}: received by the cloud side", listener.name),
            opts.messages,
            received,
            note,
        ));
    }
    for vendor in &vendors {
        let Some(check) = vendor.demo else { continue };
        let cloud = vendor.cloud.clone();
        let work_dir = sim.state_dir().join("demo").join(vendor.name);
        if let Err(e) = std::fs::create_dir_all(&work_dir) {
            rows.push(DemoRow::new(
                vendor.name,
                "set-up",
                1,
                0,
                Some(format!("cannot create {}: {e}", work_dir.display())),
            ));
            continue;
        }
        let env = sim.demo_env(cloud, &work_dir, opts.messages);
        rows.extend(check(env).await);
    }
    sim.write_status()?;
    sim.stop().await;
    let ok = rows.iter().all(|r| r.ok);
    Ok(DemoSummary { broker, rows, ok })
}

/// Publishes `n` numbered messages through `listener`; returns how many the broker confirmed.
async fn publish_through(listener: &Listener, n: u64, sabotaged: bool) -> (u64, Option<String>) {
    let mut o = match listener.session_options() {
        Ok(o) => o,
        Err(e) => return (0, Some(e.to_string())),
    };
    o.client_id = format!("demo-{}", listener.name);
    o.connect_timeout = Duration::from_secs(5);
    if sabotaged {
        // A wrong password where there is one, otherwise no client certificate or no broker.
        if let Some(c) = &mut o.credentials {
            c.password = Some("wrong-on-purpose".into());
        } else if o.tls.client_cert.is_some() {
            o.tls.client_cert = None;
            o.tls.client_key = None;
        } else if let Ok(ep) = "mqtt://127.0.0.1:1".parse() {
            o.endpoint = ep;
        }
    }
    let (session, _incoming) = match Session::start(
        o,
        Outbox::memory(usize::try_from(n).unwrap_or(usize::MAX).max(1)),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return (0, Some(e.to_string())),
    };
    for i in 0..n {
        if let Err(e) = session
            .publish(Message::new(echo::topic(listener.name), i.to_string()))
            .await
        {
            session.close(Duration::from_secs(1)).await;
            return (0, Some(e.to_string()));
        }
    }
    let unconfirmed = session.flush(Duration::from_secs(10)).await;
    session.close(Duration::from_secs(1)).await;
    (
        n - unconfirmed,
        (unconfirmed > 0).then(|| format!("{unconfirmed} not confirmed")),
    )
}
