//! A backend's request in the middle of a 2026-07-28 client's call (sampling, elicitation,
//! roots) cannot reach the client, which has no stream outside its call: the call is parked
//! on this shard and the client gets an `input_required` result whose sealed `requestState`
//! ([`ringmux_core::seal`]) names the parked call; the client's retry answers the backend and
//! the call resumes ([`resume`]). Also the relay of a backend's streamed answer to such a call
//! ([`relay_call`]), which is where a backend's request turns into `input_required`.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures_channel::mpsc::{self, UnboundedSender};
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use ringmux_core::jsonrpc::{self, raw_str, Kind, Message, Raw};
use ringmux_core::modern::EnvelopeParams;
use ringmux_core::seal::{open, seal, Claims};
use serde_json::value::RawValue;

use super::dispatch;
use super::modern::{call, code, complete, Ctx};
use super::relay;
use crate::backend::upstream::{EventStream, Pool};
use crate::reply::Reply;
use crate::session::principal::{event, Ask, Feed, Parked, State};
use crate::session::{InFlight, Session};
use crate::shard::Shard;

/// Where the messages of a modern call go: an SSE stream, or only the final message (a JSON
/// answer; notifications dropped).
enum CallOut {
    Sse(UnboundedSender<Vec<u8>>),
    Json,
}

impl CallOut {
    fn notify(&self, data: &[u8]) {
        if let CallOut::Sse(tx) = self {
            let _ = tx.unbounded_send(event(data));
        }
    }
}

/// Relays a backend's streamed answer to a modern call: notifications as they come (SSE), the
/// answer completed for the era, or an `input_required` result when the backend asks the
/// client something.
pub async fn relay_call(
    shard: Rc<Shard>,
    session: Rc<Session>,
    pool: Rc<Pool>,
    events: Box<EventStream>,
    sse: bool,
    inflight: InFlight,
    ctx: Ctx,
) -> Reply {
    relay_feed(shard, session, pool, Feed::new(events), sse, inflight, ctx).await
}

pub(crate) async fn relay_feed(
    shard: Rc<Shard>,
    session: Rc<Session>,
    pool: Rc<Pool>,
    events: Feed,
    sse: bool,
    inflight: InFlight,
    ctx: Ctx,
) -> Reply {
    if !sse {
        let (body, status) = pump(
            &shard,
            &session,
            pool,
            events,
            inflight,
            &ctx,
            &CallOut::Json,
        )
        .await;
        return Reply::Json {
            status,
            body,
            session: None,
        };
    }
    let (tx, rx) = mpsc::unbounded();
    monoio::spawn(async move {
        let sink = CallOut::Sse(tx);
        let (body, _) = pump(&shard, &session, pool, events, inflight, &ctx, &sink).await;
        if let CallOut::Sse(tx) = sink {
            let _ = tx.unbounded_send(event(&body));
        }
    });
    Reply::Stream(rx)
}

/// Reads a backend call's events until its answer or a request for the client. Returns the
/// message to end the client's answer with, and its status.
async fn pump(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    pool: Rc<Pool>,
    mut feed: Feed,
    inflight: InFlight,
    ctx: &Ctx,
    sink: &CallOut,
) -> (Vec<u8>, u16) {
    let b = pool.index;
    let state = session.modern.get().expect("a principal session");
    let timeout = pool.cfg.request_timeout;
    // However lively the stream (progress), the answer comes by the backend's deadline: the
    // pump's own, since the feed waits without one while a call is parked on the client.
    let deadline = std::time::Instant::now() + pool.cfg.request_deadline;
    let past_deadline = || {
        crate::backend::upstream::UpstreamError::Deadline(
            pool.cfg.request_deadline.as_millis() as u64
        )
        .to_string()
    };
    let failed = |reason: String| {
        let mut out = Vec::with_capacity(128);
        jsonrpc::write_error_parts(
            &mut out,
            Some(Raw::from(&*ctx.client_id)),
            -32603,
            &format!("backend {}: {reason}", pool.name()),
            None,
        );
        (out, 200)
    };
    loop {
        let wait = deadline
            .saturating_duration_since(std::time::Instant::now())
            .min(timeout);
        if wait.is_zero() {
            return failed(past_deadline());
        }
        let next = {
            let next = std::pin::pin!(monoio::time::timeout(wait, feed.rx.next()));
            let held = std::pin::pin!(state.held_waiting());
            match select(next, held).await {
                Either::Left((next, _)) => next,
                Either::Right(((), _)) => {
                    // A backend asked something outside any call while this one runs (the
                    // call may well wait for it): this call's answer puts it to the client.
                    let asks = held_asks(shard, session, state, ctx).await;
                    if asks.is_empty() {
                        continue;
                    }
                    return park(shard, session, asks, Some((pool, feed, inflight)), ctx);
                }
            }
        };
        let data = match next {
            Ok(Some(Ok(Some(ev)))) if ev.data.is_empty() => continue,
            Ok(Some(Ok(Some(ev)))) => ev.data,
            Ok(Some(Ok(None)) | None) => return failed("stream ended without a response".into()),
            Ok(Some(Err(e))) => {
                shard.metrics.backend_errors.add(1);
                pool.record_failure(&e);
                return failed(e.to_string());
            }
            Err(_) if std::time::Instant::now() >= deadline => return failed(past_deadline()),
            Err(_) => {
                shard.metrics.backend_errors.add(1);
                return failed(crate::backend::upstream::UpstreamError::Timeout.to_string());
            }
        };
        // Requests and notifications have their secrets masked here, as on a stateful
        // client's stream (`relay::deliver`); the answer is masked with its URIs mapped.
        let data = match relay::masked_message(shard, &pool, data) {
            Some(d) => d,
            None => continue,
        };
        let Ok(msg) = jsonrpc::parse(&data) else {
            tracing::warn!(backend = %pool.name(), "backend sent a message that is not JSON-RPC; dropped");
            continue;
        };
        match msg.kind {
            Kind::Response => {
                let map = pool.cfg.prefixed && ctx.entry.uris_in_result;
                let data = super::answer::with_client_uris(shard, &pool, map, data);
                return complete(&data, ctx);
            }
            Kind::Request if msg.method == "ping" => {
                answer_backend(shard, session, &pool, msg.id, Ok("{}")).await;
            }
            Kind::Request => {
                let Some(asked_id) = msg.id else { continue };
                if !relay::may_ask(shard, session, &pool, &msg.method, &data) {
                    relay::refuse_request(shard, session, &pool, asked_id, &msg.method).await;
                    continue;
                }
                if let Some(needed) = missing_capability(&msg.method, &data, &ctx.capabilities) {
                    answer_backend(
                        shard,
                        session,
                        &pool,
                        Some(asked_id),
                        Err("the client did not declare the capability this request needs"),
                    )
                    .await;
                    let mut out = Vec::with_capacity(160);
                    jsonrpc::write_error_parts(
                        &mut out,
                        Some(Raw::from(&*ctx.client_id)),
                        code::MISSING_CAPABILITY,
                        &format!("backend {} asked the client for {}, and the client did not declare that capability", pool.name(), msg.method),
                        Some(&format!("{{\"requiredCapabilities\":{needed}}}")),
                    );
                    return (out, 400);
                }
                if msg.method == "roots/list" {
                    session.asked_for_roots(b);
                }
                let Some(ask) = Ask::new(&pool, &msg, &data) else {
                    continue;
                };
                return park(shard, session, vec![ask], Some((pool, feed, inflight)), ctx);
            }
            Kind::Notification => match &*msg.method {
                "notifications/message" => {
                    let rank = relay::log_level_of(&data);
                    if ctx
                        .log_rank
                        .is_some_and(|min| rank.is_none_or(|r| r >= min))
                    {
                        sink.notify(&data);
                    }
                }
                m if m.ends_with("/list_changed") || m == "notifications/resources/updated" => {
                    relay::deliver(
                        shard,
                        session,
                        b,
                        &data,
                        crate::session::streams::GET_STREAM,
                        None,
                        false,
                    );
                }
                _ => sink.notify(&data),
            },
        }
    }
}

/// The capability object a backend's request (`data`, method `method`) needs and the client
/// did not declare, if any.
pub(crate) fn missing_capability(
    method: &str,
    data: &[u8],
    caps: &serde_json::Value,
) -> Option<&'static str> {
    #[derive(serde::Deserialize)]
    struct Env {
        #[serde(default)]
        params: Option<ElicitParams>,
    }
    #[derive(serde::Deserialize)]
    struct ElicitParams {
        #[serde(default)]
        mode: Option<String>,
    }
    match method {
        "sampling/createMessage" => caps
            .get("sampling")
            .is_none()
            .then_some("{\"sampling\":{}}"),
        "roots/list" => caps.get("roots").is_none().then_some("{\"roots\":{}}"),
        "elicitation/create" => {
            let url = serde_json::from_slice::<Env>(data)
                .ok()
                .and_then(|e| e.params?.mode)
                .is_some_and(|m| m == "url");
            let declared = caps.get("elicitation");
            // `elicitation: {}` declares form mode (what it meant before modes existed).
            let form_ok = declared.is_some_and(|e| {
                e.get("form").is_some() || e.as_object().is_some_and(|o| o.is_empty())
            });
            let url_ok = declared.is_some_and(|e| e.get("url").is_some());
            match (url, form_ok, url_ok) {
                (true, _, false) => Some("{\"elicitation\":{\"url\":{}}}"),
                (false, false, _) => Some("{\"elicitation\":{\"form\":{}}}"),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Sends a backend the answer to its request `id`: a result, or an error with a message.
pub(crate) async fn answer_backend(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    pool: &Rc<Pool>,
    id: Option<Raw<'_>>,
    answer: Result<&str, &str>,
) {
    let Some(id) = id else { return };
    let mut body = Vec::with_capacity(96);
    match answer {
        Ok(result) => jsonrpc::write_result(&mut body, id, result.as_bytes()),
        Err(message) => jsonrpc::write_error_parts(&mut body, Some(id), -32603, message, None),
    }
    dispatch::send_one_way(
        shard,
        session,
        pool,
        &body,
        "answer to the backend's request",
    )
    .await;
}

/// Parks backend requests (and the call that made them, if one did) and writes the
/// `input_required` result that puts them to the client.
pub(crate) fn park(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    asks: Vec<Ask>,
    call: Option<(Rc<Pool>, Feed, InFlight)>,
    ctx: &Ctx,
) -> (Vec<u8>, u16) {
    let state = session.modern.get().expect("a principal session");
    let n = state.next();
    let ttl = shard.cfg.modern.request_state_ttl;
    shard.metrics.input_required.add(1);
    let sealed = seal(
        shard
            .cfg
            .modern
            .request_state_key
            .as_ref()
            .expect("a key at start"),
        &Claims {
            shard: shard.id as u16,
            park: n,
            expires_ms: unix_ms() + ttl.as_millis() as u64,
            principal: xxhash_rust::xxh3::xxh3_64(session.id.as_bytes()),
            binding: ctx.binding,
        },
        nonce(),
    );
    let mut result = Vec::with_capacity(256);
    result.extend_from_slice(b"{\"resultType\":\"input_required\",\"inputRequests\":{");
    for (i, ask) in asks.iter().enumerate() {
        if i > 0 {
            result.push(b',');
        }
        jsonrpc::write_str(&mut result, &ask.key);
        result.push(b':');
        result.extend_from_slice(&ask.request);
    }
    result.extend_from_slice(b"},\"requestState\":");
    jsonrpc::write_str(&mut result, &sealed);
    result.push(b'}');
    state.parked.borrow_mut().insert(
        n,
        Parked {
            asks,
            call,
            expires: Instant::now() + ttl,
        },
    );
    let mut out = Vec::with_capacity(result.len() + 48);
    jsonrpc::write_result(&mut out, Raw::from(&*ctx.client_id), &result);
    (out, 200)
}

/// The requests backends sent outside any call that the client can answer (the others are
/// refused to their backend at once), as asks for a call about to be made.
pub(crate) async fn held_asks(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    state: &State,
    ctx: &Ctx,
) -> Vec<Ask> {
    let held = std::mem::take(&mut *state.held.borrow_mut());
    let mut asks = Vec::with_capacity(held.len());
    for (b, data) in held {
        let pool = &shard.pool_any(b);
        let Ok(msg) = jsonrpc::parse(&data) else {
            continue;
        };
        if msg.method == "ping" {
            answer_backend(shard, session, pool, msg.id, Ok("{}")).await;
            continue;
        }
        if msg.method == "roots/list" {
            session.asked_for_roots(b);
        }
        if missing_capability(&msg.method, &data, &ctx.capabilities).is_some() {
            answer_backend(
                shard,
                session,
                pool,
                msg.id,
                Err("the client did not declare the capability this request needs"),
            )
            .await;
            continue;
        }
        asks.extend(Ask::new(pool, &msg, &data));
    }
    asks
}

/// A client's retry of a call that returned `input_required`: the state is opened and checked,
/// the backend gets the client's answers, and the parked call goes on.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn resume(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    env: &EnvelopeParams<'_>,
    msg: &Message<'_>,
    body: &[u8],
    ctx: Ctx,
    sse: bool,
    outcome: &crate::observe::Outcome,
) -> Reply {
    let id = msg.id.expect("requests have ids");
    let invalid = || {
        let mut body = Vec::with_capacity(160);
        jsonrpc::write_error_parts(
            &mut body,
            Some(id),
            -32602,
            "Invalid or expired requestState",
            Some("{\"reason\":\"invalid_request_state\"}"),
        );
        Reply::Json {
            status: 400,
            body,
            session: None,
        }
    };
    let key = shard
        .cfg
        .modern
        .request_state_key
        .as_ref()
        .expect("a key at start");
    let claims = env
        .request_state
        .map(Raw::from)
        .and_then(raw_str)
        .and_then(|s| open(key, &s));
    let Some(claims) = claims else {
        return invalid();
    };
    if claims.shard as usize != shard.id
        || claims.principal != xxhash_rust::xxh3::xxh3_64(session.id.as_bytes())
        || claims.binding != ctx.binding
        || !claims.valid_at(unix_ms())
    {
        return invalid();
    }
    let state = session.modern.get().expect("a principal session");
    let Some(parked) = state.parked.borrow_mut().remove(&claims.park) else {
        return invalid();
    };
    let responses: HashMap<String, &RawValue> = env
        .input_responses
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or_default();
    for ask in &parked.asks {
        let answer = match responses.get(&ask.key) {
            Some(r) => Ok(r.get()),
            None => Err("the client gave no answer to this request"),
        };
        let pool = &shard.pool_any(ask.backend);
        answer_backend(shard, session, pool, Some(Raw::from(&*ask.id)), answer).await;
    }
    match parked.call {
        Some((pool, feed, inflight)) => {
            relay_feed(
                shard.clone(),
                session.clone(),
                pool,
                feed,
                sse,
                inflight,
                ctx,
            )
            .await
        }
        // The asks came before this call: now it goes to its backend.
        None => call(shard, session, body, msg, ctx, sse, outcome).await,
    }
}

// ---------------------------------------------------------------------------------------------
// requestState
// ---------------------------------------------------------------------------------------------

/// The wall clock in Unix milliseconds (sealed states carry their expiry in it, so replicas
/// sharing a key agree).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A fresh nonce from the OS random source.
pub(crate) fn nonce() -> [u8; 24] {
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).expect("the OS random source works");
    nonce
}
