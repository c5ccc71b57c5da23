//! The legacy HTTP+SSE front's stream (2024-11-05): `GET <sse_path>` opens a stream whose
//! first event names the URI to POST to, with a session id minted for this shard; the session
//! is created by the `initialize` POSTed there ([`crate::pipeline`] runs those POSTs).

use crate::reply::Reply;
use crate::request::Principal;
use crate::shard::Shard;

/// `GET <sse_path>`: a legacy HTTP+SSE client's stream. Its first event names the URI to
/// POST to, carrying a session id minted for this shard; the session is created by the
/// `initialize` POSTed there.
pub fn open(shard: &Shard, message_path: &str, principal: Principal) -> Reply {
    let id = shard.mint_session_id();
    let (tx, rx) = futures_channel::mpsc::unbounded();
    let mut endpoint = Vec::with_capacity(64);
    endpoint.extend_from_slice(message_path.as_bytes());
    endpoint.extend_from_slice(b"?sessionId=");
    endpoint.extend_from_slice(id.as_bytes());
    let mut event = Vec::with_capacity(96);
    ringmux_core::sse::write_event(&mut event, None, Some("endpoint"), &endpoint);
    let _ = tx.unbounded_send(event);
    shard
        .legacy_pending
        .borrow_mut()
        .insert(id, (tx, principal));
    Reply::Stream(rx)
}
