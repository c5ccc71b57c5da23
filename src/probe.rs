//! A small blocking MCP client over Streamable HTTP: enough to list a gateway's tools from the
//! command line (`ringmux tools URL`) and to drive integration tests byte by byte.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use ringmux_core::config::parse_http_url;
use ringmux_core::http::{self, chunked::ChunkedDecoder, BodyKind};
use ringmux_core::sse::SseDecoder;
use serde_json::{json, Value};

/// A response as it came off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Lower-cased header names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// For `text/event-stream` bodies: each event's data.
    pub events: Vec<Vec<u8>>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The JSON-RPC messages in the body (one for JSON, each event's for SSE).
    pub fn messages(&self) -> Vec<Value> {
        if self
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
        {
            self.events
                .iter()
                .filter_map(|e| serde_json::from_slice(e).ok())
                .collect()
        } else {
            serde_json::from_slice(&self.body).into_iter().collect()
        }
    }
}

/// A response read event by event.
pub struct EventReader {
    pub status: u16,
    /// Lower-cased header names.
    pub headers: Vec<(String, String)>,
    framing: BodyKind,
    client: Client,
    dechunk: ChunkedDecoder,
    body: Vec<u8>,
    sse: SseDecoder,
}

impl EventReader {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next event (priming events and events without data included), `None` when the
    /// body ended; an error of kind `WouldBlock`/`TimedOut` if none came within `wait`.
    pub fn next_event(&mut self, wait: Duration) -> io::Result<Option<ringmux_core::sse::Event>> {
        self.client.stream.set_read_timeout(Some(wait))?;
        loop {
            if let Some(ev) = self.sse.next_event().map_err(|e| invalid(e.to_string()))? {
                return Ok(Some(ev));
            }
            let done = match self.framing {
                BodyKind::Chunked => {
                    self.body.clear();
                    let used = self
                        .dechunk
                        .decode(&self.client.buf, &mut self.body, usize::MAX)
                        .map_err(|e| invalid(e.to_string()))?;
                    self.client.buf.drain(..used);
                    self.sse.feed(&self.body);
                    self.dechunk.is_done()
                }
                _ => {
                    self.sse.feed(&self.client.buf);
                    self.client.buf.clear();
                    false
                }
            };
            if let Some(ev) = self.sse.next_event().map_err(|e| invalid(e.to_string()))? {
                return Ok(Some(ev));
            }
            if done || self.framing == BodyKind::Empty {
                return Ok(None);
            }
            match self.client.fill() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// The next event that carries a JSON-RPC message.
    pub fn next_message(&mut self, wait: Duration) -> io::Result<Option<Value>> {
        while let Some(ev) = self.next_event(wait)? {
            if !ev.data.is_empty() {
                return serde_json::from_slice(&ev.data)
                    .map(Some)
                    .map_err(|e| invalid(e.to_string()));
            }
        }
        Ok(None)
    }
}

/// The client's socket: plain, or TLS for an `https://` URL.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn set_read_timeout(&self, wait: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.set_read_timeout(wait),
            Stream::Tls(t) => t.sock.set_read_timeout(wait),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
        }
    }
}

pub struct Client {
    stream: Stream,
    authority: String,
    pub path: String,
    pub session: Option<String>,
    pub protocol_version: String,
    /// Sent as `Authorization` with every request (unless `extra` overrides it).
    pub authorization: Option<String>,
    /// More headers sent with every request.
    pub headers: Vec<(String, String)>,
    next_id: u64,
    buf: Vec<u8>,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Client {
    /// Connects to an `http://` or `https://` URL (TLS checked against the platform's roots,
    /// or the bundle `SSL_CERT_FILE` names).
    pub fn connect(url: &str) -> io::Result<Client> {
        Client::connect_with(url, None)
    }

    /// Connects with this TLS client config for an `https://` URL (a test's CA, a client
    /// certificate).
    pub fn connect_with(
        url: &str,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> io::Result<Client> {
        let u = parse_http_url(url).map_err(invalid)?;
        let addr = (u.host.as_str(), u.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| invalid("no address"))?;
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        let stream = if u.tls {
            let cfg = match tls {
                Some(cfg) => cfg,
                None => crate::tls::client_config(&ringmux_core::config::BackendTls {
                    ca: None,
                    server_name: u.host.clone(),
                    client: None,
                })
                .map_err(invalid)?,
            };
            let name = crate::tls::server_name(&u.host)?;
            let conn =
                rustls::ClientConnection::new(cfg, name).map_err(|e| invalid(e.to_string()))?;
            Stream::Tls(Box::new(rustls::StreamOwned::new(conn, stream)))
        } else {
            Stream::Plain(stream)
        };
        Ok(Client {
            stream,
            authority: u.authority,
            path: u.path,
            session: None,
            protocol_version: "2025-11-25".into(),
            authorization: None,
            headers: Vec::new(),
            next_id: 1,
            buf: Vec::new(),
        })
    }

    /// The server's certificate (DER), for an `https://` connection.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        match &self.stream {
            Stream::Plain(_) => None,
            Stream::Tls(t) => Some(t.conn.peer_certificates()?.first()?.to_vec()),
        }
    }

    /// Sends one HTTP request with the session and version headers (unless overridden by
    /// `extra`) and reads the whole response.
    fn write_request(
        &mut self,
        method: &str,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> io::Result<()> {
        let mut req = format!(
            "{method} {} HTTP/1.1\r\nhost: {}\r\n",
            self.path, self.authority
        );
        let has = |n: &str| extra.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        if !has("content-type") && method == "POST" {
            req.push_str("content-type: application/json\r\n");
        }
        if !has("accept") {
            req.push_str("accept: application/json, text/event-stream\r\n");
        }
        if let (Some(s), false) = (&self.session, has("mcp-session-id")) {
            req.push_str(&format!("mcp-session-id: {s}\r\n"));
        }
        if let (Some(a), false) = (&self.authorization, has("authorization")) {
            req.push_str(&format!("authorization: {a}\r\n"));
        }
        if self.session.is_some() && !has("mcp-protocol-version") {
            req.push_str(&format!(
                "mcp-protocol-version: {}\r\n",
                self.protocol_version
            ));
        }
        for (k, v) in &self.headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        let mut wire = req.into_bytes();
        wire.extend_from_slice(body);
        self.stream.write_all(&wire)?;
        self.stream.flush()
    }

    /// Sends one HTTP request with the session and version headers (unless overridden by
    /// `extra`) and reads the whole response.
    pub fn send(
        &mut self,
        method: &str,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> io::Result<RawResponse> {
        self.write_request(method, body, extra)?;
        self.read_response()
    }

    /// Sends a request whose answer is read event by event ([`EventReader`]), for streams
    /// that stay open (GET) or must be watched as they arrive.
    pub fn open_stream(
        mut self,
        method: &str,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> io::Result<EventReader> {
        self.write_request(method, body, extra)?;
        let (head, headers) = self.read_head()?;
        Ok(EventReader {
            status: head.status,
            headers,
            framing: head.body,
            client: self,
            dechunk: ChunkedDecoder::new(),
            body: Vec::new(),
            sse: SseDecoder::new(usize::MAX),
        })
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn read_head(&mut self) -> io::Result<(http::ResponseHead, Vec<(String, String)>)> {
        let head = loop {
            if let Some(h) =
                http::parse_response(&self.buf, 1 << 20).map_err(|e| invalid(e.to_string()))?
            {
                break h;
            }
            self.fill()?;
        };
        let mut headers = Vec::new();
        {
            let mut storage = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut storage);
            r.parse(&self.buf).map_err(|e| invalid(e.to_string()))?;
            for h in r.headers.iter() {
                headers.push((
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                ));
            }
        }
        self.buf.drain(..head.head_len);
        Ok((head, headers))
    }

    fn read_response(&mut self) -> io::Result<RawResponse> {
        let (head, headers) = self.read_head()?;
        let mut body = Vec::new();
        match head.body {
            BodyKind::Empty => {}
            BodyKind::Length(n) => {
                while self.buf.len() < n {
                    self.fill()?;
                }
                body.extend(self.buf.drain(..n));
            }
            BodyKind::Chunked => {
                let mut d = ChunkedDecoder::new();
                loop {
                    let used = d
                        .decode(&self.buf, &mut body, usize::MAX)
                        .map_err(|e| invalid(e.to_string()))?;
                    self.buf.drain(..used);
                    if d.is_done() {
                        break;
                    }
                    self.fill()?;
                }
            }
            BodyKind::UntilClose => {
                body.append(&mut self.buf);
                let _ = self.stream.read_to_end(&mut body);
            }
        }
        let mut events = Vec::new();
        if headers
            .iter()
            .any(|(n, v)| n == "content-type" && v.starts_with("text/event-stream"))
        {
            let mut d = SseDecoder::new(usize::MAX);
            d.feed(&body);
            while let Some(ev) = d.next_event().map_err(|e| invalid(e.to_string()))? {
                if !ev.data.is_empty() {
                    events.push(ev.data);
                }
            }
        }
        Ok(RawResponse {
            status: head.status,
            headers,
            body,
            events,
        })
    }

    /// POSTs a JSON-RPC message.
    pub fn post(&mut self, msg: &Value) -> io::Result<RawResponse> {
        let body = serde_json::to_vec(msg).expect("serializing a Value");
        self.send("POST", &body, &[])
    }

    /// The id of the last request [`Client::request`] sent.
    pub fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    /// Sends a request and returns its response message (the last message of an SSE body).
    pub fn request(&mut self, method: &str, params: Value) -> io::Result<Value> {
        self.request_with_headers(method, params, &[])
    }

    /// [`Client::request`] with more headers.
    pub fn request_with_headers(
        &mut self,
        method: &str,
        params: Value,
        extra: &[(&str, &str)],
    ) -> io::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let body = serde_json::to_vec(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )
        .expect("serializing a Value");
        let resp = self.send("POST", &body, extra)?;
        resp.messages()
            .into_iter()
            .rfind(|m| m.get("id") == Some(&json!(id)))
            .ok_or_else(|| {
                invalid(format!(
                    "HTTP {}: no response to {method}: {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                ))
            })
    }

    /// `initialize` + `notifications/initialized`; keeps the session id.
    pub fn initialize(&mut self) -> io::Result<Value> {
        let resp = self.post(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": self.protocol_version,
                "capabilities": {},
                "clientInfo": {"name": "ringmux-probe", "version": env!("CARGO_PKG_VERSION")}
            }}),
        )?;
        self.session = resp.header("mcp-session-id").map(str::to_owned);
        let msg = resp
            .messages()
            .into_iter()
            .next()
            .ok_or_else(|| invalid(format!("initialize: HTTP {}", resp.status)))?;
        if let Some(v) = msg
            .pointer("/result/protocolVersion")
            .and_then(Value::as_str)
        {
            self.protocol_version = v.to_owned();
        }
        self.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        Ok(msg)
    }

    /// Walks every page of a list method; returns all items.
    pub fn list_all(&mut self, method: &str, key: &str) -> io::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let msg = self.request(method, params)?;
            let result = msg
                .get("result")
                .ok_or_else(|| invalid(format!("{method} failed: {msg}")))?;
            items.extend(
                result
                    .get(key)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(items),
            }
        }
    }
}
