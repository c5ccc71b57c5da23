//! Graceful shutdown of a shard. On the first SIGTERM or SIGINT every shard is told to drain
//! (through its inbox): it stops accepting, closes idle keep-alive connections, answers the
//! requests in progress with `Connection: close`, ends GET and listen streams with an SSE
//! `retry` hint (clients reconnect, to another replica or to this one restarted), and waits for
//! in-flight calls until `limits.shutdown_grace_ms`. Then it ends its sessions (their backend
//! sessions are deleted and their stdio children stopped), stops the shared stdio children it
//! drives, and returns once every shard got that far, so a hop between shards is served to
//! the end.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::shard::Shard;

/// How often a draining shard looks at what is left (shutdown only, never the request path).
const POLL: Duration = Duration::from_millis(20);
/// What stopping stdio children may take past the grace period (close stdin, SIGTERM, SIGKILL).
const CHILDREN_GRACE: Duration = Duration::from_secs(4);

/// A shard's drain flag and the tasks waiting for it.
#[derive(Default)]
pub struct Drain {
    on: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl Drain {
    /// Starts draining; `false` if it had started.
    pub fn begin(&self) -> bool {
        if self.on.replace(true) {
            return false;
        }
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
        true
    }

    pub fn is_on(&self) -> bool {
        self.on.get()
    }

    /// Returns once draining has started.
    pub async fn started(&self) {
        std::future::poll_fn(|cx| {
            if self.on.get() {
                return Poll::Ready(());
            }
            self.waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// What a shard does once it stopped accepting. `children`: the shared stdio children this
/// shard drives (their actors' inboxes); `draining`: shards not done yet, over the process.
pub async fn finish(
    shard: &Rc<Shard>,
    children: Vec<crate::stdio::Handle>,
    draining: &AtomicUsize,
) {
    let grace = shard.cfg.limits.shutdown_grace;
    let deadline = Instant::now() + grace;
    let retry_ms = shard.cfg.streams.retry.as_millis() as u64;
    shard.end_streams(retry_ms);
    wait_until(deadline, || {
        shard.open_conns.get() == 0 && shard.hops_serving.get() == 0
    })
    .await;
    if shard.open_conns.get() > 0 || shard.hops_serving.get() > 0 {
        tracing::warn!(
            shard = shard.id,
            connections = shard.open_conns.get(),
            "shutdown grace over with requests in progress (limits.shutdown_grace_ms)"
        );
    }
    let ids: Vec<Rc<str>> = shard.sessions.borrow().keys().cloned().collect();
    for id in ids {
        shard.end_session(&id);
    }
    for handle in children {
        let _ = handle.unbounded_send(crate::stdio::ToChild::Shutdown);
    }
    wait_until(Instant::now() + CHILDREN_GRACE, || {
        shard.teardowns_idle() && shard.metrics.stdio_children.get() == 0
    })
    .await;
    draining.fetch_sub(1, Ordering::AcqRel);
    // Serve the other shards' hops until they are done too.
    wait_until(Instant::now() + grace + CHILDREN_GRACE, || {
        draining.load(Ordering::Acquire) == 0
    })
    .await;
}

async fn wait_until(deadline: Instant, done: impl Fn() -> bool) {
    while !done() && Instant::now() < deadline {
        monoio::time::sleep(POLL).await;
    }
}
