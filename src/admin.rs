//! The admin listener (`admin.listen`, loopback by default): what an operator and an
//! orchestrator read, kept off the public MCP listener. `GET /metrics` (Prometheus text, every
//! shard's counters summed), `GET /healthz` (the process answers), `GET /readyz` (every shard
//! is up, no shutdown has begun, and at least one backend is not being skipped after failures:
//! 200, else 503 with the reason). The admin API (JSON): `GET /api/overview` (everything
//! below in one object, what the page reads), `/api/backends` (transport, era, health,
//! latency percentiles), `/api/catalog` (the federated tools as the shards' caches hold
//! them), `/api/sessions` (per shard), `/api/stats` (requests and latency per method),
//! `/api/errors` (the most recent), `GET /api/quarantine` (the tools tool safety holds back),
//! `POST /api/quarantine/approve` (`{"backend", "tool", "sha256"}`: pins that definition).
//! `/api/` asks for `admin.token_sha256`'s bearer token when one is configured; without one,
//! it answers on a loopback listener only (403 elsewhere). `GET /` is the admin page: one
//! self-contained file (`src/admin.html`, no build step, nothing loaded from elsewhere) that
//! polls `/api/overview` once a second (read-only: approving stays an API call).
//!
//! It runs on threads of its own, never on a shard: a scrape reads the shards' single-writer
//! counters (relaxed loads) and touches nothing the request path holds. Connections are served
//! one thread each, at most [`MAX_CONNECTIONS`] at once (more get a 503 at once), each within
//! [`IO_TIMEOUT`] from its accept to its answer (a client trickling bytes is cut off), one
//! request per connection.
//!
//! Browsers: a request carrying `Origin` is refused (no page may drive the admin listener),
//! and on a loopback listener so is a `Host` that is not a loopback name or address (DNS
//! rebinding); a POST must be `application/json` (no form or `text/plain` post without a
//! preflight, which is refused).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::ShardMetrics;
use crate::snapshot::Status;

/// Admin connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// The longest one read or write on an admin connection may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head read.
const MAX_HEAD: usize = 8 << 10;

impl Admin {
    /// The backends by index, as the last reload left them.
    pub fn rows(&self) -> Arc<[BackendRow]> {
        self.status
            .backends
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// What the admin listener reports on.
#[derive(Clone)]
pub struct Admin {
    pub metrics: Arc<[Arc<ShardMetrics>]>,
    pub status: Arc<Status>,
    pub shards: usize,
    /// Tool safety's quarantine (`None` without `tool_safety:`).
    pub safety: Option<crate::safety::Control>,
    /// SHA-256 of the admin API's bearer token (`admin.token_sha256`).
    pub token_sha256: Option<[u8; 32]>,
    /// The listener is on loopback.
    pub loopback: bool,
}

pub use crate::snapshot::BackendRow;

/// The admin page: one self-contained file (no build step, nothing fetched but the API).
const PAGE: &str = include_str!("admin.html");

/// Serves `listener` on a thread of its own until the process ends; with `tls` (`admin.tls`)
/// every connection is TLS (its certificate reloaded as the MCP listener's is).
pub fn spawn(
    listener: TcpListener,
    admin: Admin,
    tls: Option<crate::tls::Listener>,
) -> std::io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    let open = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("ringmux-admin".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let mut conn = match conn {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors, say: back off rather than spin.
                        tracing::warn!("admin accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                };
                if open.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
                    open.fetch_sub(1, Ordering::Relaxed);
                    let _ = conn.set_write_timeout(Some(Duration::from_millis(200)));
                    respond(&mut conn, 503, "text/plain", "too many admin connections\n");
                    continue;
                }
                let slot = Slot(open.clone());
                let admin = admin.clone();
                let tls_config = tls.as_ref().map(crate::tls::Listener::config);
                let _ = std::thread::Builder::new()
                    .name("ringmux-admin-conn".into())
                    .spawn(move || {
                        let _slot = slot;
                        match tls_config {
                            None => serve(&mut conn, &admin),
                            Some(cfg) => {
                                let Ok(session) = rustls::ServerConnection::new(cfg) else {
                                    return;
                                };
                                let mut stream = rustls::StreamOwned::new(session, conn);
                                serve(&mut stream, &admin);
                                stream.conn.send_close_notify();
                                let _ = stream.flush();
                            }
                        }
                    });
            }
        })?;
    Ok(addr)
}

/// An admin connection: plain, or TLS over it (`admin.tls`); timeouts are set on the socket.
trait Conn: Read + Write {
    fn tcp(&self) -> &TcpStream;
}

impl Conn for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

/// A connection's place among the [`MAX_CONNECTIONS`], given back however its thread ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reads more of `conn` into `buf`, within what is left of the connection's time; false when
/// it ended, failed or ran out of time.
fn read_more(conn: &mut dyn Conn, buf: &mut Vec<u8>, deadline: std::time::Instant) -> bool {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    if left.is_zero() || conn.tcp().set_read_timeout(Some(left)).is_err() {
        return false;
    }
    let mut chunk = [0u8; 1024];
    match conn.read(&mut chunk) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn serve(conn: &mut dyn Conn, admin: &Admin) {
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    let _ = conn.tcp().set_write_timeout(Some(IO_TIMEOUT));
    let mut buf = Vec::with_capacity(1024);
    let head = loop {
        match ringmux_core::http::parse_request(&buf, MAX_HEAD, MAX_HEAD) {
            Ok(Some(head)) => break head,
            Ok(None) if buf.len() < MAX_HEAD => {}
            _ => return respond(conn, 400, "text/plain", "bad request\n"),
        }
        if !read_more(conn, &mut buf, deadline) {
            return;
        }
    };
    use ringmux_core::http::Method;
    let header = |r: &Option<std::ops::Range<usize>>| r.clone().map(|r| &buf[r]);
    if header(&head.headers.origin).is_some() {
        return respond(
            conn,
            403,
            "text/plain",
            "no browser origin may use the admin listener\n",
        );
    }
    if admin.loopback && !header(&head.headers.host).is_some_and(crate::front::door::is_local_host)
    {
        return respond(
            conn,
            403,
            "text/plain",
            "Host is not a loopback name (DNS rebinding protection)\n",
        );
    }
    let path = buf[head.path.clone()].to_vec();
    if path.starts_with(b"/api/") {
        return api(conn, admin, &head, buf, &path, deadline);
    }
    if head.method != Method::Get {
        return respond(conn, 405, "text/plain", "only GET\n");
    }
    match &path[..] {
        b"/metrics" => {
            let mut body = crate::metrics::render(&admin.metrics);
            backend_up(&mut body, admin);
            reloads(&mut body, admin);
            respond(conn, 200, "text/plain; version=0.0.4", &body)
        }
        b"/healthz" => respond(conn, 200, "text/plain", "ok\n"),
        b"/" => respond(conn, 200, "text/html; charset=utf-8", PAGE),
        b"/readyz" => match not_ready(admin) {
            None => respond(conn, 200, "text/plain", "ready\n"),
            Some(why) => respond(conn, 503, "text/plain", &format!("not ready: {why}\n")),
        },
        _ => respond(conn, 404, "text/plain", "not found\n"),
    }
}

/// The admin API (`/api/...`): JSON in and out.
fn api(
    conn: &mut dyn Conn,
    admin: &Admin,
    head: &ringmux_core::http::RequestHead,
    mut buf: Vec<u8>,
    path: &[u8],
    deadline: std::time::Instant,
) {
    use ringmux_core::http::{BodyKind, Method};
    let json = "application/json";
    let error = |conn: &mut dyn Conn, status: u16, why: &str| {
        respond(
            conn,
            status,
            json,
            &serde_json::json!({ "error": why }).to_string(),
        )
    };
    if let Some(want) = &admin.token_sha256 {
        let presented = head
            .headers
            .authorization
            .clone()
            .and_then(|r| match ringmux_core::auth::parse(&buf[r]) {
                Ok(ringmux_core::auth::Credential::Bearer(t)) => Some(t),
                _ => None,
            })
            .map(|t| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, t));
        let ok = presented.is_some_and(|d| {
            aws_lc_rs::constant_time::verify_slices_are_equal(d.as_ref(), want).is_ok()
        });
        if !ok {
            return error(
                conn,
                401,
                "the admin API needs admin.token_sha256's bearer token",
            );
        }
    } else if !admin.loopback {
        // Off loopback, anyone on that network (or a page it serves, through DNS
        // rebinding) could read the catalog, backends and errors: the API needs a token.
        return error(
            conn,
            403,
            "the admin API on a listener off loopback needs admin.token_sha256",
        );
    }
    if head.method == Method::Get {
        let part = match path {
            b"/api/overview" => Some(None),
            b"/api/backends" => Some(Some("backends")),
            b"/api/catalog" => Some(Some("catalog")),
            b"/api/sessions" => Some(Some("shards")),
            b"/api/stats" => Some(Some("methods")),
            b"/api/errors" => Some(Some("errors")),
            _ => None,
        };
        if let Some(part) = part {
            let all = overview(admin);
            let body = match part {
                None => all.to_string(),
                Some(key) => all[key].to_string(),
            };
            return respond(conn, 200, json, &body);
        }
    }
    let Some(safety) = &admin.safety else {
        return error(conn, 404, "not found (or tool_safety is not configured)");
    };
    match (head.method, path) {
        (Method::Get, b"/api/quarantine") => {
            let list = serde_json::to_string(&safety.quarantined()).unwrap_or_default();
            respond(conn, 200, json, &list)
        }
        (Method::Post, b"/api/quarantine/approve") => {
            let BodyKind::Length(n) = head.body else {
                return error(conn, 400, "a JSON body with Content-Length is required");
            };
            let ct = head.headers.content_type.clone().map(|r| &buf[r]);
            if !ct.is_some_and(|ct| ringmux_core::http::media_type_is(ct, b"application/json")) {
                return error(conn, 415, "Content-Type must be application/json");
            }
            let start = head.head_len;
            while buf.len() < start + n {
                if !read_more(conn, &mut buf, deadline) {
                    return;
                }
            }
            #[derive(serde::Deserialize)]
            struct Approval {
                backend: String,
                tool: String,
                sha256: String,
            }
            let Ok(a) = serde_json::from_slice::<Approval>(&buf[start..start + n]) else {
                return error(conn, 400, "the body is {\"backend\", \"tool\", \"sha256\"}");
            };
            match safety.approve(&a.backend, &a.tool, &a.sha256) {
                Ok(()) => respond(conn, 200, json, "{\"approved\":true}"),
                Err((status, why)) => error(conn, status, &why),
            }
        }
        (_, b"/api/quarantine" | b"/api/quarantine/approve") => {
            error(conn, 405, "method not allowed")
        }
        _ => error(conn, 404, "not found"),
    }
}

/// Latency percentiles of some series merged, in milliseconds: (requests, p50, p90, p99).
fn percentiles<'a>(
    series: impl Iterator<Item = &'a hdrhistogram::Histogram<u32>>,
) -> serde_json::Value {
    let mut all: Option<hdrhistogram::Histogram<u32>> = None;
    for h in series {
        match &mut all {
            Some(a) => {
                let _ = a.add(h);
            }
            None => all = Some(h.clone()),
        }
    }
    let Some(h) = all.filter(|h| !h.is_empty()) else {
        return serde_json::json!({"requests": 0, "p50_ms": null, "p90_ms": null, "p99_ms": null});
    };
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    serde_json::json!({
        "requests": h.len(),
        "p50_ms": ms(0.5),
        "p90_ms": ms(0.9),
        "p99_ms": ms(0.99),
    })
}

/// Everything the admin API reports (`/api/overview`; the other GETs are its parts): the
/// backends (transport, era, health, requests and latency), the request methods (requests
/// and latency), the shards (sessions, connections, streams), the federated catalog as the
/// shards' caches hold it, the quarantine, and the most recent errors. Request counts are
/// totals; a reader makes rates from two readings (`time_ms`). As of the shards' last
/// publication (at most a second old).
pub fn overview(admin: &Admin) -> serde_json::Value {
    use serde_json::json;
    let slots: Vec<&crate::latency::Published> = admin.metrics.iter().map(|m| &m.latency).collect();
    let (series, errors_by_code) = crate::latency::merged(&slots);
    let infos: Vec<crate::snapshot::Info> = admin
        .metrics
        .iter()
        .map(|m| m.info.lock().map(|i| i.clone()).unwrap_or_default())
        .collect();
    let now = crate::metrics::uptime_ms();
    let rows = admin.rows();
    let backends: Vec<serde_json::Value> = rows
        .iter()
        .enumerate()
        .filter(|(_, row)| !row.retired)
        .map(|(b, row)| {
            let era = infos
                .iter()
                .filter_map(|i| i.eras.get(b))
                .find(|e| **e != "unknown")
                .copied()
                .unwrap_or("unknown");
            let skipped_ms = admin
                .metrics
                .iter()
                .filter_map(|m| m.cooling_until.get(b))
                .map(|c| c.load(Ordering::Relaxed).saturating_sub(now))
                .max()
                .unwrap_or(0);
            let tools = infos
                .iter()
                .map(|i| i.tools.get(b).map_or(0, Vec::len))
                .max()
                .unwrap_or(0);
            let states: Vec<u8> = infos
                .iter()
                .filter_map(|i| i.circuit.get(b).copied())
                .collect();
            let circuit = if states.contains(&1) {
                "open"
            } else if states.contains(&2) {
                "half-open"
            } else {
                "closed"
            };
            json!({
                "name": row.name,
                "transport": row.transport,
                "circuit": circuit,
                "target": row.target,
                "era": era,
                "up": crate::metrics::backend_up(&admin.metrics, b),
                "skipped_for_ms": skipped_ms,
                "tools": tools,
                "latency": percentiles(
                    series.iter().filter(|s| *s.backend == *row.name).map(|s| &s.hist)
                ),
            })
        })
        .collect();
    let mut methods: Vec<&'static str> = series.iter().map(|s| s.method).collect();
    methods.sort_unstable();
    methods.dedup();
    let methods: Vec<serde_json::Value> = methods
        .into_iter()
        .map(|m| {
            json!({
                "method": m,
                "latency": percentiles(series.iter().filter(|s| s.method == m).map(|s| &s.hist)),
            })
        })
        .collect();
    let shards: Vec<serde_json::Value> = admin
        .metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!({
                "shard": i,
                "sessions": m.sessions.get(),
                "open_connections": m.open_connections.get(),
                "client_streams": m.client_streams.get(),
                "backend_streams": m.backend_streams.get(),
                "requests": m.requests.get(),
            })
        })
        .collect();
    let catalog: Vec<&crate::snapshot::Tool> = (0..rows.len())
        .filter(|b| !rows[*b].retired)
        .flat_map(|b| {
            infos
                .iter()
                .filter_map(|i| i.tools.get(b))
                .find(|t| !t.is_empty())
                .into_iter()
                .flatten()
        })
        .collect();
    let mut errors: Vec<&crate::snapshot::RecentError> =
        infos.iter().flat_map(|i| i.errors.iter()).collect();
    errors.sort_by_key(|e| std::cmp::Reverse(e.time_ms));
    errors.truncate(50);
    let errors_total: u64 = errors_by_code.iter().map(|(_, n)| n).sum();
    json!({
        "time_ms": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        "ready": not_ready(admin).is_none(),
        "requests": series.iter().map(|s| s.hist.len()).sum::<u64>(),
        "errors_total": errors_total,
        "backends": backends,
        "methods": methods,
        "shards": shards,
        "catalog": catalog,
        "quarantine": admin.safety.as_ref().map(|s| s.quarantined()),
        "errors": errors,
    })
}

/// Why the gateway should not be sent traffic now, if it should not.
fn not_ready(admin: &Admin) -> Option<String> {
    if admin.status.draining.load(Ordering::Relaxed) {
        return Some("shutting down".into());
    }
    let up = admin.status.shards_up.load(Ordering::Relaxed);
    if up < admin.shards {
        return Some(format!("{up} of {} shards up", admin.shards));
    }
    let rows = admin.rows();
    let any = (0..rows.len())
        .filter(|b| !rows[*b].retired)
        .any(|b| crate::metrics::backend_up(&admin.metrics, b));
    (!any).then(|| "every backend is being skipped after failures".into())
}

/// `ringmux_backend_up{backend}`: 1 while no shard skips the backend after failures; each
/// shard's circuit state per backend, and the age of the catalog it serves.
fn backend_up(out: &mut String, admin: &Admin) {
    use std::fmt::Write as _;
    let infos: Vec<crate::snapshot::Info> = admin
        .metrics
        .iter()
        .map(|m| m.info.lock().map(|i| i.clone()).unwrap_or_default())
        .collect();
    let rows = admin.rows();
    let live = || rows.iter().enumerate().filter(|(_, row)| !row.retired);
    out.push_str("# HELP ringmux_backend_circuit_state Each shard's circuit breaker per backend: 0 closed, 1 open, 2 half-open\n# TYPE ringmux_backend_circuit_state gauge\n");
    for (b, row) in live() {
        for (shard, info) in infos.iter().enumerate() {
            if let Some(state) = info.circuit.get(b) {
                let _ = writeln!(
                    out,
                    "ringmux_backend_circuit_state{{backend=\"{}\",shard=\"{shard}\"}} {state}",
                    row.name
                );
            }
        }
    }
    out.push_str("# HELP ringmux_catalog_age_seconds Age of the tools catalog a shard serves for a backend (grows while its circuit is open and lists come from the last good catalog)\n# TYPE ringmux_catalog_age_seconds gauge\n");
    for (b, row) in live() {
        for (shard, info) in infos.iter().enumerate() {
            if let Some(Some(ms)) = info.catalog_age_ms.get(b) {
                let _ = writeln!(
                    out,
                    "ringmux_catalog_age_seconds{{backend=\"{}\",shard=\"{shard}\"}} {}",
                    row.name,
                    *ms as f64 / 1000.0
                );
            }
        }
    }
    out.push_str(
        "# HELP ringmux_backend_up 1 while no shard skips the backend after failures\n# TYPE ringmux_backend_up gauge\n",
    );
    for (b, row) in live() {
        let up = crate::metrics::backend_up(&admin.metrics, b) as u8;
        let _ = writeln!(out, "ringmux_backend_up{{backend=\"{}\"}} {up}", row.name);
    }
}

/// `ringmux_config_reloads_total{result}` and `ringmux_config_generation`.
fn reloads(out: &mut String, admin: &Admin) {
    use std::fmt::Write as _;
    let st = &admin.status;
    let _ = write!(
        out,
        "# HELP ringmux_config_reloads_total Config reloads (SIGHUP or the file changed), applied or refused (the running config stayed)\n# TYPE ringmux_config_reloads_total counter\nringmux_config_reloads_total{{result=\"applied\"}} {}\nringmux_config_reloads_total{{result=\"refused\"}} {}\n# HELP ringmux_config_generation The config generation running: 0 from start, one more per applied reload\n# TYPE ringmux_config_generation gauge\nringmux_config_generation {}\n",
        st.reloads.load(Ordering::Relaxed),
        st.reloads_rejected.load(Ordering::Relaxed),
        st.generation.load(Ordering::Relaxed),
    );
}

fn respond(conn: &mut dyn Conn, status: u16, content_type: &str, body: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\ncache-control: no-store\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body.as_bytes());
}
