//! Open-loop pacing without coordinated omission (as wrk2 does it): every request has an
//! intended send time fixed in advance by the target rate, and its latency is measured from
//! that time, not from when a busy connection finally got to send it. A stalled server thus
//! shows up as the queueing delay every waiting request really suffered.

use std::time::{Duration, Instant};

/// The intended send times of one connection's requests when `connections` connections share
/// a total rate of `rate` requests per second: connection `k` sends at
/// `start + (k / connections + i) * connections / rate`, so the connections interleave evenly.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    /// Time between two of this connection's requests.
    interval: Duration,
    /// This connection's phase within the interval.
    offset: Duration,
}

impl Schedule {
    pub fn new(start: Instant, rate: f64, connections: usize, k: usize) -> Self {
        assert!(rate > 0.0 && connections > 0 && k < connections);
        let interval = Duration::from_secs_f64(connections as f64 / rate);
        let offset = interval.mul_f64(k as f64 / connections as f64);
        Schedule {
            start,
            interval,
            offset,
        }
    }

    /// When this connection's request number `i` is meant to be sent.
    pub fn intended(&self, i: u64) -> Instant {
        self.start + self.offset + self.interval.mul_f64(i as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_interleave_at_the_total_rate() {
        let start = Instant::now();
        let rate = 1000.0;
        let n = 4;
        let mut times: Vec<Duration> = (0..n)
            .flat_map(|k| {
                let s = Schedule::new(start, rate, n, k);
                (0..25).map(move |i| s.intended(i) - start)
            })
            .collect();
        times.sort();
        // 100 requests at 1000/s: one every millisecond, evenly.
        for (i, t) in times.iter().enumerate() {
            let want = Duration::from_millis(i as u64);
            assert!(t.abs_diff(want) < Duration::from_micros(2), "{i}: {t:?}");
        }
    }

    #[test]
    fn latency_counts_from_the_intended_time() {
        // A request meant for t=10ms that the connection could only send at t=50ms (the
        // previous answer was late) and that took 1ms: its latency is 41ms, not 1ms.
        let start = Instant::now();
        let s = Schedule::new(start, 100.0, 1, 0);
        let intended = s.intended(1);
        let done = start + Duration::from_millis(51);
        assert_eq!(done - intended, Duration::from_millis(41));
    }
}
