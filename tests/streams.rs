//! Both directions on the real binary: the client's GET stream multiplexing every backend's,
//! resumption with Last-Event-ID (GET and POST streams), server→client requests on the GET
//! stream, list_changed told once, logging filtered by the client's level, resource updates
//! with the client's URI, and client notifications (cancelled, roots/list_changed) reaching
//! only the backends concerned.

#[path = "support/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::*;
use ringmux::probe::EventReader;

const WAIT: Duration = Duration::from_secs(10);

/// Mock backends `a` and `b` behind a gateway with `shards` shards.
fn two_backends(shards: usize) -> (Proc, Proc, Proc) {
    let a = mock("a").start();
    let b = mock("b").start();
    let gw = gateway()
        .shards(shards)
        .backend("a", &a.url)
        .backend("b", &b.url)
        .start();
    (a, b, gw)
}

/// Opens the session's GET stream (optionally resuming) and checks its head.
fn open_get(url: &str, c: &Client, last_event_id: Option<&str>) -> EventReader {
    let extra: Vec<(&str, &str)> = last_event_id
        .map(|id| vec![("last-event-id", id)])
        .unwrap_or_default();
    let r = sibling(url, c)
        .open_stream(
            "GET",
            b"",
            &[&[("accept", "text/event-stream")], &extra[..]].concat(),
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    r
}

/// The next message on a stream, with the id of the event that carried it.
fn next_with_id(r: &mut EventReader) -> (Value, String) {
    loop {
        let ev = r
            .next_event(WAIT)
            .unwrap()
            .expect("stream ended before the expected message");
        if !ev.data.is_empty() {
            let id = ev.id.expect("every event carries an id");
            return (serde_json::from_slice(&ev.data).unwrap(), id);
        }
    }
}

fn call(c: &mut Client, tool: &str, args: Value) -> Value {
    c.request("tools/call", json!({"name": tool, "arguments": args}))
        .unwrap()
}

fn seen(c: &mut Client, tool: &str) -> Vec<String> {
    let text = text_of(&call(c, tool, json!({}))).to_owned();
    serde_json::from_str(&text).unwrap()
}

/// A client's GET stream with both backends' GET streams open behind it (primed: the client
/// speaks 2025-11-25).
fn listening(shards: usize) -> (Proc, Proc, Proc, Client, EventReader) {
    let (a, b, gw) = two_backends(shards);
    let c = client(&gw.url);
    let mut get = open_get(&gw.url, &c, None);
    let prime = get.next_event(WAIT).unwrap().unwrap();
    assert!(prime.id.is_some() && prime.data.is_empty() && prime.retry.is_some());
    wait_metric(&gw.admin, "ringmux_backend_streams", 2);
    (a, b, gw, c, get)
}

#[test]
fn a_backends_notification_reaches_the_get_stream_with_the_clients_uri() {
    let (_a, _b, _gw, mut c, mut get) = listening(2);
    call(
        &mut c,
        "a__notify_updated",
        json!({"uri": "mock://a/res/1"}),
    );
    let (msg, _) = next_with_id(&mut get);
    assert_eq!(msg["method"], "notifications/resources/updated");
    assert_eq!(msg["params"]["uri"], "ringmux://a/mock://a/res/1");
}

#[test]
fn a_server_request_on_a_get_stream_is_answered_back_to_its_backend() {
    let (_a, _b, gw, c, mut get) = listening(2);
    let asker = {
        let mut c2 = sibling(&gw.url, &c);
        std::thread::spawn(move || call(&mut c2, "b__ask_roots", json!({})))
    };
    let (req, _) = next_with_id(&mut get);
    assert_eq!(req["method"], "roots/list");
    let rid = req["id"].as_str().expect("a remapped string id").to_owned();
    // Named by the asking backend's stable id (derived from its name, not its place).
    let b_id = ringmux_core::config::BackendId::of("b");
    assert!(rid.starts_with(&format!("r{b_id}:")), "{rid}");
    let resp = sibling(&gw.url, &c)
        .post(&json!({"jsonrpc": "2.0", "id": rid, "result": {"roots": [{"uri": "file:///w", "name": "w"}]}}))
        .unwrap();
    assert_eq!(resp.status, 202);
    let roots = asker.join().unwrap();
    assert!(text_of(&roots).contains("file:///w"), "{roots}");
}

#[test]
fn a_get_stream_resumes_after_its_last_event_and_goes_on_live() {
    let (_a, _b, gw, mut c, mut get) = listening(2);
    call(
        &mut c,
        "a__notify_updated",
        json!({"uri": "mock://a/res/1"}),
    );
    let (_, first_id) = next_with_id(&mut get);
    // What happens while the client is away is replayed after the last id it saw.
    drop(get);
    call(
        &mut c,
        "a__notify_updated",
        json!({"uri": "mock://a/res/2"}),
    );
    // Recorded before the client is back, or delivered live to it after the replay: in
    // order either way.
    let mut again = open_get(&gw.url, &c, Some(&first_id));
    let (missed, _) = next_with_id(&mut again);
    assert_eq!(missed["params"]["uri"], "ringmux://a/mock://a/res/2");
    call(
        &mut c,
        "b__notify_updated",
        json!({"uri": "mock://b/res/3"}),
    );
    let (live, _) = next_with_id(&mut again);
    assert_eq!(live["params"]["uri"], "ringmux://b/mock://b/res/3");
}

#[test]
fn list_changed_is_told_once_until_the_client_lists() {
    let (_a, _b, gw) = two_backends(1);
    let mut c = client(&gw.url);
    let before = c.list_all("tools/list", "tools").unwrap().len();
    let mut get = open_get(&gw.url, &c, None);
    wait_metric(&gw.admin, "ringmux_backend_streams", 2);
    let changed = |r: &RawResponse| {
        r.messages()
            .iter()
            .filter(|m| m["method"] == "notifications/tools/list_changed")
            .count()
    };
    let mut told = 0;
    for tool in ["a__touch_tools", "b__touch_tools"] {
        let r = c
            .post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": tool, "arguments": {}}}))
            .unwrap();
        told += changed(&r);
    }
    // The GET stream gets the backends' own notices too; none may pass once the client was told.
    while let Ok(Some(ev)) = get.next_event(Duration::from_millis(500)) {
        if ev.data.windows(12).any(|w| w == b"list_changed") {
            told += 1;
        }
    }
    assert_eq!(told, 1, "two backends changed, the client is told once");
    let after = c.list_all("tools/list", "tools").unwrap().len();
    assert_eq!(after, before + 2, "both backends' caches were invalidated");
    let r = c
        .post(&json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {"name": "a__touch_tools", "arguments": {}}}))
        .unwrap();
    let mut again = changed(&r);
    while let Ok(Some(ev)) = get.next_event(Duration::from_millis(500)) {
        if ev.data.windows(12).any(|w| w == b"list_changed") {
            again += 1;
        }
    }
    assert_eq!(
        again, 1,
        "after listing, the next change is told again, once"
    );
    // The initialize result says lists may change.
    let init = client(&gw.url).initialize().unwrap();
    assert_eq!(init["result"]["capabilities"]["tools"]["listChanged"], true);
}

#[test]
fn logging_honours_the_clients_level() {
    let a = mock("a").start();
    let gw = gateway().backend("a", &a.url).start();
    let mut c = client(&gw.url);
    let levels = |c: &mut Client| -> Vec<String> {
        let r = c
            .post(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "a__log_levels", "arguments": {}}}))
            .unwrap();
        r.messages()
            .iter()
            .filter(|m| m["method"] == "notifications/message")
            .map(|m| m["params"]["level"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(levels(&mut c), ["debug", "info", "warning", "error"]);
    let ok = c
        .request("logging/setLevel", json!({"level": "warning"}))
        .unwrap();
    assert!(ok.get("result").is_some(), "{ok}");
    assert_eq!(levels(&mut c), ["warning", "error"]);
    let bad = c
        .request("logging/setLevel", json!({"level": "loud"}))
        .unwrap();
    assert_eq!(error_code(&bad), -32602);
}

#[test]
fn a_cancelled_notification_reaches_only_the_backend_running_the_call() {
    let (_a, _b, gw) = two_backends(1);
    let mut c = client(&gw.url);
    // To the backend running the call, with its id; the call stops waiting.
    let mut slow = sibling(&gw.url, &c);
    // Listed first, so the call's own request is the next one ringmux sends a backend.
    c.list_all("tools/list", "tools").unwrap();
    let sent = metric(&gw.admin, "ringmux_backend_requests_total");
    let started = Instant::now();
    let waiter = std::thread::spawn(move || {
        slow.post(&json!({"jsonrpc": "2.0", "id": "call-42", "method": "tools/call", "params": {"name": "a__slow", "arguments": {"ms": 20000}}}))
            .unwrap()
    });
    // The call is in flight once ringmux sent it on (it is in the session's in-flight table
    // before it is sent).
    wait_metric(&gw.admin, "ringmux_backend_requests_total", sent + 1);
    let r = c
        .post(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "call-42", "reason": "user"}}))
        .unwrap();
    assert_eq!(r.status, 202);
    let answer = waiter.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(error_code(&answer.messages()[0]), -32800);
    let on_a = seen(&mut c, "a__seen");
    assert!(
        on_a.contains(&r#"notifications/cancelled:"call-42""#.to_owned()),
        "{on_a:?}"
    );
    assert!(
        !seen(&mut c, "b__seen")
            .iter()
            .any(|s| s.starts_with("notifications/cancelled")),
        "not fanned out"
    );
}

#[test]
fn roots_list_changed_reaches_only_the_backends_that_asked_for_roots() {
    let (_a, _b, gw) = two_backends(1);
    let mut c = client(&gw.url);
    let mut get = open_get(&gw.url, &c, None);
    wait_metric(&gw.admin, "ringmux_backend_streams", 2);
    let url = gw.url.clone();
    let asker = {
        let mut c2 = sibling(&url, &c);
        std::thread::spawn(move || call(&mut c2, "b__ask_roots", json!({})))
    };
    let (req, _) = next_with_id(&mut get);
    c.post(&json!({"jsonrpc": "2.0", "id": req["id"], "result": {"roots": []}}))
        .unwrap();
    asker.join().unwrap();
    let r = c
        .post(&json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}))
        .unwrap();
    assert_eq!(r.status, 202);
    assert!(seen(&mut c, "b__seen").contains(&"notifications/roots/list_changed".to_owned()));
    assert!(!seen(&mut c, "a__seen").contains(&"notifications/roots/list_changed".to_owned()));
}

#[test]
fn a_post_stream_resumes_after_the_client_drops_it() {
    let a = mock("a").start();
    let gw = gateway().shards(2).backend("a", &a.url).start();
    let c = client(&gw.url);
    let mut post = sibling(&gw.url, &c)
        .open_stream(
            "POST",
            br#"{"jsonrpc":"2.0","id":77,"method":"tools/call","params":{"name":"a__progress","arguments":{"steps":30},"_meta":{"progressToken":"p"}}}"#,
            &[],
        )
        .unwrap();
    assert_eq!(post.status, 200);
    let prime = post.next_event(WAIT).unwrap().unwrap();
    assert!(prime.data.is_empty() && prime.retry.is_some());
    let (first, first_id) = next_with_id(&mut post);
    assert_eq!(first["method"], "notifications/progress");
    drop(post);
    let mut resumed = open_get(&gw.url, &c, Some(&first_id));
    let mut progress = vec![first["params"]["progress"].as_u64().unwrap()];
    let answer = loop {
        let (m, _) = next_with_id(&mut resumed);
        if m.get("id").is_some() {
            break m;
        }
        progress.push(m["params"]["progress"].as_u64().unwrap());
    };
    assert_eq!(answer["id"], 77);
    assert_eq!(text_of(&answer), "done");
    assert_eq!(
        progress,
        (1..=30).collect::<Vec<_>>(),
        "nothing lost or repeated"
    );
    assert!(
        resumed.next_event(WAIT).unwrap().is_none(),
        "the resumed stream ends with its answer"
    );
}

/// Priming events (an id and `retry:` without data) came with 2025-11-25: older clients may
/// read an event without data as a message, so their streams start with real events.
#[test]
fn no_priming_event_below_2025_11_25() {
    let a = mock("a").start();
    let gw = gateway().backend("a", &a.url).start();
    for (version, primed) in [
        ("2025-03-26", false),
        ("2025-06-18", false),
        ("2025-11-25", true),
    ] {
        let mut c = Client::connect(&gw.url).unwrap();
        c.protocol_version = version.into();
        c.initialize().unwrap();
        assert_eq!(c.protocol_version, version);
        let mut post = sibling(&gw.url, &c)
            .open_stream(
                "POST",
                br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"a__progress","arguments":{"steps":2},"_meta":{"progressToken":"p"}}}"#,
                &[],
            )
            .unwrap();
        assert_eq!(post.status, 200);
        let first = post.next_event(WAIT).unwrap().unwrap();
        assert_eq!(
            first.data.is_empty(),
            primed,
            "{version}: POST stream's first event"
        );
        let opened = metric(&gw.admin, "ringmux_backend_streams_opened_total");
        let mut get = open_get(&gw.url, &c, None);
        if primed {
            let prime = get.next_event(WAIT).unwrap().unwrap();
            assert!(prime.data.is_empty() && prime.retry.is_some(), "{version}");
        } else {
            // The first thing on the GET stream is a real message (once the backend's own
            // GET stream, opened behind the client's, is there to carry it).
            wait_metric(
                &gw.admin,
                "ringmux_backend_streams_opened_total",
                opened + 1,
            );
            call(
                &mut c,
                "a__notify_updated",
                json!({"uri": "mock://a/res/1"}),
            );
            let ev = get.next_event(WAIT).unwrap().unwrap();
            assert!(!ev.data.is_empty(), "{version}: GET stream's first event");
            assert!(ev.id.is_some(), "{version}: still resumable");
        }
    }
}

#[test]
fn a_legacy_sse_client_reaches_the_same_federated_server() {
    let (_a, _b, gw) = two_backends(2);
    let base = gw.url.trim_end_matches("/mcp").to_owned();
    let mut stream = Client::connect(&format!("{base}/sse"))
        .unwrap()
        .open_stream("GET", b"", &[("accept", "text/event-stream")])
        .unwrap();
    assert_eq!(stream.status, 200);
    let endpoint = stream.next_event(WAIT).unwrap().unwrap();
    assert_eq!(endpoint.event.as_deref(), Some("endpoint"));
    let path = String::from_utf8(endpoint.data).unwrap();
    assert!(path.starts_with("/message?sessionId="), "{path}");
    let mut poster = Client::connect(&format!("{base}{path}")).unwrap();
    let mut post = |msg: Value| {
        let r = poster
            .send("POST", &serde_json::to_vec(&msg).unwrap(), &[])
            .unwrap();
        assert_eq!(
            r.status,
            202,
            "{} {:?}",
            String::from_utf8_lossy(&r.body),
            r.headers
        );
    };
    let next = |stream: &mut EventReader| stream.next_message(WAIT).unwrap().unwrap();

    post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {},
        "clientInfo": {"name": "legacy", "version": "1"}}}),
    );
    let init = next(&mut stream);
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
    post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));

    post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    let list = next(&mut stream);
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"a__echo") && names.contains(&"b__echo"),
        "{names:?}"
    );

    // Progress and the result arrive on the one stream, in order.
    post(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "b__progress", "arguments": {"steps": 3}, "_meta": {"progressToken": 5}}}),
    );
    let mut kinds = Vec::new();
    loop {
        let m = next(&mut stream);
        if m.get("id") == Some(&json!(3)) {
            assert_eq!(text_of(&m), "done");
            break;
        }
        kinds.push(m["method"].as_str().unwrap().to_owned());
    }
    assert_eq!(kinds, ["notifications/progress"; 3]);

    // Errors go on the stream too; an unknown sessionId is 404 at once.
    post(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "nope"}}));
    assert_eq!(error_code(&next(&mut stream)), -32602);
    let mut stranger = Client::connect(&format!(
        "{base}/message?sessionId=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    ))
    .unwrap();
    let r = stranger
        .send("POST", br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, &[])
        .unwrap();
    assert_eq!(r.status, 404);
}
