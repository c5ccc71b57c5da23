//! What a load run measures: a latency histogram (HDR, microsecond resolution, three
//! significant figures), successes, and errors by kind. One [`Recorder`] per worker thread;
//! they are merged at the end (and for each progress line), so recording takes no lock.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Why a request did not succeed. Errors are counted, never hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// The server answered with this HTTP status (not 200/202).
    Http(u16),
    /// The JSON-RPC response carried an error with this code.
    Rpc(i64),
    /// No answer within the request timeout.
    Timeout,
    /// The connection failed (refused, reset, closed mid-response).
    Connection,
    /// The answer was not a valid HTTP/JSON-RPC/SSE response.
    Protocol,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Http(s) => write!(f, "http_{s}"),
            ErrorKind::Rpc(c) => write!(f, "jsonrpc_{c}"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::Connection => f.write_str("connection"),
            ErrorKind::Protocol => f.write_str("protocol"),
        }
    }
}

/// Highest latency the histogram tracks (longer ones are clamped to it): one hour.
const MAX_MICROS: u64 = 3_600_000_000;

/// One worker's measurements.
#[derive(Clone)]
pub struct Recorder {
    hist: Histogram<u64>,
    /// Open loop: how late the generator itself sent requests (send time minus intended
    /// time, for requests whose connection was free at the intended time), µs.
    late: Histogram<u64>,
    /// Open loop: requests that waited for their connection (the previous answer came after
    /// their intended time): the server's delay, charged in their latency.
    pub queued: u64,
    pub ok: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    /// When the last recorded request finished (count-mode runs end there).
    pub last_done: Option<Instant>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            hist: Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds"),
            late: Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds"),
            queued: 0,
            ok: 0,
            errors: BTreeMap::new(),
            last_done: None,
        }
    }

    /// A finished request: its latency (for open loop, measured from its intended send time)
    /// and its outcome. Failed requests are counted but kept out of the latency histogram.
    pub fn record(&mut self, latency: Duration, outcome: Result<(), ErrorKind>) {
        match outcome {
            Ok(()) => {
                let us = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
                self.hist
                    .record(us)
                    .expect("clamped into the histogram's range");
                self.ok += 1;
            }
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
        }
    }

    /// An open-loop request went out `lateness` after its intended time, its connection
    /// having been free then (the generator's own lateness).
    pub fn record_lateness(&mut self, lateness: Duration) {
        let us = (lateness.as_micros() as u64).clamp(1, MAX_MICROS);
        self.late
            .record(us)
            .expect("clamped into the histogram's range");
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn merge(&mut self, other: &Recorder) {
        self.hist.add(&other.hist).expect("same bounds");
        self.late.add(&other.late).expect("same bounds");
        self.queued += other.queued;
        self.ok += other.ok;
        for (k, n) in &other.errors {
            *self.errors.entry(*k).or_default() += n;
        }
        self.last_done = self.last_done.max(other.last_done);
    }

    /// Latency at `q` (0..=1) in microseconds; 0 when nothing succeeded.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(q)
        }
    }

    pub fn max_us(&self) -> u64 {
        self.hist.max()
    }

    /// The generator's lateness in an open-loop run (`None` in closed loop, where nothing
    /// has an intended time), with the p99 over which the run is flagged untrustworthy.
    pub fn lateness(&self, limit_us: u64) -> Option<Lateness> {
        if self.late.is_empty() && self.queued == 0 {
            return None;
        }
        let q = |q: f64| {
            if self.late.is_empty() {
                0
            } else {
                self.late.value_at_quantile(q)
            }
        };
        Some(Lateness {
            p50_us: q(0.5),
            p99_us: q(0.99),
            max_us: self.late.max(),
            on_time_possible: self.late.len(),
            queued: self.queued,
            limit_us,
        })
    }

    /// The summary of a run that lasted `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Summary {
            requests: self.ok + self.error_count(),
            ok: self.ok,
            errors: self
                .errors
                .iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect(),
            seconds: elapsed.as_secs_f64(),
            throughput: self.ok as f64 / secs,
            p50_us: self.quantile_us(0.5),
            p90_us: self.quantile_us(0.9),
            p99_us: self.quantile_us(0.99),
            p999_us: self.quantile_us(0.999),
            max_us: self.max_us(),
            percentiles: PLOT_QUANTILES
                .iter()
                .map(|q| (*q, self.quantile_us(*q)))
                .collect(),
            lateness: None,
        }
    }
}

/// How late an open-loop run's generator sent requests, in µs of send time past the intended
/// time, over the requests whose connection was free at their intended time. Latencies under
/// its p99 measure the generator as much as the target.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lateness {
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Requests whose connection was free at their intended time.
    pub on_time_possible: u64,
    /// Requests whose connection was still busy at their intended time (behind schedule: the
    /// wait is in their latency, whoever caused it).
    pub queued: u64,
    /// The p99 over which the run is flagged (`--max-lateness-us`).
    pub limit_us: u64,
}

impl Lateness {
    /// Whether the generator was too late for its figures to be trusted.
    pub fn out_of_range(&self) -> bool {
        self.p99_us > self.limit_us
    }
}

/// Quantiles kept for the percentile plot (0, 90, 99, 99.9, … "nines" spacing).
pub const PLOT_QUANTILES: &[f64] = &[
    0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97, 0.98, 0.99,
    0.995, 0.999, 0.9995, 0.9999, 1.0,
];

/// A run's result, as printed and as `--json` writes it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub requests: u64,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub seconds: f64,
    /// Successful requests per second.
    pub throughput: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// (quantile, latency µs) pairs for the percentile plot.
    pub percentiles: Vec<(f64, u64)>,
    /// Open loop: the generator's own lateness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lateness: Option<Lateness>,
}

impl Summary {
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |us: u64| us as f64 / 1000.0;
        writeln!(
            f,
            "latency (ms)  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            ms(self.p50_us),
            ms(self.p90_us),
            ms(self.p99_us),
            ms(self.p999_us),
            ms(self.max_us)
        )?;
        writeln!(
            f,
            "throughput    {:.1} req/s ({} ok in {:.2} s)",
            self.throughput, self.ok, self.seconds
        )?;
        if let Some(l) = &self.lateness {
            writeln!(
                f,
                "sent late     p50 {:.3}  p99 {:.3}  max {:.3} ms (the generator's own); {} found their connection still busy",
                ms(l.p50_us),
                ms(l.p99_us),
                ms(l.max_us),
                l.queued
            )?;
        }
        if self.errors.is_empty() {
            write!(f, "errors        none")?;
        } else {
            let kinds: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            write!(
                f,
                "ERRORS        {} of {} requests failed ({})",
                self.error_total(),
                self.requests,
                kinds.join(", ")
            )?;
        }
        match &self.lateness {
            Some(l) if l.out_of_range() => write!(
                f,
                "\nWARNING       the generator sent requests up to {:.3} ms late (p99, over {:.3} ms): latencies near that measure the generator, not the target",
                ms(l.p99_us),
                ms(l.limit_us)
            ),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut r = Recorder::new();
        for us in 1..=1000u64 {
            r.record(Duration::from_micros(us), Ok(()));
        }
        // HDR with 3 significant figures: within 0.1 %.
        let near = |got: u64, want: u64| got.abs_diff(want) * 1000 <= want;
        assert!(near(r.quantile_us(0.5), 500), "{}", r.quantile_us(0.5));
        assert!(near(r.quantile_us(0.99), 990), "{}", r.quantile_us(0.99));
        assert!(near(r.max_us(), 1000));
        let s = r.summary(Duration::from_secs(2));
        assert_eq!(s.ok, 1000);
        assert!((s.throughput - 500.0).abs() < 1e-9);
        assert!(s.to_string().ends_with("errors        none"));
    }

    #[test]
    fn errors_are_counted_by_kind_and_reported_last() {
        let mut a = Recorder::new();
        a.record(Duration::from_millis(1), Ok(()));
        a.record(Duration::from_millis(9), Err(ErrorKind::Http(503)));
        let mut b = Recorder::new();
        b.record(Duration::from_millis(9), Err(ErrorKind::Http(503)));
        b.record(Duration::from_millis(9), Err(ErrorKind::Rpc(-32602)));
        b.record(Duration::from_millis(9), Err(ErrorKind::Timeout));
        a.merge(&b);
        assert_eq!(a.ok, 1);
        assert_eq!(a.error_count(), 4);
        assert_eq!(a.errors[&ErrorKind::Http(503)], 2);
        // Failures stay out of the latency histogram.
        assert_eq!(a.max_us(), 1000);
        let s = a.summary(Duration::from_secs(1));
        let text = s.to_string();
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with("ERRORS        4 of 5 requests failed"),
            "{last}"
        );
        assert!(last.contains("http_503: 2") && last.contains("jsonrpc_-32602: 1"));
    }

    #[test]
    fn an_open_loop_run_reports_its_own_lateness_and_warns_out_of_range() {
        let mut r = Recorder::new();
        for us in 1..=100u64 {
            r.record(Duration::from_millis(2), Ok(()));
            r.record_lateness(Duration::from_micros(us * 10));
        }
        r.queued = 7;
        let mut s = r.summary(Duration::from_secs(1));
        assert!(r.lateness(5_000).is_some() && Recorder::new().lateness(1).is_none());
        s.lateness = r.lateness(5_000);
        let l = s.lateness.clone().unwrap();
        assert_eq!((l.on_time_possible, l.queued), (100, 7));
        assert!(
            l.p50_us.abs_diff(500) <= 1 && l.p99_us.abs_diff(990) <= 1,
            "{l:?}"
        );
        let text = s.to_string();
        assert!(text.contains("sent late     p50 0.500"), "{text}");
        assert!(
            text.contains("7 found their connection still busy"),
            "{text}"
        );
        assert_eq!(
            text.lines().last(),
            Some("errors        none"),
            "in range: {text}"
        );
        s.lateness = r.lateness(900);
        let text = s.to_string();
        assert!(
            text.lines()
                .last()
                .unwrap()
                .starts_with("WARNING       the generator"),
            "out of range: {text}"
        );
        // Through JSON and back (the --json output and the --html page keep it).
        let back: Summary = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.lateness, s.lateness);
        let closed = r#"{"requests":1,"ok":1,"errors":{},"seconds":1.0,"throughput":1.0,"p50_us":1,"p90_us":1,"p99_us":1,"p999_us":1,"max_us":1,"percentiles":[]}"#;
        assert!(serde_json::from_str::<Summary>(closed)
            .unwrap()
            .lateness
            .is_none());
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_lost() {
        let mut r = Recorder::new();
        r.record(Duration::ZERO, Ok(()));
        r.record(Duration::from_secs(10_000), Ok(()));
        assert_eq!(r.ok, 2);
        assert!(r.max_us() >= MAX_MICROS * 999 / 1000);
    }
}
