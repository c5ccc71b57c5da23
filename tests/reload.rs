//! Hot reload on the real binary: SIGHUP and a changed file apply a new config shard by
//! shard while sessions, streams and calls go on; a bad file or a restart-only change is
//! refused with its key path and line, and the running config stays; a reload under load
//! loses no request.

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;

const WAIT: Duration = Duration::from_secs(10);

/// A gauge without labels from the admin listener's `/metrics`.
fn gauge(admin: &str, name: &str) -> u64 {
    let mut c = Client::connect(&format!("{admin}/metrics")).expect("connecting");
    let resp = c.send("GET", b"", &[]).expect("scraping");
    String::from_utf8_lossy(&resp.body)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// `ringmux_config_reloads_total{result}`.
fn reloads(admin: &str, result: &str) -> u64 {
    let mut c = Client::connect(&format!("{admin}/metrics")).expect("connecting");
    let resp = c.send("GET", b"", &[]).expect("scraping");
    let line = format!("ringmux_config_reloads_total{{result=\"{result}\"}} ");
    String::from_utf8_lossy(&resp.body)
        .lines()
        .find_map(|l| l.strip_prefix(&line)?.parse().ok())
        .unwrap_or(0)
}

/// Writes `text` as the gateway's config and sends SIGHUP; waits for the outcome: the
/// generation `applied` (`Some`), or one more refusal (`None`).
fn reload(gw: &Proc, text: &str, applied: Option<u64>) {
    let refused = reloads(&gw.admin, "refused");
    std::fs::write(gw.config.as_ref().unwrap(), text).unwrap();
    gw.signal(libc::SIGHUP);
    let done = eventually(WAIT, || match applied {
        Some(g) => gauge(&gw.admin, "ringmux_config_generation") == g,
        None => reloads(&gw.admin, "refused") == refused + 1,
    });
    if !done {
        let mut c = Client::connect(&format!("{}/metrics", gw.admin)).unwrap();
        let body = c.send("GET", b"", &[]).unwrap().body;
        let body = String::from_utf8_lossy(&body);
        let reloads: Vec<&str> = body
            .lines()
            .filter(|l| l.starts_with("ringmux_config"))
            .collect();
        panic!("reload to {applied:?} did not happen: {reloads:?}");
    }
}

/// Calls `tool` (an echo) with `message`: its answer.
fn echo(c: &mut Client, tool: &str, message: &str) -> Value {
    c.request(
        "tools/call",
        json!({"name": tool, "arguments": {"message": message}}),
    )
    .unwrap()
}

/// The call was refused: a JSON-RPC error, or a result marked as one.
fn refused(answer: &Value) -> bool {
    answer.get("error").is_some() || answer["result"]["isError"] == true
}

fn names(c: &mut Client) -> Vec<String> {
    c.list_all("tools/list", "tools")
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The GET stream shows `notifications/tools/list_changed` within `WAIT`.
fn told_list_changed(get: &mut ringmux::probe::EventReader) -> bool {
    let until = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < until {
        match get.next_event(Duration::from_millis(200)) {
            Ok(Some(ev)) if String::from_utf8_lossy(&ev.data).contains("tools/list_changed") => {
                return true
            }
            Ok(None) => return false,
            _ => {}
        }
    }
    false
}

fn open_get(url: &str, c: &Client) -> ringmux::probe::EventReader {
    let r = sibling(url, c)
        .open_stream("GET", b"", &[("accept", "text/event-stream")])
        .unwrap();
    assert_eq!(r.status, 200);
    r
}

#[test]
fn backends_come_and_go_while_the_session_and_its_stream_stay() {
    let a = mock("a").tools(2).start();
    let b = mock("b").tools(3).start();
    let c = mock("c").tools(4).start();
    let sighup_only = "reload:\n  watch_interval_ms: 0\n";
    let first = gateway()
        .shards(2)
        .yaml(sighup_only)
        .backend("a", &a.url)
        .backend("b", &b.url);
    let gw = first.start();
    let mut cl = client(&gw.url);
    let before = names(&mut cl);
    assert!(before.iter().any(|n| n.starts_with("b__")), "{before:?}");
    let mut get = open_get(&gw.url, &cl);
    wait_metric(&gw.admin, "ringmux_backend_streams", 2);

    // b goes, c comes: the same session lists a and c, and calls c.
    let second = gateway()
        .shards(2)
        .yaml(sighup_only)
        .backend("c", &c.url)
        .backend("a", &a.url)
        .config_text();
    reload(&gw, &second, Some(1));
    assert!(
        told_list_changed(&mut get),
        "the client hears its lists changed"
    );
    // c joins the session in the background.
    let mut now = Vec::new();
    assert!(
        eventually(WAIT, || {
            now = names(&mut cl);
            now.iter().any(|n| n.starts_with("c__"))
        }),
        "{now:?}"
    );
    assert!(!now.iter().any(|n| n.starts_with("b__")), "{now:?}");
    assert!(now.iter().any(|n| n.starts_with("a__")), "{now:?}");
    assert_eq!(text_of(&echo(&mut cl, "c__echo", "new")), "new");
    let gone = echo(&mut cl, "b__echo", "x");
    assert!(refused(&gone), "{gone}");
    // The admin API shows the backends the config names, and no more.
    let mut api = Client::connect(&format!("{}/api/backends", gw.admin)).unwrap();
    let rows: Value = serde_json::from_slice(&api.send("GET", b"", &[]).unwrap().body).unwrap();
    let shown: Vec<&str> = rows["backends"]
        .as_array()
        .unwrap_or_else(|| rows.as_array().unwrap())
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(shown, ["a", "c"], "{rows}");

    // A bad file is refused with its key path and line; the running config stays.
    let bad = second.replacen(&c.url, "ftp://nowhere/", 1);
    reload(&gw, &bad, None);
    assert_eq!(gauge(&gw.admin, "ringmux_config_generation"), 1);
    assert_eq!(text_of(&echo(&mut cl, "c__echo", "kept")), "kept");
    // So is a change only a restart can make.
    let moved = second.replacen("listen: 127.0.0.1:0", "listen: 127.0.0.1:1", 1);
    reload(&gw, &moved, None);

    // b comes back: the session joins it again, and its client hears of it.
    let third = gateway()
        .shards(2)
        .yaml(sighup_only)
        .backend("a", &a.url)
        .backend("b", &b.url)
        .backend("c", &c.url)
        .config_text();
    reload(&gw, &third, Some(2));
    assert!(told_list_changed(&mut get));
    let want = before.len() + now.iter().filter(|n| n.starts_with("c__")).count();
    let mut all = Vec::new();
    assert!(
        eventually(WAIT, || {
            all = names(&mut cl);
            all.len() == want
        }),
        "{all:?}"
    );
    assert_eq!(text_of(&echo(&mut cl, "b__echo", "back")), "back");
    let logs = gw.logs();
    let bad_line = bad.lines().position(|l| l.contains("ftp://")).unwrap() + 1;
    assert!(
        logs.contains(&format!("line {bad_line}: backends[0].url:")),
        "the refusal names the key and its line: {logs}"
    );
    assert!(
        logs.contains("listen: a reload cannot change this"),
        "{logs}"
    );
}

#[test]
fn a_changed_file_is_reloaded_without_a_signal() {
    let a = mock("a").start();
    let b = mock("b").start();
    let watch = "reload:\n  watch_interval_ms: 100\n";
    let gw = gateway().yaml(watch).backend("a", &a.url).start();
    let mut cl = client(&gw.url);
    assert!(!names(&mut cl).iter().any(|n| n.starts_with("b__")));
    let next = gateway()
        .yaml(watch)
        .yaml("limits:\n  max_body_bytes: 2000\n")
        .backend("a", &a.url)
        .backend("b", &b.url)
        .config_text();
    std::fs::write(gw.config.as_ref().unwrap(), next).unwrap();
    assert!(eventually(WAIT, || gauge(
        &gw.admin,
        "ringmux_config_generation"
    ) == 1));
    assert!(eventually(WAIT, || names(&mut cl)
        .iter()
        .any(|n| n.starts_with("b__"))));
    // The new body limit holds for the next request.
    let big = "x".repeat(4000);
    let r = cl
        .post(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "a__echo", "arguments": {"message": big}}}))
        .unwrap();
    assert_eq!(r.status, 413);
}

/// Reloads during a load run: backends added, changed and removed, limits and names' other
/// settings changed, ten times over; ringmux-load (stateful, then 2026-07-28) sees no error.
#[test]
fn reloads_under_load_lose_no_request() {
    let a = mock("a").start();
    let b = mock("b").start();
    let c = mock("c").start();
    let sighup_only = "reload:\n  watch_interval_ms: 0\n";
    let configs = [
        gateway()
            .shards(2)
            .yaml(sighup_only)
            .backend("a", &a.url)
            .backend("b", &b.url)
            .config_text(),
        gateway()
            .shards(2)
            .yaml(sighup_only)
            .yaml("limits:\n  session_idle_timeout_ms: 600000\n")
            .backend("a", &a.url)
            .backend("c", &c.url)
            .config_text(),
        gateway()
            .shards(2)
            .yaml(sighup_only)
            .backend("c", &c.url)
            .backend_with("b", &b.url, "request_timeout_ms: 20000")
            .backend("a", &a.url)
            .config_text(),
    ];
    let gw = gateway()
        .shards(2)
        .yaml(sighup_only)
        .backend("a", &a.url)
        .backend("b", &b.url)
        .start();
    let url = gw.url.clone();
    let load = std::thread::spawn(move || {
        load_calls(
            &url,
            "a__echo",
            &[("2025-11-25", 4000), ("2026-07-28", 1500)],
        )
    });
    let mut generation = 0;
    while !load.is_finished() || generation < 10 {
        generation += 1;
        reload(
            &gw,
            &configs[generation as usize % configs.len()],
            Some(generation),
        );
    }
    assert_eq!(load.join().unwrap(), 5500);
    assert_eq!(reloads(&gw.admin, "refused"), 0);
    assert!(reloads(&gw.admin, "applied") >= 10);
}

/// A backend whose timeouts change is the same server: its backend sessions (and their GET
/// streams) stay. One whose address changes is another: its sessions are made again there,
/// and the client hears its lists may have changed.
#[test]
fn a_retuned_backend_keeps_its_sessions_and_a_moved_one_starts_again() {
    let a = mock("a").start();
    let b = mock("b").start();
    let sighup_only = "reload:\n  watch_interval_ms: 0\n";
    let gw = gateway()
        .yaml(sighup_only)
        .backend("a", &a.url)
        .backend("b", &b.url)
        .start();
    let mut cl = client(&gw.url);
    let mut get = open_get(&gw.url, &cl);
    wait_metric(&gw.admin, "ringmux_backend_streams", 2);
    assert_eq!(metric(&gw.admin, "ringmux_backend_streams_opened_total"), 2);
    let retuned = gateway()
        .yaml(sighup_only)
        .backend("a", &a.url)
        .backend_with("b", &b.url, "request_timeout_ms: 20000")
        .config_text();
    reload(&gw, &retuned, Some(1));
    assert_eq!(text_of(&echo(&mut cl, "b__echo", "same")), "same");
    assert_eq!(metric(&gw.admin, "ringmux_backend_streams_opened_total"), 2);
    assert_eq!(metric(&gw.admin, "ringmux_backend_streams"), 2);
    // The same server by another name is another endpoint.
    let moved_url = b.url.replacen("127.0.0.1", "localhost", 1);
    let moved = gateway()
        .yaml(sighup_only)
        .backend("a", &a.url)
        .backend_with("b", &moved_url, "request_timeout_ms: 20000")
        .config_text();
    reload(&gw, &moved, Some(2));
    assert!(told_list_changed(&mut get));
    wait_metric(&gw.admin, "ringmux_backend_streams_opened_total", 3);
    assert_eq!(text_of(&echo(&mut cl, "b__echo", "moved")), "moved");
    let logs = gw.logs();
    assert!(logs.contains("retuned [\"b\"]"), "{logs}");
    assert!(logs.contains("moved [\"b\"]"), "{logs}");
}

/// A shared stdio backend added by a reload starts its child and serves; removed, its child
/// is stopped once calls in progress had `limits.shutdown_grace_ms` to end.
#[test]
fn a_stdio_backend_added_then_removed_starts_and_stops_its_child() {
    let a = mock("a").start();
    let base = "reload:\n  watch_interval_ms: 0\nlimits:\n  shutdown_grace_ms: 300\n";
    let gw = gateway().shards(2).yaml(base).backend("a", &a.url).start();
    let pid = gw.pid();
    assert!(children_of(pid).is_empty());
    let with_child = gateway()
        .shards(2)
        .yaml(base)
        .backend("a", &a.url)
        .stdio_mock("s", "mode: shared")
        .config_text();
    reload(&gw, &with_child, Some(1));
    let mut cl = client(&gw.url);
    assert_eq!(text_of(&echo(&mut cl, "s__echo", "child")), "child");
    assert_eq!(children_of(pid).len(), 1, "one shared child");
    let without = gateway()
        .shards(2)
        .yaml(base)
        .backend("a", &a.url)
        .config_text();
    reload(&gw, &without, Some(2));
    assert!(
        eventually(WAIT, || children_of(pid).is_empty()),
        "the removed backend's child stops"
    );
    let gone = echo(&mut cl, "s__echo", "x");
    assert!(refused(&gone), "{gone}");
    // Back again: a new child.
    reload(&gw, &with_child, Some(3));
    let mut fresh = client(&gw.url);
    assert_eq!(text_of(&echo(&mut fresh, "s__echo", "again")), "again");
}

/// Routes are known by their path: a session on a route keeps working when a reload removes
/// the route before it (its index changes), and ends when its own route goes.
#[test]
fn a_sessions_route_is_kept_by_its_path() {
    let a = mock("a").start();
    let b = mock("b").start();
    let both = "reload:\n  watch_interval_ms: 0\nroutes:\n  - path: /first/mcp\n    backends: [a]\n  - path: /second/mcp\n    backends: [b]\n";
    let one =
        "reload:\n  watch_interval_ms: 0\nroutes:\n  - path: /second/mcp\n    backends: [b]\n";
    let none = "reload:\n  watch_interval_ms: 0\n";
    let config = |extra: &str| {
        gateway()
            .shards(2)
            .yaml(extra)
            .backend("a", &a.url)
            .backend("b", &b.url)
    };
    let gw = config(both).start();
    let second = gw.url.replacen("/mcp", "/second/mcp", 1);
    let mut cl = client(&second);
    // A 2026-07-28 client too (its principal session is keyed by the route).
    let modern = |id: u64, msg: &str| {
        modern_request(
            &second,
            id,
            "tools/call",
            json!({"name": "b__echo", "arguments": {"message": msg}}),
            json!({}),
            &[],
        )
    };
    assert_eq!(text_of(&echo(&mut cl, "b__echo", "before")), "before");
    assert_eq!(text_of(&modern(1, "modern before")), "modern before");
    let sessions = metric(&gw.admin, "ringmux_sessions");
    reload(&gw, &config(one).config_text(), Some(1));
    assert_eq!(text_of(&echo(&mut cl, "b__echo", "moved")), "moved");
    assert_eq!(text_of(&modern(2, "modern moved")), "modern moved");
    assert_eq!(
        metric(&gw.admin, "ringmux_sessions"),
        sessions,
        "both clients are on the sessions they had"
    );
    let tools = names(&mut cl);
    assert!(tools.iter().all(|t| t.starts_with("b__")), "{tools:?}");
    reload(&gw, &config(none).config_text(), Some(2));
    let r = cl
        .post(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": {}}))
        .unwrap();
    assert_eq!(r.status, 404, "the route and its sessions are gone");
}

/// A call in progress on a backend a reload changes finishes: the old backend session (here
/// a stdio child of the session's own) is ended only once its calls have.
#[test]
fn a_call_in_progress_survives_its_backend_changing() {
    let a = mock("a").start();
    let sighup_only = "reload:\n  watch_interval_ms: 0\n";
    let gw = gateway()
        .yaml(sighup_only)
        .backend("a", &a.url)
        .stdio_mock("s", "")
        .start();
    let mut cl = client(&gw.url);
    cl.list_all("tools/list", "tools").unwrap();
    let mut slow = sibling(&gw.url, &cl);
    let sent = metric(&gw.admin, "ringmux_backend_requests_total");
    let call = std::thread::spawn(move || {
        slow.request(
            "tools/call",
            json!({"name": "s__slow", "arguments": {"ms": 1500}}),
        )
        .unwrap()
    });
    wait_metric(&gw.admin, "ringmux_backend_requests_total", sent + 1);
    let changed = gateway()
        .yaml(sighup_only)
        .backend("a", &a.url)
        .stdio_mock_with("s", &["--tools", "3"], "")
        .config_text();
    reload(&gw, &changed, Some(1));
    let answer = call.join().unwrap();
    assert!(answer.get("error").is_none(), "{answer}");
    assert_ne!(answer["result"]["isError"], true, "{answer}");
    // The session goes on with the backend as it is now (a new child).
    assert_eq!(text_of(&echo(&mut cl, "s__echo", "after")), "after");
}

fn sha256_hex(s: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// An API key rotated by a reload: the old key is refused and the new one accepted at once,
/// and a session made with the old one goes on with the new (the key's name is the
/// principal). A `jwt:` that would need a key fetcher the process did not start is refused.
#[test]
fn api_keys_rotate_without_a_restart() {
    let a = mock("a").start();
    let auth = |key: &str, extra: &str| {
        format!(
            "reload:\n  watch_interval_ms: 0\nauth:\n  mode: strict\n  resource: http://127.0.0.1/mcp\n  api_keys:\n    - name: bot\n      sha256: {}\n{extra}",
            sha256_hex(key)
        )
    };
    let config = |key: &str, extra: &str| gateway().yaml(&auth(key, extra)).backend("a", &a.url);
    let gw = config("key-one", "").start();
    let bearer = |key: &str| Some(format!("Bearer {key}"));
    let mut old = Client::connect(&gw.url).unwrap();
    old.authorization = bearer("key-one");
    old.initialize().unwrap();
    assert_eq!(text_of(&echo(&mut old, "a__echo", "one")), "one");
    reload(&gw, &config("key-two", "").config_text(), Some(1));
    let rotated_out = old
        .post(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}}))
        .unwrap();
    assert_eq!(rotated_out.status, 401, "the rotated-out key");
    old.authorization = bearer("key-two");
    assert_eq!(
        text_of(&echo(&mut old, "a__echo", "two")),
        "two",
        "same session, new key"
    );
    let mut fresh = Client::connect(&gw.url).unwrap();
    fresh.authorization = bearer("key-two");
    fresh.initialize().unwrap();
    // A JWT issuer added by a reload needs a restart (its keys' fetcher starts with the
    // process).
    let jwt = "  jwt:\n    issuer: https://issuer.example\n    jwks: '{\"keys\": []}'\n";
    reload(&gw, &config("key-two", jwt).config_text(), None);
    let logs = gw.logs();
    assert!(
        logs.contains("auth.jwt: a reload cannot change this"),
        "{logs}"
    );
}
