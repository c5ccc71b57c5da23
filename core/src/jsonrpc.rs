//! The JSON-RPC 2.0 envelope, parsed once and lazily: `jsonrpc`, `id` (raw bytes), `method`,
//! and the few `params` fields routing needs (`name`, `uri`, `cursor`, `ref`,
//! `_meta.progressToken`, `protocolVersion`), each with its byte span in the original buffer
//! so the forward path can splice (rename a tool, restore a URI) instead of re-serializing.
//!
//! Nothing else is materialized: `arguments`, `inputSchema`, results stay unparsed bytes. The
//! walk is [`scan::Cursor`], a validating single-pass scanner; measured against typed
//! serde_json and sonic-rs in `bench/benches/envelope.rs`.

mod scan;

use std::borrow::Cow;
use std::ops::Range;

use serde_json::value::RawValue;

use crate::error::RpcError;
use scan::{Cursor, Str};

pub use scan::{Syntax, What};

pub use scan::validate;

/// What kind of JSON-RPC message this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
}

/// The text of one JSON value, borrowed from the buffer it was parsed from (already validated).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a>(&'a str);

impl<'a> Raw<'a> {
    /// Checks that `text` is one JSON value and wraps it.
    pub fn new(text: &'a str) -> Result<Self, Syntax> {
        validate(text).map(|()| Raw(text))
    }

    /// The value's JSON text, e.g. `"abc"` with its quotes, or `42`.
    pub fn get(self) -> &'a str {
        self.0
    }

    /// An owned copy, for state that outlives the buffer.
    pub fn to_boxed(self) -> Box<RawValue> {
        RawValue::from_string(self.0.to_owned()).expect("a Raw holds validated JSON")
    }
}

impl Raw<'_> {
    /// Whether two ids are the same JSON-RPC id: the same text (the common case: a backend
    /// echoes the id it was sent), or the same value written differently (`"\u0061"` and
    /// `"a"`).
    pub fn same_id(self, other: Raw<'_>) -> bool {
        self.0 == other.0
            || matches!(
                (
                    serde_json::from_str::<serde_json::Value>(self.0),
                    serde_json::from_str::<serde_json::Value>(other.0),
                ),
                (Ok(a), Ok(b)) if a == b
            )
    }
}

/// Why a backend's answer cannot be relayed as the answer to a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadAnswer {
    #[error("answered with something that is not JSON-RPC ({0})")]
    NotJsonRpc(String),
    #[error("answered with a {0}, not a response")]
    NotAResponse(&'static str),
    #[error("answered another request (id {got}, expected {expected})")]
    OtherId { got: String, expected: String },
}

/// Checks that `body` is a JSON-RPC response to the request whose id is `id`.
pub fn check_answer(body: &[u8], id: Raw<'_>) -> Result<Option<i64>, BadAnswer> {
    let msg = parse(body).map_err(|e| BadAnswer::NotJsonRpc(e.to_string()))?;
    match msg.kind {
        Kind::Response => {}
        Kind::Request => return Err(BadAnswer::NotAResponse("request")),
        Kind::Notification => return Err(BadAnswer::NotAResponse("notification")),
    }
    match msg.id {
        Some(got) if got.same_id(id) => Ok(msg.error.and_then(error_code)),
        got => Err(BadAnswer::OtherId {
            got: got.map_or("null", Raw::get).chars().take(64).collect(),
            expected: id.get().chars().take(64).collect(),
        }),
    }
}

/// The `code` of a JSON-RPC error object (`None`: not an object with an integer code).
pub fn error_code(error: Raw<'_>) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Code {
        code: i64,
    }
    serde_json::from_str::<Code>(error.get())
        .ok()
        .map(|c| c.code)
}

impl<'a> From<&'a RawValue> for Raw<'a> {
    fn from(v: &'a RawValue) -> Self {
        Raw(v.get())
    }
}

impl std::fmt::Debug for Raw<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A parsed message borrowing from the buffer it came from.
#[derive(Debug)]
pub struct Message<'a> {
    pub kind: Kind,
    /// The raw id (`"abc"` with its quotes, or `42`); `None` for notifications.
    pub id: Option<Raw<'a>>,
    /// Empty for responses.
    pub method: Cow<'a, str>,
    pub params: Params<'a>,
    /// Whether the message had a `params` member at all.
    pub has_params: bool,
    pub result: Option<Raw<'a>>,
    pub error: Option<Raw<'a>>,
}

/// The parsed subset of `params`.
#[derive(Debug, Default)]
pub struct Params<'a> {
    pub name: Option<Raw<'a>>,
    pub uri: Option<Raw<'a>>,
    pub cursor: Option<Raw<'a>>,
    /// `params.ref` of `completion/complete`.
    pub reference: Option<Reference<'a>>,
    /// `params._meta`.
    pub meta: Option<Meta<'a>>,
    pub protocol_version: Option<Cow<'a, str>>,
    pub capabilities: Option<Raw<'a>>,
    /// `notifications/cancelled`: the id of the request to cancel.
    pub request_id: Option<Raw<'a>>,
    /// `notifications/progress`: the token of the request it reports on.
    pub progress_token: Option<Raw<'a>>,
}

/// `params.ref` of `completion/complete`.
#[derive(Debug, Default)]
pub struct Reference<'a> {
    pub kind: Option<Cow<'a, str>>,
    pub name: Option<Raw<'a>>,
    pub uri: Option<Raw<'a>>,
}

/// `params._meta`.
#[derive(Debug, Default)]
pub struct Meta<'a> {
    pub progress_token: Option<Raw<'a>>,
    /// `_meta.traceparent`: W3C trace context, as MCP's convention carries it.
    pub traceparent: Option<Raw<'a>>,
}

/// Why a walk stopped: bad JSON, or good JSON that is not a valid message (which of the two
/// wins is settled in [`parse`]: a syntax error anywhere makes the whole body -32700).
enum Fault {
    Syntax(Syntax),
    Request(String),
    Params(String),
}

impl From<Syntax> for Fault {
    fn from(s: Syntax) -> Self {
        Fault::Syntax(s)
    }
}

/// Where a member sits, for error messages and for which error class a type fault is.
#[derive(Clone, Copy)]
enum Level {
    Top,
    Params,
}

impl Level {
    fn fault(self, msg: String) -> Fault {
        match self {
            Level::Top => Fault::Request(msg),
            Level::Params => Fault::Params(msg),
        }
    }
}

/// A member name, decoded only when it carries escapes (they never do in practice). Inline:
/// it runs for every member of every message, and left to itself the compiler's choice
/// moves with unrelated code in the crate (callgrind: ~300 instructions per proxied call).
#[inline(always)]
fn key_text(key: Str<'_>) -> Cow<'_, str> {
    if key.escaped {
        decode(key.raw).map_or(Cow::Borrowed(""), Cow::Owned)
    } else {
        Cow::Borrowed(key.inner())
    }
}

fn decode(literal: &str) -> Option<String> {
    serde_json::from_str::<String>(literal).ok()
}

/// A member that must be a string (or null, read as absent).
fn string_member<'a>(
    c: &mut Cursor<'a>,
    level: Level,
    name: &str,
) -> Result<Option<Cow<'a, str>>, Fault> {
    match c.peek() {
        Some(b'"') => {
            let s = c.string()?;
            if !s.escaped {
                return Ok(Some(Cow::Borrowed(s.inner())));
            }
            match decode(s.raw) {
                Some(text) => Ok(Some(Cow::Owned(text))),
                None => Err(level.fault(format!("\"{name}\" is not a valid string"))),
            }
        }
        Some(b'n') => {
            c.skip(1)?;
            Ok(None)
        }
        _ => {
            c.skip(1)?;
            Err(level.fault(format!("\"{name}\" must be a string")))
        }
    }
}

/// Reads a member's value, as raw text, into `slot`; a second occurrence is refused.
#[inline(always)]
fn set_raw<'a>(
    slot: &mut Option<Raw<'a>>,
    c: &mut Cursor<'a>,
    level: Level,
    key: &str,
    depth: u32,
) -> Result<(), Fault> {
    once(slot, level, key)?;
    *slot = Some(Raw(c.value(depth)?));
    Ok(())
}

/// Walks an object's members, handing each key to `member` with the cursor on its value.
fn members<'a>(
    c: &mut Cursor<'a>,
    level: Level,
    what: &str,
    mut member: impl FnMut(&mut Cursor<'a>, &str) -> Result<(), Fault>,
) -> Result<(), Fault> {
    if c.peek() != Some(b'{') {
        c.skip(1)?;
        return Err(level.fault(format!("\"{what}\" must be an object")));
    }
    c.expect(b'{', What::Value)?;
    if c.first_member() {
        loop {
            let key = c.key()?;
            member(c, &key_text(key))?;
            if !c.next_member()? {
                break;
            }
        }
    }
    Ok(())
}

/// Refuses a member seen twice (serde_json's typed parse does the same).
#[inline(always)]
fn once<T>(slot: &Option<T>, level: Level, name: &str) -> Result<(), Fault> {
    if slot.is_some() {
        Err(duplicate(level, name))
    } else {
        Ok(())
    }
}

#[cold]
fn duplicate(level: Level, name: &str) -> Fault {
    level.fault(format!("duplicate member \"{name}\""))
}

fn params<'a>(c: &mut Cursor<'a>) -> Result<Params<'a>, Fault> {
    let mut p = Params::default();
    let l = Level::Params;
    members(c, l, "params", |c, key| {
        match key {
            "name" => set_raw(&mut p.name, c, l, key, 2)?,
            "uri" => set_raw(&mut p.uri, c, l, key, 2)?,
            "cursor" => set_raw(&mut p.cursor, c, l, key, 2)?,
            "capabilities" => set_raw(&mut p.capabilities, c, l, key, 2)?,
            "requestId" => set_raw(&mut p.request_id, c, l, key, 2)?,
            "progressToken" => set_raw(&mut p.progress_token, c, l, key, 2)?,
            "protocolVersion" => {
                once(&p.protocol_version, l, key)?;
                p.protocol_version = string_member(c, l, "params.protocolVersion")?;
            }
            "ref" => {
                once(&p.reference, l, key)?;
                let mut r = Reference::default();
                members(c, l, "params.ref", |c, key| {
                    match key {
                        "type" => r.kind = string_member(c, l, "params.ref.type")?,
                        "name" => set_raw(&mut r.name, c, l, key, 3)?,
                        "uri" => set_raw(&mut r.uri, c, l, key, 3)?,
                        _ => c.skip(3)?,
                    }
                    Ok(())
                })?;
                p.reference = Some(r);
            }
            "_meta" => {
                once(&p.meta, l, key)?;
                let mut m = Meta::default();
                members(c, l, "params._meta", |c, key| {
                    match key {
                        "progressToken" => set_raw(&mut m.progress_token, c, l, key, 3)?,
                        "traceparent" => set_raw(&mut m.traceparent, c, l, key, 3)?,
                        _ => c.skip(3)?,
                    }
                    Ok(())
                })?;
                p.meta = Some(m);
            }
            _ => c.skip(2)?,
        }
        Ok(())
    })?;
    Ok(p)
}

struct Envelope<'a> {
    jsonrpc: Option<Cow<'a, str>>,
    id: Option<Raw<'a>>,
    method: Option<Cow<'a, str>>,
    params: Option<Params<'a>>,
    result: Option<Raw<'a>>,
    error: Option<Raw<'a>>,
}

fn envelope<'a>(c: &mut Cursor<'a>) -> Result<Envelope<'a>, Fault> {
    let mut env = Envelope {
        jsonrpc: None,
        id: None,
        method: None,
        params: None,
        result: None,
        error: None,
    };
    let l = Level::Top;
    members(c, l, "message", |c, key| {
        match key {
            "jsonrpc" => {
                once(&env.jsonrpc, l, key)?;
                env.jsonrpc = string_member(c, l, "jsonrpc")?;
            }
            "id" => set_raw(&mut env.id, c, l, key, 1)?,
            "method" => {
                once(&env.method, l, key)?;
                env.method = string_member(c, l, "method")?;
            }
            "params" => {
                once(&env.params, l, key)?;
                env.params = Some(params(c)?);
            }
            "result" => set_raw(&mut env.result, c, l, key, 1)?,
            "error" => set_raw(&mut env.error, c, l, key, 1)?,
            _ => c.skip(1)?,
        }
        Ok(())
    })?;
    c.end()?;
    Ok(env)
}

/// Parses one JSON-RPC message. Errors carry the precise JSON-RPC error the client gets.
pub fn parse(buf: &[u8]) -> Result<Message<'_>, RpcError> {
    let text = std::str::from_utf8(buf)
        .map_err(|e| RpcError::Parse(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    let mut c = Cursor::new(text);
    c.ws();
    let env = match c.peek() {
        Some(b'{') => envelope(&mut c),
        Some(b'[') => Err(Fault::Request(
            "JSON-RPC batches are not supported; send one message per POST".into(),
        )),
        None => Err(Fault::Syntax(Syntax {
            what: What::Empty,
            at: 0,
        })),
        Some(_) => Err(Fault::Request("a JSON-RPC message is a JSON object".into())),
    };
    let env = match env {
        Ok(env) => env,
        // Not JSON at all outranks not a valid message: look at the whole body first.
        Err(fault) => {
            return Err(match (fault, validate(text)) {
                (Fault::Syntax(s), _) | (_, Err(s)) => RpcError::Parse(s.to_string()),
                (Fault::Request(m), Ok(())) => RpcError::InvalidRequest(m),
                (Fault::Params(m), Ok(())) => RpcError::InvalidParams(m),
            })
        }
    };
    if env.jsonrpc.as_deref() != Some("2.0") {
        return Err(RpcError::InvalidRequest(
            "\"jsonrpc\" must be \"2.0\"".into(),
        ));
    }
    let has_params = env.params.is_some();
    let params = env.params.unwrap_or_default();
    match (env.method, env.id) {
        (Some(method), Some(id)) => {
            check_id(id)?;
            if env.result.is_some() || env.error.is_some() {
                return Err(RpcError::InvalidRequest(
                    "a request must not carry \"result\" or \"error\"".into(),
                ));
            }
            Ok(Message {
                kind: Kind::Request,
                id: Some(id),
                method,
                params,
                has_params,
                result: None,
                error: None,
            })
        }
        (Some(method), None) => Ok(Message {
            kind: Kind::Notification,
            id: None,
            method,
            params,
            has_params,
            result: None,
            error: None,
        }),
        (None, id) => {
            let id = id.ok_or_else(|| {
                RpcError::InvalidRequest("message has neither \"method\" nor \"id\"".into())
            })?;
            if env.result.is_some() == env.error.is_some() {
                return Err(RpcError::InvalidRequest(
                    "a response carries exactly one of \"result\" and \"error\"".into(),
                ));
            }
            Ok(Message {
                kind: Kind::Response,
                id: Some(id),
                method: Cow::Borrowed(""),
                params,
                has_params,
                result: env.result,
                error: env.error,
            })
        }
    }
}

/// MCP: a request id is a string or an integer, never null.
fn check_id(id: Raw<'_>) -> Result<(), RpcError> {
    let s = id.get().as_bytes();
    let ok = match s.first() {
        Some(b'"') => true,
        Some(b'-' | b'0'..=b'9') => !s.iter().any(|b| matches!(b, b'.' | b'e' | b'E')),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(RpcError::InvalidRequest(
            "\"id\" must be a string or an integer".into(),
        ))
    }
}

/// The byte range of `part` inside `buf`. `part` must borrow from `buf` (every `Raw` a
/// [`Message`] hands out does).
pub fn span_of(buf: &[u8], part: Raw<'_>) -> Range<usize> {
    let start = part.get().as_ptr() as usize - buf.as_ptr() as usize;
    debug_assert!(start + part.get().len() <= buf.len());
    start..start + part.get().len()
}

/// Decodes a raw JSON string literal. `None` when the value is not a string.
pub fn raw_str(v: Raw<'_>) -> Option<Cow<'_, str>> {
    let s = v.get();
    if !s.starts_with('"') {
        return None;
    }
    let inner = &s[1..s.len() - 1];
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(s).ok().map(Cow::Owned)
}

/// Appends `s` as a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping is correct for every input; writing to a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec");
}

/// Writes `{"jsonrpc":"2.0","id":ID,"error":{"code":C,"message":M}}`.
pub fn write_error(out: &mut Vec<u8>, id: Option<Raw<'_>>, err: &RpcError) {
    write_error_parts(out, id, err.code(), &err.to_string(), None);
}

/// Like [`write_error`], with an optional raw `data` member.
pub fn write_error_parts(
    out: &mut Vec<u8>,
    id: Option<Raw<'_>>,
    code: i32,
    message: &str,
    data: Option<&str>,
) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.map_or("null", Raw::get).as_bytes());
    out.extend_from_slice(b",\"error\":{\"code\":");
    out.extend_from_slice(code.to_string().as_bytes());
    out.extend_from_slice(b",\"message\":");
    write_str(out, message);
    if let Some(data) = data {
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(data.as_bytes());
    }
    out.extend_from_slice(b"}}");
}

/// Writes `{"jsonrpc":"2.0","id":ID,"result":RESULT}` with `result` already serialized.
pub fn write_result(out: &mut Vec<u8>, id: Raw<'_>, result: &[u8]) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.get().as_bytes());
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(result);
    out.push(b'}');
}

/// MCP logging levels (`logging/setLevel`, `notifications/message`), lowest first.
pub const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// Rank of a logging level in [`LOG_LEVELS`] (debug lowest); `None` if unknown.
pub fn log_rank(level: &str) -> Option<u8> {
    LOG_LEVELS.iter().position(|l| *l == level).map(|i| i as u8)
}

/// Copies `buf` into `out` with `span` replaced by `with`.
pub fn splice(out: &mut Vec<u8>, buf: &[u8], span: Range<usize>, with: &[u8]) {
    out.reserve(buf.len() - span.len() + with.len());
    out.extend_from_slice(&buf[..span.start]);
    out.extend_from_slice(with);
    out.extend_from_slice(&buf[span.end..]);
}

/// Copies `buf` into `out` with each span of `edits` (parts of `buf` that do not overlap, in
/// any order) replaced by its bytes.
pub fn splice_all(out: &mut Vec<u8>, buf: &[u8], edits: &mut [(Range<usize>, &[u8])]) {
    edits.sort_unstable_by_key(|(span, _)| span.start);
    let mut at = 0;
    for (span, with) in edits.iter() {
        debug_assert!(span.start >= at, "edits overlap");
        out.extend_from_slice(&buf[at..span.start]);
        out.extend_from_slice(with);
        at = span.end;
    }
    out.extend_from_slice(&buf[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::code;

    const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"w__get","arguments":{"name":"not me","n":1},"_meta":{"progressToken":"p1"}}}"#;

    #[test]
    fn splice_all_takes_edits_in_any_order() {
        let buf = br#"{"id":1,"params":{"name":"a__x"}}"#;
        let at = |needle: &[u8]| {
            let i = buf.windows(needle.len()).position(|w| w == needle).unwrap();
            i..i + needle.len()
        };
        let mut out = Vec::new();
        let mut edits = [
            (at(br#""a__x""#), &br#""x""#[..]),
            (at(b"1"), &br#""m7""#[..]),
        ];
        splice_all(&mut out, buf, &mut edits);
        assert_eq!(out, br#"{"id":"m7","params":{"name":"x"}}"#);
        out.clear();
        splice_all(&mut out, buf, &mut []);
        assert_eq!(out, buf);
    }

    #[test]
    fn request_fields_and_spans() {
        let m = parse(CALL).unwrap();
        assert_eq!(m.kind, Kind::Request);
        assert_eq!(m.id.unwrap().get(), "7");
        assert_eq!(m.method, "tools/call");
        let name = m.params.name.unwrap();
        assert_eq!(&CALL[span_of(CALL, name)], br#""w__get""#);
        assert_eq!(
            m.params.meta.unwrap().progress_token.unwrap().get(),
            "\"p1\""
        );
    }

    #[test]
    fn splice_touches_only_the_top_level_name() {
        let m = parse(CALL).unwrap();
        let span = span_of(CALL, m.params.name.unwrap());
        let mut out = Vec::new();
        splice(&mut out, CALL, span, br#""get""#);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["params"]["name"], "get");
        assert_eq!(v["params"]["arguments"]["name"], "not me");
    }

    #[test]
    fn notification_and_response() {
        let n = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(n.kind, Kind::Notification);
        assert!(n.id.is_none());
        let r = parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert_eq!(r.kind, Kind::Response);
        assert_eq!(r.result.unwrap().get(), "{}");
        let e = parse(br#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"x"}}"#);
        assert_eq!(e.unwrap().id.unwrap().get(), "null");
    }

    #[test]
    fn answers_must_be_the_response_to_the_request() {
        let id = Raw::new("\"a\"").unwrap();
        assert_eq!(
            check_answer(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#, id),
            Ok(None)
        );
        assert_eq!(
            check_answer(
                br#"{"jsonrpc":"2.0","id":"\u0061","error":{"code":1,"message":"x"}}"#,
                id
            ),
            Ok(Some(1)),
            "the same id written otherwise"
        );
        for bad in [
            &br#"{"jsonrpc":"2.0","id":"a","res"#[..],
            b"[1,2,3]",
            b"<html>502</html>",
            br#"{"jsonrpc":"2.0","id":"b","result":{}}"#,
            br#"{"jsonrpc":"2.0","id":null,"result":{}}"#,
            br#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#,
        ] {
            assert!(
                check_answer(bad, id).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(Raw::new("1").unwrap().same_id(Raw::new("1").unwrap()));
        assert!(!Raw::new("1").unwrap().same_id(Raw::new("\"1\"").unwrap()));
    }

    #[test]
    fn escaped_method_is_decoded() {
        let m = parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools\/list"}"#).unwrap();
        assert_eq!(m.method, "tools/list");
    }

    fn err_code(buf: &[u8]) -> i32 {
        parse(buf).unwrap_err().code()
    }

    #[test]
    fn bad_input_gets_precise_codes() {
        assert_eq!(err_code(b"{not json"), code::PARSE_ERROR);
        assert_eq!(err_code(b""), code::PARSE_ERROR);
        assert_eq!(err_code(br#"{"jsonrpc":"2.0","id":1,"#), code::PARSE_ERROR);
        assert_eq!(
            err_code(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            code::INVALID_REQUEST
        );
        assert_eq!(err_code(b"42"), code::INVALID_REQUEST);
        assert_eq!(
            err_code(br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            err_code(br#"{"id":1,"method":"ping"}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            err_code(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            err_code(br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            err_code(br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            err_code(br#"{"jsonrpc":"2.0","method":7}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            err_code(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#),
            code::INVALID_PARAMS
        );
        assert_eq!(
            err_code(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":5}}"#),
            code::INVALID_PARAMS
        );
        assert_eq!(err_code(br#"{"jsonrpc":"2.0"}"#), code::INVALID_REQUEST);
        assert_eq!(
            err_code(br#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#),
            code::INVALID_REQUEST
        );
    }

    #[test]
    fn syntax_outranks_shape_and_edge_cases_are_exact() {
        // A type fault early and broken JSON later: the body is not JSON, so -32700.
        assert_eq!(
            err_code(br#"{"jsonrpc":5,"id":1 "method":"x"}"#),
            code::PARSE_ERROR
        );
        assert_eq!(err_code(br#"[1,2"#), code::PARSE_ERROR);
        assert_eq!(err_code(b"\"abc"), code::PARSE_ERROR);
        assert_eq!(
            err_code(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}"),
            code::PARSE_ERROR
        );
        assert_eq!(
            err_code(br#"{"jsonrpc":"2.0","id":1,"method":"x"} x"#),
            code::PARSE_ERROR
        );
        assert_eq!(
            err_code(br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            err_code(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"name":1,"name":2}}"#),
            code::INVALID_PARAMS
        );
        assert_eq!(
            err_code(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":null}"#),
            code::INVALID_PARAMS
        );
        assert_eq!(
            err_code(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"ref":[]}}"#),
            code::INVALID_PARAMS
        );
        // Escaped member names are decoded before they are matched.
        let m = parse(br#" {"jsonrpc":"2.0","\u0069d":3,"method":"ping"} "#).unwrap();
        assert_eq!(m.id.unwrap().get(), "3");
        // Unknown members, at any depth, are skipped.
        let m = parse(br#"{"x":[{"y":{}}],"jsonrpc":"2.0","method":"n","params":{"z":[1,2]}}"#)
            .unwrap();
        assert_eq!(m.kind, Kind::Notification);
        assert!(m.has_params);
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{"a":{}1{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(err_code(deep.as_bytes()), code::PARSE_ERROR);
    }

    #[test]
    fn error_encoding_roundtrips() {
        let mut out = Vec::new();
        let m = parse(br#"{"jsonrpc":"2.0","id":"x\"y","method":"nope"}"#).unwrap();
        write_error(&mut out, m.id, &RpcError::MethodNotFound("no\"pe".into()));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], "x\"y");
        assert_eq!(v["error"]["code"], -32601);
        assert_eq!(v["error"]["message"], "Method not found: no\"pe");
    }

    #[test]
    fn raw_str_decodes_escapes() {
        let m = parse(br#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"name":"a\u0041\n"}}"#)
            .unwrap();
        assert_eq!(raw_str(m.params.name.unwrap()).unwrap(), "aA\n");
        let m = parse(br#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"name":3}}"#).unwrap();
        assert!(raw_str(m.params.name.unwrap()).is_none());
    }
}
