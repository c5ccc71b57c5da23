//! Per-shard metrics. Each counter has exactly one writer (its shard), so updates are plain
//! relaxed stores on a cache line no other core writes; the scrape sums all shards.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A single-writer counter (or gauge, with `sub`).
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        // Single writer: load + store is not a read-modify-write race.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    pub fn sub(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_sub(n),
            Ordering::Relaxed,
        );
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One shard's counters. Padded so two shards never share a cache line.
#[repr(align(128))]
#[derive(Default)]
pub struct ShardMetrics {
    /// JSON-RPC messages handled by this shard as owner.
    pub requests: Counter,
    /// Requests this shard received for a session another shard owns, and sent there.
    pub hops_out: Counter,
    /// Requests other shards sent here.
    pub hops_in: Counter,
    /// Requests refused by authentication (401, 403, 400 for a malformed credential).
    pub auth_refused: Counter,
    /// Requests refused by authorization (answered as for an unknown name).
    pub authz_denied: Counter,
    /// Authorization rules whose evaluation failed (counted as matched for deny rules, not for
    /// allow rules).
    pub authz_rule_errors: Counter,
    /// Decision tables computed (a principal view over a merged list).
    pub authz_views_computed: Counter,
    /// Backend requests to clients refused by `backends[].client_requests`.
    pub client_requests_refused: Counter,
    /// Tools quarantined (a definition not the pinned one, or not pinned in `file` mode), and
    /// tools flagged (shadowing, injection): shard 0's, written by the safety thread alone.
    pub tools_quarantined: Counter,
    pub tools_flagged: Counter,
    /// Requests refused by a rate, concurrency or session limit (429).
    pub rate_limited: Counter,
    /// Answers and calls' arguments that had something masked (`masking:`).
    pub masked: Counter,
    /// Failed fetches of the JWK Set from `auth.jwt.jwks_url` (shard 0's, written by the
    /// fetcher thread alone).
    pub jwks_failures: Counter,
    /// Listener certificate reloads, and failed ones (shard 0's, written by the TLS file
    /// watcher alone).
    pub tls_reloads: Counter,
    pub tls_reload_failures: Counter,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: Counter,
    /// Client connections handed to the shard owning their session.
    pub handoffs_out: Counter,
    /// Client connections other shards handed here.
    pub handoffs_in: Counter,
    /// Live sessions owned here.
    pub sessions: Counter,
    /// Client connections accepted.
    pub connections: Counter,
    /// Client connections open now (adopted ones included).
    pub open_connections: Counter,
    /// Client connections closed at once because the shard was at its connection limit.
    pub connections_refused: Counter,
    /// Requests forwarded to a backend.
    pub forwarded: Counter,
    /// Backend requests that failed (connect, timeout, garbage, cooling down).
    pub backend_errors: Counter,
    /// Merged list pages served.
    pub list_pages: Counter,
    /// stdio backend processes running, driven by this shard.
    pub stdio_children: Counter,
    /// stdio backend processes that exited and were scheduled for restart.
    pub stdio_restarts: Counter,
    /// 2026-07-28 (sessionless) requests served by this shard's principal sessions.
    pub modern_requests: Counter,
    /// `input_required` results sent (backend requests put to sessionless clients).
    pub input_required: Counter,
    /// Backend streams held open for client sessions now (GET streams, and
    /// `subscriptions/listen` streams once acknowledged).
    pub backend_streams: Counter,
    /// Backend streams opened (re-opened ones included).
    pub backend_streams_opened: Counter,
    /// Spans exported, and dropped because an export failed (shard 0's, written by the
    /// exporter thread alone); spans a shard dropped because the exporter's queue was full.
    pub trace_spans_exported: Counter,
    pub trace_spans_dropped: Counter,
    pub trace_spans_dropped_shard: Counter,
    /// List pages asked again after a timeout or a dropped connection (the retry budget's).
    pub list_retries: Counter,
    /// Times a backend's circuit opened (per shard, each backend's breaker its own).
    pub circuit_opened: Counter,
    /// Active health checks sent, and those that failed.
    pub health_checks: Counter,
    pub health_check_failures: Counter,
    /// Access-log lines dropped because the writer fell behind ([`crate::access`]).
    pub access_log_dropped: Counter,
    /// A session's list found a backend's catalog fresh in the shard's cache, and fetched it.
    pub catalog_hits: Counter,
    pub catalog_fetches: Counter,
    /// Client SSE streams open now (GET streams, and POST answers streamed).
    pub client_streams: Counter,
    /// Per backend (config order): until when this shard skips it after failures, in
    /// milliseconds of [`uptime_ms`] (0: it does not). Written when the backend fails or
    /// recovers, not per request; read by the admin listener (readiness, `ringmux_backend_up`).
    pub cooling_until: Box<[AtomicU64]>,
    /// The shard's latency histograms as it last published them (once a second;
    /// [`crate::latency`]).
    pub latency: crate::latency::Published,
    /// The shard's backends' eras, its tools and recent errors as it last published them
    /// (once a second; [`crate::snapshot`]).
    pub info: crate::snapshot::Published,
}

impl ShardMetrics {
    /// A shard's metrics for `backends` backends.
    pub fn new(backends: usize) -> ShardMetrics {
        ShardMetrics {
            cooling_until: (0..backends).map(|_| AtomicU64::new(0)).collect(),
            ..ShardMetrics::default()
        }
    }
}

/// Milliseconds since the process first asked (the clock of `cooling_until`).
pub fn uptime_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// Whether backend `b` is skipped by no shard now.
pub fn backend_up(shards: &[std::sync::Arc<ShardMetrics>], b: usize) -> bool {
    let now = uptime_ms();
    shards.iter().all(|m| {
        m.cooling_until
            .get(b)
            .is_none_or(|c| c.load(Ordering::Relaxed) <= now)
    })
}

/// A gauge counted up while this lives.
pub struct Open<'a>(&'a Counter);

impl<'a> Open<'a> {
    pub fn new(gauge: &'a Counter) -> Open<'a> {
        gauge.add(1);
        Open(gauge)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.sub(1);
    }
}

/// A backend stream counted open until this is dropped.
pub struct OpenStream<'a> {
    _open: Open<'a>,
}

impl<'a> OpenStream<'a> {
    pub fn new(m: &'a ShardMetrics) -> OpenStream<'a> {
        m.backend_streams_opened.add(1);
        OpenStream {
            _open: Open::new(&m.backend_streams),
        }
    }
}

/// One exported series: name, type, help, and where the shard keeps it.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ShardMetrics) -> &Counter,
);

/// Renders Prometheus text for all shards.
pub fn render(shards: &[std::sync::Arc<ShardMetrics>]) -> String {
    let mut out = String::new();
    let metrics: [Series; 42] = [
        (
            "ringmux_requests_total",
            "counter",
            "JSON-RPC messages handled by the owning shard",
            |m| &m.requests,
        ),
        (
            "ringmux_cross_shard_hops_total",
            "counter",
            "Requests handed to the shard owning their session",
            |m| &m.hops_out,
        ),
        (
            "ringmux_auth_refused_total",
            "counter",
            "Requests refused by authentication (missing, invalid or insufficient credentials)",
            |m| &m.auth_refused,
        ),
        (
            "ringmux_authz_denied_total",
            "counter",
            "Requests refused by authorization rules (answered as for an unknown name)",
            |m| &m.authz_denied,
        ),
        (
            "ringmux_authz_rule_errors_total",
            "counter",
            "Authorization rule evaluations that failed (deny rules count as matched, allow rules as not)",
            |m| &m.authz_rule_errors,
        ),
        (
            "ringmux_authz_views_computed_total",
            "counter",
            "Authorization decision tables computed (one per principal view and merged list)",
            |m| &m.authz_views_computed,
        ),
        (
            "ringmux_client_requests_refused_total",
            "counter",
            "Backend requests to clients (sampling, elicitation, roots) refused by backends[].client_requests",
            |m| &m.client_requests_refused,
        ),
        (
            "ringmux_tools_quarantined_total",
            "counter",
            "Tool definitions quarantined: changed since pinned, or not pinned in file mode (each once)",
            |m| &m.tools_quarantined,
        ),
        (
            "ringmux_tools_flagged_total",
            "counter",
            "Tools flagged by the shadowing or injection checks (each once)",
            |m| &m.tools_flagged,
        ),
        (
            "ringmux_rate_limited_total",
            "counter",
            "Requests refused by rate_limits (429 with Retry-After)",
            |m| &m.rate_limited,
        ),
        (
            "ringmux_masked_total",
            "counter",
            "Backend answers and call arguments that had secrets masked (masking:)",
            |m| &m.masked,
        ),
        (
            "ringmux_jwks_refresh_failures_total",
            "counter",
            "Failed fetches of the JWK Set from auth.jwt.jwks_url (the keys held are kept)",
            |m| &m.jwks_failures,
        ),
        (
            "ringmux_tls_reloads_total",
            "counter",
            "Times the listener's certificate files changed and were loaded again",
            |m| &m.tls_reloads,
        ),
        (
            "ringmux_tls_reload_failures_total",
            "counter",
            "Times the listener's certificate files changed but could not be loaded (the old ones stay in use)",
            |m| &m.tls_reload_failures,
        ),
        (
            "ringmux_tls_handshake_failures_total",
            "counter",
            "Client TLS handshakes that failed or timed out",
            |m| &m.tls_handshake_failures,
        ),
        (
            "ringmux_cross_shard_received_total",
            "counter",
            "Requests received from another shard",
            |m| &m.hops_in,
        ),
        (
            "ringmux_connection_handoffs_total",
            "counter",
            "Client connections handed to the shard owning their session",
            |m| &m.handoffs_out,
        ),
        (
            "ringmux_connection_handoffs_received_total",
            "counter",
            "Client connections received from another shard",
            |m| &m.handoffs_in,
        ),
        ("ringmux_sessions", "gauge", "Live client sessions", |m| {
            &m.sessions
        }),
        (
            "ringmux_connections_total",
            "counter",
            "Client connections accepted",
            |m| &m.connections,
        ),
        (
            "ringmux_open_connections",
            "gauge",
            "Client connections open",
            |m| &m.open_connections,
        ),
        (
            "ringmux_connections_refused_total",
            "counter",
            "Client connections closed at once at the connection limit (limits.max_connections)",
            |m| &m.connections_refused,
        ),
        (
            "ringmux_backend_requests_total",
            "counter",
            "Requests forwarded to backends",
            |m| &m.forwarded,
        ),
        (
            "ringmux_backend_errors_total",
            "counter",
            "Backend requests that failed",
            |m| &m.backend_errors,
        ),
        (
            "ringmux_list_pages_total",
            "counter",
            "Merged list pages served",
            |m| &m.list_pages,
        ),
        (
            "ringmux_stdio_children",
            "gauge",
            "stdio backend processes running",
            |m| &m.stdio_children,
        ),
        (
            "ringmux_stdio_restarts_total",
            "counter",
            "stdio backend processes that exited unasked",
            |m| &m.stdio_restarts,
        ),
        (
            "ringmux_modern_requests_total",
            "counter",
            "2026-07-28 (sessionless) requests served",
            |m| &m.modern_requests,
        ),
        (
            "ringmux_input_required_total",
            "counter",
            "input_required results sent to sessionless clients",
            |m| &m.input_required,
        ),
        (
            "ringmux_backend_streams",
            "gauge",
            "Backend GET and subscriptions/listen streams open for client sessions",
            |m| &m.backend_streams,
        ),
        (
            "ringmux_backend_streams_opened_total",
            "counter",
            "Backend GET and subscriptions/listen streams opened (re-opened included)",
            |m| &m.backend_streams_opened,
        ),
        (
            "ringmux_trace_spans_exported_total",
            "counter",
            "Spans exported to the OTLP/HTTP collector (traces:)",
            |m| &m.trace_spans_exported,
        ),
        (
            "ringmux_trace_spans_dropped_total",
            "counter",
            "Spans dropped because their export failed",
            |m| &m.trace_spans_dropped,
        ),
        (
            "ringmux_trace_spans_queue_full_total",
            "counter",
            "Spans a shard dropped because the exporter's queue was full",
            |m| &m.trace_spans_dropped_shard,
        ),
        (
            "ringmux_list_retries_total",
            "counter",
            "Backend list pages asked again after a timeout or a dropped connection (within each backend's retry budget)",
            |m| &m.list_retries,
        ),
        (
            "ringmux_backend_circuit_opened_total",
            "counter",
            "Times a backend's circuit breaker opened (each shard's breaker its own)",
            |m| &m.circuit_opened,
        ),
        (
            "ringmux_health_checks_total",
            "counter",
            "Active health checks sent to backends (backends[].health_check)",
            |m| &m.health_checks,
        ),
        (
            "ringmux_health_check_failures_total",
            "counter",
            "Active health checks that failed (no answer, or a 5xx)",
            |m| &m.health_check_failures,
        ),
        (
            "ringmux_access_log_dropped_lines_total",
            "counter",
            "Access-log lines dropped because the writer fell behind (a full disk, a stalled pipe)",
            |m| &m.access_log_dropped,
        ),
        (
            "ringmux_catalog_cache_hits_total",
            "counter",
            "Lists that found a backend's catalog fresh in the shard's cache (per backend and list)",
            |m| &m.catalog_hits,
        ),
        (
            "ringmux_catalog_cache_misses_total",
            "counter",
            "Lists that fetched a backend's catalog (absent, expired, or changed)",
            |m| &m.catalog_fetches,
        ),
        (
            "ringmux_client_streams",
            "gauge",
            "Client SSE streams open (GET streams, POST answers streamed, legacy session streams)",
            |m| &m.client_streams,
        ),
    ];
    for (name, kind, help, get) in metrics {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (i, m) in shards.iter().enumerate() {
            let _ = writeln!(out, "{name}{{shard=\"{i}\"}} {}", get(m).get());
        }
    }
    let slots: Vec<&crate::latency::Published> = shards.iter().map(|m| &m.latency).collect();
    crate::latency::render(&mut out, &slots);
    out
}
