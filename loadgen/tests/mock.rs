//! The mock MCP server over real sockets: spawned on 127.0.0.1:0, spoken to with blocking
//! raw HTTP/1.1 (one keep-alive connection per client), decoded with ringmux-core's codecs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringmux_core::http::chunked::ChunkedDecoder;
use ringmux_core::http::{parse_response, BodyKind};
use ringmux_core::sse::{Event, SseDecoder};
use ringmux_load::mock::{self, MockConfig, MockHandle};
use serde_json::{json, Value};

/// Generous: only a broken server ever waits this long.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const BOTH: &str = "application/json, text/event-stream";

fn start(cfg: MockConfig) -> MockHandle {
    mock::spawn(cfg, ([127, 0, 0, 1], 0).into()).expect("mock starts")
}

struct Response {
    status: u16,
    content_type: Option<String>,
    session_id: Option<String>,
    body: Vec<u8>,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        })
    }

    /// The JSON of every SSE event with data.
    fn events(&self) -> Vec<Value> {
        let mut dec = SseDecoder::new(1 << 20);
        dec.feed(&self.body);
        std::iter::from_fn(|| dec.next_event().unwrap())
            .filter(|e| !e.data.is_empty())
            .map(|e| serde_json::from_slice(&e.data).unwrap())
            .collect()
    }
}

/// One keep-alive connection.
struct Client {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Client {
            stream,
            host: addr.to_string(),
            buf: Vec::new(),
        }
    }

    fn send(&mut self, method: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut req = format!("{method} /mcp HTTP/1.1\r\nhost: {}\r\n", self.host);
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes).unwrap();
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        let n = self
            .stream
            .read(&mut chunk)
            .expect("server answers in time");
        assert!(n > 0, "server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// Reads a response head; the body stays in the buffer.
    fn head(&mut self) -> (Response, BodyKind) {
        loop {
            if let Some(head) = parse_response(&self.buf, 64 * 1024).unwrap() {
                let text = |r: Option<std::ops::Range<usize>>| {
                    r.map(|r| String::from_utf8(self.buf[r].to_vec()).unwrap())
                };
                let response = Response {
                    status: head.status,
                    content_type: text(head.content_type.clone()),
                    session_id: text(head.session_id.clone()),
                    body: Vec::new(),
                };
                self.buf.drain(..head.head_len);
                return (response, head.body);
            }
            self.fill();
        }
    }

    fn response(&mut self) -> Response {
        let (mut response, body) = self.head();
        match body {
            BodyKind::Empty => {}
            BodyKind::Length(n) => {
                while self.buf.len() < n {
                    self.fill();
                }
                response.body = self.buf.drain(..n).collect();
            }
            BodyKind::Chunked => {
                let mut dec = ChunkedDecoder::new();
                loop {
                    let used = dec.decode(&self.buf, &mut response.body, 1 << 24).unwrap();
                    self.buf.drain(..used);
                    if dec.is_done() {
                        break;
                    }
                    self.fill();
                }
            }
            BodyKind::UntilClose => panic!("the mock always frames its bodies"),
        }
        response
    }

    fn post(&mut self, session: Option<&str>, accept: &str, msg: &Value) -> Response {
        let mut headers = vec![("content-type", "application/json"), ("accept", accept)];
        if let Some(s) = session {
            headers.push(("mcp-session-id", s));
        }
        self.send("POST", &headers, msg.to_string().as_bytes());
        self.response()
    }

    /// Initializes and sends `notifications/initialized`; returns the session id.
    fn initialize(&mut self) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}});
        let r = self.post(None, BOTH, &init);
        assert_eq!(r.status, 200);
        let session = r.session_id.clone().expect("mcp-session-id header");
        let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(self.post(Some(&session), BOTH, &done).status, 202);
        session
    }

    fn call(&mut self, session: &str, id: u64, method: &str, params: Value) -> Value {
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let r = self.post(Some(session), "application/json", &msg);
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        let v = r.json();
        assert_eq!(v["id"], id);
        v
    }
}

/// Reads SSE events from a chunked body as they arrive.
struct EventReader {
    chunks: ChunkedDecoder,
    sse: SseDecoder,
}

impl EventReader {
    fn new() -> Self {
        EventReader {
            chunks: ChunkedDecoder::new(),
            sse: SseDecoder::new(1 << 20),
        }
    }

    fn next(&mut self, client: &mut Client) -> Event {
        loop {
            if let Some(event) = self.sse.next_event().unwrap() {
                return event;
            }
            if client.buf.is_empty() {
                client.fill();
            }
            let mut payload = Vec::new();
            let used = self
                .chunks
                .decode(&client.buf, &mut payload, 1 << 20)
                .unwrap();
            client.buf.drain(..used);
            self.sse.feed(&payload);
            if used == 0 {
                client.fill();
            }
        }
    }
}

#[test]
fn initialize_mints_a_session() {
    let mock = start(MockConfig {
        name: "weather".into(),
        ..MockConfig::default()
    });
    let mut c = Client::connect(mock.addr);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}});
    let r = c.post(None, BOTH, &init);
    assert_eq!(r.status, 200);
    assert_eq!(r.session_id.as_ref().map(String::len), Some(32));
    let v = r.json();
    assert_eq!(v["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(v["result"]["serverInfo"]["name"], "weather");
    assert_eq!(v["result"]["capabilities"]["tools"]["listChanged"], true);
    assert!(mock.url().ends_with("/mcp"));
}

#[test]
fn tools_list_pages_cover_every_tool_once() {
    let mock = start(MockConfig {
        tools: 14,
        page_size: 4,
        threads: 2,
        ..MockConfig::default()
    });
    let mut c = Client::connect(mock.addr);
    let session = c.initialize();
    let mut names = Vec::new();
    let mut params = json!({});
    let mut pages = 0;
    loop {
        let v = c.call(&session, 10 + pages, "tools/list", params);
        pages += 1;
        let tools = v["result"]["tools"].as_array().unwrap();
        names.extend(
            tools
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string()),
        );
        match v["result"].get("nextCursor") {
            Some(cursor) => params = json!({"cursor": cursor}),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 14, "{names:?}");
    assert_eq!(names.len(), 14, "{names:?}");
}

#[test]
fn echo_returns_the_exact_text() {
    let mock = start(MockConfig::default());
    let mut c = Client::connect(mock.addr);
    let session = c.initialize();
    let message = "exact \"text\" with \\ and ünïcödé\nand a newline";
    let v = c.call(
        &session,
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": message}}),
    );
    assert_eq!(
        v["result"]["content"][0],
        json!({"type": "text", "text": message})
    );
}

#[test]
fn progress_streams_three_events_before_the_result() {
    let mock = start(MockConfig::default());
    let mut c = Client::connect(mock.addr);
    let session = c.initialize();
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "tok"}}});
    let r = c.post(Some(&session), BOTH, &call);
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type.as_deref(), Some("text/event-stream"));
    let events = r.events();
    assert_eq!(events.len(), 4, "{events:?}");
    for (i, e) in events[..3].iter().enumerate() {
        assert_eq!(e["method"], "notifications/progress");
        assert_eq!(
            e["params"],
            json!({"progressToken": "tok", "progress": i + 1, "total": 3})
        );
    }
    assert_eq!(events[3]["id"], 7);
    assert_eq!(events[3]["result"]["content"][0]["text"], "done");
    // The connection is still usable after the stream ended.
    c.call(&session, 8, "ping", json!({}));
}

#[test]
fn sessions_are_required_and_deletable() {
    let mock = start(MockConfig::default());
    let mut c = Client::connect(mock.addr);
    let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"});
    let missing = c.post(None, BOTH, &ping);
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["id"], 3);
    let unknown = c.post(Some("not-a-session"), BOTH, &ping);
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["id"], 3);

    let session = c.initialize();
    assert_eq!(
        c.post(Some(&session), BOTH, &ping).json()["result"],
        json!({})
    );
    c.send("DELETE", &[("mcp-session-id", &session)], b"");
    assert_eq!(c.response().status, 200);
    assert_eq!(c.post(Some(&session), BOTH, &ping).status, 404);
    c.send("DELETE", &[("mcp-session-id", &session)], b"");
    assert_eq!(c.response().status, 404);
}

#[test]
fn list_changes_reach_open_get_streams() {
    let mock = start(MockConfig::default());
    let mut caller = Client::connect(mock.addr);
    let session = caller.initialize();
    let mut listener = Client::connect(mock.addr);
    listener.send(
        "GET",
        &[
            ("accept", "text/event-stream"),
            ("mcp-session-id", &session),
        ],
        b"",
    );
    let (head, body) = listener.head();
    assert_eq!(head.status, 200);
    assert_eq!(head.content_type.as_deref(), Some("text/event-stream"));
    assert_eq!(body, BodyKind::Chunked);

    let touch = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "touch_tools"}});
    let r = caller.post(Some(&session), BOTH, &touch);
    let events = r.events();
    assert_eq!(events[0]["method"], "notifications/tools/list_changed");
    assert_eq!(events[1]["result"]["content"][0]["text"], "touched");

    let event = EventReader::new().next(&mut listener);
    let msg: Value = serde_json::from_slice(&event.data).unwrap();
    assert_eq!(msg["method"], "notifications/tools/list_changed");
    let list = caller.call(&session, 2, "tools/list", json!({}));
    let tools = list["result"]["tools"].as_array().unwrap();
    assert_eq!(tools.last().unwrap()["name"], "extra_1");
}

#[test]
fn bad_input_is_refused() {
    let mock = start(MockConfig::default());
    let mut c = Client::connect(mock.addr);
    let session = c.initialize();
    c.send("POST", &[("mcp-session-id", &session)], b"{not json");
    let r = c.response();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32700);
    assert_eq!(r.json()["id"], Value::Null);

    let v = c.call(&session, 1, "no/such/method", json!({}));
    assert_eq!(v["error"]["code"], -32601);
    let v = c.call(&session, 2, "tools/call", json!({"name": "nope"}));
    assert_eq!(
        v["error"],
        json!({"code": -32602, "message": "Unknown tool: nope"})
    );

    // Declared too large: refused from the head alone.
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        5 * 1024 * 1024
    );
    let mut big = Client::connect(mock.addr);
    big.stream.write_all(head.as_bytes()).unwrap();
    assert_eq!(big.response().status, 413);

    // A chunked request body is decoded like any other.
    let ping = br#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#;
    let chunked = format!(
        "POST /mcp HTTP/1.1\r\nhost: x\r\nmcp-session-id: {session}\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        std::str::from_utf8(&ping[..5]).unwrap(),
        ping.len() - 5,
        std::str::from_utf8(&ping[5..]).unwrap(),
    );
    c.stream.write_all(chunked.as_bytes()).unwrap();
    assert_eq!(
        c.response().json(),
        json!({"jsonrpc": "2.0", "id": 9, "result": {}})
    );

    let mut wrong_path = Client::connect(mock.addr);
    wrong_path
        .stream
        .write_all(b"GET /other HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    assert_eq!(wrong_path.response().status, 404);
    let mut garbage = Client::connect(mock.addr);
    garbage
        .stream
        .write_all(b"\x00\x01 nonsense\r\n\r\n")
        .unwrap();
    assert_eq!(garbage.response().status, 400);
}
