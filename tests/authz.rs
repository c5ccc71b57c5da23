//! Authorization against the real binary: CEL rules over the principal (API keys with
//! attributes), the item and the call's arguments. Two principals see different tools,
//! prompts, resources and templates, each list walked page by page exactly; what a principal
//! may not use is answered as an unknown name (tools, prompts) or an unknown resource, on the
//! stateful and the 2026-07-28 fronts; argument rules decide at call time; deny wins.

#[path = "support/harness.rs"]
mod harness;

use harness::*;

const RED: &str = "rmx-red-key-0123456789";
const BLUE: &str = "rmx-blue-key-0123456789";

fn sha256_hex(s: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Red (team red) may use everything; blue (team blue) backend b's items, and a's `echo` on
/// /public/ paths. Nobody may use a `tool_0003`, or `echo` something under /etc/.
fn policy(audit: &std::path::Path) -> String {
    format!(
        r#"audit:
  path: {}
limits:
  page_size: 7
auth:
  resource: http://gw.test/mcp
  api_keys:
    - name: red
      sha256: {}
      attributes: {{team: red}}
    - name: blue
      sha256: {}
      attributes: {{team: blue}}
authz:
  rules:
    - name: red-team
      allow: 'principal.attributes.team == "red"'
    - name: blue-on-b
      allow: 'principal.attributes.team == "blue" && mcp.backend == "b"'
    - name: no-0003
      deny: 'mcp.kind == "tool" && mcp.tool.endsWith("tool_0003")'
    - name: public-echo
      allow: 'mcp.tool == "a__echo" && args.message.startsWith("/public/")'
    - name: no-etc
      deny: 'mcp.tool == "a__echo" && args.message.startsWith("/etc/")'
      backends: [a]
"#,
        audit.display(),
        sha256_hex(RED),
        sha256_hex(BLUE)
    )
}

fn as_key(url: &str, key: &str) -> Client {
    let mut c = Client::connect(url).unwrap();
    c.authorization = Some(format!("Bearer {key}"));
    c.initialize().unwrap();
    c
}

fn names(items: &[Value], key: &str) -> Vec<String> {
    items
        .iter()
        .map(|t| t[key].as_str().unwrap().to_owned())
        .collect()
}

fn echo(c: &mut Client, message: Value) -> Value {
    c.request(
        "tools/call",
        json!({"name": "a__echo", "arguments": {"message": message}}),
    )
    .unwrap()
}

#[test]
fn two_principals_see_and_call_what_the_rules_allow() {
    let a = mock("a").tools(30).page_size(4).start();
    let b = mock("b").tools(30).page_size(4).start();
    let audit = temp_path("audit-1.jsonl");
    let gw = gateway()
        .shards(2)
        .backend("a", &a.url)
        .backend("b", &b.url)
        .yaml(&policy(&audit))
        .start();
    let mut red = as_key(&gw.url, RED);
    let mut blue = as_key(&gw.url, BLUE);

    // Ground truth: each backend's own list.
    let mut direct = Client::connect(&a.url).unwrap();
    direct.initialize().unwrap();
    let a_tools = names(&direct.list_all("tools/list", "tools").unwrap(), "name");
    assert_eq!(a_tools.len(), 30);
    let all: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|p| a_tools.iter().map(move |t| format!("{p}__{t}")))
        .collect();

    // Pages of 7 over a filtered merge: every visible item once, in order, nothing else.
    let red_tools = names(&red.list_all("tools/list", "tools").unwrap(), "name");
    let want: Vec<String> = all
        .iter()
        .filter(|t| !t.ends_with("tool_0003"))
        .cloned()
        .collect();
    assert_eq!(red_tools, want);
    let blue_tools = names(&blue.list_all("tools/list", "tools").unwrap(), "name");
    let want: Vec<String> = all
        .iter()
        .filter(|t| (t.starts_with("b__") || *t == "a__echo") && !t.ends_with("tool_0003"))
        .cloned()
        .collect();
    assert_eq!(blue_tools, want, "blue: b's tools and a's echo");

    // Prompts, resources and templates follow the same rules.
    let blue_prompts = names(&blue.list_all("prompts/list", "prompts").unwrap(), "name");
    assert!(!blue_prompts.is_empty());
    assert!(
        blue_prompts.iter().all(|p| p.starts_with("b__")),
        "{blue_prompts:?}"
    );
    let red_prompts = names(&red.list_all("prompts/list", "prompts").unwrap(), "name");
    assert_eq!(red_prompts.len(), 2 * blue_prompts.len());
    let blue_resources = names(
        &blue.list_all("resources/list", "resources").unwrap(),
        "uri",
    );
    assert!(!blue_resources.is_empty());
    assert!(
        blue_resources.iter().all(|u| u.starts_with("ringmux://b/")),
        "{blue_resources:?}"
    );
    let red_resources = names(&red.list_all("resources/list", "resources").unwrap(), "uri");
    assert_eq!(red_resources.len(), 2 * blue_resources.len());
    let blue_templates = names(
        &blue
            .list_all("resources/templates/list", "resourceTemplates")
            .unwrap(),
        "uriTemplate",
    );
    assert!(
        blue_templates.iter().all(|u| u.starts_with("ringmux://b/")),
        "{blue_templates:?}"
    );

    // A hidden tool is answered exactly as one that does not exist.
    let unknown = blue
        .request("tools/call", json!({"name": "a__nope", "arguments": {}}))
        .unwrap();
    let hidden = blue
        .request(
            "tools/call",
            json!({"name": "a__add", "arguments": {"a": 1, "b": 2}}),
        )
        .unwrap();
    assert_eq!(error_code(&unknown), -32602, "{unknown}");
    assert_eq!(error_code(&hidden), -32602, "{hidden}");
    assert_eq!(
        hidden["error"]["message"]
            .as_str()
            .unwrap()
            .replace("a__add", "X"),
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .replace("a__nope", "X"),
    );
    let ok = red
        .request(
            "tools/call",
            json!({"name": "a__add", "arguments": {"a": 1, "b": 2}}),
        )
        .unwrap();
    assert!(ok.get("result").is_some(), "red may add: {ok}");

    // Argument rules, at call time.
    let public = echo(&mut blue, json!("/public/readme"));
    assert_eq!(text_of(&public), "/public/readme");
    for bad in [json!("/etc/passwd"), json!("/home/x"), json!(7)] {
        let r = echo(&mut blue, bad.clone());
        assert_eq!(error_code(&r), -32602, "blue echo {bad}: {r}");
    }
    let r = blue
        .request("tools/call", json!({"name": "a__echo"}))
        .unwrap();
    assert_eq!(error_code(&r), -32602, "no arguments: {r}");
    // Deny wins over red's allow.
    assert_eq!(error_code(&echo(&mut red, json!("/etc/shadow"))), -32602);
    assert_eq!(text_of(&echo(&mut red, json!("/home/x"))), "/home/x");
    // Nobody calls tool_0003.
    let r = red
        .request(
            "tools/call",
            json!({"name": "b__tool_0003", "arguments": {}}),
        )
        .unwrap();
    assert_eq!(error_code(&r), -32602, "{r}");

    // Prompts and resources: unknown for blue, there for red.
    let r = blue
        .request("prompts/get", json!({"name": "a__prompt_1"}))
        .unwrap();
    assert_eq!(error_code(&r), -32602, "{r}");
    let r = red
        .request("prompts/get", json!({"name": "a__prompt_1"}))
        .unwrap();
    assert!(r.get("result").is_some(), "{r}");
    let a_uri = red_resources
        .iter()
        .find(|u| u.starts_with("ringmux://a/"))
        .unwrap();
    let r = blue
        .request("resources/read", json!({"uri": a_uri}))
        .unwrap();
    assert_eq!(error_code(&r), -32002, "{r}");
    let r = red
        .request("resources/read", json!({"uri": a_uri}))
        .unwrap();
    assert!(r.get("result").is_some(), "{r}");
    // A URI made from a's template, outside the list: decided on the spot.
    let made = "ringmux://a/mock://a/item/7";
    let r = blue
        .request("resources/read", json!({"uri": made}))
        .unwrap();
    assert_eq!(error_code(&r), -32002, "{r}");
    let r = red.request("resources/read", json!({"uri": made})).unwrap();
    assert!(r.get("result").is_some(), "{r}");
    // Completion on a hidden prompt's argument: as unknown.
    let r = blue
        .request(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "a__greet"},
                   "argument": {"name": "name", "value": "x"}}),
        )
        .unwrap();
    assert_eq!(error_code(&r), -32602, "{r}");
    let r = red
        .request(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "a__greet"},
                   "argument": {"name": "name", "value": "x"}}),
        )
        .unwrap();
    assert!(r.get("result").is_some(), "{r}");

    let denied = metric(&gw.admin, "ringmux_authz_denied_total");
    assert!(denied >= 10);
    assert!(metric(&gw.admin, "ringmux_authz_views_computed_total") >= 2);

    // One audit line per refusal (allowed calls are not recorded unless asked), naming the
    // rule that decided, and never the arguments.
    let records: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len() as u64, denied, "{records:?}");
    assert!(records
        .iter()
        .all(|r| r["decision"] == "deny" && r["event"] == "authz"));
    assert!(records.iter().all(|r| r.get("arguments").is_none()));
    assert!(records
        .iter()
        .all(|r| r["time"].as_str().unwrap().ends_with('Z')));
    let add = records
        .iter()
        .find(|r| r["name"] == "a__add")
        .expect("blue's a__add refused");
    assert_eq!(add["principal"], "key:blue");
    assert_eq!(add["method"], "tools/call");
    assert_eq!(add["backend"], "a");
    assert_eq!(
        add["rule"],
        Value::Null,
        "no rule allowed it: the default denied"
    );
    assert!(add["session"].is_string());
    let etc = records
        .iter()
        .find(|r| r["principal"] == "key:red" && r["name"] == "a__echo")
        .expect("red's /etc/ echo refused");
    assert_eq!(etc["rule"], "no-etc");
    let _ = std::fs::remove_file(audit);
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ringmux-authz-{}-{name}", std::process::id()))
}

#[test]
fn the_modern_front_sees_the_same_view() {
    let a = mock("a").start();
    let b = mock("b").start();
    let audit = temp_path("audit-2.jsonl");
    let gw = gateway()
        .backend("a", &a.url)
        .backend("b", &b.url)
        .yaml(&policy(&audit))
        .start();
    let modern = |key: &str, id: u64, method: &str, params: Value| -> Value {
        let auth = format!("Bearer {key}");
        modern_request(
            &gw.url,
            id,
            method,
            params,
            json!({}),
            &[("authorization", &auth)],
        )
    };
    let listed = modern(BLUE, 1, "tools/list", json!({}));
    let tools = names(listed["result"]["tools"].as_array().unwrap(), "name");
    assert!(tools.contains(&"a__echo".to_string()));
    assert!(
        !tools.iter().any(|t| t.starts_with("a__") && t != "a__echo"),
        "{tools:?}"
    );
    let r = modern(
        BLUE,
        2,
        "tools/call",
        json!({"name": "a__add", "arguments": {"a": 1, "b": 2}}),
    );
    assert_eq!(error_code(&r), -32602, "{r}");
    let r = modern(
        BLUE,
        3,
        "tools/call",
        json!({"name": "a__echo", "arguments": {"message": "/etc/x"}}),
    );
    assert_eq!(error_code(&r), -32602, "{r}");
    let r = modern(
        BLUE,
        4,
        "tools/call",
        json!({"name": "a__echo", "arguments": {"message": "/public/x"}}),
    );
    assert_eq!(text_of(&r), "/public/x", "{r}");
    let r = modern(
        RED,
        5,
        "tools/call",
        json!({"name": "a__add", "arguments": {"a": 1, "b": 2}}),
    );
    assert!(r.get("result").is_some(), "{r}");
}

#[test]
fn a_policy_that_does_not_compile_is_refused_with_its_key() {
    let a = mock("a").start();
    let bad = gateway()
        .backend("a", &a.url)
        .yaml("authz:\n  rules:\n    - allow: 'mcp.tool == '\n")
        .config_text();
    let path = std::env::temp_dir().join(format!("ringmux-authz-bad-{}.yaml", std::process::id()));
    std::fs::write(&path, bad).unwrap();
    let (ok, _, err) = run_cli(&["check", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("authz.rules[0].allow"), "{err}");
    let _ = std::fs::remove_file(path);
}

/// A 2026-07-28 request for `principal` (the trusted principal header) declaring `caps`.
fn modern_call(
    url: &str,
    principal: &str,
    id: u64,
    method: &str,
    params: Value,
    caps: Value,
) -> Value {
    modern_request(url, id, method, params, caps, &[("x-principal", principal)])
}

/// `client_requests` limits what a backend may ask clients: a refused sampling request is
/// answered to the backend (-32601) and never reaches the client, on either era; another
/// backend's reaches it; the refusal is counted and audited.
#[test]
fn a_backend_may_ask_clients_only_what_its_policy_allows() {
    let c = mock("c").flag("--conformance").start();
    let d = mock("d").flag("--conformance").start();
    let audit = temp_path("audit-3.jsonl");
    let gw = gateway()
        .backend_with("c", &c.url, "client_requests: [roots]")
        .backend("d", &d.url)
        .yaml(&format!(
            "modern:\n  principal_header: x-principal\naudit:\n  path: {}",
            audit.display()
        ))
        .start();
    let caps = json!({"sampling": {}, "elicitation": {}});
    let sample = |tool: &str| json!({"name": tool, "arguments": {"prompt": "weather?"}});

    // The control: d may sample, so its request becomes the client's input_required.
    let r = modern_call(
        &gw.url,
        "alice",
        1,
        "tools/call",
        sample("d__test_sampling"),
        caps.clone(),
    );
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    // c may not: its request is refused to it, and its call fails on its own terms.
    let r = modern_call(
        &gw.url,
        "alice",
        2,
        "tools/call",
        sample("c__test_sampling"),
        caps.clone(),
    );
    assert_ne!(r["result"]["resultType"], "input_required", "{r}");
    let text = r.to_string();
    assert!(
        text.contains("-32601") && text.contains("client_requests"),
        "{r}"
    );

    // A stateful client: nothing but the answer on the call's stream.
    let mut s = Client::connect(&gw.url).unwrap();
    let init = s
        .post(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": caps,
        "clientInfo": {"name": "authz-test", "version": "1"}}}),
        )
        .unwrap();
    s.session = init.header("mcp-session-id").map(str::to_owned);
    s.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .unwrap();
    let resp = s
        .send(
            "POST",
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": sample("c__test_sampling")})
                .to_string()
                .as_bytes(),
            &[("accept", "application/json, text/event-stream")],
        )
        .unwrap();
    let msgs = resp.messages();
    assert!(
        msgs.iter().all(|m| m.get("method").is_none()),
        "the client saw a request: {msgs:?}"
    );
    let last = msgs.last().unwrap();
    assert_eq!(last["id"], 7);
    assert!(last.to_string().contains("client_requests"), "{last}");

    assert_eq!(
        metric(&gw.admin, "ringmux_client_requests_refused_total"),
        2
    );
    let records: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    for r in &records {
        assert_eq!(r["event"], "client_request");
        assert_eq!(r["method"], "sampling/createMessage");
        assert_eq!(r["backend"], "c");
        assert_eq!(r["decision"], "deny");
    }
    let _ = std::fs::remove_file(audit);
}

/// Rules over the request (`request`): a selected header, the client's address and the
/// endpoint's path. A session's view follows its requests: the same session with another
/// header value sees another list, and the 2026-07-28 front decides the same way.
#[test]
fn rules_read_the_requests_headers_address_and_path() {
    let a = mock("a").start();
    let b = mock("b").start();
    let gw = gateway()
        .backend("a", &a.url)
        .backend("b", &b.url)
        .yaml(
            r#"authz:
  request_headers: [X-Tenant]
  rules:
    - name: tenant-a
      allow: 'mcp.backend == "a" && request.headers["x-tenant"] == "red"'
    - name: local-echo
      allow: 'mcp.tool == "b__echo" && request.address == "127.0.0.1" && request.path == "/mcp"'
    - name: no-blue
      deny: '"x-tenant" in request.headers && request.headers["x-tenant"].startsWith("blue")'
"#,
        )
        .start();
    let listed = |c: &mut Client| names(&c.list_all("tools/list", "tools").unwrap(), "name");
    let mut c = client(&gw.url);
    // No header: b's echo only (the local address and the path allow it).
    assert_eq!(listed(&mut c), vec!["b__echo".to_string()]);
    // The same session, now red: a's tools too.
    c.headers = vec![("X-Tenant".into(), "red".into())];
    let red = listed(&mut c);
    assert!(red.contains(&"a__add".to_string()) && red.contains(&"b__echo".to_string()));
    assert!(!red.contains(&"b__add".to_string()), "{red:?}");
    let r = c
        .request(
            "tools/call",
            json!({"name": "a__add", "arguments": {"a": 1, "b": 2}}),
        )
        .unwrap();
    assert_eq!(text_of(&r), "3");
    // Blue: denied everything, whatever else holds; sent twice, the values are joined and
    // the deny still sees "blue, red".
    c.headers = vec![
        ("X-Tenant".into(), "blue".into()),
        ("x-tenant".into(), "red".into()),
    ];
    assert!(listed(&mut c).is_empty());
    let r = c
        .request(
            "tools/call",
            json!({"name": "b__echo", "arguments": {"message": "x"}}),
        )
        .unwrap();
    assert_eq!(error_code(&r), -32602, "{r}");
    // The 2026-07-28 front gathers the same facts.
    let modern = |tenant: &str| -> Vec<String> {
        let extra = [("x-tenant", tenant)];
        let msg = modern_request(&gw.url, 1, "tools/list", json!({}), json!({}), &extra);
        names(msg["result"]["tools"].as_array().unwrap(), "name")
    };
    assert!(modern("red").contains(&"a__add".to_string()));
    assert_eq!(modern("green"), vec!["b__echo".to_string()]);
    // A credential is no rule input.
    let cfg = temp_path("request-headers.yaml");
    std::fs::write(
        &cfg,
        "listen: 127.0.0.1:0\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\nauthz:\n  request_headers: [Authorization]\n",
    )
    .unwrap();
    let (ok, _, err) = run_cli(&["check", cfg.to_str().unwrap()]);
    assert!(!ok && err.contains("authz.request_headers[0]"), "{err}");
}
