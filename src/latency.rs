//! Request statistics: per shard, one HDR histogram (`hdrhistogram`, microseconds, 2
//! significant figures, up to a minute: longer requests count as a minute) per series
//! `(route, backend, method, tool)`, and an error count per `(route, backend, method, code,
//! side)`. The shard records them alone, with no lock or atomic on the request path: a series
//! is found by an integer key in a map of its own ([`Key`]), its labels written once, when it
//! is first seen.
//!
//! Once a second a shard copies its tables into its slot of the metrics (a mutex only the
//! shard, once a second, and a scrape take); a scrape merges the shards' copies by labels and
//! writes `ringmux_request_duration_seconds` (a Prometheus histogram: its `_count` is the
//! request count) and `ringmux_request_errors_total`. A scrape so sees requests up to a second
//! old.
//!
//! A request's time is from the pipeline's message stage to its reply: for a JSON answer the
//! whole exchange; for an answer streamed as SSE, until the stream starts (its events are the
//! backend's pace, not the gateway's).
//!
//! Bounds: a shard keeps at most [`MAX_SERIES`] series (about 10 KB each) and as many error
//! series; beyond that a tool's requests count under `tool="(other)"`. Tools are labelled only
//! once resolved to a backend's item, so a client naming random tools makes no series.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;

/// The longest time recorded as itself, in microseconds (a minute).
const MAX_US: u64 = 60_000_000;

/// Most series (and, apart, error series) a shard keeps.
pub const MAX_SERIES: usize = 1024;

/// Bucket bounds written at a scrape, in seconds.
const BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

fn histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, MAX_US, 2).expect("valid bounds")
}

/// A series' key: a hash of its labels' sources (the method's static name, the route and
/// backend numbers, the tool's raw name), computed without allocating ([`key`]).
pub type Key = u64;

/// The key of a series (`code`: an error series' JSON-RPC code and side, else 0).
#[inline]
pub fn key(method: &'static str, route: u8, backend: Option<u16>, tool: &[u8], code: i64) -> Key {
    let seed = (method.as_ptr() as u64)
        ^ ((route as u64) << 56)
        ^ ((backend.map_or(0xffff, u64::from)) << 40)
        ^ (code as u64).rotate_left(17);
    xxhash_rust::xxh3::xxh3_64_with_seed(tool, seed)
}

type Index = HashMap<Key, usize, BuildHasherDefault<crate::prehashed::Prehashed>>;

/// One latency series: its rendered labels, the backend and method among them (for the
/// admin API's summaries), and its histogram.
#[derive(Clone)]
pub struct Series {
    pub labels: Arc<str>,
    pub backend: Arc<str>,
    pub method: &'static str,
    pub hist: Histogram<u32>,
}

/// What a new series is labelled with: its rendered labels and its backend's name.
pub struct Named {
    pub labels: String,
    pub backend: String,
}

/// A shard's tables as published.
#[derive(Default, Clone)]
pub struct Snapshot {
    pub series: Vec<Series>,
    /// (rendered labels, count)
    pub errors: Vec<(Arc<str>, u64)>,
}

/// A shard's published tables.
pub type Published = Mutex<Snapshot>;

/// A shard's request statistics.
#[derive(Default)]
pub struct Recorder {
    index: RefCell<Index>,
    errors_index: RefCell<Index>,
    now: RefCell<Snapshot>,
}

impl Recorder {
    /// Records one request of `method` in series `key` that took `took`; `labels` names the
    /// series (called once per series; with `true` when the table is full and the request is
    /// recorded under `overflow`).
    #[inline]
    pub fn record(
        &self,
        key: Key,
        method: &'static str,
        took: Duration,
        labels: impl FnOnce(bool) -> Named,
        overflow: Key,
    ) {
        let us = (took.as_micros() as u64).clamp(1, MAX_US);
        let mut now = self.now.borrow_mut();
        let mut index = self.index.borrow_mut();
        let at = match index.get(&key) {
            Some(&at) => at,
            None => {
                let (key, full) = if index.len() < MAX_SERIES {
                    (key, false)
                } else {
                    (overflow, true)
                };
                match index.get(&key) {
                    Some(&at) => at,
                    None => {
                        let named = labels(full);
                        now.series.push(Series {
                            labels: named.labels.into(),
                            backend: named.backend.into(),
                            method,
                            hist: histogram(),
                        });
                        index.insert(key, now.series.len() - 1);
                        now.series.len() - 1
                    }
                }
            }
        };
        now.series[at].hist.saturating_record(us);
    }

    /// Counts one error of series `key` (labels rendered once; beyond [`MAX_SERIES`] error
    /// series, new ones are not counted: the request's own series still is).
    pub fn error(&self, key: Key, labels: impl FnOnce() -> String) {
        let mut now = self.now.borrow_mut();
        let mut index = self.errors_index.borrow_mut();
        match index.get(&key) {
            Some(&at) => now.errors[at].1 += 1,
            None if index.len() < MAX_SERIES => {
                now.errors.push((labels().into(), 1));
                index.insert(key, now.errors.len() - 1);
            }
            None => {}
        }
    }

    /// Copies the tables into `slot` (the shard's, in its metrics).
    /// A shard never waits: when a scrape holds the slot, this second's copy is skipped.
    pub fn publish(&self, slot: &Published) {
        let now = self.now.borrow();
        if let Ok(mut s) = slot.try_lock() {
            s.clone_from(&now);
        }
    }
}

/// The shards' published tables merged by labels, sorted by them.
pub fn merged(slots: &[&Published]) -> (Vec<Series>, Vec<(Arc<str>, u64)>) {
    let mut series: HashMap<Arc<str>, Series> = HashMap::new();
    let mut errors: HashMap<Arc<str>, u64> = HashMap::new();
    for slot in slots {
        let Ok(s) = slot.lock() else { continue };
        for one in &s.series {
            match series.get_mut(&one.labels) {
                Some(all) => {
                    let _ = all.hist.add(&one.hist);
                }
                None => {
                    series.insert(one.labels.clone(), one.clone());
                }
            }
        }
        for (labels, n) in &s.errors {
            *errors.entry(labels.clone()).or_default() += n;
        }
    }
    let mut series: Vec<Series> = series.into_values().collect();
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut errors: Vec<(Arc<str>, u64)> = errors.into_iter().collect();
    errors.sort();
    (series, errors)
}

/// Writes `ringmux_request_duration_seconds` and `ringmux_request_errors_total` from every
/// shard's published tables.
pub fn render(out: &mut String, slots: &[&Published]) {
    use std::fmt::Write as _;
    let (series, errors) = merged(slots);
    out.push_str("# HELP ringmux_request_duration_seconds Time from a request's message stage to its reply (an SSE answer: until its stream starts); _count is the number of requests\n# TYPE ringmux_request_duration_seconds histogram\n");
    for Series {
        labels: l, hist: h, ..
    } in &series
    {
        for le in BUCKETS {
            let us = (le * 1e6) as u64;
            let n = h.count_between(0, us);
            let _ = writeln!(
                out,
                "ringmux_request_duration_seconds_bucket{{{l},le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "ringmux_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
            h.len()
        );
        let _ = writeln!(
            out,
            "ringmux_request_duration_seconds_sum{{{l}}} {}",
            h.mean() * h.len() as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "ringmux_request_duration_seconds_count{{{l}}} {}",
            h.len()
        );
    }
    out.push_str("# HELP ringmux_request_errors_total Requests answered with a JSON-RPC error, by code and side (client: the request was refused; backend: the backend answered the error; upstream: the backend failed or could not be reached; gateway: ringmux failed)\n# TYPE ringmux_request_errors_total counter\n");
    for (l, n) in &errors {
        let _ = writeln!(out, "ringmux_request_errors_total{{{l}}} {n}");
    }
}

/// Writes `s` as a Prometheus label value (quotes, backslashes and line ends escaped).
pub fn label_value(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(m: &str) -> impl FnOnce(bool) -> Named + '_ {
        move |_| Named {
            labels: format!("method=\"{m}\""),
            backend: String::new(),
        }
    }

    #[test]
    fn shards_merge_into_cumulative_buckets() {
        let (a, b) = (Recorder::default(), Recorder::default());
        let call = key("tools/call", 0, None, b"", 0);
        let ping = key("ping", 0, None, b"", 0);
        let m = "tools/call";
        a.record(call, m, Duration::from_micros(80), labels(m), 0);
        a.record(call, m, Duration::from_millis(3), labels(m), 0);
        b.record(call, m, Duration::from_millis(40), labels(m), 0);
        b.record(ping, "ping", Duration::from_micros(20), labels("ping"), 0);
        a.error(7, || "method=\"tools/call\",code=\"-32602\"".into());
        b.error(7, || "method=\"tools/call\",code=\"-32602\"".into());
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
        assert_eq!(
            line("ringmux_request_errors_total{method=\"tools/call\",code=\"-32602\"}"),
            "2"
        );
        let sum: f64 = line("ringmux_request_duration_seconds_sum{method=\"tools/call\"}")
            .parse()
            .unwrap();
        assert!((sum - 0.04308).abs() < 0.0005, "{sum}");
    }

    #[test]
    fn a_full_table_counts_new_series_under_the_overflow_one() {
        let r = Recorder::default();
        for i in 0..MAX_SERIES as u64 + 10 {
            r.record(
                1000 + i,
                "tools/call",
                Duration::from_micros(5),
                |full| Named {
                    labels: format!(
                        "tool=\"{}\"",
                        if full {
                            "(other)".into()
                        } else {
                            i.to_string()
                        }
                    ),
                    backend: String::new(),
                },
                1,
            );
        }
        let slot = Mutex::default();
        r.publish(&slot);
        let s = slot.lock().unwrap();
        assert_eq!(s.series.len(), MAX_SERIES + 1);
        let other = s
            .series
            .iter()
            .find(|x| &*x.labels == "tool=\"(other)\"")
            .unwrap();
        assert_eq!(other.hist.len(), 10);
        // A series' size, for the bound the module's header states.
        let bytes = std::mem::size_of::<u32>() * other.hist.distinct_values();
        assert!(bytes < 12 * 1024, "{bytes}");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        label_value(&mut s, "a\"b\\c\nd");
        assert_eq!(s, "a\\\"b\\\\c\\nd");
    }
}
