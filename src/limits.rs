//! Rate limits (`rate_limits:`): token buckets per principal, per principal and tool, and per
//! backend; requests in progress and live sessions per principal. A shard's own: no lock, no
//! shared atomic; each shard enforces the configured figures on the requests it owns
//! (ARCHITECTURE.md, "Rate limits", says what that means across shards).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringmux_core::config::{Bucket as BucketCfg, RateLimits};
use xxhash_rust::xxh3::Xxh3Builder;

use crate::request::Principal;

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(cfg: &BucketCfg, now: Instant) -> Bucket {
        Bucket {
            tokens: cfg.burst,
            at: now,
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, cfg: &BucketCfg, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * cfg.per_second).min(cfg.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / cfg.per_second,
            ))
        }
    }

    fn is_full(&self, cfg: &BucketCfg, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * cfg.per_second
            >= cfg.burst
    }
}

#[derive(Debug)]
struct Entry {
    bucket: Option<Bucket>,
    /// Shared with the principal's [`Admitted`] guards, which count themselves out.
    in_flight: Rc<Cell<u32>>,
    sessions: u32,
}

/// Why a request was refused, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub what: &'static str,
    pub retry_after: Duration,
}

/// A shard's limiter.
pub struct Limiter {
    cfg: RateLimits,
    principals: RefCell<HashMap<Principal, Entry, Xxh3Builder>>,
    /// By the xxh3 of (principal, tool name): a routed call looks its bucket up without
    /// allocating a key. Two pairs that collide (2^-64 a pair) would share a bucket: a
    /// stricter limit for them, never a looser one.
    tools: RefCell<HashMap<u64, Bucket, Xxh3Builder>>,
    backends: RefCell<Vec<Option<Bucket>>>,
    /// The hasher of the tool buckets' keys.
    tools_key: Xxh3Builder,
}

/// A request admitted and in progress: counted against its principal's
/// `concurrent_per_principal` until dropped. One pointer (its principal's count), so the
/// `Option<Admitted>` every request carries is a pointer, and `None` (no limit) costs a null
/// check where it is dropped.
pub struct Admitted(Rc<Cell<u32>>);

impl Drop for Admitted {
    #[inline]
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl Limiter {
    pub fn new(cfg: &RateLimits, backends: usize) -> Limiter {
        Limiter {
            cfg: cfg.clone(),
            principals: RefCell::new(HashMap::with_hasher(Xxh3Builder::new())),
            tools: RefCell::new(HashMap::with_hasher(Xxh3Builder::new())),
            backends: RefCell::new(vec![None; backends]),
            // Seeded per shard at start: nobody can aim a collision at another's bucket.
            tools_key: Xxh3Builder::new().with_seed({
                let mut seed = [0u8; 8];
                getrandom::fill(&mut seed).expect("the OS random source works");
                u64::from_le_bytes(seed)
            }),
        }
    }

    /// A principal's entry as first seen: a full bucket, nothing in progress, no session.
    fn fresh(&self, now: Instant) -> Entry {
        Entry {
            bucket: self.cfg.principal.as_ref().map(|c| Bucket::full(c, now)),
            in_flight: Rc::new(Cell::new(0)),
            sessions: 0,
        }
    }

    /// Room for a new key: past `max_keys`, the idle entries go (buckets full again, nothing
    /// in progress, no session).
    fn make_room(&self, now: Instant) {
        let mut principals = self.principals.borrow_mut();
        if principals.len() >= self.cfg.max_keys {
            let cfg = self.cfg.principal;
            principals.retain(|_, e| {
                e.in_flight.get() > 0
                    || e.sessions > 0
                    || e.bucket
                        .zip(cfg.as_ref())
                        .is_some_and(|(b, c)| !b.is_full(c, now))
            });
        }
        let mut tools = self.tools.borrow_mut();
        if tools.len() >= self.cfg.max_keys {
            if let Some(cfg) = &self.cfg.tool {
                tools.retain(|_, b| !b.is_full(cfg, now));
            }
            if tools.len() >= self.cfg.max_keys {
                tools.clear();
            }
        }
    }

    /// Stage 3: a request of `principal`: its bucket, and a place among its requests in
    /// progress (held until the returned guard drops).
    pub fn admit(&self, principal: &Principal) -> Result<Option<Admitted>, Limited> {
        if self.cfg.principal.is_none() && self.cfg.concurrent_per_principal == 0 {
            return Ok(None);
        }
        let now = Instant::now();
        if !self.principals.borrow().contains_key(principal) {
            self.make_room(now);
            let fresh = self.fresh(now);
            self.principals
                .borrow_mut()
                .insert(principal.clone(), fresh);
        }
        let mut principals = self.principals.borrow_mut();
        let e = principals
            .get_mut(principal)
            .expect("inserted above when missing");
        let max = self.cfg.concurrent_per_principal;
        if max > 0 && e.in_flight.get() >= max {
            return Err(Limited {
                what: "requests in progress for this principal",
                retry_after: Duration::from_secs(1),
            });
        }
        if let (Some(b), Some(c)) = (e.bucket.as_mut(), self.cfg.principal.as_ref()) {
            b.take(c, now).map_err(|retry_after| Limited {
                what: "requests per second for this principal",
                retry_after,
            })?;
        }
        if max == 0 {
            return Ok(None);
        }
        e.in_flight.set(e.in_flight.get() + 1);
        Ok(Some(Admitted(e.in_flight.clone())))
    }

    /// The key of `principal`'s bucket for the tool whose name (as its backend `b` knows it)
    /// is `literal`; `None` without `rate_limits.tool`. By the tool, not the name a client
    /// gave it: a virtual server's renamed tool shares its bucket with the tool's other names.
    pub fn tool_key(&self, principal: &Principal, b: u16, literal: &[u8]) -> Option<u64> {
        use std::hash::{BuildHasher, Hash, Hasher};
        self.cfg.tool.as_ref()?;
        let mut h = self.tools_key.build_hasher();
        principal.hash(&mut h);
        b.hash(&mut h);
        literal.hash(&mut h);
        Some(h.finish())
    }

    /// A call routed to backend `b` (and, for `tools/call`, of the tool [`Limiter::tool_key`]
    /// gave `tool`).
    pub fn route(&self, tool: Option<u64>, b: u16) -> Result<(), Limited> {
        let now = Instant::now();
        if let (Some(c), Some(key)) = (&self.cfg.tool, tool) {
            let mut tools = self.tools.borrow_mut();
            if !tools.contains_key(&key) {
                drop(tools);
                self.make_room(now);
                tools = self.tools.borrow_mut();
            }
            tools
                .entry(key)
                .or_insert_with(|| Bucket::full(c, now))
                .take(c, now)
                .map_err(|retry_after| Limited {
                    what: "calls per second of this tool for this principal",
                    retry_after,
                })?;
        }
        if let Some(c) = &self.cfg.backend {
            let mut backends = self.backends.borrow_mut();
            backends[b as usize]
                .get_or_insert_with(|| Bucket::full(c, now))
                .take(c, now)
                .map_err(|retry_after| Limited {
                    what: "requests per second to this backend",
                    retry_after,
                })?;
        }
        Ok(())
    }

    /// Whether `principal` may open one more session.
    pub fn may_open_session(&self, principal: &Principal) -> Result<(), Limited> {
        let max = self.cfg.sessions_per_principal;
        if max == 0 {
            return Ok(());
        }
        let open = self
            .principals
            .borrow()
            .get(principal)
            .map_or(0, |e| e.sessions);
        if open >= max {
            return Err(Limited {
                what: "sessions for this principal",
                retry_after: Duration::from_secs(1),
            });
        }
        Ok(())
    }

    /// A session of `principal` began (`+1`) or ended (`-1`).
    pub fn session(&self, principal: &Principal, began: bool) {
        if self.cfg.sessions_per_principal == 0 {
            return;
        }
        let now = Instant::now();
        let mut principals = self.principals.borrow_mut();
        let e = principals
            .entry(principal.clone())
            .or_insert_with(|| self.fresh(now));
        if began {
            e.sessions += 1;
        } else {
            e.sessions = e.sessions.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst() {
        let cfg = BucketCfg {
            per_second: 2.0,
            burst: 3.0,
        };
        let t0 = Instant::now();
        let mut b = Bucket::full(&cfg, t0);
        for _ in 0..3 {
            assert!(b.take(&cfg, t0).is_ok());
        }
        let wait = b.take(&cfg, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.take(&cfg, t0 + Duration::from_millis(499)).is_err());
        assert!(b.take(&cfg, t0 + Duration::from_millis(1000)).is_ok());
        // Idle for long: no more than the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(b.take(&cfg, later).is_ok());
        }
        assert!(b.take(&cfg, later).is_err());
    }

    #[test]
    fn in_progress_and_sessions_are_counted_per_principal() {
        let cfg = RateLimits {
            principal: None,
            tool: None,
            backend: None,
            concurrent_per_principal: 2,
            sessions_per_principal: 1,
            max_keys: 10,
        };
        let l = Rc::new(Limiter::new(&cfg, 1));
        let alice = Principal::Header("alice".into());
        let bob = Principal::Header("bob".into());
        let a1 = l.admit(&alice).unwrap();
        let _a2 = l.admit(&alice).unwrap();
        assert!(l.admit(&alice).is_err());
        assert!(l.admit(&bob).is_ok());
        drop(a1);
        assert!(l.admit(&alice).is_ok());
        assert!(l.may_open_session(&alice).is_ok());
        l.session(&alice, true);
        assert!(l.may_open_session(&alice).is_err());
        l.session(&alice, false);
        assert!(l.may_open_session(&alice).is_ok());
    }
}
