//! ringmux-load: the tools that drive ringmux from outside.
//!
//! Parts:
//! - [`mock`]: the fast mock MCP server (Streamable HTTP on monoio), used as the direct
//!   backend in benchmarks, by the integration tests, by the gateway's demo, and as the server
//!   the official MCP conformance suite runs against. The `ringmux-mock` binary wraps it.
//! - [`load`]: the MCP load generator (closed and open loop, HDR latency, errors by kind).
//!   The `ringmux-load` binary wraps it.

pub mod load;
pub mod mock;
