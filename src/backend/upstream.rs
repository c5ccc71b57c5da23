//! The backend client: per shard, a keep-alive connection pool to each backend, its circuit
//! breaker ([`ringmux_core::circuit`]: passive outlier detection, exponential backoff,
//! half-open probes), and responses read as either a whole JSON body or an SSE event stream
//! handed out event by event (never buffered to the end).

use std::cell::{Cell, OnceCell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringmux_core::circuit::{self, Breaker};
use ringmux_core::config::{Backend, Era};
use ringmux_core::version;

pub use super::http::{
    final_answer, final_message, Body, Conn, EventStream, Response, Status, Verb,
};
use super::http::{Outgoing, Source};
use crate::backend::stdio::{Answer, Failure, Link};

/// Why a backend request failed. All of these are the backend's fault.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("unavailable after recent failures (next try in {0} ms)")]
    CoolingDown(u64),
    #[error("connect failed: {0}")]
    Connect(io::Error),
    #[error("timed out")]
    Timeout,
    /// Half-open: every probe slot is taken by an exchange testing the backend.
    #[error("the backend is being probed after failures; try again shortly")]
    Probing,
    /// The connection closed before any response byte (a fresh one too, after a pooled one):
    /// a hard failure for the circuit breaker, and a list page worth one retry.
    #[error("protocol error: connection closed before a response")]
    Dropped,
    #[error("no answer within request_deadline_ms ({0} ms)")]
    Deadline(u64),
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("{0}")]
    Process(String),
    #[error("answer larger than max_response_bytes ({0})")]
    TooLarge(usize),
    #[error(transparent)]
    OverBudget(#[from] crate::bufs::OverBudget),
}

/// A `server/discover` request of the 2026-07-28 era, as ringmux asks it.
pub fn discover_body() -> Vec<u8> {
    let mut body = Vec::with_capacity(256);
    body.extend_from_slice(
        b"{\"jsonrpc\":\"2.0\",\"id\":\"ringmux-probe\",\"method\":\"server/discover\",\"params\":{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"",
    );
    body.extend_from_slice(ringmux_core::version::SESSIONLESS.as_bytes());
    body.extend_from_slice(
        b"\",\"io.modelcontextprotocol/clientCapabilities\":{},\"io.modelcontextprotocol/clientInfo\":{\"name\":\"ringmux\",\"version\":\"",
    );
    body.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
    body.extend_from_slice(b"\"}}}}");
    body
}

/// The retry budget of list fetches, in tenths of a retry: each fetch earns
/// [`RETRY_EARNED`] (a retry per 5 fetches), up to [`RETRY_TOKENS_MAX`] (10 retries banked);
/// a retry spends 10. A backend in trouble so gets at most 20% more list traffic from
/// retries, never a storm.
const RETRY_EARNED: u32 = 2;
const RETRY_TOKENS_MAX: u32 = 100;

/// An exchange's breaker ticket, given back without an outcome if the exchange is dropped.
struct Held<'a> {
    pool: &'a Pool,
    ticket: Option<circuit::Ticket>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            let mut b = self.pool.breaker.get();
            b.release(t);
            self.pool.breaker.set(b);
        }
    }
}

/// A backend as seen from one shard.
pub struct Pool {
    pub index: u16,
    pub cfg: Backend,
    /// Set for stdio and legacy SSE backends: their child actors instead of connections (set
    /// later when `transport: auto` finds a legacy SSE server).
    link: OnceCell<Rc<Link>>,
    /// The backend's era: as configured, or as last found out (`Auto`: not known yet).
    era: Cell<Era>,
    /// A sessionless backend whose `server/discover` offered stateful versions too: stateful
    /// clients' sessions speak their own era to it ([`Pool::era_for`]).
    dual: Cell<bool>,
    metrics: Option<std::sync::Arc<crate::metrics::ShardMetrics>>,
    /// A Streamable HTTP `initialize` succeeded here once ([`Pool::mark_spoke_http`]).
    spoke_http: Cell<bool>,
    pub(super) idle: RefCell<Vec<Conn>>,
    /// The backend's circuit breaker, as this shard sees it.
    breaker: Cell<Breaker>,
    /// Retries left for idempotent list fetches ([`Pool::take_retry`]), in tenths.
    retry_tokens: Cell<u32>,
    /// The `instructions` the backend gave in its last `initialize` (or `server/discover`)
    /// answer on this shard, merged into ringmux's own. Kept per backend, not per session:
    /// a server's instructions rarely depend on the client, and 100k sessions would hold
    /// 100k copies.
    pub instructions: RefCell<Option<Rc<str>>>,
    /// An `https://` backend's rustls config (or why it could not be made).
    pub(super) tls: Option<Result<std::sync::Arc<rustls::ClientConfig>, String>>,
    /// A reload replaced or removed this pool's backend ([`crate::reload`]): a backend
    /// session made on it from now on is not kept.
    replaced: Cell<bool>,
}

/// W3C trace context for one exchange with an HTTP backend: the `traceparent` of the
/// gateway's span for it, and the client's `tracestate`, passed on as it came.
#[derive(Clone, Copy)]
pub struct Trace<'a> {
    pub parent: &'a [u8],
    pub state: Option<&'a str>,
}

/// Resolves every URL backend's host not resolved yet (the one place the gateway asks a
/// resolver, once at start: `core::config` does no I/O, and nothing resolves on the request
/// path), and reads the secrets of backends with `credentials:` (from the environment or a
/// file). [`crate::server::start`] calls it, so every way of starting the gateway resolves;
/// `ringmux check` calls it to name a host it cannot resolve.
pub fn resolve(
    cfg: &mut ringmux_core::config::Config,
) -> Result<(), ringmux_core::config::ConfigError> {
    use std::net::ToSocketAddrs;
    for (i, b) in cfg.backends.iter_mut().enumerate() {
        if let Some(c) = b.credentials.as_mut().filter(|c| c.value.is_none()) {
            c.load()
                .map_err(|message| ringmux_core::config::ConfigError {
                    path: format!("backends[{i}].credentials"),
                    message,
                })?;
        }
        if let Some(tls) = &b.tls {
            crate::tls::backend_config(tls).map_err(|message| {
                ringmux_core::config::ConfigError {
                    path: format!("backends[{i}].tls"),
                    message,
                }
            })?;
        }
        if b.stdio.is_some() || !b.addrs.is_empty() {
            continue;
        }
        b.addrs = (b.host.as_str(), b.port)
            .to_socket_addrs()
            .map_err(|e| ringmux_core::config::ConfigError {
                path: format!("backends[{i}].url"),
                message: format!("cannot resolve {}: {e}", b.host),
            })?
            .collect();
    }
    Ok(())
}

impl Pool {
    /// `metrics`: the shard's, for a legacy SSE link made later (`transport: auto`).
    pub fn new(
        index: u16,
        cfg: Backend,
        stdio: Option<Rc<Link>>,
        metrics: Option<std::sync::Arc<crate::metrics::ShardMetrics>>,
    ) -> Rc<Pool> {
        let link = OnceCell::new();
        let era = if stdio.is_some() {
            Era::Stateful
        } else {
            cfg.era
        };
        if let Some(l) = stdio {
            let _ = link.set(l);
        }
        let tls = cfg.tls.as_ref().map(crate::tls::backend_config);
        Rc::new(Pool {
            index,
            tls,
            cfg,
            link,
            era: Cell::new(era),
            dual: Cell::new(false),
            metrics,
            spoke_http: Cell::new(false),
            idle: RefCell::new(Vec::new()),
            breaker: Cell::new(Breaker::default()),
            retry_tokens: Cell::new(RETRY_TOKENS_MAX),
            replaced: Cell::new(false),
            instructions: RefCell::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Keeps the `instructions` member of a backend's `initialize` or `server/discover`
    /// result (a new text replaces the old; a result without one leaves it).
    pub fn keep_instructions(&self, result: &serde_json::Value) {
        let Some(text) = result.get("instructions").and_then(|i| i.as_str()) else {
            return;
        };
        let mut kept = self.instructions.borrow_mut();
        if kept.as_deref() != Some(text) {
            *kept = Some(Rc::from(text));
        }
    }

    /// `Err` while the circuit is open (no exchange may go until its backoff passes). A
    /// question only: half-open, it says yes, and the exchange itself takes a probe slot.
    pub fn check_health(&self, now: Instant) -> Result<(), UpstreamError> {
        match self.breaker.get().state(now) {
            circuit::State::Open => {
                let left = self.breaker.get().admit(now, &self.cfg.circuit).err();
                Err(UpstreamError::CoolingDown(
                    left.unwrap_or_default().as_millis().max(1) as u64,
                ))
            }
            _ => Ok(()),
        }
    }

    /// The backend's era as this shard knows it (`Auto`: not found out yet).
    pub fn era_now(&self) -> Era {
        self.era.get()
    }

    /// A list fetch was made: it earns a fraction of a retry.
    pub fn earn_retry(&self) {
        self.retry_tokens
            .set((self.retry_tokens.get() + RETRY_EARNED).min(RETRY_TOKENS_MAX));
    }

    /// Whether a failed idempotent request (a list page) may be sent again now: the circuit
    /// is not open and the budget has a retry left (then spent).
    pub fn take_retry(&self) -> bool {
        let left = self.retry_tokens.get();
        if left < 10 || !self.is_healthy(Instant::now()) {
            return false;
        }
        self.retry_tokens.set(left - 10);
        if let Some(m) = &self.metrics {
            m.list_retries.add(1);
        }
        true
    }

    /// Whether a child actor carries its exchanges (stdio, legacy HTTP+SSE): no HTTP headers
    /// of ours reach the server.
    pub fn is_actor(&self) -> bool {
        self.link.get().is_some()
    }

    /// The circuit's state now.
    pub fn circuit(&self, now: Instant) -> circuit::State {
        self.breaker.get().state(now)
    }

    pub fn is_healthy(&self, now: Instant) -> bool {
        self.check_health(now).is_ok()
    }

    /// Opens the circuit after a failure seen outside an exchange (an era probe's).
    pub fn mark_failed(&self, now: Instant, why: &dyn std::fmt::Display) {
        let mut b = self.breaker.get();
        let wait = b.open(now, &self.cfg.circuit);
        self.breaker.set(b);
        self.opened(wait, b.failures(), why);
    }

    fn opened(&self, wait: Duration, failures: u32, why: &dyn std::fmt::Display) {
        self.publish_cooling(crate::metrics::uptime_ms() + wait.as_millis() as u64);
        if let Some(m) = &self.metrics {
            m.circuit_opened.add(1);
        }
        if self.cfg.era == Era::Auto && self.link.get().is_none() {
            // It may come back as another server: ask again.
            self.era.set(Era::Auto);
        }
        tracing::warn!(backend = %self.cfg.name, failures, backoff_ms = wait.as_millis() as u64, "backend failed; circuit open: {why}");
    }

    /// Records an exchange's outcome with the breaker (opening or closing the circuit) at
    /// `now` (a failure's own time: a backoff counts from it).
    fn record(
        &self,
        now: Instant,
        outcome: circuit::Outcome,
        why: &dyn std::fmt::Display,
        ticket: Option<circuit::Ticket>,
    ) {
        let mut b = self.breaker.get();
        let change = b.record(now, outcome, &self.cfg.circuit, ticket);
        self.breaker.set(b);
        match change {
            Some(Some(wait)) => self.opened(wait, b.failures(), why),
            Some(None) => {
                tracing::info!(backend = %self.cfg.name, "backend recovered; circuit closed");
                self.publish_cooling(0);
            }
            None if outcome == circuit::Outcome::Timeout => {
                tracing::warn!(backend = %self.cfg.name, "backend request timed out")
            }
            None => {}
        }
    }

    /// A failure seen on an exchange already recorded (a stream that broke after its head):
    /// it may open a closed circuit, never close one or count while half-open.
    pub fn record_failure(&self, e: &UpstreamError) {
        self.record_error(e, None);
    }

    /// A failed exchange. A refused connection or garbage counts at once; a timeout only
    /// after a few in a row (one slow call, a tool waiting on a human, must not take the
    /// backend away from every other session). A call that was too long or too large, or the
    /// gateway short of memory, says nothing of the backend's other calls.
    fn record_error(&self, e: &UpstreamError, ticket: Option<circuit::Ticket>) {
        let outcome = match e {
            UpstreamError::Deadline(_)
            | UpstreamError::TooLarge(_)
            | UpstreamError::OverBudget(_) => circuit::Outcome::Ignored,
            UpstreamError::Timeout => circuit::Outcome::Timeout,
            // A dropped connection is the pool's to retry (a stale keep-alive one gets a fresh
            // one at once); one that still closes before answering is a backend that is going
            // or gone (a killed server's last accepted connections): a hard failure.
            UpstreamError::Dropped => circuit::Outcome::Hard,
            // Refused by the breaker itself: no exchange happened.
            UpstreamError::CoolingDown(_) | UpstreamError::Probing => circuit::Outcome::Ignored,
            _ => circuit::Outcome::Hard,
        };
        self.record(Instant::now(), outcome, e, ticket);
    }

    /// A backend that answered: a server error (5xx) counts toward the error rate. The era
    /// probe (`era_probe`) wants a definite answer: any other refusal (408, 429, 5xx) is a
    /// failure there.
    fn record_answer(&self, status: Status, era_probe: bool, ticket: Option<circuit::Ticket>) {
        let outcome = match status {
            Status::Refused(400 | 404 | 405 | 406 | 415) if era_probe => circuit::Outcome::Success,
            Status::Refused(_) if era_probe => circuit::Outcome::Hard,
            Status::Refused(s) if s >= 500 => circuit::Outcome::Soft,
            _ => circuit::Outcome::Success,
        };
        self.record(
            Instant::now(),
            outcome,
            &format_args!("answered {status}"),
            ticket,
        );
    }

    /// A reload replaced or removed this backend: joins still under way on this pool are
    /// not kept.
    pub fn mark_replaced(&self) {
        self.replaced.set(true);
    }

    pub fn is_replaced(&self) -> bool {
        self.replaced.get()
    }

    /// Tells the admin listener until when this shard skips the backend.
    fn publish_cooling(&self, until_ms: u64) {
        if let Some(c) = self
            .metrics
            .as_ref()
            .and_then(|m| m.cooling_until.get(self.index as usize))
        {
            c.store(until_ms, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Sends one message to the backend (session) and reads the answer's head (`traceparent`:
    /// W3C trace context for an HTTP backend). Over HTTP: a
    /// POST with MCP headers; a pooled connection that turns out dead before any response byte
    /// is replaced by a fresh one once.
    pub async fn post(
        self: &Rc<Self>,
        session: Option<&str>,
        protocol_version: &str,
        body: &[u8],
        now: Instant,
        trace: Option<&Trace<'_>>,
    ) -> Result<Response, UpstreamError> {
        let out = Outgoing {
            verb: Verb::Send,
            session,
            protocol_version,
            body,
            last_event_id: None,
            mcp_method: None,
            mcp_name: None,
            trace: trace.copied(),
            era_probe: false,
        };
        self.send(&out, now).await
    }

    /// POSTs one 2026-07-28 request: no session, the era's version header, and the routing
    /// headers `Mcp-Method` and (for the methods that name something) `Mcp-Name`, already
    /// encoded for a header.
    pub async fn post_sessionless(
        self: &Rc<Self>,
        body: &[u8],
        method: &str,
        name: Option<&str>,
        now: Instant,
        trace: Option<&Trace<'_>>,
    ) -> Result<Response, UpstreamError> {
        let out = Outgoing {
            verb: Verb::Send,
            session: None,
            protocol_version: ringmux_core::version::SESSIONLESS,
            body,
            last_event_id: None,
            mcp_method: Some(method),
            mcp_name: name,
            trace: trace.copied(),
            era_probe: false,
        };
        self.send(&out, now).await
    }

    /// The backend's era, asking it first if that is not known: a `server/discover` of the
    /// 2026-07-28 era that answers with that version makes it sessionless; any other answer
    /// stateful. Unreachable: an error, and the question stays open.
    pub async fn detect(self: &Rc<Self>) -> Result<Era, UpstreamError> {
        if self.era.get() != Era::Auto {
            return Ok(self.era.get());
        }
        let body = discover_body();
        let out = Outgoing {
            verb: Verb::Send,
            session: None,
            protocol_version: ringmux_core::version::SESSIONLESS,
            body: &body,
            last_event_id: None,
            mcp_method: Some("server/discover"),
            mcp_name: None,
            trace: None,
            era_probe: true,
        };
        let resp = self.send(&out, Instant::now()).await?;
        let status = resp.status;
        let answer = final_message(resp.body).await.ok();
        let result = answer
            .as_deref()
            .and_then(|a| serde_json::from_slice::<serde_json::Value>(a).ok());
        let versions = result
            .as_ref()
            .and_then(|v| v.pointer("/result/supportedVersions")?.as_array().cloned())
            .unwrap_or_default();
        let offers = versions
            .iter()
            .any(|v| v.as_str() == Some(ringmux_core::version::SESSIONLESS));
        let stateful_too = versions.iter().any(|v| {
            v.as_str()
                .is_some_and(|v| version::is_stateful(v.as_bytes()))
        });
        // Only a definite answer decides: a server that is starting, overloaded or broken
        // (5xx, 408, 429, a body that is not JSON-RPC) is asked again after its backoff.
        let era = match status {
            Status::Ok if offers => Era::Sessionless,
            Status::Ok if result.as_ref().is_some_and(|v| v.get("error").is_some()) => {
                Era::Stateful
            }
            Status::Refused(400 | 404 | 405 | 406 | 415) => Era::Stateful,
            _ => {
                let e = UpstreamError::Protocol(format!(
                    "server/discover probe answered {status} without telling its era"
                ));
                // A refusal was recorded as the failure it is; a 200 that tells nothing was
                // recorded as an answer, and fails here.
                if status == Status::Ok {
                    self.mark_failed(Instant::now(), &e);
                }
                return Err(e);
            }
        };
        let dual = era == Era::Sessionless && stateful_too;
        tracing::info!(backend = %self.cfg.name, era = ?era, dual, "backend era found out");
        self.era.set(era);
        self.dual.set(dual);
        Ok(era)
    }

    /// The era a session of a client of `client_era` speaks to this backend (asking the
    /// backend first if that is not known): the client's own when the backend offers it, so
    /// nothing is translated (a stateful client's sampling and elicitation reach it as
    /// requests; a modern client gets the backend's own `input_required`); the backend's
    /// otherwise.
    pub async fn era_for(self: &Rc<Self>, client_era: Era) -> Result<Era, UpstreamError> {
        let era = self.detect().await?;
        Ok(match (era, client_era) {
            (Era::Sessionless, Era::Stateful) if self.dual.get() => Era::Stateful,
            (era, _) => era,
        })
    }

    /// For a `transport: auto` backend that refused `initialize` over Streamable HTTP: whether
    /// its URL opens a legacy HTTP+SSE stream; if so, sessions reach it through a child actor
    /// from now on (one connection per session).
    pub async fn adopt_legacy_sse(self: &Rc<Self>) -> bool {
        let Some(metrics) = &self.metrics else {
            return false;
        };
        if self.link.get().is_some() {
            return true;
        }
        if self.cfg.era != Era::Auto || self.spoke_http.get() {
            return false;
        }
        let probe = async {
            let resp = self.open_stream(None, "2024-11-05", None).await.ok()?;
            let Body::Events(mut events) = resp.body else {
                return None;
            };
            // The first event of a legacy SSE stream names the endpoint to POST to.
            let first = events.next().await.ok()??;
            (first.event.as_deref() == Some("endpoint")).then_some(())
        };
        if probe.await.is_none() {
            return false;
        }
        let mut cfg = self.cfg.clone();
        cfg.legacy_sse = true;
        cfg.era = Era::Stateful;
        let link = Rc::new(Link::new(cfg, metrics.clone(), None));
        tracing::info!(backend = %self.cfg.name, "backend speaks the legacy HTTP+SSE transport");
        self.era.set(Era::Stateful);
        // Another session of this shard may have adopted it meanwhile: either link serves.
        let _ = self.link.set(link);
        true
    }

    /// A session was initialized over Streamable HTTP: this backend is never taken for a
    /// legacy SSE server afterwards (a later 4xx is that session's problem, an auth refusal
    /// say, not a sign of another transport).
    pub fn mark_spoke_http(&self) {
        self.spoke_http.set(true);
    }

    /// Opens the backend session's GET stream (or resumes a stream after `last_event_id`).
    /// The events of the answer wait for as long as the stream is quiet.
    pub async fn open_stream(
        self: &Rc<Self>,
        session: Option<&str>,
        protocol_version: &str,
        last_event_id: Option<&str>,
    ) -> Result<Response, UpstreamError> {
        let out = Outgoing {
            verb: Verb::Listen,
            session,
            protocol_version,
            body: b"",
            last_event_id,
            mcp_method: None,
            mcp_name: None,
            trace: None,
            era_probe: false,
        };
        self.send(&out, Instant::now()).await
    }

    async fn send(
        self: &Rc<Self>,
        out: &Outgoing<'_>,
        now: Instant,
    ) -> Result<Response, UpstreamError> {
        let mut b = self.breaker.get();
        let admitted = b.admit(now, &self.cfg.circuit);
        self.breaker.set(b);
        let ticket = match admitted {
            Ok(t) => t,
            Err(left) if left.is_zero() => return Err(UpstreamError::Probing),
            Err(left) => return Err(UpstreamError::CoolingDown(left.as_millis().max(1) as u64)),
        };
        // Given back however the exchange ends: a dropped one (the caller cancelled or timed
        // out) frees its probe slot without an outcome.
        let mut held = Held {
            pool: self,
            ticket: Some(ticket),
        };
        let result = match self.link.get() {
            Some(link) => self.over_stdio(link, out).await,
            None => self.request_inner(out).await,
        };
        let ticket = held.ticket.take();
        match &result {
            Ok(r) => self.record_answer(r.status, out.era_probe, ticket),
            Err(e) => self.record_error(e, ticket),
        }
        result
    }

    /// Deletes a backend session that is no longer wanted, quietly: a backend cooling down is
    /// not asked (its sessions expire there), and a failure is logged at debug level and
    /// does not count against the backend's health (cleanup must not take away a backend
    /// that serves calls). A child actor's is always done: it stops the session's child.
    pub async fn delete_session(self: &Rc<Self>, session: &str, protocol_version: &str) {
        let out = Outgoing {
            verb: Verb::End,
            session: Some(session),
            protocol_version,
            body: b"",
            last_event_id: None,
            mcp_method: None,
            mcp_name: None,
            trace: None,
            era_probe: false,
        };
        let result = match self.link.get() {
            Some(link) => self.over_stdio(link, &out).await,
            None if !self.is_healthy(Instant::now()) => return,
            None => self.request_inner(&out).await,
        };
        match result {
            Ok(resp) => {
                let _ = final_message(resp.body).await;
            }
            Err(e) => {
                tracing::debug!(backend = %self.cfg.name, "backend session not deleted: {e}")
            }
        }
    }

    /// The same exchange with a stdio child, answered in the same shape.
    async fn over_stdio(
        self: &Rc<Self>,
        link: &Link,
        out: &Outgoing<'_>,
    ) -> Result<Response, UpstreamError> {
        let answer = link
            .exchange(out.verb, out.session, out.body)
            .await
            .map_err(|f| match f {
                Failure::Timeout => UpstreamError::Timeout,
                Failure::Unavailable(why) => UpstreamError::Process(why),
            })?;
        let (status, session_id, body) = match answer {
            Answer::Status(s) => (s, None, Body::Full(Vec::new())),
            Answer::Attached(key, msg) => (Status::Ok, Some(key), Body::Full(msg)),
            Answer::Message(msg) => (Status::Ok, None, Body::Full(msg)),
            Answer::Messages(first, rx) => {
                let events = EventStream {
                    source: Source::Messages { first, rx },
                    pool: self.clone(),
                    idle: Some(self.cfg.request_timeout),
                    deadline: Some(self.deadline()),
                };
                (Status::Ok, None, Body::Events(Box::new(events)))
            }
        };
        Ok(Response {
            status,
            session_id,
            body,
        })
    }

    /// When a request sent now must be answered whole (`request_deadline_ms`).
    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.cfg.request_deadline
    }

    /// A read that timed out because the deadline came is the deadline's failure.
    pub(super) fn past(&self, deadline: Instant, e: UpstreamError) -> UpstreamError {
        match e {
            UpstreamError::Timeout if Instant::now() >= deadline => {
                UpstreamError::Deadline(self.cfg.request_deadline.as_millis() as u64)
            }
            e => e,
        }
    }

    /// How long the next read may wait: the request timeout, cut short by `deadline`.
    pub(super) fn wait_before(&self, deadline: Instant) -> Result<Duration, UpstreamError> {
        match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(left.min(self.cfg.request_timeout)),
            _ => Err(UpstreamError::Deadline(
                self.cfg.request_deadline.as_millis() as u64,
            )),
        }
    }
}
