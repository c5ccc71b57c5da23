//! The HTTP/1.1 client under the backend pools: connecting, writing a request, reading the
//! response head, and the body as a whole JSON body or an SSE stream handed out event by
//! event (never buffered to the end), with the backend's timeouts and deadline; idle
//! connections go back to their pool.

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use ringmux_core::http::{self, chunked::ChunkedDecoder, BodyKind, ResponseHead};
use ringmux_core::jsonrpc;
use ringmux_core::sse::{Event, SseDecoder};

use super::upstream::{Pool, UpstreamError};
use crate::io::{consume, read_more};
use crate::tls::Stream;
use futures_util::StreamExt;

/// Largest response head accepted from a backend.
const MAX_HEAD: usize = 64 << 10;

/// Idle connections kept per backend per shard; more are closed when returned.
const MAX_IDLE: usize = 64;

/// How long a TLS record ringmux must send while reading a body (a key update's answer) may
/// take to be written.
const TLS_REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Read granularity.
const READ_CHUNK: usize = 16 << 10;

/// One pooled connection with its reusable buffers.
pub struct Conn {
    stream: crate::tls::Stream<rustls::ClientConnection>,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
}

/// What ringmux asks of a backend, whatever its transport (Streamable HTTP's POST, GET and
/// DELETE; a child actor's request, listen and detach).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// A message to the backend (session).
    Send,
    /// Open (or resume) the backend session's stream of unprompted messages.
    Listen,
    /// End the backend session.
    End,
}

impl Verb {
    pub fn http_method(self) -> &'static str {
        match self {
            Verb::Send => "POST",
            Verb::Listen => "GET",
            Verb::End => "DELETE",
        }
    }
}

/// How a backend answered, whatever its transport: an HTTP backend's status is mapped here,
/// once ([`Status::of_http`]); a child actor answers in these terms directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Answered: the body is the answer (HTTP 200).
    Ok,
    /// Taken, with nothing to answer (a notification or a client's answer; HTTP 202).
    Accepted,
    /// The backend session named is unknown to the backend: expired (HTTP 404; 400 from some
    /// servers).
    SessionGone,
    /// The backend offers no stream of unprompted messages (HTTP 405 to a GET).
    NoStream,
    /// Refused otherwise, with the HTTP status it gave.
    Refused(u16),
}

impl Status {
    /// An HTTP backend's status for `verb`; `named_session`: the request named a backend
    /// session (only then do 404 and 400 mean it is gone).
    pub fn of_http(code: u16, verb: Verb, named_session: bool) -> Status {
        match code {
            200 => Status::Ok,
            202 => Status::Accepted,
            // 404 is the spec's "session expired"; some servers answer 400 instead.
            404 | 400 if named_session => Status::SessionGone,
            405 if verb == Verb::Listen => Status::NoStream,
            code => Status::Refused(code),
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Ok => f.write_str("a success"),
            Status::Accepted => f.write_str("accepted, without an answer"),
            Status::SessionGone => f.write_str("session not found"),
            Status::NoStream => f.write_str("no stream"),
            Status::Refused(code) => write!(f, "HTTP {code}"),
        }
    }
}

/// A backend's answer.
pub struct Response {
    pub status: Status,
    pub session_id: Option<String>,
    pub body: Body,
}

pub enum Body {
    /// Whole body (JSON, or empty for 202).
    Full(Vec<u8>),
    /// An SSE stream, read event by event (boxed: it carries the connection and decoders).
    Events(Box<EventStream>),
}

impl Pool {
    fn put_back(&self, mut conn: Conn) {
        crate::io::trim(&mut conn.rbuf, READ_CHUNK);
        crate::io::trim(&mut conn.wbuf, 1024);
        let mut idle = self.idle.borrow_mut();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    async fn connect(&self) -> Result<Conn, UpstreamError> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in &self.cfg.addrs {
            match monoio::time::timeout(self.cfg.connect_timeout, TcpStream::connect_addr(*addr))
                .await
            {
                Ok(Ok(stream)) => {
                    stream.set_nodelay(true).ok();
                    let stream = match &self.tls {
                        None => Stream::Plain(stream),
                        // A failed handshake tries the next address, as a failed connect does.
                        Some(tls) => match self.handshake(stream, tls).await {
                            Ok(stream) => stream,
                            Err(e) => {
                                last = e;
                                continue;
                            }
                        },
                    };
                    return Ok(Conn {
                        stream,
                        rbuf: Vec::with_capacity(READ_CHUNK),
                        wbuf: Vec::with_capacity(1024),
                    });
                }
                Ok(Err(e)) => last = e,
                Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
            }
        }
        Err(UpstreamError::Connect(last))
    }

    /// TLS toward an `https://` backend, its handshake within the connect timeout.
    async fn handshake(
        &self,
        tcp: TcpStream,
        tls: &Result<std::sync::Arc<rustls::ClientConfig>, String>,
    ) -> io::Result<Stream<rustls::ClientConnection>> {
        let cfg = tls.as_ref().map_err(|e| io::Error::other(e.clone()))?;
        let name = self.cfg.tls.as_ref().expect("https").server_name.as_str();
        let session = rustls::ClientConnection::new(cfg.clone(), crate::tls::server_name(name)?)
            .map_err(io::Error::other)?;
        let mut conn = crate::tls::TlsConn::new(tcp, session, Vec::new());
        let timeout = self.cfg.connect_timeout;
        match monoio::time::timeout(timeout, conn.handshake(Some(timeout))).await {
            Ok(Ok(())) => Ok(Stream::Tls(Box::new(conn))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }

    pub(super) async fn request_inner(
        self: &Rc<Self>,
        out: &Outgoing<'_>,
    ) -> Result<Response, UpstreamError> {
        let pooled = self.idle.borrow_mut().pop();
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect().await?,
        };
        match self.exchange(&mut conn, out).await {
            Ok((head, sent)) => self.finish(conn, head, sent, out).await,
            Err(Attempt::Stale) if reused => {
                let mut fresh = self.connect().await?;
                match self.exchange(&mut fresh, out).await {
                    Ok((head, sent)) => self.finish(fresh, head, sent, out).await,
                    Err(Attempt::Stale) => Err(UpstreamError::Dropped),
                    Err(Attempt::Failed(e)) => Err(e),
                }
            }
            Err(Attempt::Stale) => Err(UpstreamError::Dropped),
            Err(Attempt::Failed(e)) => Err(e),
        }
    }

    /// Writes the request and reads the response head; returns it with the time the request
    /// was sent (from which its deadline counts).
    async fn exchange(
        &self,
        conn: &mut Conn,
        out: &Outgoing<'_>,
    ) -> Result<(ResponseHead, Instant), Attempt> {
        let mut w = std::mem::take(&mut conn.wbuf);
        w.clear();
        let has_body = out.verb == Verb::Send;
        let accept: &[u8] = if has_body {
            b"application/json, text/event-stream"
        } else {
            b"text/event-stream"
        };
        let mut extra: [(&str, &[u8]); 10] = [
            ("accept", accept),
            ("mcp-protocol-version", out.protocol_version.as_bytes()),
            ("", b""),
            ("", b""),
            ("", b""),
            ("", b""),
            ("", b""),
            ("", b""),
            ("", b""),
            ("", b""),
        ];
        let mut n = 2;
        // The backend's own credential (`credentials:`); a client's is never passed on.
        if let Some((header, value)) = self
            .cfg
            .credentials
            .as_ref()
            .and_then(|c| Some((c.header.as_str(), c.value.as_ref()?)))
        {
            extra[n] = (header, value.0.as_bytes());
            n += 1;
        }
        for (name, value) in [
            (
                "content-type",
                has_body.then_some(b"application/json".as_slice()),
            ),
            ("mcp-session-id", out.session.map(str::as_bytes)),
            ("last-event-id", out.last_event_id.map(str::as_bytes)),
            ("mcp-method", out.mcp_method.map(str::as_bytes)),
            ("mcp-name", out.mcp_name.map(str::as_bytes)),
            ("traceparent", out.trace.map(|t| t.parent)),
            (
                "tracestate",
                out.trace.and_then(|t| t.state).map(str::as_bytes),
            ),
        ] {
            if let Some(v) = value {
                extra[n] = (name, v);
                n += 1;
            }
        }
        http::write_request_head(
            &mut w,
            out.verb.http_method(),
            &self.cfg.path,
            &self.cfg.authority,
            has_body.then_some(out.body.len()),
            &extra[..n],
        );
        w.extend_from_slice(out.body);
        // Each side's own I/O, not `Stream`'s: one future layer less on the plain path.
        let (res, w) = match &mut conn.stream {
            Stream::Plain(s) => monoio::io::AsyncWriteRentExt::write_all(s, w).await,
            Stream::Tls(t) => {
                let res = Box::pin(t.write_all(&w, None)).await;
                (res.map(|()| w.len()), w)
            }
        };
        conn.wbuf = w;
        if let Err(e) = res {
            return Err(stale_or(e));
        }
        conn.rbuf.clear();
        // The whole head within the request timeout: a trickle does not extend it. The send
        // time is also where the request's deadline counts from.
        let sent = Instant::now();
        let until = sent + self.cfg.request_timeout;
        let mut first = true;
        loop {
            let buf = std::mem::take(&mut conn.rbuf);
            let timeout = if std::mem::take(&mut first) {
                self.cfg.request_timeout
            } else {
                until.saturating_duration_since(Instant::now())
            };
            let read = match &mut conn.stream {
                Stream::Plain(s) => {
                    monoio::time::timeout(timeout, read_more(s, buf, READ_CHUNK)).await
                }
                Stream::Tls(t) => {
                    let read = t.read_more(buf, READ_CHUNK, Some(self.cfg.request_timeout));
                    monoio::time::timeout(timeout, Box::pin(read)).await
                }
            };
            let (res, buf) = match read {
                Ok(r) => r,
                Err(_) => return Err(Attempt::Failed(UpstreamError::Timeout)),
            };
            conn.rbuf = buf;
            match res {
                Ok(0) if conn.rbuf.is_empty() => return Err(Attempt::Stale),
                Ok(0) => {
                    return Err(Attempt::Failed(UpstreamError::Protocol(
                        "connection closed inside the response head".into(),
                    )))
                }
                Ok(_) => {}
                Err(e) if conn.rbuf.is_empty() => return Err(stale_or(e)),
                Err(e) => return Err(Attempt::Failed(e.into())),
            }
            match http::parse_response(&conn.rbuf, MAX_HEAD) {
                Ok(Some(head)) => return Ok((head, sent)),
                Ok(None) => continue,
                Err(e) => return Err(Attempt::Failed(UpstreamError::Protocol(e.to_string()))),
            }
        }
    }

    async fn finish(
        self: &Rc<Self>,
        conn: Conn,
        head: ResponseHead,
        sent: Instant,
        out: &Outgoing<'_>,
    ) -> Result<Response, UpstreamError> {
        let (verb, named_session) = (out.verb, out.session.is_some());
        let deadline = sent + self.cfg.request_deadline;
        let session_id = head
            .session_id
            .as_ref()
            .map(|r| String::from_utf8_lossy(&conn.rbuf[r.clone()]).into_owned());
        let sse = head.is_event_stream(&conn.rbuf) && (200..300).contains(&head.status);
        let status = Status::of_http(head.status, verb, named_session);
        let max = self.cfg.max_response;
        let mut reader = BodyReader::new(conn, &head, max);
        if sse {
            return Ok(Response {
                status,
                session_id,
                body: Body::Events(Box::new(EventStream {
                    source: Source::Http {
                        reader,
                        sse: SseDecoder::new(max),
                        held: crate::bufs::Held::default(),
                    },
                    pool: self.clone(),
                    idle: Some(self.cfg.request_timeout),
                    deadline: Some(deadline),
                })),
            });
        }
        let mut body = crate::bufs::take();
        // (A body that came with its head, the common case, reads no clock.)
        let wait = || self.wait_before(deadline).map(Some);
        // Held while the body is read; the connection writes it out soon after.
        let mut held = crate::bufs::Held::default();
        loop {
            match reader.next_into(&mut body, wait).await {
                Ok(true) => held.resize(body.len())?,
                Ok(false) => break,
                Err(e) => return Err(self.past(deadline, e)),
            }
        }
        if let Some(conn) = reader.into_reusable() {
            self.put_back(conn);
        }
        Ok(Response {
            status,
            session_id,
            body: Body::Full(body),
        })
    }
}

/// One request as written to a backend.
pub(super) struct Outgoing<'a> {
    pub(super) verb: Verb,
    pub(super) session: Option<&'a str>,
    pub(super) protocol_version: &'a str,
    pub(super) body: &'a [u8],
    pub(super) last_event_id: Option<&'a str>,
    /// 2026-07-28 routing headers.
    pub(super) mcp_method: Option<&'a str>,
    pub(super) mcp_name: Option<&'a str>,
    /// W3C trace context for the backend (the gateway's span of this exchange).
    pub(super) trace: Option<super::upstream::Trace<'a>>,
    /// The era probe: only a definite answer counts as one for the circuit breaker.
    pub(super) era_probe: bool,
}

enum Attempt {
    /// The connection died before any response byte: safe to retry on a fresh one.
    Stale,
    Failed(UpstreamError),
}

fn stale_or(e: io::Error) -> Attempt {
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => Attempt::Stale,
        _ => Attempt::Failed(e.into()),
    }
}

/// Reads a response body of any framing, piece by piece.
pub(super) struct BodyReader {
    conn: Conn,
    /// The backend's `max_response_bytes`.
    max: usize,
    kind: BodyKind,
    /// Body bytes still expected (Length framing).
    remaining: usize,
    dechunk: ChunkedDecoder,
    done: bool,
}

impl BodyReader {
    fn new(mut conn: Conn, head: &ResponseHead, max: usize) -> Self {
        consume(&mut conn.rbuf, head.head_len);
        let (remaining, done) = match head.body {
            BodyKind::Empty => (0, true),
            BodyKind::Length(n) => (n, false),
            BodyKind::Chunked | BodyKind::UntilClose => (0, false),
        };
        BodyReader {
            conn,
            max,
            kind: head.body,
            remaining,
            dechunk: ChunkedDecoder::new(),
            done,
        }
    }

    /// Appends the next piece of body to `out`. `Ok(false)`: the body is complete.
    /// `timeout` is asked only before a read (a body already buffered costs no clock read).
    async fn next_into(
        &mut self,
        out: &mut Vec<u8>,
        mut timeout: impl FnMut() -> Result<Option<Duration>, UpstreamError>,
    ) -> Result<bool, UpstreamError> {
        loop {
            if self.done {
                return Ok(false);
            }
            if !self.conn.rbuf.is_empty() {
                let before = out.len();
                match self.kind {
                    BodyKind::Length(_) => {
                        let take = self.remaining.min(self.conn.rbuf.len());
                        if out.len() + take > self.max {
                            return Err(UpstreamError::TooLarge(self.max));
                        }
                        out.extend_from_slice(&self.conn.rbuf[..take]);
                        consume(&mut self.conn.rbuf, take);
                        self.remaining -= take;
                        self.done = self.remaining == 0;
                    }
                    BodyKind::Chunked => {
                        let used = self
                            .dechunk
                            .decode(&self.conn.rbuf, out, self.max)
                            .map_err(|e| match e {
                                http::HeadError::BodyTooLarge => UpstreamError::TooLarge(self.max),
                                e => UpstreamError::Protocol(e.to_string()),
                            })?;
                        consume(&mut self.conn.rbuf, used);
                        self.done = self.dechunk.is_done();
                    }
                    BodyKind::UntilClose => {
                        if out.len() + self.conn.rbuf.len() > self.max {
                            return Err(UpstreamError::TooLarge(self.max));
                        }
                        out.extend_from_slice(&self.conn.rbuf);
                        self.conn.rbuf.clear();
                    }
                    BodyKind::Empty => self.done = true,
                }
                if out.len() > before || self.done {
                    return Ok(!self.done || out.len() > before);
                }
            }
            let timeout = timeout()?;
            let buf = std::mem::take(&mut self.conn.rbuf);
            let (res, buf) = match &mut self.conn.stream {
                Stream::Plain(s) => {
                    let read = read_more(s, buf, READ_CHUNK);
                    match timeout {
                        Some(t) => monoio::time::timeout(t, read)
                            .await
                            .map_err(|_| UpstreamError::Timeout)?,
                        None => read.await,
                    }
                }
                Stream::Tls(t) => {
                    let read = Box::pin(t.read_more(buf, READ_CHUNK, Some(TLS_REPLY_TIMEOUT)));
                    match timeout {
                        Some(t) => monoio::time::timeout(t, read)
                            .await
                            .map_err(|_| UpstreamError::Timeout)?,
                        None => read.await,
                    }
                }
            };
            self.conn.rbuf = buf;
            match res? {
                0 if self.kind == BodyKind::UntilClose => {
                    self.done = true;
                    return Ok(false);
                }
                0 => {
                    return Err(UpstreamError::Protocol(
                        "connection closed inside the body".into(),
                    ))
                }
                _ => {}
            }
        }
    }

    /// The connection, if the body ended cleanly and the framing allows reuse.
    fn into_reusable(self) -> Option<Conn> {
        (self.done && self.kind != BodyKind::UntilClose && self.conn.rbuf.is_empty())
            .then_some(self.conn)
    }
}

/// A backend's SSE response, event by event. The connection returns to the pool when the
/// stream ends cleanly; dropping it early closes the connection.
pub struct EventStream {
    pub(super) source: Source,
    pub(super) pool: Rc<Pool>,
    /// Longest wait for the next piece (`None`: a standalone stream, quiet for as long as
    /// the backend has nothing to say).
    pub(super) idle: Option<Duration>,
    /// When a call's stream must have ended (`None`: a standalone stream).
    pub(super) deadline: Option<Instant>,
}

/// Where a stream's events come from.
// The stream is boxed as a whole (`Body::Events`), so the smaller variant wastes nothing
// worth a second allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Source {
    /// An SSE response body; `held`: what its decoder buffers, counted in the shard's
    /// response budget.
    Http {
        reader: BodyReader,
        sse: SseDecoder,
        held: crate::bufs::Held,
    },
    /// A stdio child's messages, one per event (`first` arrived already).
    Messages {
        first: Option<Vec<u8>>,
        rx: futures_channel::mpsc::UnboundedReceiver<Vec<u8>>,
    },
}

impl EventStream {
    /// The next event; `None` at the end of the stream. Each wait is bounded by the backend's
    /// request timeout.
    pub async fn next(&mut self) -> Result<Option<Event>, UpstreamError> {
        let deadline = self.deadline;
        self.next_inner().await.map_err(|e| match deadline {
            Some(d) => self.pool.past(d, e),
            None => e,
        })
    }

    async fn next_inner(&mut self) -> Result<Option<Event>, UpstreamError> {
        let pool = &self.pool;
        let deadline = self.deadline;
        // Each wait: the idle timeout, cut short by the call's deadline.
        let wait = |idle: Option<Duration>| match (idle, deadline) {
            (Some(_), Some(d)) => pool.wait_before(d).map(Some),
            (idle, _) => Ok(idle),
        };
        let (reader, sse, held) = match &mut self.source {
            Source::Http { reader, sse, held } => (reader, sse, held),
            Source::Messages { first, rx } => {
                let data = match first.take() {
                    Some(m) => Some(m),
                    None => match wait(self.idle)? {
                        Some(t) => monoio::time::timeout(t, rx.next())
                            .await
                            .map_err(|_| UpstreamError::Timeout)?,
                        None => rx.next().await,
                    },
                };
                return Ok(data.map(|data| Event {
                    id: None,
                    event: None,
                    data,
                    retry: None,
                }));
            }
        };
        let mut piece = Vec::new();
        loop {
            let ev = sse.next_event().map_err(|e| UpstreamError::TooLarge(e.0))?;
            held.resize(sse.buffered())?;
            if let Some(ev) = ev {
                return Ok(Some(ev));
            }
            piece.clear();
            let idle = self.idle;
            if !reader.next_into(&mut piece, || wait(idle)).await? && piece.is_empty() {
                return Ok(None);
            }
            sse.feed(&piece);
            held.resize(sse.buffered())?;
        }
    }

    /// Waits for events without a time limit (a GET stream).
    pub fn wait_forever(&mut self) {
        self.idle = None;
        self.deadline = None;
    }

    /// A stream that resumes `earlier` (SEP-1699) answers by the same deadline.
    pub fn resumes(&mut self, earlier: &EventStream) {
        self.deadline = earlier.deadline;
    }

    /// Ends the stream; the connection is reused when the body was read to its end.
    pub fn finish(self) {
        if let Source::Http { reader, .. } = self.source {
            if let Some(conn) = reader.into_reusable() {
                self.pool.put_back(conn);
            }
        }
    }
}

/// Reads a response body to its final JSON-RPC message: the whole JSON body, or the SSE event that
/// carries a response (notifications before it are dropped: callers of this need none).
pub async fn final_message(body: Body) -> Result<Vec<u8>, UpstreamError> {
    match body {
        Body::Full(b) => Ok(b),
        Body::Events(mut stream) => {
            while let Some(ev) = stream.next().await? {
                if ev.data.is_empty() {
                    continue;
                }
                if let Ok(m) = jsonrpc::parse(&ev.data) {
                    if m.kind == jsonrpc::Kind::Response {
                        stream.finish();
                        return Ok(ev.data);
                    }
                }
            }
            stream.finish();
            Err(UpstreamError::Protocol(
                "stream ended without a response".into(),
            ))
        }
    }
}

/// Reads a call's SSE answer to the response to request `id`: notifications and answers to
/// other requests are skipped (parsed once each, the check included).
pub async fn final_answer(
    mut stream: Box<EventStream>,
    id: jsonrpc::Raw<'_>,
) -> Result<Vec<u8>, UpstreamError> {
    while let Some(ev) = stream.next().await? {
        let answers = jsonrpc::parse(&ev.data).is_ok_and(|m| {
            m.kind == jsonrpc::Kind::Response && m.id.is_some_and(|i| i.same_id(id))
        });
        if answers {
            stream.finish();
            return Ok(ev.data);
        }
    }
    stream.finish();
    Err(UpstreamError::Protocol(
        "stream ended without the response".into(),
    ))
}
