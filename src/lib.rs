//! ringmux: a thread-per-core MCP gateway on io_uring.
//!
//! Layers, each importing only those below it (ARCHITECTURE.md shows the graph):
//! - [`front`]: the client transports. A connection ([`front::http`], the only code touching
//!   client sockets), the legacy HTTP+SSE stream ([`front::legacy`]), the 2026-07-28 front
//!   door ([`front::modern`]) and the cross-shard inbox ([`front::hop`]) turn bytes into one
//!   [`request::Request`].
//! - [`pipeline`]: the one path every request takes on the shard that owns its session:
//!   authenticate → admit → session → method table → authorize → handler.
//! - [`handlers`]: what a request does: initialize, lists and routed calls
//!   ([`handlers::dispatch`]), backend→client traffic ([`handlers::relay`]), the 2026-07-28
//!   handlers ([`handlers::modern`]), stateful clients through sessionless backends
//!   ([`handlers::sessionless`]), a session's life ([`handlers::lifecycle`]).
//! - [`shard`]: a shard's state (sessions, pools, catalog views, teardown queue); [`federation`]:
//!   its catalog cache and merged indices.
//! - [`session`]: client sessions, their backend sessions, streams and replay, a principal
//!   session's state, and how a session speaks to a 2026-07-28 backend.
//! - [`backend`]: the backend transports: the HTTP client ([`backend::upstream`]: pools,
//!   health, era detection, JSON and SSE bodies) and stdio / legacy SSE actors
//!   ([`backend::stdio`]).
//! - Below them: [`request`] and [`reply`] (what crosses the layers), [`peers`] (the shards'
//!   inboxes), [`drain`] (the drain flag), [`metrics`], [`bufs`], [`io`].
//! - Around them: [`server`] (listeners, shard runtimes), [`shutdown`] (graceful drain),
//!   [`probe`] (a small blocking MCP client: `ringmux tools`, tests), [`demo`].

pub mod access;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod backend;
pub mod bufs;
#[cfg(feature = "demo")]
pub mod demo;
pub mod drain;
pub mod federation;
pub mod front;
pub mod handlers;
pub mod inspect;
pub mod io;
pub mod latency;
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod otel;
pub mod peers;
pub mod pipeline;
pub mod prehashed;
pub mod probe;
pub mod record;
pub mod reload;
pub mod reply;
pub mod request;
pub mod routes;
pub mod safety;
pub mod server;
pub mod session;
pub mod shard;
pub mod shutdown;
pub mod snapshot;
pub mod tls;
