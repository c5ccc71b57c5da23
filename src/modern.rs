//! The sessionless era (2026-07-28) served to modern clients.
//!
//! A modern request carries no session: its `MCP-Protocol-Version` header names a version
//! of that era, its `params._meta` the protocol version and the client's capabilities, and
//! its `Mcp-Method`/`Mcp-Name` headers repeat the body (checked here: 400, -32020). ringmux
//! serves it from a **principal session**: an ordinary [`Session`] keyed by the client's
//! principal (the configured principal header, else one principal for every unauthenticated
//! client) and its declared capabilities, living on the shard that key hashes to. Its backend
//! sessions are initialized with those capabilities, so stateful backends keep working
//! unchanged behind modern clients.
//!
//! What differs from the stateful path:
//! - every result carries `resultType`; cacheable ones `ttlMs`/`cacheScope`
//!   ([`complete`]); errors go out with the era's HTTP statuses;
//! - a backend's request in the middle of a call (sampling, elicitation, roots) cannot reach a
//!   sessionless client: the call is parked on this shard and the client gets an
//!   `input_required` result whose `requestState` is sealed (XChaCha20-Poly1305) and names
//!   the shard, the parked call, the principal, the request it belongs to and an expiry. The
//!   client's retry answers the backend and the call resumes ([`resume`]);
//! - `subscriptions/listen` streams get the backends' list_changed and resources/updated,
//!   tagged with the subscription id ([`State::publish`]);
//! - client ids are renumbered: requests of one principal share backend sessions, and two
//!   clients may well use the same id.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use futures_channel::mpsc::{self, UnboundedSender};
use futures_util::future::{abortable, select, AbortHandle, Either};
use futures_util::StreamExt;
use ringmux_core::era;
use ringmux_core::http::{self, Method, RequestHead};
use ringmux_core::jsonrpc::{self, raw_str, span_of, Kind, Message, Raw};
use ringmux_core::method::{self, Handler, Local, Method as McpMethod, NameParam};
use ringmux_core::seal::{open, seal, Claims, STATE_PREFIX};
use ringmux_core::{sse, version};
use serde_json::value::RawValue;

use crate::dispatch;
use crate::pipeline::{ClientEra, Op, Principal, Request};
use crate::relay;
use crate::reply::Reply;
use crate::session::{InFlight, Session};
use crate::shard::{Call, Shard};
use crate::upstream::{EventStream, Pool, UpstreamError};
use ringmux_core::sse::Event;

/// JSON-RPC codes of the 2026-07-28 era.
pub mod code {
    /// A routing header is missing or does not match the body.
    pub const HEADER_MISMATCH: i32 = -32020;
    /// The request needs a capability the client did not declare.
    pub const MISSING_CAPABILITY: i32 = -32021;
    /// The requested protocol version is not served.
    pub const UNSUPPORTED_VERSION: i32 = -32022;
}

/// What a backend hears when its request, put to a sessionless client, expired unanswered.
const NOT_ANSWERED: &str = "the client did not answer within modern.request_state_ttl_ms";

const META_SUBSCRIPTION: &str = "io.modelcontextprotocol/subscriptionId";

/// The members of a modern request that only this era reads, parsed here rather than by the
/// hot-path parser (which the stateful era shares).
#[derive(serde::Deserialize, Default)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    params: Option<EnvelopeParams<'a>>,
}

#[derive(serde::Deserialize, Default)]
struct EnvelopeParams<'a> {
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<EnvelopeMeta<'a>>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
    #[serde(rename = "requestState", borrow, default)]
    request_state: Option<&'a RawValue>,
    #[serde(rename = "inputResponses", borrow, default)]
    input_responses: Option<&'a RawValue>,
    #[serde(borrow, default)]
    notifications: Option<&'a RawValue>,
}

#[derive(serde::Deserialize, Default)]
struct EnvelopeMeta<'a> {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
    protocol_version: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities", borrow, default)]
    client_capabilities: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/clientInfo", borrow, default)]
    client_info: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/logLevel", borrow, default)]
    log_level: Option<&'a RawValue>,
}

impl<'a> Envelope<'a> {
    /// The envelope of `body` (a message [`jsonrpc::parse`] accepted); empty when `params` is
    /// not an object of the expected shape.
    fn of(body: &'a [u8]) -> EnvelopeParams<'a> {
        serde_json::from_slice::<Envelope<'a>>(body)
            .ok()
            .and_then(|e| e.params)
            .unwrap_or_default()
    }
}

impl<'a> EnvelopeParams<'a> {
    fn meta(&self, pick: impl Fn(&EnvelopeMeta<'a>) -> Option<&'a RawValue>) -> Option<Raw<'a>> {
        self.meta.as_ref().and_then(pick).map(Raw::from)
    }
}

// ---------------------------------------------------------------------------------------------
// The front door (accepting shard)
// ---------------------------------------------------------------------------------------------

/// Whether a request is of the modern era: no session, and a version header that names no
/// stateful version (an unknown one is answered -32022 here).
pub fn is_modern(head: &RequestHead, buf: &[u8]) -> bool {
    let h = &head.headers;
    h.session_id.is_none()
        && h.protocol_version
            .as_ref()
            .is_some_and(|r| !version::is_stateful(&buf[r.clone()]))
}

/// A 2026-07-28 request: transport and envelope checks, then the shard its principal hashes to.
pub async fn front(shard: &Rc<Shard>, head: &RequestHead, buf: &[u8], body: &[u8]) -> Reply {
    if head.method != Method::Post {
        return Reply::http_error(
            405,
            -32600,
            "Method Not Allowed: 2026-07-28 requests are POSTed (no GET stream, no DELETE)",
        );
    }
    let h = &head.headers;
    let field = |r: &Option<std::ops::Range<usize>>| r.clone().map(|r| &buf[r]);
    if !field(&h.content_type).is_some_and(|ct| http::media_type_is(ct, b"application/json")) {
        return Reply::http_error(
            415,
            -32600,
            "Unsupported Media Type: Content-Type must be application/json",
        );
    }
    let accept = field(&h.accept).unwrap_or(b"*/*");
    let sse = http::accepts(accept, b"text/event-stream");
    if !sse && !http::accepts(accept, b"application/json") {
        return Reply::http_error(
            406,
            -32600,
            "Not Acceptable: Accept must include application/json and text/event-stream",
        );
    }
    let msg = match jsonrpc::parse(body) {
        Ok(m) => m,
        Err(e) => return Reply::error_with_status(None, &e, 400),
    };
    match msg.kind {
        Kind::Response => {
            return Reply::http_error(
                400,
                -32600,
                "Bad Request: a 2026-07-28 body is a single request or notification",
            )
        }
        // The era has no client notification a gateway must act on (a client abandons a
        // request by closing its POST).
        Kind::Notification => return Reply::Status(202),
        Kind::Request => {}
    }
    if msg.method == "subscriptions/listen" && !sse {
        return Reply::http_error(
            406,
            -32600,
            "Not Acceptable: subscriptions/listen answers with text/event-stream",
        );
    }
    if let Some(name) = h.duplicated {
        let mut body = Vec::with_capacity(96);
        let message = format!("{name} header appears more than once");
        jsonrpc::write_error_parts(&mut body, msg.id, code::HEADER_MISMATCH, &message, None);
        return Reply::Json {
            status: 400,
            body,
            session: None,
        };
    }
    let env = Envelope::of(body);
    if let Err(reply) = check(
        &env,
        &msg,
        field(&h.protocol_version),
        field(&h.mcp_method),
        field(&h.mcp_name),
    ) {
        return reply;
    }
    let named = shard
        .cfg
        .modern
        .principal_header
        .as_deref()
        .and_then(|name| http::find_header(&buf[..head.head_len], name.as_bytes()));
    let caps = env.meta(|m| m.client_capabilities);
    let key = principal_key(named.unwrap_or(b"anonymous"), caps);
    let principal = match named {
        Some(v) => Principal::Header(String::from_utf8_lossy(v).into()),
        None => Principal::Anonymous,
    };
    let req = Request {
        principal,
        era: ClientEra::Sessionless,
        session: Some(&key),
        op: Op::Message { sse },
        body,
    };
    crate::pipeline::run(shard, req).await
}

/// The routing-header and envelope checks, in the order the era's reference implementation
/// applies them.
fn check(
    env: &EnvelopeParams<'_>,
    msg: &Message<'_>,
    version_header: Option<&[u8]>,
    method_header: Option<&[u8]>,
    name_header: Option<&[u8]>,
) -> Result<(), Reply> {
    let id = msg.id;
    let fail = |status: u16, code: i32, message: &str, data: Option<&str>| {
        let mut body = Vec::with_capacity(160);
        jsonrpc::write_error_parts(&mut body, id, code, message, data);
        Reply::Json {
            status,
            body,
            session: None,
        }
    };
    let requested = env.meta(|m| m.protocol_version);
    if requested.is_none() || env.meta(|m| m.client_capabilities).is_none() {
        return Err(fail(
            400,
            -32602,
            "params._meta must carry io.modelcontextprotocol/protocolVersion and io.modelcontextprotocol/clientCapabilities",
            None,
        ));
    }
    let requested = requested.and_then(raw_str);
    if requested.as_deref().map(str::as_bytes) != version_header {
        return Err(fail(
            400,
            code::HEADER_MISMATCH,
            "MCP-Protocol-Version header does not match params._meta's protocol version",
            None,
        ));
    }
    if method_header != Some(msg.method.as_bytes()) {
        return Err(fail(
            400,
            code::HEADER_MISMATCH,
            "Mcp-Method header does not match the body's method",
            None,
        ));
    }
    let entry = method::lookup(&msg.method);
    let named = match entry.and_then(|m| m.name_header) {
        Some(NameParam::Name) => msg.params.name,
        Some(NameParam::Uri) => msg.params.uri,
        None => None,
    };
    if let Some(named) = named.filter(|n| n.get() != "null") {
        let header = name_header.and_then(decode_header_value);
        if raw_str(named).as_deref().map(str::as_bytes) != header.as_deref() {
            return Err(fail(
                400,
                code::HEADER_MISMATCH,
                "Mcp-Name header does not match the body's name or uri",
                None,
            ));
        }
    }
    let requested = requested.unwrap_or_default();
    if requested != version::SESSIONLESS {
        let mut data = Vec::with_capacity(64);
        data.extend_from_slice(b"{\"supported\":[\"");
        data.extend_from_slice(version::SESSIONLESS.as_bytes());
        data.extend_from_slice(b"\"],\"requested\":");
        jsonrpc::write_str(&mut data, &requested);
        data.push(b'}');
        return Err(fail(
            400,
            code::UNSUPPORTED_VERSION,
            "Unsupported protocol version",
            Some(std::str::from_utf8(&data).expect("JSON is UTF-8")),
        ));
    }
    // Methods of the stateful era that 2026-07-28 removed: 404, -32601.
    if entry.is_some_and(|m| !m.sessionless) {
        let mut data = Vec::with_capacity(32);
        jsonrpc::write_str(&mut data, &msg.method);
        return Err(fail(
            404,
            -32601,
            "Method not found",
            Some(std::str::from_utf8(&data).expect("JSON is UTF-8")),
        ));
    }
    Ok(())
}

/// A header value as sent: plain, or `=?base64?…?=` for values that are not plain ASCII.
fn decode_header_value(v: &[u8]) -> Option<Vec<u8>> {
    match v
        .strip_prefix(b"=?base64?")
        .and_then(|r| r.strip_suffix(b"?="))
    {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok(),
        None => Some(v.to_vec()),
    }
}

/// The key of a principal session: the principal and a hash of its capabilities in canonical
/// form. A newline separates them: no client-sent session id can contain one, so no
/// `Mcp-Session-Id` ever names a principal session.
fn principal_key(principal: &[u8], caps: Option<Raw<'_>>) -> String {
    let canonical = caps
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c.get()).ok())
        .map(|v| v.to_string())
        .unwrap_or_default();
    format!(
        "{}\n{:016x}",
        String::from_utf8_lossy(principal),
        xxhash_rust::xxh3::xxh3_64(canonical.as_bytes())
    )
}

// ---------------------------------------------------------------------------------------------
// The owner shard
// ---------------------------------------------------------------------------------------------

/// What a principal session holds beyond an ordinary session.
pub struct State {
    /// Open `subscriptions/listen` streams.
    listeners: RefCell<Vec<Listener>>,
    /// Backend calls waiting for the client's input, by park number.
    parked: RefCell<HashMap<u64, Parked>>,
    next: Cell<u64>,
    /// Backend requests that came outside any call (backend, message).
    held: RefCell<Vec<(u16, Vec<u8>)>>,
    /// Calls in progress waiting for [`State::hold`].
    held_waiters: Waiters,
    /// Open once the backend sessions were first initialized.
    ready: Cell<bool>,
    ready_waiters: Waiters,
}

/// Tasks of this shard waiting for a condition on a [`State`].
#[derive(Default)]
pub(crate) struct Waiters(RefCell<Vec<Waker>>);

impl Waiters {
    /// Returns once `cond` holds; rechecked each time [`Waiters::wake`] runs.
    pub(crate) async fn until(&self, cond: impl Fn() -> bool) {
        std::future::poll_fn(|cx| {
            if cond() {
                return Poll::Ready(());
            }
            let mut wakers = self.0.borrow_mut();
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    pub(crate) fn wake(&self) {
        for w in self.0.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

struct Listener {
    /// The listen request's id (the subscription id).
    id: Box<RawValue>,
    /// `relay::list_bit`s of the lists it hears of.
    lists: u8,
    /// Resources it hears `updated` of (as the client knows them).
    uris: Vec<String>,
    tx: UnboundedSender<Vec<u8>>,
}

/// Backend requests waiting for the client's answers.
struct Parked {
    asks: Vec<Ask>,
    /// The backend call that asked (its pool, its stream, its in-flight key). `None`: the asks
    /// came outside any call, and the client's request goes to its backend once they are
    /// answered.
    call: Option<(Rc<Pool>, Feed, InFlight)>,
    expires: Instant,
}

/// A backend call's events, read by a task of their own so that waiting for them can be
/// given up (a call parks) without losing a byte. The reader ends with the feed.
struct Feed {
    rx: mpsc::UnboundedReceiver<Result<Option<Event>, UpstreamError>>,
    reader: AbortHandle,
}

impl Feed {
    fn new(mut events: Box<EventStream>) -> Feed {
        // A parked call's backend may stay quiet as long as the client takes to answer; the
        // pump bounds the waits it makes itself.
        events.wait_forever();
        let (tx, rx) = mpsc::unbounded();
        let (task, reader) = abortable(async move {
            loop {
                match events.next().await {
                    Ok(Some(ev)) => {
                        if tx.unbounded_send(Ok(Some(ev))).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        let _ = tx.unbounded_send(Ok(None));
                        events.finish();
                        return;
                    }
                    Err(e) => {
                        let _ = tx.unbounded_send(Err(e));
                        return;
                    }
                }
            }
        });
        monoio::spawn(task);
        Feed { rx, reader }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// One backend request put to a sessionless client.
struct Ask {
    /// The `inputRequests` key the client answers under.
    key: String,
    backend: u16,
    /// The id the backend gave it.
    id: Box<RawValue>,
    /// `{"method":…,"params":…}` as the client sees it.
    request: Vec<u8>,
}

impl Ask {
    fn new(backend: &Pool, msg: &Message<'_>, data: &[u8]) -> Option<Ask> {
        let id = msg.id?;
        let key = match raw_str(id) {
            Some(s) => format!("{}#{s}", backend.name()),
            None => format!("{}#{}", backend.name(), id.get()),
        };
        let mut request = Vec::with_capacity(data.len());
        request.extend_from_slice(b"{\"method\":");
        jsonrpc::write_str(&mut request, &msg.method);
        if let Some(p) = serde_json::from_slice::<AskedParams<'_>>(data)
            .ok()
            .and_then(|p| p.params)
        {
            request.extend_from_slice(b",\"params\":");
            request.extend_from_slice(p.get().as_bytes());
        }
        request.push(b'}');
        Some(Ask {
            key,
            backend: backend.index,
            id: id.to_boxed(),
            request,
        })
    }
}

/// Requests a backend sent outside any call, kept for the client's next call.
const MAX_HELD: usize = 16;

impl State {
    pub fn new() -> State {
        State {
            listeners: RefCell::new(Vec::new()),
            parked: RefCell::new(HashMap::new()),
            next: Cell::new(1),
            held: RefCell::new(Vec::new()),
            held_waiters: Waiters::default(),
            ready: Cell::new(false),
            ready_waiters: Waiters::default(),
        }
    }

    fn next(&self) -> u64 {
        let n = self.next.get();
        self.next.set(n + 1);
        n
    }

    /// Lets requests that found the session initializing go on.
    pub fn open(&self) {
        self.ready.set(true);
        self.ready_waiters.wake();
    }

    async fn ready(&self) {
        self.ready_waiters.until(|| self.ready.get()).await
    }

    /// The gateway is shutting down: listen streams get a `retry` hint and end.
    pub fn end_listeners(&self, retry_ms: u64) {
        for l in self.listeners.borrow_mut().drain(..) {
            let _ =
                l.tx.unbounded_send(format!("retry: {retry_ms}\n\n").into_bytes());
        }
    }

    /// Whether a listen stream is open or a call is parked (the session must not expire).
    pub fn busy(&self) -> bool {
        self.listeners.borrow_mut().retain(|l| !l.tx.is_closed());
        !self.listeners.borrow().is_empty() || !self.parked.borrow().is_empty()
    }

    /// Drops parked calls past their expiry (their backend streams close with them).
    pub fn expire(&self, shard: &Rc<Shard>, session: &Rc<Session>, now: Instant) {
        let expired: Vec<Parked> = self
            .parked
            .borrow_mut()
            .extract_if(|_, p| p.expires <= now)
            .map(|(_, p)| p)
            .collect();
        for mut parked in expired {
            // The backend call is over for the client (its in-flight entry goes now).
            drop(parked.call.take());
            // The backends that asked are told, rather than left waiting on their own timeouts;
            // the parked call's stream closes after that.
            let (shard, session) = (shard.clone(), session.clone());
            monoio::spawn(async move {
                for ask in &parked.asks {
                    let pool = &shard.pools[ask.backend as usize];
                    let id = Some(Raw::from(&*ask.id));
                    answer_backend(&shard, &session, pool, id, Err(NOT_ANSWERED)).await;
                }
                drop(parked);
            });
        }
    }

    /// Keeps a backend's request that came outside any call (a stateful backend asking for
    /// roots after its session began, say): the client is asked at its next call.
    pub fn hold(&self, backend: u16, data: &[u8]) {
        let mut held = self.held.borrow_mut();
        if held.len() == MAX_HELD {
            tracing::warn!("too many backend requests waiting for a sessionless client's next call; the oldest is dropped");
            held.remove(0);
        }
        held.push((backend, data.to_vec()));
        drop(held);
        self.held_waiters.wake();
    }

    /// Ready once a backend request is held.
    async fn held_waiting(&self) {
        self.held_waiters
            .until(|| !self.held.borrow().is_empty())
            .await
    }

    /// Tells the listen streams that asked for it: `list` (a `relay::list_bit`) changed, or
    /// resource `uri` was updated.
    pub fn publish(&self, method: &str, list: u8, uri: Option<&str>) {
        let mut listeners = self.listeners.borrow_mut();
        listeners.retain(|l| !l.tx.is_closed());
        for l in listeners.iter() {
            let wanted = match uri {
                Some(u) => l.uris.iter().any(|x| x == u),
                None => l.lists & list != 0,
            };
            if !wanted {
                continue;
            }
            let mut msg = Vec::with_capacity(160);
            msg.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":");
            jsonrpc::write_str(&mut msg, method);
            msg.extend_from_slice(b",\"params\":{");
            if let Some(u) = uri {
                msg.extend_from_slice(b"\"uri\":");
                jsonrpc::write_str(&mut msg, u);
                msg.push(b',');
            }
            msg.extend_from_slice(b"\"_meta\":{\"");
            msg.extend_from_slice(META_SUBSCRIPTION.as_bytes());
            msg.extend_from_slice(b"\":");
            msg.extend_from_slice(l.id.get().as_bytes());
            msg.extend_from_slice(b"}}}");
            let _ = l.tx.unbounded_send(event(&msg));
        }
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

/// One SSE `message` event carrying `data`.
fn event(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 24);
    sse::write_event(&mut out, None, Some("message"), data);
    out
}

/// What a modern request's answer needs besides the call itself.
#[derive(Clone)]
pub struct Ctx {
    /// The id the client gave (the backend saw a renumbered one).
    pub client_id: Box<RawValue>,
    pub method: Box<str>,
    /// Its entry in the method table.
    pub entry: &'static McpMethod,
    /// `_meta`'s logLevel as a `jsonrpc::log_rank`; `None`: no log messages.
    pub log_rank: Option<u8>,
    /// The client's declared capabilities (for -32021).
    pub capabilities: Rc<serde_json::Value>,
    /// What a `requestState` minted for this request is bound to.
    pub binding: u64,
    /// `ttlMs` of cacheable results.
    pub ttl_ms: u64,
}

/// Serves a modern request on the shard that owns its principal session `key`.
pub async fn serve(
    shard: &Rc<Shard>,
    key: &str,
    principal: &Principal,
    entry: &'static McpMethod,
    body: &[u8],
    msg: &Message<'_>,
    sse: bool,
) -> Reply {
    let Some(id) = msg.id else {
        return Reply::Status(202);
    };
    shard.metrics.modern_requests.add(1);
    let session = match principal_session(shard, key, principal, body).await {
        Ok(s) => s,
        Err(e) => {
            return Reply::error_with_status(
                Some(id),
                &ringmux_core::error::RpcError::InvalidParams(e.to_string()),
                400,
            )
        }
    };
    let state = session.modern.get().expect("a principal session").clone();
    let env = Envelope::of(body);
    let ctx = Ctx {
        client_id: id.to_boxed(),
        method: msg.method.as_ref().into(),
        entry,
        log_rank: env
            .meta(|m| m.log_level)
            .and_then(raw_str)
            .and_then(|l| jsonrpc::log_rank(&l)),
        capabilities: Rc::new(
            env.meta(|m| m.client_capabilities)
                .and_then(|c| serde_json::from_str(c.get()).ok())
                .unwrap_or_default(),
        ),
        binding: binding(msg, &env),
        ttl_ms: shard.cfg.catalog_ttl.as_millis() as u64,
    };
    match entry.handler {
        Handler::Local(Local::Discover) => discover(shard, &session, id),
        Handler::Local(Local::Listen) => listen(shard, &session, &state, &env, id).await,
        // A state of ringmux's own; any other is a sessionless backend's, for it to read.
        _ if env.request_state.is_some_and(|s| {
            s.get()
                .strip_prefix('"')
                .is_some_and(|s| s.starts_with(STATE_PREFIX))
        }) =>
        {
            resume(shard, &session, &env, id, body, ctx, sse).await
        }
        _ => {
            if entry.may_need_input {
                let asks = held_asks(shard, &session, &state, &ctx).await;
                if !asks.is_empty() {
                    let (body, status) = park(shard, &session, asks, None, &ctx);
                    return Reply::Json {
                        status,
                        body,
                        session: None,
                    };
                }
            }
            call(shard, &session, body, id, ctx, sse).await
        }
    }
}

/// Sends a modern request through the stateful dispatch. The backend session is shared by the
/// principal's requests, so this one gets an id of its own; the answer gets the client's back.
async fn call(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    body: &[u8],
    id: Raw<'_>,
    ctx: Ctx,
    sse: bool,
) -> Reply {
    let state = session.modern.get().expect("a principal session");
    let mut fwd = crate::bufs::take_with(body.len() + 16);
    let mine = format!("\"ringmux-m{}\"", state.next());
    jsonrpc::splice(&mut fwd, body, span_of(body, id), mine.as_bytes());
    let reply = match jsonrpc::parse(&fwd) {
        Ok(fmsg) => {
            let call = Call {
                body: &fwd,
                session: Some(&session.id),
                sse,
                legacy: false,
                modern: Some(&ctx),
            };
            dispatch::request(shard, session, ctx.entry, &call, &fmsg).await
        }
        Err(e) => Reply::error_with_status(Some(id), &e, 400),
    };
    crate::bufs::give(fwd);
    finish(reply, &ctx)
}

/// The principal session for `key`, created (and its backend sessions initialized with the
/// request's capabilities) on first use.
async fn principal_session(
    shard: &Rc<Shard>,
    key: &str,
    principal: &Principal,
    body: &[u8],
) -> Result<Rc<Session>, ringmux_core::initialize::ParamsError> {
    if let Some(s) = shard.session(Some(key), principal) {
        s.modern.get().expect("a principal session").ready().await;
        return Ok(s);
    }
    let env = Envelope::of(body);
    let mut params = Vec::with_capacity(256);
    params.extend_from_slice(b"{\"protocolVersion\":");
    jsonrpc::write_str(&mut params, version::LATEST_STATEFUL);
    params.extend_from_slice(b",\"capabilities\":");
    params.extend_from_slice(
        env.meta(|m| m.client_capabilities)
            .map_or("{}", |c| c.get())
            .as_bytes(),
    );
    params.extend_from_slice(b",\"clientInfo\":");
    match env.meta(|m| m.client_info) {
        Some(info) => params.extend_from_slice(info.get().as_bytes()),
        None => params.extend_from_slice(b"{\"name\":\"ringmux-modern-client\",\"version\":\"0\"}"),
    }
    params.push(b'}');
    // Bounded like a stateful client's (clientInfo cut, or refused when still too large).
    let params = ringmux_core::initialize::essentials(
        std::str::from_utf8(&params).expect("JSON is UTF-8"),
        shard.cfg.limits.max_initialize_params,
    )?;
    Ok(shard.create_principal(key, principal, params).await)
}

/// `server/discover`: the versions ringmux serves clients (it brokers every backend, so each
/// is offered whatever the backends speak), the merged capabilities of the backends as this
/// principal sees them, and ringmux's identity.
fn discover(shard: &Rc<Shard>, session: &Rc<Session>, id: Raw<'_>) -> Reply {
    let mut result = Vec::with_capacity(384);
    result.extend_from_slice(b"{\"resultType\":\"complete\",\"supportedVersions\":[");
    jsonrpc::write_str(&mut result, version::SESSIONLESS);
    for v in version::STATEFUL {
        result.push(b',');
        jsonrpc::write_str(&mut result, v);
    }
    result.extend_from_slice(b"],\"capabilities\":");
    result.extend_from_slice(&session.merged_capabilities());
    result.extend_from_slice(b",\"ttlMs\":");
    result.extend_from_slice(shard.cfg.catalog_ttl.as_millis().to_string().as_bytes());
    // Capabilities follow the client's own (backends list differently to clients that can
    // sample): not for shared caches.
    result.extend_from_slice(
        b",\"cacheScope\":\"private\",\"_meta\":{\"io.modelcontextprotocol/serverInfo\":",
    );
    dispatch::write_server_info(&mut result, &shard.cfg.server_name);
    result.push(b'}');
    session.write_instructions(&shard.pools, &mut result);
    result.push(b'}');
    dispatch::json_result(id, &result)
}

/// A backend's final message made the client's ([`era::to_sessionless`]).
fn complete(message: &[u8], ctx: &Ctx) -> (Vec<u8>, u16) {
    era::to_sessionless(
        message,
        Raw::from(&*ctx.client_id),
        ctx.entry.cacheable,
        ctx.ttl_ms,
    )
}

/// A reply from the stateful dispatch made modern: the client's id back, `resultType` (and
/// `ttlMs`/`cacheScope` on cacheable results) added, the era's status on errors.
fn finish(reply: Reply, ctx: &Ctx) -> Reply {
    match reply {
        Reply::Json { body, .. } => {
            let (out, status) = complete(&body, ctx);
            crate::bufs::give(body);
            Reply::Json {
                status,
                body: out,
                session: None,
            }
        }
        other => other,
    }
}

/// What a `requestState` is bound to: the method, the name or URI, and the arguments in
/// canonical form. A retry that changes any of them cannot resume the call.
fn binding(msg: &Message<'_>, env: &EnvelopeParams<'_>) -> u64 {
    let mut key = Vec::with_capacity(128);
    key.extend_from_slice(msg.method.as_bytes());
    key.push(0);
    if let Some(n) = msg.params.name.or(msg.params.uri).and_then(raw_str) {
        key.extend_from_slice(n.as_bytes());
    }
    key.push(0);
    if let Some(args) = env.arguments {
        let canonical = serde_json::from_str::<serde_json::Value>(args.get())
            .map(|v| v.to_string())
            .unwrap_or_default();
        key.extend_from_slice(canonical.as_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&key)
}

/// Where the messages of a modern call go: an SSE stream, or only the final message (a JSON
/// answer; notifications dropped).
enum Sink {
    Sse(UnboundedSender<Vec<u8>>),
    Json,
}

impl Sink {
    fn notify(&self, data: &[u8]) {
        if let Sink::Sse(tx) = self {
            let _ = tx.unbounded_send(event(data));
        }
    }
}

/// Relays a backend's streamed answer to a modern call: notifications as they come (SSE), the
/// answer completed for the era, or an `input_required` result when the backend asks the
/// client something.
pub async fn relay_call(
    shard: Rc<Shard>,
    session: Rc<Session>,
    pool: Rc<Pool>,
    events: Box<EventStream>,
    sse: bool,
    inflight: InFlight,
    ctx: Ctx,
) -> Reply {
    relay_feed(shard, session, pool, Feed::new(events), sse, inflight, ctx).await
}

async fn relay_feed(
    shard: Rc<Shard>,
    session: Rc<Session>,
    pool: Rc<Pool>,
    events: Feed,
    sse: bool,
    inflight: InFlight,
    ctx: Ctx,
) -> Reply {
    if !sse {
        let (body, status) =
            pump(&shard, &session, pool, events, inflight, &ctx, &Sink::Json).await;
        return Reply::Json {
            status,
            body,
            session: None,
        };
    }
    let (tx, rx) = mpsc::unbounded();
    monoio::spawn(async move {
        let sink = Sink::Sse(tx);
        let (body, _) = pump(&shard, &session, pool, events, inflight, &ctx, &sink).await;
        if let Sink::Sse(tx) = sink {
            let _ = tx.unbounded_send(event(&body));
        }
    });
    Reply::Stream(rx)
}

/// Reads a backend call's events until its answer or a request for the client. Returns the
/// message to end the client's answer with, and its status.
async fn pump(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    pool: Rc<Pool>,
    mut feed: Feed,
    inflight: InFlight,
    ctx: &Ctx,
    sink: &Sink,
) -> (Vec<u8>, u16) {
    let b = pool.index;
    let state = session.modern.get().expect("a principal session");
    let timeout = pool.cfg.request_timeout;
    // However lively the stream (progress), the answer comes by the backend's deadline: the
    // pump's own, since the feed waits without one while a call is parked on the client.
    let deadline = std::time::Instant::now() + pool.cfg.request_deadline;
    let past_deadline = || {
        crate::upstream::UpstreamError::Deadline(pool.cfg.request_deadline.as_millis() as u64)
            .to_string()
    };
    let failed = |reason: String| {
        let mut out = Vec::with_capacity(128);
        jsonrpc::write_error_parts(
            &mut out,
            Some(Raw::from(&*ctx.client_id)),
            -32603,
            &format!("backend {}: {reason}", pool.name()),
            None,
        );
        (out, 200)
    };
    loop {
        let wait = deadline
            .saturating_duration_since(std::time::Instant::now())
            .min(timeout);
        if wait.is_zero() {
            return failed(past_deadline());
        }
        let next = {
            let next = std::pin::pin!(monoio::time::timeout(wait, feed.rx.next()));
            let held = std::pin::pin!(state.held_waiting());
            match select(next, held).await {
                Either::Left((next, _)) => next,
                Either::Right(((), _)) => {
                    // A backend asked something outside any call while this one runs (the
                    // call may well wait for it): this call's answer puts it to the client.
                    let asks = held_asks(shard, session, state, ctx).await;
                    if asks.is_empty() {
                        continue;
                    }
                    return park(shard, session, asks, Some((pool, feed, inflight)), ctx);
                }
            }
        };
        let data = match next {
            Ok(Some(Ok(Some(ev)))) if ev.data.is_empty() => continue,
            Ok(Some(Ok(Some(ev)))) => ev.data,
            Ok(Some(Ok(None)) | None) => return failed("stream ended without a response".into()),
            Ok(Some(Err(e))) => {
                shard.metrics.backend_errors.add(1);
                pool.record_failure(&e);
                return failed(e.to_string());
            }
            Err(_) if std::time::Instant::now() >= deadline => return failed(past_deadline()),
            Err(_) => {
                shard.metrics.backend_errors.add(1);
                return failed(crate::upstream::UpstreamError::Timeout.to_string());
            }
        };
        let Ok(msg) = jsonrpc::parse(&data) else {
            tracing::warn!(backend = %pool.name(), "backend sent a message that is not JSON-RPC; dropped");
            continue;
        };
        match msg.kind {
            Kind::Response => {
                let map = pool.cfg.prefixed && ctx.entry.uris_in_result;
                let data = dispatch::with_client_uris(&pool, map, data);
                return complete(&data, ctx);
            }
            Kind::Request if msg.method == "ping" => {
                answer_backend(shard, session, &pool, msg.id, Ok("{}")).await;
            }
            Kind::Request => {
                let Some(asked_id) = msg.id else { continue };
                if let Some(needed) = missing_capability(&msg.method, &data, &ctx.capabilities) {
                    answer_backend(
                        shard,
                        session,
                        &pool,
                        Some(asked_id),
                        Err("the client did not declare the capability this request needs"),
                    )
                    .await;
                    let mut out = Vec::with_capacity(160);
                    jsonrpc::write_error_parts(
                        &mut out,
                        Some(Raw::from(&*ctx.client_id)),
                        code::MISSING_CAPABILITY,
                        &format!("backend {} asked the client for {}, and the client did not declare that capability", pool.name(), msg.method),
                        Some(&format!("{{\"requiredCapabilities\":{needed}}}")),
                    );
                    return (out, 400);
                }
                if msg.method == "roots/list" {
                    session.asked_for_roots(b);
                }
                let Some(ask) = Ask::new(&pool, &msg, &data) else {
                    continue;
                };
                return park(shard, session, vec![ask], Some((pool, feed, inflight)), ctx);
            }
            Kind::Notification => match &*msg.method {
                "notifications/message" => {
                    let rank = relay::log_level_of(&data);
                    if ctx
                        .log_rank
                        .is_some_and(|min| rank.is_none_or(|r| r >= min))
                    {
                        sink.notify(&data);
                    }
                }
                m if m.ends_with("/list_changed") || m == "notifications/resources/updated" => {
                    relay::deliver(
                        shard,
                        session,
                        b,
                        &data,
                        crate::streams::GET_STREAM,
                        None,
                        false,
                    );
                }
                _ => sink.notify(&data),
            },
        }
    }
}

/// The capability object a backend's request (`data`, method `method`) needs and the client
/// did not declare, if any.
fn missing_capability(method: &str, data: &[u8], caps: &serde_json::Value) -> Option<&'static str> {
    #[derive(serde::Deserialize)]
    struct Env {
        #[serde(default)]
        params: Option<ElicitParams>,
    }
    #[derive(serde::Deserialize)]
    struct ElicitParams {
        #[serde(default)]
        mode: Option<String>,
    }
    match method {
        "sampling/createMessage" => caps
            .get("sampling")
            .is_none()
            .then_some("{\"sampling\":{}}"),
        "roots/list" => caps.get("roots").is_none().then_some("{\"roots\":{}}"),
        "elicitation/create" => {
            let url = serde_json::from_slice::<Env>(data)
                .ok()
                .and_then(|e| e.params?.mode)
                .is_some_and(|m| m == "url");
            let declared = caps.get("elicitation");
            // `elicitation: {}` declares form mode (what it meant before modes existed).
            let form_ok = declared.is_some_and(|e| {
                e.get("form").is_some() || e.as_object().is_some_and(|o| o.is_empty())
            });
            let url_ok = declared.is_some_and(|e| e.get("url").is_some());
            match (url, form_ok, url_ok) {
                (true, _, false) => Some("{\"elicitation\":{\"url\":{}}}"),
                (false, false, _) => Some("{\"elicitation\":{\"form\":{}}}"),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Sends a backend the answer to its request `id`: a result, or an error with a message.
async fn answer_backend(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    pool: &Rc<Pool>,
    id: Option<Raw<'_>>,
    answer: Result<&str, &str>,
) {
    let Some(id) = id else { return };
    let mut body = Vec::with_capacity(96);
    match answer {
        Ok(result) => jsonrpc::write_result(&mut body, id, result.as_bytes()),
        Err(message) => jsonrpc::write_error_parts(&mut body, Some(id), -32603, message, None),
    }
    dispatch::send_one_way(
        shard,
        session,
        pool,
        &body,
        "answer to the backend's request",
    )
    .await;
}

#[derive(serde::Deserialize)]
struct AskedParams<'a> {
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// Parks backend requests (and the call that made them, if one did) and writes the
/// `input_required` result that puts them to the client.
fn park(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    asks: Vec<Ask>,
    call: Option<(Rc<Pool>, Feed, InFlight)>,
    ctx: &Ctx,
) -> (Vec<u8>, u16) {
    let state = session.modern.get().expect("a principal session");
    let n = state.next();
    let ttl = shard.cfg.modern.request_state_ttl;
    shard.metrics.input_required.add(1);
    let sealed = seal(
        shard
            .cfg
            .modern
            .request_state_key
            .as_ref()
            .expect("a key at start"),
        &Claims {
            shard: shard.id as u16,
            park: n,
            expires_ms: unix_ms() + ttl.as_millis() as u64,
            principal: xxhash_rust::xxh3::xxh3_64(session.id.as_bytes()),
            binding: ctx.binding,
        },
        nonce(),
    );
    let mut result = Vec::with_capacity(256);
    result.extend_from_slice(b"{\"resultType\":\"input_required\",\"inputRequests\":{");
    for (i, ask) in asks.iter().enumerate() {
        if i > 0 {
            result.push(b',');
        }
        jsonrpc::write_str(&mut result, &ask.key);
        result.push(b':');
        result.extend_from_slice(&ask.request);
    }
    result.extend_from_slice(b"},\"requestState\":");
    jsonrpc::write_str(&mut result, &sealed);
    result.push(b'}');
    state.parked.borrow_mut().insert(
        n,
        Parked {
            asks,
            call,
            expires: Instant::now() + ttl,
        },
    );
    let mut out = Vec::with_capacity(result.len() + 48);
    jsonrpc::write_result(&mut out, Raw::from(&*ctx.client_id), &result);
    (out, 200)
}

/// The requests backends sent outside any call that the client can answer (the others are
/// refused to their backend at once), as asks for a call about to be made.
async fn held_asks(shard: &Rc<Shard>, session: &Rc<Session>, state: &State, ctx: &Ctx) -> Vec<Ask> {
    let held = std::mem::take(&mut *state.held.borrow_mut());
    let mut asks = Vec::with_capacity(held.len());
    for (b, data) in held {
        let pool = &shard.pools[b as usize];
        let Ok(msg) = jsonrpc::parse(&data) else {
            continue;
        };
        if msg.method == "ping" {
            answer_backend(shard, session, pool, msg.id, Ok("{}")).await;
            continue;
        }
        if msg.method == "roots/list" {
            session.asked_for_roots(b);
        }
        if missing_capability(&msg.method, &data, &ctx.capabilities).is_some() {
            answer_backend(
                shard,
                session,
                pool,
                msg.id,
                Err("the client did not declare the capability this request needs"),
            )
            .await;
            continue;
        }
        asks.extend(Ask::new(pool, &msg, &data));
    }
    asks
}

/// A client's retry of a call that returned `input_required`: the state is opened and checked,
/// the backend gets the client's answers, and the parked call goes on.
async fn resume(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    env: &EnvelopeParams<'_>,
    id: Raw<'_>,
    body: &[u8],
    ctx: Ctx,
    sse: bool,
) -> Reply {
    let invalid = || {
        let mut body = Vec::with_capacity(160);
        jsonrpc::write_error_parts(
            &mut body,
            Some(id),
            -32602,
            "Invalid or expired requestState",
            Some("{\"reason\":\"invalid_request_state\"}"),
        );
        Reply::Json {
            status: 400,
            body,
            session: None,
        }
    };
    let key = shard
        .cfg
        .modern
        .request_state_key
        .as_ref()
        .expect("a key at start");
    let claims = env
        .request_state
        .map(Raw::from)
        .and_then(raw_str)
        .and_then(|s| open(key, &s));
    let Some(claims) = claims else {
        return invalid();
    };
    if claims.shard as usize != shard.id
        || claims.principal != xxhash_rust::xxh3::xxh3_64(session.id.as_bytes())
        || claims.binding != ctx.binding
        || !claims.valid_at(unix_ms())
    {
        return invalid();
    }
    let state = session.modern.get().expect("a principal session");
    let Some(parked) = state.parked.borrow_mut().remove(&claims.park) else {
        return invalid();
    };
    let responses: HashMap<String, &RawValue> = env
        .input_responses
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or_default();
    for ask in &parked.asks {
        let answer = match responses.get(&ask.key) {
            Some(r) => Ok(r.get()),
            None => Err("the client gave no answer to this request"),
        };
        let pool = &shard.pools[ask.backend as usize];
        answer_backend(shard, session, pool, Some(Raw::from(&*ask.id)), answer).await;
    }
    match parked.call {
        Some((pool, feed, inflight)) => {
            relay_feed(
                shard.clone(),
                session.clone(),
                pool,
                feed,
                sse,
                inflight,
                ctx,
            )
            .await
        }
        // The asks came before this call: now it goes to its backend.
        None => call(shard, session, body, id, ctx, sse).await,
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Wanted {
    #[serde(default)]
    tools_list_changed: bool,
    #[serde(default)]
    prompts_list_changed: bool,
    #[serde(default)]
    resources_list_changed: bool,
    #[serde(default)]
    resource_subscriptions: Vec<String>,
}

/// `subscriptions/listen`: subscribes what ringmux can honour (every list; the resources a
/// backend accepts a subscription to), acknowledges that subset, and keeps the stream.
async fn listen(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    state: &Rc<State>,
    env: &EnvelopeParams<'_>,
    id: Raw<'_>,
) -> Reply {
    let wanted: Wanted = match env.notifications {
        None => Wanted::default(),
        Some(n) => match serde_json::from_str(n.get()) {
            Ok(w) => w,
            Err(e) => {
                return Reply::error_with_status(
                    Some(id),
                    &ringmux_core::error::RpcError::InvalidParams(format!(
                        "params.notifications: {e}"
                    )),
                    400,
                )
            }
        },
    };
    let mut uris = Vec::new();
    for uri in wanted.resource_subscriptions {
        let mut body = Vec::with_capacity(uri.len() + 96);
        body.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":\"ringmux-subscribe\",\"method\":\"resources/subscribe\",\"params\":{\"uri\":");
        jsonrpc::write_str(&mut body, &uri);
        body.extend_from_slice(b"}}");
        let Ok(sub) = jsonrpc::parse(&body) else {
            continue;
        };
        let call = Call {
            body: &body,
            session: Some(&session.id),
            sse: false,
            legacy: false,
            modern: None,
        };
        let entry = method::lookup("resources/subscribe").expect("in the method table");
        match dispatch::request(shard, session, entry, &call, &sub).await {
            Reply::Json { body: answer, .. }
                if jsonrpc::parse(&answer).is_ok_and(|m| m.result.is_some()) =>
            {
                uris.push(uri)
            }
            _ => tracing::debug!(session = %session.id, %uri, "resource subscription not honoured"),
        }
    }
    use ringmux_core::catalog::ListKind;
    let lists = [
        (wanted.tools_list_changed, ListKind::Tools),
        (wanted.prompts_list_changed, ListKind::Prompts),
        (wanted.resources_list_changed, ListKind::Resources),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0u8, |bits, (_, kind)| bits | relay::list_bit(*kind));
    let mut ack = Vec::with_capacity(256);
    ack.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/subscriptions/acknowledged\",\"params\":{\"_meta\":{\"");
    ack.extend_from_slice(META_SUBSCRIPTION.as_bytes());
    ack.extend_from_slice(b"\":");
    ack.extend_from_slice(id.get().as_bytes());
    ack.extend_from_slice(b"},\"notifications\":");
    write_filter(
        &mut ack,
        [
            wanted.tools_list_changed,
            wanted.prompts_list_changed,
            wanted.resources_list_changed,
        ],
        &uris,
    );
    ack.extend_from_slice(b"}}");
    let (tx, rx) = mpsc::unbounded();
    let _ = tx.unbounded_send(event(&ack));
    state.listeners.borrow_mut().push(Listener {
        id: id.to_boxed(),
        lists,
        uris,
        tx,
    });
    // The backends' own streams carry their list_changed and resources/updated.
    shard.listen_backends(session);
    Reply::Stream(rx)
}

/// A `subscriptions/listen` filter object: the list flags that are on (tools, prompts,
/// resources), then `resourceSubscriptions` when there are any.
pub(crate) fn write_filter(out: &mut Vec<u8>, lists: [bool; 3], uris: &[String]) {
    out.push(b'{');
    let names = [
        "toolsListChanged",
        "promptsListChanged",
        "resourcesListChanged",
    ];
    for (on, name) in lists.into_iter().zip(names) {
        if on {
            if out.last() != Some(&b'{') {
                out.push(b',');
            }
            jsonrpc::write_str(out, name);
            out.extend_from_slice(b":true");
        }
    }
    if !uris.is_empty() {
        if out.last() != Some(&b'{') {
            out.push(b',');
        }
        out.extend_from_slice(b"\"resourceSubscriptions\":");
        out.extend_from_slice(serde_json::to_string(uris).expect("strings").as_bytes());
    }
    out.push(b'}');
}

// ---------------------------------------------------------------------------------------------
// requestState
// ---------------------------------------------------------------------------------------------

/// The wall clock in Unix milliseconds (sealed states carry their expiry in it, so replicas
/// sharing a key agree).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A fresh nonce from the OS random source.
fn nonce() -> [u8; 24] {
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).expect("the OS random source works");
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_decode() {
        assert_eq!(decode_header_value(b"plain").unwrap(), b"plain");
        assert_eq!(
            decode_header_value(b"=?base64?w6k=?=").unwrap(),
            "é".as_bytes()
        );
        assert!(decode_header_value(b"=?base64?!!?=").is_none());
    }

    #[test]
    fn listen_filters_name_what_is_on() {
        let filter = |lists, uris: &[String]| {
            let mut out = Vec::new();
            write_filter(&mut out, lists, uris);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(filter([false; 3], &[]), "{}");
        assert_eq!(
            filter([true, false, true], &[]),
            r#"{"toolsListChanged":true,"resourcesListChanged":true}"#
        );
        assert_eq!(
            filter([false, true, false], &["a://b".into()]),
            r#"{"promptsListChanged":true,"resourceSubscriptions":["a://b"]}"#
        );
        assert_eq!(
            filter([false; 3], &["x".into()]),
            r#"{"resourceSubscriptions":["x"]}"#
        );
    }

    #[test]
    fn principal_keys_are_canonical_and_unreachable() {
        let a: Box<RawValue> = RawValue::from_string(r#"{"a":{},"b":1}"#.into()).unwrap();
        let b: Box<RawValue> = RawValue::from_string(r#"{ "b": 1, "a": {} }"#.into()).unwrap();
        let ka = principal_key(b"p", Some((&*a).into()));
        assert_eq!(ka, principal_key(b"p", Some((&*b).into())));
        assert_ne!(ka, principal_key(b"q", Some((&*a).into())));
        assert!(!ringmux_core::affinity::plausible_session_id(ka.as_bytes()));
    }
}
