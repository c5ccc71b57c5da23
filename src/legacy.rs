//! The legacy HTTP+SSE front's session side (2024-11-05): `GET <sse_path>` opens a stream
//! whose first event names the URI to POST to (with a session id minted for this shard; the
//! session is created by the `initialize` POSTed there), and each POST there is answered 202
//! at once while the message runs through the pipeline, its answer going on the stream.

use std::rc::Rc;

use ringmux_core::jsonrpc::{self, Kind};

use crate::pipeline::{self, ClientEra, Principal};
use crate::reply::{session_not_found, Reply};
use crate::shard::Shard;

/// `GET <sse_path>`: a legacy HTTP+SSE client's stream. Its first event names the URI to
/// POST to, carrying a session id minted for this shard; the session is created by the
/// `initialize` POSTed there.
pub fn open(shard: &Shard, message_path: &str) -> Reply {
    let id = shard.mint_session_id();
    let (tx, rx) = futures_channel::mpsc::unbounded();
    let mut endpoint = Vec::with_capacity(64);
    endpoint.extend_from_slice(message_path.as_bytes());
    endpoint.extend_from_slice(b"?sessionId=");
    endpoint.extend_from_slice(id.as_bytes());
    let mut event = Vec::with_capacity(96);
    ringmux_core::sse::write_event(&mut event, None, Some("endpoint"), &endpoint);
    let _ = tx.unbounded_send(event);
    shard.legacy_pending.borrow_mut().insert(id, tx);
    Reply::Stream(rx)
}

/// `POST <message_path>?sessionId=`: answered 202 at once; the message is handled in the
/// background and its answer goes on the session's stream.
pub fn post(shard: &Rc<Shard>, id: &str, principal: Principal, body: &[u8]) -> Reply {
    let known = shard.session(Some(id), &principal).is_some()
        || shard.legacy_pending.borrow().contains_key(id);
    if !known {
        return session_not_found();
    }
    let mut owned = crate::bufs::take_with(body.len());
    owned.extend_from_slice(body);
    let shard = shard.clone();
    let id: Box<str> = id.into();
    monoio::spawn(async move {
        let reply = pipeline::message(
            &shard,
            &principal,
            ClientEra::Legacy,
            Some(&id),
            &owned,
            false,
        )
        .await;
        if let Reply::Json { body: answer, .. } = reply {
            if let Some(s) = shard.session(Some(&id), &principal) {
                s.streams.send(crate::streams::GET_STREAM, &answer);
            } else {
                refuse_before_initialize(&shard, &id, &owned);
            }
            crate::bufs::give(answer);
        }
        crate::bufs::give(owned);
    });
    Reply::Status(202)
}

/// A legacy client's request POSTed to a stream it has not initialized yet: answered on
/// that stream with an error carrying the request's id (rather than left unanswered).
fn refuse_before_initialize(shard: &Shard, id: &str, body: &[u8]) {
    let pending = shard.legacy_pending.borrow();
    let Some(tx) = pending.get(id) else { return };
    let Ok(msg) = jsonrpc::parse(body) else {
        return;
    };
    if msg.kind != Kind::Request {
        return;
    }
    let mut answer = Vec::with_capacity(128);
    jsonrpc::write_error_parts(
        &mut answer,
        msg.id,
        -32600,
        "Bad Request: the session is not initialized (send initialize first)",
        None,
    );
    let mut event = Vec::with_capacity(answer.len() + 32);
    ringmux_core::sse::write_event(&mut event, None, None, &answer);
    let _ = tx.unbounded_send(event);
}
