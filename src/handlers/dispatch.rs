//! The handlers of the stateful methods: `initialize`, `ping`, `logging/setLevel`, and the
//! routed calls (`tools/call`, `prompts/get`, `resources/*`, `completion/complete`), which
//! share one path: resolve the owner (and the name/URI to restore) → forward the spliced bytes
//! → relay the answer (JSON, or SSE event by event). Lists are [`super::lists`]'.

use std::borrow::Cow;
use std::ops::Range;
use std::rc::Rc;
use std::time::Instant;

use futures_util::future::{join_all, select, Either};
use ringmux_core::catalog::ListKind;
use ringmux_core::error::RpcError;
use ringmux_core::jsonrpc::{self, raw_str, span_of, Message, Raw};
use ringmux_core::merge::Route;
use ringmux_core::method::{Handler, Local, Method, RouteBy};
use ringmux_core::names;
use ringmux_core::version;
use serde_json::value::RawValue;

use super::checks::{mask_arguments, permitted, Place};
use super::lists::refresh;
use crate::backend::upstream::{final_message, Body, Pool, Response, Status};
use crate::bufs;
use crate::federation::Merged;
use crate::handlers::relay;
use crate::reply::Reply;
use crate::request::{ClientEra, Principal};
use crate::session::{request_key, BackendFailure, Capabilities, Session};
use crate::shard::Shard;

/// A JSON-RPC request as its handler sees it.
pub struct Call<'a> {
    pub body: &'a [u8],
    pub session: Option<&'a str>,
    /// The request's id as backends see it: the client's, or one of ringmux's for a
    /// 2026-07-28 request (its principal's requests share backend sessions, and two clients
    /// may well use the same id).
    pub id: Raw<'a>,
    /// Where the client's id sits in `body` when backends are to see `id` there instead.
    pub renumber: Option<Range<usize>>,
    /// How the answer travels back.
    pub sink: Sink<'a>,
    /// The caller's authorization view (`None`: no `authz:`), from the pipeline's authorize
    /// stage: the list and routed handlers consult it for every item.
    pub view: Option<Rc<crate::authz::View>>,
    /// The request's admission (`rate_limits:`), handed to the call's in-flight guard when it
    /// is forwarded, so a streamed answer keeps its place until it ends.
    pub admitted: std::cell::Cell<Option<crate::limits::Admitted>>,
    /// The endpoint the request came to (0: the main one; else a virtual server).
    pub route: u8,
    /// What the call turns out to be (its backend, the backend's error code), for the
    /// pipeline's record of it ([`crate::observe`]).
    pub outcome: &'a crate::observe::Outcome,
}

/// How a call's answer travels back to its client: the reply sink its front described. The
/// answer stage ([`super::answer`]) is the one place that chooses by it.
#[derive(Clone, Copy)]
pub enum Sink<'a> {
    /// One JSON body: the client accepts no event stream.
    Json,
    /// An event stream in answer to the POST (Streamable HTTP).
    Sse,
    /// A legacy HTTP+SSE client's one session stream (the POST was answered 202).
    Legacy,
    /// A 2026-07-28 client: what its answer needs; `sse`: it accepts an event stream.
    Modern {
        ctx: &'a crate::handlers::modern::Ctx,
        sse: bool,
    },
}

impl Sink<'_> {
    /// The sink of a stateful or legacy client's request (`sse`: it accepts an event stream).
    pub fn of(era: ClientEra, sse: bool) -> Sink<'static> {
        match era {
            ClientEra::Legacy => Sink::Legacy,
            _ if sse => Sink::Sse,
            _ => Sink::Json,
        }
    }

    pub fn is_modern(self) -> bool {
        matches!(self, Sink::Modern { .. })
    }
}

/// A JSON-RPC request on an existing session, its method looked up and allowed by the
/// pipeline ([`crate::pipeline`]): its handler.
pub async fn request(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    entry: &Method,
    call: &Call<'_>,
    msg: &Message<'_>,
) -> Reply {
    let id = call.id;
    let result = match entry.handler {
        Handler::Local(Local::Ping) => Ok(json_result(id, b"{}")),
        Handler::Local(Local::SetLevel) => Ok(set_level(shard, session, call.body, id).await),
        Handler::List(kind) => super::lists::list(shard, session, kind, msg, call).await,
        Handler::Routed(by) => match resolve(shard, session, by, msg, call).await {
            Ok(target) => {
                if let Some(l) = &shard.limiter {
                    if let Err(limited) = l.route(target.tool_key, target.backend) {
                        shard.metrics.rate_limited.add(1);
                        return Reply::limited(Some(id), &limited);
                    }
                }
                Ok(forward(shard, session, target, entry, call, id).await)
            }
            Err(e) => Err(e),
        },
        Handler::Local(Local::Listen | Local::Initialize | Local::Discover) => {
            Err(RpcError::MethodNotFound(msg.method.to_string()))
        }
    };
    result.unwrap_or_else(|e| Reply::error(Some(id), &e))
}

pub(crate) fn json_result(id: Raw<'_>, result: &[u8]) -> Reply {
    let mut body = bufs::take_with(result.len() + 48);
    jsonrpc::write_result(&mut body, id, result);
    Reply::Json {
        status: 200,
        body,
        session: None,
    }
}

#[derive(serde::Deserialize)]
struct InitEnvelope<'a> {
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

pub async fn initialize(
    shard: &Rc<Shard>,
    principal: &Principal,
    call: &Call<'_>,
    msg: &Message<'_>,
) -> Reply {
    let id = msg.id.expect("requests have ids");
    let params = serde_json::from_slice::<InitEnvelope<'_>>(call.body)
        .ok()
        .and_then(|e| e.params)
        .filter(|p| p.get().starts_with('{'));
    let (Some(params), Some(requested)) = (params, msg.params.protocol_version.as_deref()) else {
        return Reply::error(
            Some(id),
            &RpcError::InvalidParams("initialize needs params.protocolVersion".into()),
        );
    };
    let kept = match ringmux_core::initialize::essentials(
        params.get(),
        shard.cfg.limits.max_initialize_params,
    ) {
        Ok(kept) => kept,
        Err(e) => return Reply::error(Some(id), &RpcError::InvalidParams(e.to_string())),
    };
    if let Some(Err(limited)) = shard
        .limiter
        .as_ref()
        .map(|l| l.may_open_session(principal))
    {
        shard.metrics.rate_limited.add(1);
        return Reply::limited(Some(id), &limited);
    }
    let legacy = call.session.filter(|_| matches!(call.sink, Sink::Legacy));
    let session = crate::handlers::lifecycle::create_session(
        shard,
        principal,
        Some(requested),
        kept,
        legacy,
        call.route,
    )
    .await;
    let mut result = Vec::with_capacity(256);
    result.extend_from_slice(b"{\"protocolVersion\":");
    jsonrpc::write_str(&mut result, session.version);
    result.extend_from_slice(b",\"capabilities\":");
    result.extend_from_slice(&session.merged_capabilities());
    result.extend_from_slice(b",\"serverInfo\":");
    write_server_info(&mut result, &shard.cfg.server_name);
    session.write_instructions(&shard.pools, &mut result);
    result.push(b'}');
    let mut body = Vec::with_capacity(result.len() + 48);
    jsonrpc::write_result(&mut body, id, &result);
    Reply::Json {
        status: 200,
        body,
        session: Some(Box::from(&*session.id)),
    }
}

/// ringmux's `Implementation` object: `{"name":…,"version":…}`.
pub(crate) fn write_server_info(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b"{\"name\":");
    jsonrpc::write_str(out, name);
    out.extend_from_slice(b",\"version\":");
    jsonrpc::write_str(out, env!("CARGO_PKG_VERSION"));
    out.push(b'}');
}

/// `server/discover` sent on the stateful path (without a 2026-07-28 version header, so not
/// a request of that era, [`crate::handlers::modern`]): answered with the stateful versions, which the
/// client can `initialize` with.
pub fn discover(id: Raw<'_>) -> Reply {
    let mut result = Vec::with_capacity(256);
    result.extend_from_slice(b"{\"resultType\":\"complete\",\"supportedVersions\":[");
    for (i, v) in version::STATEFUL
        .iter()
        .filter(|v| **v != "2024-11-05")
        .enumerate()
    {
        if i > 0 {
            result.push(b',');
        }
        jsonrpc::write_str(&mut result, v);
    }
    result.extend_from_slice(
        b"],\"capabilities\":{\"tools\":{},\"prompts\":{},\"resources\":{},\"logging\":{},\"completions\":{}},\"ttlMs\":0,\"cacheScope\":\"private\"}",
    );
    json_result(id, &result)
}

async fn set_level(shard: &Rc<Shard>, session: &Rc<Session>, body: &[u8], id: Raw<'_>) -> Reply {
    let Some(rank) = relay::log_level_of(body) else {
        return Reply::error(
            Some(id),
            &RpcError::InvalidParams(
                "params.level must be one of debug, info, notice, warning, error, critical, alert, emergency".into(),
            ),
        );
    };
    // Backends are told too, but not every backend honours it: ringmux filters as well.
    session.set_log_level(rank);
    let with_logging = shard
        .pools
        .iter()
        .filter(|p| session.has_capability(p.index, Capabilities::LOGGING));
    let sends = with_logging.map(|pool| async move {
        if let Err(e) = send(shard, session, pool, body).await.map(drop) {
            tracing::warn!(backend = %pool.name(), "logging/setLevel not forwarded: {e}");
        }
    });
    join_all(sends).await;
    json_result(id, b"{}")
}

/// Sends `body` to a backend session, re-creating the session once if the backend expired it.
pub(crate) async fn send(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    pool: &Rc<Pool>,
    body: &[u8],
) -> Result<Response, BackendFailure> {
    send_traced(shard, session, pool, body, None).await
}

/// [`send`] with a `traceparent` for the backend (HTTP backends get it as a header).
pub(crate) async fn send_traced(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    pool: &Rc<Pool>,
    body: &[u8],
    trace: Option<&crate::backend::upstream::Trace<'_>>,
) -> Result<Response, BackendFailure> {
    shard.metrics.forwarded.add(1);
    // A request that began before a reload replaced this backend's pool goes through the
    // current one: the session's backend session is of that one now.
    let current;
    let pool = if pool.is_replaced() {
        current = shard.current().pool_of(pool.index).ok_or_else(|| {
            BackendFailure::Init("the backend was removed from the config".into())
        })?;
        &current
    } else {
        pool
    };
    let result = async {
        let (sid, ver, joined) = session.ensure(pool).await?;
        if joined {
            crate::handlers::lifecycle::joined(shard, session, pool.index);
        }
        let resp = session
            .post(pool, sid.as_deref(), ver, body, trace)
            .await?;
        if resp.status != Status::SessionGone {
            return Ok(resp);
        }
        let _ = final_message(resp.body).await;
        tracing::info!(backend = %pool.name(), session = %session.id, "backend session expired; re-initializing");
        session.forget(pool.index);
        session.join(pool).await?;
        // (Perhaps by a server of the other era.)
        let (sid, ver, _) = session.ensure(pool).await?;
        session
            .post(pool, sid.as_deref(), ver, body, trace)
            .await
    }
    .await;
    if result.is_err() {
        shard.metrics.backend_errors.add(1);
    }
    result
}

/// Where a routed request goes, and the body to send when it is not the client's as it is.
struct Target {
    backend: u16,
    /// The client's bytes with the name/URI and the id replaced as needed (a reused buffer;
    /// `None`: send them as they are).
    body: Option<Vec<u8>>,
    /// A `tools/call`'s bucket in `rate_limits.tool` ([`crate::limits::Limiter::tool_key`]).
    tool_key: Option<u64>,
}

impl Target {
    /// The owner of a listed item; the client's literal (`raw`, inside the body) is replaced
    /// by the backend's original one when they differ, and a virtual server's fixed arguments
    /// are set.
    #[inline]
    fn listed(
        merged: &Merged,
        route: Route,
        raw: Raw<'_>,
        call: &Call<'_>,
    ) -> Result<Target, RpcError> {
        let original = merged.catalogs[route.source].key_literal(route.item as usize);
        let edit = (original != raw.get().as_bytes()).then(|| (span_of(call.body, raw), original));
        let body = outgoing(call, edit);
        if let Some(shaped) = &merged.shaped {
            return Target::shaped(shaped, route, body, call);
        }
        Ok(Target {
            backend: route.backend,
            body,
            tool_key: None,
        })
    }

    /// [`Target::listed`] on a virtual server: with the arguments it fixes set (never sent
    /// without them).
    #[inline(never)]
    fn shaped(
        shaped: &crate::routes::Shaped,
        route: Route,
        body: Option<Vec<u8>>,
        call: &Call<'_>,
    ) -> Result<Target, RpcError> {
        let body = match shaped.edit(route).filter(|e| !e.fixed.is_empty()) {
            None => body,
            Some(e) => {
                let mut with = bufs::take_with(call.body.len() + 64);
                let ok = ringmux_core::shape::with_arguments(
                    body.as_deref().unwrap_or(call.body),
                    &e.fixed,
                    &mut with,
                );
                if let Some(b) = body {
                    bufs::give(b);
                }
                if !ok {
                    bufs::give(with);
                    return Err(RpcError::InvalidParams(
                        "the request cannot be read to set the route's fixed arguments".into(),
                    ));
                }
                Some(with)
            }
        };
        Ok(Target {
            backend: route.backend,
            body,
            tool_key: None,
        })
    }
}

/// The bytes a backend is sent for `call` when they are not the client's as they are: with
/// `edit` (a span of the body and what replaces it) made, and the id replaced when backends
/// see another one ([`Call::renumber`]). One copy, into a reused buffer.
fn outgoing(call: &Call<'_>, edit: Option<(Range<usize>, &[u8])>) -> Option<Vec<u8>> {
    let renumber = call.renumber.clone().map(|s| (s, call.id.get().as_bytes()));
    let mut edits: [(Range<usize>, &[u8]); 2] = Default::default();
    let mut n = 0;
    for e in [edit, renumber].into_iter().flatten() {
        edits[n] = e;
        n += 1;
    }
    if n == 0 {
        return None;
    }
    let mut out = bufs::take_with(call.body.len() + 32);
    jsonrpc::splice_all(&mut out, call.body, &mut edits[..n]);
    Some(out)
}

fn string_param<'a>(v: Option<Raw<'a>>, what: &str) -> Result<(Raw<'a>, Cow<'a, str>), RpcError> {
    let raw = v.ok_or_else(|| RpcError::InvalidParams(format!("{what} is required")))?;
    let s =
        raw_str(raw).ok_or_else(|| RpcError::InvalidParams(format!("{what} must be a string")))?;
    Ok((raw, s))
}

async fn resolve(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    by: RouteBy,
    msg: &Message<'_>,
    call: &Call<'_>,
) -> Result<Target, RpcError> {
    match by {
        RouteBy::Tool => {
            by_name(
                shard,
                session,
                &msg.method,
                ListKind::Tools,
                msg.params.name,
                "params.name",
                "Unknown tool",
                call,
            )
            .await
        }
        RouteBy::Prompt => {
            by_name(
                shard,
                session,
                &msg.method,
                ListKind::Prompts,
                msg.params.name,
                "params.name",
                "Unknown prompt",
                call,
            )
            .await
        }
        RouteBy::Resource => {
            by_uri(
                shard,
                session,
                &msg.method,
                msg.params.uri,
                "params.uri",
                call,
            )
            .await
        }
        RouteBy::CompletionRef => {
            let r = msg
                .params
                .reference
                .as_ref()
                .ok_or_else(|| RpcError::InvalidParams("params.ref is required".into()))?;
            match r.kind.as_deref() {
                Some("ref/prompt") => {
                    by_name(
                        shard,
                        session,
                        &msg.method,
                        ListKind::Prompts,
                        r.name,
                        "params.ref.name",
                        "Unknown prompt",
                        call,
                    )
                    .await
                }
                Some("ref/resource") => {
                    by_uri(shard, session, &msg.method, r.uri, "params.ref.uri", call).await
                }
                _ => Err(RpcError::InvalidParams(
                    "params.ref.type must be ref/prompt or ref/resource".into(),
                )),
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn by_name(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    method: &str,
    kind: ListKind,
    raw: Option<Raw<'_>>,
    what: &str,
    unknown: &str,
    call: &Call<'_>,
) -> Result<Target, RpcError> {
    let (raw, name) = string_param(raw, what)?;
    let mut merged = refresh(shard, session, kind).await;
    let route = match merged.route(&name) {
        Some(route) => route,
        None => {
            // Not listed: perhaps its backend has no session here. The prefix names it.
            let prefixed = shard.pools.iter().filter(|p| {
                p.cfg.prefixed
                    && !p.cfg.retired
                    && name
                        .strip_prefix(p.name())
                        .is_some_and(|rest| rest.starts_with(&shard.cfg.separator))
            });
            let named = prefixed.max_by_key(|p| p.name().len());
            if let Some(m) = join_named(shard, session, named, kind).await? {
                merged = m;
            }
            merged
                .route(&name)
                .ok_or_else(|| RpcError::InvalidParams(format!("{unknown}: {name}")))?
        }
    };
    // Rules decide on the name the main endpoint lists (a virtual server may rename it).
    let shaped = merged.shaped.as_ref().filter(|_| call.view.is_some());
    let listed = match shaped.and_then(|s| s.edit(route)) {
        Some(e) if e.renamed => merged.index.merged_key(
            route.source,
            &merged.catalogs[route.source],
            route.item as usize,
        ),
        _ => None,
    };
    let mut target = Target::listed(&merged, route, raw, call)?;
    if kind == ListKind::Tools {
        if let Some(l) = &shard.limiter {
            let literal = merged.catalogs[route.source].key_literal(route.item as usize);
            target.tool_key = l.tool_key(&session.principal, route.backend, literal);
        }
    }
    // What the caller may not use does not exist for it.
    if !permitted(
        shard,
        session,
        call,
        kind,
        method,
        listed.as_deref().unwrap_or(&name),
        Place::Listed(&merged, route),
        target.body.as_deref().unwrap_or(call.body),
    ) {
        if let Some(b) = target.body {
            bufs::give(b);
        }
        return Err(RpcError::InvalidParams(format!("{unknown}: {name}")));
    }
    Ok(target)
}

/// A call names something not in the merged `kind` list, of backend `named` (by its prefix or
/// its `ringmux://` URI). When that backend has no session here (it was down when this one
/// began), it joins now and the refreshed lists are returned, or the call fails saying the
/// backend is unavailable (not that the name is unknown). `None`: nothing to join.
async fn join_named(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    named: Option<&Rc<Pool>>,
    kind: ListKind,
) -> Result<Option<Rc<Merged>>, RpcError> {
    // A backend the session's route does not expose is not there at all.
    let Some(pool) = named.filter(|p| !session.is_ready(p.index) && !session.is_excluded(p.index))
    else {
        return Ok(None);
    };
    let unavailable = |reason: String| RpcError::Backend {
        backend: pool.name().to_owned(),
        reason: format!("unavailable: {reason}"),
    };
    pool.check_health(Instant::now())
        .map_err(|e| unavailable(e.to_string()))?;
    let (_, _, joined) = session
        .ensure(pool)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if joined {
        crate::handlers::lifecycle::joined(shard, session, pool.index);
    }
    Ok(Some(refresh(shard, session, kind).await))
}

async fn by_uri(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    method: &str,
    raw: Option<Raw<'_>>,
    what: &str,
    call: &Call<'_>,
) -> Result<Target, RpcError> {
    let (raw, uri) = string_param(raw, what)?;
    let mut merged = refresh(shard, session, ListKind::Resources).await;
    let mut route = merged.index.route(&uri);
    if route.is_none() {
        let named = names::split_mapped_uri(&uri).and_then(|(backend, _)| {
            shard
                .pools
                .iter()
                .find(|p| p.name() == backend && !p.cfg.retired)
        });
        if let Some(m) = join_named(shard, session, named, ListKind::Resources).await? {
            merged = m;
            route = merged.index.route(&uri);
        }
    }
    // What the caller may not read does not exist for it.
    let hidden = || RpcError::ResourceNotFound(uri.to_string());
    let may = |place| {
        permitted(
            shard,
            session,
            call,
            ListKind::Resources,
            method,
            &uri,
            place,
            call.body,
        )
    };
    if let Some(route) = route {
        if !may(Place::Listed(&merged, route)) {
            return Err(hidden());
        }
        return Target::listed(&merged, route, raw, call);
    }
    if let Some((backend, strip)) = merged.index.route_uri(&uri) {
        if !may(Place::Backend(backend)) {
            return Err(hidden());
        }
        let mut literal = Vec::new();
        if strip > 0 {
            jsonrpc::write_str(&mut literal, &uri[strip..]);
        }
        let edit = (strip > 0).then(|| (span_of(call.body, raw), literal.as_slice()));
        return Ok(Target {
            backend,
            body: outgoing(call, edit),
            tool_key: None,
        });
    }
    // An unlisted URI of the only unprefixed backend that serves resources is that backend's.
    let mut unprefixed = shard
        .pools
        .iter()
        .filter(|p| !p.cfg.prefixed && session.has_capability(p.index, Capabilities::RESOURCES));
    match (unprefixed.next(), unprefixed.next()) {
        (Some(only), None) if !may(Place::Backend(only.index)) => Err(hidden()),
        (Some(only), None) => Ok(Target {
            backend: only.index,
            body: outgoing(call, None),
            tool_key: None,
        }),
        _ => Err(RpcError::ResourceNotFound(uri.into_owned())),
    }
}

async fn forward(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    target: Target,
    entry: &Method,
    call: &Call<'_>,
    id: Raw<'_>,
) -> Reply {
    let pool = shard.pools[target.backend as usize].clone();
    // A prefixed backend's resource URIs in the result reach the client as it knows them.
    let map_uris = entry.uris_in_result && pool.cfg.prefixed;
    let body = target.body.as_deref().unwrap_or(call.body);
    let backend_error = |reason: String| backend_error(id, &pool, reason);
    // Secrets in a call's arguments (`masking.arguments`): masked, or the call refused.
    let masked_args = match shard.masker {
        Some(_) => match mask_arguments(shard, &pool, entry, body, id) {
            Ok(m) => m,
            Err(refused) => return refused,
        },
        None => None,
    };
    let body = masked_args.as_deref().unwrap_or(body);
    call.outcome.forwarded(pool.index);
    // The backend sees the client's id unchanged (its session is this client's alone), so
    // the id names the call for `notifications/cancelled`.
    let mut inflight = session.begin(request_key(id.get()), pool.index);
    inflight.hold(call.admitted.take());
    let key = inflight.key();
    // With `traces:`, the exchange is a client span of the request's, and the backend gets
    // its context.
    let exchange = match (&shard.tracer, call.outcome.span()) {
        (Some(t), Some(parent)) => Some((t.child(&parent), crate::otel::now_ns())),
        _ => None,
    };
    let traceparent = exchange.map(|(ctx, _)| ctx.traceparent());
    // A child process has no headers: the context goes in `params._meta.traceparent` (MCP's
    // convention), which also replaces a client's own there for any backend.
    let mut meta_traced = None;
    if let Some(t) = &traceparent {
        if pool.is_actor() || call.outcome.meta_trace() {
            let mut b = bufs::take_with(body.len() + 96);
            if ringmux_core::shape::with_meta_traceparent(body, t, &mut b) {
                meta_traced = Some(b);
            } else {
                bufs::give(b);
            }
        }
    }
    let body = meta_traced.as_deref().unwrap_or(body);
    let exchange_trace = traceparent
        .as_ref()
        .map(|t| crate::backend::upstream::Trace {
            parent: &t[..],
            state: call.outcome.tracestate(),
        });
    let resp = {
        let sending = std::pin::pin!(send_traced(
            shard,
            session,
            &pool,
            body,
            exchange_trace.as_ref()
        ));
        let cancelled = std::pin::pin!(std::future::poll_fn(|cx| session.poll_cancelled(key, cx)));
        // A virtual server's own bound on its calls (`routes[].call_timeout_ms`).
        let bound = shard.served(call.route).and_then(|r| r.call_timeout);
        let expired = std::pin::pin!(async {
            match bound {
                Some(t) => monoio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        });
        match select(sending, select(cancelled, expired)).await {
            Either::Left((r, _)) => Some(Ok(r)),
            Either::Right((Either::Left(_), _)) => None,
            Either::Right((Either::Right(_), _)) => {
                Some(Err(bound.expect("the timer runs only with a bound")))
            }
        }
    };
    let sessionless = !call.sink.is_modern() && session.is_sessionless(pool.index);
    // A sessionless backend may ask for input: the request is sent again with the answers.
    let request = sessionless.then(|| body.to_vec());
    if let Some(spliced) = target.body {
        bufs::give(spliced);
    }
    if let Some(b) = meta_traced {
        bufs::give(b);
    }
    if let (Some(tracer), Some((ctx, start_ns))) = (&shard.tracer, exchange) {
        // The exchange's span ends with the answer's head (a streamed answer's events are
        // the request span's).
        let mut span = crate::otel::Finished::new(
            ctx,
            false,
            entry.name,
            start_ns,
            crate::otel::now_ns(),
            call.route,
            Some(pool.index),
            "",
        );
        span.error = match &resp {
            Some(Ok(Err(_)) | Err(_)) => {
                Some((ringmux_core::error::code::INTERNAL_ERROR as i64, "upstream"))
            }
            None => Some((
                ringmux_core::error::code::REQUEST_CANCELLED as i64,
                "client",
            )),
            Some(Ok(Ok(_))) => None,
        };
        tracer.record(span, &shard.metrics);
    }
    let resp = match resp {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => {
            return backend_error(e.to_string());
        }
        Some(Err(t)) => {
            // The route's bound passed: the backend is told to stop. Its circuit breaker
            // learns nothing (the exchange's ticket goes back): the bound is the route's
            // latency, not a sign of the backend's health, and a 2026-07-28 backend's
            // cancellation is answered without an exchange that could show it alive. A
            // backend that answers nothing still fails its own `request_timeout_ms`.
            call_timed_out(shard, session, &pool, id);
            return Reply::error(
                Some(id),
                &RpcError::Backend {
                    backend: pool.name().to_owned(),
                    reason: format!(
                        "no answer within this endpoint's call_timeout_ms ({} ms); the call was cancelled",
                        t.as_millis()
                    ),
                },
            );
        }
        None if shard.drain.is_on() => {
            return Reply::error(
                Some(id),
                &RpcError::Internal(
                    "the gateway is shutting down and the call did not finish within limits.shutdown_grace_ms".into(),
                ),
            );
        }
        None => {
            return Reply::error(Some(id), &RpcError::Cancelled);
        }
    };
    // The common case, a whole JSON answer from a stateful backend, without another await.
    let Response {
        status,
        session_id,
        body,
    } = resp;
    let body = match body {
        Body::Full(body) if status == Status::Ok && request.is_none() => {
            drop(inflight);
            return super::answer::answer_of(shard, &pool, id, body, map_uris, call.outcome);
        }
        body => body,
    };
    let resp = Response {
        status,
        session_id,
        body,
    };
    super::answer::answer(
        shard, session, pool, resp, request, call, id, inflight, map_uris,
    )
    .await
}

/// The error of a call its backend failed, naming the backend.
pub(crate) fn backend_error(id: Raw<'_>, pool: &Pool, reason: String) -> Reply {
    Reply::error(
        Some(id),
        &RpcError::Backend {
            backend: pool.name().to_owned(),
            reason,
        },
    )
}

/// A client's answer to a server-to-client request: back to the backend that asked, with the
/// original id restored. Answers that are not ours to route are acknowledged and dropped.
pub async fn client_response(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    body: &[u8],
    msg: &Message<'_>,
) -> Reply {
    let Some(id) = msg.id else {
        return Reply::Status(202);
    };
    if crate::handlers::sessionless::take_answer(session, id.get(), body) {
        return Reply::Status(202);
    }
    let Some((backend, original)) = relay::unmap_response_id(id) else {
        tracing::debug!(session = %session.id, "client answered a request ringmux did not send; dropped");
        return Reply::Status(202);
    };
    let Some(pool) = shard.pools.iter().find(|p| p.cfg.id == backend) else {
        return Reply::Status(202);
    };
    let mut out = Vec::with_capacity(body.len());
    jsonrpc::splice(&mut out, body, span_of(body, id), original.as_bytes());
    send_one_way(shard, session, pool, &out, "client answer").await;
    Reply::Status(202)
}

/// A call that outlived its route's `call_timeout_ms`: the backend is told to stop
/// (`notifications/cancelled`, in the background: the client's answer does not wait).
fn call_timed_out(shard: &Rc<Shard>, session: &Rc<Session>, pool: &Rc<Pool>, id: Raw<'_>) {
    let mut body = Vec::with_capacity(128);
    body.extend_from_slice(
        b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":",
    );
    body.extend_from_slice(id.get().as_bytes());
    body.extend_from_slice(b",\"reason\":\"the gateway's call_timeout_ms passed\"}}");
    let (shard, session, pool) = (shard.clone(), session.clone(), pool.clone());
    monoio::spawn(async move {
        send_one_way(
            &shard,
            &session,
            &pool,
            &body,
            "cancellation after call_timeout_ms",
        )
        .await;
    });
}

/// A client notification: `cancelled` goes to the backend that owns the request (and the
/// call stops waiting), `roots/list_changed` to the backends that asked for roots; the
/// client's `initialized` was already sent per backend session. Always 202.
pub async fn client_notification(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    body: &[u8],
    msg: &Message<'_>,
) -> Reply {
    let targets: Vec<u16> = match &*msg.method {
        "notifications/cancelled" => {
            let Some(request) = msg.params.request_id else {
                return Reply::Status(202);
            };
            let key = request_key(request.get());
            // Tell the backend first, then stop waiting for its answer.
            let owner = session.owner_of(key);
            if let Some(b) = owner {
                notify(shard, session, &shard.pool_any(b), body).await;
            }
            session.cancel(key);
            return Reply::Status(202);
        }
        "notifications/roots/list_changed" => session.roots_askers(),
        _ => return Reply::Status(202),
    };
    let sends = targets
        .iter()
        .filter_map(|b| shard.pools.get(*b as usize))
        .map(|pool| notify(shard, session, pool, body));
    join_all(sends).await;
    Reply::Status(202)
}

async fn notify(shard: &Rc<Shard>, session: &Rc<Session>, pool: &Rc<Pool>, body: &[u8]) {
    send_one_way(shard, session, pool, body, "client notification").await;
}

/// Sends a message that expects no answer (a notification, or an answer to the backend's own
/// request) and reads what comes back to its end; a failure is logged as `what` not delivered.
pub(crate) async fn send_one_way(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    pool: &Rc<Pool>,
    body: &[u8],
    what: &str,
) {
    match send(shard, session, pool, body).await {
        Ok(resp) => {
            let _ = final_message(resp.body).await;
        }
        Err(e) => tracing::warn!(backend = %pool.name(), "{what} not delivered: {e}"),
    }
}
