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

use std::collections::HashMap;
use std::rc::Rc;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures_channel::mpsc::{self, UnboundedSender};
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use ringmux_core::era;
use ringmux_core::jsonrpc::{self, raw_str, span_of, Kind, Message, Raw};
use ringmux_core::method::{self, Handler, Local, Method as McpMethod};
use ringmux_core::seal::{open, seal, Claims, STATE_PREFIX};
use ringmux_core::version;
use serde_json::value::RawValue;

use crate::backend::upstream::{EventStream, Pool};
use crate::handlers::dispatch;
use crate::handlers::dispatch::Call;
use crate::handlers::relay;
use crate::reply::Reply;
use crate::request::Principal;
use crate::session::principal::{event, Ask, Feed, Listener, Parked, State, META_SUBSCRIPTION};
use crate::session::{InFlight, Session};
use crate::shard::Shard;

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
pub(crate) const NOT_ANSWERED: &str =
    "the client did not answer within modern.request_state_ttl_ms";

/// The members of a modern request that only this era reads, parsed here rather than by the
/// hot-path parser (which the stateful era shares).
#[derive(serde::Deserialize, Default)]
pub(crate) struct Envelope<'a> {
    #[serde(borrow, default)]
    params: Option<EnvelopeParams<'a>>,
}

#[derive(serde::Deserialize, Default)]
pub(crate) struct EnvelopeParams<'a> {
    #[serde(rename = "_meta", borrow, default)]
    pub(crate) meta: Option<EnvelopeMeta<'a>>,
    #[serde(borrow, default)]
    pub(crate) arguments: Option<&'a RawValue>,
    #[serde(rename = "requestState", borrow, default)]
    pub(crate) request_state: Option<&'a RawValue>,
    #[serde(rename = "inputResponses", borrow, default)]
    pub(crate) input_responses: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) notifications: Option<&'a RawValue>,
}

#[derive(serde::Deserialize, Default)]
pub(crate) struct EnvelopeMeta<'a> {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
    pub(crate) protocol_version: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities", borrow, default)]
    pub(crate) client_capabilities: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/clientInfo", borrow, default)]
    pub(crate) client_info: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/logLevel", borrow, default)]
    pub(crate) log_level: Option<&'a RawValue>,
}

impl<'a> Envelope<'a> {
    /// The envelope of `body` (a message [`jsonrpc::parse`] accepted); empty when `params` is
    /// not an object of the expected shape.
    pub(crate) fn of(body: &'a [u8]) -> EnvelopeParams<'a> {
        serde_json::from_slice::<Envelope<'a>>(body)
            .ok()
            .and_then(|e| e.params)
            .unwrap_or_default()
    }
}

impl<'a> EnvelopeParams<'a> {
    pub(crate) fn meta(
        &self,
        pick: impl Fn(&EnvelopeMeta<'a>) -> Option<&'a RawValue>,
    ) -> Option<Raw<'a>> {
        self.meta.as_ref().and_then(pick).map(Raw::from)
    }
}

// ---------------------------------------------------------------------------------------------
// The owner shard
// ---------------------------------------------------------------------------------------------

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
    Ok(crate::handlers::lifecycle::create_principal(shard, key, principal, params).await)
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
        crate::backend::upstream::UpstreamError::Deadline(
            pool.cfg.request_deadline.as_millis() as u64
        )
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
                return failed(crate::backend::upstream::UpstreamError::Timeout.to_string());
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
                        crate::session::streams::GET_STREAM,
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
pub(crate) async fn answer_backend(
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
    crate::handlers::lifecycle::listen_backends(shard, session);
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
}
