//! The 2026-07-28 front door, on the shard that accepted the connection: a request of that
//! era (no session; a version header of the era) is checked against the era's transport rules
//! in the order its reference implementation applies them (POST, JSON, Accept, one request,
//! `_meta`, the routing headers against the body, the version, the removed methods), and
//! becomes a [`Request`] for its principal session's key ([`crate::pipeline`] takes it from
//! there to [`crate::handlers::modern`]).

use std::rc::Rc;

use base64::Engine;
use ringmux_core::error::ErrorEra;
use ringmux_core::error::HttpReject;
use ringmux_core::http::{self, Method, RequestHead};
use ringmux_core::jsonrpc::{self, raw_str, Kind, Message, Raw};
use ringmux_core::method::{self, NameParam};
use ringmux_core::modern::EnvelopeParams;
use ringmux_core::version;

use crate::handlers::modern::code;
use crate::pipeline::{ClientEra, Credential, Op, Parsed, Principal, Request};
use crate::reply::Reply;
use crate::shard::Shard;

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
/// `named`: who the request is without a credential (the front door's placeholder).
pub async fn front(
    shard: &Rc<Shard>,
    head: &RequestHead,
    buf: &[u8],
    body: &[u8],
    named: Principal,
    route: u8,
    facts: Option<std::sync::Arc<crate::request::Facts>>,
) -> Reply {
    // Stage 1 first (before any of the era's checks answer): the principal also decides the
    // principal session, hence the owner shard.
    let authorization = head.headers.authorization.clone().map(|r| &buf[r]);
    let principal = match crate::pipeline::authenticate_header(shard, authorization, &named, route)
    {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    if head.method != Method::Post {
        return Reply::reject(
            HttpReject::MethodNotAllowed,
            "2026-07-28 requests are POSTed (no GET stream, no DELETE)",
        );
    }
    let h = &head.headers;
    let field = |r: &Option<std::ops::Range<usize>>| r.clone().map(|r| &buf[r]);
    if !field(&h.content_type).is_some_and(|ct| http::media_type_is(ct, b"application/json")) {
        return Reply::reject(
            HttpReject::UnsupportedMediaType,
            "Content-Type must be application/json",
        );
    }
    let accept = field(&h.accept).unwrap_or(b"*/*");
    let sse = http::accepts(accept, b"text/event-stream");
    if !sse && !http::accepts(accept, b"application/json") {
        return Reply::reject(
            HttpReject::NotAcceptable,
            "Accept must include application/json and text/event-stream",
        );
    }
    let msg = match jsonrpc::parse(body) {
        Ok(m) => m,
        Err(e) => return Reply::error_in(None, &e, ErrorEra::Sessionless),
    };
    match msg.kind {
        Kind::Response => {
            return Reply::reject(
                HttpReject::BadRequest,
                "a 2026-07-28 body is a single request or notification",
            )
        }
        // The era has no client notification a gateway must act on (a client abandons a
        // request by closing its POST).
        Kind::Notification => return Reply::Status(202),
        Kind::Request => {}
    }
    if msg.method == "subscriptions/listen" && !sse {
        return Reply::reject(
            HttpReject::NotAcceptable,
            "subscriptions/listen answers with text/event-stream",
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
    let env = EnvelopeParams::of(body);
    if let Err(reply) = check(
        &env,
        &msg,
        field(&h.protocol_version),
        field(&h.mcp_method),
        field(&h.mcp_name),
    ) {
        return reply;
    }
    let caps = env.meta(|m| m.client_capabilities);
    let key = principal_key(principal.id().as_bytes(), caps, shard.route_key(route));
    let parsed = Parsed { msg, env };
    let req = Request {
        principal,
        era: ClientEra::Sessionless,
        session: Some(&key),
        op: Op::Message { sse },
        body,
        parsed: Some(&parsed),
        credential: Credential::Done,
        route,
        facts,
        trace: super::trace_of(shard, buf, head),
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
fn principal_key(principal: &[u8], caps: Option<Raw<'_>>, route: u64) -> String {
    let canonical = caps
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c.get()).ok())
        .map(|v| v.to_string())
        .unwrap_or_default();
    // The route too (its key, of its path: stable across reloads): a principal's sessions on
    // two endpoints see different backends.
    format!(
        "{}\n{route:016x}{:016x}",
        String::from_utf8_lossy(principal),
        xxhash_rust::xxh3::xxh3_64(canonical.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

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
    fn principal_keys_are_canonical_and_unreachable() {
        let a: Box<RawValue> = RawValue::from_string(r#"{"a":{},"b":1}"#.into()).unwrap();
        let b: Box<RawValue> = RawValue::from_string(r#"{ "b": 1, "a": {} }"#.into()).unwrap();
        let ka = principal_key(b"p", Some((&*a).into()), 0);
        assert_eq!(ka, principal_key(b"p", Some((&*b).into()), 0));
        assert_ne!(ka, principal_key(b"q", Some((&*a).into()), 0));
        assert_ne!(ka, principal_key(b"p", Some((&*a).into()), 1));
        assert!(!ringmux_core::affinity::plausible_session_id(ka.as_bytes()));
    }
}
