//! The answer stage: a backend's answer to a routed call made the client's, in the client's
//! era and on the client's transport. The one place that chooses, by the client's era and the
//! backend's, how an answer travels: a stateful client of a sessionless backend
//! ([`super::sessionless::answer`]: `input_required` turned into requests), a 2026-07-28 client
//! ([`super::mrtr::relay_call`]: requests turned into `input_required`), a legacy client's one
//! stream, a POST stream relayed event by event, or one JSON body. The translations themselves
//! are [`ringmux_core::era`]'s and [`ringmux_core::uris`]'s. The common case, a stateful
//! backend's whole JSON answer, is checked and mapped here too ([`answer_of`]) but called
//! straight from the dispatch: one async layer fewer on the hot path (about 90 instructions per
//! proxied call, bench/scripts/callgrind-call.sh).

use std::rc::Rc;

use ringmux_core::jsonrpc::{self, Raw};
use ringmux_core::uris;

use super::dispatch::{backend_error, Call, Sink};
use super::relay;
use crate::backend::upstream::{final_message, Body, Pool, Response, Status};
use crate::bufs;
use crate::reply::Reply;
use crate::session::streams::GET_STREAM;
use crate::session::{InFlight, Session};
use crate::shard::Shard;

/// A routed call's answer (`resp`) for the client. `request`: the bytes sent, when a
/// sessionless backend may ask for input and they must be sent again with the answers.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn answer(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    pool: Rc<Pool>,
    resp: Response,
    request: Option<Vec<u8>>,
    call: &Call<'_>,
    id: Raw<'_>,
    inflight: InFlight,
    map_uris: bool,
) -> Reply {
    let backend_error = |reason: String| backend_error(id, &pool, reason);
    if let Some(request) = request {
        return super::sessionless::answer(
            shard, session, pool, resp, request, call, id, inflight, map_uris,
        )
        .await;
    }
    if resp.status != Status::Ok {
        let status = resp.status;
        let _ = final_message(resp.body).await;
        return backend_error(format!("answered {status}"));
    }
    let events = match resp.body {
        Body::Full(body) => return answer_of(shard, &pool, id, body, map_uris, call.outcome),
        Body::Events(events) => events,
    };
    match call.sink {
        Sink::Modern { ctx, sse } => {
            super::mrtr::relay_call(
                shard.clone(),
                session.clone(),
                pool,
                events,
                sse,
                inflight,
                ctx.clone(),
            )
            .await
        }
        Sink::Legacy => {
            // A legacy client has one stream: everything goes there, as it arrives.
            monoio::spawn(relay::relay_post(
                shard.clone(),
                session.clone(),
                pool,
                events,
                GET_STREAM,
                id.to_boxed(),
                inflight,
                map_uris,
            ));
            Reply::Status(202)
        }
        Sink::Sse => {
            let (n, rx) = session.streams.open_post();
            monoio::spawn(relay::relay_post(
                shard.clone(),
                session.clone(),
                pool,
                events,
                n,
                id.to_boxed(),
                inflight,
                map_uris,
            ));
            Reply::Stream(rx)
        }
        Sink::Json => {
            let answer = crate::backend::upstream::final_answer(events, id).await;
            if let Ok(body) = &answer {
                call.outcome.answered(
                    jsonrpc::parse(body)
                        .ok()
                        .and_then(|m| m.error)
                        .and_then(jsonrpc::error_code),
                );
            }
            match answer {
                Ok(body) => Reply::Json {
                    status: 200,
                    body: with_client_uris(shard, &pool, map_uris, body),
                    session: None,
                },
                Err(e) => backend_error(e.to_string()),
            }
        }
    }
}

/// A backend's whole answer to request `id`, relayed only if it is a JSON-RPC response to
/// that request: a truncated or non-JSON-RPC body, or another request's answer, becomes the
/// call's error naming the backend (and counts against the backend's health).
pub(crate) fn answer_of(
    shard: &Shard,
    pool: &Rc<Pool>,
    id: Raw<'_>,
    body: Vec<u8>,
    map_uris: bool,
    outcome: &crate::observe::Outcome,
) -> Reply {
    match jsonrpc::check_answer(&body, id) {
        Ok(code) => {
            outcome.answered(code);
            Reply::Json {
                status: 200,
                body: with_client_uris(shard, pool, map_uris, body),
                session: None,
            }
        }
        Err(bad) => {
            bufs::give(body);
            shard.metrics.backend_errors.add(1);
            tracing::warn!(backend = %pool.name(), "backend answer refused: {bad}");
            backend_error(id, pool, bad.to_string())
        }
    }
}

/// A backend's answer in the client's form: the resource URIs its result hands the client as
/// the client knows them (`map`: a prefixed backend, a method whose results carry URIs;
/// [`uris`]), and with `masking:` the secrets in it masked ([`ringmux_core::mask`]).
pub(crate) fn with_client_uris(shard: &Shard, pool: &Pool, map: bool, answer: Vec<u8>) -> Vec<u8> {
    let answer = match map
        .then(|| uris::map_answer(&answer, pool.name()))
        .flatten()
    {
        Some(mapped) => {
            bufs::give(answer);
            mapped
        }
        None => answer,
    };
    if shard.masker.is_none() {
        return answer;
    }
    match masked(shard, pool, &answer) {
        Some(m) => {
            bufs::give(answer);
            m
        }
        None => answer,
    }
}

/// What masking (`masking:`) makes of a backend's message on its way to a client.
pub(crate) enum ForClient {
    /// Nothing to mask (or no `masking:`): the message goes as it is.
    AsIs,
    /// The message to send instead.
    Masked(Vec<u8>),
    /// It may hold a secret that cannot be masked: it must not reach the client.
    Withheld,
}

/// The one place a backend's message is masked for a client (answers, requests and
/// notifications alike): counted and logged by the first pattern's name, never the secret.
pub(crate) fn mask_for_client(shard: &Shard, pool: &Pool, message: &[u8]) -> ForClient {
    let Some(m) = &shard.masker else {
        return ForClient::AsIs;
    };
    match m.mask_json(message) {
        ringmux_core::mask::Outcome::Clean => ForClient::AsIs,
        ringmux_core::mask::Outcome::Masked(found) => {
            shard.metrics.masked.add(1);
            tracing::info!(backend = %pool.name(), pattern = %found.first, count = found.count, "secrets masked in a backend's message to a client");
            ForClient::Masked(found.body)
        }
        ringmux_core::mask::Outcome::Unreadable => {
            shard.metrics.masked.add(1);
            tracing::warn!(backend = %pool.name(), "a backend's message may hold a secret and cannot be masked; withheld");
            ForClient::Withheld
        }
    }
}

/// A backend's answer with its secrets masked (`None`: nothing to mask, or no `masking:`).
/// An answer a pattern matches but that cannot be rewritten is withheld: the client gets an
/// error naming the backend instead (fail closed).
pub(crate) fn masked(shard: &Shard, pool: &Pool, message: &[u8]) -> Option<Vec<u8>> {
    match mask_for_client(shard, pool, message) {
        ForClient::AsIs => None,
        ForClient::Masked(body) => Some(body),
        ForClient::Withheld => {
            let id = jsonrpc::parse(message).ok().and_then(|m| m.id);
            let mut out = Vec::with_capacity(160);
            jsonrpc::write_error_parts(
                &mut out,
                id,
                ringmux_core::error::code::INTERNAL_ERROR,
                &format!(
                    "backend {}: its answer may hold a secret and is not JSON ringmux can mask; withheld",
                    pool.name()
                ),
                None,
            );
            Some(out)
        }
    }
}
