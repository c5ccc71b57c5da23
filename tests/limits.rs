//! Rate limits against the real binary: a principal's token bucket runs out (429, Retry-After,
//! -32029 with retryAfterMs) and refills; a principal's requests in progress, its sessions and
//! its calls of one tool are bounded, and another tool or principal is not affected.

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;

fn call(c: &mut Client, id: u64, name: &str, args: Value) -> RawResponse {
    c.post(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                   "params": {"name": name, "arguments": args}}))
        .unwrap()
}

/// The refusal's parts: its Retry-After (seconds) and the error's retryAfterMs.
fn refused(resp: &RawResponse) -> (u64, u64) {
    assert_eq!(resp.status, 429, "{resp:?}");
    let secs: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    let msg = &resp.messages()[0];
    assert_eq!(error_code(msg), -32029, "{msg}");
    let ms = msg["error"]["data"]["retryAfterMs"].as_u64().unwrap();
    assert!(secs >= 1 && secs * 1000 >= ms, "{secs} s against {ms} ms");
    (secs, ms)
}

/// Whether `c`'s pings come to be answered with `status` (within 10 s).
fn ping_answers(c: &mut Client, id: u64, status: u16) -> bool {
    eventually(Duration::from_secs(10), || {
        c.post(&json!({"jsonrpc": "2.0", "id": id, "method": "ping"}))
            .unwrap()
            .status
            == status
    })
}

#[test]
fn a_principals_bucket_runs_out_and_refills() {
    let a = mock("a").start();
    let gw = gateway()
        .backend("a", &a.url)
        .yaml("rate_limits:\n  principal: {per_second: 2, burst: 5}")
        .start();
    // initialize and notifications/initialized take two of the five; then calls until the
    // bucket is empty (a slow machine may see a token come back in between).
    let mut c = client(&gw.url);
    let mut ok = 0;
    let mut refusal = None;
    for id in 1..=100 {
        let r = call(&mut c, id, "a__echo", json!({"message": "x"}));
        if r.status == 429 {
            refusal = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "call {id}: {r:?}");
        ok += 1;
    }
    assert!(
        ok >= 3,
        "the burst admits three calls after initialize: {ok}"
    );
    let r = refusal.expect("the bucket never ran out");
    let (_, ms) = refused(&r);
    assert!(ms <= 500, "a token every 500 ms: {ms}");
    assert_eq!(
        r.messages()[0]["id"],
        Value::Null,
        "refused before it was read"
    );
    assert!(metric(&gw.admin, "ringmux_rate_limited_total") >= 1);
    // Refilled: a later call goes through.
    let mut id = 10;
    assert!(eventually(Duration::from_secs(10), || {
        id += 1;
        call(&mut c, id, "a__echo", json!({"message": "x"})).status == 200
    }));
}

#[test]
fn requests_in_progress_are_bounded_per_principal() {
    let a = mock("a").start();
    let gw = gateway()
        .backend("a", &a.url)
        .yaml("rate_limits:\n  concurrent_per_principal: 1")
        .start();
    let mut slow = client(&gw.url);
    let mut other = client(&gw.url);
    let t = std::thread::spawn(move || call(&mut slow, 1, "a__slow", json!({"ms": 3000})));
    // While the slow call is in progress, the same principal's next request waits its turn.
    assert!(
        ping_answers(&mut other, 2, 429),
        "the second request in progress was admitted"
    );
    let done = t.join().unwrap();
    assert_eq!(done.status, 200);
    assert_eq!(text_of(&done.messages()[0]), "slept");
    assert!(ping_answers(&mut other, 3, 200));

    // A call answered as an event stream keeps its place until the stream ends.
    let mut streaming = client(&gw.url);
    let t = std::thread::spawn(move || {
        streaming
            .post(
                &json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
                "name": "a__progress", "arguments": {"steps": 200},
                "_meta": {"progressToken": "p"}}}),
            )
            .unwrap()
    });
    assert!(
        ping_answers(&mut other, 5, 429),
        "a streamed call released its place before it ended"
    );
    let done = t.join().unwrap();
    let msgs = done.messages();
    assert!(
        msgs.len() > 100,
        "progress came as a stream: {} messages",
        msgs.len()
    );
    assert_eq!(msgs.last().unwrap()["id"], 4);
    // Released once the relay is done (just after the client has the last event).
    assert!(ping_answers(&mut other, 6, 200));
}

#[test]
fn sessions_and_calls_of_one_tool_are_bounded_per_principal() {
    let a = mock("a").start();
    let gw = gateway()
        .backend("a", &a.url)
        .yaml("rate_limits:\n  sessions_per_principal: 2\n  tool: {per_second: 0.2, burst: 2}")
        .start();
    let mut one = client(&gw.url);
    let _two = client(&gw.url);
    let mut third = Client::connect(&gw.url).unwrap();
    let r = third
        .post(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "limits-test", "version": "1"}}}),
        )
        .unwrap();
    let (_, _) = refused(&r);
    assert_eq!(r.messages()[0]["id"], 0);
    // A session ends: there is room again.
    let r = one.send("DELETE", b"", &[]).unwrap();
    assert_eq!(r.status, 200);
    let mut third = client(&gw.url);

    // Two calls of echo, then echo is refused; add is another tool.
    for id in 1..=2 {
        assert_eq!(
            call(&mut third, id, "a__echo", json!({"message": "x"})).status,
            200
        );
    }
    let r = call(&mut third, 3, "a__echo", json!({"message": "x"}));
    let (_, ms) = refused(&r);
    assert!(ms > 1000, "a token every 5 s: {ms}");
    assert_eq!(r.messages()[0]["id"], 3);
    let r = call(&mut third, 4, "a__add", json!({"a": 1, "b": 2}));
    assert_eq!(r.status, 200, "{r:?}");
}
