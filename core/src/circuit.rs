//! A backend's circuit breaker, with time passed in (one per backend per shard).
//!
//! - **Closed**: every exchange goes. Outcomes are watched two ways (passive outlier
//!   detection): failures in a row (a refused or dropped connection, or garbage, counts at once toward
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
    /// Says nothing of the backend (one call too long or too large for its bounds, the
    /// gateway short of memory, the caller gone): gives back a probe slot, nothing more.
    Ignored,
}

/// An exchange let through by [`Breaker::admit`]: which period of the breaker it belongs to,
/// and whether it holds a half-open probe slot. Give it back exactly once: with its outcome
/// ([`Breaker::record`]) or without one ([`Breaker::release`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    generation: u32,
    probe: bool,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Breaker {
    backoff: Backoff,
    /// Changes whenever it opens or closes: an exchange let through in an earlier period
    /// (before it opened, or a probe of an earlier half-open) changes nothing.
    generation: u32,
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
    /// probe slot until its ticket is given back.
    pub fn admit(&mut self, now: Instant, policy: &Policy) -> Result<Ticket, Duration> {
        let ticket = |probe| Ticket {
            generation: self.generation,
            probe,
        };
        match self.state(now) {
            State::Closed => Ok(ticket(false)),
            State::Open => Err(self.backoff.waiting(now).unwrap_or_default()),
            State::HalfOpen if self.probing < policy.probes.max(1) => {
                self.probing += 1;
                Ok(ticket(true))
            }
            State::HalfOpen => Err(Duration::ZERO),
        }
    }

    /// Gives back an exchange's ticket with no outcome (it was dropped: cancelled, timed out
    /// by the caller).
    pub fn release(&mut self, ticket: Ticket) {
        if ticket.probe && ticket.generation == self.generation {
            self.probing = self.probing.saturating_sub(1);
        }
    }

    /// Records the outcome of the exchange `ticket` let through, at `now` (`None`: a failure
    /// seen later on an exchange already recorded, such as a stream that broke: it may open
    /// a closed circuit, never close one or count while half-open). Returns the change it
    /// made: `Some(Some(wait))` opened (for `wait`), `Some(None)` closed, `None` no change.
    pub fn record(
        &mut self,
        now: Instant,
        outcome: Outcome,
        policy: &Policy,
        ticket: Option<Ticket>,
    ) -> Option<Option<Duration>> {
        let was = self.state(now);
        match ticket {
            Some(t) if t.generation != self.generation => return None,
            Some(t) => self.release(t),
            None if was != State::Closed || outcome == Outcome::Success => return None,
            None => {}
        }
        if outcome == Outcome::Ignored || was == State::Open {
            return None;
        }
        let window = policy.window.clamp(1, MAX_WINDOW);
        let failed = outcome != Outcome::Success;
        self.ring = (self.ring << 1) | u64::from(failed);
        self.filled = (self.filled + 1).min(window);
        match outcome {
            Outcome::Success => {
                self.hard = 0;
                self.timeouts = 0;
                if was == State::HalfOpen {
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
            Outcome::Soft | Outcome::Ignored => {}
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
        Some(Some(self.open(now, policy)))
    }

    /// Opens it now (also for a failure seen outside an exchange, e.g. an era probe's);
    /// returns the wait. Exchanges let through before change nothing afterwards.
    pub fn open(&mut self, now: Instant, policy: &Policy) -> Duration {
        self.hard = 0;
        self.timeouts = 0;
        // A fresh window after each opening: the old failures opened it already.
        self.ring = 0;
        self.filled = 0;
        self.probing = 0;
        self.generation = self.generation.wrapping_add(1);
        self.backoff.fail(now, policy.base)
    }

    /// Closed, every count forgotten (a new period: earlier exchanges change nothing).
    pub fn reset(&mut self) {
        *self = Breaker {
            generation: self.generation.wrapping_add(1),
            ..Breaker::default()
        };
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
        let t = b.admit(t0, &p).unwrap();
        assert_eq!(b.record(t0, Outcome::Hard, &p, Some(t)), None);
        let t = b.admit(t0, &p).unwrap();
        assert_eq!(
            b.record(t0, Outcome::Hard, &p, Some(t)),
            Some(Some(Duration::from_millis(100)))
        );
        assert_eq!(b.state(t0), State::Open);
        assert_eq!(b.admit(t0, &p), Err(Duration::from_millis(100)));
        let t1 = t0 + Duration::from_millis(150);
        assert_eq!(b.state(t1), State::HalfOpen);
        // One probe at a time.
        let probe = b.admit(t1, &p).unwrap();
        assert_eq!(b.admit(t1, &p), Err(Duration::ZERO));
        assert_eq!(b.record(t1, Outcome::Success, &p, Some(probe)), Some(None));
        assert_eq!(b.state(t1), State::Closed);
        assert_eq!(b.failures(), 0);
    }

    #[test]
    fn a_dropped_or_ignored_probe_gives_its_slot_back() {
        let (t0, p) = (Instant::now(), policy());
        let mut b = Breaker::default();
        b.open(t0, &p);
        let t1 = t0 + Duration::from_millis(150);
        let probe = b.admit(t1, &p).unwrap();
        b.release(probe);
        let probe = b.admit(t1, &p).unwrap();
        assert_eq!(b.record(t1, Outcome::Ignored, &p, Some(probe)), None);
        assert_eq!(b.state(t1), State::HalfOpen);
        let probe = b.admit(t1, &p).unwrap();
        assert_eq!(b.record(t1, Outcome::Success, &p, Some(probe)), Some(None));
    }

    #[test]
    fn exchanges_of_an_earlier_period_change_nothing() {
        let (t0, p) = (Instant::now(), policy());
        let mut b = Breaker::default();
        // Let through while closed, ending after the circuit opened and half-opened.
        let early = b.admit(t0, &p).unwrap();
        b.open(t0, &p);
        let t1 = t0 + Duration::from_millis(150);
        assert_eq!(b.record(t1, Outcome::Success, &p, Some(early)), None);
        assert_eq!(b.state(t1), State::HalfOpen);
        assert_eq!(b.record(t1, Outcome::Hard, &p, Some(early)), None);
        assert_eq!(b.failures(), 1);
        // A late stream failure while half-open neither counts nor takes a slot.
        assert_eq!(b.record(t1, Outcome::Hard, &p, None), None);
        let probe = b.admit(t1, &p).unwrap();
        assert_eq!(b.admit(t1, &p), Err(Duration::ZERO));
        assert_eq!(b.record(t1, Outcome::Success, &p, Some(probe)), Some(None));
    }

    #[test]
    fn a_failed_probe_opens_it_for_twice_as_long() {
        let (t0, p) = (Instant::now(), policy());
        let mut b = Breaker::default();
        b.record(t0, Outcome::Hard, &p, None);
        b.record(t0, Outcome::Hard, &p, None);
        let t1 = t0 + Duration::from_millis(100);
        let probe = b.admit(t1, &p).unwrap();
        // A single timeout while half-open is enough.
        assert_eq!(
            b.record(t1, Outcome::Timeout, &p, Some(probe)),
            Some(Some(Duration::from_millis(200)))
        );
        assert_eq!(b.state(t1 + Duration::from_millis(199)), State::Open);
        assert_eq!(b.state(t1 + Duration::from_millis(200)), State::HalfOpen);
    }

    #[test]
    fn timeouts_need_three_in_a_row() {
        let (t0, p) = (Instant::now(), policy());
        let mut b = Breaker::default();
        let mut rec = |o| {
            let t = b.admit(t0, &p).unwrap();
            b.record(t0, o, &p, Some(t))
        };
        assert_eq!(rec(Outcome::Timeout), None);
        assert_eq!(rec(Outcome::Timeout), None);
        assert_eq!(rec(Outcome::Success), None);
        assert_eq!(rec(Outcome::Timeout), None);
        assert_eq!(rec(Outcome::Timeout), None);
        assert!(rec(Outcome::Timeout).is_some());
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
            let t = b.admit(t0, &p).unwrap();
            assert_eq!(b.record(t0, o, &p, Some(t)), None, "{i}");
        }
        // The tenth fills the window at 5 of 10 failed.
        let t = b.admit(t0, &p).unwrap();
        assert!(b.record(t0, Outcome::Soft, &p, Some(t)).is_some());
        // Off: never by rate.
        let off = Policy {
            error_rate: 0.0,
            ..p
        };
        let mut b = Breaker::default();
        for _ in 0..100 {
            let t = b.admit(t0, &off).unwrap();
            assert_eq!(b.record(t0, Outcome::Soft, &off, Some(t)), None);
        }
    }

    #[test]
    fn exchanges_begun_before_it_opened_do_not_extend_it() {
        let (t0, p) = (Instant::now(), policy());
        let mut b = Breaker::default();
        let late = b.admit(t0, &p).unwrap();
        b.record(t0, Outcome::Hard, &p, None);
        b.record(t0, Outcome::Hard, &p, None);
        assert_eq!(b.record(t0, Outcome::Hard, &p, Some(late)), None);
        assert_eq!(b.failures(), 1);
    }
}
