//! Federation scenarios on the real binary: merged lists, routing with names and URIs restored,
//! pagination walks, backend failures, session expiry, DELETE, the cross-shard hop.

#[path = "support/harness.rs"]
mod harness;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use harness::*;

fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Three mock backends (alpha: 12 tools; beta: 14 tools, 2 prompts; gamma: 13 tools, 2
/// resources) behind a gateway, and an initialized client.
fn three_backends() -> ([Proc; 4], Client) {
    let a = mock("alpha").tools(12).start();
    let b = mock("beta").tools(14).arg("--prompts", 2).start();
    let c = mock("gamma").tools(13).arg("--resources", 2).start();
    let gw = gateway()
        .backend("alpha", &a.url)
        .backend("beta", &b.url)
        .backend("gamma", &c.url)
        .start();
    let cl = client(&gw.url);
    ([a, b, c, gw], cl)
}

#[test]
fn tools_are_merged_in_config_order_and_calls_reach_their_owner() {
    let (_procs, mut cl) = three_backends();
    let tools = cl.list_all("tools/list", "tools").unwrap();
    let got = names(&tools);
    assert_eq!(got.len(), 12 + 14 + 13, "{got:?}");
    assert!(
        got.iter().take(12).all(|n| n.starts_with("alpha__")),
        "config order: {got:?}"
    );
    assert!(got.contains(&"beta__echo".to_owned()));
    // Only the top-level name is prefixed; a property called `name` inside inputSchema is not.
    let generated = tools
        .iter()
        .find(|t| t["name"].as_str().unwrap().starts_with("gamma__tool_"))
        .unwrap();
    assert!(
        generated["inputSchema"]["properties"].get("name").is_some(),
        "{generated}"
    );
    let echo = cl
        .request(
            "tools/call",
            json!({"name": "beta__echo", "arguments": {"message": "hi \"there\""}}),
        )
        .unwrap();
    assert_eq!(text_of(&echo), "hi \"there\"");
    let sum = cl
        .request(
            "tools/call",
            json!({"name": "gamma__add", "arguments": {"a": 2, "b": 3}}),
        )
        .unwrap();
    assert_eq!(text_of(&sum), "5");
    let unknown = cl
        .request(
            "tools/call",
            json!({"name": "alpha__nope", "arguments": {}}),
        )
        .unwrap();
    assert_eq!(error_code(&unknown), -32602);
}

#[test]
fn prompts_and_completions_route_by_name() {
    let (_procs, mut cl) = three_backends();
    let prompts = names(&cl.list_all("prompts/list", "prompts").unwrap());
    assert!(prompts.contains(&"beta__greet".to_owned()), "{prompts:?}");
    let greet = cl
        .request(
            "prompts/get",
            json!({"name": "beta__greet", "arguments": {"name": "Ada"}}),
        )
        .unwrap();
    assert_eq!(
        greet["result"]["messages"][0]["content"]["text"],
        "Hello, Ada!"
    );
    let done = cl
        .request("completion/complete", json!({"ref": {"type": "ref/prompt", "name": "beta__greet"}, "argument": {"name": "name", "value": "a"}}))
        .unwrap();
    assert!(done["result"]["completion"]["values"].is_array(), "{done}");
}

#[test]
fn resources_and_templates_route_by_their_mapped_uri() {
    let (_procs, mut cl) = three_backends();
    let resources = cl.list_all("resources/list", "resources").unwrap();
    let uris: Vec<&str> = resources
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert!(
        uris.contains(&"ringmux://gamma/mock://gamma/res/1"),
        "{uris:?}"
    );
    let read = cl
        .request(
            "resources/read",
            json!({"uri": "ringmux://gamma/mock://gamma/res/1"}),
        )
        .unwrap();
    assert_eq!(read["result"]["contents"][0]["text"], "resource 1 of gamma");
    // The URI in the contents is the one the client read, not the backend's own.
    assert_eq!(
        read["result"]["contents"][0]["uri"],
        "ringmux://gamma/mock://gamma/res/1"
    );
    // A URI made from a template routes by its mapped prefix.
    let templates = cl
        .list_all("resources/templates/list", "resourceTemplates")
        .unwrap();
    assert!(
        templates
            .iter()
            .any(|t| t["uriTemplate"] == "ringmux://gamma/mock://gamma/item/{id}"),
        "{templates:?}"
    );
    let item = cl
        .request(
            "resources/read",
            json!({"uri": "ringmux://gamma/mock://gamma/item/42"}),
        )
        .unwrap();
    assert_eq!(item["result"]["contents"][0]["text"], "item 42 of gamma");
    let sub = cl
        .request(
            "resources/subscribe",
            json!({"uri": "ringmux://gamma/mock://gamma/res/0"}),
        )
        .unwrap();
    assert_eq!(sub["result"], json!({}));
    let missing = cl
        .request("resources/read", json!({"uri": "ringmux://nobody/x"}))
        .unwrap();
    assert_eq!(error_code(&missing), -32002);
}

#[test]
fn ping_and_set_level_are_answered_by_the_gateway() {
    let (_procs, mut cl) = three_backends();
    assert_eq!(cl.request("ping", json!({})).unwrap()["result"], json!({}));
    assert_eq!(
        cl.request("logging/setLevel", json!({"level": "debug"}))
            .unwrap()["result"],
        json!({})
    );
}

#[test]
fn initialize_merges_and_reports_ringmux() {
    let a = mock("a").start();
    let gw = gateway().backend("a", &a.url).start();
    let mut cl = Client::connect(&gw.url).unwrap();
    let init = cl.initialize().unwrap();
    assert_eq!(init["result"]["serverInfo"]["name"], "ringmux");
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    let caps = &init["result"]["capabilities"];
    assert!(
        caps.get("tools").is_some()
            && caps.get("prompts").is_some()
            && caps.get("resources").is_some(),
        "{caps}"
    );
    let sid = cl.session.clone().unwrap();
    assert_eq!(sid.len(), 32);
    assert!(sid.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    // An older client gets its own version back.
    let mut old = Client::connect(&gw.url).unwrap();
    old.protocol_version = "2025-03-26".into();
    assert_eq!(
        old.initialize().unwrap()["result"]["protocolVersion"],
        "2025-03-26"
    );
}

#[test]
fn pagination_walk_sees_every_item_once() {
    let a = mock("a").tools(23).page_size(5).start();
    let b = mock("b").tools(11).page_size(3).start();
    let c = mock("c").tools(11).start();
    let gw = gateway()
        .yaml("limits:\n  page_size: 4")
        .backend("a", &a.url)
        .backend("b", &b.url)
        .backend("c", &c.url)
        .start();
    let mut cl = client(&gw.url);
    let mut pages = 0;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = cursor.as_ref().map_or(json!({}), |c| json!({"cursor": c}));
        let page = cl.request("tools/list", params).unwrap();
        let items = page["result"]["tools"].as_array().unwrap();
        assert!(items.len() <= 4);
        seen.extend(names(items));
        pages += 1;
        match page["result"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 23 + 11 + 11);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        seen.len(),
        "duplicates in {seen:?}"
    );
    assert_eq!(pages, (45 + 3) / 4);
    let bad = cl
        .request("tools/list", json!({"cursor": "not-a-cursor"}))
        .unwrap();
    assert_eq!(error_code(&bad), -32602);
}

/// A gateway in front of `up` (11 tools) and `doomed` (13, with `keys`), a client that listed
/// all 24, and `doomed` killed: (up, doomed, gateway, client).
fn up_and_killed(keys: &str) -> (Proc, Proc, Proc, Client) {
    let up = mock("up").tools(11).start();
    let mut doomed = mock("doomed").tools(13).start();
    let gw = gateway()
        .backend("up", &up.url)
        .backend_with(
            "doomed",
            &doomed.url,
            &format!("retry_backoff_ms: 60000\nconnect_timeout_ms: 500\n{keys}"),
        )
        .start();
    let mut cl = client(&gw.url);
    assert_eq!(cl.list_all("tools/list", "tools").unwrap().len(), 24);
    doomed.kill();
    (up, doomed, gw, cl)
}

#[test]
fn a_backend_down_degrades_only_itself() {
    let (_up, _doomed, gw, mut cl) = up_and_killed("");
    let started = Instant::now();
    let call = cl
        .request(
            "tools/call",
            json!({"name": "doomed__echo", "arguments": {"message": "x"}}),
        )
        .unwrap();
    assert_eq!(error_code(&call), -32603, "{call}");
    assert!(
        call["error"]["message"]
            .as_str()
            .unwrap()
            .contains("doomed"),
        "{call}"
    );
    // Its circuit is open: the next call fails fast, and lists keep its tools from the last
    // good catalog (calls to them fail fast, naming it).
    let again = cl
        .request(
            "tools/call",
            json!({"name": "doomed__echo", "arguments": {"message": "x"}}),
        )
        .unwrap();
    assert_eq!(error_code(&again), -32603);
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("next try"),
        "{again}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let tools = names(&cl.list_all("tools/list", "tools").unwrap());
    assert_eq!(tools.len(), 24, "{tools:?}");
    let ok = cl
        .request(
            "tools/call",
            json!({"name": "up__echo", "arguments": {"message": "still"}}),
        )
        .unwrap();
    assert_eq!(text_of(&ok), "still");
    // A fresh session while the backend is down initializes with the others (it never
    // joined the dead one, so it lists only theirs).
    let mut fresh = client(&gw.url);
    assert_eq!(fresh.list_all("tools/list", "tools").unwrap().len(), 11);
    let logs = gw.logs();
    assert!(
        logs.contains("doomed"),
        "the log names the failed backend:\n{logs}"
    );
}

/// `circuit.hide_when_open`: while a backend's circuit is open, lists leave it out.
#[test]
fn an_open_circuit_can_hide_the_backend_from_lists() {
    let (_up, _doomed, _gw, mut cl) = up_and_killed("circuit:\n  hide_when_open: true");
    let call = cl
        .request(
            "tools/call",
            json!({"name": "doomed__echo", "arguments": {"message": "x"}}),
        )
        .unwrap();
    assert_eq!(error_code(&call), -32603, "{call}");
    let tools = names(&cl.list_all("tools/list", "tools").unwrap());
    assert_eq!(tools.len(), 11, "{tools:?}");
    assert!(tools.iter().all(|t| t.starts_with("up__")));
}

#[test]
fn a_slow_backend_times_out_with_a_clear_error() {
    let slow = mock("slow").start();
    let fast = mock("fast").start();
    let gw = gateway()
        .backend_with(
            "slow",
            &slow.url,
            "request_timeout_ms: 300\nretry_backoff_ms: 100",
        )
        .backend("fast", &fast.url)
        .start();
    let mut cl = client(&gw.url);
    let started = Instant::now();
    let call = cl
        .request(
            "tools/call",
            json!({"name": "slow__slow", "arguments": {"ms": 5000}}),
        )
        .unwrap();
    assert_eq!(error_code(&call), -32603);
    assert!(
        call["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{call}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let ok = cl
        .request(
            "tools/call",
            json!({"name": "fast__echo", "arguments": {"message": "fine"}}),
        )
        .unwrap();
    assert_eq!(text_of(&ok), "fine");
}

#[test]
fn an_expired_backend_session_is_recreated_transparently() {
    let a = mock("a").start();
    let gw = gateway().backend("a", &a.url).start();
    let mut cl = client(&gw.url);
    let dropped = cl
        .request(
            "tools/call",
            json!({"name": "a__drop_session", "arguments": {}}),
        )
        .unwrap();
    assert_eq!(text_of(&dropped), "dropped");
    let echo = cl
        .request(
            "tools/call",
            json!({"name": "a__echo", "arguments": {"message": "back"}}),
        )
        .unwrap();
    assert_eq!(text_of(&echo), "back");
}

#[test]
fn delete_ends_the_session() {
    let a = mock("a").start();
    let gw = gateway().backend("a", &a.url).start();
    let mut cl = client(&gw.url);
    let resp = cl.send("DELETE", b"", &[]).unwrap();
    assert_eq!(resp.status, 200);
    let after = cl
        .post(&json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}))
        .unwrap();
    assert_eq!(after.status, 404);
    assert_eq!(cl.send("DELETE", b"", &[]).unwrap().status, 404);
}

#[test]
fn progress_streams_before_the_result() {
    let a = mock("a").start();
    let gw = gateway().backend("a", &a.url).start();
    let mut cl = client(&gw.url);
    let resp = cl
        .post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "a__progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "tok"}}}))
        .unwrap();
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let msgs = resp.messages();
    let methods: Vec<&str> = msgs
        .iter()
        .map(|m| m["method"].as_str().unwrap_or("response"))
        .collect();
    assert_eq!(
        methods,
        [
            "notifications/progress",
            "notifications/progress",
            "notifications/progress",
            "response"
        ]
    );
    assert_eq!(msgs[0]["params"]["progressToken"], "tok");
    assert_eq!(msgs[3]["id"], 9);
}

#[test]
fn list_changed_invalidates_the_cached_catalog() {
    let a = mock("a").tools(11).start();
    let gw = gateway()
        .backend("a", &a.url)
        .yaml("catalog:\n  ttl_ms: 3600000")
        .start();
    let mut cl = client(&gw.url);
    assert_eq!(cl.list_all("tools/list", "tools").unwrap().len(), 11);
    let touched = cl
        .request(
            "tools/call",
            json!({"name": "a__touch_tools", "arguments": {}}),
        )
        .unwrap();
    assert_eq!(text_of(&touched), "touched");
    let tools = names(&cl.list_all("tools/list", "tools").unwrap());
    assert_eq!(tools.len(), 12, "{tools:?}");
    assert!(tools.iter().any(|t| t.starts_with("a__extra_")));
}

/// A session's requests over fresh connections, which land on either shard: every one is
/// answered by the owner, JSON and SSE alike. Returns the session's owner-side client.
fn requests_from_fresh_connections(gw: &Proc, owner: &Client, rounds: usize) {
    let sid = owner.session.clone().unwrap();
    for i in 0..rounds {
        let mut c = Client::connect(&gw.url).unwrap();
        c.session = Some(sid.clone());
        c.protocol_version = owner.protocol_version.clone();
        let echo = c
            .request(
                "tools/call",
                json!({"name": "a__echo", "arguments": {"message": format!("m{i}")}}),
            )
            .unwrap();
        assert_eq!(text_of(&echo), format!("m{i}"));
        // A streamed response crosses too.
        let resp = c
            .post(&json!({"jsonrpc": "2.0", "id": 100 + i, "method": "tools/call", "params": {"name": "a__progress", "arguments": {"steps": 2}, "_meta": {"progressToken": i}}}))
            .unwrap();
        assert_eq!(resp.messages().len(), 3, "{resp:?}");
    }
}

#[test]
fn two_shards_hop_to_the_session_owner() {
    let a = mock("a").start();
    let gw = gateway()
        .shards(2)
        .backend("a", &a.url)
        .yaml("handoff: false")
        .start();
    let mut owner = client(&gw.url);
    let sid = owner.session.clone().unwrap();
    // About half the fresh connections land on the other shard; each of their requests hops.
    requests_from_fresh_connections(&gw, &owner, 24);
    let hops = metric(&gw.admin, "ringmux_cross_shard_hops_total");
    assert!(hops > 0, "no request crossed shards");
    assert_eq!(hops % 2, 0, "both requests of a connection hop: {hops}");
    assert_eq!(
        hops,
        metric(&gw.admin, "ringmux_cross_shard_received_total")
    );
    assert_eq!(metric(&gw.admin, "ringmux_connection_handoffs_total"), 0);
    // DELETE from any connection reaches the owner.
    let mut d = Client::connect(&gw.url).unwrap();
    d.session = Some(sid);
    assert_eq!(d.send("DELETE", b"", &[]).unwrap().status, 200);
    assert_eq!(
        owner
            .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .unwrap()
            .status,
        404
    );
}

#[test]
fn two_shards_hand_connections_to_the_session_owner() {
    let a = mock("a").start();
    let gw = gateway().shards(2).backend("a", &a.url).start();
    let owner = client(&gw.url);
    // A connection that lands on the wrong shard is handed over with its first request; its
    // second request is then served locally, so nothing hops.
    requests_from_fresh_connections(&gw, &owner, 24);
    let handoffs = metric(&gw.admin, "ringmux_connection_handoffs_total");
    assert!(handoffs > 0, "no connection was handed over");
    assert_eq!(
        handoffs,
        metric(&gw.admin, "ringmux_connection_handoffs_received_total")
    );
    assert_eq!(metric(&gw.admin, "ringmux_cross_shard_hops_total"), 0);

    // One connection carrying many sessions (a client's pool): handed over at most once, then
    // requests for the other shard's sessions hop instead of the connection ping-ponging.
    let sessions: Vec<Client> = (0..16).map(|_| client(&gw.url)).collect();
    let mut shared = Client::connect(&gw.url).unwrap();
    let before = metric(&gw.admin, "ringmux_connection_handoffs_total");
    for round in 0..3 {
        for s in &sessions {
            shared.session = s.session.clone();
            shared.protocol_version = s.protocol_version.clone();
            let echo = shared
                .request(
                    "tools/call",
                    json!({"name": "a__echo", "arguments": {"message": format!("r{round}")}}),
                )
                .unwrap();
            assert_eq!(text_of(&echo), format!("r{round}"));
        }
    }
    let handed = metric(&gw.admin, "ringmux_connection_handoffs_total") - before;
    assert!(
        handed <= 1,
        "the shared connection was handed over {handed} times"
    );
    // With 16 sessions, both shards own some (all on one: 2^-15), so some requests hop.
    assert!(metric(&gw.admin, "ringmux_cross_shard_hops_total") > 0);
    // DELETE on fresh connections reaches each owner, handed over or not.
    for s in &sessions {
        let mut d = Client::connect(&gw.url).unwrap();
        d.session = s.session.clone();
        assert_eq!(d.send("DELETE", b"", &[]).unwrap().status, 200);
    }
    assert_eq!(metric(&gw.admin, "ringmux_sessions"), 1);
}

/// Every resource URI a prefixed backend hands a client is one it can use through ringmux:
/// `resources/read` contents, resource links and embedded resources in tool results (a JSON
/// answer, and an answer relayed from a stdio child's stream), and embedded resources in
/// prompt messages; each read back through the gateway names itself the same way.
#[test]
fn resource_uris_in_results_round_trip_through_the_gateway() {
    let a = mock("a").flag("--links").start();
    let c = mock("c").flag("--conformance").start();
    let gw = gateway()
        .backend("a", &a.url)
        .backend("c", &c.url)
        .stdio_mock_with("s", &["--links"], "")
        .start();
    let mut cl = client(&gw.url);
    let read_back = |cl: &mut Client, uri: &str| {
        let r = cl.request("resources/read", json!({"uri": uri})).unwrap();
        assert!(r.get("error").is_none(), "{uri}: {r}");
        assert_eq!(r["result"]["contents"][0]["uri"], uri, "{r}");
    };
    let listed: Vec<String> = cl
        .list_all("resources/list", "resources")
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        listed.contains(&"ringmux://a/mock://a/res/0".to_owned()),
        "{listed:?}"
    );
    for uri in &listed {
        read_back(&mut cl, uri);
    }
    // A template-made URI.
    read_back(&mut cl, "ringmux://c/test://template/7/data");

    for backend in ["a", "s"] {
        let r = cl
            .request(
                "tools/call",
                json!({"name": format!("{backend}__links"), "arguments": {}}),
            )
            .unwrap();
        let content = &r["result"]["content"];
        let link = content[0]["uri"].as_str().unwrap();
        let embedded = content[1]["resource"]["uri"].as_str().unwrap();
        assert_eq!(
            link,
            format!("ringmux://{backend}/mock://{backend}/res/0"),
            "{r}"
        );
        assert_eq!(
            embedded,
            format!("ringmux://{backend}/mock://{backend}/res/1"),
            "{r}"
        );
        assert_eq!(content[1]["resource"]["text"], "embedded");
        read_back(&mut cl, link);
        read_back(&mut cl, embedded);
    }

    let p = cl
        .request(
            "prompts/get",
            json!({"name": "c__test_prompt_with_embedded_resource",
                   "arguments": {"resourceUri": "test://static-text"}}),
        )
        .unwrap();
    let uri = p["result"]["messages"][0]["content"]["resource"]["uri"]
        .as_str()
        .unwrap();
    assert_eq!(uri, "ringmux://c/test://static-text", "{p}");
    read_back(&mut cl, uri);
}
