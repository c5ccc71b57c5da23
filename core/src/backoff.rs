//! Exponential backoff after failures, with time passed in: a backend that failed is skipped
//! (an HTTP backend) or restarted later (a stdio child) after `base`, doubling with each
//! failure in a row up to 32 times `base`; a success (or a child that ran long enough) resets
//! it.

use std::time::{Duration, Instant};

/// Doublings at most: the longest wait is `base << MAX_SHIFT`.
const MAX_SHIFT: u32 = 5;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
}

impl Backoff {
    /// Records a failure at `now`; returns how long to wait before the next try.
    pub fn fail(&mut self, now: Instant, base: Duration) -> Duration {
        let wait = base * (1 << self.failures.min(MAX_SHIFT));
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + wait);
        wait
    }

    /// Forgets the failures; whether there were any.
    pub fn reset(&mut self) -> bool {
        let had = self.failures > 0;
        *self = Backoff::default();
        had
    }

    /// How long is left to wait at `now` (`None`: a try may go now).
    pub fn waiting(&self, now: Instant) -> Option<Duration> {
        self.retry_at.filter(|at| *at > now).map(|at| at - now)
    }

    /// When the next try may go, if a failure set one.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// A try may go now; the failures stay counted (the next failure waits longer).
    pub fn clear_wait(&mut self) {
        self.retry_at = None;
    }

    /// Failures in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_thirty_two_times_and_resets() {
        let (t0, base) = (Instant::now(), Duration::from_millis(100));
        let mut b = Backoff::default();
        assert_eq!(b.waiting(t0), None);
        let waits: Vec<u128> = (0..8).map(|_| b.fail(t0, base).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 3200, 3200]);
        assert_eq!(b.failures(), 8);
        assert_eq!(b.waiting(t0), Some(Duration::from_millis(3200)));
        assert_eq!(b.waiting(t0 + Duration::from_secs(4)), None);
        assert!(b.reset());
        assert!(!b.reset());
        assert_eq!(b.fail(t0, base), base);
    }
}
