//! Answering one request: the path and Host/Origin checks, then POST (initialize, session
//! lookup, JSON-RPC dispatch, JSON or SSE answer), GET (standalone or resumed SSE stream) and
//! DELETE.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use ringmux_core::http::{self, Method, RequestHead};
use ringmux_core::jsonrpc::{self, write_error_parts, Kind, Message, Raw};
use ringmux_core::sse::KEEPALIVE;
use ringmux_core::version;

use super::dispatch::{self, Action, Call};
use super::emit::{Emitter, Io};
use super::session::Session;
use super::{tasks, Shared};

/// How long before its configured latency is up the mock polls the clock rather than sleep
/// (`--latency-ms` is then the answer's latency to within microseconds, not a timer tick).
const LATENCY_SPIN: Duration = Duration::from_micros(100);

/// A comment on idle SSE streams this often keeps proxies from closing them.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

/// The parts of a request the handlers look at.
struct Req<'a> {
    keep_alive: bool,
    /// The client accepts `text/event-stream`.
    sse: bool,
    session: Option<&'a [u8]>,
    protocol_version: Option<&'a [u8]>,
    last_event_id: Option<&'a [u8]>,
    mcp_method: Option<&'a [u8]>,
    mcp_name: Option<&'a [u8]>,
    traceparent: Option<&'a [u8]>,
    tracestate: Option<&'a [u8]>,
    /// A 2026-07-28 request: no session, the version header says so.
    modern: bool,
    body: &'a [u8],
}

/// Answers one request. `Ok(true)`: the connection can carry another.
pub(crate) async fn handle(
    sh: &Arc<Shared>,
    io: &mut Io,
    buf: &[u8],
    head: &RequestHead,
    body: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<bool> {
    let field = |r: &Option<Range<usize>>| r.clone().map(|r| &buf[r]);
    let h = &head.headers;
    let req = Req {
        keep_alive: head.keep_alive,
        sse: field(&h.accept).is_some_and(|a| http::accepts(a, b"text/event-stream")),
        session: field(&h.session_id),
        protocol_version: field(&h.protocol_version),
        last_event_id: field(&h.last_event_id),
        mcp_method: field(&h.mcp_method),
        mcp_name: field(&h.mcp_name),
        traceparent: field(&h.traceparent),
        tracestate: field(&h.tracestate),
        modern: sh.cfg.modern
            && h.session_id.is_none()
            && field(&h.protocol_version) == Some(version::SESSIONLESS.as_bytes()),
        body,
    };
    if sh.cfg.sse {
        let query = head.query.clone().map_or(&b""[..], |q| &buf[q]);
        return legacy(
            sh,
            io,
            &req,
            head.method,
            &buf[head.path.clone()],
            query,
            out,
        )
        .await;
    }
    if buf[head.path.clone()] != *b"/mcp" {
        io.respond(
            404,
            Some("text/plain"),
            b"not found; the MCP endpoint is /mcp",
            req.keep_alive,
            &[],
        );
        return flushed(io, req.keep_alive).await;
    }
    if let Some(token) = &sh.cfg.require_bearer {
        let presented = field(&h.authorization).and_then(|a| a.strip_prefix(b"Bearer "));
        if presented != Some(token.as_bytes()) {
            io.respond(
                401,
                Some("application/json"),
                br#"{"error":"invalid_token"}"#,
                req.keep_alive,
                &[("www-authenticate", b"Bearer error=\"invalid_token\"")],
            );
            return flushed(io, req.keep_alive).await;
        }
    }
    if sh.cfg.conformance && !host_allowed(field(&h.host), field(&h.origin)) {
        return rpc_error(io, out, None, FOREIGN_HOST, req.keep_alive).await;
    }
    match head.method {
        Method::Post => post(sh, io, &req, out).await,
        Method::Get => get(sh, io, &req, out).await,
        Method::Delete => delete(sh, io, &req, out).await,
        _ => {
            let allow: &[u8] = b"GET, POST, DELETE";
            io.respond(405, None, b"", req.keep_alive, &[("allow", allow)]);
            flushed(io, req.keep_alive).await
        }
    }
}

async fn flushed(io: &mut Io, keep_alive: bool) -> io::Result<bool> {
    io.flush().await?;
    Ok(keep_alive)
}

/// A transport-level refusal: HTTP status, JSON-RPC code, message (the TypeScript SDK's).
type Refusal = (u16, i32, &'static str);

const NO_SESSION: Refusal = (
    400,
    -32000,
    "Bad Request: Mcp-Session-Id header is required",
);
const UNKNOWN_SESSION: Refusal = (404, -32001, "Session not found");
const BAD_VERSION: Refusal = (400, -32000, "Bad Request: Unsupported MCP-Protocol-Version");
const HEADER_MISMATCH: Refusal = (
    400,
    -32020,
    "Bad Request: Mcp-Method or Mcp-Name does not match the body",
);
const MISSING_META: Refusal = (
    400,
    -32602,
    "Invalid params: _meta must carry the protocol version and client capabilities",
);
const FOREIGN_HOST: Refusal = (403, -32000, "Forbidden: Host or Origin is not localhost");

async fn rpc_error(
    io: &mut Io,
    out: &mut Vec<u8>,
    id: Option<Raw<'_>>,
    (status, code, message): Refusal,
    keep_alive: bool,
) -> io::Result<bool> {
    out.clear();
    write_error_parts(out, id, code, message, None);
    io.respond(status, Some("application/json"), out, keep_alive, &[]);
    flushed(io, keep_alive).await
}

/// The request's session, checked the way the spec asks: no header 400, unknown 404, an
/// unsupported `MCP-Protocol-Version` 400.
fn session_of(sh: &Shared, req: &Req<'_>) -> Result<Arc<Session>, Refusal> {
    let id = req.session.ok_or(NO_SESSION)?;
    let session = sh.sessions.get(id).ok_or(UNKNOWN_SESSION)?;
    match req.protocol_version.map(std::str::from_utf8) {
        Some(Ok(v)) if version::is_supported(v) => Ok(session),
        Some(_) => Err(BAD_VERSION),
        None => Ok(session),
    }
}

/// Whether Host and Origin (when present) name this machine: the DNS-rebinding check.
fn host_allowed(host: Option<&[u8]>, origin: Option<&[u8]>) -> bool {
    fn local(authority: &[u8]) -> bool {
        let name = if authority.starts_with(b"[") {
            match authority.iter().position(|b| *b == b']') {
                Some(end) => &authority[..=end],
                None => return false,
            }
        } else {
            authority.split(|b| *b == b':').next().unwrap_or_default()
        };
        [&b"localhost"[..], b"127.0.0.1", b"[::1]"]
            .iter()
            .any(|l| name.eq_ignore_ascii_case(l))
    }
    let origin_ok = origin.is_none_or(|o| {
        let Some(scheme_end) = o.windows(3).position(|w| w == b"://") else {
            return false;
        };
        let rest = &o[scheme_end + 3..];
        local(rest.split(|b| *b == b'/').next().unwrap_or_default())
    });
    host.is_none_or(local) && origin_ok
}

async fn post(sh: &Shared, io: &mut Io, req: &Req<'_>, out: &mut Vec<u8>) -> io::Result<bool> {
    let ka = req.keep_alive;
    let msg = match jsonrpc::parse(req.body) {
        Ok(msg) => msg,
        Err(e) => {
            out.clear();
            jsonrpc::write_error(out, None, &e);
            io.respond(
                e.status_in(ringmux_core::error::ErrorEra::Stateful),
                Some("application/json"),
                out,
                ka,
                &[],
            );
            return flushed(io, ka).await;
        }
    };
    if msg.kind == Kind::Request && msg.method == "initialize" {
        return initialize(sh, io, &msg, ka, out).await;
    }
    if req.modern {
        return sessionless(sh, io, req, &msg, out).await;
    }
    let session = match session_of(sh, req) {
        Ok(s) => s,
        Err(refusal) => return rpc_error(io, out, msg.id, refusal, ka).await,
    };
    match (msg.kind, msg.id) {
        (Kind::Request, Some(id)) => request(sh, io, req, &msg, id, &session, out).await,
        (Kind::Response, Some(id)) => {
            session.answer(id, req.body);
            io.respond(202, None, b"", ka, &[]);
            flushed(io, ka).await
        }
        (Kind::Notification, _) => {
            session.record(match msg.params.request_id {
                Some(id) => format!("{}:{}", msg.method, id.get()),
                None => msg.method.to_string(),
            });
            io.respond(202, None, b"", ka, &[]);
            flushed(io, ka).await
        }
        _ => {
            io.respond(202, None, b"", ka, &[]);
            flushed(io, ka).await
        }
    }
}

/// A 2026-07-28 request: no session, and the `Mcp-Method` header (with `Mcp-Name` for the
/// methods that name something) must repeat the body. Results carry `resultType`.
async fn sessionless(
    sh: &Shared,
    io: &mut Io,
    req: &Req<'_>,
    msg: &Message<'_>,
    out: &mut Vec<u8>,
) -> io::Result<bool> {
    let ka = req.keep_alive;
    let named = match &*msg.method {
        "tools/call" | "prompts/get" => msg.params.name,
        "resources/read" => msg.params.uri,
        _ => None,
    };
    let name_ok = match named.map(|raw| serde_json::from_str::<String>(raw.get())) {
        None => true,
        Some(Ok(name)) => req.mcp_name == Some(name.as_bytes()),
        Some(Err(_)) => false,
    };
    if msg.kind != Kind::Response && (req.mcp_method != Some(msg.method.as_bytes()) || !name_ok) {
        return rpc_error(io, out, msg.id, HEADER_MISMATCH, ka).await;
    }
    if msg.kind == Kind::Request && !meta_ok(req.body) {
        return rpc_error(io, out, msg.id, MISSING_META, ka).await;
    }
    match (msg.kind, msg.id) {
        (Kind::Request, Some(id)) if msg.method == "server/discover" => {
            result_prefix(out, id);
            out.extend_from_slice(br#"{"resultType":"complete","supportedVersions":[""#);
            out.extend_from_slice(version::SESSIONLESS.as_bytes());
            if sh.cfg.dual {
                for v in version::STATEFUL {
                    out.extend_from_slice(b"\",\"");
                    out.extend_from_slice(v.as_bytes());
                }
            }
            out.extend_from_slice(br#""],"capabilities":{"tools":{"listChanged":true},"prompts":{},"resources":{"subscribe":true,"listChanged":true},"logging":{}},"ttlMs":0,"cacheScope":"public","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"#);
            jsonrpc::write_str(out, &sh.cfg.name);
            out.extend_from_slice(br#","version":"1"}}"#);
            if let Some(text) = &sh.cfg.instructions {
                out.extend_from_slice(br#","instructions":"#);
                jsonrpc::write_str(out, text);
            }
            out.extend_from_slice(b"}}");
            io.respond(200, Some("application/json"), out, ka, &[]);
            flushed(io, ka).await
        }
        (Kind::Request, Some(id)) if msg.method == "subscriptions/listen" => {
            listen(sh, io, req, id).await
        }
        (Kind::Request, Some(id)) => request(sh, io, req, msg, id, &sh.stateless, out).await,
        _ => {
            io.respond(202, None, b"", ka, &[]);
            flushed(io, ka).await
        }
    }
}

/// Whether a 2026-07-28 request's `params._meta` carries this era's version and the client's
/// capabilities.
fn meta_ok(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Env {
        params: Option<Params>,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "_meta")]
        meta: Option<serde_json::Map<String, serde_json::Value>>,
    }
    let Ok(Env {
        params: Some(Params { meta: Some(meta) }),
    }) = serde_json::from_slice::<Env>(body)
    else {
        return false;
    };
    meta.get("io.modelcontextprotocol/protocolVersion")
        .and_then(|v| v.as_str())
        == Some(version::SESSIONLESS)
        && meta
            .get("io.modelcontextprotocol/clientCapabilities")
            .is_some_and(|c| c.is_object())
}

/// `subscriptions/listen`: the acknowledgement, then the list changes and resource updates
/// asked for, each tagged with the subscription id, until the client goes.
async fn listen(sh: &Shared, io: &mut Io, req: &Req<'_>, id: Raw<'_>) -> io::Result<bool> {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Wanted {
        #[serde(default)]
        tools_list_changed: bool,
        #[serde(default)]
        resource_subscriptions: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct Env {
        params: Option<ListenParams>,
    }
    #[derive(serde::Deserialize)]
    struct ListenParams {
        #[serde(default)]
        notifications: Option<Wanted>,
    }
    let ka = req.keep_alive;
    let wanted = serde_json::from_slice::<Env>(req.body)
        .ok()
        .and_then(|e| e.params?.notifications)
        .unwrap_or_default();
    let subscription: serde_json::Value =
        serde_json::from_str(id.get()).unwrap_or(serde_json::Value::Null);
    let tag = |method: &str, mut params: serde_json::Value| {
        params["_meta"] = serde_json::json!({
            "io.modelcontextprotocol/subscriptionId": subscription,
        });
        serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string()
    };
    let mut honoured = serde_json::json!({});
    if wanted.tools_list_changed {
        honoured["toolsListChanged"] = true.into();
    }
    if !wanted.resource_subscriptions.is_empty() {
        honoured["resourceSubscriptions"] = wanted.resource_subscriptions.clone().into();
    }
    let mut messages = sh.stateless.listen();
    io.sse_head(ka);
    let ack = tag(
        "notifications/subscriptions/acknowledged",
        serde_json::json!({ "notifications": honoured }),
    );
    io.event(None, ack.as_bytes());
    stream_messages(io, &mut messages, |io, msg| {
        let Ok(m) = jsonrpc::parse(msg) else {
            return;
        };
        let forward = match &*m.method {
            "notifications/tools/list_changed" => wanted.tools_list_changed,
            "notifications/resources/updated" => m
                .params
                .uri
                .and_then(ringmux_core::jsonrpc::raw_str)
                .is_some_and(|u| wanted.resource_subscriptions.iter().any(|w| *w == u)),
            _ => false,
        };
        if forward {
            let params = match m.params.uri.and_then(ringmux_core::jsonrpc::raw_str) {
                Some(uri) => serde_json::json!({ "uri": uri }),
                None => serde_json::json!({}),
            };
            io.event(None, tag(&m.method, params).as_bytes());
        }
    })
    .await?;
    Ok(ka)
}

/// The legacy HTTP+SSE transport (2024-11-05, `--sse`): `GET /sse` opens a session's one
/// stream, whose first event names the endpoint to POST to; every POST there is answered 202
/// at once, and what it causes (its answer, progress, server→client requests) goes on the
/// stream as `message` events. The session ends with its stream.
async fn legacy(
    sh: &Arc<Shared>,
    io: &mut Io,
    req: &Req<'_>,
    method: Method,
    path: &[u8],
    query: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<bool> {
    let ka = req.keep_alive;
    match (method, path) {
        (Method::Get, b"/sse") => legacy_stream(sh, io, ka).await,
        (Method::Post, b"/message") => legacy_message(sh, io, req, query, out).await,
        _ => {
            io.respond(
                404,
                Some("text/plain"),
                b"not found; this legacy server serves GET /sse and POST /message",
                ka,
                &[],
            );
            flushed(io, ka).await
        }
    }
}

async fn legacy_stream(sh: &Shared, io: &mut Io, ka: bool) -> io::Result<bool> {
    let session = sh.sessions.create()?;
    let mut messages = session.listen();
    let id = session.id;
    // The stream must end when the session goes: hold only the receiver.
    drop(session);
    let mut endpoint = b"/message?sessionId=".to_vec();
    endpoint.extend_from_slice(&id);
    io.sse_head(ka);
    io.named_event("endpoint", &endpoint);
    let served = stream_messages(io, &mut messages, |io, msg| io.named_event("message", msg)).await;
    sh.sessions.remove(&id);
    served.map(|()| ka)
}

async fn legacy_message(
    sh: &Arc<Shared>,
    io: &mut Io,
    req: &Req<'_>,
    query: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<bool> {
    let ka = req.keep_alive;
    let session = query
        .split(|b| *b == b'&')
        .find_map(|kv| kv.strip_prefix(b"sessionId="))
        .and_then(|id| sh.sessions.get(id));
    let Some(session) = session else {
        return rpc_error(io, out, None, UNKNOWN_SESSION, ka).await;
    };
    let msg = match jsonrpc::parse(req.body) {
        Ok(m) => m,
        Err(e) => {
            out.clear();
            jsonrpc::write_error(out, None, &e);
            io.respond(400, Some("application/json"), out, ka, &[]);
            return flushed(io, ka).await;
        }
    };
    // Accepted at once; a request is answered by a task of its own, on the stream: its answer
    // may wait on the client's answer to a request of ours, POSTed after this one, perhaps on
    // this very connection.
    io.respond(202, None, b"", ka, &[]);
    io.flush().await?;
    let mut to = Io::to_session(session.clone());
    match (msg.kind, msg.id) {
        (Kind::Request, Some(id)) if msg.method == "initialize" => {
            initialize_response(sh, &msg, id, out);
            to.respond(200, None, out, true, &[]);
            to.flush().await?;
        }
        (Kind::Request, Some(_)) => {
            let (sh, body) = (sh.clone(), req.body.to_vec());
            monoio::spawn(async move {
                let mut out = Vec::with_capacity(1024);
                stdio_request(&sh, &mut to, &body, &session, &mut out).await;
            });
        }
        (Kind::Response, Some(id)) => {
            session.answer(id, req.body);
        }
        (Kind::Notification, _) => session.record(match msg.params.request_id {
            Some(id) => format!("{}:{}", msg.method, id.get()),
            None => msg.method.to_string(),
        }),
        _ => {}
    }
    Ok(ka)
}

/// Answers one request read on stdin (the stdio mode) or POSTed to a legacy endpoint (the
/// `--sse` mode): as a POST that accepts SSE, so the messages a tool sends before its answer
/// are written too.
pub(crate) async fn stdio_request(
    sh: &Shared,
    io: &mut Io,
    body: &[u8],
    session: &Arc<Session>,
    out: &mut Vec<u8>,
) {
    let Ok(msg) = jsonrpc::parse(body) else {
        return;
    };
    let Some(id) = msg.id else {
        return;
    };
    let req = Req {
        keep_alive: true,
        sse: true,
        session: None,
        protocol_version: None,
        last_event_id: None,
        mcp_method: None,
        mcp_name: None,
        traceparent: None,
        tracestate: None,
        modern: false,
        body,
    };
    // A failed stdout write means the client is gone; the process ends with stdin.
    let _ = request(sh, io, &req, &msg, id, session, out).await;
}

/// Starts the JSON-RPC success response in `out`: `{"jsonrpc":"2.0","id":ID,"result":`.
fn result_prefix(out: &mut Vec<u8>, id: Raw<'_>) {
    out.clear();
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id.get().as_bytes());
    out.extend_from_slice(br#","result":"#);
}

/// The whole `initialize` response in `out`: the negotiated version, then the catalog's
/// capabilities and server info.
pub(crate) fn initialize_response(sh: &Shared, msg: &Message<'_>, id: Raw<'_>, out: &mut Vec<u8>) {
    result_prefix(out, id);
    out.extend_from_slice(br#"{"protocolVersion":""#);
    out.extend_from_slice(version::negotiate(msg.params.protocol_version.as_deref()).as_bytes());
    out.push(b'"');
    out.extend_from_slice(&sh.catalog.init_tail);
    out.push(b'}');
}

async fn initialize(
    sh: &Shared,
    io: &mut Io,
    msg: &Message<'_>,
    ka: bool,
    out: &mut Vec<u8>,
) -> io::Result<bool> {
    if !sh.cfg.latency.is_zero() {
        crate::load::pace::sleep(sh.cfg.latency, LATENCY_SPIN).await;
    }
    let Some(id) = msg.id else {
        return Ok(false);
    };
    let session = sh.sessions.create()?;
    initialize_response(sh, msg, id, out);
    let session_id: &[u8] = &session.id;
    io.respond(
        200,
        Some("application/json"),
        out,
        ka,
        &[("mcp-session-id", session_id)],
    );
    flushed(io, ka).await
}

async fn request(
    sh: &Shared,
    io: &mut Io,
    req: &Req<'_>,
    msg: &Message<'_>,
    id: Raw<'_>,
    session: &Arc<Session>,
    out: &mut Vec<u8>,
) -> io::Result<bool> {
    if let Some((stall, every)) = sh.cfg.stall {
        // In a stall window: wait for its end.
        let phase = sh.started.elapsed().as_nanos() % every.as_nanos().max(1);
        if phase < stall.as_nanos() {
            monoio::time::sleep(Duration::from_nanos((stall.as_nanos() - phase) as u64)).await;
        }
    }
    if !sh.cfg.latency.is_zero() {
        crate::load::pace::sleep(sh.cfg.latency, LATENCY_SPIN).await;
    }
    if msg.method == "tools/list"
        && sh
            .lists_to_drop
            .fetch_update(
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
                |n| n.checked_sub(1),
            )
            .is_ok()
    {
        return Err(io::Error::other(
            "tools/list dropped as asked (--drop-lists)",
        ));
    }
    result_prefix(out, id);
    let result_at = out.len();
    let call = Call {
        msg,
        body: req.body,
        session,
        modern: req.modern,
        traceparent: req.traceparent,
        tracestate: req.tracestate,
    };
    let action = dispatch::dispatch(sh, &msg.method, &call, out);
    // Conformance mode answers every request as a resumable SSE stream, like the suite's
    // reference server; otherwise only answers preceded by messages stream.
    let stream_all = sh.cfg.conformance && !sh.cfg.json_only;
    let sse = req.sse
        && match &action {
            Ok(Action::Task(task)) => stream_all || task.streams(sh.cfg.json_only),
            _ => stream_all,
        };
    let replay = (sse && sh.cfg.conformance).then(|| session.clone());
    let mut em = Emitter::start(io, sse, replay, req.keep_alive).await;
    let outcome = match action {
        Ok(Action::Done) => Ok(()),
        Ok(Action::Task(task)) => tasks::run(task, sh, &call, &mut em, out).await,
        Err(fail) => Err(fail),
    };
    match outcome {
        Ok(()) => {
            if req.modern && out.get(result_at) == Some(&b'{') {
                let tail: &[u8] = if out.get(result_at + 1) == Some(&b'}') {
                    br#""resultType":"complete""#
                } else {
                    br#""resultType":"complete","#
                };
                out.splice(result_at + 1..result_at + 1, tail.iter().copied());
            }
            out.push(b'}')
        }
        Err(fail) if fail.is_input_required() => {
            result_prefix(out, id);
            out.extend_from_slice(fail.message.as_bytes());
            out.push(b'}');
        }
        Err(fail) => {
            out.clear();
            fail.write(out, Some(id));
        }
    }
    Ok(em.finish(out).await)
}

async fn get(sh: &Shared, io: &mut Io, req: &Req<'_>, out: &mut Vec<u8>) -> io::Result<bool> {
    let ka = req.keep_alive;
    if !sh.cfg.get_stream {
        let allow: &[u8] = b"POST, DELETE";
        io.respond(405, None, b"", ka, &[("allow", allow)]);
        return flushed(io, ka).await;
    }
    let session = match session_of(sh, req) {
        Ok(s) => s,
        Err(refusal) => return rpc_error(io, out, None, refusal, ka).await,
    };
    if let Some((stream, after)) = req.last_event_id.and_then(parse_event_id) {
        if session.has_log(stream) {
            io.sse_head(ka);
            return replay(io, &session, stream, after, ka).await;
        }
    }
    // Listen before answering, so a client that saw the head misses no notification.
    let mut messages = session.listen();
    // The stream must end when the session goes: hold only the receiver, not the session.
    drop(session);
    io.sse_head(ka);
    stream_messages(io, &mut messages, |io, msg| io.event(None, msg)).await?;
    Ok(ka)
}

/// Writes what was queued (an SSE head, first events), then each message as `emit` frames it,
/// with a keep-alive comment after every quiet period, until no more will come; then ends the
/// chunked body.
async fn stream_messages(
    io: &mut Io,
    messages: &mut futures_channel::mpsc::UnboundedReceiver<Arc<[u8]>>,
    mut emit: impl FnMut(&mut Io, &[u8]),
) -> io::Result<()> {
    io.flush().await?;
    loop {
        let next = monoio::select! {
            msg = messages.next() => Some(msg),
            _ = monoio::time::sleep(KEEPALIVE_EVERY) => None,
        };
        match next {
            Some(Some(msg)) => emit(io, &msg),
            Some(None) => break,
            None => io.chunk(KEEPALIVE),
        }
        io.flush().await?;
    }
    io.end_chunks();
    io.flush().await
}

/// `<stream>::<seq>`, the ids of resumable POST streams.
fn parse_event_id(id: &[u8]) -> Option<(u64, u64)> {
    let id = std::str::from_utf8(id).ok()?;
    let (stream, seq) = id.split_once("::")?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

/// Resumes a POST stream on a GET: the events after `after`, then the later ones as they
/// are logged, until the final response.
async fn replay(
    io: &mut Io,
    session: &Session,
    stream: u64,
    mut after: u64,
    ka: bool,
) -> io::Result<bool> {
    while let Some(replayed) = session.replay(stream, after) {
        for (seq, data) in &replayed.events {
            io.event(Some(&format!("{stream}::{seq}")), data);
            after = *seq;
        }
        io.flush().await?;
        let Some(mut wake) = replayed.wake else {
            break;
        };
        loop {
            monoio::select! {
                _ = &mut wake => break,
                _ = monoio::time::sleep(KEEPALIVE_EVERY) => io.chunk(KEEPALIVE),
            }
            io.flush().await?;
        }
    }
    io.end_chunks();
    flushed(io, ka).await
}

async fn delete(sh: &Shared, io: &mut Io, req: &Req<'_>, out: &mut Vec<u8>) -> io::Result<bool> {
    let ka = req.keep_alive;
    match req.session {
        None => rpc_error(io, out, None, NO_SESSION, ka).await,
        Some(id) if sh.sessions.remove(id) => {
            io.respond(200, None, b"", ka, &[]);
            flushed(io, ka).await
        }
        Some(_) => rpc_error(io, out, None, UNKNOWN_SESSION, ka).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_rebinding_check() {
        assert!(host_allowed(Some(b"127.0.0.1:3939"), None));
        assert!(host_allowed(
            Some(b"LOCALHOST"),
            Some(b"http://localhost:3000")
        ));
        assert!(host_allowed(Some(b"[::1]:80"), None));
        assert!(host_allowed(None, None));
        assert!(!host_allowed(Some(b"evil.example.com"), None));
        assert!(!host_allowed(
            Some(b"127.0.0.1:1"),
            Some(b"http://evil.example.com")
        ));
        assert!(!host_allowed(Some(b"localhost.evil.com"), None));
        assert!(!host_allowed(Some(b"127.0.0.1"), Some(b"null")));
        assert!(!host_allowed(Some(b"[::1"), None));
    }

    #[test]
    fn event_ids() {
        assert_eq!(parse_event_id(b"3::7"), Some((3, 7)));
        assert_eq!(parse_event_id(b"3:7"), None);
        assert_eq!(parse_event_id(b"x::1"), None);
    }
}
