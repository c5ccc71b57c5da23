//! The backend transports: Streamable HTTP and 2026-07-28 servers through the HTTP client
//! ([`upstream`]: per-shard keep-alive pools, health and backoff, era detection, JSON and SSE
//! bodies), and stdio children and legacy HTTP+SSE servers through an actor each ([`stdio`]).

pub mod health;
pub mod http;
pub mod legacy_sse;
pub mod link;
pub mod process;
pub mod stdio;
pub mod upstream;
