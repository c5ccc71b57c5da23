//! `--html FILE`: a self-contained page (inline SVG, no script, no network) with the
//! latency-percentile plot of one or more runs overlaid, and their figures in a table. The
//! runs are also embedded as JSON, so writing to an existing page adds the new run to the
//! ones already there: point several runs (direct backend, nginx, ringmux) at one file to
//! compare them.

use std::fmt::Write as _;
use std::path::Path;

use super::stats::Summary;

/// One run on the page.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Run {
    pub label: String,
    pub summary: Summary,
}

const DATA_OPEN: &str = r#"<script type="application/json" id="ringmux-load-runs">"#;
const DATA_CLOSE: &str = "</script>";

/// The runs embedded in a page this module wrote (none if it holds none).
pub fn runs_in(page: &str) -> Vec<Run> {
    let Some(at) = page.find(DATA_OPEN) else {
        return Vec::new();
    };
    let data = &page[at + DATA_OPEN.len()..];
    let Some(end) = data.find(DATA_CLOSE) else {
        return Vec::new();
    };
    serde_json::from_str(&data[..end]).unwrap_or_default()
}

/// Adds `run` to the page at `path` (creating it), replacing a run with the same label.
pub fn add_run(path: &Path, run: Run) -> std::io::Result<()> {
    let mut runs = match std::fs::read_to_string(path) {
        Ok(page) => runs_in(&page),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    runs.retain(|r| r.label != run.label);
    runs.push(run);
    std::fs::write(path, page(&runs))
}

const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

const W: f64 = 960.0;
const H: f64 = 520.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 56.0;

/// Where a quantile sits on the "nines" axis: 0 → 0, 0.9 → 1, 0.99 → 2, …; the maximum
/// goes one step past the last nine plotted.
fn nines(q: f64) -> f64 {
    if q >= 1.0 {
        5.0
    } else {
        (1.0 / (1.0 - q)).log10().min(4.5)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The whole page for `runs`.
pub fn page(runs: &[Run]) -> String {
    let mut out = String::with_capacity(16 << 10);
    out.push_str(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>ringmux-load: latency by percentile</title>\n\
         <style>body{font:14px system-ui,sans-serif;margin:24px}table{border-collapse:collapse}\
         td,th{padding:4px 10px;text-align:right;border-bottom:1px solid #ddd}td:first-child,th:first-child{text-align:left}\
         .err{color:#b00}</style></head><body>\n<h1>Latency by percentile</h1>\n",
    );
    out.push_str(&svg(runs));
    out.push_str(
        "\n<table><tr><th>run</th><th>req/s</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th>\
         <th>p99.9 ms</th><th>max ms</th><th>ok</th><th>errors</th></tr>\n",
    );
    let ms = |us: u64| us as f64 / 1000.0;
    for (i, r) in runs.iter().enumerate() {
        let s = &r.summary;
        let errors = if s.errors.is_empty() {
            "none".to_string()
        } else {
            let kinds: Vec<String> = s.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            format!("<span class=\"err\">{}</span>", escape(&kinds.join(", ")))
        };
        let _ = writeln!(
            out,
            "<tr><td><span style=\"color:{}\">&#9632;</span> {}</td><td>{:.1}</td><td>{:.3}</td>\
             <td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
            COLORS[i % COLORS.len()],
            escape(&r.label),
            s.throughput,
            ms(s.p50_us),
            ms(s.p90_us),
            ms(s.p99_us),
            ms(s.p999_us),
            ms(s.max_us),
            s.ok,
            errors
        );
    }
    out.push_str("</table>\n");
    // `<` only occurs inside JSON strings, where `\u003c` means the same.
    let data = serde_json::to_string(runs)
        .expect("runs serialize")
        .replace('<', "\\u003c");
    out.push_str(DATA_OPEN);
    out.push_str(&data);
    out.push_str(DATA_CLOSE);
    out.push_str("\n</body></html>\n");
    out
}

/// The percentile plot: x in "nines", y (latency) on a log scale.
fn svg(runs: &[Run]) -> String {
    let points = runs
        .iter()
        .flat_map(|r| r.summary.percentiles.iter().map(|(_, us)| *us));
    let (lo, hi) = points.fold((u64::MAX, 1), |(lo, hi), us| (lo.min(us), hi.max(us)));
    let lo = if lo == u64::MAX { 1 } else { lo.max(1) };
    // Whole decades around the data.
    let y0 = (lo as f64).log10().floor();
    let y1 = ((hi as f64).log10().ceil()).max(y0 + 1.0);
    let px = |x: f64| LEFT + x / 5.0 * (W - LEFT - RIGHT);
    let py = |us: f64| {
        let v = us.max(1.0).log10();
        TOP + (y1 - v) / (y1 - y0) * (H - TOP - BOTTOM)
    };
    let mut s = String::with_capacity(8 << 10);
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-size=\"12\">"
    );
    // Grid and axes.
    for (x, label) in [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "max"),
    ] {
        let _ = write!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\">{label}</text>",
            px(x),
            H - BOTTOM,
            H - BOTTOM + 18.0
        );
    }
    let mut decade = y0;
    while decade <= y1 {
        for m in [1.0, 2.0, 5.0] {
            let us = m * 10f64.powf(decade);
            if us.log10() > y1 + 1e-9 {
                break;
            }
            let y = py(us);
            let label = if us >= 1000.0 {
                format!("{} ms", us / 1000.0)
            } else {
                format!("{us} µs")
            };
            let stroke = if m == 1.0 { "#bbb" } else { "#eee" };
            let _ = write!(
                s,
                "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{stroke}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
                W - RIGHT,
                LEFT - 6.0,
                y + 4.0
            );
        }
        decade += 1.0;
    }
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">percentile</text>",
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0
    );
    // One line per run, and its legend entry.
    for (i, r) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = r
            .summary
            .percentiles
            .iter()
            .map(|(q, us)| format!("{:.1},{:.1}", px(nines(*q)), py(*us as f64)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline>",
            path.join(" "),
            escape(&r.label)
        );
        let ly = TOP + 16.0 + 18.0 * i as f64;
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{} ({:.0} req/s)</text>",
            LEFT + 12.0,
            ly - 10.0,
            LEFT + 30.0,
            ly,
            escape(&r.label),
            r.summary.throughput
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stats::Recorder;
    use std::time::Duration;

    fn run(label: &str, scale: u64) -> Run {
        let mut r = Recorder::new();
        for us in 1..=1000u64 {
            r.record(Duration::from_micros(us * scale), Ok(()));
        }
        Run {
            label: label.into(),
            summary: r.summary(Duration::from_secs(1)),
        }
    }

    #[test]
    fn runs_survive_a_round_trip_through_the_page() {
        let runs = vec![run("direct", 1), run("via <nginx> & co", 3)];
        let html = page(&runs);
        assert_eq!(html.matches("<polyline").count(), 2);
        assert!(html.contains("via &lt;nginx&gt; &amp; co"));
        // The embedded data cannot end the script element early.
        assert!(!html[html.find(DATA_OPEN).unwrap() + DATA_OPEN.len()..]
            .split(DATA_CLOSE)
            .next()
            .unwrap()
            .contains('<'));
        let back = runs_in(&html);
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].label, "via <nginx> & co");
        assert_eq!(back[1].summary.p99_us, runs[1].summary.p99_us);
    }

    #[test]
    fn adding_to_a_page_overlays_runs_and_replaces_same_labels() {
        let dir = std::env::temp_dir().join(format!("ringmux-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plot.html");
        let _ = std::fs::remove_file(&path);
        add_run(&path, run("a", 1)).unwrap();
        add_run(&path, run("b", 2)).unwrap();
        add_run(&path, run("a", 4)).unwrap();
        let runs = runs_in(&std::fs::read_to_string(&path).unwrap());
        let labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["b", "a"]);
        assert_eq!(runs[1].summary.max_us, run("a", 4).summary.max_us);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_nines_axis() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
        assert_eq!(nines(1.0), 5.0);
    }
}
