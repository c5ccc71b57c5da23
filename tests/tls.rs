//! TLS against the real binary: the listener (TLS 1.2 and 1.3, ALPN), a TLS connection handed
//! to the shard owning its session with its rustls state, client certificates (required,
//! optional; the certificate's subject as the principal), certificate rotation while a session
//! runs, and `https://` backends (the mock behind a TLS-terminating ringmux), with a client
//! certificate toward them. Certificate authorities and certificates are made in the test
//! (rcgen).

#[path = "support/harness.rs"]
mod harness;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use harness::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A test certificate authority.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for localhost and 127.0.0.1, written to `dir` as
    /// `{prefix}cert.pem` and `{prefix}key.pem`; their paths.
    fn localhost(&self, dir: &Dir, prefix: &str) -> (String, String) {
        let (cert, key) = self.leaf("localhost", &["localhost", "127.0.0.1"], false);
        (
            dir.put(&format!("{prefix}cert.pem"), &cert),
            dir.put(&format!("{prefix}key.pem"), &key),
        )
    }

    /// A leaf certificate for `names`, with this common name, for a server or a client.
    fn leaf(&self, cn: &str, names: &[&str], client: bool) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "ringmux tests");
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A directory of PEM files for one test.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("ringmux-tls-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    /// Writes `text` to `name` by renaming a finished file into place (as a certificate
    /// manager does), and returns its path.
    fn put(&self, name: &str, text: &str) -> String {
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        let path = self.0.join(name);
        std::fs::rename(&tmp, &path).unwrap();
        path.display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A rustls client config trusting `ca`, presenting `client` (cert, key PEM) if given, and
/// offering only `versions` (all when empty).
fn client_config(
    ca: &Ca,
    client: Option<&(String, String)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions = if versions.is_empty() {
        rustls::ALL_VERSIONS
    } else {
        versions
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// A connected client over TLS with `cfg`.
fn tls_client(url: &str, cfg: &Arc<rustls::ClientConfig>) -> Client {
    Client::connect_with(url, Some(cfg.clone())).expect("connecting")
}

/// `tls:` for the server certificate in `dir` (and client certificates of `client_ca`).
fn tls_yaml(cert: &str, key: &str, client_ca: Option<(&str, &str)>) -> String {
    let mut y = format!("tls:\n  cert: {cert}\n  key: {key}\n  reload_ms: 50\n");
    if let Some((ca, mode)) = client_ca {
        y.push_str(&format!("  client_ca: {ca}\n  client_auth: {mode}\n"));
    }
    y
}

fn echo(c: &mut Client, name: &str, message: &str) -> String {
    let answer = c
        .request(
            "tools/call",
            json!({"name": name, "arguments": {"message": message}}),
        )
        .unwrap();
    text_of(&answer).to_string()
}

#[test]
fn https_clients_over_tls_1_2_and_1_3() {
    let ca = Ca::new("ringmux test CA");
    let dir = Dir::new("basic");
    let (cert, key) = ca.localhost(&dir, "");
    let gw = gateway()
        .stdio_mock("m", "")
        .yaml(&tls_yaml(&cert, &key, None))
        .start();
    assert!(gw.url.starts_with("https://"), "{}", gw.url);
    for versions in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let cfg = client_config(&ca, None, &[versions]);
        let mut c = tls_client(&gw.url, &cfg);
        c.initialize().unwrap();
        // Large enough to span several TLS records both ways.
        let big = "x".repeat(100_000);
        assert_eq!(echo(&mut c, "m__echo", &big), big);
        assert_eq!(echo(&mut c, "m__echo", "again"), "again");
    }
    // A plain-HTTP request on the TLS port is a failed handshake, counted; nothing else.
    let cfg = client_config(&ca, None, &[]);
    let before = metric(&gw.admin, "ringmux_tls_handshake_failures_total");
    let plain = gw.url.replacen("https://", "http://", 1);
    let mut c = Client::connect(&plain).unwrap();
    assert!(c.send("GET", b"", &[]).is_err());
    assert!(eventually(Duration::from_secs(5), || metric(
        &gw.admin,
        "ringmux_tls_handshake_failures_total"
    ) > before));
    // A record that does not decrypt, after a good handshake: the connection is closed (with
    // rustls's alert), and the gateway serves the next client.
    {
        use std::io::{Read, Write};
        let addr = gw
            .url
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap();
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = rustls::ClientConnection::new(cfg.clone(), name).unwrap();
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp).unwrap();
        }
        tcp.write_all(b"\x17\x03\x03\x00\x20forged-application-data-record!!")
            .unwrap();
        // The session tickets and the alert, then the end of the stream (or a reset), not a
        // connection left open.
        let mut rest = Vec::new();
        if let Err(e) = tcp.read_to_end(&mut rest) {
            assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "the connection stayed open: {e}"
            );
        }
        let mut after = tls_client(&gw.url, &cfg);
        after.initialize().unwrap();
    }
    // A client that does not trust the CA refuses the server.
    let stranger = Ca::new("another CA");
    let mut c = tls_client(&gw.url, &client_config(&stranger, None, &[]));
    assert!(c.initialize().is_err());
}

#[test]
fn a_tls_connection_is_handed_to_its_sessions_shard_with_its_state() {
    let ca = Ca::new("ringmux test CA");
    let dir = Dir::new("handoff");
    let (cert, key) = ca.localhost(&dir, "");
    let gw = gateway()
        .shards(2)
        .stdio_mock("m", "")
        .yaml(&tls_yaml(&cert, &key, None))
        .start();
    let cfg = client_config(&ca, None, &[]);
    let mut owner = tls_client(&gw.url, &cfg);
    owner.initialize().unwrap();
    // Fresh connections land on either shard; those on the wrong one are handed over with
    // their rustls state, and go on with the same session keys: several requests each.
    for i in 0..16 {
        let mut c = tls_client(&gw.url, &cfg);
        c.session = owner.session.clone();
        c.protocol_version = owner.protocol_version.clone();
        for j in 0..3 {
            let m = format!("{i}-{j}-{}", "y".repeat(j * 20_000));
            assert_eq!(echo(&mut c, "m__echo", &m), m);
        }
    }
    let handoffs = metric(&gw.admin, "ringmux_connection_handoffs_total");
    assert!(handoffs > 0, "no TLS connection was handed over");
    assert_eq!(
        metric(&gw.admin, "ringmux_cross_shard_hops_total"),
        0,
        "handed-over connections are served locally"
    );
}

#[test]
fn client_certificates_required_name_the_principal() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let dir = Dir::new("mtls");
    let (cert, key) = ca.localhost(&dir, "");
    // Two client CAs: the same subject from each is two principals.
    let clients2 = Ca::new("client CA two");
    let client_ca = dir.put("clients.pem", &(clients.pem() + &clients2.pem()));
    // Authentication on: a certificate is a credential, so no bearer token is needed.
    let gw = gateway()
        .stdio_mock("m", "")
        .yaml(&tls_yaml(&cert, &key, Some((&client_ca, "required"))))
        .yaml("auth:\n  resource: https://localhost/mcp\n")
        .start();
    let alice = clients.leaf("alice", &["alice.example"], true);
    let bob = clients.leaf("bob", &["bob.example"], true);
    let alice_cfg = client_config(&ca, Some(&alice), &[]);
    let bob_cfg = client_config(&ca, Some(&bob), &[]);
    let mut a = tls_client(&gw.url, &alice_cfg);
    a.initialize().unwrap();
    assert_eq!(echo(&mut a, "m__echo", "hi"), "hi");
    // No certificate, or one from another CA: the handshake fails.
    let mut none = tls_client(&gw.url, &client_config(&ca, None, &[]));
    assert!(none.initialize().is_err());
    let mallory = Ca::new("client CA").leaf("alice", &["alice.example"], true);
    let mut forged = tls_client(&gw.url, &client_config(&ca, Some(&mallory), &[]));
    assert!(forged.initialize().is_err());
    // Alice's session id under Bob's certificate is unknown (404), on a fresh connection.
    let mut b = tls_client(&gw.url, &bob_cfg);
    b.session = a.session.clone();
    b.protocol_version = a.protocol_version.clone();
    let resp = b
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .unwrap();
    assert_eq!(resp.status, 404);
    // Another CA's "alice" (same subject text) is not Alice.
    let other_alice = clients2.leaf("alice", &["alice.example"], true);
    let mut imposter = tls_client(&gw.url, &client_config(&ca, Some(&other_alice), &[]));
    imposter.session = a.session.clone();
    imposter.protocol_version = a.protocol_version.clone();
    let resp = imposter
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .unwrap();
    assert_eq!(resp.status, 404);
    // Alice on a second connection is still Alice.
    let mut a2 = tls_client(&gw.url, &alice_cfg);
    a2.session = a.session.clone();
    a2.protocol_version = a.protocol_version.clone();
    assert_eq!(echo(&mut a2, "m__echo", "again"), "again");
}

#[test]
fn client_certificates_optional_with_auth_strict() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let dir = Dir::new("mtls-optional");
    let (cert, key) = ca.localhost(&dir, "");
    let client_ca = dir.put("clients.pem", &clients.pem());
    let gw = gateway()
        .stdio_mock("m", "")
        .yaml(&tls_yaml(&cert, &key, Some((&client_ca, "optional"))))
        .yaml("auth:\n  resource: https://localhost/mcp\n  mode: strict\n")
        .start();
    // Without a certificate the handshake succeeds, and authentication asks for a token.
    let mut anon = tls_client(&gw.url, &client_config(&ca, None, &[]));
    let resp = anon
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .unwrap();
    assert_eq!(resp.status, 401);
    assert!(resp
        .header("www-authenticate")
        .is_some_and(|h| h.starts_with("Bearer ")));
    // With one, the certificate is the credential.
    let carol = clients.leaf("carol", &[], true);
    let mut c = tls_client(&gw.url, &client_config(&ca, Some(&carol), &[]));
    c.initialize().unwrap();
    assert_eq!(echo(&mut c, "m__echo", "ok"), "ok");
}

#[test]
fn certificate_rotation_keeps_sessions_and_refuses_broken_files() {
    let ca = Ca::new("ringmux test CA");
    let dir = Dir::new("rotate");
    let (cert1, key1) = ca.leaf("localhost", &["localhost", "127.0.0.1"], false);
    let cert = dir.put("cert.pem", &cert1);
    let key = dir.put("key.pem", &key1);
    let gw = gateway()
        .stdio_mock("m", "")
        .yaml(&tls_yaml(&cert, &key, None))
        .start();
    let cfg = client_config(&ca, None, &[]);
    let mut c = tls_client(&gw.url, &cfg);
    c.initialize().unwrap();
    let first = c.peer_certificate().unwrap();
    assert_eq!(echo(&mut c, "m__echo", "before"), "before");

    // The new pair replaces the old (key first, as files land one by one).
    let (cert2, key2) = ca.leaf("localhost", &["localhost", "127.0.0.1"], false);
    dir.put("key.pem", &key2);
    dir.put("cert.pem", &cert2);
    let served = |c: &Client| c.peer_certificate().unwrap();
    // A config of its own for each look: a resumed session would report the certificate of
    // the session it resumes.
    let unresumed = || client_config(&ca, None, &[]);
    assert!(
        eventually(Duration::from_secs(10), || {
            let mut fresh = tls_client(&gw.url, &unresumed());
            fresh.send("GET", b"", &[]).is_ok() && served(&fresh) != first
        }),
        "new connections never got the new certificate"
    );
    let second = CertificateDer::from_pem_slice(cert2.as_bytes()).unwrap();
    let mut fresh = tls_client(&gw.url, &unresumed());
    fresh.session = c.session.clone();
    fresh.protocol_version = c.protocol_version.clone();
    assert_eq!(echo(&mut fresh, "m__echo", "new"), "new");
    assert_eq!(served(&fresh), second.to_vec());
    // The connection opened before the rotation goes on, in the same session.
    assert_eq!(echo(&mut c, "m__echo", "after"), "after");
    assert!(metric(&gw.admin, "ringmux_tls_reloads_total") >= 1);

    // A broken certificate file is refused; the loaded pair stays in use.
    dir.put("cert.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
    assert!(eventually(Duration::from_secs(10), || metric(
        &gw.admin,
        "ringmux_tls_reload_failures_total"
    ) >= 1));
    let mut after = tls_client(&gw.url, &unresumed());
    after.initialize().unwrap();
    assert_eq!(served(&after), second.to_vec());
}

/// `ringmux mock` behind a TLS-terminating gateway: an `https://` MCP server.
fn https_mock(ca: &Ca, dir: &Dir, client_ca: Option<&str>) -> (Proc, Proc) {
    let mock = mock("up").start();
    let (cert, key) = ca.localhost(dir, "up-");
    let front = gateway()
        .backend("up", &mock.url)
        .yaml(&tls_yaml(&cert, &key, client_ca.map(|ca| (ca, "required"))))
        .start();
    (mock, front)
}

#[test]
fn https_backends_with_a_ca_bundle_and_a_client_certificate() {
    let ca = Ca::new("backend CA");
    let dir = Dir::new("backend");
    let (_mock, front) = https_mock(&ca, &dir, None);
    let ca_file = dir.put("ca.pem", &ca.pem());
    let url = front.url.replace("127.0.0.1", "localhost");
    let gw = gateway()
        .backend_with("up", &url, &format!("tls:\n  ca: {ca_file}\n"))
        .start();
    let mut c = client(&gw.url);
    assert_eq!(echo(&mut c, "up__up__echo", "through TLS"), "through TLS");
    let big = "z".repeat(200_000);
    assert_eq!(echo(&mut c, "up__up__echo", &big), big);

    // A legacy HTTP+SSE backend over https: the TLS front serves that transport too.
    let sse_url = url.replace("/mcp", "/sse");
    let legacy = gateway()
        .backend_with(
            "old",
            &sse_url,
            &format!("transport: sse\ntls:\n  ca: {ca_file}\n"),
        )
        .start();
    let mut l = client(&legacy.url);
    assert_eq!(
        echo(&mut l, "old__up__echo", "legacy over TLS"),
        "legacy over TLS"
    );

    // Without the CA (the platform's roots do not know it), the backend is refused.
    let other = Ca::new("unrelated CA");
    let other_file = dir.put("other.pem", &other.pem());
    let gw2 = gateway()
        .backend_with("up", &url, &format!("tls:\n  ca: {other_file}\n"))
        .start();
    let mut c2 = client(&gw2.url);
    let answer = c2
        .request(
            "tools/call",
            json!({"name": "up__up__echo", "arguments": {"message": "x"}}),
        )
        .unwrap();
    assert!(answer.get("error").is_some(), "{answer}");

    // A backend requiring client certificates: ringmux presents its own.
    let clients = Ca::new("gateway client CA");
    let client_ca = dir.put("clients.pem", &clients.pem());
    let (_mock2, strict) = https_mock(&ca, &dir, Some(&client_ca));
    let (cc, ck) = clients.leaf("ringmux", &[], true);
    let (cc, ck) = (dir.put("gw-cert.pem", &cc), dir.put("gw-key.pem", &ck));
    let strict_url = strict.url.replace("127.0.0.1", "localhost");
    let gw3 = gateway()
        .backend_with(
            "up",
            &strict_url,
            &format!("tls:\n  ca: {ca_file}\n  client_cert: {cc}\n  client_key: {ck}\n"),
        )
        .start();
    let mut c3 = client(&gw3.url);
    assert_eq!(echo(&mut c3, "up__up__echo", "mutual"), "mutual");
}

#[test]
fn tls_settings_are_checked() {
    let dir = Dir::new("check");
    let missing = dir.0.join("nope.pem");
    let cfg = dir.put(
        "bad.yaml",
        &format!(
            "listen: 127.0.0.1:0\ntls:\n  cert: {0}\n  key: {0}\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\n",
            missing.display()
        ),
    );
    let (ok, _, err) = run_cli(&["check", &cfg]);
    assert!(!ok);
    assert!(err.contains("nope.pem"), "{err}");
    // TLS settings on an http:// backend are a mistake, named by key.
    let cfg = dir.put(
        "bad2.yaml",
        "listen: 127.0.0.1:0\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\n    tls:\n      server_name: x\n",
    );
    let (ok, _, err) = run_cli(&["check", &cfg]);
    assert!(!ok);
    assert!(err.contains("backends[0].tls"), "{err}");
}

/// A client that opens a connection and sends half a ClientHello, then nothing: the handshake
/// timeout closes it and counts it; one that keeps trickling a byte at a time is closed at the
/// same deadline (the timeout bounds the whole handshake, not each read). Other clients are
/// served meanwhile.
#[test]
fn a_stalled_or_trickling_handshake_is_cut_off_at_its_deadline() {
    use std::io::{Read, Write};
    let ca = Ca::new("ringmux test CA");
    let dir = Dir::new("slow");
    let (cert, key) = ca.localhost(&dir, "");
    let gw = gateway()
        .stdio_mock("m", "")
        .yaml(&format!(
            "{}  handshake_timeout_ms: 400\n",
            tls_yaml(&cert, &key, None)
        ))
        .start();
    let cfg = client_config(&ca, None, &[]);
    let addr = gw
        .url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    // The first bytes of a TLS record carrying a ClientHello, and no more.
    let mut stalled = std::net::TcpStream::connect(&addr).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    let mut trickling = std::net::TcpStream::connect(&addr).unwrap();
    let started = std::time::Instant::now();
    // Served meanwhile.
    let mut c = tls_client(&gw.url, &cfg);
    c.initialize().unwrap();
    assert_eq!(echo(&mut c, "m__echo", "still here"), "still here");
    // The trickler sends one byte of a ClientHello every 100 ms; the server closes it.
    let closed = (0..50).any(|i| {
        std::thread::sleep(Duration::from_millis(100));
        let byte = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01][i % 6];
        trickling.write_all(&[byte]).is_err() || {
            let mut b = [0u8; 1];
            trickling
                .set_read_timeout(Some(Duration::from_millis(1)))
                .unwrap();
            matches!(trickling.read(&mut b), Ok(0))
        }
    });
    assert!(closed, "a trickling handshake was never closed");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closed only after {:?}",
        started.elapsed()
    );
    // The stalled one is closed too.
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 16];
    assert!(matches!(stalled.read(&mut b), Ok(0) | Err(_)));
    assert!(metric(&gw.admin, "ringmux_tls_handshake_failures_total") >= 2);
}

/// A client certificate is checked on every connection: after its CA is taken out of
/// `client_ca`, the client cannot come back by resuming an earlier session.
#[test]
fn a_removed_client_ca_is_not_outlived_by_session_resumption() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let dir = Dir::new("mtls-resume");
    let (cert, key) = ca.localhost(&dir, "");
    let client_ca = dir.put("clients.pem", &clients.pem());
    let gw = gateway()
        .stdio_mock("m", "")
        .yaml(&tls_yaml(&cert, &key, Some((&client_ca, "required"))))
        .start();
    let dave = clients.leaf("dave", &[], true);
    // One config for every connection: it keeps whatever resumption state the server gives.
    let cfg = client_config(&ca, Some(&dave), &[]);
    for _ in 0..2 {
        let mut c = tls_client(&gw.url, &cfg);
        c.initialize().unwrap();
    }
    // The bundle now holds another CA only.
    dir.put("clients.pem", &Ca::new("replacement client CA").pem());
    assert!(
        eventually(Duration::from_secs(10), || tls_client(&gw.url, &cfg)
            .initialize()
            .is_err()),
        "dave kept connecting after his CA was removed"
    );
}

/// `admin.tls`: the admin listener speaks TLS with its own certificate and, with
/// `client_ca`, requires a client certificate (the operator's); the MCP listener stays
/// plain. Without a certificate, or in plain HTTP, nothing is read.
#[test]
fn the_admin_listener_can_require_tls_and_a_client_certificate() {
    let ca = Ca::new("admin CA");
    let operators = Ca::new("operator CA");
    let dir = Dir::new("admin-tls");
    let (cert, key) = ca.localhost(&dir, "admin-");
    let operator_ca = dir.put("operators.pem", &operators.pem());
    let gw = gateway()
        .stdio_mock("m", "")
        .yaml(&format!(
            "admin:\n  listen: 127.0.0.1:0\n  tls:\n    cert: {cert}\n    key: {key}\n    client_ca: {operator_ca}\n    client_auth: required\n"
        ))
        .start();
    assert!(gw.admin.starts_with("https://"), "{}", gw.admin);
    let operator = operators.leaf("ops", &["ops.example"], true);
    let mut c = Client::connect_with(
        &format!("{}/metrics", gw.admin),
        Some(client_config(&ca, Some(&operator), &[])),
    )
    .unwrap();
    let r = c.send("GET", b"", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("ringmux_requests_total"));
    // No client certificate: the handshake fails, nothing is served.
    let refused = Client::connect_with(
        &format!("{}/metrics", gw.admin),
        Some(client_config(&ca, None, &[])),
    )
    .and_then(|mut c| c.send("GET", b"", &[]));
    assert!(refused.is_err(), "{:?}", refused.map(|r| r.status));
    // Plain HTTP to the TLS port: no answer.
    let plain = Client::connect(&gw.admin.replace("https://", "http://"))
        .and_then(|mut c| c.send("GET", b"", &[]));
    assert!(plain.is_err() || plain.as_ref().is_ok_and(|r| r.status != 200));
    // The MCP listener is plain HTTP as configured.
    let mut mcp = client(&gw.url);
    assert_eq!(echo(&mut mcp, "m__echo", "hi"), "hi");
}
