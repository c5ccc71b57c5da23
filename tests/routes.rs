//! Virtual servers (`routes:`) against the real binary: a route at its own path exposes its
//! backends and tools only, renamed, described anew and with arguments fixed (gone from the
//! schema, set on every call whatever the client sends), on the stateful and the 2026-07-28
//! fronts; its sessions are its own; a route has its own API keys, protected-resource metadata
//! and rules while the main endpoint keeps its own.

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;

const BETA: &str = "rmx-beta-key-0123456789";

fn sha256_hex(s: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `gw.url` with another path.
fn at(url: &str, path: &str) -> String {
    format!("{}{path}", url.strip_suffix("/mcp").unwrap())
}

/// Mocks `a` and `b` behind a gateway serving [`routes`] (the mocks live as long as the
/// returned handles).
fn with_routes() -> (Proc, Proc, Proc) {
    let a = mock("a").start();
    let b = mock("b").start();
    let gw = gateway()
        .backend("a", &a.url)
        .backend("b", &b.url)
        .yaml(&routes())
        .start();
    (a, b, gw)
}

fn routes() -> String {
    format!(
        r#"limits:
  page_size: 3
routes:
  - path: /teams/alpha/mcp
    backends: [a]
    tools:
      include: ['a__*']
      exclude: ['a__tool_*', 'a__slow*']
      overrides:
        a__add:
          name: sum
          description: Adds 2 to a
          arguments: {{b: 2}}
        a__echo:
          description: Says it back
  - path: /teams/beta/mcp
    auth:
      resource: http://gw.test/teams/beta/mcp
      api_keys:
        - name: beta
          sha256: {}
    authz:
      rules:
        - allow: 'principal.name == "beta" && mcp.backend == "b"'
  - path: /teams/gamma/mcp
    backends: [a]
    tools:
      overrides:
        a__echo: {{arguments: {{message: /public/fixed}}}}
    authz:
      default: allow
      rules:
        - deny: 'mcp.tool == "a__echo" && !args.message.startsWith("/public/")'
"#,
        sha256_hex(BETA)
    )
}

#[test]
fn a_virtual_server_at_its_own_path_exposes_its_subset_with_renamed_and_fixed_argument_tools() {
    let a = mock("a").tools(14).page_size(4).start();
    let b = mock("b").start();
    let gw = gateway()
        .shards(2)
        .backend("a", &a.url)
        .backend("b", &b.url)
        .yaml(&routes())
        .start();
    let alpha_url = at(&gw.url, "/teams/alpha/mcp");

    // The main endpoint is unchanged: both backends, a's add with its two arguments.
    let mut main = client(&gw.url);
    let main_tools = main.list_all("tools/list", "tools").unwrap();
    let main_names = names(&main_tools);
    assert!(main_names.contains(&"b__echo".to_string()));
    assert!(main_names.contains(&"a__tool_0001".to_string()));
    let add = main_tools.iter().find(|t| t["name"] == "a__add").unwrap();
    assert_eq!(add["inputSchema"]["required"], json!(["a", "b"]));

    // The route: a's tools that its patterns name, in a's order, pages of 3 walked exactly.
    let mut alpha = client(&alpha_url);
    let tools = alpha.list_all("tools/list", "tools").unwrap();
    let want: Vec<String> = main_names
        .iter()
        .filter(|n| n.starts_with("a__") && !n.starts_with("a__tool_") && !n.starts_with("a__slow"))
        .map(|n| {
            if n == "a__add" {
                "sum".into()
            } else {
                n.clone()
            }
        })
        .collect();
    assert_eq!(names(&tools), want);
    assert!(want.len() > 3, "more than one page: {want:?}");
    let sum = tools.iter().find(|t| t["name"] == "sum").unwrap();
    assert_eq!(sum["description"], "Adds 2 to a");
    assert!(sum["inputSchema"]["properties"].get("b").is_none(), "{sum}");
    assert_eq!(sum["inputSchema"]["required"], json!(["a"]));
    let echo = tools.iter().find(|t| t["name"] == "a__echo").unwrap();
    assert_eq!(echo["description"], "Says it back");

    // Calls: the fixed argument is set whatever the client sends.
    let r = alpha
        .request("tools/call", json!({"name": "sum", "arguments": {"a": 40}}))
        .unwrap();
    assert_eq!(text_of(&r), "42", "{r}");
    let r = alpha
        .request(
            "tools/call",
            json!({"name": "sum", "arguments": {"a": 40, "b": 1000}}),
        )
        .unwrap();
    assert_eq!(text_of(&r), "42", "the operator's value wins: {r}");
    let r = alpha.request("tools/call", json!({"name": "sum"})).unwrap();
    assert_eq!(error_code(&r), -32602, "a still required: {r}");
    let r = alpha
        .request(
            "tools/call",
            json!({"name": "a__echo", "arguments": {"message": "hi"}}),
        )
        .unwrap();
    assert_eq!(text_of(&r), "hi");
    // What the route does not show does not exist there: the old name, excluded tools, the
    // other backend (which gets no backend session for this client either).
    for name in ["a__add", "a__tool_0001", "b__echo", "b__add"] {
        let r = alpha
            .request("tools/call", json!({"name": name, "arguments": {}}))
            .unwrap();
        assert_eq!(error_code(&r), -32602, "{name}: {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Unknown tool"),
            "{r}"
        );
    }
    let prompts = alpha.list_all("prompts/list", "prompts").unwrap();
    assert!(!prompts.is_empty());
    assert!(
        names(&prompts).iter().all(|n| n.starts_with("a__")),
        "{prompts:?}"
    );
    let resources = alpha.list_all("resources/list", "resources").unwrap();
    assert!(
        resources
            .iter()
            .all(|r| !r["uri"].as_str().unwrap().contains("ringmux://b/")),
        "{resources:?}"
    );
    let r = alpha
        .request("resources/read", json!({"uri": "ringmux://b/mock/readme"}))
        .unwrap();
    assert_eq!(
        error_code(&r),
        -32002,
        "b's resources are unknown here: {r}"
    );

    // A session belongs to its endpoint: the route's id is unknown on the main path and back.
    let mut crossed = sibling(&gw.url, &alpha);
    let resp = crossed
        .post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
        .unwrap();
    assert_eq!(resp.status, 404, "{resp:?}");
    let mut crossed = sibling(&alpha_url, &main);
    let resp = crossed
        .post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
        .unwrap();
    assert_eq!(resp.status, 404, "{resp:?}");

    // A 2026-07-28 client of the route sees and calls the same.
    let modern = |id: u64, method: &str, params: Value| -> Value {
        modern_request(&alpha_url, id, method, params, json!({}), &[])
    };
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    for id in 1..20 {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let page = modern(id, "tools/list", params);
        listed.extend(names(page["result"]["tools"].as_array().unwrap()));
        cursor = page["result"]["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(listed, want);
    let r = modern(
        30,
        "tools/call",
        json!({"name": "sum", "arguments": {"a": 1, "b": 5}}),
    );
    assert_eq!(text_of(&r), "3", "{r}");
    let r = modern(
        31,
        "tools/call",
        json!({"name": "b__echo", "arguments": {"message": "x"}}),
    );
    assert_eq!(error_code(&r), -32602, "{r}");
}

#[test]
fn a_route_has_its_own_credentials_metadata_and_rules() {
    let (_a, _b, gw) = with_routes();
    let beta_url = at(&gw.url, "/teams/beta/mcp");

    // The main endpoint has no auth:, the route has: no key, no entry, and a challenge that
    // names the route's metadata.
    client(&gw.url);
    let mut c = Client::connect(&beta_url).unwrap();
    let resp = c
        .post(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}),
        )
        .unwrap();
    assert_eq!(resp.status, 401, "{resp:?}");
    let challenge = resp.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("http://gw.test/.well-known/oauth-protected-resource/teams/beta/mcp"),
        "{challenge}"
    );
    let mut m = Client::connect(&gw.url).unwrap();
    m.path = "/.well-known/oauth-protected-resource/teams/beta/mcp".into();
    let resp = m.send("GET", b"", &[]).unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    let doc: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(doc["resource"], "http://gw.test/teams/beta/mcp");
    // The main endpoint has none to serve.
    m.path = "/.well-known/oauth-protected-resource".into();
    assert_eq!(m.send("GET", b"", &[]).unwrap().status, 404);

    // With the key: the route's rules, b's tools only.
    let mut beta = Client::connect(&beta_url).unwrap();
    beta.authorization = Some(format!("Bearer {BETA}"));
    beta.initialize().unwrap();
    let tools = names(&beta.list_all("tools/list", "tools").unwrap());
    assert!(!tools.is_empty());
    assert!(tools.iter().all(|t| t.starts_with("b__")), "{tools:?}");
    let r = beta
        .request(
            "tools/call",
            json!({"name": "a__echo", "arguments": {"message": "x"}}),
        )
        .unwrap();
    assert_eq!(error_code(&r), -32602, "{r}");
    let r = beta
        .request(
            "tools/call",
            json!({"name": "b__echo", "arguments": {"message": "x"}}),
        )
        .unwrap();
    assert_eq!(text_of(&r), "x");
    // The key means nothing on the main endpoint (no auth: there), and the main endpoint's
    // rules (none) are not the route's: everything is listed there.
    let all = names(&main_list(&gw.url));
    assert!(all.iter().any(|t| t.starts_with("a__")) && all.iter().any(|t| t.starts_with("b__")));
}

/// A route's rules read the arguments the backend gets: its fixed ones included.
#[test]
fn a_routes_rules_see_its_fixed_arguments() {
    let (_a, _b, gw) = with_routes();
    let mut gamma = client(&at(&gw.url, "/teams/gamma/mcp"));
    for args in [json!({}), json!({"message": "/etc/passwd"})] {
        let r = gamma
            .request("tools/call", json!({"name": "a__echo", "arguments": args}))
            .unwrap();
        assert_eq!(text_of(&r), "/public/fixed", "{r}");
    }
    let echo = gamma
        .list_all("tools/list", "tools")
        .unwrap()
        .into_iter()
        .find(|t| t["name"] == "a__echo")
        .unwrap();
    assert_eq!(echo["inputSchema"]["required"], json!([]), "{echo}");
    // The same rules on the main endpoint's own arguments would refuse (its rules are none,
    // so it answers): the route's policy is the route's alone.
    let mut main = client(&gw.url);
    let r = main
        .request(
            "tools/call",
            json!({"name": "a__echo", "arguments": {"message": "/etc/passwd"}}),
        )
        .unwrap();
    assert_eq!(text_of(&r), "/etc/passwd");
}

fn main_list(url: &str) -> Vec<Value> {
    client(url).list_all("tools/list", "tools").unwrap()
}

#[test]
fn bad_routes_are_refused_with_their_key_paths() {
    for (yaml, key) in [
        ("routes:\n  - path: /mcp\n", "routes[0].path"),
        (
            "routes:\n  - path: /x\n    backends: [nope]\n",
            "routes[0].backends[0]",
        ),
        (
            "routes:\n  - path: /x\n    authz: {rules: [{allow: 'oops.x'}]}\n",
            "routes[0].authz.rules[0].allow",
        ),
    ] {
        let cfg = temp_path("route-check.yaml");
        std::fs::write(
            &cfg,
            format!("listen: 127.0.0.1:0\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\n{yaml}"),
        )
        .unwrap();
        let (ok, _out, err) = run_cli(&["check", cfg.to_str().unwrap()]);
        assert!(!ok, "{yaml}");
        assert!(err.contains(key), "{yaml}: {err}");
    }
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ringmux-routes-{}-{name}", std::process::id()))
}

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/auth");

/// A token for `issuer` and `audience`, signed by `key_file` with `kid` (RS256).
fn token(key_file: &str, kid: &str, issuer: &str, audience: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims =
        json!({"iss": issuer, "aud": audience, "sub": "someone", "iat": now, "exp": now + 600});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    let pem = std::fs::read(format!("{FIX}/{key_file}")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// Two routes trusting two issuers, and no auth: on the main endpoint: each route verifies
/// with its own keys, issuer and audience; one tenant's token is refused on the other's path.
#[test]
fn each_routes_tokens_are_its_own() {
    let a = mock("a").start();
    let gw = gateway()
        .backend("a", &a.url)
        .yaml(&format!(
            r#"routes:
  - path: /red/mcp
    auth:
      resource: https://gw.test/red/mcp
      jwt: {{issuer: https://idp-red.test, jwks_file: {FIX}/jwks.json}}
  - path: /blue/mcp
    auth:
      resource: https://gw.test/blue/mcp
      jwt: {{issuer: https://idp-blue.test, jwks_file: {FIX}/jwks-rotated.json}}
"#
        ))
        .start();
    let red = token(
        "rsa1.pem",
        "k1",
        "https://idp-red.test",
        "https://gw.test/red/mcp",
    );
    let blue = token(
        "rsa2.pem",
        "k2",
        "https://idp-blue.test",
        "https://gw.test/blue/mcp",
    );
    let status = |path: &str, tok: &str| -> u16 {
        let mut c = Client::connect(&at(&gw.url, path)).unwrap();
        c.authorization = Some(format!("Bearer {tok}"));
        let resp = c
            .post(
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}}),
            )
            .unwrap();
        resp.status
    };
    assert_eq!(status("/red/mcp", &red), 200);
    assert_eq!(status("/blue/mcp", &blue), 200);
    assert_eq!(status("/blue/mcp", &red), 401, "red's token on blue's path");
    assert_eq!(status("/red/mcp", &blue), 401, "blue's token on red's path");
    // The main endpoint has no auth: and takes no token as a principal's.
    client(&gw.url);
}

/// A key name is its principal on every endpoint: one name cannot stand for two keys.
#[test]
fn one_api_key_name_is_one_key() {
    let cfg = temp_path("key-names.yaml");
    std::fs::write(
        &cfg,
        "listen: 127.0.0.1:0\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\n\
         auth:\n  resource: http://gw.test/mcp\n  api_keys:\n    - {name: admin, sha256: 1111111111111111111111111111111111111111111111111111111111111111}\n\
         routes:\n  - path: /t/mcp\n    auth:\n      resource: http://gw.test/t/mcp\n      api_keys:\n        - {name: admin, sha256: 2222222222222222222222222222222222222222222222222222222222222222}\n",
    )
    .unwrap();
    let (ok, _, err) = run_cli(&["check", cfg.to_str().unwrap()]);
    assert!(
        !ok && err.contains("routes[0].auth.api_keys[0].name"),
        "{err}"
    );
}

/// `routes[].call_timeout_ms`: a call through the route that outlives it gets -32603 naming
/// the bound, soon, and the backend is told to stop (`notifications/cancelled` with the
/// call's id); the main endpoint keeps the backends' own bounds.
#[test]
fn a_routes_call_timeout_cancels_the_call() {
    let a = mock("a").start();
    let gw = gateway()
        .backend("a", &a.url)
        .yaml("routes:\n  - path: /quick/mcp\n    call_timeout_ms: 300\n")
        .start();
    let quick = gw.url.replace("/mcp", "/quick/mcp");
    let mut c = client(&quick);
    let started = std::time::Instant::now();
    let r = c
        .request(
            "tools/call",
            json!({"name": "a__slow", "arguments": {"ms": 5000}}),
        )
        .unwrap();
    assert_eq!(error_code(&r), -32603, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("call_timeout_ms (300 ms)"),
        "{r}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let id = c.last_id();
    let mut seen: Vec<String> = Vec::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            let r = c
                .request("tools/call", json!({"name": "a__seen", "arguments": {}}))
                .unwrap();
            seen = serde_json::from_str(text_of(&r)).unwrap();
            seen.iter()
                .any(|s| s.contains("cancelled") && s.contains(&id.to_string()))
        }),
        "{seen:?}"
    );
    // The main endpoint: the same call runs to its end.
    let mut main = client(&gw.url);
    let r = main
        .request(
            "tools/call",
            json!({"name": "a__slow", "arguments": {"ms": 600}}),
        )
        .unwrap();
    assert_eq!(text_of(&r), "slept", "{r}");
}
