//! Writing responses: [`Io`] owns the socket and the reused write buffers; [`Emitter`] sends
//! one JSON-RPC request's answer either as a single `application/json` response (the fast
//! path) or as an SSE stream that flushes every event the moment it is ready.

use std::io;
use std::sync::Arc;

use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use ringmux_core::http::{write_chunk, write_response, write_response_head, Framing, LAST_CHUNK};
use ringmux_core::sse::write_event;

use super::session::Session;

/// The reconnect delay announced in priming events, in ms (conformance: the suite waits this
/// long before resuming with `Last-Event-ID`, so keep it short).
const RETRY_MS: &str = "500";

/// The write half of a connection: the socket plus buffers reused across requests. In the
/// stdio mode ([`Io::lines`]) there is no socket: every message is one line on stdout, and the
/// HTTP framing (heads, chunks, priming events, keep-alives) is left out.
pub(crate) struct Io {
    pub stream: Option<TcpStream>,
    /// Without a socket: messages go to this session's streams (the legacy HTTP+SSE mode)
    /// rather than to stdout.
    to: Option<Arc<Session>>,
    /// Bytes queued for the next [`Io::flush`].
    wbuf: Vec<u8>,
    /// Scratch for one SSE event before it is framed as a chunk.
    event: Vec<u8>,
}

impl Io {
    pub fn new(stream: TcpStream) -> Self {
        Io {
            stream: Some(stream),
            to: None,
            wbuf: Vec::with_capacity(16 * 1024),
            event: Vec::with_capacity(1024),
        }
    }

    /// Messages as lines on stdout (the stdio transport).
    pub fn lines() -> Self {
        Io {
            stream: None,
            to: None,
            wbuf: Vec::with_capacity(1024),
            event: Vec::new(),
        }
    }

    /// Messages to `session`'s streams, one per event (the legacy HTTP+SSE transport, where
    /// every answer travels on the session's one stream).
    pub fn to_session(session: Arc<Session>) -> Self {
        Io {
            to: Some(session),
            ..Io::lines()
        }
    }

    /// The socket (HTTP mode).
    pub fn socket(&mut self) -> &mut TcpStream {
        self.stream.as_mut().expect("an HTTP connection")
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let Some(stream) = &mut self.stream else {
            if let Some(session) = &self.to {
                for msg in self.wbuf.split(|b| *b == b'\n').filter(|m| !m.is_empty()) {
                    session.notify(&msg.into());
                }
                self.wbuf.clear();
                return Ok(());
            }
            // Whole lines under the lock, so concurrent answers never interleave.
            let res = std::io::Write::write_all(&mut std::io::stdout().lock(), &self.wbuf);
            self.wbuf.clear();
            return res;
        };
        let buf = std::mem::take(&mut self.wbuf);
        let (res, mut buf) = stream.write_all(buf).await;
        buf.clear();
        self.wbuf = buf;
        res.map(drop)
    }

    /// Queues `msg` as one line (stdio mode).
    fn line(&mut self, msg: &[u8]) {
        if !msg.is_empty() {
            self.wbuf.extend_from_slice(msg);
            self.wbuf.push(b'\n');
        }
    }

    /// Queues a complete response.
    pub fn respond(
        &mut self,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
        keep_alive: bool,
        extra: &[(&str, &[u8])],
    ) {
        if self.stream.is_none() {
            return self.line(body);
        }
        write_response(
            &mut self.wbuf,
            status,
            content_type,
            body,
            keep_alive,
            extra,
        );
    }

    /// Queues the head of an SSE response (chunked, so the connection survives its end).
    pub fn sse_head(&mut self, keep_alive: bool) {
        if self.stream.is_none() {
            return;
        }
        write_response_head(
            &mut self.wbuf,
            200,
            Some("text/event-stream"),
            Framing::Chunked,
            keep_alive,
            &[("cache-control", b"no-cache"), ("x-accel-buffering", b"no")],
        );
    }

    /// Queues one SSE event as one chunk.
    pub fn event(&mut self, id: Option<&str>, data: &[u8]) {
        if self.stream.is_none() {
            return self.line(data);
        }
        self.event.clear();
        write_event(&mut self.event, id, None, data);
        write_chunk(&mut self.wbuf, &self.event);
    }

    /// Queues one SSE event of type `name` (HTTP only).
    pub fn named_event(&mut self, name: &str, data: &[u8]) {
        if self.stream.is_none() {
            return;
        }
        self.event.clear();
        write_event(&mut self.event, None, Some(name), data);
        write_chunk(&mut self.wbuf, &self.event);
    }

    /// Queues a priming event: an id to resume from, the retry delay, and empty data (clients
    /// drop events without a `data` line).
    fn priming(&mut self, id: &str) {
        if self.stream.is_none() {
            return;
        }
        self.event.clear();
        for part in ["id: ", id, "\nretry: ", RETRY_MS, "\ndata: \n\n"] {
            self.event.extend_from_slice(part.as_bytes());
        }
        write_chunk(&mut self.wbuf, &self.event);
    }

    /// Queues raw bytes as one chunk (a keep-alive comment).
    pub fn chunk(&mut self, data: &[u8]) {
        if self.stream.is_some() {
            write_chunk(&mut self.wbuf, data);
        }
    }

    /// Queues the end of a chunked body.
    pub fn end_chunks(&mut self) {
        if self.stream.is_some() {
            self.wbuf.extend_from_slice(LAST_CHUNK);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing written yet; the answer goes out as one JSON response.
    Json,
    /// An SSE response is open.
    Open,
    /// The SSE response was ended before the answer (the conformance reconnection test);
    /// messages only go to the replay log.
    Ended,
    /// A write failed: the client is gone.
    Broken,
}

/// Where the events of one POST stream are logged for `Last-Event-ID` replay.
struct Replay {
    session: Arc<Session>,
    stream: u64,
    seq: u64,
}

/// Sends one request's messages: notifications and server→client requests first, then the
/// final response.
pub(crate) struct Emitter<'a> {
    io: &'a mut Io,
    state: State,
    keep_alive: bool,
    replay: Option<Replay>,
}

impl<'a> Emitter<'a> {
    /// Starts the answer. With `sse` the SSE head is sent at once; with `replay` the stream
    /// is resumable: every event gets an id, is logged in the session, and a priming event
    /// goes first.
    pub async fn start(
        io: &'a mut Io,
        sse: bool,
        replay: Option<Arc<Session>>,
        keep_alive: bool,
    ) -> Emitter<'a> {
        let mut em = Emitter {
            io,
            state: if sse { State::Open } else { State::Json },
            keep_alive,
            replay: None,
        };
        if !sse {
            return em;
        }
        em.io.sse_head(keep_alive);
        if let Some(session) = replay {
            let stream = session.open_log();
            em.io.priming(&format!("{stream}::0"));
            em.replay = Some(Replay {
                session,
                stream,
                seq: 0,
            });
        }
        em.flush().await;
        em
    }

    /// Whether messages sent before the answer reach the client (now or by replay).
    pub fn streaming(&self) -> bool {
        matches!(self.state, State::Open | State::Ended)
    }

    /// Sends a notification or a server→client request; dropped on a JSON answer.
    pub async fn send(&mut self, msg: &[u8]) {
        if self.state == State::Json {
            return;
        }
        self.event(msg, false);
        self.flush().await;
    }

    /// Ends the HTTP response without the answer; later messages are only logged for replay.
    pub async fn end_early(&mut self) {
        if self.state == State::Open {
            self.io.end_chunks();
            self.flush().await;
            if self.state == State::Open {
                self.state = State::Ended;
            }
        }
    }

    /// Sends the final response and ends the stream. Returns whether the connection can
    /// carry another request.
    pub async fn finish(mut self, msg: &[u8]) -> bool {
        match self.state {
            State::Json => {
                self.io
                    .respond(200, Some("application/json"), msg, self.keep_alive, &[]);
            }
            State::Open => {
                self.event(msg, true);
                self.io.end_chunks();
            }
            State::Ended | State::Broken => self.event(msg, true),
        }
        self.flush().await;
        self.state != State::Broken && self.keep_alive
    }

    /// Logs (when resumable) and queues one event.
    fn event(&mut self, msg: &[u8], last: bool) {
        let id = match &mut self.replay {
            Some(r) => {
                r.seq += 1;
                r.session.log_event(r.stream, r.seq, msg, last);
                Some(format!("{}::{}", r.stream, r.seq))
            }
            None => None,
        };
        if self.state == State::Open {
            self.io.event(id.as_deref(), msg);
        }
    }

    async fn flush(&mut self) {
        if self.io.flush().await.is_err() {
            self.state = State::Broken;
        }
    }
}
