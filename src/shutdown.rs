//! Graceful shutdown of a shard. On the first SIGTERM or SIGINT every shard is told to drain
//! (through its inbox): it stops accepting, closes idle keep-alive connections, answers the
//! requests in progress with `Connection: close`, ends GET and listen streams with an SSE
//! `retry` hint (clients reconnect, to another replica or to this one restarted), and waits for
//! in-flight calls until `limits.shutdown_grace_ms`. Then it ends its sessions (their backend
//! sessions are deleted and their stdio children stopped), stops the shared stdio children it
//! drives, and returns once every shard got that far, so a hop between shards is served to
//! the end.

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::shard::Shard;

/// How often a draining shard looks at what is left (shutdown only, never the request path).
const POLL: Duration = Duration::from_millis(20);
/// What stopping stdio children may take past the grace period (close stdin, SIGTERM, SIGKILL).
const CHILDREN_GRACE: Duration = Duration::from_secs(4);
/// How long the answers to calls ended at the grace's end get to be written.
const LAST_WRITES: Duration = Duration::from_secs(1);

/// What a shard does once it stopped accepting. `children`: the shared stdio children this
/// shard drives (their actors' inboxes); `draining`: shards whose calls are not done yet,
/// over the process.
pub async fn finish(
    shard: &Rc<Shard>,
    children: Vec<crate::backend::stdio::Handle>,
    draining: &AtomicUsize,
) {
    let grace = shard.cfg.limits.shutdown_grace;
    let deadline = Instant::now() + grace;
    let retry_ms = shard.cfg.streams.retry.as_millis() as u64;
    shard.end_streams(retry_ms);
    // 1. The calls in progress here: connections, hops from other shards, and calls still
    //    relayed on streams (a hop's reply may be a stream that runs on).
    let idle = || {
        shard.open_conns.get() == 0
            && shard.hops_serving.get() == 0
            && !shard.sessions.borrow().values().any(|s| s.busy())
    };
    wait_until(deadline, idle).await;
    // 2. Every shard got there (or the grace ran out): no client call is in progress
    //    anywhere, so shared children and sessions can go.
    draining.fetch_sub(1, Ordering::AcqRel);
    wait_until(deadline, || draining.load(Ordering::Acquire) == 0).await;
    if !idle() {
        tracing::warn!(
            shard = shard.id,
            connections = shard.open_conns.get(),
            "shutdown grace over with calls in progress (limits.shutdown_grace_ms); they are answered -32603"
        );
    }
    // 3. Sessions end (calls still running are answered, their backend sessions deleted,
    //    per-session children stopped); the answers get a moment to be written.
    let ids: Vec<Rc<str>> = shard.sessions.borrow().keys().cloned().collect();
    for id in ids {
        shard.end_session(&id);
    }
    wait_until(Instant::now() + LAST_WRITES, || shard.open_conns.get() == 0).await;
    for handle in children {
        let _ = handle.unbounded_send(crate::backend::stdio::ToChild::Shutdown);
    }
    wait_until(Instant::now() + CHILDREN_GRACE, || {
        shard.teardowns_idle() && shard.metrics.stdio_children.get() == 0
    })
    .await;
}

async fn wait_until(deadline: Instant, done: impl Fn() -> bool) {
    while !done() && Instant::now() < deadline {
        monoio::time::sleep(POLL).await;
    }
}
