//! The sessionless era (2026-07-28) served to modern clients by the real binary, over stateful
//! mock backends: `server/discover`, the routing headers and `_meta` envelope checked with the
//! era's codes, `resultType`/`ttlMs`/`cacheScope` on results, a backend's mid-call sampling
//! request turned into `input_required` with a sealed `requestState` and resumed by the retry
//! (a replayed, forged, re-bound or foreign state refused), -32021 for a capability the
//! client did not declare, and `subscriptions/listen` hearing a backend's list change.

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;

const MODERN: &str = "2026-07-28";
const WAIT: Duration = Duration::from_secs(10);

fn meta(caps: &Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": caps,
        "io.modelcontextprotocol/clientInfo": {"name": "modern-test", "version": "1"},
    })
}

/// A modern request: `_meta` added to `params`, the routing headers derived from the body
/// (`Mcp-Name` from params.name/uri), then `extra` (which may override any of them).
fn modern(
    url: &str,
    id: Value,
    method: &str,
    mut params: Value,
    caps: &Value,
    extra: &[(&str, &str)],
) -> RawResponse {
    params["_meta"] = meta(caps);
    let name = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let mut headers: Vec<(&str, &str)> =
        vec![("mcp-protocol-version", MODERN), ("mcp-method", method)];
    if let Some(n) = &name {
        headers.push(("mcp-name", n));
    }
    for (k, v) in extra {
        headers.retain(|(h, _)| h != k);
        headers.push((k, v));
    }
    let mut c = Client::connect(url).unwrap();
    c.session = None;
    c.send("POST", body.to_string().as_bytes(), &headers)
        .unwrap()
}

fn only(resp: &RawResponse) -> Value {
    let msgs = resp.messages();
    msgs.last()
        .cloned()
        .unwrap_or_else(|| panic!("no message: {resp:?}"))
}

#[test]
fn discover_and_every_result_carry_what_the_era_requires() {
    let a = mock("a").start();
    let gw = gateway().shards(2).backend("a", &a.url).start();
    let caps = json!({});
    let resp = modern(&gw.url, json!(1), "server/discover", json!({}), &caps, &[]);
    assert_eq!(resp.status, 200);
    assert!(resp.header("mcp-session-id").is_none(), "sessionless");
    let r = &only(&resp)["result"];
    assert_eq!(r["resultType"], "complete");
    let versions = r["supportedVersions"].as_array().unwrap();
    assert!(
        versions.contains(&json!(MODERN)) && versions.contains(&json!("2025-11-25")),
        "{r}"
    );
    assert!(r["capabilities"]["tools"].is_object(), "{r}");
    assert_eq!(r["cacheScope"], "private");
    assert!(r["ttlMs"].is_u64());
    assert_eq!(
        r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "ringmux"
    );

    let list = only(&modern(
        &gw.url,
        json!(2),
        "tools/list",
        json!({}),
        &caps,
        &[],
    ));
    let r = &list["result"];
    assert_eq!(r["resultType"], "complete", "{list}");
    assert!(
        r["ttlMs"].is_u64() && r["cacheScope"] == "private",
        "{list}"
    );
    assert!(r["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "a__echo"));

    for accept in ["application/json, text/event-stream", "application/json"] {
        let resp = modern(
            &gw.url,
            json!("same-id"),
            "tools/call",
            json!({"name": "a__echo", "arguments": {"message": "hi"}}),
            &caps,
            &[("accept", accept)],
        );
        assert_eq!(resp.status, 200);
        let answer = only(&resp);
        assert_eq!(answer["id"], "same-id", "the client's id comes back");
        assert_eq!(answer["result"]["resultType"], "complete", "{answer}");
        assert_eq!(text_of(&answer), "hi");
    }
    // An unknown tool is an invalid-params error, which this era carries with 400.
    let resp = modern(
        &gw.url,
        json!(3),
        "tools/call",
        json!({"name": "a__nope", "arguments": {}}),
        &caps,
        &[("accept", "application/json")],
    );
    assert_eq!((resp.status, error_code(&only(&resp))), (400, -32602));
}

#[test]
fn routing_headers_and_envelope_are_checked() {
    let a = mock("a").start();
    let gw = gateway().backend("a", &a.url).start();
    let caps = json!({});
    let call = json!({"name": "a__echo", "arguments": {"message": "x"}});
    let refused = |resp: RawResponse| (resp.status, error_code(&only(&resp)));

    let r = modern(
        &gw.url,
        json!(1),
        "tools/call",
        call.clone(),
        &caps,
        &[("mcp-method", "tools/list")],
    );
    assert_eq!(refused(r), (400, -32020));
    let r = modern(
        &gw.url,
        json!(1),
        "tools/call",
        call.clone(),
        &caps,
        &[("mcp-name", "a__other")],
    );
    assert_eq!(refused(r), (400, -32020));
    let r = modern(
        &gw.url,
        json!(1),
        "tools/call",
        call.clone(),
        &caps,
        &[("mcp-name", "")],
    );
    assert_eq!(refused(r), (400, -32020));
    // A routing header given twice, even with equal values: first-copy and last-copy readers
    // would disagree.
    let mut body = call.clone();
    body["_meta"] = meta(&caps);
    let mut c = Client::connect(&gw.url).unwrap();
    c.session = None;
    let r = c
        .send(
            "POST",
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": body})
                .to_string()
                .as_bytes(),
            &[
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/call"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "a__echo"),
            ],
        )
        .unwrap();
    let msg = only(&r);
    assert_eq!((r.status, error_code(&msg)), (400, -32020), "{msg}");
    assert!(
        msg["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Mcp-Method"),
        "{msg}"
    );
    // Non-ASCII names travel base64-encoded.
    let r = modern(
        &gw.url,
        json!(1),
        "tools/call",
        json!({"name": "a__é", "arguments": {}}),
        &caps,
        &[
            ("mcp-name", "=?base64?YV9fw6k=?="),
            ("accept", "application/json"),
        ],
    );
    assert_eq!(
        refused(r),
        (400, -32602),
        "past the header check, an unknown tool"
    );
    // The header's version must be the envelope's.
    let r = modern(
        &gw.url,
        json!(1),
        "tools/list",
        json!({}),
        &caps,
        &[("mcp-protocol-version", "2099-01-01")],
    );
    assert_eq!(refused(r), (400, -32020));

    let mut c = Client::connect(&gw.url).unwrap();
    c.session = None;
    let headers = [
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "tools/list"),
    ];
    let r = c
        .send(
            "POST",
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#,
            &headers,
        )
        .unwrap();
    assert_eq!(refused(r), (400, -32602), "no _meta envelope");
    let r = c
        .send(
            "POST",
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2099-01-01","io.modelcontextprotocol/clientCapabilities":{}}}}"#,
            &[("mcp-protocol-version", "2099-01-01"), ("mcp-method", "tools/list")],
        )
        .unwrap();
    assert_eq!(r.status, 400);
    let e = only(&r);
    assert_eq!(e["error"]["code"], -32022, "{e}");
    assert_eq!(e["error"]["data"]["supported"], json!([MODERN]));
    assert_eq!(e["error"]["data"]["requested"], "2099-01-01");

    for removed in [
        "ping",
        "initialize",
        "logging/setLevel",
        "resources/subscribe",
    ] {
        let r = modern(&gw.url, json!(1), removed, json!({}), &caps, &[]);
        assert_eq!(refused(r), (404, -32601), "{removed}");
    }
    let r = c
        .send(
            "GET",
            b"",
            &[
                ("mcp-protocol-version", MODERN),
                ("accept", "text/event-stream"),
            ],
        )
        .unwrap();
    assert_eq!(r.status, 405);
    let r = c
        .send(
            "POST",
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
            &[
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "notifications/cancelled"),
            ],
        )
        .unwrap();
    assert_eq!(r.status, 202);
    let r = c
        .send(
            "POST",
            br#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            &[("mcp-protocol-version", MODERN)],
        )
        .unwrap();
    assert_eq!(r.status, 400);
    // The stateful era still works beside it.
    let mut old = client(&gw.url);
    let tools = old.request("tools/list", json!({})).unwrap();
    assert!(
        tools["result"].get("resultType").is_none(),
        "no era members on stateful results"
    );
}

/// The conformance mock's `test_sampling` sends `sampling/createMessage` in the middle of its
/// call and answers with what the client sampled.
#[test]
fn a_backend_request_mid_call_becomes_input_required_and_the_retry_resumes_it() {
    let c = mock("c").flag("--conformance").start();
    let gw = gateway()
        .shards(2)
        .backend("c", &c.url)
        .yaml("modern:\n  principal_header: x-principal")
        .start();
    let caps = json!({"sampling": {}});
    let args = json!({"name": "c__test_sampling", "arguments": {"prompt": "weather?"}});
    let alice = [("x-principal", "alice")];
    let first = only(&modern(
        &gw.url,
        json!(1),
        "tools/call",
        args.clone(),
        &caps,
        &alice,
    ));
    let r = &first["result"];
    assert_eq!(r["resultType"], "input_required", "{first}");
    let requests = r["inputRequests"].as_object().unwrap();
    assert_eq!(requests.len(), 1, "{first}");
    let (key, asked) = requests.iter().next().unwrap();
    assert_eq!(asked["method"], "sampling/createMessage");
    assert_eq!(
        asked["params"]["messages"][0]["content"]["text"],
        "weather?"
    );
    let state = r["requestState"].as_str().unwrap().to_owned();
    assert!(state.starts_with("rm1."), "{state}");

    let answer =
        json!({"role": "assistant", "content": {"type": "text", "text": "sunny"}, "model": "m"});
    let retry = |id: i64, state: &str, args: &Value, who: &[(&str, &str)]| {
        let mut p = args.clone();
        p["requestState"] = json!(state);
        p["inputResponses"] = json!({ key.as_str(): answer.clone() });
        let mut extra = who.to_vec();
        extra.push(("accept", "application/json"));
        modern(&gw.url, json!(id), "tools/call", p, &caps, &extra)
    };
    let invalid = |resp: RawResponse| {
        let e = only(&resp);
        resp.status == 400
            && e["error"]["code"] == -32602
            && e["error"]["data"]["reason"] == "invalid_request_state"
    };
    // Bound to the principal and to the request: another principal or other arguments cannot
    // use it, and a forged one opens for nobody.
    assert!(invalid(retry(
        2,
        &state,
        &args,
        &[("x-principal", "mallory")]
    )));
    let other_args = json!({"name": "c__test_sampling", "arguments": {"prompt": "other"}});
    assert!(invalid(retry(2, &state, &other_args, &alice)));
    let mut forged = state.clone().into_bytes();
    let i = forged.len() - 5;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    assert!(invalid(retry(
        2,
        std::str::from_utf8(&forged).unwrap(),
        &args,
        &alice
    )));

    let done = retry(3, &state, &args, &alice);
    assert_eq!(done.status, 200);
    let done = only(&done);
    assert_eq!(done["id"], 3, "the retry's id");
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert!(text_of(&done).contains("sunny"), "{done}");
    // Used once.
    assert!(invalid(retry(4, &state, &args, &alice)));
    assert_eq!(metric(&gw.admin, "ringmux_input_required_total"), 1);
    assert!(metric(&gw.admin, "ringmux_modern_requests_total") >= 6);
}

#[test]
fn a_capability_the_client_did_not_declare_is_32021() {
    let c = mock("c").flag("--conformance").start();
    let gw = gateway().backend("c", &c.url).start();
    let resp = modern(
        &gw.url,
        json!(1),
        "tools/call",
        json!({"name": "c__test_sampling", "arguments": {"prompt": "p"}}),
        &json!({}),
        &[("accept", "application/json")],
    );
    assert_eq!(resp.status, 400);
    let e = only(&resp);
    assert_eq!(e["error"]["code"], -32021, "{e}");
    assert!(
        e["error"]["data"]["requiredCapabilities"]["sampling"].is_object(),
        "{e}"
    );
    // The backend was answered, not left waiting: the next call goes through.
    let ok = only(&modern(
        &gw.url,
        json!(2),
        "tools/call",
        json!({"name": "c__test_simple_text", "arguments": {}}),
        &json!({}),
        &[],
    ));
    assert_eq!(ok["result"]["resultType"], "complete", "{ok}");
}

#[test]
fn listen_streams_hear_list_changes_with_their_subscription_id() {
    let a = mock("a").start();
    let gw = gateway().shards(2).backend("a", &a.url).start();
    let caps = json!({});
    let mut params = json!({"notifications": {"toolsListChanged": true, "promptsListChanged": false, "somethingElse": true}});
    params["_meta"] = meta(&caps);
    let body =
        json!({"jsonrpc": "2.0", "id": "L1", "method": "subscriptions/listen", "params": params});
    let mut c = Client::connect(&gw.url).unwrap();
    c.session = None;
    let mut stream = c
        .open_stream(
            "POST",
            body.to_string().as_bytes(),
            &[
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "subscriptions/listen"),
            ],
        )
        .unwrap();
    assert_eq!(stream.status, 200);
    let ack = stream
        .next_message(WAIT)
        .unwrap()
        .expect("an acknowledgement");
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "L1"
    );
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true}),
        "only what was asked and is known"
    );

    let touched = only(&modern(
        &gw.url,
        json!(1),
        "tools/call",
        json!({"name": "a__touch_tools", "arguments": {}}),
        &caps,
        &[],
    ));
    assert_eq!(text_of(&touched), "touched");
    let changed = stream.next_message(WAIT).unwrap().expect("a list change");
    assert_eq!(
        changed["method"], "notifications/tools/list_changed",
        "{changed}"
    );
    assert_eq!(
        changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "L1"
    );
    // The cached list was dropped: the new tool is listed.
    let list = only(&modern(
        &gw.url,
        json!(2),
        "tools/list",
        json!({}),
        &caps,
        &[],
    ));
    let n = list["result"]["tools"].as_array().unwrap().len();
    assert!(
        list["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"].as_str().unwrap().contains("extra")),
        "{n} tools: {list}"
    );
}

/// Backends' `instructions` reach the client, each under its backend's name, in config order:
/// in `initialize` for a stateful client and in `server/discover` for a modern one; a backend
/// that gives none adds nothing, a sessionless backend's count too.
#[test]
fn backends_instructions_are_merged_under_their_names() {
    let a = mock("a")
        .arg("--instructions", "Use a for \"echo\".\nLine two.")
        .start();
    let b = mock("b").start();
    let c = mock("c")
        .flag("--modern")
        .arg("--instructions", "c lists things")
        .start();
    let gw = gateway()
        .backend("a", &a.url)
        .backend("b", &b.url)
        .backend("c", &c.url)
        .start();
    let want = "## a\nUse a for \"echo\".\nLine two.\n\n## c\nc lists things";
    let mut cl = Client::connect(&gw.url).unwrap();
    let init = cl.initialize().unwrap();
    assert_eq!(init["result"]["instructions"], want, "{init}");
    let resp = modern(
        &gw.url,
        json!(1),
        "server/discover",
        json!({}),
        &json!({}),
        &[],
    );
    assert_eq!(only(&resp)["result"]["instructions"], want);

    // None at all: no member.
    let gw = gateway().backend("b", &b.url).start();
    let init = Client::connect(&gw.url).unwrap().initialize().unwrap();
    assert!(init["result"].get("instructions").is_none(), "{init}");
}

/// A backend's SSE answer that ends without the response and without an event id to resume
/// from fails the call at once (the backend's request timeout here is a minute, the client's
/// read timeout 30 s): for a stateful client reading SSE, one reading JSON, and a modern client.
#[test]
fn a_stream_without_event_ids_that_ends_early_fails_the_call_at_once() {
    let a = mock("a").flag("--faults").start();
    let gw = gateway()
        .backend_with("a", &a.url, "request_timeout_ms: 60000")
        .start();
    let expect_cut = |msg: &Value, backend: &str, how: &str| {
        assert_eq!(error_code(msg), -32603, "{how}: {msg}");
        let text = msg["error"]["message"].as_str().unwrap();
        let named = text.contains(&format!("backend {backend}"));
        assert!(named && text.contains("stream ended"), "{how}: {text}");
    };
    let mut c = client(&gw.url);
    let sse = c
        .request(
            "tools/call",
            json!({"name": "a__cut_stream", "arguments": {}}),
        )
        .unwrap();
    expect_cut(&sse, "a", "stateful, SSE");
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "a__cut_stream", "arguments": {}}});
    let json_only = c
        .send(
            "POST",
            body.to_string().as_bytes(),
            &[("accept", "application/json")],
        )
        .unwrap();
    assert_eq!(json_only.header("content-type"), Some("application/json"));
    expect_cut(&only(&json_only), "a", "stateful, JSON");
    // The session still works.
    let echo = c
        .request(
            "tools/call",
            json!({"name": "a__echo", "arguments": {"message": "on"}}),
        )
        .unwrap();
    assert_eq!(text_of(&echo), "on");
    let resp = modern(
        &gw.url,
        json!(3),
        "tools/call",
        json!({"name": "a__cut_stream", "arguments": {}}),
        &json!({}),
        &[],
    );
    expect_cut(&only(&resp), "a", "modern");

    // The same through a sessionless backend, for both eras.
    let b = mock("b").flag("--modern").flag("--faults").start();
    let gw = gateway()
        .backend_with("b", &b.url, "request_timeout_ms: 60000")
        .start();
    let mut c = client(&gw.url);
    let sse = c
        .request(
            "tools/call",
            json!({"name": "b__cut_stream", "arguments": {}}),
        )
        .unwrap();
    expect_cut(&sse, "b", "stateful via sessionless");
    let resp = modern(
        &gw.url,
        json!(4),
        "tools/call",
        json!({"name": "b__cut_stream", "arguments": {}}),
        &json!({}),
        &[],
    );
    expect_cut(&only(&resp), "b", "modern via sessionless");
}

/// A principal's requests share its backend sessions, so each gets an id of ringmux's on the
/// way out; the client's id comes back. Here the id comes after `params` (so the tool name
/// rewritten for a prefixed backend sits before it in the body), two calls with the same id
/// overlap, and one goes to a stdio child (ids renumbered once more by the multiplexer).
#[test]
fn overlapping_requests_with_one_id_get_their_own_answers() {
    let a = mock("a").start();
    let gw = gateway()
        .shards(1)
        .backend("a", &a.url)
        .stdio_mock("s", "mode: shared\n")
        .start();
    let caps = json!({});
    let call = |tool: &str, args: Value| {
        let params = json!({"name": tool, "arguments": args, "_meta": meta(&caps)});
        let body =
            format!(r#"{{"jsonrpc":"2.0","method":"tools/call","params":{params},"id":"same"}}"#);
        let mut c = Client::connect(&gw.url).unwrap();
        c.session = None;
        let headers = [
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", tool),
        ];
        only(&c.send("POST", body.as_bytes(), &headers).unwrap())
    };
    std::thread::scope(|s| {
        let slow = s.spawn(|| call("a__slow", json!({"ms": 400})));
        let slow_stdio = s.spawn(|| call("s__slow", json!({"ms": 400})));
        for i in 0..5 {
            let message = format!("hello {i}");
            let answer = call("a__echo", json!({"message": message}));
            assert_eq!(answer["id"], "same", "{answer}");
            assert_eq!(text_of(&answer), message, "{answer}");
            let answer = call("s__echo", json!({"message": message}));
            assert_eq!(answer["id"], "same", "{answer}");
            assert_eq!(text_of(&answer), message, "{answer}");
        }
        for slow in [slow, slow_stdio] {
            let answer = slow.join().unwrap();
            assert_eq!(answer["id"], "same", "{answer}");
            assert_eq!(text_of(&answer), "slept", "{answer}");
        }
    });
}
