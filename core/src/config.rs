//! The YAML config: serde types a user writes ([`File`]) and the checked internal form
//! ([`Config`]) the gateway runs on. Every error names the key path it is about.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::names::{self, PrefixMode};

/// The config file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Address the MCP endpoint listens on, e.g. `127.0.0.1:8080` (port 0 picks a free one).
    pub listen: String,
    /// Number of shards (one monoio runtime, pinned to one core, each). 0: one per available core.
    #[serde(default)]
    pub shards: usize,
    /// Pin each shard's thread to a core (shard i on the i-th allowed CPU).
    #[serde(default = "yes")]
    pub pin_cores: bool,
    /// io_uring submission queue entries per shard.
    #[serde(default = "default_ring_entries")]
    pub ring_entries: u32,
    /// A connection whose request belongs to another shard's session is handed to that shard
    /// (once per connection) instead of forwarding each of its requests. See ARCHITECTURE.md.
    #[serde(default = "yes")]
    pub handoff: bool,
    /// Path of the Streamable HTTP endpoint.
    #[serde(default = "default_path")]
    pub path: String,
    /// Legacy HTTP+SSE transport (2024-11-05) for old clients: `GET` here opens the stream
    /// whose first event names the URI to POST to. Empty: not served.
    #[serde(default = "default_sse_path")]
    pub sse_path: String,
    /// Where legacy clients POST their messages (`?sessionId=` names the stream).
    #[serde(default = "default_message_path")]
    pub message_path: String,
    /// `serverInfo.name` ringmux reports in `initialize`.
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// Browser origins allowed to call the endpoint, besides localhost ones
    /// (`http://localhost[:port]`, `http://127.0.0.1[:port]`, `http://[::1][:port]`), which are
    /// always allowed. `"*"` allows any origin. Requests without `Origin` (non-browser clients)
    /// are always allowed.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// How federated names are formed.
    #[serde(default)]
    pub names: NamesFile,
    /// Request limits and client timeouts.
    #[serde(default)]
    pub limits: LimitsFile,
    /// Backend catalog caching.
    #[serde(default)]
    pub catalog: CatalogFile,
    /// Server-to-client SSE streams.
    #[serde(default)]
    pub streams: StreamsFile,
    /// The sessionless era (2026-07-28) served to modern clients.
    #[serde(default)]
    pub modern: ModernFile,
    /// The MCP servers ringmux fronts (at least one).
    pub backends: Vec<BackendFile>,
}

/// `modern:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModernFile {
    /// Header naming a client's principal, trusted as given (set it only behind a proxy that
    /// authenticates clients): modern requests with the same value (and the same declared
    /// capabilities) share backend sessions on the shard that value hashes to, and a stateful
    /// session is bound to the value it was initialized with (another value presenting its id
    /// is 404). Empty: every client is the one anonymous principal.
    #[serde(default)]
    pub principal_header: String,
    /// How long an `input_required` result's `requestState` stays valid (the client's answer
    /// must come back within it; the backend's call waits that long). Also how long a
    /// stateful client has to answer the requests a sessionless backend's `input_required`
    /// put to it.
    #[serde(default = "default_request_state_ttl")]
    pub request_state_ttl_ms: u64,
    /// The key sealing `requestState` (AEAD): 64 hex digits. Give the same key to replicas that
    /// share a load balancer. Empty: a random key per process.
    #[serde(default)]
    pub request_state_key: String,
}

impl Default for ModernFile {
    fn default() -> Self {
        ModernFile {
            principal_header: String::new(),
            request_state_ttl_ms: default_request_state_ttl(),
            request_state_key: String::new(),
        }
    }
}

/// `names:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamesFile {
    /// Between a backend's name and an item's name: `<backend><separator><tool>`.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// `always`: every backend's names are prefixed; `conditional`: only when there is more than
    /// one backend. A backend's own `prefix: false` overrides both.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

impl Default for NamesFile {
    fn default() -> Self {
        NamesFile {
            separator: default_separator(),
            prefix: default_prefix(),
        }
    }
}

/// `limits:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Largest request body accepted; larger is answered 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest request head accepted; larger is answered 431.
    #[serde(default = "default_max_header")]
    pub max_header_bytes: usize,
    /// Items per merged list page (0: no limit, one page).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// A client must send a complete request head within this time of its first byte (a
    /// deadline, not an idle timer: trickling bytes does not extend it). Else 408.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
    /// A request body must arrive within this time of the end of its head, plus one second per
    /// `min_body_rate` bytes received (so large bodies on slow links get through while a
    /// trickle does not). Else 408.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_ms: u64,
    /// Bytes per second a large body must at least average (see `body_timeout_ms`).
    #[serde(default = "default_min_body_rate")]
    pub min_body_rate: usize,
    /// Client connections open at once, over all shards (each shard gets an equal share);
    /// one more is accepted and closed at once. 0: three quarters of the process's
    /// descriptor limit (RLIMIT_NOFILE, raised to its hard limit at start), so that backend
    /// connections and stdio children always have descriptors left.
    #[serde(default)]
    pub max_connections: usize,
    /// Every write to a client must complete within this long (a client that stops reading
    /// its answer or stream is disconnected instead of holding the connection and its
    /// buffers).
    #[serde(default = "default_write_timeout")]
    pub write_timeout_ms: u64,
    /// An idle keep-alive connection is closed after this long.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
    /// A session unused this long is ended (its backend sessions deleted).
    #[serde(default = "default_session_idle")]
    pub session_idle_timeout_ms: u64,
    /// A client's `initialize` is answered once every backend session is created, or after
    /// this long; backends slower than that (or down) join the session when they answer, and
    /// the client is told its lists changed.
    #[serde(default = "default_initialize_wait")]
    pub initialize_wait_ms: u64,
    /// What a session keeps of its client's `initialize` (protocolVersion, capabilities,
    /// clientInfo) may take this many bytes; over it, clientInfo is cut to name and version,
    /// and a still larger one is refused (-32602).
    #[serde(default = "default_max_initialize_params")]
    pub max_initialize_params_bytes: usize,
    /// Backend sessions deleted at once per shard when client sessions end (expiry storms
    /// queue the rest; a queue past 100,000 drops the newest, left to expire on the backend).
    #[serde(default = "default_max_teardowns")]
    pub max_concurrent_teardowns: usize,
    /// Backend answers held in memory at once while they are read (JSON bodies, SSE events
    /// not yet complete, list pages) or written to slow clients (answers over 64 KiB), over
    /// all shards (each gets an equal share, which must
    /// be at least every backend's `max_response_bytes`). A call whose answer would pass it
    /// fails (-32603) instead.
    #[serde(default = "default_response_budget")]
    pub response_budget_bytes: usize,
    /// On SIGTERM or SIGINT, calls in progress get this long to finish before their
    /// connections are closed (a second signal exits at once).
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_ms: u64,
}

impl Default for LimitsFile {
    fn default() -> Self {
        LimitsFile {
            max_body_bytes: default_max_body(),
            max_header_bytes: default_max_header(),
            page_size: default_page_size(),
            header_timeout_ms: default_header_timeout(),
            body_timeout_ms: default_body_timeout(),
            min_body_rate: default_min_body_rate(),
            max_connections: 0,
            write_timeout_ms: default_write_timeout(),
            idle_timeout_ms: default_idle_timeout(),
            session_idle_timeout_ms: default_session_idle(),
            initialize_wait_ms: default_initialize_wait(),
            max_initialize_params_bytes: default_max_initialize_params(),
            max_concurrent_teardowns: default_max_teardowns(),
            response_budget_bytes: default_response_budget(),
            shutdown_grace_ms: default_shutdown_grace(),
        }
    }
}

/// `catalog:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    /// A backend's cached list is refetched after this long even without list_changed.
    #[serde(default = "default_catalog_ttl")]
    pub ttl_ms: u64,
}

impl Default for CatalogFile {
    fn default() -> Self {
        CatalogFile {
            ttl_ms: default_catalog_ttl(),
        }
    }
}

/// `streams:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamsFile {
    /// Events kept per session for `Last-Event-ID` resumption (oldest dropped first).
    #[serde(default = "default_replay_events")]
    pub replay_events: usize,
    /// `retry` sent in each stream's priming event: how long a client waits before resuming.
    #[serde(default = "default_retry")]
    pub retry_ms: u64,
    /// A comment is written on a stream that has been quiet this long (keeps proxies from
    /// closing it, and finds clients that went away).
    #[serde(default = "default_keepalive")]
    pub keepalive_ms: u64,
}

impl Default for StreamsFile {
    fn default() -> Self {
        StreamsFile {
            replay_events: default_replay_events(),
            retry_ms: default_retry(),
            keepalive_ms: default_keepalive(),
        }
    }
}

/// One entry of `backends:`.
/// A `url:` backend's `transport:` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Found out per shard by asking.
    Auto,
    /// A stateful Streamable HTTP server (`initialize`, sessions).
    StreamableHttp,
    /// A 2026-07-28 server.
    Sessionless,
    /// A legacy HTTP+SSE (2024-11-05) server; `url` is its SSE endpoint.
    Sse,
}

/// A stdio or legacy SSE backend's `mode:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    PerSession,
    Shared,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendFile {
    /// Unique name; the prefix of its tools (`A-Z a-z 0-9 _ -`, at most 64).
    pub name: String,
    /// Streamable HTTP endpoint, `http://host:port/path`. Exactly one of `url` and `command`.
    #[serde(default)]
    pub url: Option<String>,
    /// A stdio backend: the program ringmux spawns and speaks newline-delimited JSON-RPC with
    /// over its stdin/stdout (searched in `PATH` when it has no `/`).
    #[serde(default)]
    pub command: Option<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables set for it on top of ringmux's own environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Its working directory (default: ringmux's).
    #[serde(default)]
    pub cwd: Option<String>,
    /// `per_session` (default): one child (or legacy SSE connection) per client session,
    /// started by its `initialize` and stopped when the session ends. `shared`: one for every
    /// session, with ids and progress tokens remapped so sessions never see each other's
    /// traffic. For stdio and legacy SSE backends.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// For a `url`: `auto` (default: ask `server/discover` in the 2026-07-28 era, else
    /// `initialize`, else the legacy HTTP+SSE stream; the answer is kept per shard until the
    /// backend fails), `streamable_http` (a stateful server, `initialize` and sessions),
    /// `sessionless` (a 2026-07-28 server), or `sse` for a legacy HTTP+SSE (2024-11-05) server
    /// whose `url` is its SSE endpoint.
    #[serde(default)]
    pub transport: Option<Transport>,
    /// Overrides `names.prefix` for this backend (`false`: keep its names as they are).
    #[serde(default)]
    pub prefix: Option<bool>,
    /// Connecting to the backend must succeed within this time.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// A request to the backend must be answered (the response head, or the next piece of a
    /// body or SSE stream) within this time. SSE comments and progress reset it.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// However lively the backend's stream (keep-alive comments, progress), a request must
    /// be answered whole within this time of being sent; then the call fails (-32603).
    #[serde(default = "default_request_deadline")]
    pub request_deadline_ms: u64,
    /// Largest answer accepted from the backend: a JSON body, or one SSE event. Larger fails
    /// the call (-32603) rather than exhausting memory. Default: 32 MiB, or a shard's share
    /// of `limits.response_budget_bytes` when that is smaller.
    #[serde(default)]
    pub max_response_bytes: Option<usize>,
    /// After a failure, the backend is not tried again for this long (doubling up to 32x while
    /// it keeps failing); calls fail fast meanwhile.
    #[serde(default = "default_retry_backoff")]
    pub retry_backoff_ms: u64,
}

fn yes() -> bool {
    true
}
fn default_ring_entries() -> u32 {
    1024
}
fn default_path() -> String {
    "/mcp".into()
}
fn default_sse_path() -> String {
    "/sse".into()
}
fn default_message_path() -> String {
    "/message".into()
}
fn default_server_name() -> String {
    "ringmux".into()
}
fn default_separator() -> String {
    "__".into()
}
fn default_prefix() -> String {
    "always".into()
}
fn default_max_body() -> usize {
    4 << 20
}
fn default_max_header() -> usize {
    16 << 10
}
fn default_page_size() -> usize {
    1000
}
fn default_header_timeout() -> u64 {
    10_000
}
fn default_body_timeout() -> u64 {
    10_000
}
/// 16 KiB/s: a 4 MiB body (the default limit) may take 10 s + 256 s.
fn default_min_body_rate() -> usize {
    16 << 10
}
fn default_write_timeout() -> u64 {
    30_000
}
fn default_idle_timeout() -> u64 {
    60_000
}
fn default_session_idle() -> u64 {
    3_600_000
}
fn default_initialize_wait() -> u64 {
    3_000
}
fn default_max_initialize_params() -> usize {
    16 << 10
}
fn default_shutdown_grace() -> u64 {
    15_000
}
fn default_max_teardowns() -> usize {
    8
}
fn default_catalog_ttl() -> u64 {
    300_000
}
fn default_replay_events() -> usize {
    256
}
fn default_retry() -> u64 {
    1_000
}
fn default_keepalive() -> u64 {
    15_000
}
fn default_request_state_ttl() -> u64 {
    300_000
}
fn default_connect_timeout() -> u64 {
    2_000
}
fn default_request_timeout() -> u64 {
    30_000
}
/// Ten minutes: long enough for a tool that works (or waits on a person) for minutes.
fn default_request_deadline() -> u64 {
    600_000
}
fn default_max_response() -> usize {
    32 << 20
}
fn default_response_budget() -> usize {
    512 << 20
}
fn default_retry_backoff() -> u64 {
    1_000
}

/// A config error, naming the key path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

/// The validated config.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Resolved: at least 1.
    pub shards: usize,
    pub pin_cores: bool,
    pub ring_entries: u32,
    pub handoff: bool,
    pub path: String,
    /// Legacy HTTP+SSE paths (`None`: not served).
    pub legacy: Option<(String, String)>,
    pub server_name: String,
    pub origins: OriginPolicy,
    pub separator: String,
    pub prefix_mode: PrefixMode,
    pub limits: Limits,
    pub catalog_ttl: Duration,
    pub streams: Streams,
    pub modern: Modern,
    pub backends: Vec<Backend>,
    /// Changes whenever the backend set changes; merged cursors carry it.
    pub fingerprint: u32,
}

/// Checked limits.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body: usize,
    pub max_header: usize,
    pub page_size: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// Bytes per second (never 0).
    pub min_body_rate: usize,
    /// 0: derived from the descriptor limit at start.
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub session_idle: Duration,
    pub initialize_wait: Duration,
    pub max_initialize_params: usize,
    pub max_concurrent_teardowns: usize,
    /// Per shard (`response_budget_bytes` divided among the shards).
    pub response_budget: usize,
    pub shutdown_grace: Duration,
}

/// Checked `streams:` settings.
#[derive(Debug, Clone)]
pub struct Streams {
    pub replay_events: usize,
    pub retry: Duration,
    pub keepalive: Duration,
}

/// Checked `modern:` settings.
#[derive(Debug, Clone)]
pub struct Modern {
    /// Lowercase header name, or `None`: one principal for every unauthenticated client.
    pub principal_header: Option<String>,
    pub request_state_ttl: Duration,
    /// `None`: the process draws a random key at start.
    pub request_state_key: Option<[u8; 32]>,
}

/// Who may send a browser `Origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    Any,
    /// Localhost origins plus these (exact, lowercase, no trailing slash).
    List(Vec<String>),
}

impl OriginPolicy {
    pub fn allows(&self, origin: &[u8]) -> bool {
        let Ok(origin) = std::str::from_utf8(origin) else {
            return false;
        };
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        match self {
            OriginPolicy::Any => true,
            OriginPolicy::List(list) => is_localhost_origin(&origin) || list.contains(&origin),
        }
    }
}

fn is_localhost_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = if rest.starts_with('[') {
        rest.split_inclusive(']').next().unwrap_or("")
    } else {
        rest.split(':').next().unwrap_or("")
    };
    let port_ok = rest[host.len()..].is_empty()
        || rest[host.len()..]
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok && matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// A checked backend.
#[derive(Debug, Clone)]
pub struct Backend {
    pub name: String,
    /// The URL (empty for a stdio backend).
    pub url: String,
    /// `host[:port]` for the Host header.
    pub authority: String,
    /// Where to connect (`host` as in the URL: a name or an IP literal).
    pub host: String,
    pub port: u16,
    /// `host` resolved: empty after [`File::validate`], which does no I/O; the gateway
    /// resolves it when it starts.
    pub addrs: Vec<SocketAddr>,
    pub path: String,
    pub prefixed: bool,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// At least `request_timeout`.
    pub request_deadline: Duration,
    pub max_response: usize,
    pub retry_backoff: Duration,
    /// Set for a stdio backend (then `url`, `authority`, `addrs` and `path` are empty).
    pub stdio: Option<StdioCommand>,
    /// A legacy HTTP+SSE (2024-11-05) server: `path` is its SSE endpoint.
    pub legacy_sse: bool,
    /// Which protocol era the backend speaks, when the config says.
    pub era: Era,
    /// stdio and legacy SSE backends: one child or connection shared by every session (else
    /// one per session).
    pub shared: bool,
}

impl Backend {
    /// Whether sessions reach this backend through a child actor (stdio, legacy SSE) rather
    /// than the Streamable HTTP pool.
    pub fn actor_driven(&self) -> bool {
        self.stdio.is_some() || self.legacy_sse
    }
}

/// The protocol era of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// Found out per shard by asking (`transport: auto`).
    Auto,
    /// Sessions and `initialize` (2024-11-05 … 2025-11-25): Streamable HTTP, stdio, legacy SSE.
    Stateful,
    /// 2026-07-28: every request carries its `_meta`, no session.
    Sessionless,
}

/// How to run a stdio backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioCommand {
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
}

/// The parts of an `http://` URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    pub authority: String,
    pub path: String,
}

/// Parses `http://host[:port][/path]`.
pub fn parse_http_url(url: &str) -> Result<HttpUrl, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        "only http:// backends are supported (TLS comes with a later release)".to_string()
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err("URL needs a host (and no userinfo)".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']').ok_or("unterminated IPv6 address")?;
        let host = &v6[..end];
        let port = match &v6[end + 1..] {
            "" => 80,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or("bad port")?,
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| "bad port")?),
            None => (authority.to_string(), 80),
        }
    };
    if host.is_empty() || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("malformed URL".into());
    }
    Ok(HttpUrl {
        host,
        port,
        authority: authority.to_string(),
        path: path.to_string(),
    })
}

impl File {
    /// Parses YAML text. Syntax and type errors carry the line, column and key.
    pub fn from_yaml(text: &str) -> Result<File, ConfigError> {
        serde_saphyr::from_str(text).map_err(|e| err("(file)", e.to_string()))
    }

    /// Checks everything; no I/O (backend host names are resolved by the gateway when it
    /// starts). `cores` is the number of usable cores.
    pub fn validate(self, cores: usize) -> Result<Config, ConfigError> {
        let listen = parse_listen(&self.listen).ok_or_else(|| {
            err(
                "listen",
                format!(
                    "not an IP address and port (or localhost:PORT): {:?}",
                    self.listen
                ),
            )
        })?;
        if self.shards > 1024 {
            return Err(err("shards", "at most 1024"));
        }
        let shards = if self.shards == 0 {
            cores.max(1)
        } else {
            self.shards
        };
        if !self.ring_entries.is_power_of_two() || !(8..=32768).contains(&self.ring_entries) {
            return Err(err("ring_entries", "a power of two from 8 to 32768"));
        }
        let plain = |p: &str| p.starts_with('/') && !p.contains(['?', '#', ' ']);
        if !plain(&self.path) {
            return Err(err("path", "must start with / and have no query"));
        }
        let legacy = if self.sse_path.is_empty() {
            None
        } else {
            for (key, p) in [
                ("sse_path", &self.sse_path),
                ("message_path", &self.message_path),
            ] {
                if !plain(p) || *p == self.path {
                    return Err(err(
                        key,
                        "must start with /, have no query, and differ from path",
                    ));
                }
            }
            if self.sse_path == self.message_path {
                return Err(err("message_path", "must differ from sse_path"));
            }
            Some((self.sse_path, self.message_path))
        };
        let origins = if self.allowed_origins.iter().any(|o| o == "*") {
            OriginPolicy::Any
        } else {
            let mut list = Vec::new();
            for (i, o) in self.allowed_origins.iter().enumerate() {
                if !(o.starts_with("http://") || o.starts_with("https://")) {
                    return Err(err(
                        format!("allowed_origins[{i}]"),
                        "an origin is scheme://host[:port]",
                    ));
                }
                list.push(o.trim_end_matches('/').to_ascii_lowercase());
            }
            OriginPolicy::List(list)
        };
        if !names::is_valid_separator(&self.names.separator) {
            return Err(err(
                "names.separator",
                "1 to 8 characters of A-Z a-z 0-9 _ - .",
            ));
        }
        let prefix_mode = match self.names.prefix.as_str() {
            "always" => PrefixMode::Always,
            "conditional" => PrefixMode::Conditional,
            other => {
                return Err(err(
                    "names.prefix",
                    format!("expected always or conditional, got {other:?}"),
                ))
            }
        };
        let l = &self.limits;
        if l.max_body_bytes == 0 || l.max_body_bytes > 1 << 30 {
            return Err(err("limits.max_body_bytes", "between 1 byte and 1 GiB"));
        }
        if !(1024..=1 << 20).contains(&l.max_header_bytes) {
            return Err(err("limits.max_header_bytes", "between 1 KiB and 1 MiB"));
        }
        for (key, v) in [
            ("limits.header_timeout_ms", l.header_timeout_ms),
            ("limits.body_timeout_ms", l.body_timeout_ms),
            ("limits.min_body_rate", l.min_body_rate as u64),
            ("limits.idle_timeout_ms", l.idle_timeout_ms),
            ("limits.write_timeout_ms", l.write_timeout_ms),
            ("limits.session_idle_timeout_ms", l.session_idle_timeout_ms),
            ("limits.initialize_wait_ms", l.initialize_wait_ms),
            (
                "limits.max_initialize_params_bytes",
                l.max_initialize_params_bytes as u64,
            ),
            (
                "limits.max_concurrent_teardowns",
                l.max_concurrent_teardowns as u64,
            ),
            ("catalog.ttl_ms", self.catalog.ttl_ms),
            ("streams.retry_ms", self.streams.retry_ms),
            ("streams.keepalive_ms", self.streams.keepalive_ms),
        ] {
            if v == 0 {
                return Err(err(key, "must be greater than 0"));
            }
        }
        let response_budget = l.response_budget_bytes / shards.max(1);
        if self.backends.is_empty() {
            return Err(err("backends", "at least one backend is needed"));
        }
        if self.backends.len() > u16::MAX as usize {
            return Err(err("backends", "too many backends"));
        }
        let count = self.backends.len();
        let mut backends = Vec::with_capacity(count);
        for (i, b) in self.backends.into_iter().enumerate() {
            let at = |k: &str| format!("backends[{i}].{k}");
            if !names::is_valid_backend_name(&b.name) {
                return Err(err(at("name"), "1 to 64 characters of A-Z a-z 0-9 _ -"));
            }
            if backends.iter().any(|o: &Backend| o.name == b.name) {
                return Err(err(
                    at("name"),
                    format!("duplicate backend name {:?}", b.name),
                ));
            }
            let shared = b.mode == Some(Mode::Shared);
            let (url, stdio, legacy_sse, era) = match (&b.url, &b.command) {
                (Some(u), None) => {
                    let url = parse_http_url(u).map_err(|m| err(at("url"), m))?;
                    let (legacy_sse, era) = match b.transport.unwrap_or(Transport::Auto) {
                        Transport::Auto => (false, Era::Auto),
                        Transport::StreamableHttp => (false, Era::Stateful),
                        Transport::Sessionless => (false, Era::Sessionless),
                        Transport::Sse => (true, Era::Stateful),
                    };
                    if !b.args.is_empty() || !b.env.is_empty() || b.cwd.is_some() {
                        return Err(err(
                            at("url"),
                            "args, env and cwd belong to stdio backends (command:)",
                        ));
                    }
                    if b.mode.is_some() && !legacy_sse {
                        return Err(err(
                            at("mode"),
                            "only stdio and legacy SSE (transport: sse) backends have a mode",
                        ));
                    }
                    (url, None, legacy_sse, era)
                }
                (None, Some(command)) => {
                    if command.is_empty() || command.contains('\0') {
                        return Err(err(at("command"), "must name a program"));
                    }
                    if b.transport.is_some() {
                        return Err(err(at("transport"), "stdio backends have no transport"));
                    }
                    let stdio = StdioCommand {
                        command: command.clone(),
                        args: b.args.clone(),
                        env: b.env.clone().into_iter().collect(),
                        cwd: b.cwd.clone(),
                    };
                    (HttpUrl::default(), Some(stdio), false, Era::Stateful)
                }
                (Some(_), Some(_)) => {
                    return Err(err(at("url"), "give either url or command, not both"))
                }
                (None, None) => {
                    return Err(err(
                        at("url"),
                        "missing: give url (Streamable HTTP) or command (stdio)",
                    ))
                }
            };
            let max_response = b
                .max_response_bytes
                .unwrap_or_else(|| default_max_response().min(response_budget));
            if !(1024..=1 << 30).contains(&max_response) {
                return Err(err(at("max_response_bytes"), "between 1 KiB and 1 GiB"));
            }
            if max_response > response_budget {
                return Err(err(
                    at("max_response_bytes"),
                    format!(
                        "larger than a shard's share of limits.response_budget_bytes ({response_budget} bytes)"
                    ),
                ));
            }
            for (k, v) in [
                ("connect_timeout_ms", b.connect_timeout_ms),
                ("request_timeout_ms", b.request_timeout_ms),
                ("request_deadline_ms", b.request_deadline_ms),
                ("retry_backoff_ms", b.retry_backoff_ms),
            ] {
                if v == 0 {
                    return Err(err(at(k), "must be greater than 0"));
                }
            }
            backends.push(Backend {
                prefixed: names::is_prefixed(prefix_mode, b.prefix, count),
                name: b.name,
                url: b.url.unwrap_or_default(),
                authority: url.authority,
                host: url.host,
                port: url.port,
                addrs: Vec::new(),
                path: url.path,
                connect_timeout: Duration::from_millis(b.connect_timeout_ms),
                request_timeout: Duration::from_millis(b.request_timeout_ms),
                request_deadline: Duration::from_millis(
                    b.request_deadline_ms.max(b.request_timeout_ms),
                ),
                max_response,
                retry_backoff: Duration::from_millis(b.retry_backoff_ms),
                stdio,
                legacy_sse,
                era,
                shared,
            });
        }
        let fingerprint = {
            let mut key = Vec::new();
            for b in &backends {
                key.extend_from_slice(b.name.as_bytes());
                key.push(0);
                key.push(b.prefixed as u8);
            }
            key.extend_from_slice(self.names.separator.as_bytes());
            xxhash_rust::xxh3::xxh3_64(&key) as u32
        };
        let modern = self.modern.check()?;
        Ok(Config {
            listen,
            shards,
            pin_cores: self.pin_cores,
            ring_entries: self.ring_entries,
            handoff: self.handoff,
            path: self.path,
            legacy,
            server_name: self.server_name,
            origins,
            separator: self.names.separator,
            prefix_mode,
            limits: Limits {
                max_body: l.max_body_bytes,
                max_header: l.max_header_bytes,
                page_size: l.page_size,
                header_timeout: Duration::from_millis(l.header_timeout_ms),
                body_timeout: Duration::from_millis(l.body_timeout_ms),
                min_body_rate: l.min_body_rate,
                max_connections: l.max_connections,
                idle_timeout: Duration::from_millis(l.idle_timeout_ms),
                write_timeout: Duration::from_millis(l.write_timeout_ms),
                session_idle: Duration::from_millis(l.session_idle_timeout_ms),
                initialize_wait: Duration::from_millis(l.initialize_wait_ms),
                max_initialize_params: l.max_initialize_params_bytes,
                max_concurrent_teardowns: l.max_concurrent_teardowns,
                response_budget,
                shutdown_grace: Duration::from_millis(l.shutdown_grace_ms),
            },
            catalog_ttl: Duration::from_millis(self.catalog.ttl_ms),
            streams: Streams {
                replay_events: self.streams.replay_events,
                retry: Duration::from_millis(self.streams.retry_ms),
                keepalive: Duration::from_millis(self.streams.keepalive_ms),
            },
            modern,
            backends,
            fingerprint,
        })
    }
}

impl ModernFile {
    fn check(self) -> Result<Modern, ConfigError> {
        let header = self.principal_header.trim().to_ascii_lowercase();
        if !header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(err(
                "modern.principal_header",
                "must be a header name (letters, digits, - and _)",
            ));
        }
        if self.request_state_ttl_ms == 0 {
            return Err(err("modern.request_state_ttl_ms", "must be greater than 0"));
        }
        let key = match self.request_state_key.trim() {
            "" => None,
            hex => Some(parse_key(hex).ok_or_else(|| {
                err(
                    "modern.request_state_key",
                    "must be 64 hex digits (32 bytes)",
                )
            })?),
        };
        Ok(Modern {
            principal_header: (!header.is_empty()).then_some(header),
            request_state_ttl: Duration::from_millis(self.request_state_ttl_ms),
            request_state_key: key,
        })
    }
}

fn parse_key(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

/// A listen address: an IP literal and port, or `localhost:PORT` (loopback, without asking a
/// resolver).
fn parse_listen(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    let port = text.strip_prefix("localhost:")?.parse().ok()?;
    Some(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Parses and validates YAML text.
pub fn load(text: &str, cores: usize) -> Result<Config, ConfigError> {
    File::from_yaml(text)?.validate(cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "listen: 127.0.0.1:0\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\n";

    #[test]
    fn validation_does_no_io() {
        // A host no resolver knows validates: the gateway resolves names when it starts.
        let cfg = load(
            "listen: localhost:0\nbackends:\n  - name: a\n    url: http://no-such-host.invalid:81/mcp\n    transport: streamable_http\n",
            2,
        )
        .unwrap();
        assert_eq!(cfg.listen, SocketAddr::from(([127, 0, 0, 1], 0)));
        let b = &cfg.backends[0];
        assert_eq!(
            (b.host.as_str(), b.port, b.addrs.len()),
            ("no-such-host.invalid", 81, 0)
        );
        assert_eq!(b.era, Era::Stateful);
        let e = load(
            "listen: example.com:80\nbackends:\n  - name: a\n    command: x\n",
            2,
        )
        .unwrap_err();
        assert_eq!(e.path, "listen");
    }

    #[test]
    fn answer_limits_fit_the_shards_share_of_the_budget() {
        let c = load(MINIMAL, 2).unwrap();
        assert_eq!(c.limits.response_budget, 256 << 20);
        assert_eq!(c.backends[0].max_response, 32 << 20);
        // 64 cores: the default limit shrinks to a shard's share instead of refusing to start.
        let c = load(MINIMAL, 64).unwrap();
        assert_eq!(c.backends[0].max_response, 8 << 20);
        let e = error_of(&format!(
            "{MINIMAL}    max_response_bytes: 1073741824\nlimits:\n  response_budget_bytes: 1048576\n"
        ));
        assert_eq!(e.path, "backends[0].max_response_bytes");
    }

    #[test]
    fn stdio_backends() {
        let yaml = "listen: 127.0.0.1:0\nbackends:\n  - name: s\n    command: node\n    args: [srv.js, stdio]\n    env: {A: b}\n    cwd: /tmp\n    mode: shared\n  - name: p\n    command: ./x\n";
        let cfg = load(yaml, 2).unwrap();
        let s = cfg.backends[0].stdio.as_ref().unwrap();
        assert_eq!(s.command, "node");
        assert_eq!(s.args, ["srv.js", "stdio"]);
        assert_eq!(s.env, [("A".to_string(), "b".to_string())]);
        assert_eq!(s.cwd.as_deref(), Some("/tmp"));
        assert!(cfg.backends[0].shared && cfg.backends[0].actor_driven());
        assert!(!cfg.backends[1].shared);
        let bad = |extra: &str| {
            load(
                &format!("listen: 127.0.0.1:0\nbackends:\n  - name: s\n{extra}"),
                2,
            )
            .unwrap_err()
            .path
        };
        // Enumerations are checked by the YAML reader: the message names the line and the
        // choices.
        let pooled = load(
            "listen: 127.0.0.1:0\nbackends:\n  - name: s\n    command: x\n    mode: pooled\n",
            2,
        )
        .unwrap_err();
        assert!(
            pooled.message.contains("pooled") && pooled.message.contains("per_session"),
            "{pooled:?}"
        );
        let transport = load(
            "listen: 127.0.0.1:0\nbackends:\n  - name: s\n    url: http://a:1/\n    transport: grpc\n",
            2,
        )
        .unwrap_err();
        assert!(
            transport.message.contains("grpc") && transport.message.contains("streamable_http"),
            "{transport:?}"
        );
        assert_eq!(
            bad("    command: x\n    url: http://127.0.0.1:9/\n"),
            "backends[0].url"
        );
        assert_eq!(bad("    prefix: false\n"), "backends[0].url");
        assert_eq!(
            bad("    url: http://127.0.0.1:9/\n    args: [a]\n"),
            "backends[0].url"
        );
        assert_eq!(bad("    command: \"\"\n"), "backends[0].command");
    }

    #[test]
    fn minimal_gets_defaults() {
        let c = load(MINIMAL, 2).unwrap();
        assert_eq!(c.shards, 2);
        assert_eq!(c.path, "/mcp");
        assert_eq!(c.limits.max_body, 4 << 20);
        assert_eq!(c.separator, "__");
        assert!(c.backends[0].prefixed);
        assert_eq!(c.backends[0].authority, "127.0.0.1:9");
        assert_eq!(c.backends[0].path, "/mcp");
    }

    fn error_of(yaml: &str) -> ConfigError {
        load(yaml, 1).unwrap_err()
    }

    #[test]
    fn errors_name_the_key_path() {
        let e = error_of(&format!("{MINIMAL}    prefix: maybe\n"));
        assert!(e.message.contains("prefix"), "{e}");
        let e = error_of(&MINIMAL.replace("http://127.0.0.1:9/mcp", "https://x/mcp"));
        assert_eq!(e.path, "backends[0].url");
        let e = error_of(&MINIMAL.replace("name: a", "name: a b"));
        assert_eq!(e.path, "backends[0].name");
        let e = error_of(&format!(
            "{MINIMAL}  - name: a\n    url: http://127.0.0.1:9/\n"
        ));
        assert_eq!(e.path, "backends[1].name");
        let e = error_of(&format!("{MINIMAL}names:\n  prefix: sometimes\n"));
        assert_eq!(e.path, "names.prefix");
        let e = error_of(&format!("{MINIMAL}limits:\n  max_header_bytes: 10\n"));
        assert_eq!(e.path, "limits.max_header_bytes");
        let e = error_of(&format!("{MINIMAL}bogus: 1\n"));
        assert!(e.message.contains("bogus"), "{e}");
        let e = error_of("listen: 127.0.0.1:0\nbackends: []\n");
        assert_eq!(e.path, "backends");
    }

    #[test]
    fn prefix_modes_resolve_per_backend() {
        let yaml = "listen: 127.0.0.1:0\nnames:\n  prefix: conditional\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/\n";
        assert!(!load(yaml, 1).unwrap().backends[0].prefixed);
        let two = format!("{yaml}  - name: b\n    url: http://127.0.0.1:9/\n    prefix: false\n");
        let c = load(&two, 1).unwrap();
        assert!(c.backends[0].prefixed);
        assert!(!c.backends[1].prefixed);
    }

    #[test]
    fn urls() {
        let u = parse_http_url("http://[::1]:81/x").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 81, "/x")
        );
        let u = parse_http_url("http://example").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        assert!(parse_http_url("http://:80/").is_err());
        assert!(parse_http_url("http://h:99999/").is_err());
        assert!(parse_http_url("http://u@h/").is_err());
    }

    #[test]
    fn origins() {
        let p = OriginPolicy::List(vec!["https://app.example.com".into()]);
        assert!(p.allows(b"http://localhost:3000"));
        assert!(p.allows(b"http://127.0.0.1"));
        assert!(p.allows(b"http://[::1]:8080"));
        assert!(p.allows(b"https://APP.example.com/"));
        assert!(!p.allows(b"http://evil.com"));
        assert!(!p.allows(b"http://localhost.evil.com"));
        assert!(!p.allows(b"http://localhost:80evil"));
        assert!(OriginPolicy::Any.allows(b"http://evil.com"));
    }
}
