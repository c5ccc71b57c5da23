//! Stateful clients through the real binary to sessionless (2026-07-28) backends: the mock in
//! `--modern` mode, found out by `transport: auto`, next to a stateful mock. The backend gets
//! every request with the era's `_meta` (the client's capabilities, clientInfo, log level) and
//! routing headers, and no `initialize`; results lose the era's members; an `input_required`
//! result becomes real requests on the client's stream, and the client's answers go back in
//! the retry; a backend's list change and resource update reach the GET stream through one
//! `subscriptions/listen`; `transport:` pins the era when given; and a legacy HTTP+SSE server
//! (the mock's `--sse` mode) found out by the same probe.

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use ringmux::probe::EventReader;

const WAIT: Duration = Duration::from_secs(10);

fn caps() -> Value {
    json!({"sampling": {}, "elicitation": {"form": {}}, "roots": {"listChanged": true}})
}

/// A client initialized with `caps()` and its own clientInfo.
fn capable_client(url: &str) -> Client {
    let mut c = Client::connect(url).unwrap();
    let resp = c
        .post(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": caps(),
                "clientInfo": {"name": "sessionless-test", "version": "7"}
            }}),
        )
        .unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    c.session = resp.header("mcp-session-id").map(str::to_owned);
    c.protocol_version = "2025-11-25".into();
    c.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .unwrap();
    c
}

fn call(c: &mut Client, tool: &str, args: Value) -> Value {
    c.request("tools/call", json!({"name": tool, "arguments": args}))
        .unwrap()
}

/// Starts a tools/call whose answer is read event by event.
fn start_call(url: &str, c: &Client, id: u64, tool: &str, args: Value) -> EventReader {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": args}});
    let r = sibling(url, c)
        .open_stream("POST", body.to_string().as_bytes(), &[])
        .unwrap();
    assert_eq!(r.status, 200);
    r
}

fn next(r: &mut EventReader) -> Value {
    r.next_message(WAIT)
        .unwrap()
        .expect("stream ended before the expected message")
}

fn gateway_with_modern_backends() -> (Proc, Proc, Proc, Proc) {
    let m = mock("m").flag("--modern").start();
    let c = mock("c").flag("--modern").flag("--conformance").start();
    let s = mock("s").start();
    let gw = gateway()
        .shards(2)
        .backend("m", &m.url)
        .backend("c", &c.url)
        .backend("s", &s.url)
        .start();
    (m, c, s, gw)
}

#[test]
fn a_stateful_client_reaches_sessionless_backends_with_the_eras_envelope() {
    let (_m, _c, _s, gw) = gateway_with_modern_backends();
    let mut c = capable_client(&gw.url);
    let names: Vec<String> = c
        .list_all("tools/list", "tools")
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    for tool in ["m__echo", "c__test_sampling", "s__echo"] {
        assert!(names.contains(&tool.to_owned()), "{tool} in {names:?}");
    }

    // The modern mock refuses any request without the era's _meta (400, -32602); `seen` in
    // that mode answers with the request's own _meta.
    let r = call(&mut c, "m__seen", json!({}));
    let meta: Value = serde_json::from_str(text_of(&r)).unwrap();
    assert_eq!(
        meta["io.modelcontextprotocol/protocolVersion"],
        "2026-07-28"
    );
    assert_eq!(meta["io.modelcontextprotocol/clientCapabilities"], caps());
    assert_eq!(
        meta["io.modelcontextprotocol/clientInfo"]["name"],
        "sessionless-test"
    );
    assert!(
        r["result"].get("resultType").is_none(),
        "the era's members are dropped for a stateful client: {r}"
    );
    // The stateful mock beside it was initialized as before.
    let on_s: Vec<String> =
        serde_json::from_str(text_of(&call(&mut c, "s__seen", json!({})))).unwrap();
    assert!(
        on_s.contains(&"notifications/initialized".to_owned()),
        "{on_s:?}"
    );

    // Routed by the original name (Mcp-Name checked by the mock), answered with the client's id.
    let r = call(&mut c, "m__echo", json!({"message": "through"}));
    assert_eq!(text_of(&r), "through");
    // Progress before the result, on the call's stream.
    let progress = c
        .post(
            &json!({"jsonrpc": "2.0", "id": "p", "method": "tools/call", "params": {
            "name": "m__progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "tok"}}}),
        )
        .unwrap();
    let msgs = progress.messages();
    assert_eq!(msgs.len(), 4, "{msgs:?}");
    assert!(msgs[..3]
        .iter()
        .all(|m| m["method"] == "notifications/progress" && m["params"]["progressToken"] == "tok"));
    assert_eq!(msgs[3]["id"], "p");
    assert_eq!(text_of(&msgs[3]), "done");

    // The era has no logging/setLevel: ringmux answers it, and the level rides in _meta.
    let ok = c
        .request("logging/setLevel", json!({"level": "warning"}))
        .unwrap();
    assert!(ok.get("result").is_some(), "{ok}");
    let meta: Value = serde_json::from_str(text_of(&call(&mut c, "m__seen", json!({})))).unwrap();
    assert_eq!(meta["io.modelcontextprotocol/logLevel"], "warning");
    let logged = c
        .post(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "m__log_levels", "arguments": {}}}))
        .unwrap();
    let levels: Vec<String> = logged
        .messages()
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .map(|m| m["params"]["level"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(levels, ["warning", "error"]);

    // A backend error (the era sends it with a 4xx status) reaches the client as the error.
    let bad = call(&mut c, "m__add", json!({"a": "x"}));
    assert_eq!(error_code(&bad), -32602, "{bad}");
}

#[test]
fn input_required_becomes_requests_on_the_calls_stream() {
    let (_m, _c, _s, gw) = gateway_with_modern_backends();
    let c = capable_client(&gw.url);

    // Sampling: the backend's input_required reaches the client as a request on the call's
    // stream; the answer, POSTed like any answer, goes back in the retry.
    let mut call_stream = start_call(
        &gw.url,
        &c,
        11,
        "c__test_sampling",
        json!({"prompt": "sky?"}),
    );
    let ask = next(&mut call_stream);
    assert_eq!(ask["method"], "sampling/createMessage", "{ask}");
    assert_eq!(
        ask["params"]["messages"][0]["content"]["text"], "sky?",
        "{ask}"
    );
    let answered = sibling(&gw.url, &c)
        .post(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {
            "role": "assistant", "model": "m", "content": {"type": "text", "text": "blue"}}}))
        .unwrap();
    assert_eq!(answered.status, 202);
    let done = next(&mut call_stream);
    assert_eq!(done["id"], 11, "{done}");
    assert_eq!(text_of(&done), "LLM response: blue");
    assert!(done["result"].get("resultType").is_none(), "{done}");

    // Roots, from the default catalog's tool.
    let mut call_stream = start_call(&gw.url, &c, 12, "m__ask_roots", json!({}));
    let ask = next(&mut call_stream);
    assert_eq!(ask["method"], "roots/list", "{ask}");
    sibling(&gw.url, &c)
        .post(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"roots": [{"uri": "file:///w"}]}}))
        .unwrap();
    let done = next(&mut call_stream);
    assert!(text_of(&done).contains("file:///w"), "{done}");

    // The client refuses an elicitation: the call ends with the client's error.
    let mut call_stream = start_call(
        &gw.url,
        &c,
        13,
        "c__test_elicitation",
        json!({"message": "name?"}),
    );
    let ask = next(&mut call_stream);
    assert_eq!(ask["method"], "elicitation/create", "{ask}");
    sibling(&gw.url, &c)
        .post(
            &json!({"jsonrpc": "2.0", "id": ask["id"], "error": {"code": -32042, "message": "no"}}),
        )
        .unwrap();
    let done = next(&mut call_stream);
    assert_eq!(done["id"], 13);
    assert_eq!(error_code(&done), -32042, "{done}");

    // A client without an event stream for the call cannot be asked: a clear error, at once.
    let mut json_only = sibling(&gw.url, &c);
    let body = json!({"jsonrpc": "2.0", "id": 14, "method": "tools/call",
        "params": {"name": "c__test_sampling", "arguments": {"prompt": "x"}}});
    let r = json_only
        .send(
            "POST",
            body.to_string().as_bytes(),
            &[("accept", "application/json")],
        )
        .unwrap();
    let msg = &r.messages()[0];
    assert_eq!(error_code(msg), -32603, "{msg}");
    assert!(
        msg["error"]["message"]
            .as_str()
            .unwrap()
            .contains("accepts no event stream"),
        "{msg}"
    );
}

#[test]
fn list_changes_and_resource_updates_come_through_one_listen_per_backend() {
    let (_m, _c, _s, gw) = gateway_with_modern_backends();
    let mut c = capable_client(&gw.url);
    let before = c.list_all("tools/list", "tools").unwrap().len();
    let mut get = sibling(&gw.url, &c)
        .open_stream("GET", b"", &[("accept", "text/event-stream")])
        .unwrap();
    assert_eq!(get.status, 200);
    // The listen streams (m, c) and s's GET stream open with the client's GET stream.
    wait_metric(&gw.admin, "ringmux_backend_streams", 3);
    assert_eq!(
        text_of(&call(&mut c, "m__touch_tools", json!({}))),
        "touched"
    );
    let changed = next(&mut get);
    assert_eq!(
        changed["method"], "notifications/tools/list_changed",
        "{changed}"
    );
    assert!(
        changed.get("params").is_none(),
        "no subscription id: {changed}"
    );
    let after = c.list_all("tools/list", "tools").unwrap();
    assert_eq!(after.len(), before + 1, "the backend's catalog was dropped");

    // resources/subscribe is not of the era: ringmux keeps it and listens again with it.
    let uri = "ringmux://m/mock://m/res/0";
    let opened = metric(&gw.admin, "ringmux_backend_streams_opened_total");
    let sub = c
        .request("resources/subscribe", json!({"uri": uri}))
        .unwrap();
    assert!(sub.get("result").is_some(), "{sub}");
    // m's listen stream is re-opened with the subscription.
    wait_metric(
        &gw.admin,
        "ringmux_backend_streams_opened_total",
        opened + 1,
    );
    let r = call(
        &mut c,
        "m__notify_updated",
        json!({"uri": "mock://m/res/0"}),
    );
    assert_eq!(text_of(&r), "notified");
    let updated = next(&mut get);
    assert_eq!(
        updated["method"], "notifications/resources/updated",
        "{updated}"
    );
    assert_eq!(updated["params"]["uri"], uri);
    // Unsubscribed: no more updates of it.
    let opened = metric(&gw.admin, "ringmux_backend_streams_opened_total");
    c.request("resources/unsubscribe", json!({"uri": uri}))
        .unwrap();
    wait_metric(
        &gw.admin,
        "ringmux_backend_streams_opened_total",
        opened + 1,
    );
    call(
        &mut c,
        "m__notify_updated",
        json!({"uri": "mock://m/res/0"}),
    );
    call(&mut c, "m__touch_tools", json!({}));
    let next_one = next(&mut get);
    assert_eq!(
        next_one["method"], "notifications/tools/list_changed",
        "the update after unsubscribing was not delivered: {next_one}"
    );
}

#[test]
fn the_config_pins_the_era_and_auto_finds_it_out() {
    let m = mock("m").flag("--modern").start();
    let s = mock("s").start();
    // A dual-era server pinned to the stateful era is initialized; a stateful server pinned to
    // the sessionless era is not reachable (its discover is refused), and says so.
    let gw = gateway()
        .backend_with("m", &m.url, "transport: streamable_http")
        .backend_with("s", &s.url, "transport: sessionless")
        .start();
    let mut c = capable_client(&gw.url);
    let on_m: Vec<String> =
        serde_json::from_str(text_of(&call(&mut c, "m__seen", json!({})))).unwrap();
    assert!(
        on_m.contains(&"notifications/initialized".to_owned()),
        "{on_m:?}"
    );
    let names: Vec<Value> = c.list_all("tools/list", "tools").unwrap();
    assert!(
        !names
            .iter()
            .any(|t| t["name"].as_str().unwrap().starts_with("s__")),
        "a stateful server cannot be spoken to sessionless"
    );
    drop(c);
    let logs = {
        let mut gw = gw;
        gw.kill();
        gw.logs()
    };
    assert!(logs.contains("server/discover"), "{logs}");

    // Auto: the same two servers found out, each in its own era.
    let gw = gateway().backend("m", &m.url).backend("s", &s.url).start();
    let mut c = capable_client(&gw.url);
    let meta: Value = serde_json::from_str(text_of(&call(&mut c, "m__seen", json!({})))).unwrap();
    assert_eq!(
        meta["io.modelcontextprotocol/protocolVersion"],
        "2026-07-28"
    );
    let on_s: Vec<String> =
        serde_json::from_str(text_of(&call(&mut c, "s__seen", json!({})))).unwrap();
    assert!(
        on_s.contains(&"notifications/initialized".to_owned()),
        "{on_s:?}"
    );
}

/// A 2026-07-28 request straight from a test client.
fn modern_call(url: &str, id: u64, tool: &str, params: Value) -> Value {
    let mut params = params;
    params["name"] = json!(tool);
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": caps(),
        "io.modelcontextprotocol/clientInfo": {"name": "modern-test", "version": "1"},
    });
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
    let mut c = Client::connect(url).unwrap();
    c.session = None;
    let r = c
        .send(
            "POST",
            body.to_string().as_bytes(),
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", tool),
            ],
        )
        .unwrap();
    r.messages()
        .pop()
        .unwrap_or_else(|| panic!("no message: {r:?}"))
}

#[test]
fn a_modern_client_gets_the_backends_own_input_required() {
    let (_m, _c, _s, gw) = gateway_with_modern_backends();
    let first = modern_call(
        &gw.url,
        1,
        "c__test_sampling",
        json!({"arguments": {"prompt": "sea?"}}),
    );
    let r = &first["result"];
    assert_eq!(r["resultType"], "input_required", "{first}");
    assert_eq!(
        r["inputRequests"]["sampling"]["method"], "sampling/createMessage",
        "the backend's own keys: {first}"
    );
    // The state is the backend's, passed through untouched, and comes back to it.
    assert_eq!(r["requestState"], "mock-state:sampling");
    let done = modern_call(
        &gw.url,
        2,
        "c__test_sampling",
        json!({
            "arguments": {"prompt": "sea?"},
            "inputResponses": {"sampling": {"role": "assistant", "model": "m",
                "content": {"type": "text", "text": "green"}}},
            "requestState": r["requestState"],
        }),
    );
    assert_eq!(done["id"], 2, "{done}");
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert_eq!(text_of(&done), "LLM response: green");
}

#[test]
fn auto_finds_a_legacy_sse_backend() {
    // The mock's legacy HTTP+SSE mode: GET /sse, then POST /message?sessionId=…; its URL is
    // the SSE endpoint. One found out (auto), one pinned.
    let l = mock("l").flag("--sse").flag("--conformance").start();
    let d = mock("d").flag("--sse").start();
    assert!(l.url.ends_with("/sse"), "{}", l.url);
    let gw = gateway()
        .shards(2)
        .backend("l", &l.url)
        .backend_with("d", &d.url, "transport: sse")
        .start();
    let mut c = capable_client(&gw.url);
    assert_eq!(
        text_of(&call(&mut c, "d__echo", json!({"message": "old"}))),
        "old"
    );
    let progress = c
        .post(
            &json!({"jsonrpc": "2.0", "id": "p", "method": "tools/call", "params": {
            "name": "d__progress", "arguments": {"steps": 2}, "_meta": {"progressToken": 5}}}),
        )
        .unwrap();
    let kinds: Vec<Value> = progress
        .messages()
        .iter()
        .map(|m| m.get("method").cloned().unwrap_or(json!("answer")))
        .collect();
    assert_eq!(
        kinds,
        [
            json!("notifications/progress"),
            json!("notifications/progress"),
            json!("answer")
        ]
    );
    // A server→client request over the found-out legacy transport, answered by the client.
    let mut call_stream = start_call(
        &gw.url,
        &c,
        21,
        "l__test_sampling",
        json!({"prompt": "old?"}),
    );
    let ask = next(&mut call_stream);
    assert_eq!(ask["method"], "sampling/createMessage", "{ask}");
    sibling(&gw.url, &c)
        .post(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {
            "role": "assistant", "model": "m", "content": {"type": "text", "text": "yes"}}}))
        .unwrap();
    let done = next(&mut call_stream);
    assert_eq!(text_of(&done), "LLM response: yes", "{done}");
    drop(c);
    let mut gw = gw;
    gw.kill();
    let logs = gw.logs();
    assert!(
        logs.contains("backend speaks the legacy HTTP+SSE transport"),
        "{logs}"
    );
}

/// A backend that serves both eras (its `server/discover` offers 2026-07-28 and the stateful
/// versions, as the conformance reference server's does) is spoken to in each client's own
/// era: a stateful client's call gets the backend's sampling request as a request on its
/// stream (relayed with a remapped id, not translated from `input_required`), and a modern
/// client gets the backend's own `input_required`.
#[test]
fn a_dual_era_backend_is_spoken_to_in_the_clients_era() {
    let d = mock("d")
        .flag("--modern")
        .flag("--dual")
        .flag("--conformance")
        .start();
    let gw = gateway().shards(2).backend("d", &d.url).start();
    let c = capable_client(&gw.url);
    let mut call_stream = start_call(
        &gw.url,
        &c,
        21,
        "d__test_sampling",
        json!({"prompt": "up?"}),
    );
    let ask = next(&mut call_stream);
    assert_eq!(ask["method"], "sampling/createMessage", "{ask}");
    let id = ask["id"].as_str().unwrap();
    assert!(
        id.starts_with(&format!("r{}:", ringmux_core::config::BackendId::of("d"))),
        "relayed from a stateful session, not translated: {ask}"
    );
    sibling(&gw.url, &c)
        .post(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {
            "role": "assistant", "model": "m", "content": {"type": "text", "text": "down"}}}))
        .unwrap();
    let done = next(&mut call_stream);
    assert_eq!(done["id"], 21, "{done}");
    assert_eq!(text_of(&done), "LLM response: down");

    let first = modern_call(
        &gw.url,
        1,
        "d__test_sampling",
        json!({"arguments": {"prompt": "in?"}}),
    );
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    assert_eq!(
        first["result"]["requestState"], "mock-state:sampling",
        "the backend's own state, passed through: {first}"
    );
}
