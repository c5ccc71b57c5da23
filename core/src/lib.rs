//! ringmux-core: the sans-IO heart of ringmux. Bytes in, decisions and bytes out; no sockets,
//! no runtime, no clock reads (time is passed in).
//!
//! Parts:
//! - [`jsonrpc`]: the lazy JSON-RPC envelope parser (id as raw bytes, method, the few params
//!   routing needs, with their byte spans) and error-response encoding.
//! - [`http`]: HTTP/1.1 request/response head parsing on `httparse`, head encoding, and the
//!   incremental chunked decoder.
//! - [`sse`]: the incremental Server-Sent Events decoder and the event encoder.
//! - [`catalog`]: a backend's list result kept as raw per-item byte spans.
//! - [`mask`]: secrets and personal data masked inside JSON strings (patterns in one `RegexSet`).
//! - [`merge`]: assembling merged, namespaced, paginated list pages from cached catalogs.
//! - [`method`]: the method table, one entry per MCP method with the properties the gateway
//!   decides by.
//! - [`modern`]: the members of a 2026-07-28 request that only that era reads.
//! - [`mux`]: the stdio multiplexer (many sessions on one child), its bookkeeping and decisions.
//! - [`safety`]: tool poisoning: canonical tool definitions (pins), the pin file, shadowing names.
//! - [`names`]: namespacing rules (prefix modes, the spec's tool-name rules, URI mapping).
//! - [`seal`]: sealed tokens (`requestState`), with the nonce and the time passed in.
//! - [`uris`]: resource URIs inside a prefixed backend's answers, mapped to the client's form.
//! - [`initialize`]: what a client session keeps of its `initialize` params, bounded.
//! - [`version`]: the MCP protocol versions ringmux speaks.
//! - [`backoff`]: exponential backoff after failures, with time passed in.
//! - [`auth`]: the credential a request presents, and the challenge that refuses it.
//! - [`authz`]: authorization rules in CEL, and the per-view decisions on listed items.
//! - [`affinity`]: the stable hash that pins a session to a shard.
//! - [`config`]: the YAML config schema and its validation into internal types.
//! - [`era`]: the era adapter, translating messages between the stateful and sessionless eras.
//! - [`error`]: the error kinds and the one mapping to JSON-RPC codes and HTTP statuses.
//! - `fuzz`: the properties the cargo-fuzz targets in `core/fuzz` check (also run by `cargo test`).

pub mod affinity;
pub mod auth;
pub mod authz;
pub mod backoff;
pub mod catalog;
pub mod circuit;
pub mod config;
pub mod era;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod initialize;
pub mod jsonrpc;
pub mod mask;
pub mod merge;
pub mod method;
pub mod modern;
pub mod mux;
pub mod names;
pub mod safety;
pub mod seal;
pub mod shape;
pub mod sse;
pub mod trace;
pub mod uris;
pub mod version;
