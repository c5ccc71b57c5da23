//! ringmux: a thread-per-core MCP gateway on io_uring.
//!
//! Parts:
//! - [`server`]: binds SO_REUSEPORT listeners and starts one pinned monoio runtime per shard.
//! - [`conn`]: a client connection (the only code touching client sockets) and the front door.
//! - [`shard`]: a shard's state (sessions, pools, catalog cache) and its request entry point.
//! - [`dispatch`]: the MCP method table and the handlers (initialize, lists, routed calls).
//! - [`session`]: client sessions and their backend sessions.
//! - [`modern`]: the sessionless era (2026-07-28) served to modern clients.
//! - [`sessionless`]: the sessionless era spoken to backends.
//! - [`federation`]: per-shard catalog cache and merged indices.
//! - [`upstream`]: the backend HTTP client (pools, health, JSON and SSE bodies).
//! - [`stdio`]: stdio backends: child processes, their actors, id remapping, restarts.
//! - [`drain`]: graceful shutdown of a shard (SIGTERM, SIGINT).
//! - [`hop`]: cross-shard hand-off through lock-free channels.
//! - [`metrics`]: per-shard counters and the Prometheus scrape.
//! - [`probe`]: a small blocking MCP client (the `ringmux tools` command, tests).
//! - [`demo`]: the embedded default: two mock backends behind a gateway.

pub mod bufs;
pub mod conn;
pub mod demo;
pub mod dispatch;
pub mod drain;
pub mod federation;
pub mod hop;
pub mod io;
pub mod legacy;
pub mod lifecycle;
pub mod metrics;
pub mod modern;
pub mod modern_front;
pub mod peers;
pub mod pipeline;
pub mod principal;
pub mod probe;
pub mod relay;
pub mod reply;
pub mod request;
pub mod server;
pub mod session;
pub mod sessionless;
pub mod sessionless_wire;
pub mod shard;
pub mod shutdown;
pub mod stdio;
pub mod streams;
pub mod upstream;
