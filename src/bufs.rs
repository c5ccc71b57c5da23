//! A shard's free list of byte buffers, so that the request path reuses buffers instead of
//! allocating one per request: the spliced request body, the backend's response body, merged
//! list pages and local results are taken from here, and given back once the connection has
//! copied them into its write buffer (or the upstream exchange is done with them).
//!
//! Thread-local, hence per shard: no lock and no shared atomic. A buffer that crossed to
//! another shard inside a reply is simply given back to that shard's list.

use std::cell::{Cell, RefCell};

/// Buffers kept per shard: enough for the requests in flight on a busy shard, while at most
/// `KEEP * MAX_CAPACITY` (4 MiB) stays retained.
const KEEP: usize = 64;
/// A buffer grown past this (a big list page, say) is freed rather than kept.
const MAX_CAPACITY: usize = 64 << 10;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    /// (bytes held, limit) of backend answers being read on this shard.
    static BUDGET: Cell<(usize, usize)> = const { Cell::new((0, usize::MAX)) };
}

/// Sets this shard's budget for backend answers held while they are read
/// (`limits.response_budget_bytes` divided among the shards).
pub fn set_response_budget(max: usize) {
    BUDGET.with(|b| b.set((b.get().0, max)));
}

/// Bytes of this shard's response budget held now.
pub fn response_budget_held() -> usize {
    BUDGET.with(|b| b.get().0)
}

/// A part of the shard's response budget, held for one answer being read; given back when
/// dropped.
#[derive(Debug, Default)]
pub struct Held(usize);

/// The shard's response budget has no room for an answer.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "the gateway's memory budget for backend answers is exhausted (limits.response_budget_bytes)"
)]
pub struct OverBudget;

impl Held {
    /// Holds `n` bytes in all for this answer (more or fewer than before).
    pub fn resize(&mut self, n: usize) -> Result<(), OverBudget> {
        BUDGET.with(|b| {
            let (used, max) = b.get();
            let others = used - self.0;
            if n > self.0 && others + n > max {
                return Err(OverBudget);
            }
            b.set((others + n, max));
            self.0 = n;
            Ok(())
        })
    }
}

impl Held {
    /// Holds `n` bytes that are in memory already (an answer being written), over the limit
    /// if need be: answers read after it are refused until it is given back.
    pub fn force(&mut self, n: usize) {
        BUDGET.with(|b| {
            let (used, max) = b.get();
            b.set((used - self.0 + n, max));
            self.0 = n;
        });
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let n = self.0;
        if n > 0 {
            BUDGET.with(|b| {
                let (used, max) = b.get();
                b.set((used - n, max));
            });
        }
    }
}

/// An empty buffer, reused when one is free.
pub fn take() -> Vec<u8> {
    FREE.with(|f| f.borrow_mut().pop()).unwrap_or_default()
}

/// An empty buffer with room for at least `n` bytes.
pub fn take_with(n: usize) -> Vec<u8> {
    let mut v = take();
    v.reserve(n);
    v
}

/// Returns a buffer for reuse.
pub fn give(mut v: Vec<u8>) {
    if v.capacity() == 0 || v.capacity() > MAX_CAPACITY {
        return;
    }
    v.clear();
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < KEEP {
            f.push(v);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_budget_is_held_and_given_back() {
        set_response_budget(100);
        let mut a = Held::default();
        a.resize(60).unwrap();
        let mut b = Held::default();
        assert!(b.resize(50).is_err(), "60 + 50 > 100");
        b.resize(40).unwrap();
        a.resize(10).unwrap();
        assert_eq!(response_budget_held(), 50);
        let mut c = Held::default();
        c.force(200);
        assert!(b.resize(41).is_err(), "an answer being written counts too");
        drop(c);
        b.resize(41).unwrap();
        b.resize(40).unwrap();
        drop(a);
        drop(b);
        assert_eq!(response_budget_held(), 0);
    }

    #[test]
    fn buffers_come_back_empty_and_reused() {
        let mut v = take_with(100);
        v.extend_from_slice(b"hello");
        let ptr = v.as_ptr();
        give(v);
        let w = take();
        assert!(w.is_empty());
        assert_eq!(w.as_ptr(), ptr, "the given buffer is the one taken next");
        give(Vec::with_capacity(MAX_CAPACITY + 1));
        assert!(take().capacity() <= MAX_CAPACITY);
    }
}
