//! Reconnect delays: exponential growth with jitter, capped. Pure: the random number is an
//! argument, so the schedule is tested without sleeping.

use std::time::Duration;

/// Exponential back-off with "equal jitter": each delay is half the current step plus a random
/// share of the other half, so many agents restarted together do not reconnect in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `initial` and doubles per failure up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The next delay; `unit` is a random number in `[0, 1)`.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(31));
        let step = self.initial.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Failures since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Call after a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps_and_stays_within_jitter_bounds() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let lows: Vec<_> = (0..6).map(|_| b.next_delay(0.0)).collect();
        assert_eq!(
            lows,
            [50, 100, 200, 400, 500, 500]
                .map(Duration::from_millis)
                .to_vec(),
            "lower bound is half the step"
        );
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let highs: Vec<_> = (0..6).map(|_| b.next_delay(1.0)).collect();
        assert_eq!(
            highs,
            [100, 200, 400, 800, 1000, 1000]
                .map(Duration::from_millis)
                .to_vec()
        );
    }

    #[test]
    fn reset_starts_over_and_huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_secs(30));
        for _ in 0..200 {
            assert!(b.next_delay(0.5) <= Duration::from_secs(30));
        }
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert!(b.next_delay(0.0) == Duration::from_millis(5));
    }
}
