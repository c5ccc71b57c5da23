//! A shard's free list of byte buffers, so that the request path reuses buffers instead of
//! allocating one per request: the spliced request body, the backend's response body, merged
//! list pages and local results are taken from here, and given back once the connection has
//! copied them into its write buffer (or the upstream exchange is done with them).
//!
//! Thread-local, hence per shard: no lock and no shared atomic. A buffer that crossed to
//! another shard inside a reply is simply given back to that shard's list.

use std::cell::RefCell;

/// Buffers kept per shard: enough for the requests in flight on a busy shard, while at most
/// `KEEP * MAX_CAPACITY` (4 MiB) stays retained.
const KEEP: usize = 64;
/// A buffer grown past this (a big list page, say) is freed rather than kept.
const MAX_CAPACITY: usize = 64 << 10;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
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
