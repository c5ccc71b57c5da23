//! The admin listener (`admin.listen`, loopback by default): what an operator and an
//! orchestrator read, kept off the public MCP listener. `GET /metrics` (Prometheus text, every
//! shard's counters summed), `GET /healthz` (the process answers), `GET /readyz` (every shard
//! is up, no shutdown has begun, and at least one backend is not being skipped after failures:
//! 200, else 503 with the reason). The admin API (JSON): `GET /api/quarantine` (the tools tool
//! safety holds back), `POST /api/quarantine/approve` (`{"backend", "tool", "sha256"}`: pins
//! that definition). `/api/` asks for `admin.token_sha256`'s bearer token when one is
//! configured; without one, a change (POST) is accepted on a loopback listener only.
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
use crate::server::Status;

/// Admin connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// The longest one read or write on an admin connection may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head read.
const MAX_HEAD: usize = 8 << 10;

/// What the admin listener reports on.
#[derive(Clone)]
pub struct Admin {
    pub metrics: Arc<[Arc<ShardMetrics>]>,
    pub status: Arc<Status>,
    pub shards: usize,
    /// Backend names, in config order.
    pub backends: Arc<[String]>,
    /// Tool safety's quarantine (`None` without `tool_safety:`).
    pub safety: Option<crate::safety::Control>,
    /// SHA-256 of the admin API's bearer token (`admin.token_sha256`).
    pub token_sha256: Option<[u8; 32]>,
    /// The listener is on loopback.
    pub loopback: bool,
}

/// Serves `listener` on a thread of its own until the process ends.
pub fn spawn(listener: TcpListener, admin: Admin) -> std::io::Result<SocketAddr> {
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
                let _ = std::thread::Builder::new()
                    .name("ringmux-admin-conn".into())
                    .spawn(move || {
                        let _slot = slot;
                        serve(conn, &admin);
                    });
            }
        })?;
    Ok(addr)
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
fn read_more(conn: &mut TcpStream, buf: &mut Vec<u8>, deadline: std::time::Instant) -> bool {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    if left.is_zero() || conn.set_read_timeout(Some(left)).is_err() {
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

fn serve(mut conn: TcpStream, admin: &Admin) {
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
    let mut buf = Vec::with_capacity(1024);
    let head = loop {
        match ringmux_core::http::parse_request(&buf, MAX_HEAD, MAX_HEAD) {
            Ok(Some(head)) => break head,
            Ok(None) if buf.len() < MAX_HEAD => {}
            _ => return respond(&mut conn, 400, "text/plain", "bad request\n"),
        }
        if !read_more(&mut conn, &mut buf, deadline) {
            return;
        }
    };
    use ringmux_core::http::Method;
    let header = |r: &Option<std::ops::Range<usize>>| r.clone().map(|r| &buf[r]);
    if header(&head.headers.origin).is_some() {
        return respond(
            &mut conn,
            403,
            "text/plain",
            "no browser origin may use the admin listener\n",
        );
    }
    if admin.loopback && !header(&head.headers.host).is_some_and(crate::front::door::is_local_host)
    {
        return respond(
            &mut conn,
            403,
            "text/plain",
            "Host is not a loopback name (DNS rebinding protection)\n",
        );
    }
    let path = buf[head.path.clone()].to_vec();
    if path.starts_with(b"/api/") {
        return api(&mut conn, admin, &head, buf, &path, deadline);
    }
    if head.method != Method::Get {
        return respond(&mut conn, 405, "text/plain", "only GET\n");
    }
    match &path[..] {
        b"/metrics" => {
            let mut body = crate::metrics::render(&admin.metrics);
            backend_up(&mut body, admin);
            respond(&mut conn, 200, "text/plain; version=0.0.4", &body)
        }
        b"/healthz" => respond(&mut conn, 200, "text/plain", "ok\n"),
        b"/readyz" => match not_ready(admin) {
            None => respond(&mut conn, 200, "text/plain", "ready\n"),
            Some(why) => respond(&mut conn, 503, "text/plain", &format!("not ready: {why}\n")),
        },
        _ => respond(&mut conn, 404, "text/plain", "not found\n"),
    }
}

/// The admin API (`/api/...`): JSON in and out.
fn api(
    conn: &mut TcpStream,
    admin: &Admin,
    head: &ringmux_core::http::RequestHead,
    mut buf: Vec<u8>,
    path: &[u8],
    deadline: std::time::Instant,
) {
    use ringmux_core::http::{BodyKind, Method};
    let json = "application/json";
    let error = |conn: &mut TcpStream, status: u16, why: &str| {
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
    } else if head.method != Method::Get && !admin.loopback {
        return error(
            conn,
            403,
            "changes through the admin API need admin.token_sha256 on a listener off loopback",
        );
    }
    let Some(safety) = &admin.safety else {
        return error(conn, 404, "tool_safety is not configured");
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

/// Why the gateway should not be sent traffic now, if it should not.
fn not_ready(admin: &Admin) -> Option<String> {
    if admin.status.draining.load(Ordering::Relaxed) {
        return Some("shutting down".into());
    }
    let up = admin.status.shards_up.load(Ordering::Relaxed);
    if up < admin.shards {
        return Some(format!("{up} of {} shards up", admin.shards));
    }
    let any = (0..admin.backends.len()).any(|b| crate::metrics::backend_up(&admin.metrics, b));
    (!any).then(|| "every backend is being skipped after failures".into())
}

/// `ringmux_backend_up{backend}`: 1 while no shard skips the backend after failures.
fn backend_up(out: &mut String, admin: &Admin) {
    use std::fmt::Write as _;
    out.push_str(
        "# HELP ringmux_backend_up 1 while no shard skips the backend after failures\n# TYPE ringmux_backend_up gauge\n",
    );
    for (b, name) in admin.backends.iter().enumerate() {
        let up = crate::metrics::backend_up(&admin.metrics, b) as u8;
        let _ = writeln!(out, "ringmux_backend_up{{backend=\"{name}\"}} {up}");
    }
}

fn respond(conn: &mut TcpStream, status: u16, content_type: &str, body: &str) {
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
