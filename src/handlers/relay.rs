//! Backend → client traffic: what a backend sends on a call's SSE answer or on its own GET
//! stream reaches the client's matching stream ([`crate::session::streams`]), adjusted on the way:
//! - requests (sampling, elicitation, roots, ping) get ids unique on the client's side that
//!   name the backend (`"r<backend>:<original id>"`); the client's answer is routed back with
//!   the original id ([`unmap_response_id`]);
//! - `notifications/*/list_changed` drop that backend's cached list and are told to the
//!   client once until it lists again;
//! - `notifications/message` below the client's `logging/setLevel` are dropped;
//! - `notifications/resources/updated` carry the URI as the client knows it (mapped for a
//!   prefixed backend); `notifications/cancelled` the remapped id of the backend's request.
//!
//! A backend POST stream that ends before its answer (SEP-1699 polling) is resumed from the
//! backend with `Last-Event-ID` while the client's stream stays open.

use std::rc::{Rc, Weak};
use std::time::Duration;

use futures_util::future::{select, Either};
use ringmux_core::catalog::ListKind;
use ringmux_core::config::BackendId;
use ringmux_core::error::RpcError;
use ringmux_core::jsonrpc::{self, raw_str, span_of, Kind, Raw};
use ringmux_core::method;
use ringmux_core::names;
use ringmux_core::uris;
use serde_json::value::RawValue;

use super::answer::{mask_for_client, ForClient};
use crate::backend::upstream::{Body, EventStream, Pool, Response, Status};
use crate::session::streams::GET_STREAM;
use crate::session::{InFlight, Session};
use crate::shard::Shard;

/// Times a backend stream that ends before its answer is resumed.
const MAX_RESUMES: u32 = 16;
/// Longest wait before resuming a backend stream, whatever its `retry` says.
const MAX_RETRY: Duration = Duration::from_secs(5);
/// Backoff between attempts to (re)open a backend's GET stream.
const LISTEN_BACKOFF: Duration = Duration::from_millis(500);
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Bits of [`Session::announce`] per list kind.
pub fn list_bit(kind: ListKind) -> u8 {
    match kind {
        ListKind::Tools => 1,
        ListKind::Prompts => 2,
        ListKind::Resources | ListKind::ResourceTemplates => 4,
    }
}

/// What a backend message turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Sent to the client (or dropped by design: filtered, already told).
    Passed,
    /// The answer to the call the stream belongs to.
    Answer,
    /// Not JSON-RPC: dropped.
    Garbage,
}

/// Whether backend `pool` may send this session's client the request `method` (`data`: the
/// whole message), by its `client_requests`. A refusal is counted and audited; the caller
/// answers the backend ([`refuse_request`]) and the client never sees the request.
pub(crate) fn may_ask(
    shard: &Shard,
    session: &Session,
    pool: &Pool,
    method: &str,
    data: &[u8],
) -> bool {
    if pool.cfg.may_ask(method, data) {
        return true;
    }
    shard.metrics.client_requests_refused.add(1);
    tracing::info!(backend = %pool.name(), session = %session.id, method, "backend request to the client refused by its client_requests");
    if let Some(audit) = &shard.audit {
        let principal = session.principal.id();
        audit.record(&crate::audit::Record {
            session: Some(&session.id),
            ..crate::audit::Record::new("client_request", false, &principal, method, pool.name())
        });
    }
    false
}

/// Answers a backend's request to a client that [`may_ask`] refused: -32601, naming the policy.
pub(crate) async fn refuse_request(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    pool: &Rc<Pool>,
    id: Raw<'_>,
    method: &str,
) {
    let mut body = Vec::with_capacity(160);
    jsonrpc::write_error_parts(
        &mut body,
        Some(id),
        ringmux_core::error::code::METHOD_NOT_FOUND,
        &format!(
            "{method} is not available to backend {}: the gateway's policy (client_requests) refuses it",
            pool.name()
        ),
        None,
    );
    super::dispatch::send_one_way(
        shard,
        session,
        pool,
        &body,
        "refusal of the backend's request",
    )
    .await;
}

/// A backend's message other than an answer with its secrets masked (`masking:`): the message
/// as it is when there is nothing to mask (or it is an answer, masked where answers are);
/// `None` when it may hold a secret that cannot be masked (then it is dropped).
pub(crate) fn masked_message(shard: &Shard, pool: &Pool, data: Vec<u8>) -> Option<Vec<u8>> {
    if shard.masker.is_none() || jsonrpc::parse(&data).is_ok_and(|msg| msg.kind == Kind::Response) {
        return Some(data);
    }
    match mask_for_client(shard, pool, &data) {
        ForClient::AsIs => Some(data),
        ForClient::Masked(body) => Some(body),
        ForClient::Withheld => None,
    }
}

/// Delivers one message from backend `b` on client stream `stream`. `answers`: the id of the
/// call whose answer the stream carries; a response with another id (or on a backend's GET
/// stream, which carries no answers) is dropped.
pub fn deliver(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    b: u16,
    data: &[u8],
    stream: u32,
    answers: Option<&RawValue>,
    map_uris: bool,
) -> Delivered {
    let pool = &shard.pool_any(b);
    let mut msg = match jsonrpc::parse(data) {
        Ok(m) => m,
        Err(_) => {
            tracing::warn!(backend = %pool.name(), "backend sent a message that is not JSON-RPC; dropped");
            return Delivered::Garbage;
        }
    };
    // A backend's requests and notifications (sampling messages, log lines, progress) have
    // their secrets masked as answers do (the answer itself is masked below); one that cannot
    // be masked is dropped.
    let masked_copy;
    let mut data = data;
    if msg.kind != Kind::Response {
        match mask_for_client(shard, pool, data) {
            ForClient::AsIs => {}
            ForClient::Masked(body) => {
                masked_copy = body;
                data = &masked_copy;
                msg = match jsonrpc::parse(data) {
                    Ok(m) => m,
                    Err(_) => return Delivered::Garbage,
                };
            }
            ForClient::Withheld => return Delivered::Passed,
        }
    }
    match msg.kind {
        Kind::Response => {
            let Some(call) = answers else {
                tracing::debug!(backend = %pool.name(), "response on a GET stream; dropped");
                return Delivered::Passed;
            };
            if !msg.id.is_some_and(|got| got.same_id(Raw::from(call))) {
                tracing::warn!(backend = %pool.name(), "backend answered another request on a call's stream; dropped");
                return Delivered::Garbage;
            }
            let mapped = map_uris
                .then(|| uris::map_answer(data, pool.name()))
                .flatten();
            let answer = mapped.as_deref().unwrap_or(data);
            match super::answer::masked(shard, pool, answer) {
                Some(m) => session.streams.send(stream, &m),
                None => session.streams.send(stream, answer),
            };
            Delivered::Answer
        }
        Kind::Request => {
            if !may_ask(shard, session, pool, &msg.method, data) {
                if let Some(id) = msg.id {
                    let (shard, session, pool) = (shard.clone(), session.clone(), pool.clone());
                    let id = id.to_boxed();
                    let method: Box<str> = (*msg.method).into();
                    monoio::spawn(async move {
                        refuse_request(&shard, &session, &pool, (&*id).into(), &method).await;
                    });
                }
                return Delivered::Passed;
            }
            if let Some(state) = session.modern.get() {
                // A sessionless client has no stream outside its calls: asked at its next one.
                state.hold(b, data);
                return Delivered::Passed;
            }
            if msg.method == "roots/list" {
                session.asked_for_roots(b);
            }
            let mut out = crate::bufs::take_with(data.len() + 16);
            if let Some(id) = msg.id {
                remap_id(&mut out, data, id, pool.cfg.id);
                session.streams.send(stream, &out);
            }
            crate::bufs::give(out);
            Delivered::Passed
        }
        Kind::Notification => {
            let method = &*msg.method;
            if let Some(state) = session.modern.get() {
                // A 2026-07-28 client hears of changes on its subscriptions/listen streams.
                if let Some(kind) = method::changed_list(method) {
                    invalidate(shard, b, kind);
                    state.publish(method, list_bit(kind), None);
                } else if method == "notifications/resources/updated" {
                    if let Some(uri) = msg.params.uri.and_then(raw_str) {
                        let uri = client_uri(shard, pool, &uri);
                        state.publish(method, 0, Some(&uri));
                    }
                } else {
                    tracing::debug!(backend = %pool.name(), method, "notification outside a call for a sessionless client; dropped");
                }
                return Delivered::Passed;
            }
            if let Some(kind) = method::changed_list(method) {
                invalidate(shard, b, kind);
                if !session.announce(list_bit(kind)) {
                    return Delivered::Passed;
                }
            }
            match method {
                "notifications/message" => {
                    if let Some(rank) = log_level_of(data) {
                        if !session.wants_log(rank) {
                            return Delivered::Passed;
                        }
                    }
                }
                "notifications/resources/updated" if pool.cfg.prefixed => {
                    if let Some(uri) = msg.params.uri {
                        let mut lit = Vec::with_capacity(uri.get().len() + 32);
                        names::write_prefixed_literal(
                            &mut lit,
                            true,
                            pool.name(),
                            &shard.cfg.separator,
                            uri.get().as_bytes(),
                        );
                        let mut out = Vec::with_capacity(data.len() + 32);
                        jsonrpc::splice(&mut out, data, span_of(data, uri), &lit);
                        session.streams.send(stream, &out);
                        return Delivered::Passed;
                    }
                }
                "notifications/cancelled" => {
                    // The backend gives up a request it sent the client: name it as the
                    // client knows it.
                    if let Some(id) = msg.params.request_id {
                        let mut out = Vec::with_capacity(data.len() + 16);
                        remap_id(&mut out, data, id, pool.cfg.id);
                        session.streams.send(stream, &out);
                        return Delivered::Passed;
                    }
                }
                _ => {}
            }
            session.streams.send(stream, data);
            Delivered::Passed
        }
    }
}

/// A backend's resource URI as clients know it (prefixed for a prefixed backend).
fn client_uri(shard: &Shard, pool: &Pool, uri: &str) -> String {
    if !pool.cfg.prefixed {
        return uri.to_owned();
    }
    let mut raw = Vec::with_capacity(uri.len() + 2);
    jsonrpc::write_str(&mut raw, uri);
    let mut lit = Vec::with_capacity(uri.len() + 32);
    names::write_prefixed_literal(&mut lit, true, pool.name(), &shard.cfg.separator, &raw);
    serde_json::from_slice(&lit).unwrap_or_else(|_| uri.to_owned())
}

/// Drops backend `b`'s cached list of `kind` (resources take their templates along).
pub fn invalidate(shard: &Shard, b: u16, kind: ListKind) {
    let kinds: &[ListKind] = match kind {
        ListKind::Resources | ListKind::ResourceTemplates => {
            &[ListKind::Resources, ListKind::ResourceTemplates]
        }
        ListKind::Tools => &[ListKind::Tools],
        ListKind::Prompts => &[ListKind::Prompts],
    };
    tracing::debug!(backend = %shard.pools[b as usize].name(), list = kind.method(), "catalog invalidated");
    shard.invalidate(b, kinds);
}

#[derive(serde::Deserialize)]
struct LogEnvelope<'a> {
    #[serde(borrow)]
    params: LogParams<'a>,
}

#[derive(serde::Deserialize)]
struct LogParams<'a> {
    #[serde(borrow)]
    level: &'a str,
}

/// The rank of `params.level` in a `notifications/message` or `logging/setLevel` body.
pub fn log_level_of(data: &[u8]) -> Option<u8> {
    let env: LogEnvelope<'_> = serde_json::from_slice(data).ok()?;
    jsonrpc::log_rank(env.params.level)
}

/// Prefix of ids ringmux gives server-to-client requests: `r<backend id>:<original id JSON>`,
/// the backend named by its stable id ([`BackendId`]), so an answer still finds its backend
/// after the backend list changed.
const REMAP_PREFIX: char = 'r';

/// Writes `data` with the id value `id` (a part of it) replaced by the remapped id.
fn remap_id(out: &mut Vec<u8>, data: &[u8], id: Raw<'_>, backend: BackendId) {
    let mut lit = Vec::with_capacity(id.get().len() + 16);
    jsonrpc::write_str(&mut lit, &format!("{REMAP_PREFIX}{backend}:{}", id.get()));
    jsonrpc::splice(out, data, span_of(data, id), &lit);
}

/// The backend and original id literal of a remapped id, if `id` is one of ours.
pub fn unmap_response_id(id: Raw<'_>) -> Option<(BackendId, String)> {
    let s = raw_str(id)?;
    let rest = s.strip_prefix(REMAP_PREFIX)?;
    let (b, original) = rest.split_once(':')?;
    Some((BackendId::parse(b)?, original.to_owned()))
}

/// Relays a backend's SSE answer to the call on client stream `n`, event by event, until the
/// answer. Ends early if the client cancels the call (`key` in the session's in-flight table).
#[allow(clippy::too_many_arguments)]
pub async fn relay_post(
    shard: Rc<Shard>,
    session: Rc<Session>,
    pool: Rc<Pool>,
    mut events: Box<EventStream>,
    n: u32,
    id: Box<RawValue>,
    inflight: InFlight,
    map_uris: bool,
) {
    let b = pool.index;
    let key = inflight.key();
    let mut last_id: Option<String> = None;
    let mut retry = Duration::from_millis(500);
    let mut resumes = 0;
    let outcome = 'relay: loop {
        let next = {
            let next = std::pin::pin!(events.next());
            let cancelled = std::pin::pin!(std::future::poll_fn(|cx| {
                session.poll_cancelled(key, cx)
            }));
            match select(next, cancelled).await {
                Either::Left((r, _)) => r,
                Either::Right(_) => break 'relay Ok(()),
            }
        };
        let ev = match next {
            Ok(Some(ev)) => ev,
            Ok(None) => {
                // The backend closed its stream before the answer (SEP-1699): resume from
                // its last event id, if it gave one.
                let Some(from) = last_id.as_deref().filter(|_| resumes < MAX_RESUMES) else {
                    break Err("stream ended without a response".to_string());
                };
                resumes += 1;
                monoio::time::sleep(retry.min(MAX_RETRY)).await;
                let Some((sid, ver)) = session.backend_session(b) else {
                    break Err("backend session ended".into());
                };
                match pool.open_stream(sid.as_deref(), ver, Some(from)).await {
                    Ok(resp) if resp.status == Status::Ok => match resp.body {
                        Body::Events(mut e) => {
                            e.resumes(&events);
                            events = e;
                            continue;
                        }
                        Body::Full(_) => break Err("resumed stream is not SSE".into()),
                    },
                    Ok(resp) => break Err(format!("resuming answered {}", resp.status)),
                    Err(e) => break Err(format!("resuming failed: {e}")),
                }
            }
            Err(e) => {
                shard.metrics.backend_errors.add(1);
                pool.record_failure(&e);
                break Err(e.to_string());
            }
        };
        if ev.id.is_some() {
            last_id = ev.id;
        }
        if let Some(ms) = ev.retry {
            retry = Duration::from_millis(ms);
        }
        if ev.data.is_empty() {
            continue;
        }
        if deliver(&shard, &session, b, &ev.data, n, Some(&id), map_uris) == Delivered::Answer {
            events.finish();
            break Ok(());
        }
    };
    end_call(&session, &pool, n, &id, inflight, outcome.err());
}

/// A call relayed on client stream `n` is over: the backend's failure (if it failed) goes to
/// the client as the call's error, the call leaves the in-flight table, and its own stream
/// closes (a legacy client's one stream stays).
pub(crate) fn end_call(
    session: &Session,
    pool: &Pool,
    n: u32,
    id: &RawValue,
    inflight: InFlight,
    failure: Option<String>,
) {
    if let Some(reason) = failure {
        let mut body = Vec::new();
        jsonrpc::write_error(
            &mut body,
            Some(Raw::from(id)),
            &RpcError::Backend {
                backend: pool.name().to_owned(),
                reason,
            },
        );
        session.streams.send(n, &body);
    }
    drop(inflight);
    if n != GET_STREAM {
        session.streams.close(n);
    }
}

/// Backend `b` joined the session after its client was answered (it was down or slow then):
/// the client hears that the lists it serves changed, as if the backend had said so.
pub fn announce_joined(shard: &Rc<Shard>, session: &Rc<Session>, b: u16) {
    announce(shard, session, b, session.capabilities(b).bits());
}

/// A reload changed what `session`'s lists may hold: its client hears of each kind in
/// `flags` ([`crate::session::Capabilities`] bits), as if a backend had said so.
pub fn announce_lists(shard: &Rc<Shard>, session: &Rc<Session>, flags: u8) {
    // Told as from a live backend (masking and the client's announced kinds are per
    // message, not per backend); none live: nothing to list, nothing to tell.
    if let Some(pool) = shard.pools.iter().find(|p| !p.cfg.retired) {
        announce(shard, session, pool.index, flags);
    }
}

fn announce(shard: &Rc<Shard>, session: &Rc<Session>, b: u16, flags: u8) {
    use crate::session::Capabilities as C;
    for (flag, method) in [
        (C::TOOLS, "notifications/tools/list_changed"),
        (C::PROMPTS, "notifications/prompts/list_changed"),
        (C::RESOURCES, "notifications/resources/list_changed"),
    ] {
        if flags & flag != 0 {
            let mut note = Vec::with_capacity(64);
            note.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":");
            jsonrpc::write_str(&mut note, method);
            note.push(b'}');
            deliver(shard, session, b, &note, GET_STREAM, None, false);
        }
    }
}

/// Holds backend `b`'s GET stream open for the session and delivers what arrives on the
/// client's GET stream; reconnects (resuming after the last event id) until the session ends.
/// A backend without a GET stream (405) or without sessions is left alone.
pub async fn listen(shard: Rc<Shard>, session: Weak<Session>, b: u16) {
    if session.upgrade().is_some_and(|s| s.is_sessionless(b)) {
        return crate::handlers::sessionless::listen(shard, session, b).await;
    }
    // Held: what every config generation shares. Each (re)connection goes through the
    // backend's current pool, and each message is delivered in the current generation
    // ([`crate::reload`]); a removed backend's stream stops.
    let base = shard.base();
    drop(shard);
    let mut last_id: Option<String> = None;
    let mut backoff = LISTEN_BACKOFF;
    loop {
        let Some(pool) = base.current().pool_of(b) else {
            return;
        };
        let Some((sid, ver)) = session.upgrade().and_then(|s| s.backend_session(b)) else {
            return;
        };
        if sid.is_none() {
            return;
        }
        let events = match pool
            .open_stream(sid.as_deref(), ver, last_id.as_deref())
            .await
        {
            Ok(resp) if resp.status == Status::NoStream => {
                tracing::debug!(backend = %pool.name(), "backend has no GET stream");
                return;
            }
            Ok(Response {
                status: Status::Ok,
                body: Body::Events(e),
                ..
            }) => Some(e),
            Ok(resp) => {
                tracing::debug!(backend = %pool.name(), status = %resp.status, "GET stream refused");
                None
            }
            Err(e) => {
                tracing::debug!(backend = %pool.name(), "GET stream not opened: {e}");
                None
            }
        };
        if let Some(mut events) = events {
            events.wait_forever();
            backoff = LISTEN_BACKOFF;
            let _open = crate::metrics::OpenStream::new(&base.metrics);
            loop {
                match events.next().await {
                    Ok(Some(ev)) => {
                        if ev.id.is_some() {
                            last_id = ev.id;
                        }
                        if ev.data.is_empty() {
                            continue;
                        }
                        let Some(s) = session.upgrade() else { return };
                        deliver(&base.current(), &s, b, &ev.data, GET_STREAM, None, false);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(backend = %pool.name(), "GET stream broke: {e}");
                        break;
                    }
                }
            }
        }
        monoio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_remap_and_back() {
        for original in ["7", r#""abc""#, r#""a:b\"c""#] {
            let data = format!(
                r#"{{"jsonrpc":"2.0","id":{original},"method":"sampling/createMessage","params":{{}}}}"#
            );
            let msg = jsonrpc::parse(data.as_bytes()).unwrap();
            let mut out = Vec::new();
            let backend = BackendId::of("weather");
            remap_id(&mut out, data.as_bytes(), msg.id.unwrap(), backend);
            let msg = jsonrpc::parse(&out).unwrap();
            assert!(
                msg.id.unwrap().get().starts_with(&format!("\"r{backend}:")),
                "{}",
                msg.id.unwrap().get()
            );
            let (b, back) = unmap_response_id(msg.id.unwrap()).unwrap();
            assert_eq!((b, back.as_str()), (backend, original));
        }
        let plain: Box<RawValue> = RawValue::from_string("5".into()).unwrap();
        assert_eq!(unmap_response_id((&*plain).into()), None);
    }

    #[test]
    fn log_levels_rank_in_order() {
        let rank = |l: &str| {
            log_level_of(
                format!(r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"level":"{l}","data":"x"}}}}"#)
                    .as_bytes(),
            )
        };
        assert_eq!(rank("debug"), Some(0));
        assert_eq!(rank("warning"), Some(3));
        assert_eq!(rank("emergency"), Some(7));
        assert_eq!(rank("loud"), None);
    }
}
