//! The shards' inboxes: what one shard sends another (a request for a session it owns, a
//! whole connection, the order to drain) and the senders every shard holds ([`Peers`]). The
//! only cross-core synchronization on the request path ([`crate::front::hop`] serves an inbox).

use std::os::fd::OwnedFd;

use futures_channel::{mpsc, oneshot};

use crate::reply::Reply;
use crate::request::OwnedRequest;

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
    /// A TLS connection's rustls state and the ciphertext it has not seen yet.
    pub tls: Option<Box<(rustls::ServerConnection, Vec<u8>)>>,
}

/// What arrives in a shard's inbox.
pub enum Inbox {
    Request(Hop),
    Connection(Handoff),
    /// Shut down gracefully ([`crate::drain`]).
    Drain,
    /// Move to the next generation of the config ([`crate::reload`]).
    Reload(Box<Next>),
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

/// What became of backend `b` in a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Same,
    Added,
    /// Same name and endpoint, other settings (timeouts, circuit, health checks, prefix…):
    /// a new pool; backend sessions stay, the backend is the same server.
    Retuned,
    /// Same name, another endpoint (URL, command, transport, credentials, TLS), or any change
    /// of a stdio or legacy SSE backend (its children live in its pool): a new pool (and
    /// child), its backend sessions made again.
    Changed,
    /// Removed by this reload.
    Removed,
    /// Removed before, and still.
    Retired,
}

/// A shard's part of a reload ([`crate::reload`]).
pub struct Next {
    pub cfg: std::sync::Arc<ringmux_core::config::Config>,
    pub generation: u64,
    /// Per backend index.
    pub changes: std::sync::Arc<[Change]>,
    /// The shared stdio and legacy SSE children's handles, per backend index.
    pub handles: std::sync::Arc<[Option<crate::backend::stdio::Handle>]>,
    /// The new shared children this shard drives (backend index, inbox).
    pub children: Vec<(usize, crate::backend::stdio::Inbox)>,
    /// Told the shard's id once its new generation is current.
    pub done: std::sync::mpsc::Sender<usize>,
}
