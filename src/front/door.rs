//! The front door of a request on the MCP endpoint (or the legacy transport's paths): the
//! path, `Host` (DNS-rebinding protection), `Origin`, the protocol version, `Mcp-Session-Id`,
//! then each transport's rules (Streamable HTTP POST/GET/DELETE here, the 2026-07-28 era in
//! [`super::modern`], the legacy HTTP+SSE paths), ending in one [`Request`] for the pipeline.

use std::rc::Rc;

use ringmux_core::affinity;
use ringmux_core::error::HttpReject;
use ringmux_core::http::{self, Method, RequestHead};
use ringmux_core::version;

use crate::pipeline::{self, ClientEra, Credential, Op, Principal, Request, Step};
use crate::reply::{session_not_found, Reply};
use crate::shard::Shard;

fn header<'a>(buf: &'a [u8], r: &Option<std::ops::Range<usize>>) -> Option<&'a [u8]> {
    r.as_ref().map(|r| &buf[r.clone()])
}

/// Whether a Host header names this machine's loopback (DNS-rebinding protection).
pub(crate) fn is_local_host(host: &[u8]) -> bool {
    let name = if host.starts_with(b"[") {
        match memchr_close(host) {
            Some(end) => &host[..=end],
            None => return false,
        }
    } else {
        host.split(|b| *b == b':').next().unwrap_or_default()
    };
    name.eq_ignore_ascii_case(b"localhost") || name == b"127.0.0.1" || name == b"[::1]"
}

fn memchr_close(s: &[u8]) -> Option<usize> {
    s.iter().position(|b| *b == b']')
}

/// The request's `Mcp-Session-Id`: `Ok(None)` when absent, `Err(())` when it cannot be a
/// session ringmux minted.
pub(crate) fn session_id<'a>(buf: &'a [u8], head: &RequestHead) -> Result<Option<&'a str>, ()> {
    match header(buf, &head.headers.session_id) {
        None => Ok(None),
        Some(s) if affinity::plausible_session_id(s) => Ok(Some(
            std::str::from_utf8(s).expect("visible ASCII is UTF-8"),
        )),
        Some(_) => Err(()),
    }
}

/// The front door: path, DNS-rebinding and Origin checks, transport rules, then the owner shard.
/// `peer`: the principal of the client's verified TLS certificate.
pub(crate) async fn front(
    shard: &Rc<Shard>,
    head: &RequestHead,
    buf: &[u8],
    body: &[u8],
    peer: Option<&Principal>,
    address: Option<std::net::IpAddr>,
) -> Reply {
    let path = &buf[head.path.clone()];
    let h = &head.headers;
    if head.method == Method::Connect {
        return Reply::Status(405);
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host is malformed.
    if h.host.is_none() && !head.http10 {
        return Reply::reject(HttpReject::BadRequest, "missing Host header");
    }
    let modern = crate::front::modern::is_modern(head, buf);
    if let Some(name) = h.duplicated {
        // The 2026-07-28 era refuses its own routing headers with its code (in modern::front).
        if !modern || matches!(name, "Host" | "Mcp-Session-Id") {
            return Reply::reject(
                HttpReject::BadRequest,
                &format!("{name} header appears more than once"),
            );
        }
    }
    let legacy = shard
        .cfg
        .legacy
        .as_ref()
        .and_then(|(sse_path, message_path)| {
            if path == sse_path.as_bytes() {
                Some(Legacy::Stream)
            } else if path == message_path.as_bytes() {
                let query = head.query.as_ref().map_or(&b""[..], |q| &buf[q.clone()]);
                Some(Legacy::Message(query_param(query, b"sessionId")))
            } else {
                None
            }
        });
    let route = shard.route_of(path);
    let Some(route) = route.or(legacy.as_ref().map(|_| 0)) else {
        return match (head.method, path) {
            // RFC 9728: the path-suffixed form for each endpoint's resource, and the bare one
            // (the main endpoint's).
            (Method::Get, p) if protected_resource(shard, p).is_some() => {
                protected_resource(shard, p).expect("checked").metadata()
            }
            // Authorization-server metadata served for the provider (RFC 8414), if configured.
            (Method::Get, p) => shard
                .auth
                .as_ref()
                .and_then(|a| a.server_metadata(p))
                .unwrap_or(Reply::Status(404)),
            _ => Reply::Status(404),
        };
    };
    if shard.cfg.listen.ip().is_loopback() && !header(buf, &h.host).is_some_and(is_local_host) {
        return Reply::reject(
            HttpReject::Forbidden,
            "Host is not a local name (DNS rebinding protection)",
        );
    }
    if let Some(origin) = header(buf, &h.origin) {
        if !shard.cfg.origins.allows(origin) {
            return Reply::reject(HttpReject::Forbidden, "Origin not allowed");
        }
    }
    let principal = match peer {
        Some(p) => p.clone(),
        None => principal_of(shard, buf, head),
    };
    let facts = facts_of(shard, route, buf, head, address);
    if let Some(legacy) = legacy {
        return legacy_front(shard, head, buf, body, legacy, principal, facts).await;
    }
    if modern {
        return crate::front::modern::front(shard, head, buf, body, principal, route, facts).await;
    }
    if let Some(v) = header(buf, &h.protocol_version) {
        if !std::str::from_utf8(v).is_ok_and(version::is_supported) {
            return Reply::reject(HttpReject::BadRequest, "Unsupported protocol version");
        }
    }
    let Ok(session) = session_id(buf, head) else {
        return session_not_found();
    };
    let authorization = header(buf, &h.authorization);
    match head.method {
        Method::Post => post(shard, buf, head, body, session, principal, route, facts).await,
        Method::Delete => match session {
            None => Reply::reject(HttpReject::BadRequest, "Mcp-Session-Id header is required"),
            Some(_) => {
                pipeline::run(
                    shard,
                    stateful(
                        principal,
                        authorization,
                        session,
                        Op::Delete,
                        b"",
                        route,
                        None,
                    ),
                )
                .await
            }
        },
        Method::Get => get(shard, buf, head, session, principal, route).await,
        _ => Reply::Status(405),
    }
}

/// Which part of the legacy HTTP+SSE transport a request is for.
enum Legacy<'a> {
    Stream,
    /// The message endpoint, with its `sessionId` (if the query has one).
    Message(Option<&'a [u8]>),
}

/// The value of `name` in a query string (no percent-decoding: session ids are URL-safe).
fn query_param<'a>(query: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    query.split(|b| *b == b'&').find_map(|pair| {
        let rest = pair.strip_prefix(name)?;
        rest.strip_prefix(b"=")
    })
}

/// The legacy HTTP+SSE transport (2024-11-05): `GET` on the SSE path opens a session's
/// stream; `POST` on the message path with its `sessionId` is answered 202, the answer going
/// on that stream.
async fn legacy_front(
    shard: &Rc<Shard>,
    head: &RequestHead,
    buf: &[u8],
    body: &[u8],
    legacy: Legacy<'_>,
    principal: Principal,
    facts: Option<std::sync::Arc<crate::request::Facts>>,
) -> Reply {
    let message_path = &shard.cfg.legacy.as_ref().expect("legacy is configured").1;
    match (legacy, head.method) {
        (Legacy::Stream, Method::Get) => {
            if let Some(refused) = refuse_without_event_stream(buf, head) {
                return refused;
            }
            // The stream's opener is the only principal that may initialize its session.
            let authorization = header(buf, &head.headers.authorization);
            match pipeline::authenticate_header(shard, authorization, &principal, 0) {
                Ok(opener) => crate::front::legacy::open(shard, message_path, opener),
                Err(refused) => refused,
            }
        }
        (Legacy::Message(id), Method::Post) => {
            let Some(id) = id else {
                return Reply::reject(HttpReject::BadRequest, "sessionId is required");
            };
            if !affinity::plausible_session_id(id) {
                return session_not_found();
            }
            let ct = header(buf, &head.headers.content_type);
            if !ct.is_some_and(|ct| http::media_type_is(ct, b"application/json")) {
                return Reply::reject(
                    HttpReject::UnsupportedMediaType,
                    "Content-Type must be application/json",
                );
            }
            let id = std::str::from_utf8(id).expect("visible ASCII is UTF-8");
            let req = Request {
                principal,
                era: ClientEra::Legacy,
                session: Some(id),
                op: Op::Message { sse: false },
                body,
                parsed: None,
                credential: Credential::Header(header(buf, &head.headers.authorization)),
                route: 0,
                facts,
                trace: super::trace_of(shard, buf, head),
            };
            pipeline::run(shard, req).await
        }
        _ => Reply::Status(405),
    }
}

/// 406 for a GET that does not accept `text/event-stream` (both transports' streams).
fn refuse_without_event_stream(buf: &[u8], head: &RequestHead) -> Option<Reply> {
    let accept = header(buf, &head.headers.accept).unwrap_or(b"*/*");
    (!http::accepts(accept, b"text/event-stream")).then(|| {
        Reply::reject(
            HttpReject::NotAcceptable,
            "Accept must include text/event-stream",
        )
    })
}

/// GET: the session's server-to-client stream, or a resumed one (`Last-Event-ID`).
async fn get(
    shard: &Rc<Shard>,
    buf: &[u8],
    head: &RequestHead,
    session: Option<&str>,
    principal: Principal,
    route: u8,
) -> Reply {
    if let Some(refused) = refuse_without_event_stream(buf, head) {
        return refused;
    }
    let Some(session) = session else {
        return Reply::reject(HttpReject::BadRequest, "Mcp-Session-Id header is required");
    };
    let last_event_id = header(buf, &head.headers.last_event_id)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(|v| Box::from(v.trim()));
    pipeline::run(
        shard,
        stateful(
            principal,
            header(buf, &head.headers.authorization),
            Some(session),
            Op::Get { last_event_id },
            b"",
            route,
            None,
        ),
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn post(
    shard: &Rc<Shard>,
    buf: &[u8],
    head: &RequestHead,
    body: &[u8],
    session: Option<&str>,
    principal: Principal,
    route: u8,
    facts: Option<std::sync::Arc<crate::request::Facts>>,
) -> Reply {
    let h = &head.headers;
    if !header(buf, &h.content_type).is_some_and(|ct| http::media_type_is(ct, b"application/json"))
    {
        return Reply::reject(
            HttpReject::UnsupportedMediaType,
            "Content-Type must be application/json",
        );
    }
    let accept = header(buf, &h.accept).unwrap_or(b"*/*");
    let json = http::accepts(accept, b"application/json");
    let sse = http::accepts(accept, b"text/event-stream");
    if !json && !sse {
        return Reply::reject(
            HttpReject::NotAcceptable,
            "Accept must include application/json and text/event-stream",
        );
    }
    // The hot path: the stages that need no waiting, then one await for the message's.
    match pipeline::route(
        shard,
        Request {
            trace: super::trace_of(shard, buf, head),
            ..stateful(
                principal,
                header(buf, &h.authorization),
                session,
                Op::Message { sse },
                body,
                route,
                facts,
            )
        },
    ) {
        Step::Message {
            principal,
            request,
            sse,
            admitted,
        } => {
            pipeline::message(
                shard,
                &principal,
                request.era,
                request.session,
                body,
                None,
                sse,
                admitted,
                route,
                request.facts.as_ref(),
                request.trace,
            )
            .await
        }
        Step::Done(reply) => reply,
        Step::Hop { to, request } => shard.peers.call(to, request).await,
    }
}

/// The principal a request names until authentication exists: the value of the trusted
/// `modern.principal_header` when it is configured and present (an authenticating proxy in
/// front said who the client is), else anonymous.
pub(crate) fn principal_of(shard: &Shard, buf: &[u8], head: &RequestHead) -> Principal {
    let Some(name) = shard.cfg.modern.principal_header.as_deref() else {
        return Principal::Anonymous;
    };
    match http::find_header(&buf[..head.head_len], name.as_bytes()) {
        Some(v) => Principal::Header(String::from_utf8_lossy(v).into()),
        None => Principal::Anonymous,
    }
}

/// A Streamable HTTP request.
fn stateful<'a>(
    principal: Principal,
    credential: Option<&'a [u8]>,
    session: Option<&'a str>,
    op: Op,
    body: &'a [u8],
    route: u8,
    facts: Option<std::sync::Arc<crate::request::Facts>>,
) -> Request<'a> {
    Request {
        principal,
        era: ClientEra::Stateful,
        session,
        op,
        body,
        parsed: None,
        credential: Credential::Header(credential),
        route,
        facts,
        trace: None,
    }
}

/// What rules may read of this request (`request`), when a rule of its endpoint reads it.
#[inline]
fn facts_of(
    shard: &Shard,
    route: u8,
    buf: &[u8],
    head: &RequestHead,
    address: Option<std::net::IpAddr>,
) -> Option<std::sync::Arc<crate::request::Facts>> {
    let authz = shard.authz_for(route)?;
    if !authz.policy.reads_request() {
        return None;
    }
    gather(authz, buf, head, address)
}

#[inline(never)]
fn gather(
    authz: &crate::authz::Authz,
    buf: &[u8],
    head: &RequestHead,
    address: Option<std::net::IpAddr>,
) -> Option<std::sync::Arc<crate::request::Facts>> {
    let path = String::from_utf8_lossy(&buf[head.path.clone()]);
    Some(std::sync::Arc::new(crate::request::Facts::gather(
        &buf[..head.head_len],
        &authz.request_headers,
        address,
        &path,
    )))
}

/// The authentication whose protected-resource metadata (RFC 9728) is served at `path`: the
/// path-suffixed form of each endpoint's `auth.resource`, and the bare form for the main one.
fn protected_resource<'s>(shard: &'s Shard, path: &[u8]) -> Option<&'s crate::auth::Authenticator> {
    let main = shard.auth.as_deref().filter(|a| {
        path == a.metadata_path().as_bytes() || path == b"/.well-known/oauth-protected-resource"
    });
    main.or_else(|| {
        shard
            .routes
            .iter()
            .filter_map(|r| r.auth.as_deref())
            .find(|a| path == a.metadata_path().as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts() {
        assert!(is_local_host(b"localhost"));
        assert!(is_local_host(b"127.0.0.1:8080"));
        assert!(is_local_host(b"[::1]:9"));
        assert!(is_local_host(b"LOCALHOST:1"));
        assert!(!is_local_host(b"evil.example.com"));
        assert!(!is_local_host(b"127.0.0.1.evil.com"));
        assert!(!is_local_host(b"[::1"));
    }
}
