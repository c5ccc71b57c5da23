//! Cross-shard traffic. A request whose session another shard owns reaches that shard's inbox
//! (futures' unbounded MPSC: a lock-free intrusive queue plus an atomic waker) in one of two
//! ways:
//! - the whole connection is handed over ([`Handoff`]: the socket's fd and the bytes read so
//!   far, the request among them); the owner adopts the socket and serves it from then on, so
//!   later requests on that connection are local. Once per connection.
//! - the request alone is forwarded ([`crate::peers::Hop`], carrying the
//!   [`crate::request::OwnedRequest`]) and its reply — JSON or a stream of SSE chunks —
//!   comes back through a oneshot: for connections already handed over once (a client pool
//!   multiplexing sessions of several shards must not ping-pong), or with `handoff: false`.
//!
//! Measured in `bench/benches/hop.rs`: a forwarded request costs ≈73 µs of cross-core wake-ups
//! when both shards are idle, a hand-off ≈62 µs once. These channels are the only cross-core
//! synchronization on the request path.

use std::rc::Rc;

use futures_channel::mpsc;
use futures_util::StreamExt;

use crate::peers::{Handoff, Inbox};
use crate::shard::{Base, Shard};

/// Serves a shard's inbox until every sender is gone.
pub async fn serve_inbox(base: Rc<Base>, mut inbox: mpsc::UnboundedReceiver<Inbox>) {
    while let Some(msg) = inbox.next().await {
        let hop = match msg {
            Inbox::Request(hop) => hop,
            Inbox::Connection(handoff) => {
                base.metrics.handoffs_in.add(1);
                adopt(&base.current(), handoff);
                continue;
            }
            Inbox::Drain => {
                if base.drain.begin() {
                    tracing::info!(shard = base.id, "draining");
                }
                continue;
            }
            Inbox::Reload(next) => {
                crate::reload::apply(&base.current(), *next);
                continue;
            }
        };
        base.metrics.hops_in.add(1);
        let shard = base.current();
        let mut hop = hop;
        // The route by its key: the sender may have run another config generation.
        match shard.route_by_key(hop.request.route_key) {
            Some(route) => hop.request.route = route,
            None => {
                crate::bufs::give(hop.request.body);
                let _ = hop.reply.send(crate::reply::Reply::Status(404));
                continue;
            }
        }
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
            monoio::spawn(crate::front::http::serve_adopted(
                shard.clone(),
                stream,
                handoff.rbuf,
                handoff.tls,
            ));
        }
        Err(e) => tracing::warn!(
            shard = shard.id,
            "could not adopt a handed-off connection: {e}"
        ),
    }
}
