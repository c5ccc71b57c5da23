//! A backend's circuit breaker, with time passed in (one per backend per shard).
//!
//! - **Closed**: every exchange goes. Outcomes are watched two ways (passive outlier
//!   detection): failures in a row (a refused connection or garbage counts at once toward
//!   `consecutive_failures`; a timeout needs [`TIMEOUTS_IN_A_ROW`] in a row), and the share
//!   of failed exchanges (5xx answers included) among the last `window` once that many were
//!   seen (`error_rate`, 0: off). Either trips it open.
//! - **Open**: nothing goes for the backoff (`base`, doubling with each opening in a row up
//!   to 32 times; [`crate::backoff`]); callers fail fast.
//! - **Half-open**: once the backoff has passed, up to `probes` exchanges go at once (a
//!   client's call or an active health check); one that succeeds closes the circuit, one that
//!   fails opens it again for twice as long.

use std::time::{Duration, Instant};

use crate::backoff::Backoff;

/// Timeouts in a row that count as one failure: one slow call (a tool waiting on a human)
/// must not take the backend away from every other session.
pub const TIMEOUTS_IN_A_ROW: u32 = 3;

/// The longest outcome window.
pub const MAX_WINDOW: u32 = 64;

/// When a breaker trips and how it recovers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// The first wait after opening (doubling with each opening in a row).
    pub base: Duration,
    /// Hard failures in a row that open it.
    pub consecutive_failures: u32,
    /// The share of failed exchanges among the last `window` that opens it (0: off).
    pub error_rate: f32,
    pub window: u32,
    /// Exchanges let through at once while half-open.
    pub probes: u32,
}

/// The breaker's state (`ringmux_backend_circuit_state`: 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

/// What an exchange came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A refused connection, an unreadable answer: counts at once.
    Hard,
    /// No answer in time: counts after [`TIMEOUTS_IN_A_ROW`].
    Timeout,
    /// An answer, but a server error (5xx): counts toward the error rate only.
    Soft,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Breaker {
    backoff: Backoff,
    /// Hard failures in a row (timeouts in [`Breaker::timeouts`]).
    hard: u32,
    timeouts: u32,
    /// The last `filled` outcomes, newest in bit 0 (1: failed).
    ring: u64,
    filled: u32,
    /// Probes in flight while half-open.
    probing: u32,
}

impl Breaker {
    pub fn state(&self, now: Instant) -> State {
        match self.backoff.waiting(now) {
            Some(_) => State::Open,
            None if self.backoff.failures() > 0 => State::HalfOpen,
            None => State::Closed,
        }
    }

    /// Whether an exchange may go at `now`: `Err(left)` while open (`left`: the wait; zero
    /// when half-open with every probe slot taken). A half-open exchange let through holds a
    /// probe slot until its [`Breaker::record`].
    pub fn admit(&mut self, now: Instant, policy: &Policy) -> Result<(), Duration> {
        match self.state(now) {
            State::Closed => Ok(()),
            State::Open => Err(self.backoff.waiting(now).unwrap_or_default()),
            State::HalfOpen if self.probing < policy.probes.max(1) => {
                self.probing += 1;
                Ok(())
            }
            State::HalfOpen => Err(Duration::ZERO),
        }
    }

    /// Records an exchange's outcome at `now`. Returns the change it made: `Some(Some(wait))`
    /// opened (for `wait`), `Some(None)` closed, `None` no change.
    pub fn record(
        &mut self,
        now: Instant,
        outcome: Outcome,
        policy: &Policy,
    ) -> Option<Option<Duration>> {
        let was = self.state(now);
        self.probing = self.probing.saturating_sub(1);
        let window = policy.window.clamp(1, MAX_WINDOW);
        let failed = outcome != Outcome::Success;
        self.ring = (self.ring << 1) | u64::from(failed);
        self.filled = (self.filled + 1).min(window);
        if was == State::Open {
            // An exchange that began before it opened: the opening stands.
            return None;
        }
        match outcome {
            Outcome::Success => {
                self.hard = 0;
                self.timeouts = 0;
                if was == State::HalfOpen || self.backoff.failures() > 0 {
                    self.reset();
                    return Some(None);
                }
                return None;
            }
            Outcome::Hard => {
                self.timeouts = 0;
                self.hard += 1;
            }
            Outcome::Timeout => self.timeouts += 1,
            Outcome::Soft => {}
        }
        let mask = if window == 64 {
            u64::MAX
        } else {
            (1u64 << window) - 1
        };
        let rate_tripped = policy.error_rate > 0.0
            && self.filled == window
            && (self.ring & mask).count_ones() as f32 >= policy.error_rate * window as f32;
        let tripped = was == State::HalfOpen
            || self.hard >= policy.consecutive_failures.max(1)
            || self.timeouts >= TIMEOUTS_IN_A_ROW
            || rate_tripped;
        if !tripped {
            return None;
        }
        let wait = self.backoff.fail(now, policy.base);
        self.hard = 0;
        self.timeouts = 0;
        // A fresh window after each opening: the old failures opened it already.
        self.ring = 0;
        self.filled = 0;
        Some(Some(wait))
    }

    /// Opens it now (a failure seen outside an exchange, e.g. an era probe's); returns the wait.
    pub fn open(&mut self, now: Instant, policy: &Policy) -> Duration {
        self.hard = 0;
        self.timeouts = 0;
        self.ring = 0;
        self.filled = 0;
        self.backoff.fail(now, policy.base)
    }

    /// Closed, every count forgotten.
    pub fn reset(&mut self) {
        *self = Breaker::default();
    }

    /// Openings in a row.
    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            base: Duration::from_millis(100),
            consecutive_failures: 2,
            error_rate: 0.5,
            window: 10,
            probes: 1,
        }
    }

    #[test]
    fn opens_on_failures_in_a_row_then_half_opens_and_closes() {
        let (t0, p) = (Instant::now(), policy());
        let mut b = Breaker::default();
        assert_eq!(b.admit(t0, &p), Ok(()));
        assert_eq!(b.record(t0, Outcome::Hard, &p), None);
        assert_eq!(
            b.record(t0, Outcome::Hard, &p),
            Some(Some(Duration::from_millis(100)))
        );
        assert_eq!(b.state(t0), State::Open);
        assert_eq!(b.admit(t0, &p), Err(Duration::from_millis(100)));
        let t1 = t0 + Duration::from_millis(150);
        assert_eq!(b.state(t1), State::HalfOpen);
        // One probe at a time.
        assert_eq!(b.admit(t1, &p), Ok(()));
        assert_eq!(b.admit(t1, &p), Err(Duration::ZERO));
        assert_eq!(b.record(t1, Outcome::Success, &p), Some(None));
        assert_eq!(b.state(t1), State::Closed);
        assert_eq!(b.failures(), 0);
    }

    #[test]
    fn a_failed_probe_opens_it_for_twice_as_long() {
        let (t0, p) = (Instant::now(), policy());
        let mut b = Breaker::default();
        b.record(t0, Outcome::Hard, &p);
        b.record(t0, Outcome::Hard, &p);
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(b.admit(t1, &p), Ok(()));
        // A single timeout while half-open is enough.
        assert_eq!(
            b.record(t1, Outcome::Timeout, &p),
            Some(Some(Duration::from_millis(200)))
        );
        assert_eq!(b.state(t1 + Duration::from_millis(199)), State::Open);
        assert_eq!(b.state(t1 + Duration::from_millis(200)), State::HalfOpen);
    }

    #[test]
    fn timeouts_need_three_in_a_row() {
        let (t0, p) = (Instant::now(), policy());
        let mut b = Breaker::default();
        assert_eq!(b.record(t0, Outcome::Timeout, &p), None);
        assert_eq!(b.record(t0, Outcome::Timeout, &p), None);
        assert_eq!(b.record(t0, Outcome::Success, &p), None);
        assert_eq!(b.record(t0, Outcome::Timeout, &p), None);
        assert_eq!(b.record(t0, Outcome::Timeout, &p), None);
        assert!(b.record(t0, Outcome::Timeout, &p).is_some());
    }

    #[test]
    fn the_error_rate_over_a_full_window_opens_it() {
        let (t0, p) = (Instant::now(), policy());
        let mut b = Breaker::default();
        // 5xx answers interleaved with successes: never two hard failures in a row.
        for i in 0..9 {
            let o = if i % 2 == 0 {
                Outcome::Soft
            } else {
                Outcome::Success
            };
            assert_eq!(b.record(t0, o, &p), None, "{i}");
        }
        // The tenth fills the window at 5 of 10 failed.
        assert!(b.record(t0, Outcome::Soft, &p).is_some());
        // Off: never by rate.
        let off = Policy {
            error_rate: 0.0,
            ..p
        };
        let mut b = Breaker::default();
        for _ in 0..100 {
            assert_eq!(b.record(t0, Outcome::Soft, &off), None);
        }
    }

    #[test]
    fn exchanges_begun_before_it_opened_do_not_extend_it() {
        let (t0, p) = (Instant::now(), policy());
        let mut b = Breaker::default();
        b.record(t0, Outcome::Hard, &p);
        b.record(t0, Outcome::Hard, &p);
        assert_eq!(b.record(t0, Outcome::Hard, &p), None);
        assert_eq!(b.failures(), 1);
    }
}
