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
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ringmux_core::backoff::Backoff;
use ringmux_core::config::Backend;
use ringmux_core::error::RpcError;
use ringmux_core::jsonrpc::{self, raw_str, span_of, Kind, Raw};
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
        backoff: Backoff::default(),
        last_error: "not started yet".into(),
        attaches: HashMap::new(),
        next_attach: 1,
        pending: HashMap::new(),
        asked: HashMap::new(),
        next_id: 1,
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
        if self.child.is_none() && self.backoff.waiting(Instant::now()).is_none() {
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

#[cfg(test)]
mod tests {
    use super::*;

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
