//! One MCP client connection of the load generator: Streamable HTTP over a persistent
//! keep-alive TCP connection, its own session (`initialize` → `Mcp-Session-Id`), requests
//! answered with JSON or SSE. Buffers are reused across requests.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use ringmux_core::http::{self, chunked::ChunkedDecoder, BodyKind};
use ringmux_core::jsonrpc::{self, Kind};
use ringmux_core::sse::SseDecoder;

use super::stats::ErrorKind;

const MAX_HEAD: usize = 64 << 10;
const MAX_BODY: usize = 64 << 20;
const READ_CHUNK: usize = 64 << 10;

/// Where the MCP endpoint is.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `host[:port]` for the Host header.
    pub authority: String,
    pub path: String,
}

impl Endpoint {
    /// Parses `http://host:port/path`.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        use std::net::ToSocketAddrs;
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/mcp"),
        };
        let with_port = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{authority}: {e}"))?
            .next()
            .ok_or_else(|| format!("{authority}: no address"))?;
        Ok(Endpoint {
            addr,
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// A decoded answer: the JSON-RPC response's raw `result` text is in `Conn::result`.
pub struct Conn {
    stream: TcpStream,
    endpoint: Endpoint,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    body: Vec<u8>,
    /// The bytes of the last response's `result` member.
    pub result: Vec<u8>,
    session: Option<String>,
    version: String,
    timeout: Duration,
}

fn protocol(_: impl std::fmt::Debug) -> ErrorKind {
    ErrorKind::Protocol
}

impl Conn {
    pub async fn connect(endpoint: &Endpoint, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect(endpoint.addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            endpoint: endpoint.clone(),
            rbuf: Vec::with_capacity(READ_CHUNK),
            wbuf: Vec::with_capacity(4096),
            body: Vec::with_capacity(READ_CHUNK),
            result: Vec::new(),
            session: None,
            version: "2025-11-25".into(),
            timeout,
        })
    }

    /// `initialize` + `notifications/initialized`; keeps the session id and version.
    pub async fn initialize(&mut self) -> Result<(), ErrorKind> {
        let init = format!(
            r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{}","capabilities":{{}},"clientInfo":{{"name":"ringmux-load","version":"{}"}}}}}}"#,
            self.version,
            env!("CARGO_PKG_VERSION")
        );
        self.request(init.as_bytes()).await?;
        #[derive(serde::Deserialize)]
        struct Init {
            #[serde(rename = "protocolVersion")]
            version: String,
        }
        let init: Init = serde_json::from_slice(&self.result).map_err(protocol)?;
        self.version = init.version;
        self.timed(
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            true,
        )
        .await
    }

    /// Sends a request and reads its answer; `Ok` when it is a JSON-RPC result (kept in
    /// `self.result`).
    pub async fn request(&mut self, body: &[u8]) -> Result<(), ErrorKind> {
        self.timed(body, false).await
    }

    /// One exchange within the request timeout (`notification`: answered 202, no result).
    async fn timed(&mut self, body: &[u8], notification: bool) -> Result<(), ErrorKind> {
        match monoio::time::timeout(self.timeout, self.exchange(body, notification)).await {
            Ok(r) => r,
            Err(_) => Err(ErrorKind::Timeout),
        }
    }

    async fn exchange(&mut self, body: &[u8], notification: bool) -> Result<(), ErrorKind> {
        self.wbuf.clear();
        let extra: [(&str, &[u8]); 4] = [
            ("content-type", b"application/json"),
            ("accept", b"application/json, text/event-stream"),
            ("mcp-protocol-version", self.version.as_bytes()),
            (
                "mcp-session-id",
                self.session.as_deref().unwrap_or("").as_bytes(),
            ),
        ];
        // No session header before `initialize` has answered.
        let headers = if self.session.is_some() {
            &extra[..]
        } else {
            &extra[..3]
        };
        http::write_request_head(
            &mut self.wbuf,
            "POST",
            &self.endpoint.path,
            &self.endpoint.authority,
            Some(body.len()),
            headers,
        );
        self.wbuf.extend_from_slice(body);
        let buf = std::mem::take(&mut self.wbuf);
        let (res, buf) = self.stream.write_all(buf).await;
        self.wbuf = buf;
        res.map_err(|_| ErrorKind::Connection)?;

        let head = loop {
            if let Some(h) = http::parse_response(&self.rbuf, MAX_HEAD).map_err(protocol)? {
                break h;
            }
            self.fill().await?;
        };
        if let Some(r) = &head.session_id {
            if self.session.is_none() {
                let id = std::str::from_utf8(&self.rbuf[r.clone()]).map_err(protocol)?;
                self.session = Some(id.to_owned());
            }
        }
        let sse = head.is_event_stream(&self.rbuf);
        let status = head.status;
        self.read_body(&head).await?;
        if notification {
            return if status == 202 || status == 200 {
                Ok(())
            } else {
                Err(ErrorKind::Http(status))
            };
        }
        if status != 200 {
            return Err(ErrorKind::Http(status));
        }
        if sse {
            self.response_from_events()
        } else {
            let body = std::mem::take(&mut self.body);
            let r = self.take_response(&body);
            self.body = body;
            r
        }
    }

    async fn fill(&mut self) -> Result<(), ErrorKind> {
        let len = self.rbuf.len();
        if self.rbuf.capacity() - len < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
        let buf = std::mem::take(&mut self.rbuf);
        let cap = buf.capacity();
        let (res, buf) = self
            .stream
            .read(monoio::buf::IoBufMut::slice_mut(buf, len..cap))
            .await;
        self.rbuf = buf.into_inner();
        match res {
            Ok(0) | Err(_) => Err(ErrorKind::Connection),
            Ok(_) => Ok(()),
        }
    }

    /// Reads the body into `self.body` and drops the response from `rbuf`.
    async fn read_body(&mut self, head: &http::ResponseHead) -> Result<(), ErrorKind> {
        self.body.clear();
        self.rbuf.drain(..head.head_len);
        match head.body {
            BodyKind::Empty => {}
            BodyKind::Length(n) => {
                if n > MAX_BODY {
                    return Err(ErrorKind::Protocol);
                }
                while self.rbuf.len() < n {
                    self.fill().await?;
                }
                self.body.extend_from_slice(&self.rbuf[..n]);
                self.rbuf.drain(..n);
            }
            BodyKind::Chunked => {
                let mut dec = ChunkedDecoder::new();
                loop {
                    let used = dec
                        .decode(&self.rbuf, &mut self.body, MAX_BODY)
                        .map_err(protocol)?;
                    self.rbuf.drain(..used);
                    if dec.is_done() {
                        break;
                    }
                    self.fill().await?;
                }
            }
            BodyKind::UntilClose => return Err(ErrorKind::Protocol),
        }
        if !head.keep_alive {
            return Err(ErrorKind::Connection);
        }
        Ok(())
    }

    fn response_from_events(&mut self) -> Result<(), ErrorKind> {
        let mut dec = SseDecoder::new(MAX_BODY);
        dec.feed(&self.body);
        while let Some(ev) = dec.next_event().map_err(protocol)? {
            if ev.data.is_empty() {
                continue;
            }
            if matches!(jsonrpc::parse(&ev.data), Ok(m) if m.kind == Kind::Response) {
                return self.take_response(&ev.data);
            }
        }
        Err(ErrorKind::Protocol)
    }

    fn take_response(&mut self, msg: &[u8]) -> Result<(), ErrorKind> {
        let m = jsonrpc::parse(msg).map_err(protocol)?;
        if m.kind != Kind::Response {
            return Err(ErrorKind::Protocol);
        }
        if let Some(result) = m.result {
            self.result.clear();
            self.result.extend_from_slice(result.get().as_bytes());
            return Ok(());
        }
        #[derive(serde::Deserialize)]
        struct Error {
            code: i64,
        }
        let e: Error = m
            .error
            .and_then(|e| serde_json::from_str(e.get()).ok())
            .ok_or(ErrorKind::Protocol)?;
        Err(ErrorKind::Rpc(e.code))
    }
}
