//! Cross-shard traffic. A request whose session another shard owns reaches that shard's inbox
//! (futures' unbounded MPSC: a lock-free intrusive queue plus an atomic waker) in one of two
//! ways:
//! - the whole connection is handed over ([`Handoff`]: the socket's fd and the bytes read so
//!   far, the request among them); the owner adopts the socket and serves it from then on, so
//!   later requests on that connection are local. Once per connection.
//! - the request alone is forwarded ([`Hop`]) and its reply — JSON or a stream of SSE chunks —
//!   comes back through a oneshot: for connections already handed over once (a client pool
//!   multiplexing sessions of several shards must not ping-pong), or with `handoff: false`.
//!
//! Measured in `bench/benches/hop.rs`: a forwarded request costs ≈73 µs of cross-core wake-ups
//! when both shards are idle, a hand-off ≈62 µs once. These channels are the only cross-core
//! synchronization on the request path.

use std::os::fd::OwnedFd;
use std::rc::Rc;

use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;

use crate::pipeline::OwnedRequest;
use crate::reply::Reply;
use crate::shard::Shard;

/// A request handed to its owner shard, with where its reply goes. Everything in it is
/// owned (it crosses threads).
pub struct Hop {
    pub request: OwnedRequest,
    pub reply: oneshot::Sender<Reply>,
}

/// A client connection handed to the shard that owns its request's session.
pub struct Handoff {
    /// The client socket (a duplicate; the sender closed its own descriptor).
    pub fd: OwnedFd,
    /// Everything read from the socket and not yet consumed, starting with the request that
    /// caused the hand-off (the owner parses it again from scratch).
    pub rbuf: Vec<u8>,
}

/// What arrives in a shard's inbox.
pub enum Inbox {
    Request(Hop),
    Connection(Handoff),
    /// Shut down gracefully ([`crate::drain`]).
    Drain,
}

/// Every shard's inbox sender (index = shard id).
#[derive(Clone)]
pub struct Peers(pub Vec<mpsc::UnboundedSender<Inbox>>);

impl Peers {
    /// Hands a connection to shard `to`. On failure (the shard is shutting down) the
    /// connection is closed.
    pub fn hand_off(&self, to: usize, handoff: Handoff) -> bool {
        self.0[to]
            .unbounded_send(Inbox::Connection(handoff))
            .is_ok()
    }

    /// Sends a request to shard `to` and waits for its reply.
    pub async fn call(&self, to: usize, request: OwnedRequest) -> Reply {
        let (tx, rx) = oneshot::channel();
        let hop = Hop { request, reply: tx };
        if self.0[to].unbounded_send(Inbox::Request(hop)).is_err() {
            return Reply::http_error(503, -32603, "owner shard is shutting down");
        }
        rx.await
            .unwrap_or_else(|_| Reply::http_error(500, -32603, "owner shard dropped the request"))
    }
}

/// Serves a shard's inbox until every sender is gone.
pub async fn serve_inbox(shard: Rc<Shard>, mut inbox: mpsc::UnboundedReceiver<Inbox>) {
    while let Some(msg) = inbox.next().await {
        let hop = match msg {
            Inbox::Request(hop) => hop,
            Inbox::Connection(handoff) => {
                shard.metrics.handoffs_in.add(1);
                adopt(&shard, handoff);
                continue;
            }
            Inbox::Drain => {
                if shard.drain.begin() {
                    tracing::info!(shard = shard.id, "draining");
                }
                continue;
            }
        };
        shard.metrics.hops_in.add(1);
        let shard = shard.clone();
        shard.hops_serving.set(shard.hops_serving.get() + 1);
        monoio::spawn(async move {
            let _serving = Serving(&shard);
            let reply = crate::pipeline::run(&shard, hop.request.borrow()).await;
            crate::bufs::give(hop.request.body);
            let _ = hop.reply.send(reply);
        });
    }
}

/// Counts a hop being served (a draining shard waits for them).
struct Serving<'a>(&'a Shard);

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.0.hops_serving.set(self.0.hops_serving.get() - 1);
    }
}

/// Takes over a handed-off connection: registers the socket with this shard's runtime and
/// serves it, starting with the bytes the other shard already read.
fn adopt(shard: &Rc<Shard>, handoff: Handoff) {
    let std = std::net::TcpStream::from(handoff.fd);
    match monoio::net::TcpStream::from_std(std) {
        Ok(stream) => {
            monoio::spawn(crate::conn::serve_adopted(
                shard.clone(),
                stream,
                handoff.rbuf,
            ));
        }
        Err(e) => tracing::warn!(
            shard = shard.id,
            "could not adopt a handed-off connection: {e}"
        ),
    }
}
