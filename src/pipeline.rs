//! The request pipeline: the one path every client request takes on the shard that owns its
//! session, whichever front (Streamable HTTP, legacy HTTP+SSE, 2026-07-28) and whichever shard
//! it came in on. A front checks its transport's rules and turns the bytes into one
//! [`Request`] (a hop to the owner shard carries it as an [`OwnedRequest`]); [`run`] then takes
//! it through these stages, in this order, and nowhere else:
//!
//! 1. **authenticate** ([`authenticate`]): who is calling, on the shard that accepted the
//!    request: its `Authorization` credential verified ([`crate::auth`], a cache per shard),
//!    or without `auth:` the front's placeholder ([`Principal::Anonymous`], or the trusted
//!    principal header). A refusal is answered with its challenge.
//! 2. **owner shard** ([`route`]): a request whose session another shard owns goes there (its
//!    owned form, with the principal, not the credential) and goes on there.
//! 3. **admit** ([`admit`]): limits per principal (`rate_limits:`: its token bucket, its
//!    requests in progress); a refusal is 429 with `Retry-After`.
//! 4. **session**: the session the request names, looked up under the principal: another
//!    principal's session id is 404, exactly like an unknown one ([`Shard::session`]).
//! 5. **method**: the method table ([`ringmux_core::method`]): a method of another era, or none,
//!    is -32601.
//! 6. **authorize** ([`authorize`]): may this principal call this method (on this item).
//!    Allows everything today.
//! 7. **handler**: initialize, lists, routed calls ([`crate::handlers::dispatch`]), the
//!    2026-07-28 handlers ([`crate::handlers::modern`]); client notifications and answers to
//!    server→client requests.
//! 8. **answer and era adapter** ([`crate::handlers::answer`], [`ringmux_core::era`]): the
//!    answer made the client's (its era's result members and error statuses, URIs as it knows
//!    them) on the way its transport takes.
//!
//! Stages 1 to 3 need no waiting ([`route`]); 4 to 8 run in [`message`], so a request pays one
//! await for the pipeline. (ARCHITECTURE.md numbers the same stages from the front, 0.)
//!
//! Each stage's function has its final shape (what it reads, how it refuses), so the
//! authentication, rate-limit and authorization issues fill in bodies, not call sites.

use std::rc::Rc;

use ringmux_core::error::HttpReject;
use ringmux_core::error::{ErrorEra, RpcError};
use ringmux_core::jsonrpc::{self, Kind};
use ringmux_core::method::{self, Handler, Local};
use ringmux_core::modern::EnvelopeParams;

use crate::handlers::dispatch;
use crate::handlers::dispatch::{Call, Sink};
use crate::observe::{Finished, Outcome};
use crate::reply::{session_not_found, Reply};
use crate::shard::Shard;

pub use crate::request::{ClientEra, Credential, Op, OwnedRequest, Parsed, Principal, Request};

/// Stage 1: who is calling. With `auth:` configured, the request's credential verified
/// ([`crate::auth`]; a refusal is its challenge), or else the connection's verified client
/// certificate; without `auth:`, the front's principal (the certificate's, anonymous, or the
/// trusted `modern.principal_header`'s value).
pub fn authenticate(shard: &Shard, req: &Request<'_>) -> Result<Principal, Reply> {
    match req.credential {
        Credential::Done => Ok(req.principal.clone()),
        Credential::Header(header) => authenticate_header(shard, header, &req.principal, req.route),
    }
}

/// [`authenticate`] for an `Authorization` header value (`fallback`: who the request is
/// without a credential). The 2026-07-28 front and the legacy stream call it directly: their
/// principal decides where they go.
pub fn authenticate_header(
    shard: &Shard,
    header: Option<&[u8]>,
    fallback: &Principal,
    route: u8,
) -> Result<Principal, Reply> {
    let Some(auth) = shard.auth_for(route) else {
        return Ok(fallback.clone());
    };
    // A verified client certificate is a credential: it stands when no other is presented (a
    // bearer token presented with it names the principal instead).
    if header.is_none() && matches!(fallback, Principal::Cert(_)) {
        return Ok(fallback.clone());
    }
    match auth.authenticate(header, crate::auth::unix_now()) {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Ok(fallback.clone()),
        Err(why) => {
            shard.metrics.auth_refused.add(1);
            Err(auth.refuse(why))
        }
    }
}

/// Stage 3: whether this principal may send one more request now (`rate_limits:`: its
/// token bucket, and its requests in progress). The guard holds its place among those until
/// the request is answered; a refusal is 429 with `Retry-After`.
pub fn admit(
    shard: &Shard,
    principal: &Principal,
    _req: &Request<'_>,
) -> Result<Option<crate::limits::Admitted>, Reply> {
    let Some(limiter) = &shard.limiter else {
        return Ok(None);
    };
    limiter.admit(principal).map_err(|limited| {
        shard.metrics.rate_limited.add(1);
        Reply::limited(None, &limited)
    })
}

/// Stage 6: what `principal` may see and use: its authorization view (`None` without
/// `authz:`), kept on the session. The decision on the item a request names (the tool,
/// prompt or URI, its arguments) is the view's, made where the name is resolved to its owner
/// (`handlers::dispatch`, for every era) and where lists are written (`handlers::lists`): an
/// item the view hides is answered as an unknown name, and lists leave it out.
pub fn authorize(
    shard: &Shard,
    principal: &Principal,
    session: Option<&crate::session::Session>,
    facts: Option<&std::sync::Arc<crate::request::Facts>>,
) -> Option<Rc<crate::authz::View>> {
    // Without `authz:` there is no view (checked here, inline: the hot path's case); without a
    // session (`initialize`) nothing is named that a view would decide. A virtual server's
    // clients are decided by its rules.
    let session = session?;
    let authz = shard.authz_for(session.route())?;
    session.authz_view(
        Some(authz),
        principal,
        facts,
        &shard.metrics,
        shard.generation == shard.current_generation(),
    )
}

/// Where a request goes after the stages that need no waiting ([`route`]).
pub enum Step<'a> {
    /// Answered already (a refusal, a GET stream, a DELETE, a legacy POST's 202).
    Done(Reply),
    /// Its session lives on shard `to`: the request goes there (and starts over there).
    Hop { to: usize, request: OwnedRequest },
    /// A JSON-RPC message for [`message`] (stages 3 to 7), by this principal. `admitted`
    /// holds its place among the principal's requests in progress: keep it until answered.
    Message {
        principal: Principal,
        request: Request<'a>,
        sse: bool,
        admitted: Option<crate::limits::Admitted>,
    },
}

/// Stages 1 to 3 (authenticate, owner shard, admit), and the requests that end there. Not async,
/// so that a front's hot path pays one await for the whole pipeline ([`message`]).
pub fn route<'a>(shard: &Rc<Shard>, req: Request<'a>) -> Step<'a> {
    // On the accepting shard: its cache of verified credentials serves the connection, and
    // the owner gets the principal, not the credential.
    let principal = match authenticate(shard, &req) {
        Ok(p) => p,
        Err(refused) => return Step::Done(refused),
    };
    // The shard that owns the session (a request without one, an `initialize`, stays here).
    let owner = req.session.map_or(shard.id, |s| shard.owner_of(s));
    if owner != shard.id {
        shard.metrics.hops_out.add(1);
        let mut request = req.to_owned();
        request.principal = principal;
        request.route_key = shard.route_key(req.route);
        return Step::Hop { to: owner, request };
    }
    let admitted = match admit(shard, &principal, &req) {
        Ok(a) => a,
        Err(refused) => return Step::Done(refused),
    };
    let done = match (&req.op, req.era) {
        (Op::Message { sse }, era) if era != ClientEra::Legacy => {
            let sse = *sse;
            return Step::Message {
                principal,
                request: req,
                sse,
                admitted,
            };
        }
        // Answered 202 at once; the message runs in the background and its answer goes on
        // the session's stream.
        (Op::Message { .. }, _) => post_legacy(
            shard,
            req.session.expect("the legacy front requires a sessionId"),
            principal,
            req.body,
            admitted,
            req.facts.clone(),
            req.trace,
        ),
        (Op::Get { last_event_id }, _) => match req.session {
            Some(id) => crate::handlers::lifecycle::open_get(
                shard,
                id,
                &principal,
                req.route,
                last_event_id.as_deref(),
            ),
            None => Reply::reject(HttpReject::BadRequest, "Mcp-Session-Id header is required"),
        },
        (Op::Delete, _) => match req.session {
            Some(id) if shard.end_session_for(id, &principal, req.route) => Reply::Status(200),
            Some(_) => session_not_found(),
            None => Reply::reject(HttpReject::BadRequest, "Mcp-Session-Id header is required"),
        },
    };
    Step::Done(done)
}

/// Runs a request through every stage: on this shard, or on the one that owns its session.
pub async fn run(shard: &Rc<Shard>, req: Request<'_>) -> Reply {
    match route(shard, req) {
        Step::Done(reply) => reply,
        Step::Hop { to, request } => shard.peers.call(to, request).await,
        Step::Message {
            principal,
            request,
            sse,
            admitted,
        } => {
            message(
                shard,
                &principal,
                request.era,
                request.session,
                request.body,
                request.parsed,
                sse,
                admitted,
                request.route,
                request.facts.as_ref(),
                request.trace,
            )
            .await
        }
    }
}

/// Stages 4 to 8 for one JSON-RPC message. `admitted`: its place among its principal's
/// requests in progress (stage 3), held by the call it becomes.
#[allow(clippy::too_many_arguments)]
pub async fn message(
    shard: &Rc<Shard>,
    principal: &Principal,
    era: ClientEra,
    session_id: Option<&str>,
    body: &[u8],
    parsed: Option<&Parsed<'_>>,
    sse: bool,
    admitted: Option<crate::limits::Admitted>,
    route: u8,
    facts: Option<&std::sync::Arc<crate::request::Facts>>,
    trace: Option<ringmux_core::trace::Incoming>,
) -> Reply {
    shard.metrics.requests.add(1);
    if era == ClientEra::Sessionless {
        let parsed_here;
        let parsed = match parsed {
            Some(p) => p,
            // It hopped here: parsed again on this shard.
            None => match jsonrpc::parse(body) {
                Ok(msg) => {
                    let env = EnvelopeParams::of(body);
                    parsed_here = Parsed { msg, env };
                    &parsed_here
                }
                Err(e) => return Reply::error_in(None, &e, ErrorEra::Sessionless),
            },
        };
        let key = session_id.expect("a 2026-07-28 request names its principal session");
        return sessionless(
            shard, principal, key, body, parsed, sse, admitted, route, facts, trace,
        )
        .await;
    }
    // Stateful and legacy fronts leave the parse to this stage.
    debug_assert!(parsed.is_none());
    let msg = match jsonrpc::parse(body) {
        Ok(m) => m,
        Err(e) => return Reply::error_in(None, &e, era.error_era()),
    };
    let session = shard.session(session_id, principal, route);
    match msg.kind {
        // Client notifications go to the backends concerned; answers to server-to-client
        // requests go back to the asker.
        Kind::Notification | Kind::Response => match (session_id, session) {
            (Some(_), None) => session_not_found(),
            (_, Some(session)) if msg.kind == Kind::Response => {
                dispatch::client_response(shard, &session, body, &msg).await
            }
            (_, Some(session)) => dispatch::client_notification(shard, &session, body, &msg).await,
            _ => Reply::Status(202),
        },
        Kind::Request => {
            let id = msg.id.expect("requests have ids");
            let Some(entry) = method::lookup(&msg.method).filter(|m| m.stateful) else {
                return Reply::error(Some(id), &RpcError::MethodNotFound(msg.method.to_string()));
            };
            let finished =
                Finished::begin(entry.name, &msg, body, principal, session_id, era, route);
            let outcome = Outcome::begin(shard, trace, msg.params.meta.as_ref());
            let call = Call {
                body,
                session: session_id,
                id,
                renumber: None,
                sink: Sink::of(era, sse),
                view: authorize(shard, principal, session.as_deref(), facts),
                admitted: std::cell::Cell::new(admitted),
                route,
                outcome: &outcome,
            };
            // Every request the method table knows is recorded, however it ends.
            let reply = match (entry.handler, session_id, session) {
                (Handler::Local(Local::Initialize), _, _) => {
                    dispatch::initialize(shard, principal, &call, &msg).await
                }
                (Handler::Local(Local::Discover), _, _) => dispatch::discover(id),
                (_, _, Some(session)) => {
                    dispatch::request(shard, &session, entry, &call, &msg).await
                }
                (_, None, None) => Reply::error(
                    Some(id),
                    &RpcError::InvalidRequest("Mcp-Session-Id header is required".into()),
                ),
                (_, Some(_), None) => session_not_found(),
            };
            crate::observe::finish(shard, &finished, &outcome, &reply);
            reply
        }
    }
}

/// Stages 5 to 8 for a 2026-07-28 request (its session is its principal's, `key`).
#[allow(clippy::too_many_arguments)]
async fn sessionless(
    shard: &Rc<Shard>,
    principal: &Principal,
    key: &str,
    body: &[u8],
    parsed: &Parsed<'_>,
    sse: bool,
    admitted: Option<crate::limits::Admitted>,
    route: u8,
    facts: Option<&std::sync::Arc<crate::request::Facts>>,
    trace: Option<ringmux_core::trace::Incoming>,
) -> Reply {
    let msg = &parsed.msg;
    let Some(id) = msg.id else {
        // The era has no client notification a gateway must act on.
        return Reply::Status(202);
    };
    let Some(entry) = method::lookup(&msg.method).filter(|m| m.sessionless) else {
        return Reply::error_in(
            Some(id),
            &RpcError::MethodNotFound(msg.method.to_string()),
            ErrorEra::Sessionless,
        );
    };
    let finished = Finished::begin(
        entry.name,
        msg,
        body,
        principal,
        Some(key),
        ClientEra::Sessionless,
        route,
    );
    let outcome = Outcome::begin(shard, trace, msg.params.meta.as_ref());
    let reply = crate::handlers::modern::serve(
        shard, key, principal, entry, body, parsed, sse, admitted, route, facts, &outcome,
    )
    .await;
    crate::observe::finish(shard, &finished, &outcome, &reply);
    reply
}

/// `POST <message_path>?sessionId=`: answered 202 at once; the message is handled in the
/// background and its answer goes on the session's stream.
fn post_legacy(
    shard: &Rc<Shard>,
    id: &str,
    principal: Principal,
    body: &[u8],
    admitted: Option<crate::limits::Admitted>,
    facts: Option<std::sync::Arc<crate::request::Facts>>,
    trace: Option<ringmux_core::trace::Incoming>,
) -> Reply {
    let known = shard.session(Some(id), &principal, 0).is_some()
        || shard
            .legacy_pending
            .borrow()
            .get(id)
            .is_some_and(|(_, opener)| *opener == principal);
    if !known {
        return session_not_found();
    }
    let mut owned = crate::bufs::take_with(body.len());
    owned.extend_from_slice(body);
    let shard = shard.clone();
    let id: Box<str> = id.into();
    monoio::spawn(async move {
        let reply = message(
            &shard,
            &principal,
            ClientEra::Legacy,
            Some(&id),
            &owned,
            None,
            false,
            admitted,
            0,
            facts.as_ref(),
            trace,
        )
        .await;
        // A rate limit's refusal goes on the stream like any answer.
        let reply = match reply {
            Reply::Limited { body, .. } => Reply::Json {
                status: 429,
                body,
                session: None,
            },
            other => other,
        };
        if let Reply::Json { body: answer, .. } = reply {
            if let Some(s) = shard.session(Some(&id), &principal, 0) {
                s.streams.send(crate::session::streams::GET_STREAM, &answer);
            } else {
                refuse_before_initialize(&shard, &id, &owned);
            }
            crate::bufs::give(answer);
        }
        crate::bufs::give(owned);
    });
    Reply::Status(202)
}

/// A legacy client's request POSTed to a stream it has not initialized yet: answered on
/// that stream with an error carrying the request's id (rather than left unanswered).
fn refuse_before_initialize(shard: &Shard, id: &str, body: &[u8]) {
    let pending = shard.legacy_pending.borrow();
    let Some((tx, _)) = pending.get(id) else {
        return;
    };
    let Ok(msg) = jsonrpc::parse(body) else {
        return;
    };
    if msg.kind != Kind::Request {
        return;
    }
    let mut answer = Vec::with_capacity(128);
    jsonrpc::write_error_parts(
        &mut answer,
        msg.id,
        -32600,
        "Bad Request: the session is not initialized (send initialize first)",
        None,
    );
    let mut event = Vec::with_capacity(answer.len() + 32);
    ringmux_core::sse::write_event(&mut event, None, None, &answer);
    let _ = tx.unbounded_send(event);
}
