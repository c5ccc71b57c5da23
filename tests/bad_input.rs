//! Hostile and malformed input: every case gets its precise status and JSON-RPC code, and the
//! gateway keeps serving other sessions afterwards.

#[path = "support/harness.rs"]
mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use harness::*;

fn raw(url: &str, bytes: &[u8]) -> String {
    let addr = url.trim_start_matches("http://").split('/').next().unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn post_body(url: &str, body: &str, session: Option<&str>) -> RawResponse {
    let mut c = Client::connect(url).unwrap();
    c.session = session.map(str::to_owned);
    c.send("POST", body.as_bytes(), &[]).unwrap()
}

fn code_of(resp: &RawResponse) -> i64 {
    error_code(&resp.messages()[0])
}

#[test]
fn every_kind_of_bad_input_gets_a_precise_error() {
    let a = mock("a").start();
    let mut gw = gateway()
        .yaml("limits:\n  max_body_bytes: 1024\n  max_header_bytes: 2048\n  header_timeout_ms: 500")
        .backend("a", &a.url)
        .start();
    let mut good = client(&gw.url);
    let sid = good.session.clone().unwrap();

    let r = post_body(&gw.url, "{nope", None);
    assert_eq!((r.status, code_of(&r)), (400, -32700));
    assert_eq!(r.messages()[0]["id"], Value::Null);
    let r = post_body(
        &gw.url,
        r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
        Some(&sid),
    );
    assert_eq!((r.status, code_of(&r)), (400, -32600));
    let r = post_body(
        &gw.url,
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
        Some(&sid),
    );
    assert_eq!((r.status, code_of(&r)), (400, -32600));
    assert!(r.messages()[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("batch"));
    let r = post_body(
        &gw.url,
        r#"{"jsonrpc":"2.0","id":"x7","method":"no/such"}"#,
        Some(&sid),
    );
    assert_eq!((r.status, code_of(&r)), (200, -32601));
    assert_eq!(r.messages()[0]["id"], "x7");
    let r = post_body(
        &gw.url,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":5}}"#,
        Some(&sid),
    );
    assert_eq!(code_of(&r), -32602);
    let r = post_body(
        &gw.url,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":[1]}"#,
        Some(&sid),
    );
    assert_eq!(code_of(&r), -32602);
    let r = post_body(
        &gw.url,
        r#"{"jsonrpc":"2.0","id":4,"method":"initialize","params":{}}"#,
        None,
    );
    assert_eq!(code_of(&r), -32602);

    // Sessions: missing → 400, unknown → 404, malformed id → 404.
    let r = post_body(
        &gw.url,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        None,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.messages()[0]["id"], 1);
    let r = post_body(
        &gw.url,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    );
    assert_eq!(r.status, 404);

    // Transport rules.
    let mut c = Client::connect(&gw.url).unwrap();
    c.session = Some(sid.clone());
    let ping = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    assert_eq!(
        c.send("POST", ping, &[("mcp-protocol-version", "1999-01-01")])
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        c.send("POST", ping, &[("content-type", "text/plain")])
            .unwrap()
            .status,
        415
    );
    assert_eq!(
        c.send("POST", ping, &[("accept", "text/html")])
            .unwrap()
            .status,
        406
    );
    assert_eq!(
        c.send("POST", ping, &[("origin", "http://evil.example")])
            .unwrap()
            .status,
        403
    );
    assert_eq!(
        c.send("POST", ping, &[("origin", "http://localhost:3000")])
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        c.send("GET", b"", &[("accept", "application/json")])
            .unwrap()
            .status,
        406
    );
    assert_eq!(
        c.send(
            "GET",
            b"",
            &[("accept", "text/event-stream"), ("mcp-session-id", "")]
        )
        .unwrap()
        .status,
        404
    );
    assert_eq!(c.send("PUT", b"", &[]).unwrap().status, 405);
    let host = raw(&gw.url, b"POST /mcp HTTP/1.1\r\nHost: evil.example.com\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
    assert!(host.starts_with("HTTP/1.1 403"), "{host}");
    let other_path = raw(
        &gw.url,
        b"GET /nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(other_path.starts_with("HTTP/1.1 404"), "{other_path}");

    // Size limits and malformed HTTP.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(2000)
    );
    assert_eq!(post_body(&gw.url, &big, Some(&sid)).status, 413);
    let huge_header = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n",
        "y".repeat(4000)
    );
    assert!(raw(&gw.url, huge_header.as_bytes()).starts_with("HTTP/1.1 431"));
    assert!(raw(&gw.url, b"\x16\x03\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    let smuggle = b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}";
    assert!(raw(&gw.url, smuggle).starts_with("HTTP/1.1 400"));
    let chunked = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nMcp-Session-Id: {sid}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n{{\"jso\r\n23\r\nnrpc\":\"2.0\",\"id\":8,\"method\":\"ping\"}}\r\n0\r\n\r\n"
    );
    let resp = raw(&gw.url, chunked.as_bytes());
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.contains(r#""id":8"#),
        "{resp}"
    );

    // A client that starts a request and stalls is timed out.
    let stalled = raw(&gw.url, b"POST /mcp HTTP/1.1\r\nHost: localhost\r\n");
    assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled:?}");

    // Through all of it, the good session and the process are intact.
    let echo = good
        .request(
            "tools/call",
            json!({"name": "a__echo", "arguments": {"message": "alive"}}),
        )
        .unwrap();
    assert_eq!(text_of(&echo), "alive");
    assert!(gw.is_running());
}
