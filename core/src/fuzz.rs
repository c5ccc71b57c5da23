//! The properties the fuzz targets in `core/fuzz` check, kept here so that the same checks also
//! run in `cargo test` over a seed corpus and deterministic mutations of it (no nightly
//! toolchain needed for that part). Each function panics when a property is broken.

use crate::error::RpcError;
use crate::http::{self, chunked::ChunkedDecoder};
use crate::jsonrpc::{self, What};
use crate::sse::SseDecoder;

/// The envelope parser never panics, agrees with serde_json on what is JSON, and hands out
/// only spans that lie inside the input and are themselves JSON.
pub fn envelope(data: &[u8]) {
    // JSON text is UTF-8 (RFC 8259 §8.1); serde_json checks that only in strings it decodes,
    // so the oracle is "UTF-8, and serde_json accepts it".
    let text = std::str::from_utf8(data).ok();
    let serde_ok = text.is_some_and(|t| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok());
    let too_deep =
        text.is_some_and(|t| jsonrpc::validate(t).is_err_and(|s| s.what == What::TooDeep));
    match jsonrpc::parse(data) {
        Ok(m) => {
            assert!(serde_ok, "accepted what serde_json rejects");
            let raws = [
                m.id,
                m.result,
                m.error,
                m.params.name,
                m.params.uri,
                m.params.cursor,
                m.params.capabilities,
                m.params.request_id,
                m.params.meta.as_ref().and_then(|x| x.progress_token),
                m.params.reference.as_ref().and_then(|r| r.name),
                m.params.reference.as_ref().and_then(|r| r.uri),
            ];
            for raw in raws.into_iter().flatten() {
                let span = jsonrpc::span_of(data, raw);
                assert!(span.end <= data.len());
                assert_eq!(&data[span], raw.get().as_bytes());
                assert!(jsonrpc::validate(raw.get()).is_ok());
                // Owned copies (kept for relayed streams) must not panic either.
                assert_eq!(raw.to_boxed().get(), raw.get());
            }
            if let Some(name) = m.params.name {
                // Splicing a name keeps the document JSON.
                let mut out = Vec::new();
                jsonrpc::splice(&mut out, data, jsonrpc::span_of(data, name), b"\"x\"");
                assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&out).is_ok());
            }
        }
        Err(RpcError::Parse(_)) => {
            assert!(
                !serde_ok || too_deep,
                "called valid JSON a parse error: {:?}",
                String::from_utf8_lossy(data)
            );
        }
        Err(e) => {
            assert!(serde_ok, "called invalid JSON {e:?}");
        }
    }
}

/// The request-head parser never panics and every range it returns lies inside the head.
pub fn request_head(data: &[u8]) {
    let Ok(Some(head)) = http::parse_request(data, 8 * 1024, 4 << 20) else {
        return;
    };
    assert!(head.head_len <= data.len());
    let h = &head.headers;
    let ranges = [
        Some(head.path.clone()),
        head.query.clone(),
        h.host.clone(),
        h.accept.clone(),
        h.content_type.clone(),
        h.session_id.clone(),
        h.protocol_version.clone(),
        h.origin.clone(),
        h.last_event_id.clone(),
        h.authorization.clone(),
        h.mcp_method.clone(),
        h.mcp_name.clone(),
    ];
    for r in ranges.into_iter().flatten() {
        assert!(r.start <= r.end && r.end <= head.head_len);
    }
    // The response-head parser must survive the same bytes.
    let _ = http::parse_response(data, 8 * 1024);
}

/// `traceparent` never panics; a value it accepts writes back as the same version-00 value
/// (lowercase hex, its trace and span ids non-zero), which parses to the same context.
pub fn traceparent(data: &[u8]) {
    // A `tracestate` passed on is one header line's worth of printable ASCII, trimmed.
    if let Some(state) = crate::trace::tracestate(data) {
        assert!(!state.is_empty() && state.len() <= crate::trace::MAX_TRACESTATE);
        assert!(state.bytes().all(|b| (0x20..0x7f).contains(&b)));
        assert_eq!(state, state.trim());
    }
    let Some(t) = crate::trace::TraceParent::parse(data) else {
        return;
    };
    assert!(t.trace_id != [0; 16] && t.span_id != [0; 8]);
    let out = t.write();
    assert_eq!(crate::trace::TraceParent::parse(&out), Some(t));
    let v = data.trim_ascii();
    if v.starts_with(b"00-") {
        assert_eq!(&out[..], v);
    } else {
        assert_eq!(&out[3..], &v[3..crate::trace::LEN]);
    }
}

/// The `Authorization` reader never panics; a credential it accepts is a non-empty part of
/// the value, within the size bound, made of token characters; a challenge built for any
/// metadata URL and scope is one line whose quoted strings stay closed.
pub fn authorization(data: &[u8]) {
    if let Ok(crate::auth::Credential::Bearer(token)) = crate::auth::parse(data) {
        assert!(!token.is_empty() && data.len() <= crate::auth::MAX_CREDENTIAL);
        assert!(token.iter().all(|b| b.is_ascii_graphic()));
        let start = token.as_ptr() as usize - data.as_ptr() as usize;
        assert!(start + token.len() <= data.len());
        let _ = crate::auth::looks_like_jwt(token);
    }
    let text = String::from_utf8_lossy(data);
    let mut mid = text.len() / 2;
    while !text.is_char_boundary(mid) {
        mid -= 1;
    }
    let (url, scope) = text.split_at(mid);
    for why in [
        crate::auth::Refusal::Missing,
        crate::auth::Refusal::Invalid,
        crate::auth::Refusal::InsufficientScope,
    ] {
        let c = why.challenge(url, scope);
        assert!(!c.contains(['\r', '\n']), "{c:?}");
        // Unescaped quotes open and close the quoted strings: an even number of them.
        let (mut quotes, mut escaped) = (0, false);
        for ch in c.chars() {
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => quotes += 1,
                _ => {}
            }
        }
        assert!(quotes % 2 == 0 && !escaped, "{c:?}");
    }
}

/// Authorization rules over arbitrary claims and arguments: evaluating never panics, and the
/// decision split in two (the view's part before the call, the argument rules at the call)
/// is the decision made with every rule evaluated at once. `data` is the claims' JSON, a NUL,
/// then the arguments' JSON (text that is not JSON is taken as a string).
pub fn rules(data: &[u8]) {
    use crate::authz::Policy;
    use std::sync::OnceLock;
    static POLICY: OnceLock<crate::config::Authz> = OnceLock::new();
    let cfg = POLICY.get_or_init(|| {
        let yaml = r#"
rules:
  - {name: admins, allow: 'principal.claims.role == "admin"'}
  - {name: groups, allow: '"ops" in principal.claims.groups && mcp.tool.startsWith("a__")'}
  - {name: public, allow: 'mcp.tool == "a__read" && args.path.startsWith("/public/")'}
  - {name: etc, deny: 'mcp.tool == "a__read" && args.path.matches("^/etc/")'}
  - {name: size, deny: 'size(args) > 3 || mcp.name.contains("rm")'}
  - {name: nested, allow: 'has(args.opts) && args.opts.exists(o, o == principal.claims.sub)'}
  - {name: banned, deny: 'has(principal.claims.banned) && principal.claims.banned'}
  - {name: tenant, deny: 'request.headers["x-tenant"] == "evil" && mcp.kind == "tool"'}
  - {name: local, allow: 'request.address == "127.0.0.1" && mcp.kind == "prompt"'}
"#;
        let file: crate::config::AuthzFile = serde_saphyr::from_str(yaml).expect("the fuzz policy");
        file.check(&["a"]).expect("the fuzz policy checks")
    });
    thread_local! {
        // Compiled once per thread: the property is about evaluating, not compiling.
        static COMPILED: std::cell::OnceCell<Policy> = const { std::cell::OnceCell::new() };
    }
    COMPILED.with(|c| rules_with(c.get_or_init(|| Policy::new(cfg)), data));
}

/// [`rules`] with the policy compiled.
fn rules_with(policy: &crate::authz::Policy, data: &[u8]) {
    use crate::authz::{Item, ItemKind, Listed, Subject, Var};
    let (claims, args) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let json = |b: &[u8]| -> serde_json::Value {
        serde_json::from_slice(b)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(b).into()))
    };
    let facts = serde_json::json!({"kind": "jwt", "id": "jwt:fuzz", "claims": json(claims)});
    // The request's facts come from the claims too: a tenant header, and an address.
    let claims_json = json(claims);
    let request = serde_json::json!({
        "address": claims_json.get("address").cloned().unwrap_or("127.0.0.1".into()),
        "path": "/mcp",
        "headers": {"x-tenant": claims_json.get("tenant").cloned().unwrap_or("".into())},
    });
    let principal = Subject::new(&facts, Some(&request));
    let _ = policy.view_key(&facts, Some(&request));
    let args = Var::from_json(&json(args));
    let constants = policy.constants(&principal);
    for (name, kind) in [
        ("a__read", ItemKind::Tool),
        ("a__rm", ItemKind::Tool),
        ("a__p", ItemKind::Prompt),
        ("mock://a/x", ItemKind::Resource),
    ] {
        let item = Item {
            method: "tools/call",
            kind,
            name,
            backend: 0,
            backend_name: "a",
        };
        let mut errors = 0;
        let split = match policy.listed(&principal, &constants, &item, &mut errors) {
            Listed::Hidden(_) => false,
            Listed::Allowed(_) => true,
            Listed::Check { allow } => {
                policy
                    .decide(&principal, &item, &item.var(), &args, allow, &mut errors)
                    .allow
            }
        };
        assert_eq!(
            split,
            policy.decide_plainly(&principal, &item, &args),
            "{name}: claims {claims:?}, args {args:?}"
        );
    }
}

/// Masking over arbitrary bytes: never panics; what it writes is JSON, and masking it again
/// finds nothing (no secret survives, and no replacement makes a new one).
pub fn mask(data: &[u8]) {
    use std::sync::OnceLock;
    static MASKER: OnceLock<crate::mask::Masker> = OnceLock::new();
    let m = MASKER.get_or_init(|| {
        let p: Vec<(String, String)> = crate::mask::DEFAULT_PATTERNS
            .iter()
            .map(|(n, r)| (n.to_string(), r.to_string()))
            .collect();
        crate::mask::Masker::new(&p).expect("the default patterns compile")
    });
    if let crate::mask::Outcome::Masked(out) = m.mask_json(data) {
        assert!(out.count > 0);
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&out.body).is_ok());
        assert_eq!(
            m.mask_json(&out.body),
            crate::mask::Outcome::Clean,
            "masking twice changed {:?}",
            String::from_utf8_lossy(&out.body)
        );
    }
}

/// A virtual server's edits over arbitrary bytes: a call body (`data`) gets the fixed
/// arguments, or is refused, never sent without them; a tool definition (`data` again) is
/// edited into JSON without the fixed arguments in its schema. Never panics.
pub fn shape(data: &[u8]) {
    use serde_json::{json, Map, Value};
    let fixed: Map<String, Value> = match json!({"path": "/public/x", "n": [1, {"a": null}]}) {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    let mut out = b"kept".to_vec();
    let plain = crate::shape::with_arguments_plainly(data, &fixed);
    let text = String::from_utf8_lossy(data);
    if crate::shape::with_arguments(data, &fixed, &mut out) {
        // What it writes reads as the plain way's tree, where serde_json can read both (the
        // client's bytes it keeps may hold what a Value cannot: a lone surrogate, a huge
        // number, which the backend then judges).
        match (serde_json::from_slice::<Value>(&out[4..]), plain) {
            (Ok(body), Some(plain)) => assert_eq!(body, plain, "{text}"),
            (Ok(body), None) => {
                let args = &body["params"]["arguments"];
                for (k, v) in &fixed {
                    assert_eq!(&args[k], v, "{text}");
                }
            }
            (Err(e), Some(_)) => panic!("{e}: {} from {text}", String::from_utf8_lossy(&out)),
            (Err(_), None) => {}
        }
        // Setting them again changes nothing.
        let mut again = Vec::new();
        assert!(crate::shape::with_arguments(&out[4..], &fixed, &mut again));
        assert_eq!(again, &out[4..], "{text}");
    } else {
        assert_eq!(out, b"kept", "a refusal leaves the buffer as it was");
    }
    let o = crate::config::Override {
        name: Some("renamed".into()),
        description: Some("d".into()),
        arguments: fixed.clone(),
    };
    if let Some(item) = crate::shape::edited(data, "renamed", &o) {
        let tool: Value = serde_json::from_slice(&item).expect("JSON out");
        assert_eq!(tool["name"], "renamed");
        assert_eq!(tool["description"], "d");
        if let Some(props) = tool["inputSchema"]["properties"].as_object() {
            assert!(props.keys().all(|k| !fixed.contains_key(k)), "{tool}");
        }
        if let Some(req) = tool["inputSchema"]["required"].as_array() {
            assert!(req
                .iter()
                .all(|r| r.as_str().is_none_or(|r| !fixed.contains_key(r))));
        }
    }
    // The trace context set in `_meta`: JSON with it there and the rest as it was, or the
    // buffer untouched.
    let mut traced = b"kept".to_vec();
    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    if crate::shape::with_meta_traceparent(data, TP.as_bytes(), &mut traced) {
        let v: serde_json::Value = serde_json::from_slice(&traced[4..]).expect("JSON out");
        assert_eq!(v["params"]["_meta"]["traceparent"], TP);
        if let (Ok(before), Some(after)) = (
            serde_json::from_slice::<serde_json::Value>(data),
            v.as_object(),
        ) {
            for (k, val) in after.iter().filter(|(k, _)| *k != "params") {
                assert_eq!(&before[k], val);
            }
        }
    } else {
        assert_eq!(traced, b"kept");
    }
}

/// Decodes `data` whole, and again in two pieces split at `split`: the chunked decoder gives
/// the same payload either way (when both succeed), and never panics.
pub fn chunked(data: &[u8], split: usize) {
    let whole = decode_chunked(&[data]);
    let split = split.min(data.len());
    let pieces = decode_chunked(&[&data[..split], &data[split..]]);
    if let (Ok(a), Ok(b)) = (whole, pieces) {
        assert_eq!(a, b, "chunked output depends on how the input was split");
    }
}

fn decode_chunked(pieces: &[&[u8]]) -> Result<(Vec<u8>, bool), http::HeadError> {
    let mut dec = ChunkedDecoder::new();
    let mut pending = Vec::new();
    let mut out = Vec::new();
    for piece in pieces {
        pending.extend_from_slice(piece);
        let used = dec.decode(&pending, &mut out, 1 << 20)?;
        assert!(used <= pending.len());
        pending.drain(..used);
    }
    Ok((out, dec.is_done()))
}

/// The SSE decoder yields the same events however its input is split, and never panics.
pub fn sse(data: &[u8], split: usize) {
    let split = split.min(data.len());
    let whole = sse_events(&[data]);
    let pieces = sse_events(&[&data[..split], &data[split..]]);
    assert_eq!(
        whole, pieces,
        "SSE events depend on how the input was split"
    );
}

fn sse_events(pieces: &[&[u8]]) -> Vec<Result<crate::sse::Event, usize>> {
    let mut dec = SseDecoder::new(64 * 1024);
    let mut events = Vec::new();
    for piece in pieces {
        dec.feed(piece);
        loop {
            match dec.next_event() {
                Ok(Some(e)) => events.push(Ok(e)),
                Ok(None) => break,
                Err(e) => {
                    events.push(Err(e.0));
                    return events;
                }
            }
        }
    }
    events
}

/// A config text, as at start and as a reload: checking it never panics; an error's line is
/// one of the text's; a reload keeps every running backend at its index.
pub fn config(data: &[u8]) {
    const RUNNING: &str = "listen: 127.0.0.1:0\nshards: 2\nbackends:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n  - name: b\n    url: http://127.0.0.1:2/mcp\n";
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count().max(1);
    if let Err(e) = crate::config::load(text, 2) {
        if let Some(line) = crate::config::line_of(text, &e.path) {
            assert!((1..=lines + 1).contains(&line), "line {line} of {lines}");
        }
    }
    let running = crate::config::load(RUNNING, 2).expect("the running config checks");
    if let Ok(next) = crate::config::reload(text, 2, &running) {
        for (i, b) in running.backends.iter().enumerate() {
            assert_eq!(next.config.backends[i].name, b.name);
        }
        assert!(next.config.backends.iter().any(|b| !b.retired));
    }
}

#[cfg(test)]
mod tests {
    //! The fuzz properties over a seed corpus and a few thousand deterministic mutations of it.

    use super::*;

    const ENVELOPES: &[&[u8]] = &[
        br#"{"jsonrpc":"2.0","id":4711,"method":"tools/call","params":{"name":"w__get","arguments":{"name":"x","n":[1,2.5e3,true,null]},"_meta":{"progressToken":"p"}}}"#,
        br#"{"jsonrpc":"2.0","id":"a\"b","result":{"content":[]}}"#,
        br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"}}}"#,
        br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"ringmux://a/file:\/\/x\u00e9"}}"#,
    ];

    const HEADS: &[&[u8]] = &[
        b"POST /mcp?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nMcp-Session-Id: abc\r\nAccept: application/json, text/event-stream\r\n\r\nhello",
        b"GET /mcp HTTP/1.0\r\nConnection: keep-alive\r\nLast-Event-ID: 7\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n",
        b"POST http://127.0.0.1:8/mcp?q HTTP/1.1\r\nHost: a\r\nHost: b\r\nMcp-Method: x\r\nMcp-Name: y\r\n\r\n",
        b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    ];

    const CHUNKED: &[u8] = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
    const SSE: &[u8] =
        b": c\nid: 1\nevent: message\ndata: {\"a\":1}\ndata: 2\r\n\r\nretry: 5\r\ndata:x\r\r";

    /// xorshift64*: deterministic, so a failure reproduces.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Mutations a fuzzer would try: flip, insert a structural byte, delete, truncate, duplicate.
    fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
        const BYTES: &[u8] = b"{}[]\":,\\ \r\n0-.eEtfnu\x00\x1f\xff\xc3";
        let mut v = seed.to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(v.len() + 1);
            match rng.below(5) {
                0 if at < v.len() => v[at] ^= 1 << rng.below(8),
                1 => v.insert(at, BYTES[rng.below(BYTES.len())]),
                2 if at < v.len() => {
                    v.remove(at);
                }
                3 => v.truncate(at),
                _ => {
                    let end = (at + rng.below(16)).min(v.len());
                    let copy = v[at.min(end)..end].to_vec();
                    v.splice(at..at, copy);
                }
            }
        }
        v
    }

    #[test]
    fn envelope_properties_hold() {
        let mut rng = Rng(0x5eed_0001);
        for seed in ENVELOPES {
            envelope(seed);
            for _ in 0..2000 {
                envelope(&mutate(&mut rng, seed));
            }
        }
    }

    #[test]
    fn http_properties_hold() {
        let mut rng = Rng(0x5eed_0002);
        for seed in HEADS {
            request_head(seed);
            for _ in 0..2000 {
                request_head(&mutate(&mut rng, seed));
            }
        }
        for split in 0..=CHUNKED.len() {
            chunked(CHUNKED, split);
        }
        for _ in 0..2000 {
            let data = mutate(&mut rng, CHUNKED);
            let split = rng.below(data.len() + 1);
            chunked(&data, split);
        }
    }

    #[test]
    fn authorization_properties_hold() {
        let mut rng = Rng(0x5eed_0004);
        for seed in [
            &b"Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"[..],
            b"bearer   rmx_key_0123",
            b"Basic dXNlcjpwdw==",
            b"Bearer a\"b\\c",
        ] {
            authorization(seed);
            for _ in 0..2000 {
                authorization(&mutate(&mut rng, seed));
            }
        }
    }

    #[test]
    fn rule_properties_hold() {
        let mut rng = Rng(0x5eed_0005);
        for seed in [
            &br#"{"role":"admin","sub":"x"}"#[..],
            b"{\"groups\":[\"ops\"],\"sub\":\"u\"}\0{\"path\":\"/public/a\"}",
            b"{\"sub\":\"u\",\"banned\":false}\0{\"path\":\"/etc/x\",\"opts\":[\"u\"]}",
            b"{\"role\":5}\0{\"a\":1,\"b\":2,\"c\":3,\"d\":4}",
            b"[1,2]\0\"text\"",
        ] {
            rules(seed);
            for _ in 0..300 {
                rules(&mutate(&mut rng, seed));
            }
        }
    }

    #[test]
    fn mask_properties_hold() {
        let mut rng = Rng(0x5eed_0006);
        for seed in [
            &br#"{"result":{"content":[{"type":"text","text":"key AKIAABCDEFGHIJKLMNOP mail bob@example.com"}]}}"#[..],
            br#"{"a":["Bearer abcdefghijklmnopqrstuvwxyz0123","ghp_abcdefghijklmnopqrstuvwxyz0123456789"],"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U":1}"#,
            b"{\"k\":\"-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\"}",
            br#"["sk-proj-abcdefghijklmnopqrstuvwxyz", "xoxb-1234567890-abc", "AIzaSyA1234567890abcdefghijklmnopqrstuv"]"#,
        ] {
            mask(seed);
            for _ in 0..1500 {
                mask(&mutate(&mut rng, seed));
            }
        }
    }

    #[test]
    fn config_properties_hold() {
        let mut rng = Rng(0x5eed_0009);
        for seed in [
            &b"listen: 127.0.0.1:0\nbackends:\n  - name: b\n    url: http://127.0.0.1:2/mcp\n  - name: c\n    url: http://127.0.0.1:3/x\n"[..],
            b"listen: 127.0.0.1:0\nroutes:\n  - path: /r\n    backends: [a]\nbackends:\n  - name: a\n    url: ftp://x\n",
            b"shards: 2\nlisten: 127.0.0.1:0\nbackends: [{name: a, url: 'http://127.0.0.1:1/mcp', circuit: {error_rate: 2}}]\n",
        ] {
            config(seed);
            for _ in 0..300 {
                config(&mutate(&mut rng, seed));
            }
        }
    }

    #[test]
    fn traceparent_properties_hold() {
        let mut rng = Rng(0x5eed_0008);
        for seed in [
            &b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"[..],
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-later",
            b" 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03 ",
        ] {
            traceparent(seed);
            for _ in 0..3000 {
                traceparent(&mutate(&mut rng, seed));
            }
        }
    }

    #[test]
    fn shape_properties_hold() {
        let mut rng = Rng(0x5eed_0007);
        for seed in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"path":"/etc/x","q":1}}}"#[..],
            br#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"t"}}"#,
            br#"{"params":{"arguments":"no"},"id":null}"#,
            br#"{"name":"t","description":"x","inputSchema":{"type":"object","properties":{"path":{},"n":{},"k":{}},"required":["path","k",3]}}"#,
        ] {
            shape(seed);
            for _ in 0..1500 {
                shape(&mutate(&mut rng, seed));
            }
        }
    }

    #[test]
    fn sse_properties_hold() {
        let mut rng = Rng(0x5eed_0003);
        for split in 0..=SSE.len() {
            sse(SSE, split);
        }
        for _ in 0..2000 {
            let data = mutate(&mut rng, SSE);
            let split = rng.below(data.len() + 1);
            sse(&data, split);
        }
    }
}
