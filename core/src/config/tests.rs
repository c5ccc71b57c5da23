use super::*;

const MINIMAL: &str =
    "listen: 127.0.0.1:0\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\n";

#[test]
fn validation_does_no_io() {
    // A host no resolver knows validates: the gateway resolves names when it starts.
    let cfg = load(
        "listen: localhost:0\nbackends:\n  - name: a\n    url: http://no-such-host.invalid:81/mcp\n    transport: streamable_http\n",
        2,
    )
    .unwrap();
    assert_eq!(cfg.listen, SocketAddr::from(([127, 0, 0, 1], 0)));
    let b = &cfg.backends[0];
    assert_eq!(
        (b.host.as_str(), b.port, b.addrs.len()),
        ("no-such-host.invalid", 81, 0)
    );
    assert_eq!(b.era, Era::Stateful);
    let e = load(
        "listen: example.com:80\nbackends:\n  - name: a\n    command: x\n",
        2,
    )
    .unwrap_err();
    assert_eq!(e.path, "listen");
}

#[test]
fn answer_limits_fit_the_shards_share_of_the_budget() {
    let c = load(MINIMAL, 2).unwrap();
    assert_eq!(c.limits.response_budget, 256 << 20);
    assert_eq!(c.backends[0].max_response, 32 << 20);
    // 64 cores: the default limit shrinks to a shard's share instead of refusing to start.
    let c = load(MINIMAL, 64).unwrap();
    assert_eq!(c.backends[0].max_response, 8 << 20);
    let e = error_of(&format!(
        "{MINIMAL}    max_response_bytes: 1073741824\nlimits:\n  response_budget_bytes: 1048576\n"
    ));
    assert_eq!(e.path, "backends[0].max_response_bytes");
}

#[test]
fn stdio_backends() {
    let yaml = "listen: 127.0.0.1:0\nbackends:\n  - name: s\n    command: node\n    args: [srv.js, stdio]\n    env: {A: b}\n    cwd: /tmp\n    mode: shared\n  - name: p\n    command: ./x\n";
    let cfg = load(yaml, 2).unwrap();
    let s = cfg.backends[0].stdio.as_ref().unwrap();
    assert_eq!(s.command, "node");
    assert_eq!(s.args, ["srv.js", "stdio"]);
    assert_eq!(s.env, [("A".to_string(), "b".to_string())]);
    assert_eq!(s.cwd.as_deref(), Some("/tmp"));
    assert!(cfg.backends[0].shared && cfg.backends[0].actor_driven());
    assert!(!cfg.backends[1].shared);
    let bad = |extra: &str| {
        load(
            &format!("listen: 127.0.0.1:0\nbackends:\n  - name: s\n{extra}"),
            2,
        )
        .unwrap_err()
        .path
    };
    // Enumerations are checked by the YAML reader: the message names the line and the
    // choices.
    let pooled = load(
        "listen: 127.0.0.1:0\nbackends:\n  - name: s\n    command: x\n    mode: pooled\n",
        2,
    )
    .unwrap_err();
    assert!(
        pooled.message.contains("pooled") && pooled.message.contains("per_session"),
        "{pooled:?}"
    );
    let transport = load(
        "listen: 127.0.0.1:0\nbackends:\n  - name: s\n    url: http://a:1/\n    transport: grpc\n",
        2,
    )
    .unwrap_err();
    assert!(
        transport.message.contains("grpc") && transport.message.contains("streamable_http"),
        "{transport:?}"
    );
    assert_eq!(
        bad("    command: x\n    url: http://127.0.0.1:9/\n"),
        "backends[0].url"
    );
    assert_eq!(bad("    prefix: false\n"), "backends[0].url");
    assert_eq!(
        bad("    url: http://127.0.0.1:9/\n    args: [a]\n"),
        "backends[0].url"
    );
    assert_eq!(bad("    command: \"\"\n"), "backends[0].command");
}

#[test]
fn minimal_gets_defaults() {
    let c = load(MINIMAL, 2).unwrap();
    assert_eq!(c.shards, 2);
    assert_eq!(c.path, "/mcp");
    assert_eq!(c.limits.max_body, 4 << 20);
    assert_eq!(c.separator, "__");
    assert!(c.backends[0].prefixed);
    assert_eq!(c.backends[0].authority, "127.0.0.1:9");
    assert_eq!(c.backends[0].path, "/mcp");
}

fn error_of(yaml: &str) -> ConfigError {
    load(yaml, 1).unwrap_err()
}

#[test]
fn errors_name_the_key_path() {
    let e = error_of(&format!("{MINIMAL}    prefix: maybe\n"));
    assert!(e.message.contains("prefix"), "{e}");
    let e = error_of(&MINIMAL.replace("http://127.0.0.1:9/mcp", "ftp://x/mcp"));
    assert_eq!(e.path, "backends[0].url");
    let e = error_of(&format!("{MINIMAL}    tls:\n      server_name: x\n"));
    assert_eq!(e.path, "backends[0].tls");
    let e = error_of(&format!(
        "{}    tls:\n      client_cert: c.pem\n",
        MINIMAL.replace("http://127.0.0.1:9/mcp", "https://x/mcp")
    ));
    assert_eq!(e.path, "backends[0].tls.client_cert");
    let e = error_of(&format!(
        "{MINIMAL}tls:\n  cert: c\n  key: k\n  reload_ms: 0\n"
    ));
    assert_eq!(e.path, "tls.reload_ms");
    let e = error_of(&MINIMAL.replace("name: a", "name: a b"));
    assert_eq!(e.path, "backends[0].name");
    let e = error_of(&format!(
        "{MINIMAL}  - name: a\n    url: http://127.0.0.1:9/\n"
    ));
    assert_eq!(e.path, "backends[1].name");
    let e = error_of(&format!("{MINIMAL}names:\n  prefix: sometimes\n"));
    assert_eq!(e.path, "names.prefix");
    let e = error_of(&format!("{MINIMAL}limits:\n  max_header_bytes: 10\n"));
    assert_eq!(e.path, "limits.max_header_bytes");
    let e = error_of(&format!("{MINIMAL}bogus: 1\n"));
    assert!(e.message.contains("bogus"), "{e}");
    let e = error_of("listen: 127.0.0.1:0\nbackends: []\n");
    assert_eq!(e.path, "backends");
}

#[test]
fn prefix_modes_resolve_per_backend() {
    let yaml = "listen: 127.0.0.1:0\nnames:\n  prefix: conditional\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/\n";
    assert!(!load(yaml, 1).unwrap().backends[0].prefixed);
    let two = format!("{yaml}  - name: b\n    url: http://127.0.0.1:9/\n    prefix: false\n");
    let c = load(&two, 1).unwrap();
    assert!(c.backends[0].prefixed);
    assert!(!c.backends[1].prefixed);
}

#[test]
fn urls() {
    let u = parse_http_url("http://[::1]:81/x").unwrap();
    assert_eq!(
        (u.host.as_str(), u.port, u.path.as_str()),
        ("::1", 81, "/x")
    );
    let u = parse_http_url("http://example").unwrap();
    assert_eq!((u.port, u.path.as_str(), u.tls), (80, "/", false));
    let u = parse_http_url("https://example/mcp").unwrap();
    assert_eq!((u.port, u.path.as_str(), u.tls), (443, "/mcp", true));
    let u = parse_http_url("https://[::1]/").unwrap();
    assert_eq!((u.port, u.tls), (443, true));
    assert!(parse_http_url("ftp://example/").is_err());
    assert!(parse_http_url("http://:80/").is_err());
    assert!(parse_http_url("http://h:99999/").is_err());
    assert!(parse_http_url("http://u@h/").is_err());
}

#[test]
fn origins() {
    let p = OriginPolicy::List(vec!["https://app.example.com".into()]);
    assert!(p.allows(b"http://localhost:3000"));
    assert!(p.allows(b"http://127.0.0.1"));
    assert!(p.allows(b"http://[::1]:8080"));
    assert!(p.allows(b"https://APP.example.com/"));
    assert!(!p.allows(b"http://evil.com"));
    assert!(!p.allows(b"http://localhost.evil.com"));
    assert!(!p.allows(b"http://localhost:80evil"));
    assert!(OriginPolicy::Any.allows(b"http://evil.com"));
}

#[test]
fn backend_ids_follow_names_not_places() {
    let one = load(
        "listen: 127.0.0.1:0\nbackends:\n  - name: a\n    command: x\n  - name: b\n    command: y\n",
        2,
    )
    .unwrap();
    let two = load(
        "listen: 127.0.0.1:0\nbackends:\n  - name: b\n    command: y\n  - name: c\n    command: z\n",
        2,
    )
    .unwrap();
    assert_eq!(
        one.backends[1].id, two.backends[0].id,
        "b moved, its id did not"
    );
    assert_ne!(one.backends[0].id, one.backends[1].id);
    let id = one.backends[0].id;
    assert_eq!(BackendId::parse(&id.to_string()), Some(id));
    assert_eq!(BackendId::parse("xyz"), None);
}
