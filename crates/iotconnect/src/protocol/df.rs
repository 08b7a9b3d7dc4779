//! The data-frequency gate (`df`, seconds, from `sync`'s `sc.df` or command 0x17): for non-edge
//! devices the first `SendData` passes and opens a window of `df` seconds during which further
//! calls are discarded (the SDK drops them silently; the agent reports them). Runs on a
//! monotonic clock passed in, not on local wall-clock digits as the Python SDK does.

use std::time::Duration;

use super::Mono;

/// The SDK's `df` when `sync` gives none.
pub const DEFAULT_DF_SECS: u64 = 60;

/// The gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DfGate {
    df: Duration,
    next: Option<Mono>,
}

impl DfGate {
    /// A gate of `df` (zero: everything passes).
    pub fn new(df: Duration) -> Self {
        DfGate { df, next: None }
    }

    /// The current frequency.
    pub fn df(&self) -> Duration {
        self.df
    }

    /// Changes the frequency (0x17); the open window keeps its end.
    pub fn set_df(&mut self, df: Duration) {
        self.df = df;
    }

    /// Whether a send at `now` passes; a passing send opens the next window.
    pub fn admit(&mut self, now: Mono) -> bool {
        if self.df.is_zero() {
            return true;
        }
        match self.next {
            Some(next) if now < next => false,
            _ => {
                self.next = Some(now + self.df);
                true
            }
        }
    }

    /// When the next send will pass (None: now).
    pub fn next_open(&self) -> Option<Mono> {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Mono {
        Duration::from_secs(n)
    }

    #[test]
    fn first_passes_then_drops_until_df_elapsed() {
        let mut g = DfGate::new(s(10));
        assert!(g.admit(s(100)));
        assert!(!g.admit(s(101)));
        assert!(!g.admit(Duration::from_millis(109_999)));
        assert!(g.admit(s(110)));
        assert!(!g.admit(s(119)));
        assert!(g.admit(s(125)));
        assert_eq!(g.next_open(), Some(s(135)));
    }

    #[test]
    fn zero_df_never_throttles_and_changes_apply() {
        let mut g = DfGate::new(Duration::ZERO);
        assert!((0..5).all(|i| g.admit(s(i))));
        let mut g = DfGate::new(s(60));
        assert!(g.admit(s(0)));
        g.set_df(s(5));
        assert!(!g.admit(s(30)));
        assert!(g.admit(s(60)));
        assert!(!g.admit(s(64)));
        assert!(g.admit(s(65)));
    }
}
