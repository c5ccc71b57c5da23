//! The config file's schema as written (YAML, read by serde): every key with its default.
//! [`super::File::validate`] checks it into [`super::Config`].

use serde::Deserialize;
use std::collections::BTreeMap;

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
    /// Authentication: JWT access tokens and API keys (absent: none).
    #[serde(default)]
    pub auth: Option<super::AuthFile>,
    /// TLS on the listener: certificate and key files, client certificates (absent: plain HTTP).
    #[serde(default)]
    pub tls: Option<super::TlsFile>,
    /// Authorization: CEL rules deciding which tools, prompts and resources each principal
    /// sees and may use (absent: all of them). See ARCHITECTURE.md, "Authorization".
    #[serde(default)]
    pub authz: Option<super::AuthzFile>,
    /// An audit log: one JSON line per authorization decision (refusals; allowed calls too if
    /// asked), and per refused backend request to a client (absent: none).
    #[serde(default)]
    pub audit: Option<super::AuditFile>,
    /// Tool poisoning: pinned definitions (a changed one is quarantined until approved),
    /// shadowing of another backend's tool, instructions in descriptions (absent: none).
    #[serde(default)]
    pub tool_safety: Option<super::ToolSafetyFile>,
    /// Rate limits (token buckets) per principal, per principal and tool, per backend;
    /// requests in progress and sessions per principal (absent: none).
    #[serde(default)]
    pub rate_limits: Option<super::RateLimitsFile>,
    /// Secrets and personal data masked in tool results, prompts and resource contents before
    /// they reach clients, and in calls' arguments (absent: none).
    #[serde(default)]
    pub masking: Option<super::MaskingFile>,
    /// The admin listener: `/metrics`, `/healthz`, `/readyz`, off the MCP listener.
    #[serde(default)]
    pub admin: AdminFile,
    /// OpenTelemetry traces: a span per MCP request and per backend exchange, exported over
    /// OTLP/HTTP (absent: none, and no cost).
    #[serde(default)]
    pub traces: Option<TracesFile>,
    /// The access log: one JSON line per MCP request (absent: none).
    #[serde(default)]
    pub access_log: Option<AccessLogFile>,
    /// Virtual servers: MCP endpoints at paths of their own, each exposing some backends and
    /// tools (renamed, described anew, arguments fixed), with their own `auth:` and `authz:`.
    #[serde(default)]
    pub routes: Vec<super::RouteFile>,
    /// Hot reload (SIGHUP always reloads).
    #[serde(default)]
    pub reload: ReloadFile,
    /// The MCP servers ringmux fronts (at least one).
    pub backends: Vec<BackendFile>,
}

/// `traces:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracesFile {
    /// The OTLP/HTTP traces endpoint, e.g. `http://127.0.0.1:4318/v1/traces` (plain http).
    pub endpoint: String,
    /// The share of requests traced when the client sent no trace context (one that did
    /// decides by its sampled flag). Default 1.
    #[serde(default = "one")]
    pub sample_ratio: f64,
    /// `service.name` of the spans' resource. Default `ringmux`.
    #[serde(default = "ringmux_name")]
    pub service_name: String,
}

fn one() -> f64 {
    1.0
}

fn ringmux_name() -> String {
    "ringmux".into()
}

/// Checked `traces:`.
#[derive(Debug, Clone)]
pub struct Traces {
    /// `host:port` to connect to, the `Host` header, and the path.
    pub addr: String,
    pub host: String,
    pub path: String,
    pub sample_ratio: f64,
    pub service_name: String,
}

impl TracesFile {
    pub fn check(self) -> Result<Traces, super::ConfigError> {
        let rest = self.endpoint.strip_prefix("http://").ok_or_else(|| {
            super::err(
                "traces.endpoint",
                "an http:// URL of an OTLP/HTTP collector (https is not supported yet)",
            )
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/v1/traces"),
        };
        if authority.is_empty() {
            return Err(super::err("traces.endpoint", "names no host"));
        }
        let addr = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(super::err("traces.sample_ratio", "a share between 0 and 1"));
        }
        Ok(Traces {
            addr,
            host: authority.to_owned(),
            path: path.to_owned(),
            sample_ratio: self.sample_ratio,
            service_name: self.service_name,
        })
    }
}

/// `reload:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadFile {
    /// How often the config file is read to see whether it changed (its text differs from
    /// the running config's): then it is reloaded as on SIGHUP. 0: only on SIGHUP.
    #[serde(default = "default_watch_interval")]
    pub watch_interval_ms: u64,
}

impl Default for ReloadFile {
    fn default() -> Self {
        ReloadFile {
            watch_interval_ms: default_watch_interval(),
        }
    }
}

fn default_watch_interval() -> u64 {
    1000
}

/// `access_log:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogFile {
    /// A file (appended to, created if missing) or `-` for standard output.
    pub path: String,
}

/// Checked `access_log:`.
#[derive(Debug, Clone)]
pub struct AccessLog {
    /// `None`: standard output.
    pub path: Option<std::path::PathBuf>,
}

impl AccessLogFile {
    pub fn check(self) -> Result<AccessLog, super::ConfigError> {
        if self.path.is_empty() {
            return Err(super::err(
                "access_log.path",
                "a file, or - for standard output",
            ));
        }
        Ok(AccessLog {
            path: (self.path != "-").then(|| self.path.into()),
        })
    }
}

/// `admin:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// Where the admin listener listens (plain HTTP; keep it on loopback or a private
    /// network: it names shards, sessions and backends). Port 0 picks a free one; `off`
    /// runs none (no metrics, probes or admin API).
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// SHA-256 of the admin API's bearer token, 64 hex digits (`printf %s "$TOKEN" |
    /// sha256sum`). Set: every `/api/` request needs it. Unset: the API reads, and changes
    /// only on a loopback listener.
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// TLS on the admin listener: its own certificate and key, and with `client_ca` the
    /// client certificates it requires (`client_auth: required`) (absent: plain HTTP).
    #[serde(default)]
    pub tls: Option<super::TlsFile>,
}

impl Default for AdminFile {
    fn default() -> Self {
        AdminFile {
            listen: default_admin_listen(),
            token_sha256: None,
            tls: None,
        }
    }
}

fn default_admin_listen() -> String {
    "127.0.0.1:9464".into()
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
    /// Not a key of the file: a backend a reload removed, kept in its place so that every
    /// other backend keeps its index ([`super::reload`]).
    #[serde(skip)]
    pub retired: bool,
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
    /// The credential ringmux presents to this backend (a client's own is never passed on):
    /// `env:` or `file:` holds the secret, sent as `Authorization: Bearer <secret>` or in
    /// `header:`.
    #[serde(default)]
    pub credentials: Option<super::CredentialsFile>,
    /// The requests this backend may send ringmux's clients: any of `sampling` (it would use
    /// the client's model), `elicitation` (a form shown to the user), `elicitation_url` (the
    /// user sent to a URL) and `roots` (the client's directories). Absent: all of them. A
    /// request not allowed is answered to the backend with an error (-32601) and never reaches
    /// the client.
    #[serde(default)]
    pub client_requests: Option<Vec<super::ClientRequest>>,
    /// TLS toward an `https://` backend: its CA bundle (default: the platform's roots), the
    /// name its certificate must carry, and a client certificate.
    #[serde(default)]
    pub tls: Option<super::BackendTlsFile>,
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
    /// The circuit breaker: when failures open it (it stays open for `retry_backoff_ms`,
    /// doubling), how it probes before closing, and what lists show meanwhile.
    #[serde(default)]
    pub circuit: CircuitFile,
    /// Active health checks: a `ping` (a 2026-07-28 backend: `server/discover`) at an
    /// interval from every shard; a failed one counts like a failed call, and one that
    /// answers closes a half-open circuit. HTTP backends only (stdio children are watched
    /// by their supervisor). Absent: none.
    #[serde(default)]
    pub health_check: Option<HealthCheckFile>,
}

/// `backends[].circuit` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitFile {
    /// Refused connections or unreadable answers in a row that open the circuit (timeouts
    /// count after 3 in a row).
    pub consecutive_failures: u32,
    /// The share of failed exchanges (5xx answers and timeouts included) among the last
    /// `window` that opens it; 0 turns this off.
    pub error_rate: f32,
    /// Exchanges the error rate is taken over (at most 64).
    pub window: u32,
    /// Exchanges let through at once when half-open.
    pub half_open_probes: u32,
    /// Leave the backend's tools, prompts and resources out of lists while open (default:
    /// keep serving them from the last good catalog; calls to them fail fast).
    pub hide_when_open: bool,
}

impl Default for CircuitFile {
    fn default() -> Self {
        CircuitFile {
            consecutive_failures: 1,
            error_rate: 0.0,
            window: 20,
            half_open_probes: 1,
            hide_when_open: false,
        }
    }
}

/// `backends[].health_check` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    pub interval_ms: u64,
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
pub(super) fn default_max_response() -> usize {
    32 << 20
}
fn default_response_budget() -> usize {
    512 << 20
}
fn default_retry_backoff() -> u64 {
    1_000
}
