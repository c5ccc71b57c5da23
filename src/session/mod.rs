//! Client sessions and their backend sessions. A client session lives on its owner shard;
//! for each backend it holds one backend session (created eagerly, concurrently, on the
//! client's `initialize`; re-created lazily when a backend was down then, and transparently once
//! when a backend expires it).

pub mod principal;
pub mod sessionless;
pub mod streams;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures_util::future::AbortHandle;

use ringmux_core::config::Era;
use ringmux_core::jsonrpc;
use ringmux_core::version;
use serde_json::value::RawValue;

use crate::backend::upstream::{final_message, Pool, Response, Status, UpstreamError};
use crate::request::Principal;
use crate::session::streams::Streams;

/// What a backend declared in its `initialize` result, reduced to the flags ringmux reads.
/// A parsed JSON object per backend session cost about 3.5 KB (six small maps); these flags
/// cost one byte, which is what keeps 100k idle sessions under 100 MB (bench/RESULTS.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities(u8);

impl Capabilities {
    pub const TOOLS: u8 = 1;
    pub const PROMPTS: u8 = 1 << 1;
    pub const RESOURCES: u8 = 1 << 2;
    pub const SUBSCRIBE: u8 = 1 << 3;
    pub const LOGGING: u8 = 1 << 4;
    pub const COMPLETIONS: u8 = 1 << 5;

    pub fn bits(self) -> u8 {
        self.0
    }

    /// Reads the flags from a `capabilities` object.
    pub fn from_json(c: &serde_json::Value) -> Capabilities {
        let mut bits = 0;
        for (key, flag) in [
            ("tools", Self::TOOLS),
            ("prompts", Self::PROMPTS),
            ("resources", Self::RESOURCES),
            ("logging", Self::LOGGING),
            ("completions", Self::COMPLETIONS),
        ] {
            if c.get(key).is_some() {
                bits |= flag;
            }
        }
        if c.pointer("/resources/subscribe").and_then(|s| s.as_bool()) == Some(true) {
            bits |= Self::SUBSCRIBE;
        }
        Capabilities(bits)
    }

    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }
}

/// A session's cached authorization view, and whose it is.
pub type AuthzView = (
    Principal,
    Option<Arc<crate::request::Facts>>,
    Rc<crate::authz::View>,
);

/// State of one backend session.
#[derive(Debug, Clone)]
pub enum BackendSession {
    /// Initialized. `id` is the backend's Mcp-Session-Id (stateless backends send none).
    Ready {
        id: Option<Rc<str>>,
        version: &'static str,
        capabilities: Capabilities,
    },
    /// Could not be initialized; retried on next use once the backend's backoff passed.
    Down,
    /// Not exposed on the session's route (`routes[].backends`): never joined.
    Excluded,
}

pub struct Session {
    pub id: Rc<str>,
    /// Who the session belongs to: only this principal finds it by its id
    /// ([`crate::shard::Shard::session`]).
    pub principal: Principal,
    /// Version negotiated with the client.
    pub version: &'static str,
    /// The client's `initialize` params, replayed to (re)initialize backend sessions.
    pub init_params: Box<RawValue>,
    /// Which catalog cache serves this client ([`view_of`] its capabilities; with its route).
    pub view: u64,
    /// The endpoint it was created on (0: the main one; else a virtual server, `routes:`):
    /// only requests on that path find it.
    route: Cell<u8>,
    pub backends: RefCell<Vec<BackendSession>>,
    pub last_used: Cell<Instant>,
    /// The client's server-to-client streams.
    pub streams: Streams,
    /// Requests forwarded and not yet answered (for `notifications/cancelled`).
    inflight: RefCell<Vec<Inflight>>,
    /// The client's `logging/setLevel` (a `jsonrpc::log_rank`); `u8::MAX` until it sets one.
    log_level: Cell<u8>,
    /// List kinds (bits of [`ListKind`] order) whose list_changed the client was told of and
    /// has not listed since: told once, however many backends change.
    announced: Cell<u8>,
    /// Backends that asked this client for its roots (told of `roots/list_changed`).
    asked_roots: RefCell<Vec<u16>>,
    /// Tasks holding the backends' GET streams open, started by the client's first GET.
    listeners: RefCell<Option<Vec<(u16, AbortHandle)>>>,
    /// A legacy HTTP+SSE client: the session lives as long as its stream.
    pub legacy: Cell<bool>,
    /// The authorization view of the principal (and request facts) that last used it
    /// ([`Session::authz_view`]).
    pub authz: RefCell<Option<AuthzView>>,
    /// Set on a 2026-07-28 principal session ([`crate::handlers::modern`]).
    pub modern: std::cell::OnceCell<Rc<crate::session::principal::State>>,
    /// What its sessionless backends need kept ([`crate::handlers::sessionless`]); made on first need.
    extras: std::cell::OnceCell<Box<crate::session::sessionless::Extras>>,
    /// Backends whose session is being created now (one creation per backend at a time), and
    /// the tasks waiting for one to finish.
    joining: RefCell<Vec<u16>>,
    join_waiters: RefCell<Vec<Waker>>,
    /// The client has had its `initialize` answer: backends joining later are announced to
    /// it as list changes.
    pub started: Cell<bool>,
    /// The session is over ([`Session::close`]).
    pub ended: Cell<bool>,
}

/// Backend `b` is joining the session until this is dropped.
struct Joining<'a> {
    session: &'a Session,
    b: u16,
}

impl Drop for Joining<'_> {
    fn drop(&mut self) {
        self.session.joining.borrow_mut().retain(|j| *j != self.b);
        let waiters: Vec<Waker> = self.session.join_waiters.borrow_mut().drain(..).collect();
        for w in waiters {
            w.wake();
        }
    }
}

/// A request forwarded to a backend and not yet answered: in its session's in-flight table
/// (where the client's `notifications/cancelled` finds it) until this is dropped, however the
/// call ends: answered, failed, cancelled, parked on a 2026-07-28 client and expired, or its
/// task aborted. The one place a call's end is recorded.
pub struct InFlight {
    session: std::rc::Weak<Session>,
    key: u64,
    /// The request's place among its principal's requests in progress
    /// (`rate_limits.concurrent_per_principal`): held as long as the call, however it ends.
    admitted: Option<crate::limits::Admitted>,
}

impl InFlight {
    /// The call's key in the in-flight table.
    pub fn key(&self) -> u64 {
        self.key
    }

    /// Holds the request's admission until the call ends.
    pub fn hold(&mut self, admitted: Option<crate::limits::Admitted>) {
        self.admitted = admitted;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(session) = self.session.upgrade() {
            session.end(self.key);
        }
    }
}

/// A forwarded request awaiting its answer.
struct Inflight {
    /// xxh3 of the request id's JSON text (the backend sees the client's id unchanged).
    key: u64,
    backend: u16,
    cancelled: bool,
    waker: Option<Waker>,
}

/// A backend failure as the client will hear of it.
#[derive(Debug, thiserror::Error)]
pub enum BackendFailure {
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    #[error("answered {0}")]
    Status(crate::backend::upstream::Status),
    #[error("initialize failed: {0}")]
    Init(String),
    #[error("session expired and could not be re-created")]
    Expired,
}

impl Session {
    /// The authorization view of `principal` making a request with `facts` (`None` without
    /// `authz:`), kept here for the session's next requests while they come from this very
    /// principal (claims included) with equal facts.
    pub fn authz_view(
        &self,
        authz: Option<&crate::authz::Authz>,
        principal: &Principal,
        facts: Option<&Arc<crate::request::Facts>>,
        metrics: &crate::metrics::ShardMetrics,
        current: bool,
    ) -> Option<Rc<crate::authz::View>> {
        let authz = authz?;
        if let Some((p, f, v)) = &*self.authz.borrow() {
            if p.same(principal) && f.as_deref() == facts.map(|f| &**f) {
                return Some(v.clone());
            }
        }
        let view = authz.view(principal, facts.map(|f| &**f), metrics);
        // Kept only from the current config generation's rules: a reload drops the kept
        // view ([`crate::reload`]), and a request still running under the old rules must
        // not put one back.
        if current {
            *self.authz.borrow_mut() = Some((principal.clone(), facts.cloned(), view.clone()));
        }
        Some(view)
    }

    /// A session of `route`, which exposes the backends `exposed` says (`None`: all).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: Rc<str>,
        principal: Principal,
        version: &'static str,
        init_params: Box<RawValue>,
        backends: usize,
        now: Instant,
        streams: Streams,
        route: u8,
        exposed: Option<&[bool]>,
    ) -> Session {
        let backends = (0..backends)
            .map(|b| match exposed {
                Some(on) if !on[b] => BackendSession::Excluded,
                _ => BackendSession::Down,
            })
            .collect();
        Session {
            id,
            principal,
            version,
            view: view_of(&init_params),
            route: Cell::new(route),
            init_params,
            backends: RefCell::new(backends),
            last_used: Cell::new(now),
            streams,
            inflight: RefCell::new(Vec::new()),
            log_level: Cell::new(u8::MAX),
            announced: Cell::new(0),
            asked_roots: RefCell::new(Vec::new()),
            listeners: RefCell::new(None),
            legacy: Cell::new(false),
            authz: RefCell::new(None),
            modern: std::cell::OnceCell::new(),
            extras: std::cell::OnceCell::new(),
            joining: RefCell::new(Vec::new()),
            join_waiters: RefCell::new(Vec::new()),
            started: Cell::new(false),
            ended: Cell::new(false),
        }
    }

    /// The endpoint it belongs to (0: the main one; else `routes[route - 1]`).
    pub fn route(&self) -> u8 {
        self.route.get()
    }

    /// A reload moved its route to index `route` (routes are known by their path).
    pub fn move_route(&self, route: u8) {
        self.route.set(route);
    }

    pub fn extras(&self) -> &crate::session::sessionless::Extras {
        self.extras.get_or_init(Default::default)
    }

    pub fn extras_if_any(&self) -> Option<&crate::session::sessionless::Extras> {
        self.extras.get().map(|e| &**e)
    }

    /// The client subscribed to (`on`) or unsubscribed from a resource of sessionless
    /// backend `b` (its URI as the backend knows it).
    pub fn resubscribe(&self, b: u16, uri: &str, on: bool) {
        self.extras().resubscribe(b, uri, on);
    }

    /// The client's `logging/setLevel`, as a `jsonrpc::log_rank`.
    pub fn log_level(&self) -> Option<u8> {
        Some(self.log_level.get()).filter(|l| *l != u8::MAX)
    }

    /// Records a forwarded request (key: [`request_key`] of its id) owned by `backend`, until
    /// the returned guard is dropped.
    pub fn begin(self: &Rc<Self>, key: u64, backend: u16) -> InFlight {
        self.inflight.borrow_mut().push(Inflight {
            key,
            backend,
            cancelled: false,
            waker: None,
        });
        InFlight {
            session: Rc::downgrade(self),
            key,
            admitted: None,
        }
    }

    /// The request was answered (or given up).
    fn end(&self, key: u64) {
        let mut inflight = self.inflight.borrow_mut();
        if let Some(i) = inflight.iter().position(|f| f.key == key) {
            inflight.swap_remove(i);
        }
    }

    /// The backend owning an unanswered request.
    pub fn owner_of(&self, key: u64) -> Option<u16> {
        self.inflight
            .borrow()
            .iter()
            .find(|f| f.key == key)
            .map(|f| f.backend)
    }

    /// The backend owning an unanswered request, marking it cancelled (its waiter wakes).
    pub fn cancel(&self, key: u64) -> Option<u16> {
        let mut inflight = self.inflight.borrow_mut();
        let f = inflight.iter_mut().find(|f| f.key == key)?;
        f.cancelled = true;
        if let Some(w) = f.waker.take() {
            w.wake();
        }
        Some(f.backend)
    }

    /// Ready once the client cancelled request `key`.
    pub fn poll_cancelled(&self, key: u64, cx: &mut Context<'_>) -> Poll<()> {
        let mut inflight = self.inflight.borrow_mut();
        match inflight.iter_mut().find(|f| f.key == key) {
            Some(f) if f.cancelled => Poll::Ready(()),
            Some(f) => {
                f.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            None => Poll::Pending,
        }
    }

    /// Records the client's `logging/setLevel`.
    pub fn set_log_level(&self, rank: u8) {
        self.log_level.set(rank);
    }

    /// Whether a `notifications/message` of this level reaches the client.
    pub fn wants_log(&self, rank: u8) -> bool {
        self.log_level.get() == u8::MAX || rank >= self.log_level.get()
    }

    /// Whether to tell the client of a list change of kind bit `bit` (false: it was told and
    /// has not listed since).
    pub fn announce(&self, bit: u8) -> bool {
        let told = self.announced.get();
        self.announced.set(told | bit);
        told & bit == 0
    }

    /// The client listed: later changes are told again.
    pub fn listed(&self, bit: u8) {
        self.announced.set(self.announced.get() & !bit);
    }

    pub fn asked_for_roots(&self, backend: u16) {
        let mut asked = self.asked_roots.borrow_mut();
        if !asked.contains(&backend) {
            asked.push(backend);
        }
    }

    pub fn roots_askers(&self) -> Vec<u16> {
        self.asked_roots.borrow().clone()
    }

    /// Stores the GET-stream listeners; `false` if they were started before.
    pub fn start_listening(&self, handles: impl FnOnce() -> Vec<(u16, AbortHandle)>) -> bool {
        let mut l = self.listeners.borrow_mut();
        if l.is_some() {
            return false;
        }
        *l = Some(handles());
        true
    }

    /// The session is over: backend streams stop, client streams end.
    pub fn close(&self) {
        self.ended.set(true);
        if let Some(handles) = self.listeners.borrow_mut().take() {
            for (_, h) in handles {
                h.abort();
            }
        }
        self.streams.end_all();
        for f in self.inflight.borrow_mut().iter_mut() {
            f.cancelled = true;
            if let Some(w) = f.waker.take() {
                w.wake();
            }
        }
    }

    /// Backend `b`'s session id and version, if it is ready.
    pub fn backend_session(&self, b: u16) -> Option<(Option<Rc<str>>, &'static str)> {
        match self.backends.borrow().get(b as usize)? {
            BackendSession::Ready { id, version, .. } => Some((id.clone(), version)),
            BackendSession::Down | BackendSession::Excluded => None,
        }
    }

    /// Whether backend `b`'s session is of the sessionless era.
    pub fn is_sessionless(&self, b: u16) -> bool {
        matches!(
            self.backends.borrow().get(b as usize),
            Some(BackendSession::Ready { version, .. }) if crate::session::sessionless::is_sessionless(version)
        )
    }

    /// Whether backend `b` is not exposed on the session's route.
    pub fn is_excluded(&self, b: u16) -> bool {
        matches!(
            self.backends.borrow().get(b as usize),
            Some(BackendSession::Excluded)
        )
    }

    /// Whether this session has a live session on backend `b`.
    pub fn is_ready(&self, b: u16) -> bool {
        matches!(
            self.backends.borrow().get(b as usize),
            Some(BackendSession::Ready { .. })
        )
    }

    /// (session id, version) of backend `b`, initializing it first if needed.
    /// The last member is whether the backend joined the session just now.
    pub async fn ensure(
        &self,
        pool: &Rc<Pool>,
    ) -> Result<(Option<Rc<str>>, &'static str, bool), BackendFailure> {
        if let Some(BackendSession::Ready { id, version, .. }) =
            self.backends.borrow().get(pool.index as usize)
        {
            return Ok((id.clone(), version, false));
        }
        self.join(pool).await?;
        match self.backends.borrow().get(pool.index as usize) {
            Some(BackendSession::Ready { id, version, .. }) => Ok((id.clone(), version, true)),
            _ => Err(BackendFailure::Expired),
        }
    }

    /// Creates the backend session on `pool`, or waits for the creation already under way
    /// (a call to a backend that is joining waits for that backend alone).
    pub async fn join(&self, pool: &Rc<Pool>) -> Result<(), BackendFailure> {
        let b = pool.index;
        if pool.cfg.retired {
            return Err(BackendFailure::Init(
                "the backend was removed from the config".into(),
            ));
        }
        if self.is_excluded(b) {
            return Err(BackendFailure::Init(
                "the backend is not exposed on this route".into(),
            ));
        }
        if self.joining.borrow().contains(&b) {
            std::future::poll_fn(|cx| {
                if self.joining.borrow().contains(&b) {
                    self.join_waiters.borrow_mut().push(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            if self.is_ready(b) {
                return Ok(());
            }
            // The join waited on was of a pool a reload replaced (its result was not kept):
            // with this call's pool (the current config's), one more. (A join that failed is
            // not tried again here.)
            let discarded = self.extras_if_any().is_some_and(|e| {
                let mut d = e.discarded.borrow_mut();
                let at = d.iter().position(|x| *x == b);
                at.map(|i| d.swap_remove(i)).is_some()
            });
            let retry = discarded
                && !pool.is_replaced()
                && !self.joining.borrow().contains(&b)
                && matches!(
                    self.backends.borrow().get(b as usize),
                    None | Some(BackendSession::Down)
                );
            if !retry {
                return Err(BackendFailure::Init(
                    "the backend did not answer initialize".into(),
                ));
            }
        }
        self.joining.borrow_mut().push(b);
        self.run_join(pool).await
    }

    /// Marks backend `b` joining if its backend session is `Down` and not joining already;
    /// whether it did. Marked before the join's task first runs: whoever waits for the joins
    /// (or calls this backend) meanwhile must see it.
    pub fn mark_joining(&self, b: u16) -> bool {
        let missing = matches!(
            self.backends.borrow().get(b as usize),
            Some(BackendSession::Down)
        ) && !self.joining.borrow().contains(&b);
        if missing {
            self.joining.borrow_mut().push(b);
        }
        missing
    }

    /// Creates the backend session on `pool`, which the caller marked as joining. The mark
    /// goes however this ends (a caller that gave up, a cancelled call, included).
    pub async fn run_join(&self, pool: &Rc<Pool>) -> Result<(), BackendFailure> {
        let _joining = Joining {
            session: self,
            b: pool.index,
        };
        self.initialize_backend(pool).await
    }

    /// Whether requests forwarded for this session are still waiting for their answers.
    pub fn busy(&self) -> bool {
        !self.inflight.borrow().is_empty()
    }

    /// Whether a request forwarded to backend `b` is still waiting for its answer.
    pub fn busy_on(&self, b: u16) -> bool {
        self.inflight.borrow().iter().any(|f| f.backend == b)
    }

    /// Adds the task holding backend `b`'s GET stream open, if the session listens (its
    /// client opened its stream before `b` joined); `false` if it does not.
    pub fn add_listener(&self, b: u16, start: impl FnOnce() -> AbortHandle) -> bool {
        match self.listeners.borrow_mut().as_mut() {
            Some(handles) => {
                handles.push((b, start()));
                true
            }
            None => false,
        }
    }

    /// Keeps the backend session a join made on `pool`, unless a reload replaced or removed
    /// that backend meanwhile, or took it off the session's route: then it is deleted there
    /// again, and the join failed (the backend joins anew through its current pool when next
    /// needed: a call waiting on this join runs one, a list starts one).
    fn store_joined(&self, pool: &Rc<Pool>, joined: BackendSession) -> Result<(), BackendFailure> {
        // (A route that stopped exposing the backend meanwhile excluded it too.)
        let excluded = matches!(
            self.backends.borrow().get(pool.index as usize),
            Some(BackendSession::Excluded)
        );
        if !pool.is_replaced() && !excluded {
            self.set_backend(pool.index, joined);
            return Ok(());
        }
        if !excluded {
            let mut d = self.extras().discarded.borrow_mut();
            if !d.contains(&pool.index) {
                d.push(pool.index);
            }
        }
        if let BackendSession::Ready {
            id: Some(id),
            version,
            ..
        } = joined
        {
            let pool = pool.clone();
            monoio::spawn(async move { pool.delete_session(&id, version).await });
        }
        Err(BackendFailure::Init(
            "the backend's config changed while it joined".into(),
        ))
    }

    /// Sets backend `b`'s state; a session made before a reload added `b` grows to it.
    fn set_backend(&self, b: u16, state: BackendSession) {
        let mut backends = self.backends.borrow_mut();
        if backends.len() <= b as usize {
            backends.resize(b as usize + 1, BackendSession::Down);
        }
        backends[b as usize] = state;
    }

    /// A reload changed or removed backend `b` ([`crate::reload`]): its GET stream task
    /// stops, and its backend session is forgotten (the caller deleted it), as `Down` (to
    /// be joined again) or `Excluded`. What the backend had declared.
    pub fn drop_backend(&self, b: u16, excluded: bool) -> Capabilities {
        if let Some(handles) = self.listeners.borrow_mut().as_mut() {
            handles.retain(|(at, h)| {
                if *at == b {
                    h.abort();
                }
                *at != b
            });
        }
        let mut backends = self.backends.borrow_mut();
        if backends.len() <= b as usize {
            backends.resize(b as usize + 1, BackendSession::Excluded);
        }
        let was = std::mem::replace(
            &mut backends[b as usize],
            if excluded {
                BackendSession::Excluded
            } else {
                BackendSession::Down
            },
        );
        match was {
            BackendSession::Ready { capabilities, .. } => capabilities,
            _ => Capabilities::default(),
        }
    }

    /// A reload made backend `b` one this session may join (`Down`), or not (`Excluded`):
    /// the session learns of a backend added after it began, or of a route that exposes one
    /// it did not.
    pub fn admit_backend(&self, b: u16, exposed: bool) {
        let mut backends = self.backends.borrow_mut();
        if backends.len() <= b as usize {
            backends.resize(b as usize + 1, BackendSession::Excluded);
        }
        let slot = &mut backends[b as usize];
        match (exposed, &*slot) {
            (true, BackendSession::Excluded) => *slot = BackendSession::Down,
            (false, BackendSession::Down) => *slot = BackendSession::Excluded,
            _ => {}
        }
    }

    /// Waits until no backend session is being created, or `limit` passed.
    pub async fn joined(&self, limit: std::time::Duration) {
        let all = std::future::poll_fn(|cx| {
            if self.joining.borrow().is_empty() {
                Poll::Ready(())
            } else {
                self.join_waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        });
        let _ = monoio::time::timeout(limit, all).await;
    }

    /// Creates the session's backend session on one backend, finding out its era first when
    /// the config leaves that open (and speaking the client's era to a backend that offers
    /// both): `server/discover` for a sessionless backend; `initialize` +
    /// `notifications/initialized` for a stateful one, over the legacy HTTP+SSE transport when
    /// an auto-detected backend refuses Streamable HTTP.
    pub async fn initialize_backend(&self, pool: &Rc<Pool>) -> Result<(), BackendFailure> {
        // A 2026-07-28 client's principal session speaks that era where the backend has it;
        // a stateful client's session its own era where the backend has that.
        let client_era = match self.modern.get() {
            Some(_) => Era::Sessionless,
            None => Era::Stateful,
        };
        if pool.era_for(client_era).await? == Era::Sessionless {
            let capabilities = crate::session::sessionless::discover(self, pool).await?;
            return self.store_joined(
                pool,
                BackendSession::Ready {
                    id: None,
                    version: version::SESSIONLESS,
                    capabilities,
                },
            );
        }
        match self.initialize_stateful(pool).await {
            Err(BackendFailure::Status(s))
                if matches!(s, Status::Refused(400..=499)) && pool.adopt_legacy_sse().await =>
            {
                self.initialize_stateful(pool).await
            }
            done => done,
        }
    }

    /// Runs `initialize` + `notifications/initialized` against one stateful backend.
    async fn initialize_stateful(&self, pool: &Rc<Pool>) -> Result<(), BackendFailure> {
        let mut body = Vec::with_capacity(self.init_params.get().len() + 64);
        body.extend_from_slice(
            b"{\"jsonrpc\":\"2.0\",\"id\":\"ringmux-init\",\"method\":\"initialize\",\"params\":",
        );
        body.extend_from_slice(self.init_params.get().as_bytes());
        body.push(b'}');
        let resp = pool
            .post(None, self.version, &body, Instant::now(), None)
            .await?;
        let session_id: Option<Rc<str>> = resp.session_id.as_deref().map(Rc::from);
        let status = resp.status;
        let message = final_message(resp.body).await?;
        if status != Status::Ok {
            return Err(BackendFailure::Status(status));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&message).map_err(|e| BackendFailure::Init(e.to_string()))?;
        let result = v.get("result").ok_or_else(|| {
            BackendFailure::Init(format!("no result: {}", v.get("error").unwrap_or(&v)))
        })?;
        let version: &'static str = result
            .get("protocolVersion")
            .and_then(|p| p.as_str())
            .and_then(|p| version::STATEFUL.iter().find(|v| **v == p))
            .ok_or_else(|| BackendFailure::Init("missing or unsupported protocolVersion".into()))?;
        let capabilities = result
            .get("capabilities")
            .map(Capabilities::from_json)
            .unwrap_or_default();
        pool.keep_instructions(result);
        let initialized = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let ack = pool
            .post(
                session_id.as_deref(),
                version,
                initialized,
                Instant::now(),
                None,
            )
            .await?;
        let _ = final_message(ack.body).await;
        pool.mark_spoke_http();
        self.store_joined(
            pool,
            BackendSession::Ready {
                id: session_id,
                version,
                capabilities,
            },
        )
    }

    /// Sends `body` on the backend session (`sid`, `version`, from [`Session::ensure`]) in
    /// the backend's era: as it is to a stateful backend, with the era's envelope and headers
    /// to a sessionless one ([`sessionless::send`]). Either way a JSON-RPC answer comes back
    /// as [`Status::Ok`].
    pub async fn post(
        &self,
        pool: &Rc<Pool>,
        sid: Option<&str>,
        version: &'static str,
        body: &[u8],
        trace: Option<&crate::backend::upstream::Trace<'_>>,
    ) -> Result<Response, BackendFailure> {
        if sessionless::is_sessionless(version) {
            return sessionless::send(self, pool, body, trace).await;
        }
        Ok(pool.post(sid, version, body, Instant::now(), trace).await?)
    }

    /// Marks a backend session gone (the backend expired it).
    pub fn forget(&self, b: u16) {
        if let Some(slot) = self.backends.borrow_mut().get_mut(b as usize) {
            if !matches!(slot, BackendSession::Excluded) {
                *slot = BackendSession::Down;
            }
        }
    }

    /// The merged capabilities of the ready backends.
    pub fn merged_capabilities(&self) -> Vec<u8> {
        let mut all = Capabilities::default();
        for b in self.backends.borrow().iter() {
            if let BackendSession::Ready { capabilities, .. } = b {
                all.0 |= capabilities.0;
            }
        }
        let tools = all.has(Capabilities::TOOLS);
        let prompts = all.has(Capabilities::PROMPTS);
        let resources = all.has(Capabilities::RESOURCES);
        let subscribe = all.has(Capabilities::SUBSCRIBE);
        let logging = all.has(Capabilities::LOGGING);
        let completions = all.has(Capabilities::COMPLETIONS);
        let mut caps = serde_json::Map::new();
        let obj = |pairs: &[(&str, bool)]| {
            serde_json::Value::Object(
                pairs
                    .iter()
                    .filter(|(_, on)| *on)
                    .map(|(k, v)| (k.to_string(), serde_json::Value::Bool(*v)))
                    .collect(),
            )
        };
        // ringmux's lists change whenever a backend's does, or a backend goes or comes back:
        // list_changed is relayed on the client's streams.
        if tools {
            caps.insert("tools".into(), obj(&[("listChanged", true)]));
        }
        if prompts {
            caps.insert("prompts".into(), obj(&[("listChanged", true)]));
        }
        if resources {
            caps.insert(
                "resources".into(),
                obj(&[("subscribe", subscribe), ("listChanged", true)]),
            );
        }
        if logging {
            caps.insert("logging".into(), obj(&[]));
        }
        if completions {
            caps.insert("completions".into(), obj(&[]));
        }
        serde_json::to_vec(&caps).expect("serializing a map")
    }

    /// Writes `,"instructions":"…"` with the instructions of this session's ready backends, in
    /// config order, each under a heading naming its backend (the names the client sees are
    /// prefixed with it); nothing when none gave any.
    pub fn write_instructions(&self, pools: &[Rc<Pool>], out: &mut Vec<u8>) {
        let mut text = String::new();
        let backends = self.backends.borrow();
        for (pool, b) in pools.iter().zip(backends.iter()) {
            let kept = pool.instructions.borrow();
            let (BackendSession::Ready { .. }, Some(instructions)) = (b, kept.as_deref()) else {
                continue;
            };
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str("## ");
            text.push_str(pool.name());
            text.push('\n');
            text.push_str(instructions.trim_end());
        }
        if !text.is_empty() {
            out.extend_from_slice(b",\"instructions\":");
            jsonrpc::write_str(out, &text);
        }
    }

    /// What backend `b` declared, if it is live in this session.
    pub fn capabilities(&self, b: u16) -> Capabilities {
        match self.backends.borrow().get(b as usize) {
            Some(BackendSession::Ready { capabilities, .. }) => *capabilities,
            _ => Capabilities::default(),
        }
    }

    /// Whether backend `b` is live in this session and declared capability `flag`
    /// (a [`Capabilities`] constant).
    pub fn has_capability(&self, b: u16, flag: u8) -> bool {
        matches!(
            self.backends.borrow().get(b as usize),
            Some(BackendSession::Ready { capabilities, .. }) if capabilities.has(flag)
        )
    }
}

/// The catalog view of a client: a hash of its declared capabilities in canonical form (keys
/// sorted), since backends may list different items to clients that can sample, elicit or
/// give roots.
pub fn view_of(init_params: &RawValue) -> u64 {
    #[derive(serde::Deserialize)]
    struct Init {
        #[serde(default)]
        capabilities: serde_json::Value,
    }
    let canonical = serde_json::from_str::<Init>(init_params.get())
        .map(|i| i.capabilities.to_string())
        .unwrap_or_default();
    xxhash_rust::xxh3::xxh3_64(canonical.as_bytes())
}

/// The key of a request id in the in-flight table: a hash of its JSON text.
pub fn request_key(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::Capabilities as C;

    #[test]
    fn views_follow_capabilities_not_their_order() {
        let view =
            |t: &str| super::view_of(&serde_json::value::RawValue::from_string(t.into()).unwrap());
        let a = view(
            r#"{"capabilities":{"sampling":{},"roots":{"listChanged":true}},"clientInfo":{"name":"a"}}"#,
        );
        let b = view(
            r#"{"clientInfo":{"name":"b"},"capabilities":{"roots":{"listChanged":true},"sampling":{}}}"#,
        );
        assert_eq!(a, b, "same capabilities, same view");
        assert_ne!(
            a,
            view(r#"{"capabilities":{"roots":{"listChanged":true}}}"#)
        );
        assert_eq!(
            view(r#"{"capabilities":{}}"#),
            view(r#"{"capabilities":{},"clientInfo":{"name":"c"}}"#)
        );
    }

    #[test]
    fn capabilities_keep_what_ringmux_reads() {
        let c = C::from_json(&serde_json::json!({
            "tools": {"listChanged": true},
            "resources": {"subscribe": true},
            "logging": {},
            "experimental": {"x": 1}
        }));
        for (flag, on) in [
            (C::TOOLS, true),
            (C::PROMPTS, false),
            (C::RESOURCES, true),
            (C::SUBSCRIBE, true),
            (C::LOGGING, true),
            (C::COMPLETIONS, false),
        ] {
            assert_eq!(c.has(flag), on, "flag {flag}");
        }
        let no_subscribe = C::from_json(&serde_json::json!({"resources": {"subscribe": false}}));
        assert!(no_subscribe.has(C::RESOURCES) && !no_subscribe.has(C::SUBSCRIBE));
        assert_eq!(C::from_json(&serde_json::json!({})), C::default());
    }
}
#[cfg(test)]
mod size {
    /// A session is allocated once (in an `Rc`: 16 bytes of counts before it) and lives
    /// long: in mimalloc's 512-byte size class it costs 512 bytes, one byte more costs 640
    /// (measured with bench/compare.py's 100,000 idle sessions: 1,033 bytes each at 496,
    /// 1,135 to 1,152 at 504 and 536). Rare state goes in [`super::sessionless::Extras`],
    /// made on first need.
    #[test]
    fn a_session_fits_its_allocator_size_class() {
        assert!(16 + std::mem::size_of::<super::Session>() <= 512);
    }
}
