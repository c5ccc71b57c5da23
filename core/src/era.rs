//! The era adapter: translation between a client's protocol era and a backend's, as pure
//! functions (messages in, messages out). The stateful era (2024-11-05 … 2025-11-25) and the
//! sessionless one (2026-07-28) differ in what a result carries (`resultType`, `ttlMs`,
//! `cacheScope`), in how a server asks the client for input (a request on the call's stream,
//! or an `input_required` result), and in the HTTP status of errors. The gateway calls these
//! from the one place each translation happens.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::value::RawValue;

use crate::error::sessionless_status;
use crate::jsonrpc::{self, span_of, Raw};

/// Result members only the 2026-07-28 era has.
const ERA_MEMBERS: &[&str] = &["resultType", "ttlMs", "cacheScope"];

#[derive(serde::Deserialize)]
struct Present<'a> {
    #[serde(rename = "resultType", borrow, default)]
    result_type: Option<&'a RawValue>,
    #[serde(rename = "ttlMs", borrow, default)]
    ttl_ms: Option<&'a RawValue>,
    #[serde(rename = "cacheScope", borrow, default)]
    cache_scope: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct ErrorCode {
    code: i64,
}

/// A backend's final message for a 2026-07-28 client: the client's id (the backend saw one of
/// ringmux's), a result with the members the era requires (`resultType`; `ttlMs` and
/// `cacheScope` on `cacheable` results), an error with the era's HTTP status. Returns the
/// message and its status.
pub fn to_sessionless(
    message: &[u8],
    client_id: Raw<'_>,
    cacheable: bool,
    ttl_ms: u64,
) -> (Vec<u8>, u16) {
    let id = client_id;
    let mut out = Vec::with_capacity(message.len() + 96);
    let msg = match jsonrpc::parse(message) {
        Ok(m) => m,
        Err(_) => {
            jsonrpc::write_error_parts(
                &mut out,
                Some(id),
                -32603,
                "a backend answered with a message that is not JSON-RPC",
                None,
            );
            return (out, 200);
        }
    };
    if let Some(error) = msg.error {
        let status = serde_json::from_str::<ErrorCode>(error.get())
            .map_or(200, |e| sessionless_status(e.code));
        out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
        out.extend_from_slice(id.get().as_bytes());
        out.extend_from_slice(b",\"error\":");
        out.extend_from_slice(error.get().as_bytes());
        out.push(b'}');
        return (out, status);
    }
    let result = msg.result.map_or("{}", |r| r.get()).trim();
    let Some(inner) = result.strip_prefix('{') else {
        jsonrpc::write_error_parts(
            &mut out,
            Some(id),
            -32603,
            "a backend's result is not an object",
            None,
        );
        return (out, 200);
    };
    let present = serde_json::from_str::<Present<'_>>(result).ok();
    let mut fields: Vec<String> = Vec::with_capacity(3);
    if present.as_ref().is_none_or(|p| p.result_type.is_none()) {
        fields.push("\"resultType\":\"complete\"".into());
    }
    // Methods whose results clients may cache: `ttlMs`, `cacheScope` required.
    if cacheable {
        if present.as_ref().is_none_or(|p| p.ttl_ms.is_none()) {
            fields.push(format!("\"ttlMs\":{ttl_ms}"));
        }
        if present.as_ref().is_none_or(|p| p.cache_scope.is_none()) {
            fields.push("\"cacheScope\":\"private\"".into());
        }
    }
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.get().as_bytes());
    out.extend_from_slice(b",\"result\":{");
    out.extend_from_slice(fields.join(",").as_bytes());
    if !fields.is_empty() && !inner.trim_start().starts_with('}') {
        out.push(b',');
    }
    out.extend_from_slice(inner.as_bytes());
    out.push(b'}');
    (out, 200)
}

/// What a backend's final message is.
pub enum Outcome<'a> {
    /// A result to relay (era members dropped) or an error.
    Final,
    /// `input_required`: the requests to put to the client and the state to echo.
    InputRequired {
        requests: Vec<(String, &'a RawValue)>,
        state: Option<&'a RawValue>,
    },
}

#[derive(serde::Deserialize)]
struct InputRequired<'a> {
    #[serde(rename = "resultType", default)]
    result_type: Option<Cow<'a, str>>,
    #[serde(rename = "inputRequests", borrow, default)]
    input_requests: Option<BTreeMap<String, &'a RawValue>>,
    #[serde(rename = "requestState", borrow, default)]
    request_state: Option<&'a RawValue>,
}

pub fn outcome<'a>(result: Option<Raw<'a>>) -> Outcome<'a> {
    let Some(result) = result else {
        return Outcome::Final;
    };
    match serde_json::from_str::<InputRequired<'a>>(result.get()) {
        Ok(ir) if ir.result_type.as_deref() == Some("input_required") => Outcome::InputRequired {
            requests: ir.input_requests.unwrap_or_default().into_iter().collect(),
            state: ir.request_state,
        },
        _ => Outcome::Final,
    }
}

/// A result's members in order, as written.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Members, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push(entry);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A 2026-07-28 backend's response for a stateful client: the era's members (`resultType`,
/// `ttlMs`, `cacheScope`) dropped from its result, the rest byte for byte.
pub fn to_stateful(message: Vec<u8>) -> Vec<u8> {
    let Ok(msg) = jsonrpc::parse(&message) else {
        return message;
    };
    let Some(result) = msg.result else {
        return message;
    };
    let Ok(members) = serde_json::from_str::<Members>(result.get()) else {
        return message;
    };
    if !members
        .0
        .iter()
        .any(|(k, _)| ERA_MEMBERS.contains(&k.as_str()))
    {
        return message;
    }
    let mut kept = Vec::with_capacity(result.get().len());
    kept.push(b'{');
    for (k, v) in members
        .0
        .iter()
        .filter(|(k, _)| !ERA_MEMBERS.contains(&k.as_str()))
    {
        if kept.len() > 1 {
            kept.push(b',');
        }
        jsonrpc::write_str(&mut kept, k);
        kept.push(b':');
        kept.extend_from_slice(v.get().as_bytes());
    }
    kept.push(b'}');
    let mut out = Vec::with_capacity(message.len());
    jsonrpc::splice(&mut out, &message, span_of(&message, result), &kept);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessionless(message: &[u8], cacheable: bool) -> (String, u16) {
        let id = RawValue::from_string("7".into()).unwrap();
        let (out, status) = to_sessionless(message, Raw::from(&*id), cacheable, 60_000);
        (String::from_utf8(out).unwrap(), status)
    }

    #[test]
    fn results_get_the_members_the_sessionless_era_requires() {
        let (out, status) = sessionless(
            br#"{"jsonrpc":"2.0","id":"ringmux-m3","result":{"content":[]}}"#,
            false,
        );
        assert_eq!(status, 200);
        assert_eq!(
            out,
            r#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"complete","content":[]}}"#
        );
        let (out, _) = sessionless(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#, true);
        assert_eq!(
            out,
            r#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"complete","ttlMs":60000,"cacheScope":"private"}}"#
        );
        let (out, _) = sessionless(
            br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","x":1}}"#,
            false,
        );
        assert!(out.ends_with(r#""result":{"resultType":"input_required","x":1}}"#));
        let (out, status) = sessionless(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown tool"}}"#,
            false,
        );
        assert_eq!(status, 400);
        assert!(out.starts_with(r#"{"jsonrpc":"2.0","id":7,"error":"#));
        let (_, status) = sessionless(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"nope"}}"#,
            false,
        );
        assert_eq!(status, 404);
        let (out, status) = sessionless(b"not json", false);
        assert_eq!(status, 200);
        assert!(out.contains("-32603"), "{out}");
    }

    #[test]
    fn era_members_leave_results_for_stateful_clients() {
        let m = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}],"resultType":"complete","ttlMs":5,"isError":false,"cacheScope":"public"}}"#;
        let out = to_stateful(m.to_vec());
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}],"isError":false}}"#
        );
        let plain = br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[]}}"#;
        assert_eq!(to_stateful(plain.to_vec()), plain.to_vec());
        let error = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"x"}}"#;
        assert_eq!(to_stateful(error.to_vec()), error.to_vec());
    }

    #[test]
    fn input_required_is_told_apart() {
        let m = br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","inputRequests":{"a":{"method":"roots/list"}},"requestState":"s"}}"#;
        let msg = jsonrpc::parse(m).unwrap();
        match outcome(msg.result) {
            Outcome::InputRequired { requests, state } => {
                assert_eq!(requests.len(), 1);
                assert_eq!(requests[0].0, "a");
                assert_eq!(state.unwrap().get(), "\"s\"");
            }
            Outcome::Final => panic!("not told apart"),
        }
        let done = br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete"}}"#;
        assert!(matches!(
            outcome(jsonrpc::parse(done).unwrap().result),
            Outcome::Final
        ));
    }
}
