//! Hot reload: SIGHUP, or the config file changed (`reload.watch_interval_ms`).
//!
//! The control side ([`Reloader`], on the thread that noticed) reads the file and checks it
//! as a reload of the running config ([`ringmux_core::config::reload`]): a bad file, or a
//! change only a restart can apply, is refused with its key path and line, and the running
//! config stays. A good one goes to every shard through its inbox ([`Next`]); each shard
//! builds its next generation ([`crate::shard::Shard`]) between two of its tasks, so no
//! request sees half of it:
//! - unchanged backends keep their pools (connections, circuit, era, shared children);
//!   added and changed ones get new pools, removed ones are retired in place;
//! - authentication is kept (a reload cannot change it); rules, routes, masks and limits are
//!   built anew; rate-limit buckets are kept while `rate_limits:` and the backend count stay;
//! - catalog caches are kept unless something that shapes a list changed;
//! - each session: its backend sessions on changed and removed backends are deleted (through
//!   the old pool), added and changed backends join it, its cached authorization view goes,
//!   and its client hears `notifications/*/list_changed` when its lists may differ.
//!
//! Requests already running finish in the generation they started in; streams and sessions
//! stay. The shard answers when its new generation is current; the reload is logged and
//! counted once every shard has.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringmux_core::config::{self, Config};

use crate::backend::stdio;
pub use crate::peers::{Change, Next};
use crate::peers::{Inbox, Peers};
use crate::session::Session;
use crate::shard::{pool_for, Parts, Shard};

/// How long the control side waits for every shard to take a new config.
const ACK_WAIT: Duration = Duration::from_secs(10);

/// Reloads the config of a running gateway; one per process, shared by the signal thread
/// and the file watcher.
pub struct Reloader {
    path: PathBuf,
    cores: usize,
    running: Mutex<Running>,
    peers: Peers,
    status: Arc<crate::snapshot::Status>,
    /// Backend indices the metrics have room for ([`crate::metrics::ShardMetrics::new`]).
    slots: usize,
    trace_names: Option<Arc<Mutex<crate::otel::Names>>>,
}

/// The config the shards run now.
pub(crate) struct Running {
    pub cfg: Arc<Config>,
    pub handles: Arc<[Option<stdio::Handle>]>,
    pub generation: u64,
    /// The text last tried, applied or not: the watcher reloads when the file differs from
    /// it (a refused file is not tried again, and logged again, until it changes).
    pub seen: String,
}

impl Reloader {
    pub(crate) fn new(
        path: PathBuf,
        cores: usize,
        running: Running,
        peers: Peers,
        status: Arc<crate::snapshot::Status>,
        slots: usize,
        trace_names: Option<Arc<Mutex<crate::otel::Names>>>,
    ) -> Reloader {
        Reloader {
            path,
            cores,
            running: Mutex::new(running),
            peers,
            status,
            slots,
            trace_names,
        }
    }

    /// Reloads from the file: the new generation, or why the running config stays.
    pub fn reload(&self) -> Result<u64, String> {
        let result = self.try_reload(None);
        self.count(&result);
        result
    }

    /// Reloads if the file's text differs from what the running config came from (the
    /// watcher's check); `None` when it does not.
    pub fn reload_if_changed(&self) -> Option<Result<u64, String>> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        {
            let mut running = self.running.lock().ok()?;
            if running.seen == text {
                return None;
            }
            running.seen = text.clone();
        }
        let result = self.try_reload(Some(text));
        self.count(&result);
        Some(result)
    }

    fn count(&self, result: &Result<u64, String>) {
        match result {
            Ok(generation) => {
                self.status.reloads.fetch_add(1, Ordering::Relaxed);
                self.status.generation.store(*generation, Ordering::Relaxed);
            }
            Err(e) => {
                self.status.reloads_rejected.fetch_add(1, Ordering::Relaxed);
                tracing::error!("config reload refused; the running config stays: {e}");
            }
        }
    }

    /// How often the file is looked at (`reload.watch_interval_ms`; `None`: not watched).
    pub fn watch_interval(&self) -> Option<Duration> {
        self.running.lock().ok()?.cfg.reload_watch
    }

    fn try_reload(&self, text: Option<String>) -> Result<u64, String> {
        let path = self.path.display();
        let text = match text {
            Some(t) => t,
            None => {
                std::fs::read_to_string(&self.path).map_err(|e| format!("reading {path}: {e}"))?
            }
        };
        let mut running = self
            .running
            .lock()
            .map_err(|_| "an earlier reload panicked".to_string())?;
        let checked = config::reload(&text, self.cores, &running.cfg)
            .map_err(|e| format!("{path}: {}", e.in_text(&text)))?;
        let mut cfg = checked.config;
        crate::backend::upstream::resolve(&mut cfg).map_err(|e| {
            // Its path names the backend by its place in the running order: name it as the
            // file does.
            let order: Vec<String> = cfg.backends.iter().map(|b| b.name.clone()).collect();
            let written = config::as_written(&e.path, &order, &checked.written);
            format!("{path}: {}", e.at(written).in_text(&text))
        })?;
        if cfg.backends.len() > self.slots {
            return Err(format!(
                "{path}: backends: a reload can bring the backends (removed ones count until a \
                 restart) to {} at most; restart ringmux to add more",
                self.slots
            ));
        }
        let old = &running.cfg;
        let changes: Vec<Change> = cfg
            .backends
            .iter()
            .enumerate()
            .map(|(b, new)| match old.backends.get(b) {
                None => Change::Added,
                Some(o) if new.retired && o.retired => Change::Retired,
                Some(_) if new.retired => Change::Removed,
                Some(o) if o.retired => Change::Added,
                Some(o) if settings(o) == settings(new) => Change::Same,
                // (Another address for its host name is the same server, reached anew.)
                Some(o) if !o.actor_driven() && same_endpoint(o, new) => Change::Retuned,
                Some(_) => Change::Changed,
            })
            .collect();
        // Shared children: kept where the backend is, started anew where it is new or
        // changed (driven by the shard its id names, as at start).
        let shards = cfg.shards;
        let mut children: Vec<Vec<(usize, stdio::Inbox)>> =
            (0..shards).map(|_| Vec::new()).collect();
        let handles: Arc<[Option<stdio::Handle>]> = cfg
            .backends
            .iter()
            .enumerate()
            .map(|(b, backend)| {
                if backend.retired || !(backend.actor_driven() && backend.shared) {
                    return None;
                }
                if changes[b] == Change::Same {
                    return running.handles.get(b).cloned().flatten();
                }
                let (tx, rx) = stdio::channel();
                children[backend.id.0 as usize % shards].push((b, rx));
                Some(tx)
            })
            .collect();
        let generation = running.generation + 1;
        let cfg = Arc::new(cfg);
        let changes: Arc<[Change]> = changes.into();
        let (done, acks) = std::sync::mpsc::channel();
        let mut sent = 0;
        for (shard, tx) in self.peers.0.iter().enumerate() {
            let next = Next {
                cfg: cfg.clone(),
                generation,
                changes: changes.clone(),
                handles: handles.clone(),
                children: std::mem::take(&mut children[shard]),
                done: done.clone(),
            };
            if tx.unbounded_send(Inbox::Reload(Box::new(next))).is_ok() {
                sent += 1;
            }
        }
        drop(done);
        // From here the shards run it (or are gone): it is the running config.
        let summary = summary(&cfg, &changes);
        *running = Running {
            cfg: cfg.clone(),
            handles,
            generation,
            seen: text,
        };
        if let Ok(mut rows) = self.status.backends.lock() {
            *rows = cfg
                .backends
                .iter()
                .map(crate::snapshot::BackendRow::of)
                .collect();
        }
        if let Some(names) = &self.trace_names {
            if let Ok(mut n) = names.lock() {
                n.backends = cfg.backends.iter().map(|b| b.name.clone()).collect();
                n.routes = std::iter::once(cfg.path.clone())
                    .chain(cfg.routes.iter().map(|r| r.path.clone()))
                    .collect();
            }
        }
        drop(running);
        if sent < shards {
            return Err("the gateway is shutting down".into());
        }
        // Applied from here whatever the answers: each shard takes it between two of its
        // tasks. One that has not within the wait is busy, and is said to be.
        let deadline = std::time::Instant::now() + ACK_WAIT;
        let mut confirmed = 0;
        while confirmed < shards {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if acks.recv_timeout(left).is_err() {
                break;
            }
            confirmed += 1;
        }
        if confirmed < shards {
            tracing::warn!(
                generation,
                confirmed,
                shards,
                "config reload sent to every shard, but not every one has taken it within {} s: {summary}",
                ACK_WAIT.as_secs()
            );
        } else {
            tracing::info!(generation, "config reloaded: {summary}");
        }
        Ok(generation)
    }
}

/// Which backends were added, removed, moved and retuned (or `backends unchanged`).
fn summary(cfg: &Config, changes: &[Change]) -> String {
    let names = |which: Change| -> Vec<&str> {
        changes
            .iter()
            .zip(&cfg.backends)
            .filter(|(c, _)| **c == which)
            .map(|(_, b)| b.name.as_str())
            .collect()
    };
    let (added, removed, changed, retuned) = (
        names(Change::Added),
        names(Change::Removed),
        names(Change::Changed),
        names(Change::Retuned),
    );
    if [&added, &removed, &changed, &retuned]
        .iter()
        .all(|n| n.is_empty())
    {
        return "backends unchanged".into();
    }
    format!(
        "backends added {added:?}, removed {removed:?}, moved {changed:?} (their sessions made \
         again), retuned {retuned:?} (sessions kept)"
    )
}

/// A backend's settings, compared across a reload (its resolved addresses as a set: a
/// resolver may answer in another order).
fn settings(b: &config::Backend) -> String {
    let mut b = b.clone();
    b.addrs.sort();
    format!("{b:?}")
}

/// Whether two settings of one backend name the same server, reached the same way
/// (whatever addresses its host name resolves to now).
fn same_endpoint(a: &config::Backend, b: &config::Backend) -> bool {
    let endpoint = |x: &config::Backend| {
        format!(
            "{:?}",
            (
                &x.url,
                &x.stdio,
                x.legacy_sse,
                x.era,
                x.shared,
                &x.credentials,
                &x.tls,
            )
        )
    };
    endpoint(a) == endpoint(b)
}

fn same<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// On the shard: makes `next` its current generation, and brings its sessions over.
pub(crate) fn apply(old: &Rc<Shard>, next: Next) {
    let Next {
        cfg,
        generation,
        changes,
        handles,
        children,
        done,
    } = next;
    // A backend found to speak legacy SSE (`transport: auto`) holds its sessions in its
    // pool's link: for it, a retuned config is a changed one.
    let changes: Vec<Change> = changes
        .iter()
        .enumerate()
        .map(|(b, c)| match (c, old.pools.get(b)) {
            (Change::Retuned, Some(p)) if p.is_actor() => Change::Changed,
            _ => *c,
        })
        .collect();
    let pools = cfg
        .backends
        .iter()
        .enumerate()
        .map(|(b, backend)| match (changes[b], old.pools.get(b)) {
            (Change::Same | Change::Retired, Some(p)) => p.clone(),
            _ => pool_for(b as u16, backend, &old.metrics, handles[b].as_ref()),
        })
        .collect();
    let route_auth = cfg
        .routes
        .iter()
        .map(|r| {
            let before = old.routes.iter().find(|o| *o.path == *r.path);
            next_auth(before.and_then(|o| o.auth.as_ref()), r.auth.as_ref())
        })
        .collect();
    let auth = next_auth(old.auth.as_ref(), cfg.auth.as_ref());
    let limiter = old.limiter.clone().filter(|_| {
        same(&old.cfg.rate_limits, &cfg.rate_limits) && old.cfg.backends.len() == cfg.backends.len()
    });
    let kept_limiter = limiter.is_some();
    let catalogs_same = old.cfg.fingerprint == cfg.fingerprint
        && changes
            .iter()
            .all(|c| matches!(c, Change::Same | Change::Retuned | Change::Retired))
        && old.cfg.catalog_ttl == cfg.catalog_ttl
        && same(&old.cfg.routes, &cfg.routes);
    // What a client may see of the lists: their contents, their names, the rules on them.
    let lists_changed = !catalogs_same || !same(&old.cfg.authz, &cfg.authz);
    let parts = Parts {
        pools,
        auth,
        route_auth,
        limiter,
        views: catalogs_same.then(|| old.views()),
    };
    for (b, change) in changes.iter().enumerate() {
        if matches!(change, Change::Changed | Change::Removed) {
            if let Some(p) = old.pools.get(b) {
                p.mark_replaced();
            }
        }
    }
    let new = Rc::new(Shard::generation(old.base(), cfg, generation, parts));
    new.make_current();
    crate::bufs::set_response_budget(new.cfg.limits.response_budget);
    // Shared children: the old ones of changed and removed backends stop once calls in
    // progress had time to end; the new ones start.
    for (b, change) in changes.iter().enumerate() {
        if matches!(change, Change::Changed | Change::Removed) {
            if let Some(handle) = new.stop_driving(b) {
                let grace = new.cfg.limits.shutdown_grace;
                monoio::spawn(async move {
                    monoio::time::sleep(grace).await;
                    let _ = handle.unbounded_send(stdio::ToChild::Shutdown);
                });
            }
        }
    }
    for (b, inbox) in children {
        if let Some(handle) = handles[b].clone() {
            new.drive(b, handle);
        }
        monoio::spawn(stdio::run(
            new.cfg.backends[b].clone(),
            new.metrics.clone(),
            inbox,
        ));
    }
    for (b, change) in changes.iter().enumerate() {
        let pool = &new.pools[b];
        let fresh = matches!(change, Change::Added | Change::Changed | Change::Retuned);
        if let (true, Some(every)) = (fresh, pool.cfg.health_check) {
            monoio::spawn(crate::backend::health::run(new.base(), pool.clone(), every));
        }
    }
    let sessions: Vec<Rc<Session>> = new.sessions.borrow().values().cloned().collect();
    for session in &sessions {
        // A new limiter counts the sessions open (before any ends below and counts out).
        if let (Some(l), false, None) = (&new.limiter, kept_limiter, session.modern.get()) {
            l.session(&session.principal, true);
        }
        // A route is known by its path: its index may change, and it may be gone (its
        // sessions end: their endpoint no longer exists).
        let Some(route) = new.same_route(old, session.route()) else {
            tracing::info!(session = %session.id, path = old.route_path(session.route()), "route removed by a reload; ending its session");
            new.end_session(&session.id);
            continue;
        };
        session.move_route(route);
        carry_over(old, &new, session, &changes, lists_changed);
    }
    tracing::debug!(shard = new.id, generation, "new config generation current");
    let _ = done.send(new.id);
}

/// Brings one session to the new generation.
fn carry_over(
    old: &Shard,
    new: &Rc<Shard>,
    session: &Rc<Session>,
    changes: &[Change],
    lists_changed: bool,
) {
    // The rules may differ: the view is made again on the session's next request.
    *session.authz.borrow_mut() = None;
    let route = session.route();
    // What the backends the session loses had declared (their lists change).
    let mut lost = 0u8;
    for (b, change) in changes.iter().enumerate() {
        let at = b as u16;
        let exposed = new.exposes(route, b);
        let leave = |excluded: bool| {
            let held = session.backend_session(at);
            let declared = session.drop_backend(at, excluded).bits();
            if let (Some(pool), Some((Some(sid), version))) = (old.pools.get(b), held) {
                tear_down_after_calls(new, session, pool.clone(), sid, version);
            }
            declared
        };
        match change {
            Change::Changed | Change::Removed => lost |= leave(!exposed),
            Change::Same | Change::Retuned if !exposed && !session.is_excluded(at) => {
                lost |= leave(true)
            }
            Change::Same | Change::Retuned | Change::Added => session.admit_backend(at, exposed),
            Change::Retired => session.admit_backend(at, false),
        }
    }
    if !session.started.get() || session.ended.get() {
        return;
    }
    // Backends new to the session join it in the background; each is announced as it
    // joins ([`crate::handlers::lifecycle::joined`]).
    crate::handlers::lifecycle::join_missing(new, session);
    let mut tell = lost;
    if lists_changed {
        tell |= (0..changes.len() as u16)
            .map(|b| session.capabilities(b).bits())
            .fold(0, |a, c| a | c);
    }
    if tell != 0 {
        crate::handlers::relay::announce_lists(new, session, tell);
    }
}

/// An endpoint's authentication in the next generation: the same one while its `auth:` is
/// unchanged (its cache of verified credentials kept), else one made from the new block that
/// takes over the old one's issuer keys and their feed (the check refused a `jwt:` that
/// changed or appeared: its keys come from a thread started with the process).
fn next_auth(
    old: Option<&Rc<crate::auth::Authenticator>>,
    cfg: Option<&config::Auth>,
) -> Option<Rc<crate::auth::Authenticator>> {
    let cfg = cfg?;
    Some(match old {
        Some(o) if same(o.config(), cfg) => o.clone(),
        Some(o) => Rc::new(o.reconfigured(cfg)),
        None => Rc::new(crate::auth::Authenticator::new(cfg, None)),
    })
}

/// How often a backend session left by a reload is looked at for calls still running on it.
const CALLS_POLL: Duration = Duration::from_millis(20);

/// Deletes the backend session `sid` (on `pool`) that `session` left in a reload, once the
/// session's calls to that backend have ended, or `limits.shutdown_grace_ms` has passed.
fn tear_down_after_calls(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    pool: Rc<crate::backend::upstream::Pool>,
    sid: Rc<str>,
    version: &'static str,
) {
    let b = pool.index;
    if !session.busy_on(b) {
        shard.queue_teardown(&pool, sid, version);
        return;
    }
    let (base, session) = (shard.base(), Rc::downgrade(session));
    let until = std::time::Instant::now() + shard.cfg.limits.shutdown_grace;
    monoio::spawn(async move {
        while session.upgrade().is_some_and(|s| s.busy_on(b)) && std::time::Instant::now() < until {
            monoio::time::sleep(CALLS_POLL).await;
        }
        base.current().queue_teardown(&pool, sid, version);
    });
}
