//! The YAML config: serde types a user writes ([`File`]) and the checked internal form
//! ([`Config`]) the gateway runs on. Every error names the key path it is about.

use std::net::SocketAddr;
use std::time::Duration;

use crate::names::{self, PrefixMode};

mod auth;
mod authz;
mod credentials;
mod file;
mod rates;
mod routes;
mod safety;
mod tls;
pub use auth::{fetchable, ApiKey, Auth, AuthFile, AuthMode, Jwks, Jwt, JwtFile};
pub(crate) use authz::walk;
pub use authz::{
    free_variables, Audit, AuditFile, Authz, AuthzFile, ClientRequest, Effect, Rule, RuleFile,
    VARIABLES,
};
pub use credentials::{Credentials, CredentialsFile, Secret, SecretSource};
pub use file::*;
pub use rates::{Bucket, BucketFile, RateLimits, RateLimitsFile};
pub use routes::{
    check as check_routes, pattern_regex, Override, OverrideFile, Route, RouteFile, Tools,
    ToolsFile, MAX_ROUTES,
};
pub use safety::{
    ArgumentsAction, Injection, InjectionFile, Masking, MaskingFile, PatternFile, PinMode, Pins,
    PinsFile, SafetyAction, Shadowing, ShadowingFile, ToolSafety, ToolSafetyFile,
    DEFAULT_INJECTION_PATTERNS,
};
pub use tls::{BackendTls, BackendTlsFile, ClientAuth, Tls, TlsFile};

impl Config {
    /// Every `auth:` block in order: the main endpoint's, then each route's (`None` where
    /// there is none).
    pub fn auth_blocks(&self) -> impl Iterator<Item = &Option<Auth>> {
        std::iter::once(&self.auth).chain(self.routes.iter().map(|r| &r.auth))
    }
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
    /// Authentication (`None`: every client is anonymous, or named by the trusted
    /// `modern.principal_header`).
    pub auth: Option<Auth>,
    /// TLS on the listener (`None`: plain HTTP).
    pub tls: Option<Tls>,
    /// Authorization rules (`None`: every principal may see and use everything).
    pub authz: Option<Authz>,
    /// The audit log of authorization decisions (`None`: none).
    pub audit: Option<Audit>,
    /// Pinned tool definitions, shadowing and injection checks (`None`: none).
    pub tool_safety: Option<ToolSafety>,
    /// Rate, concurrency and session limits (`None`: none).
    pub rate_limits: Option<RateLimits>,
    /// Secrets masked in answers and arguments (`None`: none).
    pub masking: Option<Masking>,
    /// Virtual servers (`routes:`), each at its own path; route `i + 1` is `routes[i]` (0 is
    /// the main endpoint).
    pub routes: Vec<Route>,
    /// The admin listener's address (`admin.listen`; `None`: `off`).
    pub admin: Option<SocketAddr>,
    /// SHA-256 of the admin API's token (`admin.token_sha256`).
    pub admin_token_sha256: Option<[u8; 32]>,
    /// TLS on the admin listener (`admin.tls`).
    pub admin_tls: Option<Tls>,
    /// The access log (`None`: none).
    pub access_log: Option<AccessLog>,
    /// OpenTelemetry traces (`None`: none).
    pub traces: Option<Traces>,
    /// How often the config file is looked at for a change to reload (`None`: SIGHUP only).
    pub reload_watch: Option<Duration>,
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
    /// Removed by a reload: its index stays taken (sessions and in-flight calls name
    /// backends by index) but it serves nothing ([`reload`]).
    pub retired: bool,
    /// The requests it may send clients (`backends[].client_requests`; `None`: any).
    pub client_requests: Option<Vec<ClientRequest>>,
    pub name: String,
    /// The backend's stable identity, derived from its name (not its place in the config):
    /// what clients may hold across a reload of a changed backend list (remapped request ids)
    /// and what places a shared child on a shard.
    pub id: BackendId,
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
    /// The circuit breaker's policy (`circuit:`; its base wait is `retry_backoff`).
    pub circuit: crate::circuit::Policy,
    /// `circuit.hide_when_open`.
    pub hide_when_open: bool,
    /// Active health checks' interval (`None`: none).
    pub health_check: Option<Duration>,
    /// Set for a stdio backend (then `url`, `authority`, `addrs` and `path` are empty).
    pub stdio: Option<StdioCommand>,
    /// A legacy HTTP+SSE (2024-11-05) server: `path` is its SSE endpoint.
    pub legacy_sse: bool,
    /// Which protocol era the backend speaks, when the config says.
    pub era: Era,
    /// stdio and legacy SSE backends: one child or connection shared by every session (else
    /// one per session).
    pub shared: bool,
    /// What ringmux presents to it (HTTP and legacy SSE backends).
    pub credentials: Option<Credentials>,
    /// Set exactly for an `https://` URL.
    pub tls: Option<BackendTls>,
}

impl Backend {
    /// Whether it may send a client this request (method `method`, message `data`): `ping`
    /// always; with `client_requests` configured, the kinds listed and nothing else.
    pub fn may_ask(&self, method: &str, data: &[u8]) -> bool {
        let Some(allowed) = &self.client_requests else {
            return true;
        };
        method == "ping" || ClientRequest::of(method, data).is_some_and(|k| allowed.contains(&k))
    }

    /// Whether sessions reach this backend through a child actor (stdio, legacy SSE) rather
    /// than the Streamable HTTP pool.
    pub fn actor_driven(&self) -> bool {
        self.stdio.is_some() || self.legacy_sse
    }
}

/// A backend's stable identity: 32 bits of the xxh3 hash of its name, written as 8 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendId(pub u32);

impl BackendId {
    pub fn of(name: &str) -> BackendId {
        BackendId(xxhash_rust::xxh3::xxh3_64(name.as_bytes()) as u32)
    }

    /// Parses the 8 hex digits [`BackendId`]'s `Display` writes.
    pub fn parse(s: &str) -> Option<BackendId> {
        (s.len() == 8)
            .then(|| u32::from_str_radix(s, 16).ok())
            .flatten()
            .map(BackendId)
    }
}

impl std::fmt::Display for BackendId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
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

/// The parts of an `http://` or `https://` URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpUrl {
    /// `https://`.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub authority: String,
    pub path: String,
}

/// Parses `http[s]://host[:port][/path]`.
pub fn parse_http_url(url: &str) -> Result<HttpUrl, String> {
    let (tls, rest) = match url.strip_prefix("https://") {
        Some(rest) => (true, rest),
        None => (
            false,
            url.strip_prefix("http://")
                .ok_or_else(|| "an http:// or https:// URL".to_string())?,
        ),
    };
    let default_port = if tls { 443 } else { 80 };
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
            "" => default_port,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or("bad port")?,
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| "bad port")?),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("malformed URL".into());
    }
    Ok(HttpUrl {
        tls,
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
        let count = self.backends.iter().filter(|b| !b.retired).count();
        let mut backends = Vec::with_capacity(self.backends.len());
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
            let c = &b.circuit;
            if c.consecutive_failures == 0 || c.half_open_probes == 0 {
                return Err(err(
                    at("circuit"),
                    "consecutive_failures and half_open_probes must be at least 1",
                ));
            }
            if !(0.0..=1.0).contains(&c.error_rate) {
                return Err(err(at("circuit.error_rate"), "a share between 0 and 1"));
            }
            if !(1..=crate::circuit::MAX_WINDOW).contains(&c.window) {
                return Err(err(at("circuit.window"), "between 1 and 64"));
            }
            let health_check = match &b.health_check {
                Some(h) if h.interval_ms < 100 => {
                    return Err(err(at("health_check.interval_ms"), "at least 100"))
                }
                Some(_) if stdio.is_some() => {
                    return Err(err(
                        at("health_check"),
                        "stdio backends are watched by their supervisor",
                    ))
                }
                Some(h) => Some(Duration::from_millis(h.interval_ms)),
                None => None,
            };
            let credentials = match b.credentials {
                Some(_) if stdio.is_some() => {
                    return Err(err(
                        at("credentials"),
                        "stdio backends get what they need through env",
                    ))
                }
                Some(c) => Some(c.check(&at("credentials"))?),
                None => None,
            };
            let tls = match (url.tls, b.tls) {
                (true, t) => Some(t.unwrap_or_default().check(&url.host, &at("tls"))?),
                (false, Some(_)) => {
                    return Err(err(at("tls"), "TLS settings need an https:// URL"))
                }
                (false, None) => None,
            };
            let id = BackendId::of(&b.name);
            if let Some(other) = backends.iter().find(|o: &&Backend| o.id == id) {
                return Err(err(
                    at("name"),
                    format!(
                        "{:?} and {:?} have the same backend id; rename one",
                        b.name, other.name
                    ),
                ));
            }
            backends.push(Backend {
                retired: b.retired,
                id,
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
                circuit: crate::circuit::Policy {
                    base: Duration::from_millis(b.retry_backoff_ms),
                    consecutive_failures: b.circuit.consecutive_failures,
                    error_rate: b.circuit.error_rate,
                    window: b.circuit.window,
                    probes: b.circuit.half_open_probes,
                },
                hide_when_open: b.circuit.hide_when_open,
                health_check,
                stdio,
                legacy_sse,
                era,
                shared,
                credentials,
                tls,
                client_requests: b.client_requests,
            });
        }
        let fingerprint = {
            let mut key = Vec::new();
            for b in &backends {
                key.extend_from_slice(b.name.as_bytes());
                key.push(0);
                key.push(b.prefixed as u8);
                key.push(b.retired as u8);
            }
            key.extend_from_slice(self.names.separator.as_bytes());
            xxhash_rust::xxh3::xxh3_64(&key) as u32
        };
        let modern = self.modern.check()?;
        let admin = match self.admin.listen.as_str() {
            "off" => None,
            text => Some(parse_listen(text).ok_or_else(|| {
                err(
                    "admin.listen",
                    format!("not an IP address and port, or off: {text:?}"),
                )
            })?),
        };
        if admin.is_some_and(|a| a.port() != 0 && a == listen) {
            return Err(err("admin.listen", "must differ from listen"));
        }
        let admin_token_sha256 =
            match &self.admin.token_sha256 {
                None => None,
                Some(h) => Some(parse_key(h.trim()).ok_or_else(|| {
                    err("admin.token_sha256", "must be 64 hex digits (a SHA-256)")
                })?),
            };
        let admin_tls = match self.admin.tls {
            Some(t) => Some(t.check().map_err(|e| ConfigError {
                path: format!("admin.{}", e.path),
                ..e
            })?),
            None => None,
        };
        let auth = self.auth.map(AuthFile::check).transpose()?;
        let tls = self.tls.map(TlsFile::check).transpose()?;
        let names: Vec<&str> = backends.iter().map(|b| b.name.as_str()).collect();
        let authz = self.authz.map(|a| a.check(&names)).transpose()?;
        let audit = self.audit.map(AuditFile::check).transpose()?;
        let access_log = self.access_log.map(AccessLogFile::check).transpose()?;
        let traces = self.traces.map(TracesFile::check).transpose()?;
        let tool_safety = self.tool_safety.map(ToolSafetyFile::check).transpose()?;
        let rate_limits = self.rate_limits.map(RateLimitsFile::check).transpose()?;
        let masking = self.masking.map(MaskingFile::check).transpose()?;
        let mut main_paths = vec![self.path.as_str()];
        if let Some((sse, message)) = &legacy {
            main_paths.extend([sse.as_str(), message.as_str()]);
        }
        let routes = routes::check(self.routes, &main_paths, &names)?;
        let certs = tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        // Every `auth:` block (the main one, each route's): it accepts some credential, and
        // an API key's principal is its name on every endpoint: one name, one key.
        let mut keys: Vec<(&ApiKey, String)> = Vec::new();
        let blocks = std::iter::once(("auth".to_string(), &auth)).chain(
            routes
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("routes[{i}].auth"), &r.auth)),
        );
        for (at, a) in blocks {
            let Some(a) = a else { continue };
            if a.jwt.is_none() && a.api_keys.is_empty() && !certs {
                return Err(err(
                    at,
                    "needs a credential to accept: jwt, api_keys, or client certificates (tls.client_ca)",
                ));
            }
            for (j, k) in a.api_keys.iter().enumerate() {
                let other = keys.iter().find(|(o, _)| o.name == k.name);
                if let Some((o, where_)) = other {
                    if o.sha256 != k.sha256 || o.attributes != k.attributes {
                        return Err(err(
                            format!("{at}.api_keys[{j}].name"),
                            format!(
                                "{:?} names another key in {where_} (a key's name is its principal everywhere: one name, one key and attributes)",
                                k.name
                            ),
                        ));
                    }
                }
                keys.push((k, at.clone()));
            }
        }
        if modern.principal_header.is_some() && routes.iter().any(|r| r.auth.is_some()) {
            return Err(err(
                "modern.principal_header",
                "a trusted principal header and a route's auth: exclude each other",
            ));
        }
        if auth.is_some() && modern.principal_header.is_some() {
            // The header would name, unchecked, every client that presents no credential.
            return Err(err(
                "modern.principal_header",
                "a trusted principal header and auth: exclude each other",
            ));
        }
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
            auth,
            tls,
            authz,
            audit,
            tool_safety,
            rate_limits,
            masking,
            routes,
            admin,
            admin_token_sha256,
            admin_tls,
            access_log,
            traces,
            reload_watch: (self.reload.watch_interval_ms > 0)
                .then(|| Duration::from_millis(self.reload.watch_interval_ms.max(100))),
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
mod tests;

mod reload;
pub use reload::{as_written, line_of, reload, Reload};
