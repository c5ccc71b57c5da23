//! The admin listener against the real binary: `/metrics`, `/healthz` and `/readyz` on its own
//! address and nowhere on the MCP listener; readiness follows the backends (every backend
//! skipped after failures: 503, and back) and a shutdown (503 while calls drain).

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;

const WAIT: Duration = Duration::from_secs(10);

/// GET `path` on `base`: (status, body).
fn get(base: &str, path: &str) -> (u16, String) {
    let mut c = Client::connect(&format!("{base}{path}")).expect("connecting");
    let resp = c.send("GET", b"", &[]).expect("GET");
    (
        resp.status,
        String::from_utf8_lossy(&resp.body).into_owned(),
    )
}

#[test]
fn operations_are_on_the_admin_listener_only() {
    let a = mock("a").start();
    let gw = gateway().shards(2).backend("a", &a.url).start();
    client(&gw.url);
    assert_ne!(gw.admin, "");
    let (status, body) = get(&gw.admin, "/metrics");
    assert_eq!(status, 200);
    assert!(
        body.contains("ringmux_requests_total{shard=\"0\"}"),
        "{body}"
    );
    assert!(
        body.contains("ringmux_backend_up{backend=\"a\"} 1"),
        "{body}"
    );
    assert_eq!(get(&gw.admin, "/healthz"), (200, "ok\n".into()));
    assert_eq!(get(&gw.admin, "/readyz"), (200, "ready\n".into()));
    assert_eq!(get(&gw.admin, "/mcp").0, 404);
    let mut c = Client::connect(&format!("{}/metrics", gw.admin)).unwrap();
    assert_eq!(c.send("POST", b"{}", &[]).unwrap().status, 405);
    // No browser may drive it: an Origin is refused, and a Host that is not loopback (DNS
    // rebinding); a POST to the API must be JSON.
    let mut c = Client::connect(&format!("{}/metrics", gw.admin)).unwrap();
    let resp = c
        .send("GET", b"", &[("origin", "http://evil.example")])
        .unwrap();
    assert_eq!(resp.status, 403);
    let raw = |request: &str| -> String {
        use std::io::{Read, Write};
        let addr = gw.admin.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let answer = raw("GET /metrics HTTP/1.1\r\nhost: evil.example:9464\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let answer = raw("GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = raw(
        "POST /api/quarantine/approve HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\n{}",
    );
    assert!(
        answer.starts_with("HTTP/1.1 404"),
        "no tool_safety here: {answer}"
    );
    // A client that trickles its request is cut off within the admin deadline.
    {
        use std::io::{Read, Write};
        let addr = gw.admin.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        // One byte a second: each read is quick, the whole request never is.
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let started = std::time::Instant::now();
        let request = b"GET /metrics HTTP/1.1\r\nhost: localhost\r\nx-slow: ";
        let mut closed = false;
        for byte in request.iter().chain(std::iter::repeat(&b'a')).take(12) {
            if s.write_all(&[*byte]).is_err() {
                closed = true;
                break;
            }
            // A second of waiting: the read times out, or finds the connection closed.
            let mut b = [0u8; 64];
            if let Ok(0) = s.read(&mut b) {
                closed = true;
                break;
            }
        }
        assert!(
            closed,
            "a trickling client was held for {:?}",
            started.elapsed()
        );
        assert!(
            started.elapsed() < Duration::from_secs(9),
            "{:?}",
            started.elapsed()
        );
    }
    // Nothing operational on the MCP listener.
    let public = gw.url.trim_end_matches("/mcp");
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(get(public, path).0, 404, "{path} on the MCP listener");
    }
}

#[test]
fn readiness_follows_the_backends() {
    let mut a = mock("a").start();
    let gw = gateway()
        .backend_with(
            "a",
            &a.url,
            "retry_backoff_ms: 4000\nconnect_timeout_ms: 500",
        )
        .start();
    let mut c = client(&gw.url);
    assert_eq!(get(&gw.admin, "/readyz").0, 200);
    assert!(!c.list_all("tools/list", "tools").unwrap().is_empty());
    // The only backend fails: the gateway is not worth sending traffic to.
    a.kill();
    let r = c
        .request(
            "tools/call",
            json!({"name": "a__echo", "arguments": {"message": "x"}}),
        )
        .unwrap();
    assert_eq!(error_code(&r), -32603, "{r}");
    let (status, body) = get(&gw.admin, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("every backend"), "{body}");
    assert!(get(&gw.admin, "/metrics")
        .1
        .contains("ringmux_backend_up{backend=\"a\"} 0"));
    // Its backoff passes: ready again (the backend gets its next chance).
    assert!(eventually(WAIT, || get(&gw.admin, "/readyz").0 == 200));
}

#[test]
fn a_shutdown_is_not_ready_while_calls_drain() {
    let a = mock("a").start();
    let gw = gateway()
        .backend("a", &a.url)
        .yaml("limits:\n  shutdown_grace_ms: 5000")
        .start();
    let caller = client(&gw.url);
    let forwarded = metric(&gw.admin, "ringmux_backend_requests_total");
    let call = std::thread::spawn(move || {
        let mut caller = caller;
        caller.request(
            "tools/call",
            json!({"name": "a__slow", "arguments": {"ms": 4000}}),
        )
    });
    assert!(eventually(WAIT, || metric(
        &gw.admin,
        "ringmux_backend_requests_total"
    ) > forwarded));
    gw.signal(libc::SIGTERM);
    assert!(
        eventually(WAIT, || get(&gw.admin, "/readyz")
            == (503, "not ready: shutting down\n".into())),
        "readiness during the drain"
    );
    // Live all the same, and the call finishes.
    assert_eq!(get(&gw.admin, "/healthz").0, 200);
    let r = call.join().unwrap().unwrap();
    assert_eq!(text_of(&r), "slept", "{r}");
}

#[test]
fn the_admin_address_is_checked() {
    for (yaml, want) in [
        ("admin:\n  listen: nowhere\n", "admin.listen"),
        (
            "listen: 127.0.0.1:7070\nadmin:\n  listen: 127.0.0.1:7070\n",
            "admin.listen: must differ from listen",
        ),
    ] {
        let cfg = std::env::temp_dir().join(format!("ringmux-admin-{}.yaml", std::process::id()));
        let listen = if yaml.starts_with("listen") {
            ""
        } else {
            "listen: 127.0.0.1:0\n"
        };
        std::fs::write(
            &cfg,
            format!("{listen}{yaml}backends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\n"),
        )
        .unwrap();
        let (ok, _, err) = run_cli(&["check", cfg.to_str().unwrap()]);
        assert!(!ok && err.contains(want), "{yaml}: {err}");
    }
}

/// The value of the series `name{labels}` exactly, in a scrape.
fn series(body: &str, name: &str, labels: &str) -> Option<u64> {
    let head = format!("{name}{{{labels}}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(head.as_str()))
        .and_then(|v| v.parse().ok())
}

/// The latency series count every request by route, backend, method and tool, over all
/// shards; buckets are cumulative and end at the count. Errors are counted by code and side:
/// the client's (an unknown tool), the backend's own answer (an argument it refuses), and a
/// backend that could not be reached (upstream).
#[test]
fn request_series_count_every_request_and_error() {
    let mut a = mock("a").start();
    let b = mock("b").start();
    let gw = gateway()
        .shards(2)
        .backend_with(
            "a",
            &a.url,
            "retry_backoff_ms: 60000\nconnect_timeout_ms: 500",
        )
        .backend("b", &b.url)
        .start();
    let mut clients: Vec<Client> = (0..4).map(|_| client(&gw.url)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        for j in 0..5 {
            let r = c
                .request(
                    "tools/call",
                    json!({"name": "a__echo", "arguments": {"message": format!("{i}-{j}")}}),
                )
                .unwrap();
            assert_eq!(text_of(&r), format!("{i}-{j}"));
        }
        c.request(
            "tools/call",
            json!({"name": "b__add", "arguments": {"a": 1, "b": 2}}),
        )
        .unwrap();
        c.request("ping", json!({})).unwrap();
    }
    let c = &mut clients[0];
    let r = c
        .request("tools/call", json!({"name": "nope", "arguments": {}}))
        .unwrap();
    assert_eq!(error_code(&r), -32602, "{r}");
    let r = c
        .request(
            "tools/call",
            json!({"name": "b__slow", "arguments": {"ms": 1_000_000_000}}),
        )
        .unwrap();
    assert_eq!(error_code(&r), -32602, "{r}");
    a.kill();
    let r = c
        .request(
            "tools/call",
            json!({"name": "a__echo", "arguments": {"message": "x"}}),
        )
        .unwrap();
    assert_eq!(error_code(&r), -32603, "{r}");
    const D: &str = "ringmux_request_duration_seconds_count";
    let call = |backend: &str, tool: &str| {
        format!("route=\"/mcp\",backend=\"{backend}\",method=\"tools/call\",tool=\"{tool}\"")
    };
    let mut body = String::new();
    assert!(
        eventually(WAIT, || {
            body = get(&gw.admin, "/metrics").1;
            series(&body, D, &call("a", "a__echo")) == Some(21)
        }),
        "{body}"
    );
    assert_eq!(series(&body, D, &call("b", "b__add")), Some(4), "{body}");
    assert_eq!(series(&body, D, &call("b", "b__slow")), Some(1), "{body}");
    // An unknown name makes no tool series of its own.
    assert_eq!(series(&body, D, &call("", "")), Some(1), "{body}");
    assert!(!body.contains("nope"), "{body}");
    let local = |m: &str| format!("route=\"/mcp\",backend=\"\",method=\"{m}\",tool=\"\"");
    assert_eq!(series(&body, D, &local("ping")), Some(4), "{body}");
    assert_eq!(series(&body, D, &local("initialize")), Some(4), "{body}");
    let buckets: Vec<u64> = body
        .lines()
        .filter(|l| {
            l.starts_with(&format!(
                "ringmux_request_duration_seconds_bucket{{{}",
                call("a", "a__echo")
            ))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(buckets.len(), 19, "{body}");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(buckets.last(), Some(&21));
    const E: &str = "ringmux_request_errors_total";
    let err = |backend: &str, code: i64, side: &str| {
        format!("route=\"/mcp\",backend=\"{backend}\",method=\"tools/call\",code=\"{code}\",side=\"{side}\"")
    };
    assert_eq!(
        series(&body, E, &err("", -32602, "client")),
        Some(1),
        "{body}"
    );
    assert_eq!(
        series(&body, E, &err("b", -32602, "backend")),
        Some(1),
        "{body}"
    );
    assert_eq!(
        series(&body, E, &err("a", -32603, "upstream")),
        Some(1),
        "{body}"
    );
    assert_eq!(
        body.lines().filter(|l| l.starts_with(E)).count(),
        3,
        "{body}"
    );
    // The catalog cache: each client's first call lists each backend once per shard at most.
    assert!(
        metric(&gw.admin, "ringmux_catalog_cache_misses_total") >= 2,
        "{body}"
    );
}

/// The access log: one JSON line per request, whatever the era, with what the request was
/// and how it ended; the last lines are written when the gateway stops.
#[test]
fn the_access_log_has_a_line_per_request() {
    let a = mock("a").start();
    let log = std::env::temp_dir().join(format!("ringmux-access-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut gw = gateway()
        .shards(2)
        .backend("a", &a.url)
        .yaml(&format!("access_log:\n  path: {}\n", log.display()))
        .start();
    let mut c = client(&gw.url);
    for i in 0..3 {
        c.request(
            "tools/call",
            json!({"name": "a__echo", "arguments": {"message": format!("m{i}")}}),
        )
        .unwrap();
    }
    let r = c
        .request("tools/call", json!({"name": "nope", "arguments": {}}))
        .unwrap();
    assert_eq!(error_code(&r), -32602);
    let r = modern_request(
        &gw.url,
        7,
        "tools/call",
        json!({"name": "a__echo", "arguments": {"message": "modern"}}),
        json!({}),
        &[],
    );
    assert_eq!(text_of(&r), "modern", "{r}");
    // Written within a second of the request (each shard sends its batch once a second).
    let lines = |log: &std::path::Path| -> Vec<Value> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect()
    };
    let mut got = Vec::new();
    assert!(
        eventually(WAIT, || {
            got = lines(&log);
            got.iter().filter(|l| l["method"] == "tools/call").count() == 5
        }),
        "{got:?}"
    );
    let calls: Vec<&Value> = got.iter().filter(|l| l["method"] == "tools/call").collect();
    let ok = calls
        .iter()
        .find(|l| l["era"] == "streamable-http" && l["name"] == "a__echo")
        .unwrap();
    assert_eq!(ok["backend"], "a");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["principal"], "anonymous");
    assert_eq!(ok["route"], "/mcp");
    assert!(ok["session"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(ok["bytes_in"].as_u64().unwrap() > 50 && ok["bytes_out"].as_u64().unwrap() > 20);
    assert!(ok["latency_us"].as_u64().is_some());
    assert!(ok.get("code").is_none());
    assert!(ok["time"].as_str().unwrap().ends_with('Z'));
    let refused = calls.iter().find(|l| l["name"] == "nope").unwrap();
    assert_eq!(refused["code"], -32602);
    assert_eq!(refused["side"], "client");
    assert!(refused.get("backend").is_none());
    let modern = calls.iter().find(|l| l["era"] == "2026-07-28").unwrap();
    assert_eq!(modern["backend"], "a");
    assert!(got.iter().any(|l| l["method"] == "initialize"));
    // The lines a stop leaves in the shards' batches are written before the process exits.
    c.request("ping", json!({})).unwrap();
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(WAIT).is_some_and(|s| s.success()));
    let got = lines(&log);
    assert_eq!(got.iter().filter(|l| l["method"] == "ping").count(), 1);
}

/// The admin API: the backends with their transport, era and latency, the catalog the shards
/// hold, sessions per shard, request figures per method and the recent errors; the page on
/// `/`; with `admin.token_sha256` every `/api/` read needs the token.
#[test]
fn the_admin_api_reports_backends_catalog_sessions_and_errors() {
    const TOKEN: &str = "admin-api-token-42";
    let a = mock("a").start();
    let token_sha: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, TOKEN.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let gw = gateway()
        .shards(2)
        .backend("a", &a.url)
        .stdio_mock("s", "")
        .yaml(&format!(
            "admin:\n  listen: 127.0.0.1:0\n  token_sha256: {token_sha}\n"
        ))
        .start();
    let api = |path: &str, token: Option<&str>| -> (u16, Value) {
        let mut c = Client::connect(&format!("{}{path}", gw.admin)).unwrap();
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let r = c.send("GET", b"", &headers).unwrap();
        (
            r.status,
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        )
    };
    assert_eq!(api("/api/overview", None).0, 401);
    assert_eq!(api("/api/overview", Some("wrong")).0, 401);
    let (status, page) = get(&gw.admin, "/");
    assert_eq!(status, 200);
    assert!(page.contains("/api/overview"), "the page reads the API");
    let mut c = client(&gw.url);
    for i in 0..3 {
        c.request(
            "tools/call",
            json!({"name": "a__echo", "arguments": {"message": format!("{i}")}}),
        )
        .unwrap();
    }
    c.request(
        "tools/call",
        json!({"name": "s__echo", "arguments": {"message": "x"}}),
    )
    .unwrap();
    let r = c
        .request("tools/call", json!({"name": "a__nope", "arguments": {}}))
        .unwrap();
    assert_eq!(error_code(&r), -32602);
    let mut all = Value::Null;
    assert!(
        eventually(WAIT, || {
            all = api("/api/overview", Some(TOKEN)).1;
            all["errors"].as_array().is_some_and(|e| !e.is_empty())
                && all["catalog"].as_array().is_some_and(|c| c.len() > 20)
        }),
        "{all}"
    );
    let backends = api("/api/backends", Some(TOKEN)).1;
    assert_eq!(backends, all["backends"]);
    let a_row = &backends[0];
    assert_eq!(a_row["name"], "a");
    assert_eq!(a_row["transport"], "streamable-http");
    assert_eq!(a_row["era"], "stateful");
    assert_eq!(a_row["up"], true);
    assert_eq!(a_row["latency"]["requests"], 3);
    assert!(a_row["latency"]["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(a_row["tools"].as_u64().unwrap() > 10);
    assert_eq!(backends[1]["transport"], "stdio");
    assert_eq!(backends[1]["latency"]["requests"], 1);
    let catalog = api("/api/catalog", Some(TOKEN)).1;
    let names: Vec<&str> = catalog
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"a__echo") && names.contains(&"s__echo"),
        "{names:?}"
    );
    let echo = catalog
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "a__echo")
        .unwrap();
    assert_eq!(echo["backend"], "a");
    assert_eq!(echo["description"], "Returns the message exactly as given");
    let shards = api("/api/sessions", Some(TOKEN)).1;
    assert_eq!(shards.as_array().unwrap().len(), 2);
    let sessions: u64 = shards
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessions"].as_u64().unwrap())
        .sum();
    assert_eq!(sessions, 1);
    let stats = api("/api/stats", Some(TOKEN)).1;
    let call = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "tools/call")
        .unwrap();
    assert_eq!(call["latency"]["requests"], 5);
    let errors = api("/api/errors", Some(TOKEN)).1;
    assert_eq!(errors[0]["name"], "a__nope");
    assert_eq!(errors[0]["code"], -32602);
    assert_eq!(errors[0]["side"], "client");
    assert_eq!(errors[0]["method"], "tools/call");
    assert_eq!(all["ready"], true);
    assert_eq!(
        all["requests"],
        all["methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["latency"]["requests"].as_u64().unwrap())
            .sum::<u64>()
    );
}

/// Scraped under load: the request series add up to exactly what the load generator
/// (ringmux-load, as a library) sent, stateful and 2026-07-28 alike, and every scrape taken
/// during the run parses with counts that never go back.
#[test]
fn metrics_under_load_add_up_to_what_the_load_generator_sent() {
    let a = mock("a").start();
    let log =
        std::env::temp_dir().join(format!("ringmux-load-access-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let gw = gateway()
        .shards(2)
        .backend("a", &a.url)
        .yaml(&format!("access_log:\n  path: {}\n", log.display()))
        .start();
    let calls = |body: &str| -> u64 {
        body.lines()
            .filter(|l| {
                l.starts_with("ringmux_request_duration_seconds_count{")
                    && l.contains("method=\"tools/call\"")
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let scraper = {
        let admin = gw.admin.clone();
        std::thread::spawn(move || {
            let (mut scrapes, mut last) = (0u32, 0u64);
            loop {
                let (status, body) = get(&admin, "/metrics");
                assert_eq!(status, 200);
                let now = calls(&body);
                assert!(now >= last, "the call count went from {last} back to {now}");
                last = now;
                scrapes += 1;
                // Until the load is over, a scrape every 20 ms.
                match stopped.recv_timeout(Duration::from_millis(20)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                    _ => return scrapes,
                }
            }
        })
    };
    let sent = load_calls(
        &gw.url,
        "a__echo",
        &[("2025-11-25", 3000), ("2026-07-28", 1000)],
    );
    stop.send(()).unwrap();
    assert!(scraper.join().unwrap() > 0);
    let mut body = String::new();
    assert!(
        eventually(WAIT, || {
            body = get(&gw.admin, "/metrics").1;
            calls(&body) == sent
        }),
        "sent {sent}, counted {}",
        calls(&body)
    );
    let one = "route=\"/mcp\",backend=\"a\",method=\"tools/call\",tool=\"a__echo\"";
    assert_eq!(
        series(&body, "ringmux_request_duration_seconds_count", one),
        Some(sent)
    );
    assert_eq!(
        series(
            &body,
            "ringmux_request_duration_seconds_bucket",
            &format!("{one},le=\"+Inf\"")
        ),
        Some(sent)
    );
    // The stateful run's sessions each initialized once.
    assert_eq!(
        series(
            &body,
            "ringmux_request_duration_seconds_count",
            "route=\"/mcp\",backend=\"\",method=\"initialize\",tool=\"\""
        ),
        Some(8)
    );
    assert!(!body.contains("ringmux_request_errors_total{"), "{body}");
    assert!(metric(&gw.admin, "ringmux_modern_requests_total") >= 1000);
    // The access log kept up: a line for every call, none dropped.
    let logged = |log: &std::path::Path| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"method\":\"tools/call\""))
            .count() as u64
    };
    let mut lines = 0;
    assert!(
        eventually(WAIT, || {
            lines = logged(&log);
            lines == sent
        }),
        "sent {sent}, logged {lines}"
    );
    assert_eq!(
        metric(&gw.admin, "ringmux_access_log_dropped_lines_total"),
        0
    );
    let _ = std::fs::remove_file(&log);
}

/// The circuit breaker with active health checks: a backend that dies is found by the checks
/// alone (no client call fails first), its circuit opens on every shard and calls fail fast
/// while its tools stay listed from the last good catalog (its age growing); once it is back,
/// the half-open probe (a health check) closes the circuit and calls go through again.
#[test]
fn the_circuit_opens_on_a_dead_backend_and_closes_after_recovery() {
    let mut a = mock("a").start();
    let b = mock("b").start();
    let port = a
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let gw = gateway()
        .shards(2)
        .backend_with(
            "a",
            &a.url,
            "retry_backoff_ms: 300\nconnect_timeout_ms: 500\nhealth_check:\n  interval_ms: 100",
        )
        .backend("b", &b.url)
        .start();
    let mut c = client(&gw.url);
    let all = c.list_all("tools/list", "tools").unwrap().len();
    assert!(all > 20);
    let state = |body: &str, value: u8| {
        (0..2).all(|s| {
            body.contains(&format!(
                "ringmux_backend_circuit_state{{backend=\"a\",shard=\"{s}\"}} {value}"
            ))
        })
    };
    let mut body = String::new();
    assert!(
        eventually(WAIT, || {
            body = get(&gw.admin, "/metrics").1;
            state(&body, 0) && metric(&gw.admin, "ringmux_health_checks_total") >= 4
        }),
        "{body}"
    );
    a.kill();
    // The checks find it down; no client has called it.
    assert!(
        eventually(WAIT, || {
            body = get(&gw.admin, "/metrics").1;
            !state(&body, 0)
        }),
        "{body}"
    );
    assert!(metric(&gw.admin, "ringmux_health_check_failures_total") >= 1);
    assert!(metric(&gw.admin, "ringmux_backend_circuit_opened_total") >= 1);
    let r = c
        .request(
            "tools/call",
            json!({"name": "a__echo", "arguments": {"message": "x"}}),
        )
        .unwrap();
    assert_eq!(error_code(&r), -32603, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("a"), "{r}");
    // Lists keep coming, from the last good catalog.
    assert_eq!(c.list_all("tools/list", "tools").unwrap().len(), all);
    let ok = c
        .request(
            "tools/call",
            json!({"name": "b__echo", "arguments": {"message": "still"}}),
        )
        .unwrap();
    assert_eq!(text_of(&ok), "still");
    assert!(
        eventually(WAIT, || {
            body = get(&gw.admin, "/metrics").1;
            body.lines().any(|l| {
                l.starts_with("ringmux_catalog_age_seconds{backend=\"a\"")
                    && l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() > 0.5
            })
        }),
        "{body}"
    );
    // Back on the same port: a health check, half-open, closes the circuit on every shard.
    let _a = mock("a")
        .arg("--listen", format!("127.0.0.1:{port}"))
        .start();
    assert!(
        eventually(WAIT, || {
            body = get(&gw.admin, "/metrics").1;
            state(&body, 0)
        }),
        "{body}"
    );
    let r = c
        .request(
            "tools/call",
            json!({"name": "a__echo", "arguments": {"message": "back"}}),
        )
        .unwrap();
    assert_eq!(text_of(&r), "back", "{r}");
}

/// A bad circuit or health-check setting is refused with its key path.
#[test]
fn circuit_settings_are_checked() {
    for (keys, want) in [
        (
            "circuit:\n      error_rate: 1.5",
            "backends[0].circuit.error_rate",
        ),
        ("circuit:\n      window: 65", "backends[0].circuit.window"),
        (
            "circuit:\n      consecutive_failures: 0",
            "backends[0].circuit",
        ),
        (
            "health_check:\n      interval_ms: 10",
            "backends[0].health_check.interval_ms",
        ),
    ] {
        let (ok, err) = check_config(
            "circuit",
            &format!("listen: 127.0.0.1:0\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\n    {keys}\n"),
        );
        assert!(!ok && err.contains(want), "{keys}: {err}");
    }
}

/// A list page lost to a dropped connection is asked again, within the backend's retry
/// budget, by a breaker that tolerates a failure (a drop is a hard failure: with the default
/// of one, the circuit opens and nothing is retried into it): the client gets the whole
/// list, and the retry is counted.
#[test]
fn a_dropped_list_page_is_retried_within_the_budget() {
    let a = mock("a").arg("--drop-lists", 2).start();
    let b = mock("b").start();
    let gw = gateway()
        .backend_with("a", &a.url, "circuit:\n  consecutive_failures: 2")
        .backend("b", &b.url)
        .start();
    let mut c = client(&gw.url);
    let tools = c.list_all("tools/list", "tools").unwrap();
    assert_eq!(tools.len(), 28, "{}", gw.logs());
    assert!(metric(&gw.admin, "ringmux_list_retries_total") >= 1);
    assert_eq!(metric(&gw.admin, "ringmux_backend_circuit_opened_total"), 0);
}

/// Off loopback without `admin.token_sha256`, the admin API is refused (a page on that
/// network could otherwise read the catalog through DNS rebinding); the probes and metrics
/// stay open.
#[test]
fn the_admin_api_off_loopback_needs_a_token() {
    let a = mock("a").start();
    let gw = gateway()
        .backend("a", &a.url)
        .yaml("admin:\n  listen: 0.0.0.0:0\n")
        .start();
    let admin = gw.admin.replace("0.0.0.0", "127.0.0.1");
    let mut c = Client::connect(&format!("{admin}/api/overview")).unwrap();
    let r = c.send("GET", b"", &[("host", "gateway.example")]).unwrap();
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let mut c = Client::connect(&format!("{admin}/healthz")).unwrap();
    assert_eq!(
        c.send("GET", b"", &[("host", "gateway.example")])
            .unwrap()
            .status,
        200
    );
}

/// `admin.listen: off` runs no admin listener (two gateways on one host need no second
/// address); the MCP endpoint serves as ever.
#[test]
fn the_admin_listener_can_be_off() {
    let a = mock("a").start();
    let gw = gateway()
        .backend("a", &a.url)
        .yaml("admin:\n  listen: \"off\"\n")
        .start();
    assert_eq!(gw.admin, "");
    let mut c = client(&gw.url);
    let r = c
        .request(
            "tools/call",
            json!({"name": "a__echo", "arguments": {"message": "x"}}),
        )
        .unwrap();
    assert_eq!(text_of(&r), "x");
}
