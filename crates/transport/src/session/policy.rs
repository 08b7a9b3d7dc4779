//! The failure policy, in one place: after each failed attempt or lost connection, whether the
//! session tries again and after how long, and whether the failure is worth a log line (a cause
//! is said once, not once per attempt). Pure: the clock and the random number are arguments.
//!
//! - One-shot sessions (`StartMode::RequireConnection`) give up on the first failure before
//!   they were ever connected (the caller reports it with its exit code), and later on a
//!   permanent one.
//! - Long-running sessions retry every failure, permanent ones included: a broker's
//!   certificate renewed, a policy fixed or a clock set by NTP ends the outage without anyone
//!   restarting the agent.
//! - `give_up_after` bounds the time without a connection for both.
//! - The back-off grows with each failure and starts over only after a connection stayed up
//!   for `stable_after`.

use std::time::{Duration, Instant};

use super::options::{SessionOptions, StartMode};
use crate::backoff::Backoff;
use crate::error::ConnectError;

/// What to do after a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Try again after this delay.
    Retry(Duration),
    /// Stop the session, for this reason.
    GiveUp(String),
}

/// A failure's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub next: Next,
    /// The failure differs from the one before (log it at warning level; else at debug).
    pub new_cause: bool,
    /// Failed attempts since the back-off last started over.
    pub attempt: u32,
}

#[derive(Debug)]
pub(crate) struct Policy {
    mode: StartMode,
    give_up_after: Option<Duration>,
    stable_after: Duration,
    backoff: Backoff,
    /// Since when the session has had no connection.
    offline_since: Option<Instant>,
    ever_connected: bool,
    last_failure: Option<String>,
}

impl Policy {
    pub(crate) fn new(opts: &SessionOptions, now: Instant) -> Self {
        Policy {
            mode: opts.start_mode,
            give_up_after: opts.give_up_after,
            stable_after: opts.stable_after,
            backoff: Backoff::new(opts.backoff_initial, opts.backoff_max),
            offline_since: Some(now),
            ever_connected: false,
            last_failure: None,
        }
    }

    /// A connection was made.
    pub(crate) fn connected(&mut self) {
        self.ever_connected = true;
        self.offline_since = None;
        self.last_failure = None;
    }

    /// An attempt failed (`up_for: None`) or a connection that had been up for `up_for` ended.
    /// `unit` is a random number in `[0, 1)` for the jitter.
    pub(crate) fn failed(
        &mut self,
        err: &ConnectError,
        up_for: Option<Duration>,
        now: Instant,
        unit: f64,
    ) -> Verdict {
        if up_for.is_some_and(|d| d >= self.stable_after) {
            self.backoff.reset();
        }
        let since = *self.offline_since.get_or_insert(now);
        let sentence = err.to_string();
        let new_cause = self.last_failure.as_deref() != Some(sentence.as_str());
        self.last_failure = Some(sentence);
        let next =
            if !self.mode.retries_everything() && (!self.ever_connected || err.is_permanent()) {
                Next::GiveUp(err.to_string())
            } else if let Some(limit) = self
                .give_up_after
                .filter(|limit| now.saturating_duration_since(since) >= *limit)
            {
                Next::GiveUp(format!(
                    "no connection for {} s (--give-up-after): {err}",
                    limit.as_secs()
                ))
            } else {
                Next::Retry(self.backoff.next_delay(unit))
            };
        Verdict {
            next,
            new_cause,
            attempt: self.backoff.attempts(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(mode: StartMode) -> SessionOptions {
        let mut o = SessionOptions::new("mqtt://127.0.0.1:1883".parse().unwrap());
        o.start_mode = mode;
        o.backoff_initial = Duration::from_millis(100);
        o.backoff_max = Duration::from_secs(10);
        o.stable_after = Duration::from_secs(30);
        o
    }

    fn lost() -> ConnectError {
        ConnectError::Lost {
            endpoint: "mqtt://127.0.0.1:1883".into(),
            detail: "reset".into(),
        }
    }

    fn bad_password() -> ConnectError {
        ConnectError::Refused {
            endpoint: "mqtt://127.0.0.1:1883".into(),
            code: 4,
            meaning: "bad user name or password",
            hint: "",
        }
    }

    fn delay(v: &Verdict) -> Duration {
        match v.next {
            Next::Retry(d) => d,
            Next::GiveUp(ref why) => panic!("gave up: {why}"),
        }
    }

    #[test]
    fn one_shot_gives_up_on_the_first_failure_then_only_on_permanent_ones() {
        let t = Instant::now();
        let mut p = Policy::new(&opts(StartMode::RequireConnection), t);
        assert!(matches!(
            p.failed(&lost(), None, t, 0.0).next,
            Next::GiveUp(_)
        ));
        let mut p = Policy::new(&opts(StartMode::RequireConnection), t);
        p.connected();
        delay(&p.failed(&lost(), Some(Duration::from_secs(1)), t, 0.0));
        assert!(matches!(
            p.failed(&bad_password(), None, t, 0.0).next,
            Next::GiveUp(_)
        ));
    }

    #[test]
    fn long_running_retries_permanent_failures_too() {
        let t = Instant::now();
        for mode in [StartMode::WaitForConnection, StartMode::Background] {
            let mut p = Policy::new(&opts(mode), t);
            for _ in 0..20 {
                assert!(delay(&p.failed(&bad_password(), None, t, 0.5)) <= Duration::from_secs(10));
            }
        }
    }

    #[test]
    fn accept_then_kick_keeps_growing_until_a_connection_lasts() {
        let t = Instant::now();
        let mut p = Policy::new(&opts(StartMode::Background), t);
        let mut delays = Vec::new();
        for _ in 0..6 {
            p.connected();
            delays.push(delay(&p.failed(
                &lost(),
                Some(Duration::from_millis(50)),
                t,
                0.0,
            )));
        }
        assert_eq!(
            delays,
            [50, 100, 200, 400, 800, 1600]
                .map(Duration::from_millis)
                .to_vec(),
            "a connection that drops at once does not reset the back-off"
        );
        p.connected();
        let after_stable = delay(&p.failed(&lost(), Some(Duration::from_secs(31)), t, 0.0));
        assert_eq!(after_stable, Duration::from_millis(50));
    }

    #[test]
    fn give_up_after_bounds_the_time_offline() {
        let t = Instant::now();
        let mut o = opts(StartMode::Background);
        o.give_up_after = Some(Duration::from_secs(60));
        let mut p = Policy::new(&o, t);
        delay(&p.failed(&lost(), None, t + Duration::from_secs(59), 0.0));
        let v = p.failed(&lost(), None, t + Duration::from_secs(60), 0.0);
        assert!(
            matches!(&v.next, Next::GiveUp(why) if why.contains("--give-up-after")),
            "{v:?}"
        );
        // The clock starts again with each connection.
        let mut p = Policy::new(&o, t);
        p.connected();
        let later = t + Duration::from_secs(600);
        delay(&p.failed(&lost(), Some(Duration::from_secs(600)), later, 0.0));
        delay(&p.failed(&lost(), None, later + Duration::from_secs(59), 0.0));
    }

    #[test]
    fn a_cause_is_new_once_until_it_changes() {
        let t = Instant::now();
        let mut p = Policy::new(&opts(StartMode::Background), t);
        let news: Vec<bool> = [lost(), lost(), bad_password(), bad_password(), lost()]
            .iter()
            .map(|e| p.failed(e, None, t, 0.0).new_cause)
            .collect();
        assert_eq!(news, [true, false, true, false, true]);
        p.connected();
        assert!(
            p.failed(&lost(), None, t, 0.0).new_cause,
            "after a success, say it again"
        );
    }
}
