//! Hardening: what a hostile client, a curious child process and an operator's signal do to
//! the real binary (hostile backends: tests/hardening_backends.rs). Each test names the defect
//! it guards against.

#[path = "support/harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use harness::*;

const WAIT: Duration = Duration::from_secs(10);

fn addr_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

/// Descriptor numbers of `pid` with what each points to.
fn fd_links(pid: u32) -> Vec<(u32, String)> {
    let mut out: Vec<(u32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .filter_map(|e| {
            let e = e.ok()?;
            let n = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((n, target.display().to_string()))
        })
        .collect();
    out.sort();
    out
}

const O_CLOEXEC: u32 = 0o2000000;

/// The open flags of descriptor `fd` of `pid` (close-on-exec when gone: nothing to inherit).
fn fd_flags(pid: u32, fd: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .ok()
        .and_then(|info| {
            let f = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
            u32::from_str_radix(f.trim(), 8).ok()
        })
        .unwrap_or(O_CLOEXEC)
}

/// A stdio child must not inherit the gateway's client sockets (it could write forged
/// responses to other clients, or keep a closed connection from ending), and every
/// descriptor the gateway holds is close-on-exec.
#[test]
fn stdio_children_get_only_stdin_stdout_stderr() {
    let h = mock("h").start();
    let gw = gateway().backend("h", &h.url).stdio_mock("s", "").start();
    // Client connections open while the child is spawned.
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(addr_of(&gw.url)).unwrap())
        .collect();
    let mut c = client(&gw.url);
    let mut child = None;
    assert!(
        eventually(WAIT, || {
            child = children_of(gw.pid()).first().copied();
            child.is_some()
        }),
        "no stdio child"
    );
    // What the child holds besides stdin, stdout and stderr is its own (the mock's runtime:
    // anon inodes); a socket or pipe there came from the gateway.
    let inherited: Vec<_> = fd_links(child.unwrap())
        .into_iter()
        .filter(|(fd, target)| {
            *fd > 2 && (target.starts_with("socket:") || target.starts_with("pipe:"))
        })
        .collect();
    assert!(
        inherited.is_empty(),
        "the stdio child inherited the gateway's descriptors: {inherited:?}"
    );
    // The session works through the child.
    let tools = c.list_all("tools/list", "tools").unwrap();
    assert!(tools.iter().any(|t| t["name"] == "s__echo"), "{tools:?}");

    // Every socket, pipe and anon inode of the gateway is close-on-exec, except what it
    // inherited from this test (cargo's jobserver pipe, say), which is not its doing.
    let ours: BTreeSet<String> = fd_links(std::process::id())
        .into_iter()
        .filter(|(fd, _)| fd_flags(std::process::id(), *fd) & O_CLOEXEC == 0)
        .map(|(_, target)| target)
        .collect();
    for s in &mut idle {
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .unwrap();
    }
    for s in &mut idle {
        let mut b = [0u8; 64];
        let _ = s.read(&mut b).unwrap();
    }
    for (fd, target) in fd_links(gw.pid()) {
        if fd <= 2 || ours.contains(&target) {
            continue;
        }
        let flags = fd_flags(gw.pid(), fd);
        assert!(
            flags & O_CLOEXEC != 0,
            "gateway fd {fd} ({target}) is not close-on-exec (flags {flags:o})"
        );
    }
}

/// Reads from `s` until a status line arrives or `limit` passes, writing one more byte of
/// `trickle` every 100 ms meanwhile (a slowloris client). The status, if any.
fn trickle_until_answered(s: &mut TcpStream, trickle: &[u8], limit: Duration) -> Option<u16> {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let until = std::time::Instant::now() + limit;
    let mut got = Vec::new();
    let mut next = trickle.iter();
    while std::time::Instant::now() < until {
        if let Some(b) = next.next() {
            if s.write_all(&[*b]).is_err() {
                break;
            }
        }
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(2).any(|w| w == b"\r\n") {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    let line = String::from_utf8_lossy(&got);
    line.split(' ').nth(1).and_then(|s| s.parse().ok())
}

/// Slowloris: a head or body trickled one byte at a time gets 408 by its deadline; reading a
/// byte does not restart the clock.
#[test]
fn trickled_heads_and_bodies_get_408_by_their_deadline() {
    let a = mock("a").start();
    let gw = gateway()
        .yaml("limits:\n  header_timeout_ms: 600\n  body_timeout_ms: 600\n  min_body_rate: 1000000")
        .backend("a", &a.url)
        .start();
    let head = b"POST /mcp HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\ncontent-length: 200\r\n\r\n";
    // 100 ms a byte: the head would take 25 s; its deadline is 0.6 s after the first byte.
    let mut s = TcpStream::connect(addr_of(&gw.url)).unwrap();
    assert_eq!(
        trickle_until_answered(&mut s, head, Duration::from_secs(8)),
        Some(408),
        "a trickled head must time out"
    );
    // The head at once, then the body trickled.
    let mut s = TcpStream::connect(addr_of(&gw.url)).unwrap();
    s.write_all(head).unwrap();
    let body = [b' '; 200];
    assert_eq!(
        trickle_until_answered(&mut s, &body, Duration::from_secs(8)),
        Some(408),
        "a trickled body must time out"
    );
    // An honest client is unaffected.
    let mut c = client(&gw.url);
    c.request("ping", json!({})).unwrap();
}

/// A flood of client connections cannot take the descriptors that existing sessions need
/// for their backends: past `limits.max_connections` (by default three quarters of the
/// descriptor limit) new connections are closed at once, and the warning is rate-limited.
#[test]
fn a_connection_flood_leaves_descriptors_for_existing_sessions() {
    let a = mock("a").start();
    let gw = gateway().nofile(128).backend("a", &a.url).start();
    // Three connections of one session, opened before the flood.
    let c = client(&gw.url);
    let siblings: Vec<Client> = (0..3).map(|_| sibling(&gw.url, &c)).collect();
    let flood: Vec<TcpStream> = (0..160)
        .filter_map(|_| TcpStream::connect(addr_of(&gw.url)).ok())
        .collect();
    assert!(
        eventually(WAIT, || fds_of(gw.pid()) >= 100),
        "the flood did not reach the gateway"
    );
    // Three concurrent calls need backend connections the pool does not have yet.
    let handles: Vec<_> = siblings
        .into_iter()
        .map(|mut s| {
            std::thread::spawn(move || {
                s.request(
                    "tools/call",
                    json!({"name": "a__slow", "arguments": {"ms": 300}}),
                )
                .unwrap()
            })
        })
        .collect();
    for h in handles {
        let answer = h.join().unwrap();
        assert_eq!(text_of(&answer), "slept", "{answer}");
    }
    drop(flood);
    let logs = gw.logs();
    let warnings = logs
        .lines()
        .filter(|l| l.contains("accept failed") || l.contains("connection limit reached"))
        .count();
    assert!(warnings <= 4, "{warnings} warnings logged:\n{logs}");
    assert!(
        logs.lines()
            .any(|l| l.contains("client connection limit") && l.trim_end().ends_with("96")),
        "three quarters of 128 descriptors: {logs}"
    );
}

/// One large request must not pin its size on an idle connection.
#[test]
fn large_messages_leave_no_large_buffers_behind() {
    let a = mock("a").start();
    let gw = gateway().backend("a", &a.url).start();
    let c = client(&gw.url);
    let base = held_memory_of(gw.pid());
    let big = "x".repeat(3 << 20);
    let mut held = Vec::new();
    for _ in 0..16 {
        let mut s = sibling(&gw.url, &c);
        let answer = s
            .request(
                "tools/call",
                json!({"name": "a__echo", "arguments": {"message": big}}),
            )
            .unwrap();
        assert_eq!(text_of(&answer).len(), big.len());
        held.push(s);
    }
    // 16 idle connections that each carried 3 MiB in and out: without trimming they held
    // 137 MiB more (4a427fd); with it, 25-36 MiB (what the allocator keeps of freed pages).
    memory_settles_under(gw.pid(), base + (64 << 20), "idle connections");
    drop(held);
}

fn raw(url: &str, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr_of(url)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Smaller mismatches with HTTP and MCP: each gets the status and code it should.
#[test]
fn http_and_transport_edge_cases_get_precise_answers() {
    let a = mock("a").start();
    let gw = gateway().backend("a", &a.url).start();
    let c = client(&gw.url);
    let sid = c.session.clone().unwrap();
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let post = |headers: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\n{headers}content-type: application/json\r\naccept: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{ping}",
            ping.len()
        )
    };
    // No Host: malformed HTTP/1.1 (400), not a DNS-rebinding refusal (403).
    let r = raw(
        &gw.url,
        post(&format!("mcp-session-id: {sid}\r\n")).as_bytes(),
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(r.contains("Host"), "{r}");
    // Absolute-form target: its authority is the host (RFC 9112 §3.2.2).
    let absolute = post(&format!("mcp-session-id: {sid}\r\n")).replacen(
        "POST /mcp",
        &format!("POST http://{}/mcp", addr_of(&gw.url)),
        1,
    );
    let r = raw(&gw.url, absolute.as_bytes());
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains(r#""id":1"#),
        "{r}"
    );
    let evil = post(&format!("host: localhost\r\nmcp-session-id: {sid}\r\n")).replacen(
        "POST /mcp",
        "POST http://evil.example:80/mcp",
        1,
    );
    let r = raw(&gw.url, evil.as_bytes());
    assert!(
        r.starts_with("HTTP/1.1 403"),
        "the target's host is checked: {r}"
    );
    // CONNECT: no tunnels here.
    let r = raw(
        &gw.url,
        b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\nconnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 405"), "{r}");
    // Duplicated session or version headers: 400.
    for dup in [
        format!("host: localhost\r\nmcp-session-id: {sid}\r\nmcp-session-id: {sid}\r\n"),
        format!("host: localhost\r\nmcp-session-id: {sid}\r\nmcp-protocol-version: 2025-06-18\r\nmcp-protocol-version: 2025-03-26\r\n"),
        format!("host: localhost\r\nhost: localhost\r\nmcp-session-id: {sid}\r\n"),
    ] {
        let r = raw(&gw.url, post(&dup).as_bytes());
        assert!(r.starts_with("HTTP/1.1 400"), "{dup}: {r}");
        assert!(r.contains("more than once"), "{r}");
    }
    // A Last-Event-ID that names no event of the session: an error, not an empty stream.
    for id in ["7.3", "0.999999", "garbage"] {
        let mut g = sibling(&gw.url, &c);
        let r = g
            .send(
                "GET",
                b"",
                &[("accept", "text/event-stream"), ("last-event-id", id)],
            )
            .unwrap();
        assert_eq!(r.status, 400, "Last-Event-ID {id}");
        assert_eq!(error_code(&r.messages()[0]), -32600);
    }
    // A legacy client's request before initialize is answered on its stream.
    let base = gw.url.trim_end_matches("/mcp").to_owned();
    let mut stream = Client::connect(&format!("{base}/sse"))
        .unwrap()
        .open_stream("GET", b"", &[("accept", "text/event-stream")])
        .unwrap();
    let endpoint = stream.next_event(WAIT).unwrap().unwrap();
    let path = String::from_utf8(endpoint.data).unwrap();
    let mut poster = Client::connect(&format!("{base}{path}")).unwrap();
    let r = poster
        .send(
            "POST",
            br#"{"jsonrpc":"2.0","id":"early","method":"tools/list"}"#,
            &[],
        )
        .unwrap();
    assert_eq!(r.status, 202);
    let answer = stream
        .next_message(WAIT)
        .unwrap()
        .expect("the early request is answered");
    assert_eq!(answer["id"], "early");
    assert_eq!(error_code(&answer), -32600);
}

/// A session keeps what it needs of its `initialize` (version, capabilities, clientInfo),
/// bounded: not the whole body for its lifetime.
#[test]
fn sessions_keep_a_bounded_part_of_their_initialize() {
    let a = mock("a").start();
    let gw = gateway().backend("a", &a.url).start();
    let base = held_memory_of(gw.pid());
    let pad = "p".repeat(2 << 20);
    let init = |extra: Value| {
        let mut params = json!({"protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "big", "version": "1"}});
        params
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}).to_string()
    };
    for _ in 0..100 {
        let mut c = Client::connect(&gw.url).unwrap();
        let r = c
            .send("POST", init(json!({"_meta": {"pad": pad}})).as_bytes(), &[])
            .unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    // 100 sessions × 2 MiB kept whole would be 200 MiB.
    memory_settles_under(gw.pid(), base + (64 << 20), "idle sessions");
    // Capabilities too large to keep are refused, precisely.
    let mut c = Client::connect(&gw.url).unwrap();
    let r = c
        .send(
            "POST",
            init(json!({"capabilities": {"experimental": {"x": "y".repeat(64 << 10)}}})).as_bytes(),
            &[],
        )
        .unwrap();
    let msg = &r.messages()[0];
    assert_eq!(error_code(msg), -32602, "{msg}");
    assert!(msg["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_initialize_params_bytes"));
}

/// SIGTERM in the middle of a call: no new connections, idle ones closed, the call in
/// progress answered, GET streams ended with a retry hint, stdio children stopped, exit 0.
#[test]
fn sigterm_drains_calls_in_progress_and_exits_cleanly() {
    let a = mock("a").start();
    let mut gw = gateway()
        .shards(2)
        .backend("a", &a.url)
        .stdio_mock("s", "mode: shared\n")
        .start();
    let c = client(&gw.url);
    let caller = sibling(&gw.url, &c);
    let mut idle = TcpStream::connect(addr_of(&gw.url)).unwrap();
    idle.set_read_timeout(Some(WAIT)).unwrap();
    let mut stream = sibling(&gw.url, &c)
        .open_stream("GET", b"", &[("accept", "text/event-stream")])
        .unwrap();
    assert_eq!(stream.status, 200);
    let mut child = None;
    assert!(eventually(WAIT, || {
        child = children_of(gw.pid()).first().copied();
        child.is_some()
    }));
    // The call is in progress at the backend when the signal comes.
    let call = slow_call_in_progress(&gw, caller, 1500);
    gw.signal(libc::SIGTERM);
    let answer = call
        .join()
        .unwrap()
        .expect("the call in progress is answered");
    assert_eq!(text_of(&answer), "slept", "{answer}");
    let mut b = [0u8; 16];
    assert_eq!(
        idle.read(&mut b).unwrap(),
        0,
        "an idle connection is closed"
    );
    let mut saw_retry = false;
    while let Some(ev) = stream.next_event(WAIT).unwrap() {
        saw_retry |= ev.retry.is_some();
    }
    assert!(saw_retry, "the GET stream ends with a retry hint");
    let status = gw
        .wait_exit(Duration::from_secs(20))
        .expect("the gateway exits");
    assert!(status.success(), "{status:?}");
    assert!(
        TcpStream::connect(addr_of(&gw.url)).is_err(),
        "nothing listens any more"
    );
    assert!(
        eventually(WAIT, || is_dead(child.unwrap())),
        "the stdio child was stopped"
    );
    let logs = gw.logs();
    assert!(logs.contains("shutting down"), "{logs}");
}

/// A call longer than the grace period does not hold the shutdown; a second signal exits at
/// once; SIGTERM works when SIGINT was ignored by whoever started the gateway.
#[test]
fn shutdown_is_bounded_and_a_second_signal_is_final() {
    let a = mock("a").start();
    let mut gw = gateway()
        .yaml("limits:\n  shutdown_grace_ms: 500")
        .backend("a", &a.url)
        .start();
    let caller = client(&gw.url);
    let call = slow_call_in_progress(&gw, caller, 20000);
    gw.signal(libc::SIGTERM);
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .expect("the grace period bounds the shutdown");
    assert!(status.success(), "{status:?}");
    let cut = call.join().unwrap().expect("the long call is answered");
    assert_eq!(error_code(&cut), -32603, "{cut}");
    assert!(cut["error"]["message"]
        .as_str()
        .unwrap()
        .contains("shutting down"));

    let mut gw = gateway().backend("a", &a.url).start();
    let caller = client(&gw.url);
    let call = slow_call_in_progress(&gw, caller, 20000);
    gw.signal(libc::SIGINT);
    assert!(eventually(WAIT, || stopped_accepting(&gw.url)));
    gw.signal(libc::SIGTERM);
    let status = gw
        .wait_exit(Duration::from_secs(5))
        .expect("a second signal exits at once");
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status:?}");
    let _ = call.join();

    let mut gw = gateway().ignoring_sigint().backend("a", &a.url).start();
    client(&gw.url).request("ping", json!({})).unwrap();
    gw.signal(libc::SIGTERM);
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .expect("SIGTERM stops a gateway that ignores SIGINT");
    assert!(status.success(), "{status:?}");
}

/// Whether the gateway has stopped accepting (it is draining).
fn stopped_accepting(url: &str) -> bool {
    TcpStream::connect(addr_of(url)).is_err()
}

/// A client that stops reading its answers is cut off after the write timeout instead of
/// holding its connection (and what is queued for it) forever.
#[test]
fn a_client_that_stops_reading_is_cut_off() {
    let a = mock("a").tools(100).start();
    let gw = gateway()
        .yaml("limits:\n  write_timeout_ms: 500")
        .backend("a", &a.url)
        .start();
    let c = client(&gw.url);
    let sid = c.session.clone().unwrap();
    let open = |url: &str| metric(url, "ringmux_open_connections");
    let before = open(&gw.admin);
    assert!(
        before >= 1,
        "the gauge counts open connections (this scrape's at least)"
    );
    let mut s = TcpStream::connect(addr_of(&gw.url)).unwrap();
    // 500 pipelined lists (about 20 MB of answers) that are never read.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let one = format!(
        "POST /mcp HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\naccept: application/json\r\nmcp-session-id: {sid}\r\nmcp-protocol-version: 2025-06-18\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let writer = std::thread::spawn(move || {
        for _ in 0..500 {
            if s.write_all(one.as_bytes()).is_err() {
                break;
            }
        }
        s
    });
    assert!(
        eventually(Duration::from_secs(20), || open(&gw.admin) <= before),
        "the connection that does not read is still open"
    );
    drop(writer.join().unwrap());
}

/// Starts `a__slow` (`ms` long) on `caller` and returns once the gateway forwarded it.
fn slow_call_in_progress(
    gw: &Proc,
    mut caller: Client,
    ms: u64,
) -> std::thread::JoinHandle<std::io::Result<Value>> {
    let forwarded = metric(&gw.admin, "ringmux_backend_requests_total");
    let call = std::thread::spawn(move || {
        caller.request(
            "tools/call",
            json!({"name": "a__slow", "arguments": {"ms": ms}}),
        )
    });
    assert!(eventually(WAIT, || {
        metric(&gw.admin, "ringmux_backend_requests_total") > forwarded
    }));
    call
}
