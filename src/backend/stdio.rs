//! stdio backends: ringmux spawns the configured command and speaks newline-delimited JSON-RPC
//! over its stdin/stdout; its stderr goes to ringmux's log, line by line, with the backend's
//! name. Legacy HTTP+SSE (2024-11-05) backends are driven the same way ([`connect_sse`]): the
//! SSE stream stands for stdout, the POSTs to its endpoint for stdin.
//!
//! Each child is driven by one actor task ([`run`]) on one shard, reached through a `Send`
//! channel ([`Handle`]): a `shared` backend's single child lives on its owner shard (backend
//! index % shards) and every shard's pool holds a handle to it; a `per_session` backend gets
//! one actor per client session, on the session's shard. The actor never blocks on the child:
//! a writer task feeds its stdin, a reader task splits its stdout into lines, another logs its
//! stderr. The three are socket pairs (monoio reads sockets on either driver).
//!
//! Sessions *attach* to an actor. The actor gives every request the child sees an id of its
//! own (and the same number as progress token when the request has one), so concurrent
//! sessions never collide or see each other's answers; answers and progress are mapped back
//! and go to the request's own channel. What the child sends unprompted goes to the session
//! it can be attributed to (the only session attached, or the only one with requests in
//! flight): on the stream of its one in-flight request, else on its GET stream, else it waits
//! (bounded) until the session opens one. A
//! `list_changed` goes to every session, `resources/updated` to the sessions that subscribed
//! to that URI. A server→client request that cannot be attributed is refused to the child;
//! a log message that cannot be is written to ringmux's log instead.
//!
//! A child that exits fails its in-flight requests at once with an error naming the backend
//! and the exit status, and is restarted with exponential backoff (`retry_backoff_ms`,
//! doubling to 32x; reset after it ran 10 s). Stopping a child closes its stdin, then sends
//! SIGTERM after 2 s and SIGKILL after one more; it is always reaped. Children get
//! `PR_SET_PDEATHSIG(SIGKILL)`, so none outlives ringmux.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::{mpsc, oneshot};
use futures_util::future::AbortHandle;
use futures_util::StreamExt;
use monoio::io::AsyncWriteRentExt;
use monoio::net::UnixStream;
use ringmux_core::config::Backend;
use ringmux_core::error::RpcError;
use ringmux_core::jsonrpc::{self, raw_str, span_of, Kind, Raw};
use serde_json::value::RawValue;

use crate::backend::upstream::{Body, Pool};
use crate::io::{consume, read_more};
use crate::metrics::ShardMetrics;

/// Longest stdout line accepted (one JSON-RPC message).
const MAX_LINE: usize = 64 << 20;
/// Longest stderr line logged (the rest is cut).
const MAX_LOG_LINE: usize = 4096;
const READ_CHUNK: usize = 16 << 10;
/// After stdin is closed, the child has this long to exit before SIGTERM…
const STOP_GRACE: Duration = Duration::from_secs(2);
/// …and then this long before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(1);
/// How often a running child's exit is checked (besides its stdout closing).
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A child that ran this long resets the restart backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);
const MAX_BACKOFF_SHIFT: u32 = 5;

/// What ringmux declares to a shared child: it relays sampling, elicitation and roots to
/// whichever client a request can be attributed to.
const SHARED_INIT_PARAMS: &str = r#"{"protocolVersion":"2025-11-25","capabilities":{"sampling":{},"elicitation":{"form":{},"url":{}},"roots":{"listChanged":true}},"clientInfo":{"name":"ringmux","version":"0.1.0"}}"#;

/// Where the messages of one request, or a session's unprompted ones, go.
pub type Outbox = mpsc::UnboundedSender<Vec<u8>>;
/// The way to an actor; `Send`, so any shard can hold one.
pub type Handle = mpsc::UnboundedSender<ToChild>;
pub type Inbox = mpsc::UnboundedReceiver<ToChild>;

/// Messages to an actor.
pub enum ToChild {
    /// A session joins, with its `initialize` request. The reply is its attach number and
    /// the `initialize` response (with the request's id), or why the child is not available.
    Attach {
        init: Vec<u8>,
        reply: oneshot::Sender<Result<(u64, Vec<u8>), String>>,
    },
    /// The session ended.
    Detach { attach: u64 },
    /// A request; its progress, related messages and response go to `to`.
    Request {
        attach: u64,
        body: Vec<u8>,
        to: Outbox,
    },
    /// A notification, or the answer to one of the child's requests.
    Send { attach: u64, body: Vec<u8> },
    /// The session's stream for unprompted messages (replaces an older one).
    Listen { attach: u64, to: Outbox },
    /// The gateway is shutting down: stop the child.
    Shutdown,
}

/// Creates the channel of a shared child's actor.
pub fn channel() -> (Handle, Inbox) {
    mpsc::unbounded()
}

/// One shard's view of a stdio backend: the actor (shared) or how to start one per session,
/// and the shard's backend sessions on it.
pub struct Link {
    backend: Backend,
    metrics: Arc<ShardMetrics>,
    shared: Option<Handle>,
    /// Backend session id (as ringmux numbers them) → (actor, attach number).
    sessions: std::cell::RefCell<HashMap<u64, (Handle, u64)>>,
    next: std::cell::Cell<u64>,
}

/// What [`Link::exchange`] answers, in the shape of an HTTP exchange.
pub enum Answer {
    /// HTTP-like status with an empty body (202 for notifications, 200 for DELETE, 404 for
    /// an unknown backend session).
    Status(u16),
    /// `initialize` answered: the backend session id and the response.
    Attached(String, Vec<u8>),
    /// The request's response, when it came first.
    Message(Vec<u8>),
    /// Messages until the response (`first` already arrived), or a session's unprompted
    /// messages (a GET).
    Messages(Option<Vec<u8>>, mpsc::UnboundedReceiver<Vec<u8>>),
}

/// Why an exchange failed.
pub enum Failure {
    Timeout,
    Unavailable(String),
}

impl Link {
    pub fn new(backend: Backend, metrics: Arc<ShardMetrics>, shared: Option<Handle>) -> Link {
        Link {
            backend,
            metrics,
            shared,
            sessions: Default::default(),
            next: std::cell::Cell::new(1),
        }
    }

    /// One HTTP-shaped exchange: `POST` without a session attaches (`initialize`), `POST`
    /// with one sends a request or notification, `GET` opens the session's stream, `DELETE`
    /// detaches.
    pub async fn exchange(
        &self,
        method: &str,
        session: Option<&str>,
        body: &[u8],
    ) -> Result<Answer, Failure> {
        let Some(sid) = session else {
            return match method {
                "POST" => self.attach(body).await,
                _ => Ok(Answer::Status(405)),
            };
        };
        let key = sid.parse::<u64>().ok();
        let Some((handle, attach)) = key.and_then(|k| self.sessions.borrow().get(&k).cloned())
        else {
            return Ok(Answer::Status(404));
        };
        let key = key.expect("found above");
        let gone = |this: &Self| {
            this.sessions.borrow_mut().remove(&key);
            Ok(Answer::Status(404))
        };
        match method {
            "DELETE" => {
                self.sessions.borrow_mut().remove(&key);
                let _ = handle.unbounded_send(ToChild::Detach { attach });
                Ok(Answer::Status(200))
            }
            "GET" => {
                let (to, rx) = mpsc::unbounded();
                if handle
                    .unbounded_send(ToChild::Listen { attach, to })
                    .is_err()
                {
                    return gone(self);
                }
                Ok(Answer::Messages(None, rx))
            }
            _ => {
                let is_request = jsonrpc::parse(body).is_ok_and(|m| m.kind == Kind::Request);
                if !is_request {
                    let send = ToChild::Send {
                        attach,
                        body: body.to_vec(),
                    };
                    if handle.unbounded_send(send).is_err() {
                        return gone(self);
                    }
                    return Ok(Answer::Status(202));
                }
                let (to, mut rx) = mpsc::unbounded();
                let req = ToChild::Request {
                    attach,
                    body: body.to_vec(),
                    to,
                };
                if handle.unbounded_send(req).is_err() {
                    return gone(self);
                }
                let first = monoio::time::timeout(self.backend.request_timeout, rx.next())
                    .await
                    .map_err(|_| Failure::Timeout)?
                    .ok_or_else(|| Failure::Unavailable("the child's actor ended".into()))?;
                if jsonrpc::parse(&first).is_ok_and(|m| m.kind == Kind::Response) {
                    Ok(Answer::Message(first))
                } else {
                    Ok(Answer::Messages(Some(first), rx))
                }
            }
        }
    }

    async fn attach(&self, init: &[u8]) -> Result<Answer, Failure> {
        let handle = match &self.shared {
            Some(h) => h.clone(),
            None => {
                let (tx, rx) = mpsc::unbounded();
                monoio::spawn(run(self.backend.clone(), self.metrics.clone(), rx));
                tx
            }
        };
        let (reply, answer) = oneshot::channel();
        let sent = handle.unbounded_send(ToChild::Attach {
            init: init.to_vec(),
            reply,
        });
        if sent.is_err() {
            return Err(Failure::Unavailable("the child's actor ended".into()));
        }
        // Starting a child and its `initialize` are bounded by the request timeout; allow
        // for the stop of a failed attempt on top.
        let limit = self.backend.request_timeout + STOP_GRACE + TERM_GRACE;
        let (attach, response) = match monoio::time::timeout(limit, answer).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Err(_)) => return Err(Failure::Unavailable("the child's actor ended".into())),
            Ok(Ok(Err(why))) => return Err(Failure::Unavailable(why)),
            Ok(Ok(Ok(attached))) => attached,
        };
        let key = self.next.get();
        self.next.set(key + 1);
        self.sessions.borrow_mut().insert(key, (handle, attach));
        Ok(Answer::Attached(key.to_string(), response))
    }
}

/// Unprompted messages kept for a session until it opens its GET stream.
const BACKLOG: usize = 64;

/// A session attached to an actor.
#[derive(Default)]
struct Attached {
    listener: Option<Outbox>,
    /// Messages for it that arrived while it had no stream open (a server asking for roots
    /// right after `initialize`), delivered when it opens one.
    backlog: std::collections::VecDeque<Vec<u8>>,
    /// Resource URIs it subscribed to (as the child knows them).
    subscriptions: Vec<String>,
}

/// A request the child has not answered.
struct Pending {
    attach: u64,
    /// The request's id as the session sent it (JSON text).
    id: Box<str>,
    /// Its progress token as the session sent it (JSON text).
    token: Option<Box<str>>,
    to: Outbox,
}

/// A running child and the way to its stdin.
struct Running {
    /// The process (`None`: a legacy SSE connection).
    proc: Option<Child>,
    stdin: mpsc::UnboundedSender<Vec<u8>>,
    stdout: mpsc::UnboundedReceiver<Vec<u8>>,
    started: Instant,
    /// Tasks to abort when it stops (a legacy SSE connection's reader and writer).
    tasks: Vec<AbortHandle>,
}

struct Actor {
    backend: Backend,
    metrics: Arc<ShardMetrics>,
    shared: bool,
    /// The `initialize` params the child is (re)started with.
    init_params: Option<Box<RawValue>>,
    /// The child's `initialize` result (JSON text).
    init_result: Option<Vec<u8>>,
    child: Option<Running>,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
    attaches: HashMap<u64, Attached>,
    next_attach: u64,
    pending: HashMap<u64, Pending>,
    /// The child's requests to sessions, by id (JSON text) → the session asked.
    asked: HashMap<Box<str>, u64>,
    next_id: u64,
}

enum Event {
    Inbox(Option<ToChild>),
    Line(Option<Vec<u8>>),
    Tick,
}

/// Drives one child until its sessions are gone (per-session) or every handle is dropped.
pub async fn run(backend: Backend, metrics: Arc<ShardMetrics>, mut inbox: Inbox) {
    let shared = backend.shared;
    let mut a = Actor {
        init_params: shared
            .then(|| RawValue::from_string(SHARED_INIT_PARAMS.into()).expect("valid JSON")),
        backend,
        metrics,
        shared,
        init_result: None,
        child: None,
        failures: 0,
        retry_at: None,
        last_error: "not started yet".into(),
        attaches: HashMap::new(),
        next_attach: 1,
        pending: HashMap::new(),
        asked: HashMap::new(),
        next_id: 1,
    };
    loop {
        if a.child.is_none() && a.wants_child() && a.retry_at.is_none_or(|t| t <= Instant::now()) {
            a.start().await;
        }
        let wait = match (&a.child, a.retry_at) {
            (None, Some(at)) if a.wants_child() => at
                .saturating_duration_since(Instant::now())
                .min(CHECK_EVERY),
            _ => CHECK_EVERY,
        };
        let event = {
            let line = async {
                match &mut a.child {
                    Some(c) => c.stdout.next().await,
                    None => std::future::pending().await,
                }
            };
            monoio::select! {
                m = inbox.next() => Event::Inbox(m),
                l = line => Event::Line(l),
                _ = monoio::time::sleep(wait) => Event::Tick,
            }
        };
        match event {
            Event::Inbox(None) | Event::Inbox(Some(ToChild::Shutdown)) => break,
            Event::Inbox(Some(msg)) => {
                a.handle(msg).await;
                if !a.shared && a.attaches.is_empty() {
                    break;
                }
            }
            Event::Line(Some(line)) => a.on_line(&line),
            Event::Line(None) => a.exited("closed its stdout and was stopped").await,
            Event::Tick => {
                let status = a
                    .child
                    .as_mut()
                    .and_then(|c| c.proc.as_mut()?.try_wait().ok().flatten());
                if status.is_some() {
                    a.exited("exited").await;
                }
            }
        }
    }
    if let Some(child) = a.child.take() {
        stop(&a.backend.name, child).await;
        // Counted until stopped: a shutdown waits for this count to reach zero.
        a.metrics.stdio_children.sub(1);
    }
}

impl Actor {
    fn name(&self) -> &str {
        &self.backend.name
    }

    /// A shared child always runs; a per-session one while its session is attached.
    fn wants_child(&self) -> bool {
        self.shared || !self.attaches.is_empty()
    }

    fn unavailable(&self) -> String {
        match self.retry_at {
            Some(at) => format!(
                "stdio backend not running ({}); next start in {} ms",
                self.last_error,
                at.saturating_duration_since(Instant::now()).as_millis()
            ),
            None => format!("stdio backend not running ({})", self.last_error),
        }
    }

    /// Starts the child and runs `initialize` + `notifications/initialized` with it.
    async fn start(&mut self) {
        let Some(params) = self.init_params.as_deref() else {
            return;
        };
        let started = Instant::now();
        let opened = match &self.backend.stdio {
            Some(spec) => spawn(&self.backend.name, spec)
                .map_err(|e| format!("could not start {:?}: {e}", spec.command)),
            None => connect_sse(&self.backend).await,
        };
        let mut child = match opened {
            Ok(c) => c,
            Err(why) => {
                self.failed(why);
                return;
            }
        };
        self.metrics.stdio_children.add(1);
        match &child.proc {
            Some(p) => {
                tracing::info!(backend = %self.name(), pid = p.id(), "stdio backend started")
            }
            None => tracing::info!(backend = %self.name(), "legacy SSE backend connected"),
        }
        let mut init = Vec::with_capacity(params.get().len() + 64);
        init.extend_from_slice(br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":"#);
        init.extend_from_slice(params.get().as_bytes());
        init.push(b'}');
        let _ = child.stdin.unbounded_send(init);
        let answer = monoio::time::timeout(self.backend.request_timeout, async {
            while let Some(line) = child.stdout.next().await {
                match jsonrpc::parse(&line) {
                    Ok(m) if m.kind == Kind::Response && m.id.map(|i| i.get()) == Some("0") => {
                        return Some(line);
                    }
                    Ok(_) => {
                        tracing::debug!(backend = %self.backend.name, "message before the initialize answer; dropped")
                    }
                    Err(_) => garbage(&self.backend.name, &line),
                }
            }
            None
        })
        .await;
        let result = match answer {
            Err(_) => Err("no answer to initialize in time".to_string()),
            Ok(None) => Err("exited before answering initialize".to_string()),
            Ok(Some(line)) => init_result(&line),
        };
        match result {
            Ok(result) => {
                let _ = child.stdin.unbounded_send(
                    br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec(),
                );
                self.init_result = Some(result);
                self.retry_at = None;
                child.started = started;
                self.child = Some(child);
            }
            Err(why) => {
                self.metrics.stdio_children.sub(1);
                stop(&self.backend.name, child).await;
                self.failed(why);
            }
        }
    }

    /// Records a failed start or an exit and schedules the next start.
    fn failed(&mut self, why: String) {
        let shift = self.failures.min(MAX_BACKOFF_SHIFT);
        self.failures = self.failures.saturating_add(1);
        let backoff = self.backend.retry_backoff * (1 << shift);
        tracing::warn!(backend = %self.name(), failures = self.failures, backoff_ms = backoff.as_millis() as u64, "stdio backend: {why}");
        self.last_error = why;
        self.retry_at = Some(Instant::now() + backoff);
    }

    /// The child is gone (or going): reap it, fail its requests, schedule a restart.
    async fn exited(&mut self, how: &str) {
        let Some(child) = self.child.take() else {
            return;
        };
        self.metrics.stdio_children.sub(1);
        self.metrics.stdio_restarts.add(1);
        if child.started.elapsed() >= STABLE_AFTER {
            self.failures = 0;
        }
        let status = stop(&self.backend.name, child).await;
        let why = match status {
            Some(s) => format!("the process exited ({s})"),
            None if self.backend.legacy_sse => "the legacy SSE stream ended".to_string(),
            None => format!("the process {how}"),
        };
        let reason = format!("{why}; restarting");
        for (_, p) in self.pending.drain() {
            let _ =
                p.to.unbounded_send(error_response(&self.backend.name, &p.id, &reason));
        }
        self.asked.clear();
        self.failed(why);
    }

    async fn handle(&mut self, msg: ToChild) {
        match msg {
            // The actor's loop stops on it before it gets here.
            ToChild::Shutdown => {}
            ToChild::Attach { init, reply } => {
                if let Err(Ok((attach, _))) = reply.send(self.attach(&init).await) {
                    // The session gave up waiting (its attach timed out): undo, or nobody
                    // would ever detach it and a per-session child would live on.
                    self.attaches.remove(&attach);
                }
            }
            ToChild::Detach { attach } => {
                self.attaches.remove(&attach);
                self.pending.retain(|_, p| p.attach != attach);
                self.asked.retain(|_, a| *a != attach);
            }
            ToChild::Listen { attach, to } => {
                if let Some(a) = self.attaches.get_mut(&attach) {
                    for msg in a.backlog.drain(..) {
                        let _ = to.unbounded_send(msg);
                    }
                    a.listener = Some(to);
                }
            }
            ToChild::Request { attach, body, to } => self.request(attach, &body, to),
            ToChild::Send { attach, body } => self.send(attach, &body),
        }
    }

    async fn attach(&mut self, init: &[u8]) -> Result<(u64, Vec<u8>), String> {
        let msg = jsonrpc::parse(init).map_err(|e| e.to_string())?;
        let id = msg.id.ok_or("initialize without an id")?;
        if self.init_params.is_none() {
            // A per-session child is initialized with its client's own params: the client's
            // capabilities reach the server unchanged.
            #[derive(serde::Deserialize)]
            struct Init<'a> {
                #[serde(borrow)]
                params: &'a RawValue,
            }
            let init: Init<'_> = serde_json::from_slice(init).map_err(|e| e.to_string())?;
            self.init_params = Some(init.params.to_owned());
        }
        if self.child.is_none() && self.retry_at.is_none_or(|t| t <= Instant::now()) {
            self.start().await;
        }
        let (Some(_), Some(result)) = (&self.child, &self.init_result) else {
            return Err(self.unavailable());
        };
        let mut response = Vec::with_capacity(result.len() + 48);
        jsonrpc::write_result(&mut response, id, result);
        let attach = self.next_attach;
        self.next_attach += 1;
        self.attaches.insert(attach, Attached::default());
        Ok((attach, response))
    }

    fn write(&self, line: Vec<u8>) {
        if let Some(c) = &self.child {
            let _ = c.stdin.unbounded_send(line);
        }
    }

    fn request(&mut self, attach: u64, body: &[u8], to: Outbox) {
        let Ok(msg) = jsonrpc::parse(body) else {
            return;
        };
        let Some(id) = msg.id else {
            return;
        };
        if self.child.is_none() || !self.attaches.contains_key(&attach) {
            let _ = to.unbounded_send(error_response(self.name(), id.get(), &self.unavailable()));
            return;
        }
        let n = self.next_id;
        self.next_id += 1;
        let token = msg.params.meta.as_ref().and_then(|m| m.progress_token);
        let number = n.to_string();
        let mut spans = vec![span_of(body, id)];
        if let Some(t) = token {
            spans.push(span_of(body, t));
        }
        let line = splice_all(body, &mut spans, number.as_bytes());
        if let (Some(uri), Some(a)) = (
            msg.params.uri.and_then(raw_str),
            self.attaches.get_mut(&attach),
        ) {
            match &*msg.method {
                "resources/subscribe" if !a.subscriptions.iter().any(|s| *s == uri) => {
                    a.subscriptions.push(uri.into_owned())
                }
                "resources/unsubscribe" => a.subscriptions.retain(|s| *s != uri),
                _ => {}
            }
        }
        self.pending.insert(
            n,
            Pending {
                attach,
                id: id.get().into(),
                token: token.map(|t| t.get().into()),
                to,
            },
        );
        self.write(line);
    }

    fn send(&mut self, attach: u64, body: &[u8]) {
        let Ok(msg) = jsonrpc::parse(body) else {
            return;
        };
        match msg.kind {
            Kind::Response => {
                // Only the session that was asked may answer.
                let id = msg.id.map(|i| i.get()).unwrap_or_default();
                if self.asked.get(id) == Some(&attach) {
                    self.asked.remove(id);
                    self.write(body.to_vec());
                } else {
                    tracing::debug!(backend = %self.name(), "answer to a request this session was not asked; dropped");
                }
            }
            Kind::Notification => match &*msg.method {
                // ringmux sent its own when the child started.
                "notifications/initialized" => {}
                "notifications/cancelled" => {
                    let Some(target) = msg.params.request_id else {
                        return;
                    };
                    let found = self
                        .pending
                        .iter()
                        .find(|(_, p)| p.attach == attach && *p.id == *target.get())
                        .map(|(n, _)| n.to_string());
                    if let Some(n) = found {
                        let mut spans = vec![span_of(body, target)];
                        self.write(splice_all(body, &mut spans, n.as_bytes()));
                    }
                }
                _ => self.write(body.to_vec()),
            },
            Kind::Request => {}
        }
    }

    /// The session an unprompted message belongs to: the only one attached, else the only
    /// one with requests in flight.
    fn attribution(&self) -> Option<u64> {
        if self.attaches.len() == 1 {
            return self.attaches.keys().next().copied();
        }
        let mut owners = self.pending.values().map(|p| p.attach);
        let first = owners.next()?;
        owners.all(|a| a == first).then_some(first)
    }

    /// Where an unprompted message for session `attach` goes: the stream of its one request
    /// in flight, else its GET stream, else any of its requests' streams.
    fn route(&self, attach: u64) -> Option<&Outbox> {
        let mut mine = self.pending.values().filter(|p| p.attach == attach);
        let first = mine.next();
        if let (Some(only), None) = (first, mine.next()) {
            if !only.to.is_closed() {
                return Some(&only.to);
            }
        }
        let listener = self.attaches.get(&attach)?.listener.as_ref();
        listener.filter(|l| !l.is_closed()).or(first.map(|p| &p.to))
    }

    /// Sends an unprompted message to session `attach` ([`Actor::route`]), or keeps it until
    /// the session opens a stream.
    fn deliver(&mut self, attach: u64, msg: &[u8]) {
        if let Some(to) = self.route(attach) {
            let _ = to.unbounded_send(msg.to_vec());
            return;
        }
        let name = self.backend.name.clone();
        if let Some(a) = self.attaches.get_mut(&attach) {
            if a.backlog.len() == BACKLOG {
                a.backlog.pop_front();
                tracing::warn!(backend = %name, "session has no stream open; oldest waiting message dropped");
            }
            a.backlog.push_back(msg.to_vec());
        }
    }

    /// One line from the child's stdout.
    fn on_line(&mut self, line: &[u8]) {
        let msg = match jsonrpc::parse(line) {
            Ok(m) => m,
            Err(_) => return garbage(self.name(), line),
        };
        match msg.kind {
            Kind::Response => {
                let id = msg.id.expect("responses have ids");
                let Some(p) = id.get().parse().ok().and_then(|n| self.pending.remove(&n)) else {
                    tracing::debug!(backend = %self.name(), id = id.get(), "answer to no pending request; dropped");
                    return;
                };
                let mut spans = vec![span_of(line, id)];
                let _ =
                    p.to.unbounded_send(splice_all(line, &mut spans, p.id.as_bytes()));
            }
            Kind::Request => {
                let id = msg.id.expect("requests have ids");
                if msg.method == "ping" {
                    let mut pong = Vec::with_capacity(48);
                    jsonrpc::write_result(&mut pong, id, b"{}");
                    return self.write(pong);
                }
                match self.attribution() {
                    Some(a) => {
                        self.asked.insert(id.get().into(), a);
                        self.deliver(a, line);
                    }
                    None => {
                        let mut refusal = Vec::with_capacity(160);
                        jsonrpc::write_error(
                            &mut refusal,
                            Some(id),
                            &RpcError::Internal(format!(
                                "ringmux cannot tell which client session {} is for: this shared stdio backend serves several (use mode: per_session)",
                                msg.method
                            )),
                        );
                        self.write(refusal);
                    }
                }
            }
            Kind::Notification => self.notification(&msg, line),
        }
    }

    fn notification(&mut self, msg: &jsonrpc::Message<'_>, line: &[u8]) {
        let method = &*msg.method;
        match method {
            "notifications/progress" => {
                let Some(token) = msg.params.progress_token else {
                    return;
                };
                let Some(p) = token.get().parse().ok().and_then(|n| self.pending.get(&n)) else {
                    return;
                };
                let original = p.token.as_deref().unwrap_or(&p.id);
                let mut spans = vec![span_of(line, token)];
                let _ =
                    p.to.unbounded_send(splice_all(line, &mut spans, original.as_bytes()));
            }
            "notifications/cancelled" => {
                let asked = msg
                    .params
                    .request_id
                    .and_then(|id| self.asked.remove(id.get()));
                if let Some(a) = asked {
                    self.deliver(a, line);
                }
            }
            "notifications/resources/updated" => {
                let uri = msg.params.uri.and_then(raw_str);
                let only = self.attaches.len() == 1;
                let subscribers: Vec<u64> = self
                    .attaches
                    .iter()
                    .filter(|(_, a)| {
                        only || uri
                            .as_deref()
                            .is_some_and(|u| a.subscriptions.iter().any(|s| s == u))
                    })
                    .map(|(k, _)| *k)
                    .collect();
                for a in subscribers {
                    self.deliver(a, line);
                }
            }
            m if m.ends_with("/list_changed") => {
                let all: Vec<u64> = self.attaches.keys().copied().collect();
                for a in all {
                    self.deliver(a, line);
                }
            }
            _ => match self.attribution() {
                Some(a) => self.deliver(a, line),
                None if method == "notifications/message" => {
                    tracing::info!(backend = %self.name(), "log: {}", String::from_utf8_lossy(line));
                }
                None => {
                    tracing::debug!(backend = %self.name(), method, "notification with no session to go to; dropped")
                }
            },
        }
    }
}

/// A JSON-RPC error response naming the backend.
fn error_response(backend: &str, id: &str, reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(reason.len() + 96);
    let id = Raw::new(id).ok();
    jsonrpc::write_error(
        &mut out,
        id,
        &RpcError::Backend {
            backend: backend.to_owned(),
            reason: reason.to_owned(),
        },
    );
    out
}

/// The `result` of an `initialize` response line.
fn init_result(line: &[u8]) -> Result<Vec<u8>, String> {
    let msg = jsonrpc::parse(line).map_err(|e| e.to_string())?;
    match (msg.result, msg.error) {
        (Some(r), _) => Ok(r.get().as_bytes().to_vec()),
        (None, Some(e)) => Err(format!("initialize failed: {}", e.get())),
        (None, None) => Err("initialize answered without a result".into()),
    }
}

fn garbage(backend: &str, line: &[u8]) {
    let shown = &line[..line.len().min(200)];
    tracing::warn!(
        backend,
        "stdout line is not JSON-RPC; dropped: {}",
        String::from_utf8_lossy(shown)
    );
}

/// `body` with every span in `spans` (parts of it, not overlapping) replaced by `with`.
fn splice_all(body: &[u8], spans: &mut [std::ops::Range<usize>], with: &[u8]) -> Vec<u8> {
    spans.sort_by_key(|s| s.start);
    let mut out = Vec::with_capacity(body.len() + spans.len() * with.len());
    let mut at = 0;
    for s in spans.iter() {
        out.extend_from_slice(&body[at..s.start]);
        out.extend_from_slice(with);
        at = s.end;
    }
    out.extend_from_slice(&body[at..]);
    out
}

/// Spawns the child with socket pairs for stdin, stdout and stderr, and the tasks that
/// write, read and log them.
fn spawn(name: &str, spec: &ringmux_core::config::StdioCommand) -> io::Result<Running> {
    let (stdin_ours, stdin_theirs) = StdUnixStream::pair()?;
    let (stdout_ours, stdout_theirs) = StdUnixStream::pair()?;
    let (stderr_ours, stderr_theirs) = StdUnixStream::pair()?;
    let mut cmd = Command::new(&spec.command);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::from(OwnedFd::from(stdin_theirs)))
        .stdout(Stdio::from(OwnedFd::from(stdout_theirs)))
        .stderr(Stdio::from(OwnedFd::from(stderr_theirs)));
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    // SAFETY: prctl, setpgid, close_range, getrlimit and fcntl are async-signal-safe, and
    // nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // A process group of its own: a Ctrl-C at ringmux's terminal reaches ringmux,
            // which stops the child when it is done with it, not the child directly.
            libc::setpgid(0, 0);
            close_inherited_on_exec();
            Ok(())
        });
    }
    let proc = cmd.spawn()?;
    // The child's ends are closed here with `cmd`: only the child holds them now.
    drop(cmd);
    for s in [&stdin_ours, &stdout_ours, &stderr_ours] {
        s.set_nonblocking(true)?;
    }
    let stdin = UnixStream::from_std(stdin_ours)?;
    let stdout = UnixStream::from_std(stdout_ours)?;
    let stderr = UnixStream::from_std(stderr_ours)?;
    let (stdin_tx, stdin_rx) = mpsc::unbounded();
    let (stdout_tx, stdout_rx) = mpsc::unbounded();
    monoio::spawn(write_lines(stdin, stdin_rx));
    monoio::spawn(read_lines(stdout, stdout_tx, name.to_owned()));
    monoio::spawn(log_lines(stderr, name.to_owned(), proc.id()));
    Ok(Running {
        proc: Some(proc),
        stdin: stdin_tx,
        stdout: stdout_rx,
        started: Instant::now(),
        tasks: Vec::new(),
    })
}

/// In a forked child: marks every descriptor above stderr close-on-exec, so the program gets
/// its stdin, stdout and stderr and nothing else. ringmux opens every descriptor close-on-exec
/// (`conn::serve` marks accepted sockets, which monoio's io_uring accept leaves inheritable),
/// but another shard may accept between its accept and that mark; this closes the window.
/// `close_range(CLOSE_RANGE_CLOEXEC)` (Linux 5.11) rather than closing outright: std's own
/// exec-error pipe must stay open until exec. Older kernels get one fcntl per descriptor.
///
/// # Safety
/// Only between fork and exec (async-signal-safe calls only).
unsafe fn close_inherited_on_exec() {
    if libc::syscall(
        libc::SYS_close_range,
        3u32,
        u32::MAX,
        libc::CLOSE_RANGE_CLOEXEC,
    ) == 0
    {
        return;
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let top = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
        lim.rlim_cur.min(1 << 20) as libc::c_int
    } else {
        1 << 16
    };
    for fd in 3..top {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
}

/// The protocol version a legacy HTTP+SSE server speaks.
const LEGACY_VERSION: &str = "2024-11-05";

/// Connects to a legacy HTTP+SSE (2024-11-05) server: `GET` its SSE endpoint, wait for the
/// `endpoint` event, then POST every message there; `message` events are its messages. The
/// actor sees the same two channels as with a process.
async fn connect_sse(backend: &Backend) -> Result<Running, String> {
    let stream_pool = Pool::new(u16::MAX, backend.clone(), None, None);
    let resp = stream_pool
        .open_stream(None, LEGACY_VERSION, None)
        .await
        .map_err(|e| format!("GET {}: {e}", backend.url))?;
    let mut events = match resp.body {
        Body::Events(e) if resp.status == 200 => e,
        _ => {
            return Err(format!(
                "GET {} answered HTTP {} without an event stream",
                backend.url, resp.status
            ))
        }
    };
    let endpoint = loop {
        match events.next().await {
            Ok(Some(ev)) if ev.event.as_deref() == Some("endpoint") => {
                break String::from_utf8(ev.data).map_err(|_| "endpoint is not UTF-8")?;
            }
            Ok(Some(_)) => continue,
            Ok(None) => return Err("the SSE stream ended before its endpoint event".into()),
            Err(e) => return Err(format!("no endpoint event: {e}")),
        }
    };
    events.wait_forever();
    let mut post = backend.clone();
    post.path = endpoint_path(backend, endpoint.trim())?;
    post.legacy_sse = false;
    post.era = ringmux_core::config::Era::Stateful;
    let post_pool = Pool::new(u16::MAX, post, None, None);
    let (stdin_tx, mut stdin_rx) = mpsc::unbounded::<Vec<u8>>();
    let (stdout_tx, stdout_rx) = mpsc::unbounded();
    let (reader, read_handle) = futures_util::future::abortable(async move {
        while let Ok(Some(ev)) = events.next().await {
            let is_message = ev.event.as_deref().is_none_or(|e| e == "message");
            if is_message && !ev.data.is_empty() && stdout_tx.unbounded_send(ev.data).is_err() {
                break;
            }
        }
    });
    let name = backend.name.clone();
    let (writer, write_handle) = futures_util::future::abortable(async move {
        // In order, one at a time: a legacy server answers each POST with 202 at once.
        while let Some(msg) = stdin_rx.next().await {
            match post_pool
                .request("POST", None, LEGACY_VERSION, &msg, Instant::now())
                .await
            {
                Ok(resp) => {
                    let status = resp.status;
                    let _ = crate::backend::upstream::final_message(resp.body).await;
                    if !(200..300).contains(&status) {
                        tracing::warn!(backend = %name, status, "legacy SSE backend refused a message");
                    }
                }
                Err(e) => tracing::warn!(backend = %name, "message not delivered: {e}"),
            }
        }
    });
    monoio::spawn(reader);
    monoio::spawn(writer);
    Ok(Running {
        proc: None,
        stdin: stdin_tx,
        stdout: stdout_rx,
        started: Instant::now(),
        tasks: vec![read_handle, write_handle],
    })
}

/// The path to POST to, from a legacy server's `endpoint` event: an absolute path, a path
/// relative to the SSE endpoint, or a URL on the same origin.
fn endpoint_path(backend: &Backend, endpoint: &str) -> Result<String, String> {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        let url = ringmux_core::config::parse_http_url(endpoint)?;
        if url.authority != backend.authority {
            return Err(format!("endpoint {endpoint} is on another origin"));
        }
        return Ok(url.path);
    }
    if endpoint.is_empty() || endpoint.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("malformed endpoint {endpoint:?}"));
    }
    if endpoint.starts_with('/') {
        return Ok(endpoint.to_owned());
    }
    let base = backend.path.rsplit_once('/').map_or("", |(dir, _)| dir);
    Ok(format!("{base}/{endpoint}"))
}

/// Writes each message as one line (JSON allows raw newlines only between tokens, where a
/// space means the same).
async fn write_lines(mut sock: UnixStream, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(mut msg) = rx.next().await {
        for b in msg.iter_mut() {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
        msg.push(b'\n');
        let (res, _) = sock.write_all(msg).await;
        if res.is_err() {
            break;
        }
    }
}

/// Calls `each` with every complete line read from `sock` (without its line ending); a line
/// longer than `max` is cut there and the rest of it skipped.
async fn for_each_line(mut sock: UnixStream, max: usize, mut each: impl FnMut(&[u8]) -> bool) {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let mut skipping = false;
    loop {
        let mut start = 0;
        while let Some(nl) = memchr::memchr(b'\n', &buf[start..]) {
            let line = &buf[start..start + nl];
            start += nl + 1;
            if std::mem::take(&mut skipping) {
                continue;
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() && !each(line) {
                return;
            }
        }
        consume(&mut buf, start);
        if buf.len() < READ_CHUNK {
            // Between lines: give back what a long one grew the buffer to.
            crate::io::trim(&mut buf, READ_CHUNK);
        }
        if buf.len() > max {
            if !skipping {
                each(&buf[..max]);
            }
            buf.clear();
            skipping = true;
        }
        let (res, b) = read_more(&mut sock, buf, READ_CHUNK).await;
        buf = b;
        if !matches!(res, Ok(n) if n > 0) {
            return;
        }
    }
}

async fn read_lines(sock: UnixStream, tx: mpsc::UnboundedSender<Vec<u8>>, name: String) {
    for_each_line(sock, MAX_LINE, |line| {
        if line.len() >= MAX_LINE {
            tracing::warn!(backend = %name, "stdout line longer than {MAX_LINE} bytes; dropped");
            return true;
        }
        tx.unbounded_send(line.to_vec()).is_ok()
    })
    .await;
}

async fn log_lines(sock: UnixStream, name: String, pid: u32) {
    for_each_line(sock, MAX_LOG_LINE, |line| {
        tracing::info!(backend = %name, pid, "stderr: {}", String::from_utf8_lossy(line));
        true
    })
    .await;
}

/// Stops a child: close its stdin, wait, SIGTERM, wait, SIGKILL; always reaps it. Returns
/// its exit status when it could be read.
async fn stop(name: &str, child: Running) -> Option<ExitStatus> {
    let Running {
        proc,
        stdin,
        stdout,
        tasks,
        ..
    } = child;
    drop(stdin);
    drop(stdout);
    for t in tasks {
        t.abort();
    }
    let mut proc = proc?;
    let pid = proc.id();
    if let Some(s) = wait_for(&mut proc, STOP_GRACE).await {
        return Some(s);
    }
    // SAFETY: kill(2) on our own unreaped child: the pid cannot have been reused.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    if let Some(s) = wait_for(&mut proc, TERM_GRACE).await {
        tracing::warn!(backend = name, pid, "stdio backend needed SIGTERM to stop");
        return Some(s);
    }
    let _ = proc.kill();
    tracing::warn!(backend = name, pid, "stdio backend needed SIGKILL to stop");
    let s = wait_for(&mut proc, Duration::from_secs(5)).await;
    if s.is_none() {
        tracing::error!(
            backend = name,
            pid,
            "stdio backend did not die after SIGKILL; not reaped"
        );
    }
    s
}

/// Polls for the child's exit for up to `limit`.
async fn wait_for(proc: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        match proc.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) => {}
            Err(_) => return None,
        }
        if Instant::now() >= until {
            return None;
        }
        monoio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// One shard's link to `backend` if child actors drive it (stdio, legacy SSE); `shared` is
/// the handle of its shared child, if it has one.
pub fn link_for(
    backend: &Backend,
    metrics: &Arc<ShardMetrics>,
    shared: Option<&Handle>,
) -> Option<Rc<Link>> {
    backend
        .actor_driven()
        .then(|| Rc::new(Link::new(backend.clone(), metrics.clone(), shared.cloned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_endpoints_resolve_on_the_same_origin() {
        let cfg = ringmux_core::config::load(
            "listen: 127.0.0.1:0\nbackends:\n  - name: l\n    url: http://127.0.0.1:9/api/sse\n    transport: sse\n",
            1,
        )
        .unwrap();
        let b = &cfg.backends[0];
        assert_eq!(
            endpoint_path(b, "/messages?sessionId=1").unwrap(),
            "/messages?sessionId=1"
        );
        assert_eq!(endpoint_path(b, "message?s=2").unwrap(), "/api/message?s=2");
        assert_eq!(
            endpoint_path(b, "http://127.0.0.1:9/m?s=3").unwrap(),
            "/m?s=3"
        );
        assert!(endpoint_path(b, "http://evil.example:9/m").is_err());
        assert!(endpoint_path(b, "/a b").is_err());
    }

    #[test]
    fn spans_are_replaced_in_order() {
        let body = br#"{"id":"x","params":{"_meta":{"progressToken":"t"}}}"#;
        let msg = jsonrpc::parse(
            br#"{"jsonrpc":"2.0","id":"x","method":"m","params":{"_meta":{"progressToken":"t"}}}"#,
        );
        assert!(msg.is_ok());
        let at = |needle: &[u8]| {
            let i = body
                .windows(needle.len())
                .position(|w| w == needle)
                .unwrap();
            i..i + needle.len()
        };
        let mut spans = vec![at(br#""t""#), at(br#""x""#)];
        let out = splice_all(body, &mut spans, b"7");
        assert_eq!(out, br#"{"id":7,"params":{"_meta":{"progressToken":7}}}"#);
    }
}
