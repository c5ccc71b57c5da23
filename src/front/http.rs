//! A client connection: the only place that touches a client socket. read → decode (head,
//! body) → front-door checks → hand to the owner shard (here or across a hop) → encode → write.

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use monoio::net::TcpStream;
use ringmux_core::http::{self, chunked::ChunkedDecoder, BodyKind, Framing, Method, RequestHead};
use ringmux_core::sse;

use crate::io::{consume, read_more};
use crate::peers::Handoff;
use crate::reply::Reply;
use crate::request::Principal;
use crate::shard::{Base, Shard};
use crate::tls::Stream;

/// A client's connection: plain or TLS.
type ClientStream = crate::tls::Stream<rustls::ServerConnection>;

const READ_CHUNK: usize = 16 << 10;
/// How long, and how much, a connection being closed after an error is drained.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1 << 20;

/// Serves one accepted client connection until it closes, errs, idles out, or is handed to
/// another shard.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream) {
    close_on_exec(&stream);
    if shard.open_conns.get() >= shard.conn_share {
        // Over this shard's share: close at once (the client sees the connection end rather
        // than waiting in the backlog), and keep the descriptors for existing sessions.
        shard.metrics.connections_refused.add(1);
        shard.warn_limited(
            crate::shard::Warned::ConnLimit,
            &"client connection limit reached (limits.max_connections): closing new connections",
        );
        return;
    }
    stream.set_nodelay(true).ok();
    shard.metrics.connections.add(1);
    // The connection holds what every config generation shares; each of its requests runs
    // in the generation current when it arrives ([`crate::reload`]).
    let write_timeout = shard.cfg.limits.write_timeout;
    let base = shard.base();
    drop(shard);
    let shard = &base;
    let open = OpenConn::new(shard, &stream);
    let (stream, peer) = match &shard.tls {
        None => (ClientStream::Plain(stream), None),
        Some(listener) => {
            let tls = match rustls::ServerConnection::new(listener.config()) {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::error!("TLS session could not start: {e}");
                    return;
                }
            };
            let mut conn = crate::tls::TlsConn::new(stream, tls, Vec::new());
            let handshake = conn.handshake(Some(write_timeout));
            match monoio::time::timeout(listener.handshake_timeout, handshake).await {
                Ok(Ok(())) => {}
                failed => {
                    shard.metrics.tls_handshake_failures.add(1);
                    match failed {
                        Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                        _ => tracing::debug!("TLS handshake timed out (tls.handshake_timeout_ms)"),
                    }
                    return;
                }
            }
            let peer = crate::tls::peer_principal(&conn.tls);
            (ClientStream::Tls(Box::new(conn)), peer)
        }
    };
    let rbuf = Vec::with_capacity(READ_CHUNK);
    serve_conn(shard, open, stream, rbuf, false, peer).await;
}

/// The client's address (one getpeername(2)).
fn peer_ip(stream: &ClientStream) -> Option<std::net::IpAddr> {
    let tcp = match stream {
        crate::tls::Stream::Plain(s) => s,
        crate::tls::Stream::Tls(t) => &t.tcp,
    };
    tcp.peer_addr().ok().map(|a| a.ip())
}

/// Marks an accepted socket close-on-exec. monoio's io_uring accept passes no flags, so the
/// socket would otherwise be inherited by every stdio child spawned while it is open, and a
/// child could write forged responses to it (or keep it from closing).
fn close_on_exec(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    // SAFETY: F_SETFD on a descriptor this stream owns.
    if unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        tracing::warn!(
            "could not mark a client socket close-on-exec: {}",
            io::Error::last_os_error()
        );
    }
}

/// Serves a connection another shard handed here, starting with the bytes it already read
/// (and, for TLS, its rustls state and the ciphertext rustls had not seen yet).
pub async fn serve_adopted(
    shard: Rc<Shard>,
    stream: TcpStream,
    rbuf: Vec<u8>,
    tls: Option<Box<(rustls::ServerConnection, Vec<u8>)>>,
) {
    let base = shard.base();
    drop(shard);
    let open = OpenConn::new(&base, &stream);
    let (stream, peer) = match tls {
        None => (ClientStream::Plain(stream), None),
        Some(parts) => {
            let (tls, pending) = *parts;
            let peer = crate::tls::peer_principal(&tls);
            let conn = crate::tls::TlsConn::new(stream, tls, pending);
            (ClientStream::Tls(Box::new(conn)), peer)
        }
    };
    serve_conn(&base, open, stream, rbuf, true, peer).await;
}

/// `peer`: the principal of the client's verified certificate, if it sent one.
async fn serve_conn(
    base: &Rc<Base>,
    open: OpenConn<'_>,
    mut stream: ClientStream,
    rbuf: Vec<u8>,
    handed: bool,
    peer: Option<Principal>,
) {
    let shard = base.current();
    // The client's address, when a rule reads it (`request.address`): one getpeername(2)
    // per connection, not per request.
    let address = if shard.wants_address {
        peer_ip(&stream)
    } else {
        None
    };
    let mut conn = Conn {
        rbuf,
        wbuf: Vec::with_capacity(READ_CHUNK),
        chunked: Vec::new(),
        handed,
        keepalive: shard.cfg.streams.keepalive,
        write_timeout: shard.cfg.limits.write_timeout,
        peer,
        address,
        limits: (shard.generation, Reading::of(&shard.cfg.limits)),
    };
    drop(shard);
    let ended = conn.run(base, &mut stream, open.1).await;
    drop(open);
    match ended {
        Ok(Ended::Closed) => {}
        Ok(Ended::HandOff(owner)) => hand_off(base, stream, owner, conn.rbuf),
        Err(e) => tracing::debug!("client connection ended: {e}"),
    }
}

/// Gives the connection to shard `owner`: a duplicate of the socket's descriptor goes through
/// the owner's inbox with the unconsumed bytes (and a TLS connection's rustls state, which is
/// plain memory: the owner goes on with the same session keys), and this shard closes its own
/// descriptor.
fn hand_off(shard: &Base, stream: ClientStream, owner: usize, rbuf: Vec<u8>) {
    use std::os::fd::{AsRawFd, BorrowedFd};
    let (tcp, tls) = match stream {
        ClientStream::Plain(tcp) => (tcp, None),
        ClientStream::Tls(conn) => {
            let (tcp, tls, pending) = conn.into_parts();
            (tcp, Some(Box::new((tls, pending))))
        }
    };
    // SAFETY: `tcp` owns this descriptor and is alive for the borrow, which ends before
    // `tcp` is dropped below.
    let fd = unsafe { BorrowedFd::borrow_raw(tcp.as_raw_fd()) }.try_clone_to_owned();
    drop(tcp);
    match fd {
        Ok(fd) => {
            if shard.peers.hand_off(owner, Handoff { fd, rbuf, tls }) {
                shard.metrics.handoffs_out.add(1);
            }
        }
        Err(e) => tracing::warn!(shard = shard.id, "could not hand a connection over: {e}"),
    }
}

/// Counts a client connection as open on its shard while it lives, and makes it known to the
/// shard's drain ([`crate::drain::Drain`]) by a slot.
struct OpenConn<'a>(&'a Base, usize);

impl<'a> OpenConn<'a> {
    fn new(shard: &'a Base, stream: &TcpStream) -> Self {
        use std::os::fd::AsRawFd;
        shard.open_conns.set(shard.open_conns.get() + 1);
        shard.metrics.open_connections.add(1);
        OpenConn(shard, shard.drain.register(stream.as_raw_fd()))
    }
}

impl Drop for OpenConn<'_> {
    fn drop(&mut self) {
        self.0.drain.unregister(self.1);
        self.0.open_conns.set(self.0.open_conns.get() - 1);
        self.0.metrics.open_connections.sub(1);
    }
}

/// When a request's body must have arrived: `body_timeout` after its head, plus a second per
/// `min_body_rate` bytes received so far. A client trickling bytes gains almost nothing; a
/// large body on a slow but honest link keeps going.
struct BodyClock {
    /// When the body was first found incomplete (a body that came with its head, the common
    /// case, never reads the clock).
    start: std::cell::Cell<Option<Instant>>,
    timeout: Duration,
    min_rate: usize,
}

impl BodyClock {
    fn left(&self, received: usize) -> Duration {
        let start = match self.start.get() {
            Some(s) => s,
            None => {
                let now = Instant::now();
                self.start.set(Some(now));
                now
            }
        };
        let allowed = self.timeout
            + Duration::from_millis((received as u64).saturating_mul(1000) / self.min_rate as u64);
        allowed.saturating_sub(start.elapsed())
    }
}

/// The limits on reading one request ([`ringmux_core::config::Limits`]'s).
#[derive(Clone, Copy)]
struct Reading {
    max_header: usize,
    max_body: usize,
    header_timeout: Duration,
    idle_timeout: Duration,
    body_timeout: Duration,
    min_body_rate: usize,
}

impl Reading {
    #[inline]
    fn of(l: &ringmux_core::config::Limits) -> Reading {
        Reading {
            max_header: l.max_header,
            max_body: l.max_body,
            header_timeout: l.header_timeout,
            idle_timeout: l.idle_timeout,
            body_timeout: l.body_timeout,
            min_body_rate: l.min_body_rate,
        }
    }
}

/// How a connection's loop ended.
enum Ended {
    Closed,
    /// The request at the start of `rbuf` belongs to this shard's session: hand it over.
    HandOff(usize),
}

struct Conn {
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    /// Decoded body of a chunked request (Content-Length bodies are used in place).
    chunked: Vec<u8>,
    /// Whether this connection was handed over before (it is never handed over twice).
    handed: bool,
    /// Quiet time after which a stream gets a keep-alive comment.
    keepalive: Duration,
    /// Longest time one write may take (`limits.write_timeout_ms`).
    write_timeout: Duration,
    /// The principal of the client's verified TLS certificate.
    peer: Option<Principal>,
    /// The client's address (only when a rule reads `request.address`).
    address: Option<std::net::IpAddr>,
    /// The limits on reading a request, and the generation they are of.
    limits: (u64, Reading),
}

/// Where the request body is.
enum BodyAt {
    /// `rbuf[range]`.
    InPlace(std::ops::Range<usize>),
    /// `chunked`.
    Decoded,
}

impl Conn {
    /// `slot`: this connection's in the shard's drain ([`crate::drain::Drain::register`]).
    async fn run(
        &mut self,
        shard: &Rc<Base>,
        stream: &mut ClientStream,
        slot: usize,
    ) -> io::Result<Ended> {
        loop {
            // The bounds on reading the request, from the current generation (a copy, made
            // again after a reload: an idle connection holds no generation while it waits).
            if self.limits.0 != shard.current_generation() {
                let now = shard.current();
                self.limits = (now.generation, Reading::of(&now.cfg.limits));
            }
            let limits = self.limits.1;
            if shard.drain.is_on() && self.rbuf.is_empty() {
                // Shutting down: no request under way on this connection.
                return Ok(Ended::Closed);
            }
            // Head: the idle timeout runs until the first byte; from it, the whole head must
            // arrive by one deadline (reading a byte does not extend it).
            // (The clock is read only when a head is found incomplete: a head that arrives
            // whole, the common case, costs no clock read.)
            let mut deadline: Option<Instant> = None;
            let head = loop {
                match http::parse_request(&self.rbuf, limits.max_header, limits.max_body) {
                    Ok(Some(h)) => break h,
                    Ok(None) => {
                        let started = !self.rbuf.is_empty();
                        if started && deadline.is_none() {
                            deadline = Some(Instant::now() + limits.header_timeout);
                        }
                        let wait = match deadline {
                            Some(d) => d.saturating_duration_since(Instant::now()),
                            None => limits.idle_timeout,
                        };
                        let filled = if started {
                            self.fill(stream, wait).await?
                        } else {
                            // Idle between requests: a shutdown ends this read (crate::drain).
                            shard.drain.set_idle(slot, true);
                            let filled = self.fill(stream, wait).await;
                            shard.drain.set_idle(slot, false);
                            if shard.drain.is_on() && !matches!(filled, Ok(Fill::Data)) {
                                return Ok(Ended::Closed);
                            }
                            filled?
                        };
                        match filled {
                            Fill::Data => {}
                            Fill::Eof => return Ok(Ended::Closed),
                            // An idle keep-alive connection just closes; a started request gets 408.
                            Fill::TimedOut if !started => return Ok(Ended::Closed),
                            Fill::TimedOut => return self.close_with(stream, 408).await,
                        }
                    }
                    Err(e) => return self.close_with(stream, e.status()).await,
                }
            };
            let clock = BodyClock {
                start: std::cell::Cell::new(None),
                timeout: limits.body_timeout,
                min_rate: limits.min_body_rate,
            };
            let (body_at, used) = match self
                .read_body(stream, &head, limits.max_body, &clock)
                .await?
            {
                Ok(b) => b,
                Err(status) => return self.close_with(stream, status).await,
            };
            // The request runs in the generation current now that it has arrived.
            let current = shard.current();
            let shard = &current;
            if shard.wants_address && self.address.is_none() {
                // A reload brought rules that read `request.address`.
                self.address = peer_ip(stream);
            }
            if let Some(owner) = self.hand_off_to(shard, &head) {
                return Ok(Ended::HandOff(owner));
            }
            let reply = {
                let body: &[u8] = match &body_at {
                    BodyAt::InPlace(r) => &self.rbuf[r.clone()],
                    BodyAt::Decoded => &self.chunked,
                };
                super::door::front(
                    shard,
                    &head,
                    &self.rbuf,
                    body,
                    self.peer.as_ref(),
                    self.address,
                )
                .await
            };
            consume(&mut self.rbuf, used);
            // Shutting down: this answer is the connection's last.
            let keep_alive = head.keep_alive && !shard.drain.is_on();
            self.write_reply(stream, reply, keep_alive, &shard.metrics)
                .await?;
            self.trim();
            if !keep_alive {
                return Ok(Ended::Closed);
            }
        }
    }

    /// Gives back what one large request grew the buffers to, so that an idle connection
    /// holds `READ_CHUNK`-sized buffers, not the largest message it ever carried.
    fn trim(&mut self) {
        crate::io::trim(&mut self.rbuf, READ_CHUNK);
        crate::io::trim(&mut self.wbuf, READ_CHUNK);
        crate::io::trim(&mut self.chunked, 0);
    }

    async fn close_with(&mut self, stream: &mut ClientStream, status: u16) -> io::Result<Ended> {
        self.write_status(stream, status, false).await?;
        Ok(Ended::Closed)
    }

    /// The shard to hand this connection to: the owner of the request's session, when that is
    /// another shard and the connection has not been handed over before. Everything else
    /// (front-door checks included) is left to the owner, which parses the request again.
    fn hand_off_to(&self, shard: &Shard, head: &RequestHead) -> Option<usize> {
        if !shard.cfg.handoff || self.handed || shard.cfg.shards == 1 {
            return None;
        }
        if !matches!(head.method, Method::Post | Method::Delete | Method::Get)
            || shard.route_of(&self.rbuf[head.path.clone()]).is_none()
        {
            return None;
        }
        let owner = shard.owner_of(super::door::session_id(&self.rbuf, head).ok()??);
        (owner != shard.id).then_some(owner)
    }

    /// Reads more into `rbuf`. On timeout the buffer went with the cancelled read, so `rbuf`
    /// is empty afterwards: callers only time out when they are about to close anyway.
    async fn fill(&mut self, stream: &mut ClientStream, wait: Duration) -> io::Result<Fill> {
        let buf = std::mem::take(&mut self.rbuf);
        // Each side's own read, not `Stream::read_more`: one future layer less on the plain
        // path (callgrind: 440 instructions per proxied call over the four I/O sites).
        let read = match stream {
            Stream::Plain(s) => monoio::time::timeout(wait, read_more(s, buf, READ_CHUNK)).await,
            Stream::Tls(t) => {
                let read = t.read_more(buf, READ_CHUNK, Some(self.write_timeout));
                monoio::time::timeout(wait, Box::pin(read)).await
            }
        };
        match read {
            Ok((res, buf)) => {
                self.rbuf = buf;
                Ok(if res? == 0 { Fill::Eof } else { Fill::Data })
            }
            Err(_) => Ok(Fill::TimedOut),
        }
    }

    /// Reads the whole body. Returns where it is and how many `rbuf` bytes the request used,
    /// or the status to refuse it with.
    async fn read_body(
        &mut self,
        stream: &mut ClientStream,
        head: &RequestHead,
        max_body: usize,
        clock: &BodyClock,
    ) -> io::Result<Result<(BodyAt, usize), u16>> {
        match head.body {
            BodyKind::Empty | BodyKind::UntilClose => Ok(Ok((
                BodyAt::InPlace(head.head_len..head.head_len),
                head.head_len,
            ))),
            BodyKind::Length(n) => {
                let end = head.head_len + n;
                while self.rbuf.len() < end {
                    let wait = clock.left(self.rbuf.len() - head.head_len);
                    match self.fill(stream, wait).await? {
                        Fill::Data => {}
                        Fill::Eof => return Err(io::ErrorKind::UnexpectedEof.into()),
                        Fill::TimedOut => return Ok(Err(408)),
                    }
                }
                Ok(Ok((BodyAt::InPlace(head.head_len..end), end)))
            }
            BodyKind::Chunked => {
                self.chunked.clear();
                let mut decoder = ChunkedDecoder::new();
                let mut pos = head.head_len;
                loop {
                    match decoder.decode(&self.rbuf[pos..], &mut self.chunked, max_body) {
                        Ok(n) => pos += n,
                        Err(e) => return Ok(Err(e.status())),
                    }
                    if decoder.is_done() {
                        return Ok(Ok((BodyAt::Decoded, pos)));
                    }
                    let wait = clock.left(self.rbuf.len() - head.head_len);
                    match self.fill(stream, wait).await? {
                        Fill::Data => {}
                        Fill::Eof => return Err(io::ErrorKind::UnexpectedEof.into()),
                        Fill::TimedOut => return Ok(Err(408)),
                    }
                }
            }
        }
    }

    /// Writes `wbuf` out. A client that takes no byte of it for the write timeout is cut
    /// off (a slow reader that makes progress is not: the timeout is per write). On a
    /// timeout the buffer went with the cancelled write; the connection ends anyway.
    async fn flush(&mut self, stream: &mut ClientStream) -> io::Result<()> {
        use monoio::buf::IoBuf;
        use monoio::io::AsyncWriteRent;
        let s = match stream {
            Stream::Plain(s) => s,
            Stream::Tls(t) => {
                // Boxed: the TLS write's future must not make the plain one's larger.
                let res = Box::pin(t.write_all(&self.wbuf, Some(self.write_timeout))).await;
                self.wbuf.clear();
                return res;
            }
        };
        // `ringmux_tls_io::write_all`'s loop, written out: awaiting that function here cost
        // 80-130 more instructions per proxied call (bench/scripts/callgrind-call.sh).
        let mut buf = std::mem::take(&mut self.wbuf);
        let mut pos = 0;
        while pos < buf.len() {
            let end = buf.len();
            let write = s.write(buf.slice(pos..end));
            let (res, slice) = monoio::time::timeout(self.write_timeout, write)
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client read nothing for limits.write_timeout_ms",
                    )
                })?;
            buf = slice.into_inner();
            match res {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => pos += n,
                Err(e) => return Err(e),
            }
        }
        buf.clear();
        self.wbuf = buf;
        Ok(())
    }

    /// Answers an error and closes. The rest of what the client sends is read and discarded
    /// for a bounded time first: closing with unread bytes would reset the connection and the
    /// client could lose the answer.
    async fn write_status(
        &mut self,
        stream: &mut ClientStream,
        status: u16,
        keep_alive: bool,
    ) -> io::Result<()> {
        http::write_response(&mut self.wbuf, status, None, b"", keep_alive, &[]);
        self.flush(stream).await?;
        if keep_alive {
            return Ok(());
        }
        stream.shutdown(Some(self.write_timeout)).await.ok();
        let deadline = monoio::time::Instant::now() + LINGER;
        let mut drained = 0;
        while drained < LINGER_BYTES {
            self.rbuf.clear();
            let left = deadline.saturating_duration_since(monoio::time::Instant::now());
            match self.fill(stream, left).await? {
                Fill::Data => drained += self.rbuf.len(),
                Fill::Eof | Fill::TimedOut => break,
            }
        }
        Ok(())
    }

    async fn write_reply(
        &mut self,
        stream: &mut ClientStream,
        reply: Reply,
        keep_alive: bool,
        metrics: &crate::metrics::ShardMetrics,
    ) -> io::Result<()> {
        match reply {
            Reply::Status(status) => {
                let extra: &[(&str, &[u8])] = if status == 405 {
                    &[("allow", b"GET, POST, DELETE")]
                } else {
                    &[]
                };
                http::write_response(&mut self.wbuf, status, None, b"", keep_alive, extra);
                self.flush(stream).await
            }
            Reply::Json {
                status,
                body,
                session,
            } => {
                let sid;
                let extra: &[(&str, &[u8])] = match &session {
                    Some(s) => {
                        sid = [("mcp-session-id", s.as_bytes())];
                        &sid
                    }
                    None => &[],
                };
                http::write_response(
                    &mut self.wbuf,
                    status,
                    Some("application/json"),
                    &body,
                    keep_alive,
                    extra,
                );
                crate::bufs::give(body);
                // A large answer stays in the shard's response budget until the client took
                // it: slow readers holding answers make new ones wait for room, so the budget
                // bounds answers in memory, not only those being read.
                let mut held = crate::bufs::Held::default();
                if self.wbuf.len() > crate::io::KEEP_CAPACITY {
                    held.force(self.wbuf.len());
                }
                self.flush(stream).await
            }
            Reply::Challenge {
                status,
                www_authenticate,
                body,
            } => {
                http::write_response(
                    &mut self.wbuf,
                    status,
                    Some("application/json"),
                    &body,
                    keep_alive,
                    &[("www-authenticate", www_authenticate.as_bytes())],
                );
                self.flush(stream).await
            }
            Reply::Limited {
                retry_after_s,
                body,
            } => {
                let mut secs = [0u8; 20];
                let n = {
                    use std::io::Write as _;
                    let mut w = &mut secs[..];
                    let _ = write!(w, "{retry_after_s}");
                    20 - w.len()
                };
                http::write_response(
                    &mut self.wbuf,
                    429,
                    Some("application/json"),
                    &body,
                    keep_alive,
                    &[("retry-after", &secs[..n])],
                );
                self.flush(stream).await
            }
            Reply::Text {
                status,
                content_type,
                body,
            } => {
                http::write_response(
                    &mut self.wbuf,
                    status,
                    Some(content_type),
                    body.as_bytes(),
                    keep_alive,
                    &[],
                );
                self.flush(stream).await
            }
            Reply::Stream(mut rx) => {
                http::write_response_head(
                    &mut self.wbuf,
                    200,
                    Some("text/event-stream"),
                    Framing::Chunked,
                    keep_alive,
                    &[("cache-control", b"no-cache")],
                );
                self.flush(stream).await?;
                let _open = crate::metrics::Open::new(&metrics.client_streams);
                // A quiet stream gets a comment now and then: proxies keep it open, and a
                // client that went away is found (the write fails) rather than kept forever.
                let keepalive = self.keepalive;
                loop {
                    match monoio::time::timeout(keepalive, rx.next()).await {
                        Ok(Some(events)) => http::write_chunk(&mut self.wbuf, &events),
                        Ok(None) => break,
                        Err(_) => http::write_chunk(&mut self.wbuf, sse::KEEPALIVE),
                    }
                    self.flush(stream).await?;
                }
                self.wbuf.extend_from_slice(http::LAST_CHUNK);
                self.flush(stream).await
            }
        }
    }
}

enum Fill {
    Data,
    Eof,
    TimedOut,
}
