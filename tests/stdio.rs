//! stdio backends on the real binary, with the mock in its stdio mode as the child
//! (`ringmux mock --stdio --faults`): federation with an HTTP backend, progress on the call's
//! stream with the client's token, a crash answered with an error naming the backend and
//! followed by a restart, garbage on stdout survived, one shared child serving concurrent
//! sessions on two shards without crossing their ids or tokens, server→client requests
//! attributed to the session that caused them, and nothing leaked: after 1,000 sessions, on
//! session expiry and when the gateway dies, children and fds are back where they started.

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;

const WAIT: Duration = Duration::from_secs(10);

fn call(c: &mut Client, tool: &str, args: Value) -> Value {
    c.request("tools/call", json!({"name": tool, "arguments": args}))
        .unwrap()
}

fn tool_names(c: &mut Client) -> Vec<String> {
    c.list_all("tools/list", "tools")
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `s__progress` called with a progress token, read as an SSE stream: (progress tokens,
/// final message).
fn call_with_progress(
    url: &str,
    c: &Client,
    id: u64,
    token: Value,
    steps: u64,
) -> (Vec<Value>, Value) {
    progress_of(url, c, "s__progress", id, token, steps)
}

fn progress_of(
    url: &str,
    c: &Client,
    tool: &str,
    id: u64,
    token: Value,
    steps: u64,
) -> (Vec<Value>, Value) {
    let s = sibling(url, c);
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": tool, "arguments": {"steps": steps}, "_meta": {"progressToken": token}}});
    let mut r = s
        .open_stream("POST", body.to_string().as_bytes(), &[])
        .unwrap();
    assert_eq!(r.status, 200);
    let mut tokens = Vec::new();
    loop {
        let msg = r
            .next_message(WAIT)
            .unwrap()
            .expect("stream ended before the answer");
        if msg.get("method") == Some(&json!("notifications/progress")) {
            tokens.push(msg["params"]["progressToken"].clone());
        } else if msg.get("id").is_some() {
            return (tokens, msg);
        }
    }
}

#[test]
fn per_session_children_federate_stream_crash_and_restart() {
    let h = mock("h").start();
    let mut gw = gateway()
        .backend("h", &h.url)
        .stdio_mock("s", "retry_backoff_ms: 100\n")
        .start();
    let pid = gw.pid();
    assert!(
        children_of(pid).is_empty(),
        "per-session children start with sessions"
    );

    let mut c1 = client(&gw.url);
    let names = tool_names(&mut c1);
    for want in ["h__echo", "s__echo", "s__crash", "s__garbage"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert_eq!(
        text_of(&call(&mut c1, "s__echo", json!({"message": "over stdio"}))),
        "over stdio"
    );
    assert_eq!(children_of(pid).len(), 1);

    // Progress arrives on the call's stream, with the client's own token.
    let (tokens, answer) = call_with_progress(&gw.url, &c1, 77, json!("tok-1"), 3);
    assert_eq!(tokens, vec![json!("tok-1"); 3]);
    assert_eq!(answer["id"], json!(77));
    assert_eq!(text_of(&answer), "done");

    let mut c2 = client(&gw.url);
    assert_eq!(
        text_of(&call(&mut c2, "s__echo", json!({"message": "two"}))),
        "two"
    );
    let before = children_of(pid);
    assert_eq!(before.len(), 2, "one child per session");

    // Garbage on the child's stdout is logged and dropped; the call still gets its answer.
    assert_eq!(text_of(&call(&mut c1, "s__garbage", json!({}))), "survived");

    // A crash: the caller gets an error naming the backend and the exit, not a hang.
    let crashed = call(&mut c1, "s__crash", json!({}));
    let message = crashed["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("backend s") && message.contains("exited (exit status: 3)"),
        "{crashed}"
    );
    // The other session's child is untouched.
    assert_eq!(
        text_of(&call(&mut c2, "s__echo", json!({"message": "still"}))),
        "still"
    );
    // The crashed one is restarted (with backoff) and re-initialized for its session.
    assert!(
        eventually(WAIT, || {
            let r = call(&mut c1, "s__echo", json!({"message": "back"}));
            r.pointer("/result/content/0/text") == Some(&json!("back"))
        }),
        "the crashed child was not restarted"
    );
    assert!(metric(&gw.admin, "ringmux_stdio_restarts_total") >= 1);
    assert_eq!(metric(&gw.admin, "ringmux_stdio_children"), 2);

    // Ending a session stops its child.
    c2.send("DELETE", b"", &[]).unwrap();
    assert!(eventually(WAIT, || children_of(pid).len() == 1));
    assert!(gw.is_running());
    let logs = gw.logs();
    assert!(logs.contains("not JSON-RPC"), "garbage not logged:\n{logs}");
    assert!(
        logs.contains("crashing as asked"),
        "child stderr not logged:\n{logs}"
    );
}

#[test]
fn shared_child_keeps_sessions_apart_across_shards() {
    let gw = gateway()
        .shards(2)
        .stdio_mock("s", "mode: shared\n")
        .start();
    let pid = gw.pid();
    assert!(
        eventually(WAIT, || children_of(pid).len() == 1),
        "the shared child starts with the gateway"
    );
    let clients: Vec<Client> = (0..6).map(|_| client(&gw.url)).collect();
    // Every session uses the same request id and progress token, at the same time.
    let answers: Vec<(Vec<Value>, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .map(|c| s.spawn(|| call_with_progress(&gw.url, c, 5, json!("same"), 4)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (tokens, answer) in &answers {
        assert_eq!(tokens, &vec![json!("same"); 4], "progress crossed sessions");
        assert_eq!(answer["id"], json!(5));
        assert_eq!(text_of(answer), "done");
    }
    assert_eq!(children_of(pid).len(), 1, "one shared child");

    // A server→client request during a call goes to the session that made the call, which
    // answers it; the child gets the answer under its own id.
    let c = &clients[0];
    let s = sibling(&gw.url, c);
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "s__ask_roots", "arguments": {}}});
    let mut r = s
        .open_stream("POST", body.to_string().as_bytes(), &[])
        .unwrap();
    let ask = r
        .next_message(WAIT)
        .unwrap()
        .expect("roots/list on the call's stream");
    assert_eq!(ask["method"], json!("roots/list"));
    let mut answerer = sibling(&gw.url, c);
    let reply = json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"roots": [{"uri": "file:///only-mine"}]}});
    assert_eq!(answerer.post(&reply).unwrap().status, 202);
    let answer = loop {
        let m = r.next_message(WAIT).unwrap().expect("the answer");
        if m.get("id") == Some(&json!(9)) {
            break m;
        }
    };
    assert!(text_of(&answer).contains("file:///only-mine"), "{answer}");
}

#[test]
fn no_child_or_fd_outlives_its_session_or_the_gateway() {
    let mut gw = gateway()
        .shards(2)
        .yaml("limits:\n  session_idle_timeout_ms: 300\nstreams:\n  keepalive_ms: 500")
        .stdio_mock("s", "")
        .start();
    let pid = gw.pid();
    // Warm up (thread-local buffers, the first connection) before taking the baseline.
    {
        let mut c = client(&gw.url);
        assert_eq!(
            text_of(&call(&mut c, "s__echo", json!({"message": "warm"}))),
            "warm"
        );
        c.send("DELETE", b"", &[]).unwrap();
    }
    assert!(eventually(WAIT, || children_of(pid).is_empty()));
    let fds = fds_of(pid);

    // 1,000 sessions opened and closed, four at a time, each with its own child.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut c = Client::connect(&gw.url).unwrap();
                for _ in 0..250 {
                    c.session = None;
                    c.initialize().unwrap();
                    let r = c.request("ping", json!({})).unwrap();
                    assert!(r.get("result").is_some(), "{r}");
                    assert_eq!(c.send("DELETE", b"", &[]).unwrap().status, 200);
                }
            });
        }
    });
    assert!(
        eventually(Duration::from_secs(30), || children_of(pid).is_empty()),
        "children left: {:?}",
        children_of(pid)
    );
    assert!(
        eventually(WAIT, || fds_of(pid) <= fds),
        "fds: {} before, {} after",
        fds,
        fds_of(pid)
    );

    // Sessions that expire instead of ending stop their children too; one whose client
    // listens on its GET stream does not expire, until the client goes.
    let idle: Vec<Client> = (0..3).map(|_| client(&gw.url)).collect();
    let listening = sibling(&gw.url, &idle[0])
        .open_stream("GET", b"", &[("accept", "text/event-stream")])
        .unwrap();
    assert_eq!(listening.status, 200);
    assert_eq!(children_of(pid).len(), 3);
    drop(idle);
    assert!(
        eventually(Duration::from_secs(30), || children_of(pid).len() == 1),
        "expired sessions kept their children"
    );
    drop(listening);
    assert!(
        eventually(Duration::from_secs(30), || children_of(pid).is_empty()),
        "the session whose client left kept its child"
    );

    // When the gateway dies, so do its children (PR_SET_PDEATHSIG).
    let _live: Vec<Client> = (0..2).map(|_| client(&gw.url)).collect();
    let kids = children_of(pid);
    assert_eq!(kids.len(), 2);
    gw.kill();
    assert!(
        eventually(WAIT, || kids.iter().all(|k| is_dead(*k))),
        "children outlived the gateway"
    );
}

/// A legacy HTTP+SSE (2024-11-05) backend: ringmux connects as a 2024-11-05 client. The
/// server here is a second ringmux, whose front end speaks that transport too.
#[test]
fn legacy_sse_backend_through_a_second_gateway() {
    let m = mock("m").start();
    let mut inner = gateway().backend("m", &m.url).start();
    let sse_url = inner.url.replace("/mcp", "/sse");
    let outer = gateway()
        .shards(2)
        .backend_with("l", &sse_url, "transport: sse\nretry_backoff_ms: 100")
        .start();
    let mut c = client(&outer.url);
    let names = tool_names(&mut c);
    assert!(names.iter().any(|n| n == "l__m__echo"), "{names:?}");
    assert_eq!(
        text_of(&call(&mut c, "l__m__echo", json!({"message": "two hops"}))),
        "two hops"
    );
    // Progress crosses both gateways on the call's stream, with the client's token.
    let (tokens, answer) = progress_of(&outer.url, &c, "l__m__progress", 3, json!(41), 3);
    assert_eq!(tokens, vec![json!(41); 3]);
    assert_eq!(text_of(&answer), "done");

    // The server goes away: calls get an error naming the backend, not a hang.
    inner.kill();
    let failed = call(&mut c, "l__m__echo", json!({"message": "gone"}));
    let message = failed["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("backend l"), "{failed}");
}
