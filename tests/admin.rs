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

/// The latency histograms count every request, per method, over all shards; buckets are
/// cumulative and end at the count.
#[test]
fn latency_histograms_count_every_request() {
    let a = mock("a").start();
    let gw = gateway().shards(2).backend("a", &a.url).start();
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
        c.request("ping", json!({})).unwrap();
    }
    let series = |body: &str, name: &str| -> Option<u64> {
        body.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let mut body = String::new();
    assert!(
        eventually(WAIT, || {
            body = get(&gw.admin, "/metrics").1;
            series(
                &body,
                "ringmux_request_duration_seconds_count{method=\"tools/call\"}",
            ) == Some(20)
        }),
        "{body}"
    );
    assert_eq!(
        series(
            &body,
            "ringmux_request_duration_seconds_count{method=\"ping\"}"
        ),
        Some(4)
    );
    assert_eq!(
        series(
            &body,
            "ringmux_request_duration_seconds_count{method=\"initialize\"}"
        ),
        Some(4)
    );
    let buckets: Vec<u64> = body
        .lines()
        .filter(|l| l.starts_with("ringmux_request_duration_seconds_bucket{method=\"tools/call\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(buckets.last(), Some(&20));
}
