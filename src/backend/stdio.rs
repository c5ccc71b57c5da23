//! stdio backends: ringmux spawns the configured command and speaks newline-delimited JSON-RPC
//! over its stdin/stdout; its stderr goes to ringmux's log, line by line, with the backend's
//! name. Legacy HTTP+SSE (2024-11-05) backends are driven the same way ([`connect_sse`]): the
//! SSE stream stands for stdout, the POSTs to its endpoint for stdin.
//!
//! Each child is driven by one actor task ([`run`]) on one shard, reached through a `Send`
//! channel ([`Handle`]): a `shared` backend's single child lives on its owner shard (its
//! stable id % shards, whatever its place in the config) and every shard's pool holds a handle
//! to it; a `per_session` backend gets one actor per client session, on the session's shard. The actor never blocks on the child:
//! a writer task feeds its stdin, a reader task splits its stdout into lines, another logs its
//! stderr. The three are socket pairs (monoio reads sockets on either driver).
//!
//! Sessions *attach* to an actor. Which session each message is for is decided by the
//! sans-IO multiplexer ([`ringmux_core::mux`]: ids renumbered per child, unprompted messages
//! attributed, subscriptions tracked); the actor keeps the channels and does what it says. An
//! unprompted message for a session goes on the stream of its one in-flight request, else on
//! its GET stream, else it waits (bounded) until the session opens one. A log message that
//! cannot be attributed is written to ringmux's log instead.
//!
//! A child that exits fails its in-flight requests at once with an error naming the backend
//! and the exit status, and is restarted with exponential backoff (`retry_backoff_ms`,
//! doubling to 32x; reset after it ran 10 s). Stopping a child closes its stdin, then sends
//! SIGTERM after 2 s and SIGKILL after one more; it is always reaped. Children get
//! `PR_SET_PDEATHSIG(SIGKILL)`, so none outlives ringmux.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ringmux_core::backoff::Backoff;
use ringmux_core::config::Backend;
use ringmux_core::error::RpcError;
use ringmux_core::jsonrpc::{self, Kind, Raw};
use ringmux_core::mux::{FromChild, Mux, Refused};
use serde_json::value::RawValue;

use crate::metrics::ShardMetrics;

use super::legacy_sse::connect_sse;
pub use super::link::{channel, link_for, Answer, Failure, Handle, Inbox, Link, Outbox, ToChild};
use super::process::{spawn, stop, Running};

/// Longest stdout line accepted (one JSON-RPC message).
pub(super) const MAX_LINE: usize = 64 << 20;
/// How often a running child's exit is checked (besides its stdout closing).
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A child that ran this long resets the restart backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// What ringmux declares to a shared child: it relays sampling, elicitation and roots to
/// whichever client a request can be attributed to.
const SHARED_INIT_PARAMS: &str = r#"{"protocolVersion":"2025-11-25","capabilities":{"sampling":{},"elicitation":{"form":{},"url":{}},"roots":{"listChanged":true}},"clientInfo":{"name":"ringmux","version":"0.1.0"}}"#;

/// Unprompted messages kept for a session until it opens its GET stream.
const BACKLOG: usize = 64;

/// Where a session's unprompted messages go.
#[derive(Default)]
struct Listener {
    to: Option<Outbox>,
    /// Messages for it that arrived while it had no stream open (a server asking for roots
    /// right after `initialize`), delivered when it opens one.
    backlog: std::collections::VecDeque<Vec<u8>>,
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
    /// Failed starts and exits in a row, and when the next start may go.
    backoff: Backoff,
    last_error: String,
    /// Which session each message is for ([`Mux`]'s decisions).
    mux: Mux,
    /// Attached sessions' streams for unprompted messages.
    listeners: HashMap<u64, Listener>,
    /// Where each request in flight (by the mux's number) gets its messages.
    outboxes: HashMap<u64, Outbox>,
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
        backoff: Backoff::default(),
        last_error: "not started yet".into(),
        mux: Mux::new(),
        listeners: HashMap::new(),
        outboxes: HashMap::new(),
    };
    loop {
        if a.child.is_none() && a.wants_child() && a.backoff.waiting(Instant::now()).is_none() {
            a.start().await;
        }
        let wait = match (&a.child, a.backoff.retry_at()) {
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
                if !a.shared && a.mux.is_empty() {
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
        self.shared || !self.mux.is_empty()
    }

    fn unavailable(&self) -> String {
        match self.backoff.retry_at() {
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
                self.backoff.clear_wait();
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
        let backoff = self
            .backoff
            .fail(Instant::now(), self.backend.retry_backoff);
        tracing::warn!(backend = %self.name(), failures = self.backoff.failures(), backoff_ms = backoff.as_millis() as u64, "stdio backend: {why}");
        self.last_error = why;
    }

    /// The child is gone (or going): reap it, fail its requests, schedule a restart.
    async fn exited(&mut self, how: &str) {
        let Some(child) = self.child.take() else {
            return;
        };
        self.metrics.stdio_children.sub(1);
        self.metrics.stdio_restarts.add(1);
        if child.started.elapsed() >= STABLE_AFTER {
            self.backoff.reset();
        }
        let status = stop(&self.backend.name, child).await;
        let why = match status {
            Some(s) => format!("the process exited ({s})"),
            None if self.backend.legacy_sse => "the legacy SSE stream ended".to_string(),
            None => format!("the process {how}"),
        };
        let reason = format!("{why}; restarting");
        for (n, id) in self.mux.fail_all() {
            if let Some(to) = self.outboxes.remove(&n) {
                let _ = to.unbounded_send(error_response(&self.backend.name, &id, &reason));
            }
        }
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
                    self.detach(attach);
                }
            }
            ToChild::Detach { attach } => self.detach(attach),
            ToChild::Listen { attach, to } => {
                if let Some(l) = self.listeners.get_mut(&attach) {
                    for msg in l.backlog.drain(..) {
                        let _ = to.unbounded_send(msg);
                    }
                    l.to = Some(to);
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
        if self.child.is_none() && self.backoff.waiting(Instant::now()).is_none() {
            self.start().await;
        }
        let (Some(_), Some(result)) = (&self.child, &self.init_result) else {
            return Err(self.unavailable());
        };
        let mut response = Vec::with_capacity(result.len() + 48);
        jsonrpc::write_result(&mut response, id, result);
        let attach = self.mux.attach();
        self.listeners.insert(attach, Listener::default());
        Ok((attach, response))
    }

    fn detach(&mut self, attach: u64) {
        for n in self.mux.detach(attach) {
            self.outboxes.remove(&n);
        }
        self.listeners.remove(&attach);
    }

    fn write(&self, line: Vec<u8>) {
        if let Some(c) = &self.child {
            let _ = c.stdin.unbounded_send(line);
        }
    }

    fn request(&mut self, attach: u64, body: &[u8], to: Outbox) {
        if self.child.is_none() {
            if let Ok(Some(id)) = jsonrpc::parse(body).map(|m| m.id) {
                let _ =
                    to.unbounded_send(error_response(self.name(), id.get(), &self.unavailable()));
            }
            return;
        }
        match self.mux.request(attach, body) {
            Ok((n, line)) => {
                self.outboxes.insert(n, to);
                self.write(line);
            }
            Err(Refused::NotARequest) => {}
            Err(Refused::NotAttached) => {
                if let Ok(Some(id)) = jsonrpc::parse(body).map(|m| m.id) {
                    let why = self.unavailable();
                    let _ = to.unbounded_send(error_response(self.name(), id.get(), &why));
                }
            }
        }
    }

    fn send(&mut self, attach: u64, body: &[u8]) {
        match self.mux.send(attach, body) {
            Some(line) => self.write(line),
            None => {
                tracing::debug!(backend = %self.name(), "message for the child dropped (an answer to a request this session was not asked, or nothing to send)")
            }
        }
    }

    /// Where an unprompted message for session `attach` goes: the stream of its one request
    /// in flight, else its GET stream, else any of its requests' streams.
    fn route(&self, attach: u64) -> Option<&Outbox> {
        let mut mine = self
            .mux
            .in_flight(attach)
            .filter_map(|n| self.outboxes.get(&n));
        let first = mine.next();
        if let (Some(only), None) = (first, mine.next()) {
            if !only.is_closed() {
                return Some(only);
            }
        }
        let listener = self.listeners.get(&attach)?.to.as_ref();
        listener.filter(|l| !l.is_closed()).or(first)
    }

    /// Sends an unprompted message to session `attach` ([`Actor::route`]), or keeps it until
    /// the session opens a stream.
    fn deliver(&mut self, attach: u64, msg: &[u8]) {
        if let Some(to) = self.route(attach) {
            let _ = to.unbounded_send(msg.to_vec());
            return;
        }
        let name = self.backend.name.clone();
        if let Some(l) = self.listeners.get_mut(&attach) {
            if l.backlog.len() == BACKLOG {
                l.backlog.pop_front();
                tracing::warn!(backend = %name, "session has no stream open; oldest waiting message dropped");
            }
            l.backlog.push_back(msg.to_vec());
        }
    }

    /// One line from the child's stdout: done as the multiplexer says.
    fn on_line(&mut self, line: &[u8]) {
        match self.mux.on_line(line) {
            FromChild::Answer { pending, message } => {
                if let Some(to) = self.outboxes.remove(&pending) {
                    let _ = to.unbounded_send(message);
                }
            }
            FromChild::Progress { pending, message } => {
                if let Some(to) = self.outboxes.get(&pending) {
                    let _ = to.unbounded_send(message);
                }
            }
            FromChild::Sessions(to) => {
                for a in to {
                    self.deliver(a, line);
                }
            }
            FromChild::Reply(r) => self.write(r),
            FromChild::Log => {
                tracing::info!(backend = %self.name(), "log: {}", String::from_utf8_lossy(line))
            }
            FromChild::Dropped(why) => tracing::debug!(backend = %self.name(), "{why}; dropped"),
            FromChild::Garbage => garbage(self.name(), line),
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
