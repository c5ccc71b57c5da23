//! Cross-shard hand-off. A request whose session another shard owns is sent to that shard's
//! inbox (futures' unbounded MPSC: a lock-free intrusive queue plus an atomic waker) and its
//! reply — JSON or a stream of SSE chunks — comes back through a oneshot. These channels are
//! the only cross-core synchronization on the request path.

use std::rc::Rc;

use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;

use crate::shard::{session_not_found, Call, Reply, Shard};

/// What the owner must do.
pub enum HopKind {
    Post { sse: bool },
    Delete,
}

/// A request handed to its owner shard. Everything in it is owned (it crosses threads).
pub struct Hop {
    pub kind: HopKind,
    pub session: Box<str>,
    pub body: Vec<u8>,
    pub reply: oneshot::Sender<Reply>,
}

/// Every shard's inbox sender (index = shard id).
#[derive(Clone)]
pub struct Peers(pub Vec<mpsc::UnboundedSender<Hop>>);

impl Peers {
    /// Sends a request to shard `to` and waits for its reply.
    pub async fn call(&self, to: usize, kind: HopKind, session: &str, body: &[u8]) -> Reply {
        let (tx, rx) = oneshot::channel();
        let hop = Hop {
            kind,
            session: session.into(),
            body: body.to_vec(),
            reply: tx,
        };
        if self.0[to].unbounded_send(hop).is_err() {
            return Reply::http_error(503, -32603, "owner shard is shutting down");
        }
        rx.await
            .unwrap_or_else(|_| Reply::http_error(500, -32603, "owner shard dropped the request"))
    }
}

/// Serves a shard's inbox until every sender is gone.
pub async fn serve_inbox(shard: Rc<Shard>, mut inbox: mpsc::UnboundedReceiver<Hop>) {
    while let Some(hop) = inbox.next().await {
        shard.metrics.hops_in.add(1);
        let shard = shard.clone();
        monoio::spawn(async move {
            let reply = match hop.kind {
                HopKind::Post { sse } => {
                    shard
                        .handle(Call {
                            body: &hop.body,
                            session: Some(&hop.session),
                            sse,
                        })
                        .await
                }
                HopKind::Delete => delete_local(&shard, &hop.session),
            };
            let _ = hop.reply.send(reply);
        });
    }
}

/// DELETE on the owner shard.
pub fn delete_local(shard: &Rc<Shard>, session: &str) -> Reply {
    if shard.end_session(session) {
        Reply::Status(200)
    } else {
        session_not_found()
    }
}
