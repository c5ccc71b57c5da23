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
//!   ([`ringmux_core::era::to_sessionless`]); errors go out with the era's HTTP statuses;
//! - a backend's request in the middle of a call (sampling, elicitation, roots) cannot reach a
//!   sessionless client: the call is parked on this shard and the client gets an
//!   `input_required` result whose `requestState` is sealed (XChaCha20-Poly1305) and names
//!   the shard, the parked call, the principal, the request it belongs to and an expiry. The
//!   client's retry answers the backend and the call resumes ([`super::mrtr`]);
//! - `subscriptions/listen` streams get the backends' list_changed and resources/updated,
//!   tagged with the subscription id ([`State::publish`]);
//! - client ids are renumbered: requests of one principal share backend sessions, and two
//!   clients may well use the same id.

use std::rc::Rc;

use futures_channel::mpsc::{self};
use ringmux_core::era;
use ringmux_core::error::{ErrorEra, RpcError};
use ringmux_core::jsonrpc::{self, raw_str, span_of, Message, Raw};
use ringmux_core::method::{self, Handler, Local, Method as McpMethod};
use ringmux_core::modern::EnvelopeParams;
use ringmux_core::seal::STATE_PREFIX;
use ringmux_core::version;
use serde_json::value::RawValue;

use super::mrtr::{held_asks, park, resume};
use crate::handlers::dispatch;
use crate::handlers::dispatch::{Call, Sink};
use crate::handlers::relay;
use crate::reply::Reply;
use crate::request::{Parsed, Principal};
use crate::session::principal::{event, Listener, State, META_SUBSCRIPTION};
use crate::session::Session;
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
    /// The caller's authorization view (the pipeline's authorize stage, made here once the
    /// principal session is known).
    pub view: Option<Rc<crate::authz::View>>,
    /// The request's admission (`rate_limits:`), for the call it becomes ([`Call::admitted`]).
    pub admitted: Rc<std::cell::Cell<Option<crate::limits::Admitted>>>,
}

/// Serves a modern request on the shard that owns its principal session `key`.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    shard: &Rc<Shard>,
    key: &str,
    principal: &Principal,
    entry: &'static McpMethod,
    body: &[u8],
    parsed: &Parsed<'_>,
    sse: bool,
    admitted: Option<crate::limits::Admitted>,
    route: u8,
    facts: Option<&std::sync::Arc<crate::request::Facts>>,
    outcome: &crate::observe::Outcome,
) -> Reply {
    let (msg, env) = (&parsed.msg, &parsed.env);
    let Some(id) = msg.id else {
        return Reply::Status(202);
    };
    shard.metrics.modern_requests.add(1);
    let session = match principal_session(shard, key, principal, env, route).await {
        Ok(s) => s,
        Err(e) => {
            return Reply::error_in(
                Some(id),
                &RpcError::InvalidParams(e.to_string()),
                ErrorEra::Sessionless,
            )
        }
    };
    let state = session.modern.get().expect("a principal session").clone();
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
        binding: binding(msg, env),
        ttl_ms: shard.cfg.catalog_ttl.as_millis() as u64,
        view: session.authz_view(
            shard.authz_for(route),
            principal,
            facts,
            &shard.metrics,
            shard.generation == shard.current_generation(),
        ),
        admitted: Rc::new(std::cell::Cell::new(admitted)),
    };
    match entry.handler {
        Handler::Local(Local::Discover) => discover(shard, &session, id),
        Handler::Local(Local::Listen) => {
            listen(shard, &session, &state, env, id, ctx.view.clone()).await
        }
        // A state of ringmux's own; any other is a sessionless backend's, for it to read.
        _ if env.request_state.is_some_and(|s| {
            s.get()
                .strip_prefix('"')
                .is_some_and(|s| s.starts_with(STATE_PREFIX))
        }) =>
        {
            resume(shard, &session, env, msg, body, ctx, sse, outcome).await
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
            call(shard, &session, body, msg, ctx, sse, outcome).await
        }
    }
}

/// Sends a modern request through the stateful dispatch. The backend session is shared by the
/// principal's requests, so this one gets an id of its own; the answer gets the client's back.
pub(crate) async fn call(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    body: &[u8],
    msg: &Message<'_>,
    ctx: Ctx,
    sse: bool,
    outcome: &crate::observe::Outcome,
) -> Reply {
    let state = session.modern.get().expect("a principal session");
    let id = msg.id.expect("requests have ids");
    let mine = format!("\"ringmux-m{}\"", state.next());
    let call = Call {
        body,
        session: Some(&session.id),
        id: Raw::new(&mine).expect("a JSON string"),
        renumber: Some(span_of(body, id)),
        sink: Sink::Modern { ctx: &ctx, sse },
        view: ctx.view.clone(),
        admitted: std::cell::Cell::new(ctx.admitted.take()),
        route: session.route(),
        outcome,
    };
    let reply = dispatch::request(shard, session, ctx.entry, &call, msg).await;
    finish(reply, &ctx)
}

/// The principal session for `key`, created (and its backend sessions initialized with the
/// request's capabilities) on first use.
async fn principal_session(
    shard: &Rc<Shard>,
    key: &str,
    principal: &Principal,
    env: &EnvelopeParams<'_>,
    route: u8,
) -> Result<Rc<Session>, ringmux_core::initialize::ParamsError> {
    if let Some(s) = shard.session(Some(key), principal, route) {
        s.modern.get().expect("a principal session").ready().await;
        return Ok(s);
    }
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
    Ok(crate::handlers::lifecycle::create_principal(shard, key, principal, params, route).await)
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
pub(crate) fn complete(message: &[u8], ctx: &Ctx) -> (Vec<u8>, u16) {
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
        // A rate limit's refusal keeps its 429; its id becomes the client's.
        Reply::Limited {
            retry_after_s,
            body,
        } => {
            let (out, _) = complete(&body, ctx);
            Reply::Limited {
                retry_after_s,
                body: out,
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
    view: Option<Rc<crate::authz::View>>,
) -> Reply {
    let wanted: Wanted = match env.notifications {
        None => Wanted::default(),
        Some(n) => match serde_json::from_str(n.get()) {
            Ok(w) => w,
            Err(e) => {
                return Reply::error_in(
                    Some(id),
                    &RpcError::InvalidParams(format!("params.notifications: {e}")),
                    ErrorEra::Sessionless,
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
            id: sub.id.expect("a request"),
            renumber: None,
            sink: Sink::Json,
            view: view.clone(),
            admitted: std::cell::Cell::new(None),
            route: session.route(),
            outcome: &crate::observe::Outcome::default(),
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
