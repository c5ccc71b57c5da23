//! Request latency: one HDR histogram per method per shard (`hdrhistogram`, microseconds, 2
//! significant figures, up to a minute: longer requests count as a minute; about 20 KB each),
//! recorded by the shard alone with no lock or atomic on
//! the request path. Once a second a shard copies its histograms into its slot of the metrics
//! (a mutex only the shard, once a second, and a scrape take); a scrape merges the shards'
//! copies and writes `ringmux_request_duration_seconds` as a Prometheus histogram. A scrape
//! so sees requests up to a second old.
//!
//! A request's time is from the pipeline's message stage to its reply: for a JSON answer the
//! whole exchange; for an answer streamed as SSE, until the stream starts (its events are the
//! backend's pace, not the gateway's).

use std::cell::RefCell;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// The longest time recorded as itself, in microseconds (a minute).
const MAX_US: u64 = 60_000_000;

/// Most distinct methods recorded per shard (the method table's, and `other`).
const MAX_METHODS: usize = 64;

/// Bucket bounds written at a scrape, in seconds.
const BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 2).expect("valid bounds")
}

/// A shard's histograms as published: (method, histogram).
pub type Published = Mutex<Vec<(&'static str, Histogram<u64>)>>;

/// A shard's histograms.
#[derive(Default)]
pub struct Recorder {
    by_method: RefCell<Vec<(&'static str, Histogram<u64>)>>,
}

impl Recorder {
    /// Records one request of `method` (a method table name, or `other`) that took `took`.
    #[inline]
    pub fn record(&self, method: &'static str, took: Duration) {
        let us = (took.as_micros() as u64).clamp(1, MAX_US);
        let mut all = self.by_method.borrow_mut();
        if let Some((_, h)) = all.iter_mut().find(|(m, _)| *m == method) {
            h.saturating_record(us);
            return;
        }
        if all.len() < MAX_METHODS {
            let mut h = histogram();
            h.saturating_record(us);
            all.push((method, h));
        }
    }

    /// Copies the histograms into `slot` (the shard's, in its metrics).
    pub fn publish(&self, slot: &Published) {
        let all = self.by_method.borrow();
        if let Ok(mut s) = slot.lock() {
            s.clone_from(&all);
        }
    }
}

/// Writes `ringmux_request_duration_seconds` from every shard's published histograms.
pub fn render(out: &mut String, slots: &[&Published]) {
    use std::fmt::Write as _;
    let mut merged: Vec<(&'static str, Histogram<u64>)> = Vec::new();
    for slot in slots {
        let Ok(s) = slot.lock() else { continue };
        for (m, h) in s.iter() {
            match merged.iter_mut().find(|(n, _)| n == m) {
                Some((_, all)) => {
                    let _ = all.add(h);
                }
                None => merged.push((m, h.clone())),
            }
        }
    }
    merged.sort_by_key(|(m, _)| *m);
    out.push_str("# HELP ringmux_request_duration_seconds Time from a request's message stage to its reply (an SSE answer: until its stream starts)\n# TYPE ringmux_request_duration_seconds histogram\n");
    for (m, h) in &merged {
        for le in BUCKETS {
            let us = (le * 1e6) as u64;
            let n = h.count_between(0, us);
            let _ = writeln!(
                out,
                "ringmux_request_duration_seconds_bucket{{method=\"{m}\",le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "ringmux_request_duration_seconds_bucket{{method=\"{m}\",le=\"+Inf\"}} {}",
            h.len()
        );
        let _ = writeln!(
            out,
            "ringmux_request_duration_seconds_sum{{method=\"{m}\"}} {}",
            h.mean() * h.len() as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "ringmux_request_duration_seconds_count{{method=\"{m}\"}} {}",
            h.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_into_cumulative_buckets() {
        let (a, b) = (Recorder::default(), Recorder::default());
        a.record("tools/call", Duration::from_micros(80));
        a.record("tools/call", Duration::from_millis(3));
        b.record("tools/call", Duration::from_millis(40));
        b.record("ping", Duration::from_micros(20));
        let (sa, sb) = (Mutex::default(), Mutex::default());
        a.publish(&sa);
        b.publish(&sb);
        let mut out = String::new();
        render(&mut out, &[&sa, &sb]);
        let line = |s: &str| {
            out.lines()
                .find(|l| l.starts_with(s))
                .unwrap()
                .rsplit(' ')
                .next()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            line("ringmux_request_duration_seconds_bucket{method=\"tools/call\",le=\"0.0001\"}"),
            "1"
        );
        assert_eq!(
            line("ringmux_request_duration_seconds_bucket{method=\"tools/call\",le=\"0.005\"}"),
            "2"
        );
        assert_eq!(
            line("ringmux_request_duration_seconds_bucket{method=\"tools/call\",le=\"+Inf\"}"),
            "3"
        );
        assert_eq!(
            line("ringmux_request_duration_seconds_count{method=\"tools/call\"}"),
            "3"
        );
        assert_eq!(
            line("ringmux_request_duration_seconds_count{method=\"ping\"}"),
            "1"
        );
        let sum: f64 = line("ringmux_request_duration_seconds_sum{method=\"tools/call\"}")
            .parse()
            .unwrap();
        assert!((sum - 0.04308).abs() < 0.0005, "{sum}");
    }
}
