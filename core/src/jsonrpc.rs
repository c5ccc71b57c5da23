//! The JSON-RPC 2.0 envelope, parsed once and lazily: `jsonrpc`, `id` (raw bytes), `method`,
//! and the few `params` fields routing needs (`name`, `uri`, `cursor`, `ref`,
//! `_meta.progressToken`, `protocolVersion`), each with its byte span in the original buffer
//! so the forward path can splice (rename a tool, restore a URI) instead of re-serializing.
//!
//! Nothing else is materialized: `arguments`, `inputSchema`, results stay unparsed bytes.
//! Measured against sonic-rs and simd-json in `bench/benches/envelope.rs`.

use std::borrow::Cow;
use std::ops::Range;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::error::RpcError;

/// What kind of JSON-RPC message this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
}

/// A parsed message borrowing from the buffer it came from.
#[derive(Debug)]
pub struct Message<'a> {
    pub kind: Kind,
    /// The raw id (`"abc"` with its quotes, or `42`); `None` for notifications.
    pub id: Option<&'a RawValue>,
    /// Empty for responses.
    pub method: Cow<'a, str>,
    pub params: Params<'a>,
    /// Whether the message had a `params` member at all.
    pub has_params: bool,
    pub result: Option<&'a RawValue>,
    pub error: Option<&'a RawValue>,
}

/// The parsed subset of `params`.
#[derive(Debug, Default, Deserialize)]
pub struct Params<'a> {
    #[serde(borrow, default)]
    pub name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub uri: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub cursor: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "ref", deserialize_with = "object")]
    pub reference: Option<Reference<'a>>,
    #[serde(borrow, default, rename = "_meta", deserialize_with = "object")]
    pub meta: Option<Meta<'a>>,
    #[serde(borrow, default, rename = "protocolVersion")]
    pub protocol_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub capabilities: Option<&'a RawValue>,
    /// `notifications/cancelled`: the id of the request to cancel.
    #[serde(borrow, default, rename = "requestId")]
    pub request_id: Option<&'a RawValue>,
}

/// `params.ref` of `completion/complete`.
#[derive(Debug, Default, Deserialize)]
pub struct Reference<'a> {
    #[serde(borrow, default, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub uri: Option<&'a RawValue>,
}

/// `params._meta`.
#[derive(Debug, Default, Deserialize)]
pub struct Meta<'a> {
    #[serde(borrow, default, rename = "progressToken")]
    pub progress_token: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "object")]
    params: Option<Params<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// Keeps an explicit `null` as `Some("null")` so that `"id": null` is told apart from no id.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Accepts only a JSON object (derived struct impls would also take an array, positionally).
fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    struct ObjectOnly<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(ObjectOnly(std::marker::PhantomData))
        .map(Some)
}

/// Parses one JSON-RPC message. Errors carry the precise JSON-RPC error the client gets.
pub fn parse(buf: &[u8]) -> Result<Message<'_>, RpcError> {
    let env: Envelope<'_> = match serde_json::from_slice(buf) {
        Ok(env) => env,
        Err(e) => return Err(classify_failure(buf, e)),
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
fn check_id(id: &RawValue) -> Result<(), RpcError> {
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

/// The slow path, taken only when the typed parse failed: was it not JSON at all (-32700), not
/// an object (-32600, naming batches), or a member of the wrong type (-32600 / -32602)?
fn classify_failure(buf: &[u8], err: serde_json::Error) -> RpcError {
    if err.is_syntax() || err.is_eof() || err.is_io() {
        return RpcError::Parse(err.to_string());
    }
    match serde_json::from_slice::<serde_json::Value>(buf) {
        Err(e) => RpcError::Parse(e.to_string()),
        Ok(serde_json::Value::Array(_)) => RpcError::InvalidRequest(
            "JSON-RPC batches are not supported; send one message per POST".into(),
        ),
        Ok(serde_json::Value::Object(map)) => match map.get("params") {
            Some(p) if !p.is_object() => {
                RpcError::InvalidParams("\"params\" must be an object".into())
            }
            Some(_) => RpcError::InvalidParams(err.to_string()),
            None => RpcError::InvalidRequest(err.to_string()),
        },
        Ok(_) => RpcError::InvalidRequest("a JSON-RPC message is a JSON object".into()),
    }
}

/// The byte range of `part` inside `buf`. `part` must borrow from `buf` (every `RawValue` a
/// [`Message`] hands out does).
pub fn span_of(buf: &[u8], part: &RawValue) -> Range<usize> {
    let start = part.get().as_ptr() as usize - buf.as_ptr() as usize;
    debug_assert!(start + part.get().len() <= buf.len());
    start..start + part.get().len()
}

/// Decodes a raw JSON string literal. `None` when the value is not a string.
pub fn raw_str(v: &RawValue) -> Option<Cow<'_, str>> {
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
pub fn write_error(out: &mut Vec<u8>, id: Option<&RawValue>, err: &RpcError) {
    write_error_parts(out, id, err.code(), &err.to_string(), None);
}

/// Like [`write_error`], with an optional raw `data` member.
pub fn write_error_parts(
    out: &mut Vec<u8>,
    id: Option<&RawValue>,
    code: i32,
    message: &str,
    data: Option<&str>,
) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.map_or("null", RawValue::get).as_bytes());
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
pub fn write_result(out: &mut Vec<u8>, id: &RawValue, result: &[u8]) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.get().as_bytes());
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(result);
    out.push(b'}');
}

/// Copies `buf` into `out` with `span` replaced by `with`.
pub fn splice(out: &mut Vec<u8>, buf: &[u8], span: Range<usize>, with: &[u8]) {
    out.reserve(buf.len() - span.len() + with.len());
    out.extend_from_slice(&buf[..span.start]);
    out.extend_from_slice(with);
    out.extend_from_slice(&buf[span.end..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::code;

    const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"w__get","arguments":{"name":"not me","n":1},"_meta":{"progressToken":"p1"}}}"#;

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
