//! One MCP client connection of the load generator: Streamable HTTP over a persistent
//! keep-alive TCP connection carrying one or more sessions (`initialize` →
//! `Mcp-Session-Id`), or sessionless 2026-07-28 requests; answers in JSON or SSE. Buffers are
//! reused across requests.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use monoio::net::TcpStream;
use ringmux_core::http::{self, chunked::ChunkedDecoder, BodyKind};
use ringmux_core::jsonrpc::{self, Kind};
use ringmux_core::sse::SseDecoder;
use ringmux_core::version::SESSIONLESS;
use ringmux_tls_io::{Stream, TlsConn};
use rustls::pki_types::ServerName;

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
    /// For an `https://` URL: the TLS client config and the name the certificate must carry.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl Endpoint {
    /// Parses `http://host:port/path` or `https://…` (the server's certificate is checked
    /// against the platform's roots, or the bundle `SSL_CERT_FILE` names).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        use std::net::ToSocketAddrs;
        let (https, rest) = match url.strip_prefix("https://") {
            Some(rest) => (true, rest),
            None => (
                false,
                url.strip_prefix("http://")
                    .ok_or_else(|| format!("{url}: an http:// or https:// URL"))?,
            ),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/mcp"),
        };
        let with_port = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if https { 443 } else { 80 })
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{authority}: {e}"))?
            .next()
            .ok_or_else(|| format!("{authority}: no address"))?;
        let tls = match https {
            false => None,
            true => {
                let host = with_port
                    .rsplit_once(':')
                    .map_or(authority, |(h, _)| h)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name =
                    ServerName::try_from(host.to_owned()).map_err(|e| format!("{host}: {e}"))?;
                Some((tls_config()?, name))
            }
        };
        Ok(Endpoint {
            addr,
            authority: authority.to_owned(),
            path: path.to_owned(),
            tls,
        })
    }
}

/// The TLS client config: the platform's roots (or `SSL_CERT_FILE`'s), ALPN `http/1.1`.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "no trusted root certificates found ({:?})",
            found.errors.first()
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Connects to `endpoint`, with TLS for an `https://` one (the handshake within `timeout`).
async fn open(
    endpoint: &Endpoint,
    timeout: Duration,
) -> io::Result<Stream<rustls::ClientConnection>> {
    let tcp = TcpStream::connect(endpoint.addr).await?;
    tcp.set_nodelay(true)?;
    let Some((cfg, name)) = &endpoint.tls else {
        return Ok(Stream::Plain(tcp));
    };
    let session =
        rustls::ClientConnection::new(cfg.clone(), name.clone()).map_err(io::Error::other)?;
    let mut conn = TlsConn::new(tcp, session, Vec::new());
    monoio::time::timeout(timeout, conn.handshake(Some(timeout)))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    Ok(Stream::Tls(Box::new(conn)))
}

/// One keep-alive connection carrying one or more MCP sessions (or, for 2026-07-28, none:
/// every request carries its own `_meta` and `Mcp-Method`/`Mcp-Name` headers).
pub struct Conn {
    stream: Stream<rustls::ClientConnection>,
    endpoint: Endpoint,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    body: Vec<u8>,
    /// The bytes of the last response's `result` member.
    pub result: Vec<u8>,
    /// The sessions this connection carries, and the one the next request uses.
    sessions: Vec<String>,
    current: usize,
    /// Set while `initialize` is in flight: its answer carries a new session id.
    initializing: bool,
    version: String,
    sessionless: bool,
    timeout: Duration,
}

/// The `_meta` object every 2026-07-28 request carries in place of `initialize`.
pub fn meta_object() -> String {
    format!(
        r#"{{"io.modelcontextprotocol/protocolVersion":"{SESSIONLESS}","io.modelcontextprotocol/clientInfo":{{"name":"ringmux-load","version":"{}"}},"io.modelcontextprotocol/clientCapabilities":{{}}}}"#,
        env!("CARGO_PKG_VERSION")
    )
}

fn protocol(_: impl std::fmt::Debug) -> ErrorKind {
    ErrorKind::Protocol
}

impl Conn {
    /// Connects; `version` is the protocol version to ask for (2026-07-28: sessionless).
    pub async fn connect(
        endpoint: &Endpoint,
        version: &str,
        timeout: Duration,
    ) -> io::Result<Conn> {
        let stream = open(endpoint, timeout).await?;
        Ok(Conn {
            stream,
            endpoint: endpoint.clone(),
            rbuf: Vec::with_capacity(READ_CHUNK),
            wbuf: Vec::with_capacity(4096),
            body: Vec::with_capacity(READ_CHUNK),
            result: Vec::new(),
            sessions: Vec::new(),
            current: 0,
            initializing: false,
            version: version.into(),
            sessionless: version == SESSIONLESS,
            timeout,
        })
    }

    /// A new TCP connection to the same endpoint, keeping this one's sessions.
    pub async fn reconnect(&mut self) -> io::Result<()> {
        self.stream = open(&self.endpoint, self.timeout).await?;
        self.rbuf.clear();
        Ok(())
    }

    pub fn is_sessionless(&self) -> bool {
        self.sessionless
    }

    /// Makes session `i` (in opening order) the one the next requests use.
    pub fn use_session(&mut self, i: usize) {
        self.current = i;
    }

    /// Opens a session (`initialize` + `notifications/initialized`) and makes it current.
    /// Sessionless: asks `server/discover` once and checks that 2026-07-28 is offered.
    pub async fn initialize(&mut self) -> Result<(), ErrorKind> {
        if self.sessionless {
            let discover = format!(
                r#"{{"jsonrpc":"2.0","id":0,"method":"server/discover","params":{{"_meta":{}}}}}"#,
                meta_object()
            );
            self.request(discover.as_bytes(), "server/discover", None)
                .await?;
            #[derive(serde::Deserialize)]
            struct Discover {
                #[serde(rename = "supportedVersions")]
                versions: Vec<String>,
            }
            let d: Discover = serde_json::from_slice(&self.result).map_err(protocol)?;
            return if d.versions.iter().any(|v| v == SESSIONLESS) {
                Ok(())
            } else {
                Err(ErrorKind::Protocol)
            };
        }
        self.initializing = true;
        let r = self.open_session().await;
        self.initializing = false;
        r
    }

    /// Replaces the current session with a new one (after the server forgot it: 404).
    pub async fn reinitialize_current(&mut self) -> Result<(), ErrorKind> {
        let slot = self.current;
        self.initialize().await?;
        if !self.sessionless {
            // The new session was pushed last; it takes the forgotten one's place.
            self.sessions.swap_remove(slot);
            self.current = slot;
        }
        Ok(())
    }

    async fn open_session(&mut self) -> Result<(), ErrorKind> {
        let init = format!(
            r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{}","capabilities":{{}},"clientInfo":{{"name":"ringmux-load","version":"{}"}}}}}}"#,
            self.version,
            env!("CARGO_PKG_VERSION")
        );
        let before = self.sessions.len();
        self.request(init.as_bytes(), "initialize", None).await?;
        if self.sessions.len() == before {
            // No Mcp-Session-Id: the server keeps no sessions (the spec lets it).
            self.sessions.push(String::new());
            self.current = before;
        }
        #[derive(serde::Deserialize)]
        struct Init {
            #[serde(rename = "protocolVersion")]
            version: String,
        }
        let init: Init = serde_json::from_slice(&self.result).map_err(protocol)?;
        self.version = init.version;
        self.initializing = false;
        self.timed(
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            "notifications/initialized",
            None,
            true,
        )
        .await
    }

    /// Sends a request and reads its answer; `Ok` when it is a JSON-RPC result (kept in
    /// `self.result`). `method` and `name` (the tool, prompt or resource the request names)
    /// go into the 2026-07-28 `Mcp-Method`/`Mcp-Name` headers when sessionless.
    pub async fn request(
        &mut self,
        body: &[u8],
        method: &str,
        name: Option<&str>,
    ) -> Result<(), ErrorKind> {
        self.timed(body, method, name, false).await
    }

    /// One exchange within the request timeout (`notification`: answered 202, no result).
    async fn timed(
        &mut self,
        body: &[u8],
        method: &str,
        name: Option<&str>,
        notification: bool,
    ) -> Result<(), ErrorKind> {
        let limit = self.timeout;
        let exchange = self.exchange(body, method, name, notification);
        match monoio::time::timeout(limit, exchange).await {
            Ok(r) => r,
            Err(_) => Err(ErrorKind::Timeout),
        }
    }

    async fn exchange(
        &mut self,
        body: &[u8],
        method: &str,
        name: Option<&str>,
        notification: bool,
    ) -> Result<(), ErrorKind> {
        self.wbuf.clear();
        let mut headers: [(&str, &[u8]); 5] = [
            ("content-type", b"application/json"),
            ("accept", b"application/json, text/event-stream"),
            ("mcp-protocol-version", self.version.as_bytes()),
            ("", b""),
            ("", b""),
        ];
        let mut n = 3;
        if self.sessionless {
            headers[n] = ("mcp-method", method.as_bytes());
            n += 1;
            if let Some(name) = name {
                headers[n] = ("mcp-name", name.as_bytes());
                n += 1;
            }
        } else if let (false, Some(id)) = (self.initializing, self.sessions.get(self.current)) {
            if !id.is_empty() {
                headers[n] = ("mcp-session-id", id.as_bytes());
                n += 1;
            }
        }
        http::write_request_head(
            &mut self.wbuf,
            "POST",
            &self.endpoint.path,
            &self.endpoint.authority,
            Some(body.len()),
            &headers[..n],
        );
        self.wbuf.extend_from_slice(body);
        let buf = std::mem::take(&mut self.wbuf);
        let (res, buf) = self.stream.write_all(buf, None).await;
        self.wbuf = buf;
        res.map_err(|_| ErrorKind::Connection)?;

        let head = loop {
            if let Some(h) = http::parse_response(&self.rbuf, MAX_HEAD).map_err(protocol)? {
                break h;
            }
            self.fill().await?;
        };
        if let (true, Some(r)) = (self.initializing, &head.session_id) {
            let id = std::str::from_utf8(&self.rbuf[r.clone()]).map_err(protocol)?;
            self.sessions.push(id.to_owned());
            self.current = self.sessions.len() - 1;
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
        let buf = std::mem::take(&mut self.rbuf);
        let (res, buf) = self
            .stream
            .read_more(buf, READ_CHUNK / 4, Some(self.timeout))
            .await;
        self.rbuf = buf;
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
