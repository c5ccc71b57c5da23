//! How a session speaks to a 2026-07-28 (sessionless) backend: its `server/discover` (the
//! backend session), and every request sent with `params._meta` filled from the client's
//! initialize and the era's routing headers; and what a session keeps for such backends
//! ([`Extras`]). Serving a stateful client through such a backend is
//! [`crate::handlers::sessionless`]'s.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;

use base64::Engine;
use futures_channel::oneshot;
use ringmux_core::error::RpcError;
use ringmux_core::jsonrpc::{self, Kind};
use ringmux_core::method::{self, NameParam};
use ringmux_core::version;
use serde_json::value::RawValue;

use crate::backend::upstream::{Body, Pool, Response, Status};
use crate::session::{BackendFailure, Capabilities, Session};

const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";

/// Whether a backend session's version is this era's.
pub fn is_sessionless(version: &str) -> bool {
    version == version::SESSIONLESS
}

/// A request put to the client: its id there (JSON text) and where its answer goes.
pub(crate) type PendingAsk = (Box<str>, oneshot::Sender<Vec<u8>>);

/// What a session keeps for its sessionless backends (and, rarely, for a reload that came
/// during a join); made on first need, so that most sessions do not pay for it.
#[derive(Default)]
pub struct Extras {
    /// Requests of `input_required` results put to the client and not yet answered: the id
    /// they carry on the client's stream (JSON text) and where the answer goes.
    pub(crate) asks: std::cell::RefCell<Vec<PendingAsk>>,
    pub(crate) next_ask: std::cell::Cell<u64>,
    /// Resource URIs (as the backend knows them) the client subscribed to, per backend.
    pub(crate) subscriptions: std::cell::RefCell<Vec<(u16, String)>>,
    /// Bumped when `subscriptions` change: the listen streams re-open with the new set.
    pub(crate) generation: std::cell::Cell<u64>,
    pub(crate) changed: crate::session::principal::Waiters,
    /// Backends whose join finished on a pool a reload had replaced, its result not kept: a
    /// call waiting on it joins again through its own pool ([`crate::session::Session::join`]).
    pub(crate) discarded: std::cell::RefCell<Vec<u16>>,
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// A request as a sessionless backend gets it.
pub(crate) struct Prepared {
    pub(crate) body: Vec<u8>,
    pub(crate) method: String,
    /// `Mcp-Name`, encoded for a header.
    pub(crate) name: Option<String>,
}

#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    method: Cow<'a, str>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

#[derive(serde::Deserialize, Default)]
struct Init<'a> {
    #[serde(borrow, default)]
    capabilities: Option<&'a RawValue>,
    #[serde(rename = "clientInfo", borrow, default)]
    client_info: Option<&'a RawValue>,
}

/// `body` (a request) with `_meta` filled from the session, plus `extra` params members (a
/// retry's `inputResponses` and `requestState`, which replace any the body had).
pub(crate) fn prepare(
    session: &Session,
    body: &[u8],
    extra: &[(&str, &RawValue)],
) -> Result<Prepared, String> {
    let env: Envelope<'_> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let params: BTreeMap<Cow<'_, str>, &RawValue> = match env.params {
        Some(p) => serde_json::from_str(p.get()).map_err(|e| format!("params: {e}"))?,
        None => BTreeMap::new(),
    };
    let mut meta: serde_json::Map<String, serde_json::Value> = params
        .get("_meta")
        .and_then(|m| serde_json::from_str(m.get()).ok())
        .unwrap_or_default();
    let init: Init<'_> = serde_json::from_str(session.init_params.get()).unwrap_or_default();
    let raw = |r: Option<&RawValue>| {
        r.and_then(|r| serde_json::from_str::<serde_json::Value>(r.get()).ok())
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()))
    };
    meta.insert(META_VERSION.into(), version::SESSIONLESS.into());
    meta.insert(META_CAPABILITIES.into(), raw(init.capabilities));
    if init.client_info.is_some() {
        meta.insert(META_CLIENT_INFO.into(), raw(init.client_info));
    }
    // The era sends logs only to a request that opts in. A stateful client hears every level
    // until it sets one; a modern client's own `_meta` says (kept as it came).
    match session.log_level() {
        Some(rank) => {
            meta.insert(
                META_LOG_LEVEL.into(),
                jsonrpc::LOG_LEVELS[rank as usize].into(),
            );
        }
        None if session.modern.get().is_none() => {
            meta.insert(META_LOG_LEVEL.into(), jsonrpc::LOG_LEVELS[0].into());
        }
        None => {}
    }
    let name_key = method::lookup(&env.method)
        .and_then(|m| m.name_header)
        .map(|p| match p {
            NameParam::Name => "name",
            NameParam::Uri => "uri",
        });
    let name = name_key
        .and_then(|k| params.get(k))
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
        .map(|n| encode_header_value(&n));
    let mut out = Vec::with_capacity(body.len() + 256);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(env.id.map_or("null", |i| i.get()).as_bytes());
    out.extend_from_slice(b",\"method\":");
    jsonrpc::write_str(&mut out, &env.method);
    out.extend_from_slice(b",\"params\":{\"_meta\":");
    out.extend_from_slice(
        serde_json::to_string(&meta)
            .expect("serializing a map")
            .as_bytes(),
    );
    for (k, v) in &params {
        if k == "_meta" || extra.iter().any(|(e, _)| e == k) {
            continue;
        }
        out.push(b',');
        jsonrpc::write_str(&mut out, k);
        out.push(b':');
        out.extend_from_slice(v.get().as_bytes());
    }
    for (k, v) in extra {
        out.push(b',');
        jsonrpc::write_str(&mut out, k);
        out.push(b':');
        out.extend_from_slice(v.get().as_bytes());
    }
    out.extend_from_slice(b"}}");
    Ok(Prepared {
        body: out,
        method: env.method.into_owned(),
        name,
    })
}

/// A header value for `Mcp-Name`: as it is when it is printable ASCII without edge spaces,
/// else `=?base64?…?=` (the form [`crate::handlers::modern`] decodes).
pub fn encode_header_value(v: &str) -> String {
    let plain = v.bytes().all(|b| (0x20..0x7f).contains(&b))
        && v.trim() == v
        && !(v.starts_with("=?base64?") && v.ends_with("?="));
    if plain {
        return v.to_owned();
    }
    let mut out = String::from("=?base64?");
    base64::engine::general_purpose::STANDARD.encode_string(v.as_bytes(), &mut out);
    out.push_str("?=");
    out
}

fn synthetic(status: Status, body: Vec<u8>) -> Response {
    Response {
        status,
        session_id: None,
        body: Body::Full(body),
    }
}

/// Sends one message of the session to a sessionless backend. Requests go with their `_meta`
/// and headers; what the era removed is answered here: `logging/setLevel` (the level rides
/// in each request's `_meta`), `resources/(un)subscribe` (kept for the listen stream), and
/// every notification and response (202: the era has none from client to server).
pub(crate) async fn send(
    session: &Session,
    pool: &Rc<Pool>,
    body: &[u8],
    trace: Option<&crate::backend::upstream::Trace<'_>>,
) -> Result<Response, BackendFailure> {
    let Ok(msg) = jsonrpc::parse(body) else {
        return Ok(synthetic(Status::Accepted, Vec::new()));
    };
    let (Kind::Request, Some(id)) = (msg.kind, msg.id) else {
        return Ok(synthetic(Status::Accepted, Vec::new()));
    };
    let empty_result = || {
        let mut out = Vec::with_capacity(48);
        jsonrpc::write_result(&mut out, id, b"{}");
        Ok(synthetic(Status::Ok, out))
    };
    match &*msg.method {
        "logging/setLevel" => return empty_result(),
        "resources/subscribe" | "resources/unsubscribe" => {
            if let Some(uri) = msg.params.uri.and_then(jsonrpc::raw_str) {
                session.resubscribe(pool.index, &uri, msg.method == "resources/subscribe");
            }
            return empty_result();
        }
        _ => {}
    }
    let p = match prepare(session, body, &[]) {
        Ok(p) => p,
        // The client's params are not an object: its fault, said as the backend would.
        Err(e) => {
            let mut out = Vec::with_capacity(96);
            jsonrpc::write_error(&mut out, Some(id), &RpcError::InvalidParams(e));
            return Ok(synthetic(Status::Ok, out));
        }
    };
    let resp = pool
        .post_sessionless(&p.body, &p.method, p.name.as_deref(), Instant::now(), trace)
        .await?;
    Ok(errors_answered(resp))
}

/// The era answers a request's JSON-RPC error with a 4xx status (400 for -32602, 404 for
/// -32601): to the session, and to whichever client era it serves, that is an answer like any
/// other (each client era's front sets its own status for it).
fn errors_answered(mut resp: Response) -> Response {
    if let (Status::Refused(400..=499), Body::Full(b)) = (resp.status, &resp.body) {
        if jsonrpc::parse(b).is_ok_and(|m| m.kind == Kind::Response) {
            resp.status = Status::Ok;
        }
    }
    resp
}

/// The backend session of a sessionless backend: its `server/discover` answer, asked with
/// the session's `_meta`.
pub(crate) async fn discover(
    session: &Session,
    pool: &Rc<Pool>,
) -> Result<Capabilities, BackendFailure> {
    let p = prepare(
        session,
        br#"{"jsonrpc":"2.0","id":"ringmux-discover","method":"server/discover"}"#,
        &[],
    )
    .map_err(BackendFailure::Init)?;
    let resp = pool
        .post_sessionless(&p.body, &p.method, None, Instant::now(), None)
        .await?;
    let status = resp.status;
    let message = crate::backend::upstream::final_message(resp.body).await;
    if status != Status::Ok {
        return Err(BackendFailure::Init(format!(
            "server/discover answered {status}"
        )));
    }
    let message = message?;
    let v: serde_json::Value =
        serde_json::from_slice(&message).map_err(|e| BackendFailure::Init(e.to_string()))?;
    let result = v.get("result").ok_or_else(|| {
        BackendFailure::Init(format!("server/discover: {}", v.get("error").unwrap_or(&v)))
    })?;
    let serves = result
        .get("supportedVersions")
        .and_then(|s| s.as_array())
        .is_some_and(|s| s.iter().any(|v| v.as_str() == Some(version::SESSIONLESS)));
    if !serves {
        return Err(BackendFailure::Init(format!(
            "server/discover does not offer {}",
            version::SESSIONLESS
        )));
    }
    pool.keep_instructions(result);
    Ok(result
        .get("capabilities")
        .map(Capabilities::from_json)
        .unwrap_or_default())
}

impl Extras {
    /// Adds or removes a subscription; the listen streams re-open when the set changed.
    pub fn resubscribe(&self, backend: u16, uri: &str, on: bool) {
        let mut subs = self.subscriptions.borrow_mut();
        let at = subs.iter().position(|(b, u)| *b == backend && u == uri);
        let changed = match (at, on) {
            (None, true) => {
                subs.push((backend, uri.to_owned()));
                true
            }
            (Some(i), false) => {
                subs.swap_remove(i);
                true
            }
            _ => false,
        };
        drop(subs);
        if changed {
            self.generation.set(self.generation.get() + 1);
            self.changed.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_encode_only_when_needed() {
        assert_eq!(encode_header_value("get_weather"), "get_weather");
        assert_eq!(encode_header_value("file:///a b.txt"), "file:///a b.txt");
        assert_eq!(encode_header_value("héllo"), "=?base64?aMOpbGxv?=");
        assert_eq!(encode_header_value(" x"), "=?base64?IHg=?=");
        assert_eq!(
            encode_header_value("=?base64?eA==?="),
            "=?base64?PT9iYXNlNjQ/ZUE9PT89?="
        );
    }
}
