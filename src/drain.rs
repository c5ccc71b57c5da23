//! A shard's drain flag: set on the first SIGTERM or SIGINT ([`crate::shutdown`]), read by
//! its accept loop and connections (idle ones are shut down for reading, busy ones answer with
//! `Connection: close`).

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::task::{Poll, Waker};

/// A shard's drain flag, the tasks waiting for it (the accept loop), and the shard's client
/// connections with whether each is idle (waiting for its next request). At a drain, idle
/// connections are shut down for reading, which ends their pending read: a connection pays
/// two flag writes per request for this, not a waiter of its own.
#[derive(Default)]
pub struct Drain {
    on: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
    conns: RefCell<slab::Slab<(RawFd, bool)>>,
}

impl Drain {
    /// Starts draining; `false` if it had started.
    pub fn begin(&self) -> bool {
        if self.on.replace(true) {
            return false;
        }
        for (_, (fd, idle)) in self.conns.borrow().iter() {
            if *idle {
                // SAFETY: the descriptor belongs to a live connection of this shard (it
                // leaves the slab before its socket closes).
                unsafe {
                    libc::shutdown(*fd, libc::SHUT_RD);
                }
            }
        }
        let waiters: Vec<Waker> = self.waiters.borrow_mut().drain(..).collect();
        for w in waiters {
            w.wake();
        }
        true
    }

    pub fn is_on(&self) -> bool {
        self.on.get()
    }

    /// Ready once draining has started (few waiters: the accept loop).
    pub async fn started(&self) {
        std::future::poll_fn(|cx| {
            if self.on.get() {
                return Poll::Ready(());
            }
            let mut waiters = self.waiters.borrow_mut();
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// Registers a client connection's socket until the returned slot is given back.
    pub fn register(&self, fd: RawFd) -> usize {
        self.conns.borrow_mut().insert((fd, false))
    }

    pub fn unregister(&self, slot: usize) {
        self.conns.borrow_mut().try_remove(slot);
    }

    /// Marks the connection idle (waiting for a request) or busy.
    pub fn set_idle(&self, slot: usize, idle: bool) {
        if let Some(c) = self.conns.borrow_mut().get_mut(slot) {
            c.1 = idle;
        }
    }
}
