//! Hardening against backends, on the real binary: a backend that lies (truncated, not
//! JSON-RPC, another request's answer), one that streams keep-alives or progress forever, one
//! that hangs, one that is down when sessions start, answers too large each or together, one
//! large list kept once for every view, and an expiry storm of backend sessions.

#[path = "support/harness.rs"]
mod harness;
use harness::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
const WAIT: Duration = Duration::from_secs(10);

/// A Streamable HTTP backend that answers `initialize` and `tools/list` properly and each
/// `tools/call` with whatever `answer(tool name, request id)` returns:
/// (content type, body). Runs on its own thread, a thread per connection.
fn lying_backend(answer: fn(&str, &Value) -> (&'static str, Vec<u8>)) -> String {
    lying_backend_with_stats(answer).0
}
/// What a lying backend saw: DELETEs, and connections open now and at most.
#[derive(Default)]
struct Stats {
    deletes: AtomicUsize,
    open: AtomicUsize,
    peak: AtomicUsize,
}
fn lying_backend_with_stats(
    answer: fn(&str, &Value) -> (&'static str, Vec<u8>),
) -> (String, Arc<Stats>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let stats = Arc::new(Stats::default());
    let seen = stats.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let stats = seen.clone();
            let open = stats.open.fetch_add(1, Ordering::SeqCst) + 1;
            stats.peak.fetch_max(open, Ordering::SeqCst);
            std::thread::spawn(move || {
                serve_lies(conn, answer, &stats);
                stats.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (url, stats)
}
fn serve_lies(
    mut conn: TcpStream,
    answer: fn(&str, &Value) -> (&'static str, Vec<u8>),
    stats: &Stats,
) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Value =
            serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
        if head.starts_with("delete ") {
            stats.deletes.fetch_add(1, Ordering::SeqCst);
        }
        buf.drain(..head_end + len);
        let (status, ctype, out): (u16, &str, Vec<u8>) = match body["method"].as_str() {
            Some("initialize") => (
                200,
                "application/json",
                json!({"jsonrpc": "2.0", "id": body["id"], "result": {
                    "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                    "serverInfo": {"name": "liar", "version": "1"}}})
                .to_string()
                .into_bytes(),
            ),
            Some("tools/list") => (200, "application/json", {
                let tools: Vec<Value> = [
                    "truncated",
                    "array",
                    "html",
                    "other_id",
                    "request",
                    "fine",
                    "pings",
                    "progress_forever",
                    "huge",
                    "slow_huge",
                ]
                .iter()
                .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
                .collect();
                json!({"jsonrpc": "2.0", "id": body["id"], "result": {"tools": tools}})
                    .to_string()
                    .into_bytes()
            }),
            Some("tools/call") if body["params"]["name"] == "slow_huge" => {
                // 1.5 MiB, sent over about a second: answers read at the same time overlap.
                let (_, out) = lies("huge", &body["id"]);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nmcp-session-id: liar-1\r\n\r\n",
                    out.len()
                );
                if conn.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for piece in out.chunks(out.len() / 10 + 1) {
                    if conn.write_all(piece).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            Some("tools/call")
                if body["params"]["name"] == "pings"
                    || body["params"]["name"] == "progress_forever" =>
            {
                // Keep-alive comments (or progress) every 100 ms, and never an answer.
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nmcp-session-id: liar-1\r\n\r\n";
                if conn.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let progress = body["params"]["name"] == "progress_forever";
                for n in 0..300 {
                    let event = if progress {
                        format!(
                            "data: {}\n\n",
                            json!({"jsonrpc": "2.0", "method": "notifications/progress",
                            "params": {"progressToken": "t", "progress": n}})
                        )
                    } else {
                        ": ping\n\n".to_owned()
                    };
                    if conn.write_all(event.as_bytes()).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                return;
            }
            Some("tools/call") => {
                let (ctype, out) =
                    answer(body["params"]["name"].as_str().unwrap_or(""), &body["id"]);
                (200, ctype, out)
            }
            Some(_) if body.get("id").is_some() => (
                200,
                "application/json",
                json!({"jsonrpc": "2.0", "id": body["id"], "result": {}})
                    .to_string()
                    .into_bytes(),
            ),
            _ => (202, "application/json", Vec::new()),
        };
        let mut resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nmcp-session-id: liar-1\r\n\r\n",
            out.len()
        )
        .into_bytes();
        resp.extend_from_slice(&out);
        if conn.write_all(&resp).is_err() {
            return;
        }
    }
}
fn lies(tool: &str, id: &Value) -> (&'static str, Vec<u8>) {
    let ok = json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": "fine"}]}}).to_string();
    let body = match tool {
        "truncated" => ok[..ok.len() / 2].to_owned(),
        "array" => "[1,2,3]".to_owned(),
        "html" => "<html><body>502 Bad Gateway</body></html>".to_owned(),
        "other_id" => {
            json!({"jsonrpc": "2.0", "id": "someone-else", "result": {"content": []}}).to_string()
        }
        "request" => {
            json!({"jsonrpc": "2.0", "id": id, "method": "sampling/createMessage", "params": {}})
                .to_string()
        }
        "huge" => json!({"jsonrpc": "2.0", "id": id, "result": {"content": [
            {"type": "text", "text": "h".repeat(1536 << 10)}]}})
        .to_string(),
        _ => ok,
    };
    ("application/json", body.into_bytes())
}
fn lies_as_sse(tool: &str, id: &Value) -> (&'static str, Vec<u8>) {
    let (_, body) = lies(tool, id);
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(b"\n\n");
    ("text/event-stream", out)
}
/// A backend's answer is relayed only if it is a JSON-RPC response to the request it was
/// sent: anything else is -32603 naming the backend, as JSON and on an SSE stream.
#[test]
fn backend_answers_that_are_not_the_response_become_errors() {
    for answer in [
        lies as fn(&str, &Value) -> (&'static str, Vec<u8>),
        lies_as_sse,
    ] {
        let liar = lying_backend(answer);
        let gw = gateway()
            .backend_with(
                "liar",
                &liar,
                "transport: streamable_http\nrequest_timeout_ms: 2000",
            )
            .start();
        for sse in [false, true] {
            let mut c = client(&gw.url);
            for tool in ["truncated", "array", "html", "other_id", "request"] {
                let body = json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call",
                    "params": {"name": format!("liar__{tool}"), "arguments": {}}});
                let accept: &[(&str, &str)] = if sse {
                    &[("accept", "text/event-stream, application/json")]
                } else {
                    &[("accept", "application/json")]
                };
                let resp = c.send("POST", body.to_string().as_bytes(), accept).unwrap();
                let msgs = resp.messages();
                let last = msgs.last().unwrap_or_else(|| panic!("{tool}: no answer"));
                assert_eq!(last["id"], 77, "{tool}: {last}");
                assert_eq!(error_code(last), -32603, "{tool}: {last}");
                assert!(
                    last["error"]["message"].as_str().unwrap().contains("liar"),
                    "{tool}: the error names the backend: {last}"
                );
            }
            let fine = c
                .request("tools/call", json!({"name": "liar__fine", "arguments": {}}))
                .unwrap();
            assert_eq!(text_of(&fine), "fine");
        }
    }
}
/// One way of making a call, run on its own thread.
type Call = Box<dyn FnOnce() -> Value + Send>;
/// A backend that sends keep-alive comments and never answers: the call fails at its
/// deadline (request_deadline_ms), however lively the stream.
#[test]
fn keepalive_comments_do_not_keep_a_call_open_forever() {
    let liar = lying_backend(lies);
    let gw = gateway()
        .backend_with(
            "liar",
            &liar,
            "transport: streamable_http\nrequest_timeout_ms: 500\nrequest_deadline_ms: 1500",
        )
        .start();
    // 30 s of comments or progress are sent; the deadline is 1.5 s. A stateful client (its
    // answer as JSON or as SSE) and a 2026-07-28 client alike get the deadline's error.
    let url = gw.url.clone();
    let calls: Vec<(&str, Call)> = vec![
        (
            "comments, JSON",
            Box::new({
                let url = url.clone();
                move || {
                    client(&url)
                        .request(
                            "tools/call",
                            json!({"name": "liar__pings", "arguments": {}}),
                        )
                        .unwrap()
                }
            }),
        ),
        (
            "progress, SSE",
            Box::new({
                let url = url.clone();
                move || {
                    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                    "params": {"name": "liar__progress_forever", "arguments": {}}});
                    client(&url)
                        .send("POST", body.to_string().as_bytes(), &[])
                        .unwrap()
                        .messages()
                        .last()
                        .cloned()
                        .unwrap()
                }
            }),
        ),
        (
            "progress, 2026-07-28",
            Box::new({
                let url = url.clone();
                move || {
                    let body = json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {
                    "name": "liar__progress_forever", "arguments": {},
                    "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                        "io.modelcontextprotocol/clientCapabilities": {}}}});
                    let mut c = Client::connect(&url).unwrap();
                    c.session = None;
                    c.send(
                        "POST",
                        body.to_string().as_bytes(),
                        &[
                            ("mcp-protocol-version", "2026-07-28"),
                            ("mcp-method", "tools/call"),
                            ("mcp-name", "liar__progress_forever"),
                        ],
                    )
                    .unwrap()
                    .messages()
                    .last()
                    .cloned()
                    .unwrap()
                }
            }),
        ),
    ];
    for (what, call) in calls {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(call());
        });
        let answer = rx
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("{what}: the call was kept open"));
        assert_eq!(error_code(&answer), -32603, "{what}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("liar") && message.contains("request_deadline_ms"),
            "{what}: {message}"
        );
    }
}
/// A backend that accepts connections and never answers (kept open for the test's life).
fn hung_backend() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            match conn {
                Ok(c) => held.push(c),
                Err(_) => return,
            }
        }
    });
    url
}
/// A hung backend delays only its own calls: sessions start with the backends that answer,
/// and lists and calls to healthy backends never wait for it.
#[test]
fn a_hung_backend_stalls_no_one_else() {
    let a = mock("a").start();
    let hung = hung_backend();
    let gw = gateway()
        .yaml("limits:\n  initialize_wait_ms: 300")
        .backend("a", &a.url)
        .backend_with(
            "h",
            &hung,
            "transport: streamable_http\nrequest_timeout_ms: 20000",
        )
        .start();
    let url = gw.url.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut c = client(&url);
        let listed = c.list_all("tools/list", "tools").unwrap();
        let called = c
            .request(
                "tools/call",
                json!({"name": "a__echo", "arguments": {"message": "hi"}}),
            )
            .unwrap();
        let second = client(&url)
            .request(
                "tools/call",
                json!({"name": "a__echo", "arguments": {"message": "again"}}),
            )
            .unwrap();
        let _ = tx.send((listed, called, second));
    });
    // The hung backend answers nothing for 20 s; everything above is done well before.
    let (listed, called, second) = rx
        .recv_timeout(Duration::from_secs(12))
        .expect("the healthy backend's clients waited for the hung one");
    assert!(listed.iter().any(|t| t["name"] == "a__echo"), "{listed:?}");
    assert!(!listed
        .iter()
        .any(|t| t["name"].as_str().unwrap().starts_with("h__")));
    assert_eq!(text_of(&called), "hi");
    assert_eq!(text_of(&second), "again");
}
/// A port with nothing listening on it (found free, then closed).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
/// A call to a backend that was down when the session began says the backend is
/// unavailable (not that the tool is unknown), and succeeds once the backend is back.
#[test]
fn calls_to_a_backend_down_at_session_start_say_so_and_recover() {
    let a = mock("a").start();
    let port = free_port();
    let gw = gateway()
        .backend("a", &a.url)
        .backend_with(
            "b",
            &format!("http://127.0.0.1:{port}/mcp"),
            "transport: streamable_http\nretry_backoff_ms: 200",
        )
        .start();
    let mut c = client(&gw.url);
    let call = |c: &mut Client| {
        c.request(
            "tools/call",
            json!({"name": "b__echo", "arguments": {"message": "back"}}),
        )
        .unwrap()
    };
    let answer = call(&mut c);
    assert_eq!(error_code(&answer), -32603, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("b") && message.contains("unavailable"),
        "{message}"
    );
    // The client listens on its GET stream before the backend is back.
    let mut stream = sibling(&gw.url, &c)
        .open_stream("GET", b"", &[("accept", "text/event-stream")])
        .unwrap();
    assert_eq!(stream.status, 200);
    let _b = mock("b")
        .arg("--listen", format!("127.0.0.1:{port}"))
        .start();
    let mut last = Value::Null;
    assert!(
        eventually(WAIT, || {
            last = call(&mut c);
            last.get("result").is_some()
        }),
        "the backend never joined the session: {last}"
    );
    assert_eq!(text_of(&last), "back");
    // It joined late: the client hears its lists changed, and the backend's own GET stream
    // (opened when it joined) reaches the client's.
    let changed = stream.next_message(WAIT).unwrap().expect("a list change");
    assert_eq!(
        changed["method"], "notifications/tools/list_changed",
        "{changed}"
    );
    call_tool(&mut c, "b__notify_updated", json!({"uri": "test://late"}));
    let updated = loop {
        let m = stream
            .next_message(WAIT)
            .unwrap()
            .expect("the backend's notification");
        if m["method"] == "notifications/resources/updated" {
            break m;
        }
    };
    assert!(
        updated["params"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("test://late"),
        "{updated}"
    );
}
fn call_tool(c: &mut Client, name: &str, args: Value) -> Value {
    c.request("tools/call", json!({"name": name, "arguments": args}))
        .unwrap()
}
/// Thousands of sessions expiring together delete their backend sessions a few at a time,
/// and cleanup never marks a healthy backend failed.
#[test]
fn an_expiry_storm_is_bounded() {
    let (url, stats) = lying_backend_with_stats(lies);
    let gw = gateway()
        .yaml("limits:\n  session_idle_timeout_ms: 1500\n  max_concurrent_teardowns: 4")
        .backend_with("liar", &url, "transport: streamable_http")
        .start();
    const SESSIONS: usize = 1000;
    for _ in 0..SESSIONS {
        drop(client(&gw.url));
    }
    let before = stats.peak.load(Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(30), || {
            stats.deletes.load(Ordering::SeqCst) == SESSIONS
        }),
        "{} of {SESSIONS} backend sessions deleted",
        stats.deletes.load(Ordering::SeqCst)
    );
    let peak = stats.peak.load(Ordering::SeqCst);
    assert!(
        peak <= before.max(4) + 1,
        "the backend saw {peak} connections at once during the storm (before: {before})"
    );
    assert_eq!(metric(&gw.admin, "ringmux_sessions"), 0);
    let mut c = client(&gw.url);
    let answer = c
        .request("tools/call", json!({"name": "liar__fine", "arguments": {}}))
        .unwrap();
    assert_eq!(text_of(&answer), "fine");
    let logs = gw.logs();
    assert!(!logs.contains("backend failed"), "{logs}");
}
/// A backend answer larger than the backend's `max_response_bytes` fails its call (and not
/// the backend); answers read at once share a budget (`limits.response_budget_bytes`).
#[test]
fn backend_answers_are_bounded_each_and_together() {
    let liar = lying_backend(lies);
    let gw = gateway()
        .yaml("limits:\n  response_budget_bytes: 4000000")
        .backend_with(
            "liar",
            &liar,
            "transport: streamable_http\nmax_response_bytes: 2000000",
        )
        .backend_with(
            "small",
            &liar,
            "transport: streamable_http\nmax_response_bytes: 1000000",
        )
        .start();
    let mut c = client(&gw.url);
    let call = |c: &mut Client, tool: &str| {
        c.request("tools/call", json!({"name": tool, "arguments": {}}))
            .unwrap()
    };
    let big = call(&mut c, "liar__huge");
    assert_eq!(text_of(&big).len(), 1536 << 10, "under its limit");
    let refused = call(&mut c, "small__huge");
    assert_eq!(error_code(&refused), -32603, "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_response_bytes"));
    assert_eq!(
        text_of(&call(&mut c, "small__fine")),
        "fine",
        "the backend is still up"
    );
    // Four 1.5 MiB answers read at the same time need 6 MiB; the budget is 4 MB.
    let url = gw.url.clone();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let mut s = sibling(&url, &c);
            std::thread::spawn(move || call(&mut s, "liar__slow_huge"))
        })
        .collect();
    let answers: Vec<Value> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let over = answers
        .iter()
        .filter(|a| {
            a.pointer("/error/message")
                .and_then(Value::as_str)
                .is_some_and(|m| m.contains("response_budget_bytes"))
        })
        .count();
    let served = answers.iter().filter(|a| a.get("result").is_some()).count();
    assert!(
        over >= 1 && served >= 1,
        "{over} over budget, {served} served"
    );
    assert_eq!(over + served, 4);
    assert_eq!(text_of(&call(&mut c, "liar__fine")), "fine");
}
/// A large list that a backend gives every client alike is kept once per shard, not once per
/// client capability set (views).
#[test]
fn one_large_list_is_kept_once_for_every_view() {
    let a = mock("a").tools(1000).arg("--tool-bytes", 5000).start();
    let gw = gateway().backend("a", &a.url).start();
    let base = held_memory_of(gw.pid());
    for i in 0..16 {
        let mut c = Client::connect(&gw.url).unwrap();
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {"experimental": {format!("view{i}"): {}}},
            "clientInfo": {"name": "v", "version": "1"}}});
        let r = c.send("POST", init.to_string().as_bytes(), &[]).unwrap();
        c.session = r.header("mcp-session-id").map(str::to_owned);
        c.protocol_version = "2025-06-18".into();
        let tools = c.list_all("tools/list", "tools").unwrap();
        assert!(tools.len() >= 1000);
    }
    // 16 copies of a 5 MB list would hold 80 MB and more.
    memory_settles_under(gw.pid(), base + (48 << 20), "16 views of one list");
}
