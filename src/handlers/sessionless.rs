//! The sessionless era (2026-07-28) spoken to backends, for clients of any era.
//!
//! A sessionless backend keeps no session: ringmux's backend session with it is the
//! `server/discover` answer (its capabilities), and every request carries what a session used
//! to: `params._meta` with the protocol version, the client's capabilities and clientInfo
//! (from the client's `initialize`, or a modern client's own `_meta`) and its log level, with
//! the `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers
//! ([`crate::session::sessionless::send`]).
//!
//! What a stateful client needs translated ([`answer`]):
//! - the era's result members (`resultType`, `ttlMs`, `cacheScope`) are dropped: they are
//!   outside the client's negotiated version;
//! - an `input_required` result becomes real server→client requests on the call's stream;
//!   the answers go back in a retry with `inputResponses` and the echoed `requestState`,
//!   round after round until the result is complete;
//! - the era has no client→server notifications and no `logging/setLevel`,
//!   `resources/subscribe` or GET stream: cancelling is closing the request's connection, the
//!   log level rides in each request's `_meta`, and one `subscriptions/listen` per backend
//!   (opened with the client's GET stream, re-opened when its subscriptions change) carries
//!   list_changed and resources/updated ([`listen`]).
//!
//! A modern client's call to a sessionless backend passes through: the backend's
//! `input_required` and `requestState` are the backend's own and come back in the retry.

use std::borrow::Cow;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use futures_util::future::{join_all, select, Either};
use ringmux_core::era::{self, outcome, Outcome};
use ringmux_core::error::RpcError;
use ringmux_core::jsonrpc::{self, Kind, Raw};
use serde_json::value::RawValue;

use crate::backend::upstream::{Body, EventStream, Pool, Response, Status};
use crate::handlers::answer::with_client_uris;
use crate::handlers::dispatch::{Call, Sink};
use crate::handlers::relay;
use crate::reply::Reply;
use crate::session::sessionless::{is_sessionless, prepare};
use crate::session::streams::GET_STREAM;
use crate::session::{Capabilities, InFlight, Session};
use crate::shard::Shard;

/// Result members of the era a stateful client must not see.
/// Rounds of `input_required` one call may take before ringmux gives up on it.
const MAX_ROUNDS: u32 = 32;
/// Waits before retrying an `input_required` that asked nothing (state only): doubling.
const STATE_ONLY_WAIT: Duration = Duration::from_millis(50);
const STATE_ONLY_WAIT_MAX: Duration = Duration::from_millis(250);
/// Backoff between attempts to (re)open a backend's listen stream.
const LISTEN_BACKOFF: Duration = Duration::from_millis(500);
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Answers, for stateful clients
// ---------------------------------------------------------------------------------------------

/// The final message of a sessionless backend's answer to a stateful client's call, from a
/// JSON body or an SSE stream. Everything else on the stream reaches stream `n`.
/// `Ok(None)`: the client cancelled the call.
async fn final_of(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    pool: &Pool,
    body: Body,
    n: Option<u32>,
    key: u64,
) -> Result<Option<Vec<u8>>, String> {
    let mut events: Box<EventStream> = match body {
        Body::Full(b) => return Ok(Some(b)),
        Body::Events(e) => e,
    };
    loop {
        let next = {
            let next = std::pin::pin!(events.next());
            let cancelled =
                std::pin::pin!(std::future::poll_fn(|cx| session.poll_cancelled(key, cx)));
            match select(next, cancelled).await {
                Either::Left((r, _)) => r,
                Either::Right(_) => return Ok(None),
            }
        };
        match next {
            Ok(Some(ev)) if ev.data.is_empty() => continue,
            Ok(Some(ev)) => {
                if jsonrpc::parse(&ev.data).is_ok_and(|m| m.kind == Kind::Response) {
                    events.finish();
                    return Ok(Some(ev.data));
                }
                if let Some(n) = n {
                    relay::deliver(shard, session, pool.index, &ev.data, n, None, false);
                }
            }
            Ok(None) => return Err("stream ended without a response".into()),
            Err(e) => {
                shard.metrics.backend_errors.add(1);
                pool.record_failure(&e);
                return Err(e.to_string());
            }
        }
    }
}

/// A sessionless backend's answer to a stateful client's call (`request`: the request as
/// sent, names restored to the backend's). A complete answer in JSON goes back as JSON; one
/// that streams, or asks for input, needs the client's stream: the call's own, or for a
/// legacy HTTP+SSE client its one stream.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn answer(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    pool: Rc<Pool>,
    resp: Response,
    request: Vec<u8>,
    call: &Call<'_>,
    id: Raw<'_>,
    inflight: InFlight,
    map_uris: bool,
) -> Reply {
    let key = inflight.key();
    let backend_error =
        |reason: String| crate::handlers::dispatch::backend_error(id, &pool, reason);
    let for_client = |m: Vec<u8>| with_client_uris(shard, &pool, map_uris, era::to_stateful(m));
    let status = resp.status;
    if let Body::Full(b) = &resp.body {
        let parsed = jsonrpc::parse(b).ok();
        let is_response = parsed.as_ref().is_some_and(|m| m.kind == Kind::Response);
        if !is_response {
            return backend_error(format!("answered {status} without a JSON-RPC response"));
        }
        call.outcome.answered(
            parsed
                .as_ref()
                .and_then(|m| m.error)
                .and_then(jsonrpc::error_code),
        );
        if !matches!(
            outcome(parsed.and_then(|m| m.result)),
            Outcome::InputRequired { .. }
        ) {
            let Body::Full(b) = resp.body else {
                unreachable!("matched above")
            };
            // The era answers errors with 4xx statuses; a stateful client reads them in 200s.
            return Reply::Json {
                status: 200,
                body: for_client(b),
                session: None,
            };
        }
    } else if status != Status::Ok {
        return backend_error(format!("answered {status}"));
    }
    let stream = if matches!(call.sink, Sink::Legacy) {
        Some(GET_STREAM)
    } else if matches!(call.sink, Sink::Sse) {
        None
    } else {
        // A client without an event stream for this call: only a plain answer can reach it.
        let message = final_of(shard, session, &pool, resp.body, None, key).await;
        return match message {
            Ok(Some(m)) => match jsonrpc::parse(&m).map(|p| outcome(p.result)) {
                Ok(Outcome::Final) => Reply::Json {
                    status: 200,
                    body: for_client(m),
                    session: None,
                },
                _ => backend_error(
                    "it needs the client's input, and the client accepts no event stream".into(),
                ),
            },
            Ok(None) => Reply::error(Some(id), &RpcError::Cancelled),
            Err(e) => backend_error(e),
        };
    };
    let (n, reply) = match stream {
        Some(n) => (n, Reply::Status(202)),
        None => {
            let (n, rx) = session.streams.open_post();
            (n, Reply::Stream(rx))
        }
    };
    monoio::spawn(drive(
        shard.clone(),
        session.clone(),
        pool,
        resp.body,
        request,
        n,
        id.to_boxed(),
        inflight,
        map_uris,
    ));
    reply
}

/// Drives one call on client stream `n` to its end: relays what streams, turns each
/// `input_required` into requests to the client and retries with the answers.
#[allow(clippy::too_many_arguments)]
async fn drive(
    shard: Rc<Shard>,
    session: Rc<Session>,
    pool: Rc<Pool>,
    mut body: Body,
    request: Vec<u8>,
    n: u32,
    id: Box<RawValue>,
    inflight: InFlight,
    map_uris: bool,
) {
    let key = inflight.key();
    let mut rounds = 0;
    let mut wait = STATE_ONLY_WAIT;
    let outcome: Result<Vec<u8>, Ended> = loop {
        let message = match final_of(&shard, &session, &pool, body, Some(n), key).await {
            Ok(Some(m)) => m,
            Ok(None) => break Err(Ended::Cancelled),
            Err(e) => break Err(Ended::Failed(e)),
        };
        let Ok(parsed) = jsonrpc::parse(&message) else {
            break Err(Ended::Failed(
                "answered with a message that is not JSON-RPC".into(),
            ));
        };
        let (requests, state) = match outcome(parsed.result) {
            Outcome::Final => {
                break Ok(with_client_uris(
                    &shard,
                    &pool,
                    map_uris,
                    era::to_stateful(message),
                ))
            }
            Outcome::InputRequired { requests, state } => (requests, state),
        };
        rounds += 1;
        if rounds > MAX_ROUNDS {
            break Err(Ended::Failed(format!(
                "still asking for input after {MAX_ROUNDS} rounds"
            )));
        }
        let responses = if requests.is_empty() {
            monoio::time::sleep(wait).await;
            wait = (wait * 2).min(STATE_ONLY_WAIT_MAX);
            None
        } else {
            wait = STATE_ONLY_WAIT;
            match ask_client(&shard, &session, &pool, &requests, n, key).await {
                Ok(r) => Some(r),
                Err(Asked::Refused(error)) => {
                    // The client refused: the call ends with its error, as a client of the
                    // era would end it.
                    let mut out = Vec::with_capacity(error.len() + 64);
                    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
                    out.extend_from_slice(id.get().as_bytes());
                    out.extend_from_slice(b",\"error\":");
                    out.extend_from_slice(&error);
                    out.push(b'}');
                    break Ok(out);
                }
                Err(Asked::Cancelled) => break Err(Ended::Cancelled),
                Err(Asked::Failed(e)) => break Err(Ended::Failed(e)),
            }
        };
        let mut extra: Vec<(&str, &RawValue)> = Vec::with_capacity(2);
        if let Some(r) = &responses {
            extra.push(("inputResponses", r));
        }
        if let Some(s) = state {
            extra.push(("requestState", s));
        }
        let retry = match prepare(&session, &request, &extra) {
            Ok(p) => p,
            Err(e) => break Err(Ended::Failed(e)),
        };
        let sent = {
            let sending = std::pin::pin!(pool.post_sessionless(
                &retry.body,
                &retry.method,
                retry.name.as_deref(),
                Instant::now(),
                None
            ));
            let cancelled =
                std::pin::pin!(std::future::poll_fn(|cx| session.poll_cancelled(key, cx)));
            match select(sending, cancelled).await {
                Either::Left((r, _)) => r,
                Either::Right(_) => break Err(Ended::Cancelled),
            }
        };
        shard.metrics.forwarded.add(1);
        match sent {
            Ok(resp) => body = resp.body,
            Err(e) => break Err(Ended::Failed(e.to_string())),
        }
    };
    let failure = match outcome {
        Ok(message) => {
            session.streams.send(n, &message);
            None
        }
        // Cancelled: the client was told when it cancelled.
        Err(Ended::Cancelled) => None,
        Err(Ended::Failed(reason)) => Some(reason),
    };
    relay::end_call(&session, &pool, n, &id, inflight, failure);
}

/// How a driven call ended without an answer for the client.
enum Ended {
    /// The client cancelled it (and was told then).
    Cancelled,
    /// It failed, for this reason.
    Failed(String),
}

enum Asked {
    /// The client answered one request with this error (the `error` member's JSON).
    Refused(Vec<u8>),
    Cancelled,
    Failed(String),
}

/// Puts an `input_required` result's requests to the client on stream `n` and collects the
/// answers as an `inputResponses` object.
async fn ask_client(
    shard: &Shard,
    session: &Session,
    pool: &Pool,
    requests: &[(String, &RawValue)],
    n: u32,
    key: u64,
) -> Result<Box<RawValue>, Asked> {
    #[derive(serde::Deserialize)]
    struct InputRequest<'a> {
        method: Cow<'a, str>,
        #[serde(borrow, default)]
        params: Option<&'a RawValue>,
    }
    let extras = session.extras();
    let mut waiting = Vec::with_capacity(requests.len());
    for (k, req) in requests {
        let Ok(r) = serde_json::from_str::<InputRequest<'_>>(req.get()) else {
            forget_asks(session, &waiting);
            return Err(Asked::Failed(format!(
                "input request {k:?} is not a request"
            )));
        };
        if !super::relay::may_ask(shard, session, pool, &r.method, req.get().as_bytes()) {
            // Never put to the client: the call ends with the refusal.
            forget_asks(session, &waiting);
            let mut error = Vec::with_capacity(160);
            error.extend_from_slice(b"{\"code\":-32601,\"message\":");
            jsonrpc::write_str(
                &mut error,
                &format!(
                    "{} is not available to backend {}: the gateway's policy (client_requests) refuses it",
                    r.method,
                    pool.name()
                ),
            );
            error.push(b'}');
            return Err(Asked::Refused(error));
        }
        let seq = extras.next_ask.get() + 1;
        extras.next_ask.set(seq);
        let ask_id = format!("\"ringmux-ask-{seq}\"");
        let mut msg = Vec::with_capacity(req.get().len() + 64);
        msg.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
        msg.extend_from_slice(ask_id.as_bytes());
        msg.extend_from_slice(b",\"method\":");
        jsonrpc::write_str(&mut msg, &r.method);
        if let Some(p) = r.params {
            msg.extend_from_slice(b",\"params\":");
            msg.extend_from_slice(p.get().as_bytes());
        }
        msg.push(b'}');
        // Its secrets masked, as a stateful backend's request would have them.
        let Some(msg) = super::relay::masked_message(shard, pool, msg) else {
            forget_asks(session, &waiting);
            return Err(Asked::Failed(
                "its request to the client may hold a secret that cannot be masked".into(),
            ));
        };
        let (tx, rx) = oneshot::channel();
        extras.asks.borrow_mut().push((ask_id.clone().into(), tx));
        waiting.push((k.clone(), ask_id, rx));
        if !session.streams.send(n, &msg) {
            forget_asks(session, &waiting);
            return Err(Asked::Failed("the client's stream is gone".into()));
        }
    }
    let ids: Vec<(String, String, ())> = waiting
        .iter()
        .map(|(k, i, _)| (k.clone(), i.clone(), ()))
        .collect();
    let answers = join_all(waiting.into_iter().map(|(_, _, rx)| rx));
    let limit = shard.cfg.modern.request_state_ttl;
    let answers = {
        let answers = std::pin::pin!(monoio::time::timeout(limit, answers));
        let cancelled = std::pin::pin!(std::future::poll_fn(|cx| session.poll_cancelled(key, cx)));
        match select(answers, cancelled).await {
            Either::Left((Ok(a), _)) => a,
            Either::Left((Err(_), _)) => {
                forget_asks(session, &ids);
                return Err(Asked::Failed(
                    "the client did not answer its input requests".into(),
                ));
            }
            Either::Right(_) => {
                forget_asks(session, &ids);
                return Err(Asked::Cancelled);
            }
        }
    };
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    for ((k, _, _), answer) in ids.iter().zip(answers) {
        let Ok(body) = answer else {
            return Err(Asked::Failed("the session ended".into()));
        };
        let Ok(msg) = jsonrpc::parse(&body) else {
            return Err(Asked::Failed("the client's answer is not JSON-RPC".into()));
        };
        match (msg.result, msg.error) {
            (Some(r), _) => {
                if out.len() > 1 {
                    out.push(b',');
                }
                jsonrpc::write_str(&mut out, k);
                out.push(b':');
                out.extend_from_slice(r.get().as_bytes());
            }
            (None, Some(e)) => return Err(Asked::Refused(e.get().as_bytes().to_vec())),
            (None, None) => return Err(Asked::Failed("the client's answer has no result".into())),
        }
    }
    out.push(b'}');
    let text = String::from_utf8(out).map_err(|_| Asked::Failed("not UTF-8".into()))?;
    RawValue::from_string(text).map_err(|e| Asked::Failed(e.to_string()))
}

fn forget_asks<T>(session: &Session, asked: &[(String, String, T)]) {
    let extras = session.extras();
    extras
        .asks
        .borrow_mut()
        .retain(|(id, _)| !asked.iter().any(|(_, a, _)| **a == **id));
}

/// A client's answer to a request ringmux put to it for an `input_required` result: `true`
/// if `id` (JSON text) was one, and the answer went to the call waiting for it.
pub(crate) fn take_answer(session: &Session, id: &str, body: &[u8]) -> bool {
    let Some(extras) = session.extras_if_any() else {
        return false;
    };
    let mut asks = extras.asks.borrow_mut();
    let Some(i) = asks.iter().position(|(a, _)| &**a == id) else {
        return false;
    };
    let (_, tx) = asks.swap_remove(i);
    let _ = tx.send(body.to_vec());
    true
}

// ---------------------------------------------------------------------------------------------
// subscriptions/listen, for stateful clients' GET streams
// ---------------------------------------------------------------------------------------------

/// Holds one `subscriptions/listen` open on backend `b` for the session (its list_changed,
/// and resources/updated of the client's subscriptions to that backend), delivering what
/// arrives on the client's GET stream; re-opens it when the subscriptions change or the stream
/// ends, until the session ends.
pub async fn listen(shard: Rc<Shard>, session: Weak<Session>, b: u16) {
    // As `relay::listen`: the current generation's pool per (re)connection, and message.
    let base = shard.base();
    drop(shard);
    let mut backoff = LISTEN_BACKOFF;
    loop {
        let Some(pool) = base.current().pool_of(b) else {
            return;
        };
        let Some(s) = session.upgrade() else { return };
        if !s.backend_session(b).is_some_and(|(_, v)| is_sessionless(v)) {
            return;
        }
        let extras = s.extras();
        let generation = extras.generation.get();
        let mut request = Vec::with_capacity(256);
        request.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":\"ringmux-listen-");
        request.extend_from_slice(generation.to_string().as_bytes());
        request.extend_from_slice(
            b"\",\"method\":\"subscriptions/listen\",\"params\":{\"notifications\":",
        );
        let uris: Vec<String> = extras
            .subscriptions
            .borrow()
            .iter()
            .filter(|(sb, _)| *sb == b)
            .map(|(_, u)| u.clone())
            .collect();
        let lists = [
            Capabilities::TOOLS,
            Capabilities::PROMPTS,
            Capabilities::RESOURCES,
        ]
        .map(|flag| s.has_capability(b, flag));
        crate::handlers::modern::write_filter(&mut request, lists, &uris);
        request.extend_from_slice(b"}}");
        let prepared = prepare(&s, &request, &[]);
        drop(s);
        let events = match prepared {
            Ok(p) => match pool
                .post_sessionless(&p.body, &p.method, None, Instant::now(), None)
                .await
            {
                Ok(Response {
                    status: Status::Ok,
                    body: Body::Events(e),
                    ..
                }) => Some(e),
                Ok(resp) => {
                    tracing::debug!(backend = %pool.name(), status = %resp.status, "subscriptions/listen refused");
                    None
                }
                Err(e) => {
                    tracing::debug!(backend = %pool.name(), "subscriptions/listen not opened: {e}");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(backend = %pool.name(), "subscriptions/listen not built: {e}");
                return;
            }
        };
        if let Some(mut events) = events {
            events.wait_forever();
            backoff = LISTEN_BACKOFF;
            // Counted open once the backend acknowledged it (its first event).
            let mut open = None;
            loop {
                let next = {
                    let Some(s) = session.upgrade() else { return };
                    let extras = s.extras();
                    let changed = extras
                        .changed
                        .until(|| extras.generation.get() != generation);
                    let next = std::pin::pin!(events.next());
                    let changed = std::pin::pin!(changed);
                    match select(next, changed).await {
                        Either::Left((r, _)) => Some(r),
                        Either::Right(_) => None,
                    }
                };
                let Some(next) = next else {
                    // Subscriptions changed: listen again with the new set at once.
                    backoff = Duration::ZERO;
                    break;
                };
                if matches!(next, Ok(Some(_))) && open.is_none() {
                    open = Some(crate::metrics::OpenStream::new(&base.metrics));
                }
                match next {
                    Ok(Some(ev)) if ev.data.is_empty() => continue,
                    Ok(Some(ev)) => {
                        let Some(s) = session.upgrade() else { return };
                        if let Some(plain) = without_subscription(&ev.data) {
                            relay::deliver(&base.current(), &s, b, &plain, GET_STREAM, None, false);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(backend = %pool.name(), "subscriptions/listen broke: {e}");
                        break;
                    }
                }
            }
        }
        if !backoff.is_zero() {
            monoio::time::sleep(backoff).await;
        }
        backoff = (backoff * 2).clamp(LISTEN_BACKOFF, LISTEN_BACKOFF_MAX);
    }
}

/// A listen stream's notification as a stateful client hears it (no subscription id); `None`
/// for what it need not hear (the acknowledgement, the stream's own result).
fn without_subscription(data: &[u8]) -> Option<Vec<u8>> {
    let msg = jsonrpc::parse(data).ok()?;
    if msg.kind != Kind::Notification {
        return None;
    }
    let mut out = Vec::with_capacity(data.len());
    match &*msg.method {
        "notifications/tools/list_changed"
        | "notifications/prompts/list_changed"
        | "notifications/resources/list_changed" => {
            out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":");
            jsonrpc::write_str(&mut out, &msg.method);
            out.push(b'}');
        }
        "notifications/resources/updated" => {
            let uri = msg.params.uri?;
            out.extend_from_slice(
                b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/updated\",\"params\":{\"uri\":",
            );
            out.extend_from_slice(uri.get().as_bytes());
            out.extend_from_slice(b"}}");
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_notifications_lose_the_subscription_id() {
        let n = br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":"l"}}}"#;
        assert_eq!(
            without_subscription(n).unwrap(),
            br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#.to_vec()
        );
        let u = br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"mock://a","_meta":{}}}"#;
        assert_eq!(
            without_subscription(u).unwrap(),
            br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"mock://a"}}"#.to_vec()
        );
        let ack =
            br#"{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{}}"#;
        assert!(without_subscription(ack).is_none());
    }
}
