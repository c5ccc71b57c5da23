//! Authentication against the real binary: ringmux as an OAuth resource server (RFC 9728
//! metadata, RFC 6750 challenges, RFC 8707 audience) with JWT access tokens verified against
//! a JWK Set, and API keys. The token matrix (each way a token can be wrong gets its exact
//! status and `WWW-Authenticate`), sessions bound to their principal on both fronts, the
//! 2026-07-28 front, and the optional and permissive modes. The keys are test fixtures
//! (tests/fixtures/auth).

#[path = "support/harness.rs"]
mod harness;

use base64::Engine;
use harness::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/auth");
const ISS: &str = "https://idp.test";
const RES: &str = "https://gw.test/mcp";
const METADATA: &str = "https://gw.test/.well-known/oauth-protected-resource/mcp";
const API_KEY: &str = "rmx-test-key-0123456789";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Good claims for `sub`, with `change` applied (a null removes a claim).
fn claims(sub: &str, change: Value) -> Value {
    let mut c = json!({
        "iss": ISS, "aud": RES, "sub": sub, "iat": now(), "exp": now() + 600, "scope": "mcp read",
    });
    for (k, v) in change.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIX}/{name}")).unwrap()
}

/// A token signed by `key_file` (RS256) with `kid`.
fn signed(key_file: &str, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    let key = EncodingKey::from_rsa_pem(&pem(key_file)).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn good(sub: &str) -> String {
    signed("rsa1.pem", "k1", &claims(sub, json!({})))
}

fn sha256_hex(s: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn auth_yaml(mode: &str) -> String {
    format!(
        "auth:\n  mode: {mode}\n  resource: {RES}\n  authorization_servers: [{ISS}]\n  scopes_supported: [mcp, read, admin]\n  required_scopes: [mcp]\n  jwt:\n    issuer: {ISS}\n    jwks_file: {FIX}/jwks.json\n  api_keys:\n    - name: ci-bot\n      sha256: {}\n      attributes: {{team: infra}}\n",
        sha256_hex(API_KEY)
    )
}

fn gateway_with(mode: &str, backend: &str) -> Proc {
    gateway()
        .shards(2)
        .backend("a", backend)
        .yaml(&auth_yaml(mode))
        .start()
}

fn initialize_with(url: &str, authorization: Option<&str>) -> RawResponse {
    let mut c = Client::connect(url).unwrap();
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "auth-test", "version": "1"}}});
    let body = serde_json::to_vec(&body).unwrap();
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    c.send("POST", &body, &headers).unwrap()
}

/// The `error` of a challenge, `None` when it has none.
fn challenge_error(resp: &RawResponse) -> Option<String> {
    let h = resp
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("no WWW-Authenticate: {resp:?}"));
    assert!(
        h.starts_with(&format!("Bearer resource_metadata=\"{METADATA}\"")),
        "{h}"
    );
    assert!(h.contains("scope=\"mcp\""), "the required scope: {h}");
    h.split("error=\"")
        .nth(1)
        .map(|r| r.split('"').next().unwrap().to_owned())
}

#[test]
fn every_bad_token_gets_its_exact_status_and_challenge() {
    let a = mock("a").start();
    let gw = gateway_with("strict", &a.url);
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": "k1"})),
        b64(&claims("mallory", json!({})))
    );
    // HS256 with the RSA public key as the HMAC secret: the classic algorithm confusion.
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("k1".into());
    let confused = jsonwebtoken::encode(
        &hs,
        &claims("mallory", json!({})),
        &EncodingKey::from_secret(&pem("rsa1.pub.pem")).unwrap(),
    )
    .unwrap();
    let valid = good("alice");
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        ("no credential", String::new(), 401, None),
        ("valid token", format!("Bearer {valid}"), 200, None),
        ("valid API key", format!("Bearer {API_KEY}"), 200, None),
        (
            "expired",
            format!(
                "Bearer {}",
                signed(
                    "rsa1.pem",
                    "k1",
                    &claims("alice", json!({"exp": now() - 3600}))
                )
            ),
            401,
            Some("invalid_token"),
        ),
        (
            "not yet valid",
            format!(
                "Bearer {}",
                signed(
                    "rsa1.pem",
                    "k1",
                    &claims("alice", json!({"nbf": now() + 3600}))
                )
            ),
            401,
            Some("invalid_token"),
        ),
        (
            "wrong issuer",
            format!(
                "Bearer {}",
                signed(
                    "rsa1.pem",
                    "k1",
                    &claims("alice", json!({"iss": "https://evil.test"}))
                )
            ),
            401,
            Some("invalid_token"),
        ),
        (
            "wrong audience",
            format!(
                "Bearer {}",
                signed(
                    "rsa1.pem",
                    "k1",
                    &claims("alice", json!({"aud": "https://other.test/mcp"}))
                )
            ),
            401,
            Some("invalid_token"),
        ),
        (
            "no audience",
            format!(
                "Bearer {}",
                signed("rsa1.pem", "k1", &claims("alice", json!({"aud": null})))
            ),
            401,
            Some("invalid_token"),
        ),
        (
            "bad signature (another key, same kid)",
            format!(
                "Bearer {}",
                signed("rsa2.pem", "k1", &claims("alice", json!({})))
            ),
            401,
            Some("invalid_token"),
        ),
        (
            "unknown kid",
            format!(
                "Bearer {}",
                signed("rsa2.pem", "k9", &claims("alice", json!({})))
            ),
            401,
            Some("invalid_token"),
        ),
        (
            "alg none",
            format!("Bearer {unsigned}"),
            401,
            Some("invalid_token"),
        ),
        (
            "HS256 with the public key",
            format!("Bearer {confused}"),
            401,
            Some("invalid_token"),
        ),
        (
            "exp of the wrong type",
            format!(
                "Bearer {}",
                signed("rsa1.pem", "k1", &claims("alice", json!({"exp": "soon"})))
            ),
            401,
            Some("invalid_token"),
        ),
        (
            "trailing garbage",
            format!("Bearer {valid}x"),
            401,
            Some("invalid_token"),
        ),
        (
            "no exp",
            format!(
                "Bearer {}",
                signed("rsa1.pem", "k1", &claims("alice", json!({"exp": null})))
            ),
            401,
            Some("invalid_token"),
        ),
        (
            "no iss",
            format!(
                "Bearer {}",
                signed("rsa1.pem", "k1", &claims("alice", json!({"iss": null})))
            ),
            401,
            Some("invalid_token"),
        ),
        (
            "no sub (every such token would be one principal)",
            format!(
                "Bearer {}",
                signed("rsa1.pem", "k1", &claims("alice", json!({"sub": null})))
            ),
            401,
            Some("invalid_token"),
        ),
        (
            "empty sub",
            format!(
                "Bearer {}",
                signed("rsa1.pem", "k1", &claims("", json!({})))
            ),
            401,
            Some("invalid_token"),
        ),
        (
            "no kid, and the set holds one key",
            format!("Bearer {}", {
                let key = EncodingKey::from_rsa_pem(&pem("rsa1.pem")).unwrap();
                jsonwebtoken::encode(
                    &Header::new(Algorithm::RS256),
                    &claims("alice", json!({})),
                    &key,
                )
                .unwrap()
            }),
            200,
            None,
        ),
        (
            "scopes in scp as a string",
            format!(
                "Bearer {}",
                signed(
                    "rsa1.pem",
                    "k1",
                    &claims("alice", json!({"scope": null, "scp": "read mcp"}))
                )
            ),
            200,
            None,
        ),
        (
            "wrong API key",
            "Bearer rmx-wrong-key".into(),
            401,
            Some("invalid_token"),
        ),
        (
            "missing scope",
            format!(
                "Bearer {}",
                signed("rsa1.pem", "k1", &claims("alice", json!({"scope": "read"})))
            ),
            403,
            Some("insufficient_scope"),
        ),
        (
            "not Bearer",
            "Basic YWxpY2U6cHc=".into(),
            400,
            Some("invalid_request"),
        ),
        (
            "two tokens",
            format!("Bearer {valid} {valid}"),
            400,
            Some("invalid_request"),
        ),
        (
            "oversized",
            format!("Bearer {}", "a".repeat(9000)),
            400,
            Some("invalid_request"),
        ),
    ];
    for (what, authorization, status, error) in &cases {
        let auth = (!authorization.is_empty()).then_some(authorization.as_str());
        let resp = initialize_with(&gw.url, auth);
        assert_eq!(resp.status, *status, "{what}: {resp:?}");
        if *status == 200 {
            assert!(resp.header("mcp-session-id").is_some(), "{what}");
            continue;
        }
        assert_eq!(challenge_error(&resp).as_deref(), *error, "{what}");
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        assert!(
            body["error"].is_string(),
            "{what}: an OAuth error body: {body}"
        );
    }
    // Two Authorization headers: refused by the front door before anyone reads either.
    let mut c = Client::connect(&gw.url).unwrap();
    let a1 = format!("Bearer {valid}");
    let resp = c
        .send(
            "POST",
            br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            &[("authorization", &a1), ("authorization", "Bearer other")],
        )
        .unwrap();
    assert_eq!(resp.status, 400, "{resp:?}");
    // (The duplicated header was the front door's 400, not authentication's.)
    let refusals = cases.iter().filter(|c| c.2 != 200).count() as u64;
    assert_eq!(metric(&gw.admin, "ringmux_auth_refused_total"), refusals);
}

#[test]
fn protected_resource_metadata_is_served_at_both_paths() {
    let a = mock("a").start();
    let gw = gateway_with("strict", &a.url);
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let mut c = Client::connect(&gw.url).unwrap();
        c.path = path.into();
        let resp = c.send("GET", b"", &[]).unwrap();
        assert_eq!(resp.status, 200, "{path}: {resp:?}");
        let doc: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(doc["resource"], RES);
        assert_eq!(doc["authorization_servers"], json!([ISS]));
        assert_eq!(doc["scopes_supported"], json!(["mcp", "read", "admin"]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    }
}

/// For a provider without RFC 8414 metadata, ringmux serves the metadata configured for it at
/// the path its issuer names; without the setting, nothing is served there.
#[test]
fn authorization_server_metadata_is_served_when_configured() {
    let a = mock("a").start();
    let doc = json!({
        "issuer": "https://gw.test/idp",
        "authorization_endpoint": "https://idp.test/authorize",
        "token_endpoint": "https://idp.test/token",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    });
    let yaml = format!(
        "{}  authorization_server_metadata: {doc}\n",
        auth_yaml("strict")
    );
    let gw = gateway().backend("a", &a.url).yaml(&yaml).start();
    let get = |gw: &Proc, path: &str| {
        let mut c = Client::connect(&gw.url).unwrap();
        c.path = path.into();
        c.send("GET", b"", &[]).unwrap()
    };
    let resp = get(&gw, "/.well-known/oauth-authorization-server/idp");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(serde_json::from_slice::<Value>(&resp.body).unwrap(), doc);
    assert_eq!(
        get(&gw, "/.well-known/oauth-authorization-server").status,
        404
    );
    let plain = gateway_with("strict", &a.url);
    assert_eq!(
        get(&plain, "/.well-known/oauth-authorization-server/idp").status,
        404
    );
}

#[test]
fn a_session_answers_only_its_principal_on_both_fronts() {
    let a = mock("a").start();
    let gw = gateway_with("strict", &a.url);
    let mut alice = Client::connect(&gw.url).unwrap();
    alice.authorization = Some(format!("Bearer {}", good("alice")));
    alice.initialize().unwrap();
    let r = alice.request("tools/list", json!({})).unwrap();
    assert!(r["result"]["tools"].is_array(), "{r}");
    // Another principal with alice's session id: 404, as for an unknown session.
    for other in [
        format!("Bearer {}", good("bob")),
        format!("Bearer {API_KEY}"),
    ] {
        let mut thief = Client::connect(&gw.url).unwrap();
        thief.session = alice.session.clone();
        thief.authorization = Some(other.clone());
        let resp = thief
            .send(
                "POST",
                br#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#,
                &[],
            )
            .unwrap();
        assert_eq!(resp.status, 404, "{other}: {resp:?}");
    }
    // Nor may another principal open the session's stream or end it.
    let mut thief = Client::connect(&gw.url).unwrap();
    thief.session = alice.session.clone();
    thief.authorization = Some(format!("Bearer {}", good("bob")));
    let get = thief
        .send("GET", b"", &[("accept", "text/event-stream")])
        .unwrap();
    assert_eq!(get.status, 404, "{get:?}");
    let delete = thief.send("DELETE", b"", &[]).unwrap();
    assert_eq!(delete.status, 404, "{delete:?}");
    // Alice with another token (other scopes, same subject) keeps her session.
    let step_up = signed(
        "rsa1.pem",
        "k1",
        &claims("alice", json!({"scope": "mcp admin"})),
    );
    alice.authorization = Some(format!("Bearer {step_up}"));
    let r = alice.request("tools/list", json!({})).unwrap();
    assert!(r["result"]["tools"].is_array(), "{r}");

    // Legacy HTTP+SSE: the stream needs a credential, and only its opener initializes it.
    let mut anon = Client::connect(&gw.url).unwrap();
    anon.path = "/sse".into();
    let resp = anon
        .send("GET", b"", &[("accept", "text/event-stream")])
        .unwrap();
    assert_eq!(resp.status, 401, "{resp:?}");
    let mut opener = Client::connect(&gw.url).unwrap();
    opener.path = "/sse".into();
    let alice_auth = format!("Bearer {}", good("alice"));
    let mut stream = opener
        .open_stream(
            "GET",
            b"",
            &[
                ("accept", "text/event-stream"),
                ("authorization", &alice_auth),
            ],
        )
        .unwrap();
    assert_eq!(stream.status, 200);
    let endpoint = stream
        .next_event(std::time::Duration::from_secs(10))
        .unwrap()
        .expect("the endpoint event");
    let endpoint = String::from_utf8(endpoint.data).unwrap();
    let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"legacy","version":"1"}}}"#;
    let mut poster = Client::connect(&gw.url).unwrap();
    poster.path = endpoint;
    let bob_auth = format!("Bearer {}", good("bob"));
    let resp = poster
        .send("POST", init, &[("authorization", &bob_auth)])
        .unwrap();
    assert_eq!(
        resp.status, 404,
        "bob may not initialize alice's stream: {resp:?}"
    );
    let resp = poster
        .send("POST", init, &[("authorization", &alice_auth)])
        .unwrap();
    assert_eq!(resp.status, 202, "{resp:?}");
    let answer = stream
        .next_message(std::time::Duration::from_secs(10))
        .unwrap()
        .expect("the initialize answer on the stream");
    assert_eq!(answer["id"], 0, "{answer}");
    assert!(answer["result"]["protocolVersion"].is_string(), "{answer}");
}

#[test]
fn modern_requests_are_authenticated_and_keyed_by_their_principal() {
    let a = mock("a").start();
    let gw = gateway_with("strict", &a.url);
    let call = |authorization: Option<String>| {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}}});
        let mut headers = vec![
            ("mcp-protocol-version", "2026-07-28".to_owned()),
            ("mcp-method", "tools/list".to_owned()),
        ];
        if let Some(a) = authorization {
            headers.push(("authorization", a));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut c = Client::connect(&gw.url).unwrap();
        c.send("POST", &serde_json::to_vec(&body).unwrap(), &headers)
            .unwrap()
    };
    let resp = call(None);
    assert_eq!(resp.status, 401, "{resp:?}");
    assert_eq!(challenge_error(&resp), None);
    let resp = call(Some(format!("Bearer {}", good("alice"))));
    assert_eq!(resp.status, 200, "{resp:?}");
    let msg = resp.messages().pop().unwrap();
    assert!(msg["result"]["tools"].is_array(), "{msg}");
    let resp = call(Some("Bearer rmx-wrong-key".into()));
    assert_eq!(resp.status, 401, "{resp:?}");
    // Each principal has a principal session of its own (same capabilities, other subject or
    // kind); the same principal again reuses its own.
    assert_eq!(metric(&gw.admin, "ringmux_sessions"), 1);
    for who in [
        format!("Bearer {}", good("bob")),
        format!("Bearer {API_KEY}"),
    ] {
        assert_eq!(call(Some(who)).status, 200);
    }
    assert_eq!(call(Some(format!("Bearer {}", good("alice")))).status, 200);
    assert_eq!(metric(&gw.admin, "ringmux_sessions"), 3);
}

#[test]
fn optional_and_permissive_modes_let_anonymous_clients_in() {
    let a = mock("a").start();
    let optional = gateway_with("optional", &a.url);
    assert_eq!(initialize_with(&optional.url, None).status, 200);
    let resp = initialize_with(&optional.url, Some("Bearer rmx-wrong-key"));
    assert_eq!(
        resp.status, 401,
        "a wrong credential is still refused: {resp:?}"
    );
    let permissive = gateway_with("permissive", &a.url);
    assert_eq!(initialize_with(&permissive.url, None).status, 200);
    let resp = initialize_with(&permissive.url, Some("Bearer rmx-wrong-key"));
    assert_eq!(resp.status, 200, "{resp:?}");
    // A session opened anonymously is not another principal's.
    let mut anon = Client::connect(&permissive.url).unwrap();
    anon.initialize().unwrap();
    let mut keyed = Client::connect(&permissive.url).unwrap();
    keyed.session = anon.session.clone();
    keyed.authorization = Some(format!("Bearer {API_KEY}"));
    let resp = keyed
        .send(
            "POST",
            br#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#,
            &[],
        )
        .unwrap();
    assert_eq!(resp.status, 404, "{resp:?}");
}

/// A backend gets the credential configured for it (`credentials:`, its secret read from a
/// file when the gateway starts), never the client's: a backend that wants the client's own
/// key refuses ringmux, which does not pass it on.
#[test]
fn backends_get_their_own_credential_never_the_clients() {
    let secret = "backend-secret-42";
    let path = std::env::temp_dir().join(format!("ringmux-secret-{}", std::process::id()));
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    let a = mock("a").arg("--require-bearer", secret).start();
    let gw = gateway()
        .backend_with(
            "a",
            &a.url,
            &format!("credentials: {{file: {}}}", path.display()),
        )
        .yaml(&auth_yaml("strict"))
        .start();
    // A client with the API key calls `tool` through `gw`.
    let echo = |gw: &Proc, tool: &str| {
        let mut c = Client::connect(&gw.url).unwrap();
        c.authorization = Some(format!("Bearer {API_KEY}"));
        c.initialize().unwrap();
        c.request(
            "tools/call",
            json!({"name": tool, "arguments": {"message": "hi"}}),
        )
        .unwrap()
    };
    let r = echo(&gw, "a__echo");
    assert_eq!(text_of(&r), "hi", "{r}");

    let b = mock("b").arg("--require-bearer", API_KEY).start();
    let gw = gateway()
        .backend("b", &b.url)
        .yaml(&auth_yaml("strict"))
        .start();
    let r = echo(&gw, "b__echo");
    assert!(r.get("error").is_some(), "{r}");
    // What the backend answered ringmux, which has no credential for it to present.
    let logs = gw.logs();
    assert!(logs.contains("HTTP 401"), "refused by the backend: {logs}");
    let _ = std::fs::remove_file(path);
}

/// A JWK Set served over HTTP by the test: what it serves can change, and it counts fetches.
struct JwksServer {
    url: String,
    body: std::sync::Arc<std::sync::Mutex<(u16, String)>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl JwksServer {
    fn start(file: &str) -> JwksServer {
        JwksServer::start_with(file, None)
    }

    /// Over TLS with the example certificate for localhost (tests/fixtures/tls).
    fn start_tls(file: &str) -> JwksServer {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let tls = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from_pem_file(format!("{tls}/cert.pem")).unwrap()],
                PrivateKeyDer::from_pem_file(format!("{tls}/key.pem")).unwrap(),
            )
            .unwrap();
        JwksServer::start_with(file, Some(std::sync::Arc::new(cfg)))
    }

    fn start_with(file: &str, tls: Option<std::sync::Arc<rustls::ServerConfig>>) -> JwksServer {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = match tls {
            None => format!("http://{}/jwks", listener.local_addr().unwrap()),
            Some(_) => format!(
                "https://localhost:{}/jwks",
                listener.local_addr().unwrap().port()
            ),
        };
        let body = std::sync::Arc::new(std::sync::Mutex::new((
            200,
            String::from_utf8(pem(file)).unwrap(),
        )));
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (b, f) = (body.clone(), fetches.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                trait Rw: Read + Write {}
                impl<T: Read + Write> Rw for T {}
                let mut conn: Box<dyn Rw> = match &tls {
                    None => Box::new(conn),
                    Some(cfg) => Box::new(rustls::StreamOwned::new(
                        rustls::ServerConnection::new(cfg.clone()).unwrap(),
                        conn,
                    )),
                };
                let mut req = [0u8; 2048];
                let _ = conn.read(&mut req);
                f.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (status, text) = b.lock().unwrap().clone();
                let _ = write!(
                    conn,
                    "HTTP/1.0 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                    text.len()
                )
                .and_then(|()| conn.flush());
            }
        });
        JwksServer { url, body, fetches }
    }

    fn serve(&self, status: u16, file_or_text: &str) {
        let text = std::fs::read_to_string(format!("{FIX}/{file_or_text}"))
            .unwrap_or_else(|_| file_or_text.to_owned());
        *self.body.lock().unwrap() = (status, text);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// `jwks_url`: the set is fetched at start; a token with a `kid` the set lacks asks for a
/// refresh (rate-limited), after which the rotated-in key verifies; a fetch that fails keeps
/// the keys held, and is counted.
#[test]
fn an_unknown_kid_refreshes_the_jwks_and_a_failed_fetch_keeps_the_keys() {
    let jwks = JwksServer::start("jwks.json");
    let a = mock("a").start();
    let yaml = format!(
        "auth:\n  resource: {RES}\n  required_scopes: [mcp]\n  jwt:\n    issuer: {ISS}\n    jwks_url: {}\n    jwks_min_refresh_ms: 200\n",
        jwks.url
    );
    let gw = gateway().shards(2).backend("a", &a.url).yaml(&yaml).start();
    assert_eq!(jwks.fetches(), 1, "fetched once at start");
    let k1 = format!("Bearer {}", good("alice"));
    assert_eq!(initialize_with(&gw.url, Some(&k1)).status, 200);

    // The issuer rotates in k2 (rsa2's key): the first k2 token is refused and asks for the
    // new set; once fetched, k2 tokens verify.
    jwks.serve(200, "jwks-rotated.json");
    let k2 = format!(
        "Bearer {}",
        signed("rsa2.pem", "k2", &claims("bob", json!({})))
    );
    assert_eq!(initialize_with(&gw.url, Some(&k2)).status, 401);
    assert!(
        eventually(std::time::Duration::from_secs(10), || {
            initialize_with(&gw.url, Some(&k2)).status == 200
        }),
        "the rotated key never verified ({} fetches)",
        jwks.fetches()
    );
    let fetched = jwks.fetches();
    assert!(fetched >= 2, "{fetched}");

    // The URL now answers garbage: a refresh (asked by an unknown kid) fails, is counted, and
    // the keys held still verify.
    jwks.serve(500, "oops");
    let k9 = format!(
        "Bearer {}",
        signed("rsa2.pem", "k9", &claims("carol", json!({})))
    );
    assert_eq!(initialize_with(&gw.url, Some(&k9)).status, 401);
    wait_metric(&gw.admin, "ringmux_jwks_refresh_failures_total", 1);
    // Tokens not seen before (not in any cache), by both keys held.
    for (key, kid, sub) in [("rsa1.pem", "k1", "dave"), ("rsa2.pem", "k2", "erin")] {
        let t = format!("Bearer {}", signed(key, kid, &claims(sub, json!({}))));
        assert_eq!(initialize_with(&gw.url, Some(&t)).status, 200, "{kid}");
    }
}

/// `jwks_url` over https: fetched with the configured CA (`jwks_ca`); a gateway that does not
/// trust the server's certificate fetches nothing, counts the failure and refuses tokens.
#[test]
fn the_jwks_is_fetched_over_https_from_a_trusted_server_only() {
    let jwks = JwksServer::start_tls("jwks.json");
    let a = mock("a").start();
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/ca.pem");
    let yaml = format!(
        "auth:\n  resource: {RES}\n  required_scopes: [mcp]\n  jwt:\n    issuer: {ISS}\n    jwks_url: {}\n    jwks_ca: {ca}\n",
        jwks.url
    );
    let gw = gateway().backend("a", &a.url).yaml(&yaml).start();
    assert_eq!(jwks.fetches(), 1, "fetched once at start");
    let token = format!("Bearer {}", good("alice"));
    assert_eq!(initialize_with(&gw.url, Some(&token)).status, 200);
    assert_eq!(metric(&gw.admin, "ringmux_jwks_refresh_failures_total"), 0);

    // The test CA is not among the platform's roots: no keys, every token refused.
    let untrusting = format!(
        "auth:\n  resource: {RES}\n  required_scopes: [mcp]\n  jwt:\n    issuer: {ISS}\n    jwks_url: {}\n",
        jwks.url
    );
    let gw2 = gateway().backend("a", &a.url).yaml(&untrusting).start();
    assert_eq!(initialize_with(&gw2.url, Some(&token)).status, 401);
    assert_eq!(metric(&gw2.admin, "ringmux_jwks_refresh_failures_total"), 1);
}

/// A reload that drops `auth.jwt` stops the issuer's tokens at once (its keys go with it);
/// API keys go on working.
#[test]
fn dropping_the_jwt_issuer_by_reload_stops_its_tokens() {
    let a = mock("a").start();
    let watch_off = "reload:\n  watch_interval_ms: 0\n";
    let gw = gateway()
        .backend("a", &a.url)
        .yaml(watch_off)
        .yaml(&auth_yaml("strict"))
        .start();
    let token = format!("Bearer {}", good("alice"));
    let key = format!("Bearer {API_KEY}");
    assert_eq!(initialize_with(&gw.url, Some(&token)).status, 200);
    let without_jwt = format!(
        "auth:\n  mode: strict\n  resource: {RES}\n  authorization_servers: [{ISS}]\n  scopes_supported: [mcp, read, admin]\n  required_scopes: [mcp]\n  api_keys:\n    - name: ci-bot\n      sha256: {}\n",
        sha256_hex(API_KEY)
    );
    let next = gateway()
        .backend("a", &a.url)
        .yaml(watch_off)
        .yaml(&without_jwt)
        .config_text();
    std::fs::write(gw.config.as_ref().unwrap(), next).unwrap();
    gw.signal(libc::SIGHUP);
    let generation = || {
        let mut c = Client::connect(&format!("{}/metrics", gw.admin)).unwrap();
        let body = String::from_utf8(c.send("GET", b"", &[]).unwrap().body).unwrap();
        body.lines().find_map(|l| {
            l.strip_prefix("ringmux_config_generation ")?
                .parse::<u64>()
                .ok()
        })
    };
    assert!(eventually(
        std::time::Duration::from_secs(10),
        || generation() == Some(1)
    ));
    assert_eq!(initialize_with(&gw.url, Some(&token)).status, 401);
    assert_eq!(initialize_with(&gw.url, Some(&key)).status, 200);
}
