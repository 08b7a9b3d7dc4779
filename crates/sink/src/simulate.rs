//! The seed's ESP32 as a publisher, for demos and tests: readings shaped
//! `{"Temperature": 21.5, "Data Hora": "2026-11-24 10:00:00"}`, each `Data Hora` one second
//! after the last (so every reading is distinct), published at QoS 1 at a given rate and
//! confirmed by the broker.

use std::future::Future;
use std::time::{Duration, Instant};

use time::PrimitiveDateTime;
use time::macros::format_description;
use transport::Message;
use transport::session::{PublishError, Session};

/// What to publish.
#[derive(Debug, Clone)]
pub struct SimulatePlan {
    /// Topic (the seed's is `esp32/pub`).
    pub topic: String,
    /// Number of readings.
    pub count: u64,
    /// Readings per second (`None`: as fast as the broker confirms).
    pub rate: Option<f64>,
    /// `Data Hora` of the first reading.
    pub start: PrimitiveDateTime,
    /// How long to wait for the last confirmations.
    pub confirm_timeout: Duration,
}

/// How a simulation ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SimulateSummary {
    /// Readings handed to the session.
    pub published: u64,
    /// Confirmed by the broker.
    pub confirmed: u64,
    /// Not confirmed at the end.
    pub unconfirmed: u64,
    /// A shutdown signal cut the run short.
    pub interrupted: bool,
    /// Seconds from the first publish to the last confirmation.
    pub elapsed_s: f64,
    /// Confirmed readings per second.
    pub rate: f64,
}

/// The first reading's time from `--start` ("YYYY-MM-DD HH:MM:SS" or RFC 3339), or now (UTC).
pub fn start_time(arg: Option<&str>) -> Result<PrimitiveDateTime, String> {
    let at = match arg {
        Some(s) => crate::extract::parse_timestamp(&serde_json::Value::from(s))
            .ok_or_else(|| format!("--start `{s}` is not a time like 2026-11-24 10:00:00"))?,
        None => time::OffsetDateTime::now_utc(),
    };
    Ok(PrimitiveDateTime::new(at.date(), at.time()))
}

/// Reading number `i`: a temperature between 20.0 and 29.9 and `start + i` seconds.
pub fn reading(i: u64, start: PrimitiveDateTime) -> Vec<u8> {
    let temp = 20.0 + ((i * 37) % 100) as f64 / 10.0;
    let at = start.saturating_add(time::Duration::seconds(
        i64::try_from(i).unwrap_or(i64::MAX),
    ));
    let stamp = at
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]"
        ))
        .unwrap_or_default();
    serde_json::json!({"Temperature": temp, "Data Hora": stamp})
        .to_string()
        .into_bytes()
}

/// Publishes the plan's readings, waits for confirmations, closes the session.
pub async fn simulate(
    session: &Session,
    plan: SimulatePlan,
    shutdown: impl Future<Output = ()>,
) -> Result<SimulateSummary, PublishError> {
    tokio::pin!(shutdown);
    let started = Instant::now();
    let mut ticker = plan.rate.filter(|r| *r > 0.0).map(|r| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / r.min(1e6)));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    let mut published = 0;
    let mut interrupted = false;
    while published < plan.count {
        if let Some(t) = ticker.as_mut() {
            tokio::select! {
                _ = t.tick() => {}
                () = &mut shutdown => { interrupted = true; break; }
            }
        }
        let msg = Message::new(plan.topic.clone(), reading(published, plan.start));
        tokio::select! {
            r = session.publish(msg) => { r?; }
            () = &mut shutdown => { interrupted = true; break; }
        }
        published += 1;
    }
    if !interrupted {
        tokio::select! {
            _ = session.flush(plan.confirm_timeout) => {}
            () = &mut shutdown => interrupted = true,
        }
    }
    let closed = session.close(Duration::from_secs(2)).await;
    let elapsed = started.elapsed().as_secs_f64();
    Ok(SimulateSummary {
        published,
        confirmed: closed.acked,
        unconfirmed: closed.unacked,
        interrupted,
        elapsed_s: elapsed,
        rate: if elapsed > 0.0 {
            closed.acked as f64 / elapsed
        } else {
            0.0
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn readings_have_the_seed_shape_and_distinct_times() {
        let start = datetime!(2026-11-24 10:00:00);
        let a: serde_json::Value = serde_json::from_slice(&reading(0, start)).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&reading(61, start)).unwrap();
        assert_eq!(a["Data Hora"], "2026-11-24 10:00:00");
        assert_eq!(b["Data Hora"], "2026-11-24 10:01:01");
        assert_eq!(a["Temperature"], 20.0);
        let t = b["Temperature"].as_f64().unwrap();
        assert!((20.0..30.0).contains(&t), "{t}");
    }
}
