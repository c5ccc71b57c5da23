//! The load generator against the project's mock MCP server: closed and open loop, count
//! mode, every request kind, several sessions per connection, sessionless 2026-07-28
//! requests, errors counted (never hidden), and the `ringmux-load` binary's outputs.

use std::time::Duration;

use std::io::{Read, Write};
use std::process::Command;

use ringmux_load::load::{self, client::Endpoint, report, template::Template, Op, Options};
use ringmux_load::mock::{spawn, MockConfig};

fn options(url: &str) -> Options {
    Options {
        connections: 4,
        threads: 2,
        duration: Duration::from_millis(600),
        warmup: Duration::from_millis(100),
        arguments: Template::parse(r#"{"message":"hi {{seq}}"}"#).unwrap(),
        timeout: Duration::from_secs(5),
        ..Options::new(Endpoint::parse(url).unwrap())
    }
}

#[test]
fn closed_loop_mix_against_the_mock() {
    let _shared = shared();
    let mock = spawn(
        MockConfig {
            tools: 60,
            page_size: 25,
            ..MockConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let mut o = options(&mock.url());
    o.mix = vec![(Op::Call, 4), (Op::List, 1), (Op::Ping, 1)];
    let s = load::run(&o).unwrap();
    assert!(s.ok > 100, "{s}");
    assert_eq!(s.error_total(), 0, "{s}");
    assert!(
        s.p50_us > 0 && s.p50_us <= s.p99_us && s.p99_us <= s.max_us,
        "{s}"
    );
}

#[test]
fn open_loop_keeps_the_rate() {
    let _shared = shared();
    let mock = spawn(MockConfig::default(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut o = options(&mock.url());
    o.rate = Some(500.0);
    o.duration = Duration::from_secs(1);
    let s = load::run(&o).unwrap();
    // 500 req/s for one second, whatever the server's speed (it is far faster).
    assert!((450..=550).contains(&s.ok), "{s}");
    assert_eq!(s.error_total(), 0, "{s}");
}

#[test]
fn errors_are_counted_by_kind() {
    let _shared = shared();
    let mock = spawn(MockConfig::default(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut o = options(&mock.url());
    o.tool = "no_such_tool".into();
    let s = load::run(&o).unwrap();
    assert_eq!(s.ok, 0, "{s}");
    assert!(s.error_total() > 0);
    assert!(
        s.errors.keys().all(|k| k.starts_with("jsonrpc_")),
        "{:?}",
        s.errors
    );
    assert!(s.to_string().lines().last().unwrap().starts_with("ERRORS"));
}

const EVERY_KIND: [(Op, u32); 5] = [
    (Op::Call, 2),
    (Op::List, 1),
    (Op::Read, 1),
    (Op::Prompt, 1),
    (Op::Ping, 1),
];

#[test]
fn every_request_kind_over_several_sessions_per_connection() {
    let _shared = shared();
    let mock = spawn(MockConfig::default(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut o = options(&mock.url());
    o.mix = EVERY_KIND.to_vec();
    o.sessions = 10;
    o.requests = Some(600);
    o.duration = Duration::from_secs(30);
    let s = load::run(&o).unwrap();
    // Count mode: exactly the measured requests asked for, and the clock stops at the last.
    assert_eq!(s.requests, 600, "{s}");
    assert_eq!(s.error_total(), 0, "{s}");
    assert!(s.seconds < 30.0, "{s}");
}

#[test]
fn sessionless_requests_carry_meta_and_method_headers() {
    let _shared = shared();
    let cfg = MockConfig {
        modern: true,
        ..MockConfig::default()
    };
    let mock = spawn(cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut o = options(&mock.url());
    o.mix = EVERY_KIND.to_vec();
    o.protocol = "2026-07-28".into();
    let s = load::run(&o).unwrap();
    assert!(s.ok > 100, "{s}");
    assert_eq!(s.error_total(), 0, "{s}");

    // The mock checks the headers against the body: the load generator's agreement above
    // means something only if a mismatch is refused.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}"#;
    let mut tcp = std::net::TcpStream::connect(mock.addr).unwrap();
    write!(
        tcp,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\
         Mcp-Method: tools/call\r\nMcp-Name: add\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("-32020"), "{answer}");
}

fn ringmux_load(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringmux-load"))
        .args(args)
        .output()
        .expect("running ringmux-load");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn the_binary_reports_json_and_overlays_runs_on_one_page() {
    let _shared = shared();
    let mock = spawn(MockConfig::default(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let url = mock.url();
    let dir = std::env::temp_dir().join(format!("ringmux-load-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("plot.html");
    let html = html.to_str().unwrap();
    let args_file = dir.join("args.json");
    std::fs::write(&args_file, r#"{"message":"from a file {{conn}}"}"#).unwrap();
    let args_file = format!("@{}", args_file.display());
    let common = ["-c", "2", "-w", "0.1", "-n", "200", "--html", html];

    let (code, out) = ringmux_load(
        &[
            &[
                url.as_str(),
                "--args",
                &args_file,
                "--label",
                "closed",
                "--json",
            ][..],
            &common,
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{out}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["requests"], 200);
    assert_eq!(summary["errors"], serde_json::json!({}));

    let (code, out) = ringmux_load(
        &[
            &[url.as_str(), "-R", "1000", "--label", "open"][..],
            &common,
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().any(|l| l == "errors        none"), "{out}");
    // An open loop reports how late the generator itself sent, and says so last when that
    // is past --max-lateness-us.
    let late = out
        .lines()
        .find(|l| l.starts_with("sent late     p50"))
        .unwrap_or_else(|| panic!("{out}"));
    let p99_ms: f64 = late.split_whitespace().nth(5).unwrap().parse().unwrap();
    let last = out.lines().last().unwrap();
    if p99_ms > 0.5 {
        assert!(
            last.starts_with("WARNING       the generator sent"),
            "{out}"
        );
    } else {
        assert_eq!(last, "errors        none", "{out}");
    }

    let page = std::fs::read_to_string(html).unwrap();
    let runs = report::runs_in(&page);
    let labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["closed", "open"]);
    assert_eq!(page.matches("<polyline").count(), 2);

    // Errors: exit 1, and the last line says so.
    let (code, out) = ringmux_load(&[url.as_str(), "-c", "1", "-n", "20", "--tool", "nope"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("ERRORS        20 of 20"),
        "{out}"
    );
    // Usage errors: exit 2.
    assert_eq!(ringmux_load(&[url.as_str(), "--mix", "bogus"]).0, 2);
    assert_eq!(ringmux_load(&[url.as_str(), "--args", "[1]"]).0, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Coordinated omission, proven against a server of known behaviour: the mock stalls 200 ms
/// every second. The open loop measures each request from its intended send time, so the
/// requests the stall held back carry their wait: its p99 shows the stall, and the report
/// counts the requests sent behind schedule. The closed loop waits for each answer before the
/// next request, so only the one request in flight sees each stall: its p99 hides it.
#[test]
fn the_open_loop_sees_a_stall_the_closed_loop_hides() {
    let _one = timing();
    let mock = spawn(
        MockConfig {
            stall: Some((Duration::from_millis(200), Duration::from_secs(1))),
            ..MockConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let mut o = options(&mock.url());
    o.connections = 1;
    o.threads = 1;
    o.duration = Duration::from_millis(2500);
    o.warmup = Duration::ZERO;

    let closed = load::run(&o).unwrap();
    assert_eq!(closed.error_total(), 0, "{closed}");
    // Two or three stalls over thousands of requests: each holds one request.
    assert!(closed.ok > 1000, "{closed}");
    assert!(closed.max_us >= 100_000, "the stall is there: {closed}");
    assert!(closed.p99_us < 50_000, "the closed loop hides it: {closed}");

    o.rate = Some(500.0);
    let open = load::run(&o).unwrap();
    assert_eq!(open.error_total(), 0, "{open}");
    // About 20% of the requests are due during a stall or its backlog: the p99 carries it.
    assert!(open.p99_us >= 100_000, "the open loop shows it: {open}");
    eprintln!("closed loop:\n{closed}\nopen loop at 250 req/s:\n{open}");
    let late = open
        .lateness
        .as_ref()
        .expect("open loop reports its lateness");
    assert!(
        late.queued >= 50,
        "requests sent behind schedule are counted: {open}"
    );
}

/// Timing-sensitive tests run alone: a concurrent test's threads would take the CPU they
/// measure (the others share the lock and run together).
static TIMING: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn timing() -> std::sync::RwLockWriteGuard<'static, ()> {
    TIMING.write().unwrap_or_else(|e| e.into_inner())
}

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    TIMING.read().unwrap_or_else(|e| e.into_inner())
}

/// Against a server whose latency is known (the mock answering 2 ms after each request, timed
/// to the microsecond), the open loop at a modest rate reports that latency: p50 and p90
/// within a fraction of a millisecond above it, p99 within a few (debug builds on the VM: p50
/// 2.20-2.36 ms, p90 2.27-2.53 ms, p99 2.62-4.1 ms). With the former millisecond timers (the
/// generator's and the mock's), p50 was 4.2 ms and p90 4.6 ms.
/// The generator's own lateness is reported, and small.
///
/// (A CI run on 2026-12-04 had p90 3.22 ms with the generator's own p99 lateness at 1.48 ms,
/// flagged by it: a burst of stolen CPU, hence the measurement taken again below.)
#[test]
fn the_open_loop_reports_a_known_latency() {
    let _one = timing();
    let latency = Duration::from_millis(2);
    let mock = spawn(
        MockConfig {
            latency,
            ..MockConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let mut o = options(&mock.url());
    o.connections = 4;
    o.threads = 1;
    o.rate = Some(250.0);
    o.duration = Duration::from_secs(3);
    o.warmup = Duration::from_millis(200);
    // A run in which the generator itself was late (its own p99 over `max_lateness`, which it
    // flags: the machine took its CPU) measured the machine, not the mock: it is measured
    // again, up to three times in all; the bounds below apply to the first run the generator
    // vouches for (or to the last one, flagged, if none is).
    let mut s = load::run(&o).unwrap();
    for _ in 1..3 {
        let late = s.lateness.as_ref().expect("open loop reports its lateness");
        if !late.out_of_range() {
            break;
        }
        eprintln!("the generator was late, measuring again:\n{s}");
        s = load::run(&o).unwrap();
    }
    eprintln!("mock at 2 ms, open loop at 250 req/s:\n{s}");
    assert_eq!(s.error_total(), 0, "{s}");
    assert!((700..=800).contains(&s.ok), "{s}");
    let floor = latency.as_micros() as u64;
    assert!(
        (floor..=floor + 700).contains(&s.p50_us),
        "p50 within 0.7 ms of 2 ms: {s}"
    );
    assert!(
        (floor..=floor + 1_000).contains(&s.p90_us),
        "p90 within 1 ms of 2 ms: {s}"
    );
    // p99 is where a shared machine's hiccups show (a few ms of stolen CPU delays every
    // request due meanwhile): bounded, not tight.
    assert!(
        (floor..=floor + 3_000).contains(&s.p99_us),
        "p99 within 3 ms of 2 ms: {s}"
    );
    let late = s.lateness.as_ref().expect("open loop reports its lateness");
    assert!(late.p50_us <= 50, "sent on time: {s}");
}

/// Against the mock answering in microseconds, the open loop at a rate well under capacity
/// reports about what the closed loop does (debug builds on the 2-core VM: 0.15-0.18 ms
/// against 0.18-0.19 ms; with the former millisecond timer 1.22 ms against 0.19 ms).
#[test]
fn the_open_loop_under_capacity_reports_what_the_closed_loop_does() {
    let _one = timing();
    let mock = spawn(MockConfig::default(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut o = options(&mock.url());
    o.connections = 1;
    o.threads = 1;
    o.duration = Duration::from_millis(1500);
    o.warmup = Duration::from_millis(200);
    let closed = load::run(&o).unwrap();
    assert_eq!(closed.error_total(), 0, "{closed}");
    // Well under the closed loop's rate (thousands per second here).
    o.rate = Some((closed.throughput / 10.0).clamp(200.0, 2_000.0));
    let open = load::run(&o).unwrap();
    eprintln!("closed loop:\n{closed}\nopen loop:\n{open}");
    assert_eq!(open.error_total(), 0, "{open}");
    let allowed = 3 * closed.p50_us.max(50);
    assert!(
        open.p50_us <= allowed,
        "open-loop p50 {} µs within 3x the closed loop's {} µs: {open}",
        open.p50_us,
        closed.p50_us
    );
}
