//! A client session's life on its shard, beyond what the shard keeps: creating it (for an
//! `initialize`, or a 2026-07-28 principal's first request) with its backend sessions joining
//! in the background; a backend joining later (announced to the client, its GET stream
//! joining the client's); the client's GET stream, which opens every backend's own; and the
//! sweep that ends idle sessions and parked calls past their expiry.

use std::rc::Rc;
use std::time::Instant;

use ringmux_core::error::HttpReject;
use ringmux_core::jsonrpc::Raw;
use ringmux_core::version;

use crate::handlers::modern::NOT_ANSWERED;
use crate::handlers::relay;
use crate::reply::{session_not_found, Reply};
use crate::request::Principal;
use crate::session::principal::Parked;
use crate::session::streams::{Resume, Streams};
use crate::session::Session;
use crate::shard::Shard;

/// Creates a session for an `initialize` and its backend sessions. `legacy`: the id of
/// the legacy HTTP+SSE stream the client opened, which becomes the session's stream.
pub async fn create_session(
    shard: &Rc<Shard>,
    principal: &Principal,
    requested_version: Option<&str>,
    params: Box<serde_json::value::RawValue>,
    legacy: Option<&str>,
    route: u8,
) -> Rc<Session> {
    let pending = legacy.and_then(|id| shard.legacy_pending.borrow_mut().remove_entry(id));
    let id = match &pending {
        Some((id, _)) => id.clone(),
        None => shard.mint_session_id(),
    };
    let negotiated = version::negotiate(requested_version);
    let session = Rc::new(Session::new(
        id.clone(),
        principal.clone(),
        negotiated,
        params,
        shard.pools.len(),
        Instant::now(),
        Streams::new(
            shard.cfg.streams.replay_events,
            shard.cfg.streams.retry.as_millis() as u64,
            version::primes_streams(negotiated),
        ),
        route,
        shard.served(route).map(|r| &*r.backends),
    ));
    if let Some((_, (stream, _))) = pending {
        session.streams.adopt_get(stream);
        session.legacy.set(true);
    }
    // Findable at once (a legacy client's POSTs are accepted while backends join).
    shard.sessions.borrow_mut().insert(id, session.clone());
    shard.metrics.sessions.add(1);
    // Counted in the current generation's limiter, before a catch-up that may end it (and
    // count it out again).
    if let Some(l) = &shard.current().limiter {
        l.session(principal, true);
    }
    catch_up(shard, &session);
    if session.ended.get() {
        // A reload removed its route meanwhile: nothing to join; its id is unknown from now.
        return session;
    }
    // The client is answered once every backend has joined, or `initialize_wait_ms` has
    // passed: the slow and the hung join later, alone.
    join_missing(shard, &session);
    session.joined(shard.cfg.limits.initialize_wait).await;
    session.started.set(true);
    if session.legacy.get() {
        // A legacy client's one stream is its GET stream too: backends' unprompted
        // messages go there from the start.
        listen_backends(shard, &session);
    }
    session
}

/// Creates the 2026-07-28 principal session `key` ([`crate::handlers::modern`]) with the synthesized
/// initialize `params`. It is findable at once; requests that find it before its backend
/// sessions are initialized wait for them.
pub async fn create_principal(
    shard: &Rc<Shard>,
    key: &str,
    principal: &Principal,
    params: Box<serde_json::value::RawValue>,
    route: u8,
) -> Rc<Session> {
    let id: Rc<str> = Rc::from(key);
    let session = Rc::new(Session::new(
        id.clone(),
        principal.clone(),
        version::LATEST_STATEFUL,
        params,
        shard.pools.len(),
        Instant::now(),
        Streams::new(0, shard.cfg.streams.retry.as_millis() as u64, true),
        route,
        shard.served(route).map(|r| &*r.backends),
    ));
    let state = Rc::new(crate::session::principal::State::new());
    let _ = session.modern.set(state.clone());
    shard.sessions.borrow_mut().insert(id, session.clone());
    shard.metrics.sessions.add(1);
    catch_up(shard, &session);
    if session.ended.get() {
        return session;
    }
    join_missing(shard, &session);
    session.joined(shard.cfg.limits.initialize_wait).await;
    session.started.set(true);
    // Backends' unprompted messages (list changes, requests for roots) come on their own
    // streams.
    listen_backends(shard, &session);
    state.open();
    session
}

/// A reload made a newer generation current while the request making `session` ran: from
/// its insertion on, the session is one the reload's next ones will see, and it is brought to
/// the current generation now (with nothing awaited between, no reload comes in between).
fn catch_up(shard: &Rc<Shard>, session: &Rc<Session>) {
    let now = shard.current();
    if now.generation == shard.generation {
        return;
    }
    // Its route, found by path in the current generation (gone: the session ends).
    let Some(route) = now.same_route(shard, session.route()) else {
        now.end_session(&session.id);
        return;
    };
    session.move_route(route);
    // The backends it does not know yet, admitted (they join with the request's
    // `join_missing`, which reads the current generation).
    for pool in &now.pools {
        session.admit_backend(pool.index, now.exposes(route, pool.index as usize));
    }
}

/// Backend `b` joined `session` (at its start, later in the background, or for a call):
/// if the session ended meanwhile, the backend session is deleted again; if its client
/// was answered already, the backend's GET stream joins the client's (when that is
/// open) and the client hears that its lists changed.
pub fn joined(shard: &Rc<Shard>, session: &Rc<Session>, b: u16) {
    if session.ended.get() {
        shard.tear_down(session, &shard.pool_any(b));
        return;
    }
    if !session.started.get() {
        return;
    }
    session.add_listener(b, || {
        let (task, handle) = futures_util::future::abortable(relay::listen(
            shard.clone(),
            Rc::downgrade(session),
            b,
        ));
        monoio::spawn(task);
        handle
    });
    relay::announce_joined(shard, session, b);
}

/// A client's GET on the MCP endpoint: its standalone stream, or (with `Last-Event-ID`) the
/// stream that id belongs to, replayed from after it. The first GET stream also opens each
/// backend session's own GET stream, multiplexed into the client's.
pub fn open_get(
    shard: &Rc<Shard>,
    session: &str,
    principal: &Principal,
    route: u8,
    last_event_id: Option<&str>,
) -> Reply {
    let Some(session) = shard.session(Some(session), principal, route) else {
        return session_not_found();
    };
    let resume = match last_event_id.map(|id| Resume::parse(id).ok_or(id)) {
        None => None,
        Some(Ok(r)) if session.streams.knows(r) => Some(r),
        // Not an id of this session's: nothing to resume, and no empty stream to pretend so.
        Some(_) => {
            return Reply::reject(
                HttpReject::BadRequest,
                "Last-Event-ID names no event of this session",
            )
        }
    };
    let rx = session.streams.attach(resume);
    listen_backends(shard, &session);
    Reply::Stream(rx)
}

/// Opens every backend session's own stream into the client's stream 0, once per session.
pub fn listen_backends(shard: &Rc<Shard>, session: &Rc<Session>) {
    // The current generation's backends: one a reload added while this request ran too.
    let shard = shard.current();
    session.start_listening(|| {
        shard
            .pools
            .iter()
            .filter(|p| !p.cfg.retired)
            .map(|p| {
                let (task, handle) = futures_util::future::abortable(relay::listen(
                    shard.clone(),
                    Rc::downgrade(session),
                    p.index,
                ));
                monoio::spawn(task);
                (p.index, handle)
            })
            .collect()
    });
}

/// Starts creating, each in a task of its own, the backend sessions that are `Down` on
/// backends not cooling down (at creation: all of them). Nothing waits for them here: a
/// hung backend delays no one but its own callers. One that joins after the client's
/// `initialize` was answered is announced to it as a list change.
pub fn join_missing(shard: &Rc<Shard>, session: &Rc<Session>) {
    // The current generation's backends (a reload may have come since the request began).
    let shard = &shard.current();
    let now = Instant::now();
    for pool in &shard.pools {
        let b = pool.index;
        if pool.cfg.retired || !pool.is_healthy(now) || !session.mark_joining(b) {
            continue;
        }
        let (session, shard, pool) = (session.clone(), shard.clone(), pool.clone());
        monoio::spawn(async move {
            match session.run_join(&pool).await {
                Ok(()) => joined(&shard, &session, b),
                Err(e) => {
                    tracing::warn!(backend = %pool.name(), session = %session.id, "backend session not created: {e}")
                }
            }
        });
    }
}

/// Ends sessions idle longer than the configured limit with no GET stream open, and
/// legacy sessions whose stream is gone (on that transport the stream is the session).
pub fn sweep(shard: &Rc<Shard>, now: Instant) {
    let limit = shard.cfg.limits.session_idle;
    shard
        .legacy_pending
        .borrow_mut()
        .retain(|_, (tx, _)| !tx.is_closed());
    let idle: Vec<Rc<str>> = shard
        .sessions
        .borrow()
        .iter()
        .filter(|(_, s)| {
            // A client listening on its GET stream is still there, however quiet; a legacy
            // session without one is over.
            if let Some(m) = s.modern.get() {
                tell_unanswered(shard, s, m.expire(now));
                return !m.busy() && now.duration_since(s.last_used.get()) > limit;
            }
            !s.streams.has_get()
                && (s.legacy.get() || now.duration_since(s.last_used.get()) > limit)
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in idle {
        tracing::debug!(session = %id, "session idle too long; ending it");
        shard.end_session(&id);
    }
}

/// Parked 2026-07-28 calls past their expiry: the backends that asked are told, rather than
/// left waiting on their own timeouts; each parked call's stream closes after that.
fn tell_unanswered(shard: &Rc<Shard>, session: &Rc<Session>, expired: Vec<Parked>) {
    for mut parked in expired {
        // The backend call is over for the client (its in-flight entry goes now).
        drop(parked.call.take());
        let (shard, session) = (shard.clone(), session.clone());
        monoio::spawn(async move {
            for ask in &parked.asks {
                let pool = &shard.pool_any(ask.backend);
                let id = Some(Raw::from(&*ask.id));
                crate::handlers::mrtr::answer_backend(
                    &shard,
                    &session,
                    pool,
                    id,
                    Err(NOT_ANSWERED),
                )
                .await;
            }
            drop(parked);
        });
    }
}
