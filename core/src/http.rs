//! HTTP/1.1 on `httparse`: request heads (server side), response heads (backend client side),
//! head encoding, and the incremental chunked-body decoder in [`chunked`].
//!
//! Parsed heads keep only the headers MCP routing needs, as byte ranges into the caller's
//! buffer, so parsing allocates nothing. Why hand-written on httparse rather than an HTTP
//! crate: see ARCHITECTURE.md ("HTTP codec").

pub mod chunked;

use std::ops::Range;

/// How many headers one message may carry; more is answered with 431.
pub const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
    Options,
    Head,
    /// `CONNECT host:port`: ringmux is no tunnel (405).
    Connect,
    Other,
}

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body (or `Content-Length: 0`).
    Empty,
    Length(usize),
    Chunked,
    /// Response only: the body runs until the peer closes.
    UntilClose,
}

/// A parse failure, mapped by the caller to a status (400, 413, 431, 501).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed HTTP message")]
    Malformed,
    #[error("header section too large")]
    TooLarge,
    #[error("body larger than the configured limit")]
    BodyTooLarge,
    #[error("unsupported transfer-encoding")]
    UnsupportedEncoding,
}

impl HeadError {
    pub fn status(self) -> u16 {
        match self {
            HeadError::Malformed => 400,
            HeadError::TooLarge => 431,
            HeadError::BodyTooLarge => 413,
            HeadError::UnsupportedEncoding => 501,
        }
    }
}

/// The request headers MCP routing looks at, as ranges into the head buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHeaders {
    pub host: Option<Range<usize>>,
    pub accept: Option<Range<usize>>,
    pub content_type: Option<Range<usize>>,
    pub session_id: Option<Range<usize>>,
    pub protocol_version: Option<Range<usize>>,
    pub origin: Option<Range<usize>>,
    pub last_event_id: Option<Range<usize>>,
    pub authorization: Option<Range<usize>>,
    /// `Mcp-Method` (2026-07-28): must equal the body's `method`.
    pub mcp_method: Option<Range<usize>>,
    /// `Mcp-Name` (2026-07-28): must equal `params.name` / `params.uri`.
    pub mcp_name: Option<Range<usize>>,
    /// `traceparent` (W3C trace context); `None` when given twice (the W3C spec: a request
    /// with more than one carries no valid context).
    pub traceparent: Option<Range<usize>>,
    pub traceparent_repeated: bool,
    /// `tracestate` (W3C trace context), passed on with the context; `None` when given
    /// twice (the entries of several headers would have to be joined: they are dropped,
    /// which the W3C spec allows).
    pub tracestate: Option<Range<usize>>,
    pub tracestate_repeated: bool,
    /// A header that must appear once (`Host`, `Authorization`, `Mcp-Session-Id`,
    /// `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) given more than once: its name. Readers of the first and of
    /// the last copy would disagree. With an absolute-form target, `host` is the target's
    /// authority.
    pub duplicated: Option<&'static str>,
}

/// The first value of header `name` (lowercase) in `head`, the bytes of a request head that
/// [`parse_request`] accepted; trimmed. For the headers [`RequestHeaders`] does not keep (a
/// configured principal header, say), looked up off the hot path.
pub fn find_header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|b| *b == b'\n').skip(1).find_map(|line| {
        let colon = memchr::memchr(b':', line)?;
        let value = &line[colon + 1..];
        line[..colon]
            .eq_ignore_ascii_case(name)
            .then(|| trim(value.strip_suffix(b"\r").unwrap_or(value)))
    })
}

/// Every value of header `name` in a request head, in order (a list header sent on several
/// lines, or a header sent twice).
pub fn header_values<'a>(head: &'a [u8], name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    head.split(|b| *b == b'\n').skip(1).filter_map(move |line| {
        let colon = memchr::memchr(b':', line)?;
        let value = &line[colon + 1..];
        line[..colon]
            .eq_ignore_ascii_case(name)
            .then(|| trim(value.strip_suffix(b"\r").unwrap_or(value)))
    })
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    /// The request target, without the query.
    pub path: Range<usize>,
    /// The query string after `?`, if any.
    pub query: Option<Range<usize>>,
    pub headers: RequestHeaders,
    pub body: BodyKind,
    pub keep_alive: bool,
    /// An HTTP/1.0 request (which may lack a Host header).
    pub http10: bool,
    /// Bytes of the head, including the blank line.
    pub head_len: usize,
}

fn range_in(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_len(v: &[u8]) -> Result<usize, HeadError> {
    let v = trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::Malformed);
    }
    v.iter()
        .try_fold(0usize, |n, d| {
            n.checked_mul(10)?.checked_add((d - b'0') as usize)
        })
        .ok_or(HeadError::Malformed)
}

/// FramingHeaders headers common to requests and responses.
#[derive(Default)]
struct FramingHeaders {
    length: Option<usize>,
    chunked: bool,
    close: bool,
    keep_alive: bool,
}

impl FramingHeaders {
    fn see(&mut self, name: &str, value: &[u8]) -> Result<bool, HeadError> {
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_len(value)?;
            if self.length.is_some_and(|m| m != n) {
                return Err(HeadError::Malformed);
            }
            self.length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only "chunked" (alone, last) is supported; anything else would need decoding we
            // do not do, and guessing would desynchronize the connection.
            if trim(value).eq_ignore_ascii_case(b"chunked") {
                self.chunked = true;
            } else {
                return Err(HeadError::UnsupportedEncoding);
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|b| *b == b',') {
                let token = trim(token);
                if token.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep_alive = true;
                }
            }
        } else {
            return Ok(false);
        }
        Ok(true)
    }
}

/// The head's length from an httparse outcome: `None` while incomplete, an error once the head
/// (complete or not) outgrows `max_head`, or is malformed.
fn head_length(
    parsed: httparse::Result<usize>,
    have: usize,
    max_head: usize,
) -> Result<Option<usize>, HeadError> {
    match parsed {
        Ok(httparse::Status::Complete(n)) if n > max_head => Err(HeadError::TooLarge),
        Ok(httparse::Status::Complete(n)) => Ok(Some(n)),
        Ok(httparse::Status::Partial) if have > max_head => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(_) => Err(HeadError::Malformed),
    }
}

/// Parses a request head from the start of `buf`. `Ok(None)`: need more bytes. `max_head`
/// bounds the head; `max_body` bounds a declared Content-Length.
pub fn parse_request(
    buf: &[u8],
    max_head: usize,
    max_body: usize,
) -> Result<Option<RequestHead>, HeadError> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    let Some(head_len) = head_length(req.parse(buf), buf.len(), max_head)? else {
        return Ok(None);
    };
    let method = match req.method.unwrap_or("") {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        "HEAD" => Method::Head,
        "CONNECT" => Method::Connect,
        _ => Method::Other,
    };
    let mut target = req.path.unwrap_or("").as_bytes();
    // RFC 9112 §3.2.2: an absolute-form target (`POST http://host/mcp`) names the host itself,
    // and the Host header is ignored in its favour.
    let mut authority = None;
    if let Some(scheme) = ["http://", "https://"]
        .iter()
        .find(|s| target.len() >= s.len() && target[..s.len()].eq_ignore_ascii_case(s.as_bytes()))
    {
        let rest = &target[scheme.len()..];
        let end = rest
            .iter()
            .position(|b| *b == b'/' || *b == b'?')
            .unwrap_or(rest.len());
        if end == 0 {
            return Err(HeadError::Malformed);
        }
        authority = Some(range_in(buf, &rest[..end]));
        target = &rest[end..];
    }
    let (path, query) = match memchr::memchr(b'?', target) {
        Some(q) => (
            range_in(buf, &target[..q]),
            Some(range_in(buf, &target[q + 1..])),
        ),
        None => (range_in(buf, target), None),
    };
    let http10 = req.version == Some(0);
    let mut framing = FramingHeaders::default();
    let mut h = RequestHeaders::default();
    for header in req.headers.iter() {
        if framing.see(header.name, header.value)? {
            continue;
        }
        let routing =
            |slot: &Option<Range<usize>>, name: &'static str| slot.is_some().then_some(name);
        let slot = match header.name.len() {
            4 if header.name.eq_ignore_ascii_case("host") => {
                h.duplicated = h.duplicated.or(routing(&h.host, "Host"));
                &mut h.host
            }
            8 if header.name.eq_ignore_ascii_case("mcp-name") => {
                h.duplicated = h.duplicated.or(routing(&h.mcp_name, "Mcp-Name"));
                &mut h.mcp_name
            }
            10 if header.name.eq_ignore_ascii_case("mcp-method") => {
                h.duplicated = h.duplicated.or(routing(&h.mcp_method, "Mcp-Method"));
                &mut h.mcp_method
            }
            6 if header.name.eq_ignore_ascii_case("accept") => &mut h.accept,
            11 if header.name.eq_ignore_ascii_case("traceparent") => {
                h.traceparent_repeated |= h.traceparent.is_some();
                &mut h.traceparent
            }
            10 if header.name.eq_ignore_ascii_case("tracestate") => {
                h.tracestate_repeated |= h.tracestate.is_some();
                &mut h.tracestate
            }
            6 if header.name.eq_ignore_ascii_case("origin") => &mut h.origin,
            12 if header.name.eq_ignore_ascii_case("content-type") => &mut h.content_type,
            13 if header.name.eq_ignore_ascii_case("authorization") => {
                h.duplicated = h.duplicated.or(routing(&h.authorization, "Authorization"));
                &mut h.authorization
            }
            13 if header.name.eq_ignore_ascii_case("last-event-id") => &mut h.last_event_id,
            14 if header.name.eq_ignore_ascii_case("mcp-session-id") => {
                h.duplicated = h.duplicated.or(routing(&h.session_id, "Mcp-Session-Id"));
                &mut h.session_id
            }
            20 if header.name.eq_ignore_ascii_case("mcp-protocol-version") => {
                h.duplicated = h
                    .duplicated
                    .or(routing(&h.protocol_version, "MCP-Protocol-Version"));
                &mut h.protocol_version
            }
            _ => continue,
        };
        *slot = Some(range_in(buf, trim(header.value)));
    }
    if authority.is_some() {
        h.host = authority;
    }
    // RFC 9112 §6.3: Transfer-Encoding wins over Content-Length, but a message carrying both is
    // a smuggling attempt as far as a proxy is concerned.
    let body = match (framing.chunked, framing.length) {
        (true, Some(_)) => return Err(HeadError::Malformed),
        (true, None) => BodyKind::Chunked,
        (false, Some(0) | None) => BodyKind::Empty,
        (false, Some(n)) if n > max_body => return Err(HeadError::BodyTooLarge),
        (false, Some(n)) => BodyKind::Length(n),
    };
    let keep_alive = if http10 {
        framing.keep_alive
    } else {
        !framing.close
    };
    Ok(Some(RequestHead {
        method,
        path,
        query,
        headers: h,
        body,
        keep_alive,
        http10,
        head_len,
    }))
}

/// A parsed response head (ringmux as a client of a backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub content_type: Option<Range<usize>>,
    pub session_id: Option<Range<usize>>,
    pub body: BodyKind,
    pub keep_alive: bool,
    pub head_len: usize,
}

impl ResponseHead {
    /// Whether the body is an SSE stream.
    pub fn is_event_stream(&self, buf: &[u8]) -> bool {
        self.content_type
            .as_ref()
            .is_some_and(|r| media_type_is(&buf[r.clone()], b"text/event-stream"))
    }
}

/// Parses a response head. `head_request`: the request was HEAD (no body whatever the headers).
pub fn parse_response(buf: &[u8], max_head: usize) -> Result<Option<ResponseHead>, HeadError> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut storage);
    let Some(head_len) = head_length(res.parse(buf), buf.len(), max_head)? else {
        return Ok(None);
    };
    let status = res.code.unwrap_or(0);
    let http10 = res.version == Some(0);
    let mut framing = FramingHeaders::default();
    let mut content_type = None;
    let mut session_id = None;
    for header in res.headers.iter() {
        if framing.see(header.name, header.value)? {
            continue;
        }
        if header.name.eq_ignore_ascii_case("content-type") {
            content_type = Some(range_in(buf, trim(header.value)));
        } else if header.name.eq_ignore_ascii_case("mcp-session-id") {
            session_id = Some(range_in(buf, trim(header.value)));
        }
    }
    let no_body = status == 204 || status == 304 || (100..200).contains(&status);
    let body = match (no_body, framing.chunked, framing.length) {
        (true, _, _) => BodyKind::Empty,
        (false, true, _) => BodyKind::Chunked,
        (false, false, Some(0)) => BodyKind::Empty,
        (false, false, Some(n)) => BodyKind::Length(n),
        (false, false, None) => BodyKind::UntilClose,
    };
    let keep_alive = body != BodyKind::UntilClose
        && if http10 {
            framing.keep_alive
        } else {
            !framing.close
        };
    Ok(Some(ResponseHead {
        status,
        content_type,
        session_id,
        body,
        keep_alive,
        head_len,
    }))
}

/// Whether a Content-Type value names `media` (parameters such as `charset` ignored).
pub fn media_type_is(value: &[u8], media: &[u8]) -> bool {
    let end = memchr::memchr(b';', value).unwrap_or(value.len());
    trim(&value[..end]).eq_ignore_ascii_case(media)
}

/// Whether an Accept header admits `media` (exact type, `type/*` or `*/*`; q=0 refuses).
pub fn accepts(accept: &[u8], media: &[u8]) -> bool {
    let slash = memchr::memchr(b'/', media).unwrap_or(media.len());
    accept.split(|b| *b == b',').any(|item| {
        let mut parts = item.split(|b| *b == b';');
        let range = trim(parts.next().unwrap_or_default());
        let refused = parts.any(|p| {
            let p = trim(p);
            p.len() >= 2
                && p[..2].eq_ignore_ascii_case(b"q=")
                && trim(&p[2..]).iter().all(|c| matches!(c, b'0' | b'.'))
        });
        !refused
            && (range == b"*/*"
                || range.eq_ignore_ascii_case(media)
                || (range.len() == slash + 2
                    && range.ends_with(b"/*")
                    && range[..slash].eq_ignore_ascii_case(&media[..slash])))
    })
}

/// The reason phrase for the statuses ringmux sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// How a response body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(usize),
    Chunked,
}

/// Writes a response head: status line, `Content-Type` (if any), framing, `extra` headers and
/// the blank line.
pub fn write_response_head(
    out: &mut Vec<u8>,
    status: u16,
    content_type: Option<&str>,
    framing: Framing,
    keep_alive: bool,
    extra: &[(&str, &[u8])],
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa3(status).as_slice());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(ct) = content_type {
        out.extend_from_slice(b"content-type: ");
        out.extend_from_slice(ct.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            write_usize(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    for (name, value) in extra {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a complete response with a body.
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    keep_alive: bool,
    extra: &[(&str, &[u8])],
) {
    write_response_head(
        out,
        status,
        content_type,
        Framing::Length(body.len()),
        keep_alive,
        extra,
    );
    out.extend_from_slice(body);
}

/// Frames `data` as one chunk of a chunked body (nothing for empty data: that would end it).
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    write_hex(out, data.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Writes a request head for a backend call.
pub fn write_request_head(
    out: &mut Vec<u8>,
    method: &str,
    path: &str,
    host: &str,
    content_length: Option<usize>,
    extra: &[(&str, &[u8])],
) {
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(n) = content_length {
        out.extend_from_slice(b"content-length: ");
        write_usize(out, n);
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in extra {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn itoa3(n: u16) -> [u8; 3] {
    let n = n.min(999);
    [
        b'0' + (n / 100) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]
}

/// Appends the decimal form of `n`.
pub fn write_usize(out: &mut Vec<u8>, mut n: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

fn write_hex(out: &mut Vec<u8>, mut n: usize) {
    let mut tmp = [0u8; 16];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 16 * 1024;

    #[test]
    fn duplicated_routing_headers_are_named() {
        let raw = b"POST /mcp HTTP/1.1\r\nMcp-Method: a\r\nAccept: x\r\nAccept: y\r\nmcp-method: a\r\nMcp-Name: n\r\nMCP-NAME: n\r\n\r\n";
        let h = parse_request(raw, MAX, 1024).unwrap().unwrap();
        assert_eq!(
            h.headers.duplicated,
            Some("Mcp-Method"),
            "the first one found"
        );
        let raw =
            b"POST /mcp HTTP/1.1\r\nMCP-Protocol-Version: 1\r\nmcp-protocol-version: 1\r\n\r\n";
        let h = parse_request(raw, MAX, 1024).unwrap().unwrap();
        assert_eq!(h.headers.duplicated, Some("MCP-Protocol-Version"));
    }

    #[test]
    fn absolute_form_targets_name_the_host() {
        let raw = b"POST HTTP://127.0.0.1:9/mcp?x=1 HTTP/1.1\r\nHost: evil\r\n\r\n";
        let h = parse_request(raw, MAX, 1024).unwrap().unwrap();
        assert_eq!(&raw[h.path.clone()], b"/mcp");
        assert_eq!(&raw[h.query.clone().unwrap()], b"x=1");
        assert_eq!(&raw[h.headers.host.clone().unwrap()], b"127.0.0.1:9");
        let raw = b"GET http:///mcp HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(parse_request(raw, MAX, 1024), Err(HeadError::Malformed));
        let raw = b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n";
        assert_eq!(
            parse_request(raw, MAX, 1024).unwrap().unwrap().method,
            Method::Connect
        );
        let raw = b"GET /mcp HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n";
        let h = parse_request(raw, MAX, 1024).unwrap().unwrap();
        assert_eq!(h.headers.duplicated, Some("Host"));
    }

    #[test]
    fn request_head_fields() {
        let raw = b"POST /mcp?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: abc\r\nMCP-Protocol-Version: 2025-06-18\r\nOrigin: http://localhost\r\nmcp-method: tools/call\r\nMcp-Name:  echo \r\n\r\n{\"a\":1}";
        let h = parse_request(raw, MAX, 1024).unwrap().unwrap();
        assert_eq!(h.method, Method::Post);
        assert_eq!(&raw[h.path.clone()], b"/mcp");
        assert_eq!(&raw[h.query.clone().unwrap()], b"x=1");
        assert_eq!(h.body, BodyKind::Length(12));
        assert!(h.keep_alive);
        assert_eq!(&raw[h.headers.session_id.clone().unwrap()], b"abc");
        assert_eq!(
            &raw[h.headers.protocol_version.clone().unwrap()],
            b"2025-06-18"
        );
        assert_eq!(&raw[h.headers.origin.clone().unwrap()], b"http://localhost");
        assert_eq!(&raw[h.headers.mcp_method.clone().unwrap()], b"tools/call");
        assert_eq!(&raw[h.headers.mcp_name.clone().unwrap()], b"echo");
        assert_eq!(h.headers.duplicated, None);
        assert_eq!(&raw[h.head_len..], b"{\"a\":1}");
    }

    #[test]
    fn a_repeated_traceparent_is_marked() {
        let one = b"GET /mcp HTTP/1.1\r\nHost: a\r\ntraceparent: x\r\n\r\n";
        let h = parse_request(one, MAX, 1024).unwrap().unwrap();
        assert_eq!(&one[h.headers.traceparent.clone().unwrap()], b"x");
        assert!(!h.headers.traceparent_repeated);
        let two = b"GET /mcp HTTP/1.1\r\nHost: a\r\nTraceparent: x\r\ntraceparent: y\r\n\r\n";
        let h = parse_request(two, MAX, 1024).unwrap().unwrap();
        assert!(h.headers.traceparent_repeated);
        let states = b"GET /mcp HTTP/1.1\r\ntracestate: a=1\r\nTraceState: b=2\r\n\r\n";
        let h = parse_request(states, MAX, 1024).unwrap().unwrap();
        assert!(h.headers.tracestate.is_some() && h.headers.tracestate_repeated);
    }

    #[test]
    fn a_tracestate_is_passed_on_when_it_can_be_written_back() {
        use crate::trace::{tracestate, MAX_TRACESTATE};
        assert_eq!(
            tracestate(b" congo=t61rcWkgMzE,rojo=00f067aa0ba902b7 "),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        );
        assert_eq!(tracestate(b""), None);
        assert_eq!(tracestate(b"a=1\r\nx: y"), None);
        assert_eq!(tracestate("a=\u{e9}".as_bytes()), None);
        assert!(tracestate(&vec![b'a'; MAX_TRACESTATE]).is_some());
        assert_eq!(tracestate(&vec![b'a'; MAX_TRACESTATE + 1]), None);
    }

    #[test]
    fn partial_then_complete() {
        let raw = b"GET /mcp HTTP/1.1\r\nHost: a\r\n";
        assert_eq!(parse_request(raw, MAX, 10).unwrap(), None);
        let raw = b"GET /mcp HTTP/1.0\r\nHost: a\r\n\r\n";
        let h = parse_request(raw, MAX, 10).unwrap().unwrap();
        assert!(!h.keep_alive, "HTTP/1.0 closes by default");
    }

    #[test]
    fn limits_and_smuggling() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(100));
        assert_eq!(
            parse_request(big.as_bytes(), 64, 10),
            Err(HeadError::TooLarge)
        );
        let partial_big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(100));
        assert_eq!(
            parse_request(partial_big.as_bytes(), 64, 10),
            Err(HeadError::TooLarge)
        );
        let many: String = (0..70).map(|i| format!("X{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            parse_request(many.as_bytes(), MAX, 10),
            Err(HeadError::TooLarge)
        );
        let body = b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
        assert_eq!(parse_request(body, MAX, 10), Err(HeadError::BodyTooLarge));
        let both = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_request(both, MAX, 10), Err(HeadError::Malformed));
        let two = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(parse_request(two, MAX, 10), Err(HeadError::Malformed));
        let neg = b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(parse_request(neg, MAX, 10), Err(HeadError::Malformed));
        let gz = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(
            parse_request(gz, MAX, 10),
            Err(HeadError::UnsupportedEncoding)
        );
        assert_eq!(
            parse_request(b"\x00\x01garbage\r\n\r\n", MAX, 10),
            Err(HeadError::Malformed)
        );
    }

    #[test]
    fn response_heads() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\nmcp-session-id: s1\r\n\r\n";
        let h = parse_response(raw, MAX).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert!(h.is_event_stream(raw));
        assert_eq!(h.body, BodyKind::Chunked);
        assert_eq!(&raw[h.session_id.clone().unwrap()], b"s1");
        let raw = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n";
        let h = parse_response(raw, MAX).unwrap().unwrap();
        assert_eq!(h.body, BodyKind::Empty);
        assert!(h.keep_alive);
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n";
        let h = parse_response(raw, MAX).unwrap().unwrap();
        assert_eq!(h.body, BodyKind::UntilClose);
        assert!(!h.keep_alive);
    }

    #[test]
    fn accept_matching() {
        assert!(accepts(
            b"application/json, text/event-stream",
            b"text/event-stream"
        ));
        assert!(accepts(b"text/*", b"text/event-stream"));
        assert!(accepts(b"*/*", b"application/json"));
        assert!(!accepts(b"application/json", b"text/event-stream"));
        assert!(!accepts(b"text/event-stream;q=0", b"text/event-stream"));
        assert!(accepts(b"text/event-stream;q=0.5", b"text/event-stream"));
        assert!(media_type_is(
            b"application/json; charset=utf-8",
            b"application/json"
        ));
    }

    #[test]
    fn response_encoding() {
        let mut out = Vec::new();
        write_response(
            &mut out,
            404,
            Some("text/plain"),
            b"nope",
            false,
            &[("x-a", b"1")],
        );
        let h = parse_response(&out, MAX).unwrap().unwrap();
        assert_eq!(h.status, 404);
        assert_eq!(h.body, BodyKind::Length(4));
        assert!(!h.keep_alive);
        assert!(out.ends_with(b"x-a: 1\r\n\r\nnope"));
        let mut chunk = Vec::new();
        write_chunk(&mut chunk, &[b'a'; 26]);
        assert_eq!(&chunk[..4], b"1a\r\n");
    }
}
