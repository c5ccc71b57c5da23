//! One shard: a monoio runtime pinned to a core, owning the sessions that hash to it, its own
//! backend pools and catalog cache: state only. Requests reach it through the pipeline
//! ([`crate::pipeline`]), from a connection on this shard or through the cross-shard inbox
//! ([`crate::front::hop`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use futures_channel::mpsc::UnboundedSender;
use ringmux_core::affinity;
use ringmux_core::catalog::Catalog;
use ringmux_core::config::Config;

use crate::backend::upstream::Pool;
use crate::federation::Federation;
use crate::metrics::ShardMetrics;
use crate::peers::Peers;
use crate::request::Principal;
use crate::routes::Served;
use crate::session::Session;

/// Backend session deletions queued per shard before more are dropped (about 40 bytes each).
const MAX_QUEUED_TEARDOWNS: usize = 100_000;

/// Catalog views kept per shard (distinct client capability sets), plus 4 per route.
const MAX_VIEWS: usize = 16;

/// A backend session to delete: the pool it was made on, its id, its protocol version.
type Teardown = (Rc<Pool>, Rc<str>, &'static str);

/// A shard's catalog caches: (client view, route, cache), shared by the generations whose
/// catalogs are shaped alike ([`crate::reload`]).
pub(crate) type Views = Rc<RefCell<Vec<(u64, u8, Rc<Federation>)>>>;

/// A legacy stream waiting for its `initialize`: where its events go, and who opened it.
pub(crate) type PendingStream = (UnboundedSender<Vec<u8>>, Principal);

/// What a shard keeps whatever the config: its sessions, connections, metrics, logs and
/// the threads' ends it was given at start. Every generation of the shard's config
/// ([`Shard`]) shares it.
pub struct Base {
    pub id: usize,
    pub sessions: RefCell<HashMap<Rc<str>, Rc<Session>>>,
    /// Legacy HTTP+SSE streams opened and not yet initialized, by session id.
    /// (The principal that opened it: only it may initialize the session.)
    pub(crate) legacy_pending: RefCell<HashMap<Rc<str>, PendingStream>>,
    /// Request latency and error series ([`crate::latency`]): this shard's alone.
    pub latency: crate::latency::Recorder,
    /// Recent errors and what the admin API shows of this shard ([`crate::inspect`]).
    pub inspect: crate::inspect::Inspect,
    /// Traces (`traces:`), this shard's ids and batch of spans ([`crate::otel`]).
    pub tracer: Option<crate::otel::Tracer>,
    /// The access log (`access_log:`), this shard's batch of lines ([`crate::access`]).
    pub access: Option<crate::access::Shard>,
    /// The audit log (`audit:`), this shard's descriptor of it.
    pub audit: Option<crate::audit::Audit>,
    /// Tool safety (`tool_safety:`): pins, shadowing, injection; this shard's view of them.
    pub safety: Option<crate::safety::Safety>,
    /// TLS on the listener (`tls:`): the config new connections get, reloaded when its files
    /// change.
    pub tls: Option<crate::tls::Listener>,
    pub metrics: Arc<ShardMetrics>,
    /// Every shard's metrics, for the scrape endpoint.
    pub all_metrics: Arc<[Arc<ShardMetrics>]>,
    pub peers: Peers,
    /// Client connections open on this shard.
    pub open_conns: Cell<usize>,
    /// Hops from other shards being served now.
    pub hops_serving: Cell<usize>,
    /// Set when the gateway shuts down ([`crate::drain`]).
    pub drain: crate::drain::Drain,
    /// Backend sessions waiting to be deleted (the pool they were made on, session id,
    /// version), and the tasks deleting them ([`Shard::tear_down`]).
    teardowns: RefCell<std::collections::VecDeque<Teardown>>,
    teardown_workers: Cell<usize>,
    /// When each rate-limited warning was last logged, and how many were suppressed since.
    warned: RefCell<[(Option<Instant>, u64); Warned::COUNT]>,
    /// The generation requests start in ([`crate::reload`]), and its number.
    current: RefCell<Option<Rc<Shard>>>,
    generation: Cell<u64>,
    /// The shared stdio and legacy SSE children this shard drives (backend index, their
    /// actor's inbox): stopped at shutdown.
    driven: RefCell<Vec<(usize, crate::backend::stdio::Handle)>>,
}

/// One generation of a shard: what it built from one config (its backends' pools, catalog
/// caches, authentication, rules, limits and masks). A request runs in the generation it
/// started in; a reload makes the next one ([`crate::reload`]), and the old one goes when
/// its last request ends. Backend `b` is the same backend in every generation (removed
/// ones stay, retired), so an index a request holds stays valid in later generations.
pub struct Shard {
    base: Rc<Base>,
    /// 0 at start, then one more per reload.
    pub generation: u64,
    pub cfg: Arc<Config>,
    /// Authentication (`auth:`), this shard's: its cache of verified credentials is its own
    /// (kept across reloads, which cannot change `auth:`).
    pub auth: Option<Rc<crate::auth::Authenticator>>,
    /// Authorization (`authz:`), this shard's: its compiled rules and its principals' views.
    pub authz: Option<crate::authz::Authz>,
    /// Virtual servers (`routes:`); route `r` is `routes[r - 1]` (0 is the main endpoint).
    pub routes: Vec<crate::routes::Served>,
    /// Some endpoint's rules read `request.address`: connections learn their peer's.
    pub wants_address: bool,
    /// Rate limits (`rate_limits:`), this shard's buckets and counts.
    pub limiter: Option<Rc<crate::limits::Limiter>>,
    /// Masking (`masking:`), this shard's compiled patterns.
    pub masker: Option<ringmux_core::mask::Masker>,
    pub pools: Vec<Rc<Pool>>,
    /// Catalog caches, one per view: clients declaring different capabilities may be shown
    /// different lists by a backend (a tool offered only to clients that can sample), so
    /// each capability set gets its own cache. A few entries in practice; bounded.
    views: Views,
    /// How many client connections this shard may hold (`limits.max_connections` divided
    /// among the shards).
    pub conn_share: usize,
    /// Each route's key ([`route_key`]), the main endpoint's first: hashed once per
    /// generation, not per cross-shard hop.
    route_keys: Box<[u64]>,
}

impl std::ops::Deref for Shard {
    type Target = Base;
    fn deref(&self) -> &Base {
        &self.base
    }
}

/// The parts of a generation that come from outside the config: the shard's backend pools
/// and the authentication it keeps.
pub(crate) struct Parts {
    pub pools: Vec<Rc<Pool>>,
    pub auth: Option<Rc<crate::auth::Authenticator>>,
    /// Each route's own authentication, in `cfg.routes` order.
    pub route_auth: Vec<Option<Rc<crate::auth::Authenticator>>>,
    /// The rate limiter to keep (its buckets and counts), if the limits did not change.
    pub limiter: Option<Rc<crate::limits::Limiter>>,
    /// The catalog caches to keep, if nothing that shapes a catalog changed.
    pub views: Option<Views>,
}

/// Warnings that a flood could repeat thousands of times a second: logged at most once per
/// [`WARN_EVERY`] per shard, with the number suppressed meanwhile.
#[derive(Debug, Clone, Copy)]
pub enum Warned {
    /// accept(2) failed (EMFILE, ENFILE, ENOBUFS…).
    Accept,
    /// A new connection was closed at the connection limit.
    ConnLimit,
}

impl Warned {
    const COUNT: usize = 2;
}

impl Base {
    /// The generation requests start in now.
    #[inline]
    pub fn current(&self) -> Rc<Shard> {
        self.current
            .borrow()
            .clone()
            .expect("a shard has a generation from its start")
    }

    /// Logs `what` unless it was logged less than [`WARN_EVERY`] ago (then counts it).
    pub fn warn_limited(&self, kind: Warned, what: &dyn std::fmt::Display) {
        let now = Instant::now();
        let mut warned = self.warned.borrow_mut();
        let (last, suppressed) = &mut warned[kind as usize];
        if last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
            *suppressed += 1;
            return;
        }
        tracing::warn!(shard = self.id, suppressed = *suppressed, "{what}");
        *last = Some(now);
        *suppressed = 0;
    }

    /// The number of the generation requests start in (what a connection compares its
    /// copy of the limits against).
    #[inline]
    pub fn current_generation(&self) -> u64 {
        self.generation.get()
    }

    /// Lets the current generation go (the shard has stopped).
    pub(crate) fn release(&self) {
        self.current.borrow_mut().take();
    }

    /// Notes that this shard drives backend `b`'s shared child.
    pub(crate) fn drive(&self, b: usize, handle: crate::backend::stdio::Handle) {
        self.driven.borrow_mut().push((b, handle));
    }

    /// Backend `b`'s shared child, which this shard drove until now.
    pub(crate) fn stop_driving(&self, b: usize) -> Option<crate::backend::stdio::Handle> {
        let mut driven = self.driven.borrow_mut();
        let at = driven.iter().position(|(d, _)| *d == b)?;
        Some(driven.swap_remove(at).1)
    }

    /// The shared children this shard drives.
    pub(crate) fn driven(&self) -> Vec<crate::backend::stdio::Handle> {
        self.driven
            .borrow()
            .iter()
            .map(|(_, h)| h.clone())
            .collect()
    }
}

/// A route's key: the xxh3 of its path (routes are known by their paths across reloads).
pub fn route_key(path: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(path.as_bytes())
}

/// Backend `b`'s pool on a shard (`shared`: the handle of its shared child, if it has one).
pub(crate) fn pool_for(
    b: u16,
    backend: &ringmux_core::config::Backend,
    metrics: &Arc<ShardMetrics>,
    shared: Option<&crate::backend::stdio::Handle>,
) -> Rc<Pool> {
    let link = crate::backend::stdio::link_for(backend, metrics, shared);
    Pool::new(b, backend.clone(), link, Some(metrics.clone()))
}

/// The shortest interval between two logs of one rate-limited warning.
const WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Shard {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        cfg: Arc<Config>,
        all_metrics: Arc<[Arc<ShardMetrics>]>,
        peers: Peers,
        stdio: &[Option<crate::backend::stdio::Handle>],
        key_feeds: Vec<Option<crate::auth::KeyFeed>>,
        tls: Option<crate::tls::Listener>,
        audit: Option<std::fs::File>,
        access: Option<crate::access::Shard>,
        tracer: Option<crate::otel::Tracer>,
        safety: Option<crate::safety::Feed>,
    ) -> Rc<Shard> {
        let metrics = all_metrics[id].clone();
        let pools = cfg
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| pool_for(i as u16, b, &metrics, stdio[i].as_ref()))
            .collect();
        // The keys come through the feed: read or fetched once for every shard (server::start).
        // One feed per `auth:` block in order, the main endpoint's first (there even without
        // a main `auth:`: each route must get its own).
        let mut key_feeds = key_feeds.into_iter();
        let main_feed = key_feeds.next().flatten();
        let auth = cfg
            .auth
            .as_ref()
            .map(|a| Rc::new(crate::auth::Authenticator::new(a, main_feed)));
        let route_auth = cfg
            .routes
            .iter()
            .map(|r| {
                let feed = key_feeds.next().flatten();
                r.auth
                    .as_ref()
                    .map(|a| Rc::new(crate::auth::Authenticator::new(a, feed)))
            })
            .collect();
        let audit = match (audit, &cfg.audit) {
            (Some(f), Some(a)) => Some(crate::audit::Audit::new(f, a)),
            _ => None,
        };
        let safety = match (safety, &cfg.tool_safety) {
            (Some(feed), Some(ts)) => Some(crate::safety::Safety::new(ts, feed)),
            _ => None,
        };
        let base = Rc::new(Base {
            id,
            latency: Default::default(),
            inspect: Default::default(),
            tracer,
            access,
            audit,
            safety,
            tls,
            sessions: RefCell::new(HashMap::new()),
            legacy_pending: RefCell::new(HashMap::new()),
            metrics,
            all_metrics,
            peers,
            open_conns: Cell::new(0),
            hops_serving: Cell::new(0),
            drain: crate::drain::Drain::default(),
            teardowns: RefCell::new(std::collections::VecDeque::new()),
            teardown_workers: Cell::new(0),
            warned: RefCell::new([(None, 0); Warned::COUNT]),
            current: RefCell::new(None),
            generation: Cell::new(0),
            driven: RefCell::new(Vec::new()),
        });
        let parts = Parts {
            pools,
            auth,
            route_auth,
            limiter: None,
            views: None,
        };
        let shard = Rc::new(Shard::generation(base, cfg, 0, parts));
        shard.make_current();
        shard
    }

    /// Generation `generation` of the shard on `base`, from `cfg` and `parts`.
    pub(crate) fn generation(
        base: Rc<Base>,
        cfg: Arc<Config>,
        generation: u64,
        parts: Parts,
    ) -> Shard {
        let conn_share = cfg.limits.max_connections.div_ceil(cfg.shards).max(1);
        let authz = cfg
            .authz
            .as_ref()
            .map(|a| crate::authz::Authz::new(a, cfg.auth.as_ref()));
        let routes: Vec<Served> = cfg
            .routes
            .iter()
            .zip(parts.route_auth)
            .map(|(r, auth)| crate::routes::Served {
                call_timeout: r.call_timeout,
                path: r.path.as_str().into(),
                backends: r.backends.clone().into_boxed_slice(),
                shape: crate::routes::Shape::new(&r.tools).map(Rc::new),
                auth,
                // Its own rules, or the main ones over its own API keys' attributes.
                authz: match (&r.authz, &r.auth, &cfg.authz) {
                    (Some(a), own, _) => Some(crate::authz::Authz::new(
                        a,
                        own.as_ref().or(cfg.auth.as_ref()),
                    )),
                    (None, Some(own), Some(main)) => {
                        Some(crate::authz::Authz::new(main, Some(own)))
                    }
                    (None, _, _) => None,
                },
            })
            .collect();
        let limiter = parts.limiter.or_else(|| {
            cfg.rate_limits
                .as_ref()
                .map(|r| Rc::new(crate::limits::Limiter::new(r, cfg.backends.len())))
        });
        let masker = cfg.masking.as_ref().map(|m| {
            ringmux_core::mask::Masker::new(&m.patterns)
                .expect("patterns were compiled when the config was checked")
        });
        let wants_address = std::iter::once(authz.as_ref())
            .chain(routes.iter().map(|r: &Served| r.authz.as_ref()))
            .flatten()
            .any(|a| a.policy.reads_request());
        let route_keys = std::iter::once(route_key(&cfg.path))
            .chain(routes.iter().map(|r| route_key(&r.path)))
            .collect();
        Shard {
            base,
            generation,
            auth: parts.auth,
            authz,
            routes,
            wants_address,
            limiter,
            masker,
            views: parts.views.unwrap_or_default(),
            cfg,
            pools: parts.pools,
            conn_share,
            route_keys,
        }
    }

    /// What every generation of this shard shares.
    pub fn base(&self) -> Rc<Base> {
        self.base.clone()
    }

    /// Makes this generation the one new requests start in.
    pub(crate) fn make_current(self: &Rc<Self>) {
        *self.base.current.borrow_mut() = Some(self.clone());
        self.base.generation.set(self.generation);
    }

    /// The catalog caches, to keep in the next generation.
    pub(crate) fn views(&self) -> Views {
        self.views.clone()
    }

    /// Backend `b`'s pool, unless a reload removed the backend.
    pub fn pool_of(&self, b: u16) -> Option<Rc<Pool>> {
        self.pools
            .get(b as usize)
            .filter(|p| !p.cfg.retired)
            .cloned()
    }

    /// Backend `b`'s pool, where `b` may come from a newer generation than this one (a
    /// session's state, written by a request or stream task that started after this one):
    /// then the current generation's.
    pub fn pool_any(&self, b: u16) -> Rc<Pool> {
        match self.pools.get(b as usize) {
            Some(p) => p.clone(),
            None => self.current().pools[b as usize].clone(),
        }
    }

    /// Route `route`'s key: a hash of its path, the same in every generation that has it.
    pub fn route_key(&self, route: u8) -> u64 {
        self.route_keys
            .get(route as usize)
            .copied()
            .unwrap_or_else(|| route_key(&self.cfg.path))
    }

    /// The route whose key is `key`, in this generation.
    pub fn route_by_key(&self, key: u64) -> Option<u8> {
        self.route_keys
            .iter()
            .position(|k| *k == key)
            .map(|i| i as u8)
    }

    /// Route `route` of an older generation `old`, in this one: the route with the same
    /// path (`None`: a reload removed it).
    pub fn same_route(&self, old: &Shard, route: u8) -> Option<u8> {
        self.route_of(old.route_path(route).as_bytes())
    }

    /// Whether a session on `route` may join backend `b`: the backend is not retired, and
    /// the route exposes it.
    pub fn exposes(&self, route: u8, b: usize) -> bool {
        let live = self.pools.get(b).is_some_and(|p| !p.cfg.retired);
        live && self
            .served(route)
            .is_none_or(|r| r.backends.get(b).copied().unwrap_or(false))
    }

    /// The route a request path names (0: the main endpoint), if any.
    #[inline]
    pub fn route_of(&self, path: &[u8]) -> Option<u8> {
        if path == self.cfg.path.as_bytes() {
            return Some(0);
        }
        self.routes
            .iter()
            .position(|r| r.path.as_bytes() == path)
            .map(|i| i as u8 + 1)
    }

    /// How old the freshest `kind` catalog of backend `b` this shard holds is.
    pub fn catalog_age(
        &self,
        kind: ringmux_core::catalog::ListKind,
        b: u16,
        now: std::time::Instant,
    ) -> Option<std::time::Duration> {
        self.views
            .borrow()
            .iter()
            .filter_map(|(_, _, fed)| fed.fetched_at(kind, b))
            .max()
            .map(|t| now.saturating_duration_since(t))
    }

    /// Backend `b`'s `kind` catalog as some view of this shard holds it.
    pub fn cached_catalog(
        &self,
        kind: ringmux_core::catalog::ListKind,
        b: u16,
    ) -> Option<Rc<ringmux_core::catalog::Catalog>> {
        self.views
            .borrow()
            .iter()
            .find_map(|(_, _, fed)| fed.cached(kind, b))
    }

    /// The path of `route` (the main endpoint's, or a virtual server's).
    pub fn route_path(&self, route: u8) -> &str {
        self.served(route).map_or(&self.cfg.path, |r| &r.path)
    }

    /// Virtual server `route` (`None` for the main endpoint).
    pub fn served(&self, route: u8) -> Option<&crate::routes::Served> {
        route
            .checked_sub(1)
            .and_then(|r| self.routes.get(r as usize))
    }

    /// The authentication of `route`'s clients (its own, or the main endpoint's).
    #[inline]
    pub fn auth_for(&self, route: u8) -> Option<&crate::auth::Authenticator> {
        match self.served(route) {
            Some(Served { auth: Some(a), .. }) => Some(a),
            _ => self.auth.as_deref(),
        }
    }

    /// The authorization of `route`'s clients (its own, or the main endpoint's).
    #[inline]
    pub fn authz_for(&self, route: u8) -> Option<&crate::authz::Authz> {
        match self.served(route) {
            Some(Served { authz: Some(a), .. }) => Some(a),
            _ => self.authz.as_ref(),
        }
    }

    /// The catalog cache for the clients of view `view` ([`crate::session::view_of`]) on
    /// endpoint `route` (each route has its own: its tool shape is applied there).
    pub fn fed(&self, view: u64, route: u8) -> Rc<Federation> {
        let mut views = self.views.borrow_mut();
        if let Some((_, _, f)) = views.iter().find(|(v, r, _)| *v == view && *r == route) {
            return f.clone();
        }
        if views.len() == MAX_VIEWS + 4 * self.routes.len() {
            // Forget the oldest view; its clients refetch on their next list.
            views.remove(0);
        }
        let fed = Rc::new(Federation::new(
            self.cfg.backends.len(),
            self.cfg.catalog_ttl,
            self.cfg.separator.clone(),
            self.cfg.fingerprint,
            self.served(route).and_then(|r| r.shape.clone()),
        ));
        views.push((view, route, fed.clone()));
        fed
    }

    /// The catalog to keep for backend `b`: an equal one another view holds already (most
    /// backends list the same items to every client), or this one. A large list is then kept
    /// once per shard, not once per client capability set.
    pub fn shared_catalog(&self, b: u16, catalog: Catalog) -> Rc<Catalog> {
        for (_, _, fed) in self.views.borrow().iter() {
            if let Some(c) = fed.cached(catalog.kind, b) {
                if c.bytes() == catalog.bytes() {
                    return c;
                }
            }
        }
        Rc::new(catalog)
    }

    /// Drops backend `b`'s cached lists of `kinds` in every view.
    pub fn invalidate(&self, b: u16, kinds: &[ringmux_core::catalog::ListKind]) {
        for (_, _, fed) in self.views.borrow().iter() {
            fed.invalidate(b, kinds);
        }
    }

    /// The shard that owns a session id.
    pub fn owner_of(&self, session: &str) -> usize {
        affinity::shard_of(session.as_bytes(), self.cfg.shards)
    }

    /// Looks up a session for `principal` and marks it used. A session is its principal's
    /// alone: another principal presenting its id finds nothing, as with an unknown id.
    /// The session is its endpoint's too: on another path (`route`) its id is unknown.
    pub fn session(
        &self,
        id: Option<&str>,
        principal: &Principal,
        route: u8,
    ) -> Option<Rc<Session>> {
        let s = self.sessions.borrow().get(id?).cloned()?;
        if s.principal != *principal || s.route() != route {
            return None;
        }
        s.last_used.set(Instant::now());
        Some(s)
    }

    /// A client's DELETE: ends session `id` if it is `principal`'s.
    pub fn end_session_for(self: &Rc<Self>, id: &str, principal: &Principal, route: u8) -> bool {
        self.session(Some(id), principal, route).is_some() && self.end_session(id)
    }

    /// Mints a session id that hashes to this shard.
    pub fn mint_session_id(&self) -> Rc<str> {
        loop {
            let mut random = [0u8; 24];
            getrandom::fill(&mut random).expect("the OS random source works");
            let id = affinity::encode_session_id(&random);
            if affinity::shard_of(&id, self.cfg.shards) == self.id {
                return Rc::from(std::str::from_utf8(&id).expect("ASCII alphabet"));
            }
        }
    }

    /// Ends a session: forgets it and deletes its backend sessions (in the background).
    pub fn end_session(&self, id: &str) -> bool {
        let Some(session) = self.sessions.borrow_mut().remove(id) else {
            return false;
        };
        self.metrics.sessions.sub(1);
        // The current generation's limiter and pools: a reload may have come since the
        // request that ends the session began (the limiter counted it then, or a new one
        // counted it again; the session may have joined backends the reload added).
        let now = self.current();
        if let (Some(l), None) = (&now.limiter, session.modern.get()) {
            l.session(&session.principal, false);
        }
        session.close();
        for pool in &now.pools {
            self.tear_down(&session, pool);
        }
        true
    }

    /// Whether no backend session deletion is queued or running.
    pub fn teardowns_idle(&self) -> bool {
        self.teardown_workers.get() == 0 && self.teardowns.borrow().is_empty()
    }

    /// Shutting down: every session's GET stream and listen streams end with a `retry` hint,
    /// and legacy streams not yet initialized end.
    pub fn end_streams(&self, retry_ms: u64) {
        for session in self.sessions.borrow().values() {
            session.streams.end_get(retry_ms);
            if let Some(m) = session.modern.get() {
                m.end_listeners(retry_ms);
            }
        }
        self.legacy_pending.borrow_mut().clear();
    }

    /// Queues the deletion of `session`'s backend session on backend `b` (if it has one).
    /// At most `limits.max_concurrent_teardowns` run at once per shard, so that thousands of
    /// sessions expiring together do not open thousands of backend connections.
    pub fn tear_down(&self, session: &Session, pool: &Rc<Pool>) {
        let Some((Some(sid), version)) = session.backend_session(pool.index) else {
            return;
        };
        self.queue_teardown(pool, sid, version);
    }

    /// Queues the deletion of backend session `sid` on `pool`'s backend.
    pub(crate) fn queue_teardown(&self, pool: &Rc<Pool>, sid: Rc<str>, version: &'static str) {
        {
            let mut queue = self.teardowns.borrow_mut();
            if queue.len() >= MAX_QUEUED_TEARDOWNS {
                tracing::debug!(backend = %pool.name(), "teardown queue full; backend session left to expire");
                return;
            }
            queue.push_back((pool.clone(), sid, version));
        }
        if self.teardown_workers.get() >= self.cfg.limits.max_concurrent_teardowns {
            return;
        }
        self.teardown_workers.set(self.teardown_workers.get() + 1);
        let base = self.base.clone();
        monoio::spawn(async move {
            loop {
                let next = base.teardowns.borrow_mut().pop_front();
                let Some((pool, sid, version)) = next else {
                    break;
                };
                pool.delete_session(&sid, version).await;
            }
            base.teardown_workers.set(base.teardown_workers.get() - 1);
        });
    }
}
