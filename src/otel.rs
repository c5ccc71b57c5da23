//! OpenTelemetry traces (`traces:`): a server span per MCP request (from the pipeline's
//! message stage to its reply, recorded by [`crate::observe::finish`]) and a client span per
//! backend exchange of a routed call (its parent), exported over OTLP/HTTP (protobuf,
//! `opentelemetry-proto`'s messages encoded with `prost`).
//!
//! Context: a client's W3C `traceparent` (the HTTP header, or `params._meta.traceparent`,
//! MCP's convention) makes the request span its child, in its trace, sampled as its flag
//! says; without one a new trace is sampled by `sample_ratio` (on the trace id, so every
//! span of a trace decides alike). A backend exchange carries the client span's context to
//! HTTP backends as a `traceparent` header, sampled or not.
//!
//! Off the request path: a shard appends finished spans (fixed-size records, no allocation)
//! to a batch of its own; a batch of [`BATCH_SPANS`], and every batch once a second, goes over
//! a bounded channel ([`QUEUED_BATCHES`]) to one exporter thread, which encodes and POSTs it
//! (5 s to connect, write and read the status; at shutdown 1 s, and after one failed export
//! the rest are dropped). An export that fails drops its spans and counts them
//! (`ringmux_trace_spans_dropped_total`); a full queue too (`…_queue_full_total`).
//! Without `traces:` no
//! span, id or clock read is made: one `Option` check per request.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use ringmux_core::trace::TraceParent;

use crate::metrics::ShardMetrics;

/// Spans a shard batches before sending them to the exporter.
pub const BATCH_SPANS: usize = 512;
/// Batches queued for the exporter before shards drop theirs.
pub const QUEUED_BATCHES: usize = 64;
/// The longest an export may take (connect, write, read the status).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// The same at shutdown, and after one export failed then, the rest are dropped.
const STOP_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest item name kept on a span (longer ones are cut).
const NAME_MAX: usize = 64;

/// A span's context in the gateway.
#[derive(Debug, Clone, Copy)]
pub struct SpanCtx {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The parent's span id (all zero: a root).
    pub parent: [u8; 8],
    pub sampled: bool,
}

impl SpanCtx {
    /// The `traceparent` that makes a receiver's span this span's child.
    pub fn traceparent(&self) -> [u8; ringmux_core::trace::LEN] {
        TraceParent {
            trace_id: self.trace_id,
            span_id: self.span_id,
            flags: self.sampled as u8,
        }
        .write()
    }
}

/// A finished span, as a shard keeps it until export.
#[derive(Clone, Copy)]
pub struct Finished {
    pub ctx: SpanCtx,
    /// Server: an MCP request; client: a backend exchange.
    pub server: bool,
    pub method: &'static str,
    pub start_ns: u64,
    pub end_ns: u64,
    pub route: u8,
    pub backend: Option<u16>,
    /// A JSON-RPC error: its code and side.
    pub error: Option<(i64, &'static str)>,
    /// HTTP status of the reply (server spans).
    pub status: u16,
    name: [u8; NAME_MAX],
    name_len: u8,
}

impl Finished {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: SpanCtx,
        server: bool,
        method: &'static str,
        start_ns: u64,
        end_ns: u64,
        route: u8,
        backend: Option<u16>,
        name: &str,
    ) -> Finished {
        let mut cut = name.len().min(NAME_MAX);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut buf = [0u8; NAME_MAX];
        buf[..cut].copy_from_slice(&name.as_bytes()[..cut]);
        Finished {
            ctx,
            server,
            method,
            start_ns,
            end_ns,
            route,
            backend,
            error: None,
            status: 0,
            name: buf,
            name_len: cut as u8,
        }
    }

    fn name(&self) -> &str {
        std::str::from_utf8(&self.name[..self.name_len as usize]).unwrap_or_default()
    }
}

/// Nanoseconds since the Unix epoch now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// What the exporter needs to name things.
pub struct Names {
    pub service: String,
    pub backends: Vec<String>,
    pub routes: Vec<String>,
}

/// The exporter thread.
pub struct Exporter {
    tx: mpsc::SyncSender<Vec<Finished>>,
    thread: std::thread::JoinHandle<()>,
    ratio: f64,
    /// Set at shutdown: exports get a short bound, and after one fails the rest are dropped.
    stopping: Arc<std::sync::atomic::AtomicBool>,
    names: Arc<std::sync::Mutex<Names>>,
}

impl Exporter {
    /// Starts the exporter for `cfg`; its counts go to `metrics` (shard 0's: the exporter
    /// is their only writer).
    pub fn start(
        cfg: &ringmux_core::config::Traces,
        names: Names,
        metrics: Arc<ShardMetrics>,
    ) -> std::io::Result<Exporter> {
        // A reload renames backends and routes ([`Exporter::names`]); read once per batch.
        let names = Arc::new(std::sync::Mutex::new(names));
        let shared_names = names.clone();
        let (tx, rx) = mpsc::sync_channel::<Vec<Finished>>(QUEUED_BATCHES);
        let ratio = cfg.sample_ratio;
        let cfg = cfg.clone();
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("ringmux-traces".into())
            .spawn(move || {
                let mut failing = false;
                let mut addr = None;
                while let Ok(batch) = rx.recv() {
                    let stopping = stop.load(std::sync::atomic::Ordering::Relaxed);
                    if stopping && failing {
                        metrics.trace_spans_dropped.add(batch.len() as u64);
                        continue;
                    }
                    let bound = if stopping {
                        STOP_TIMEOUT
                    } else {
                        EXPORT_TIMEOUT
                    };
                    let body = match names.lock() {
                        Ok(names) => encode(&names, &batch),
                        Err(_) => return,
                    };
                    match post(&cfg, &mut addr, &body, bound) {
                        Ok(()) => {
                            metrics.trace_spans_exported.add(batch.len() as u64);
                            failing = false;
                        }
                        Err(e) => {
                            metrics.trace_spans_dropped.add(batch.len() as u64);
                            if !failing {
                                tracing::warn!(endpoint = %cfg.addr, "trace export failed (spans dropped until it works again): {e}");
                            }
                            failing = true;
                        }
                    }
                }
            })?;
        Ok(Exporter {
            tx,
            thread,
            ratio,
            stopping,
            names: shared_names,
        })
    }

    /// The names spans carry, for a reload to change.
    pub fn names(&self) -> Arc<std::sync::Mutex<Names>> {
        self.names.clone()
    }

    /// A shard's end of the exporter.
    pub fn tracer(&self, shard: usize) -> Tracer {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Tracer {
            threshold: (self.ratio * u64::MAX as f64) as u64,
            always: self.ratio >= 1.0,
            rng: Cell::new(
                u64::from_le_bytes(seed) ^ (shard as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    | 1,
            ),
            batch: RefCell::new(Vec::with_capacity(BATCH_SPANS)),
            tx: RefCell::new(Some(self.tx.clone())),
        }
    }

    /// Waits for the shards' last batches (every [`Tracer`] closed) to be exported.
    pub fn join(self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        drop(self.tx);
        let _ = self.thread.join();
    }
}

/// A shard's tracer.
pub struct Tracer {
    /// Sampling: a new trace whose id's last 8 bytes are below this is sampled.
    threshold: u64,
    always: bool,
    rng: Cell<u64>,
    batch: RefCell<Vec<Finished>>,
    tx: RefCell<Option<mpsc::SyncSender<Vec<Finished>>>>,
}

impl Tracer {
    fn next(&self) -> u64 {
        // xorshift64*: ids need to be unique, not secret.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn span_id(&self) -> [u8; 8] {
        loop {
            let id = self.next().to_le_bytes();
            if id != [0; 8] {
                return id;
            }
        }
    }

    /// The span of a request that came with `parent` (a client's trace context) or none.
    pub fn request_span(&self, parent: Option<TraceParent>) -> SpanCtx {
        match parent {
            Some(p) => SpanCtx {
                trace_id: p.trace_id,
                span_id: self.span_id(),
                parent: p.span_id,
                sampled: p.sampled(),
            },
            None => {
                let mut trace_id = [0u8; 16];
                trace_id[..8].copy_from_slice(&self.next().to_le_bytes());
                let low = self.next() | 1;
                trace_id[8..].copy_from_slice(&low.to_be_bytes());
                SpanCtx {
                    trace_id,
                    span_id: self.span_id(),
                    parent: [0; 8],
                    sampled: self.always || low < self.threshold,
                }
            }
        }
    }

    /// A child span of `parent` (a backend exchange).
    pub fn child(&self, parent: &SpanCtx) -> SpanCtx {
        SpanCtx {
            trace_id: parent.trace_id,
            span_id: self.span_id(),
            parent: parent.span_id,
            sampled: parent.sampled,
        }
    }

    /// Keeps a finished span for export (an unsampled one is dropped here).
    pub fn record(&self, span: Finished, metrics: &ShardMetrics) {
        if !span.ctx.sampled {
            return;
        }
        let mut batch = self.batch.borrow_mut();
        batch.push(span);
        if batch.len() >= BATCH_SPANS {
            self.send(&mut batch, metrics);
        }
    }

    /// Sends the batch to the exporter (once a second, and when full).
    pub fn flush(&self, metrics: &ShardMetrics) {
        let mut batch = self.batch.borrow_mut();
        if !batch.is_empty() {
            self.send(&mut batch, metrics);
        }
    }

    fn send(&self, batch: &mut Vec<Finished>, metrics: &ShardMetrics) {
        let full = std::mem::replace(batch, Vec::with_capacity(BATCH_SPANS));
        let n = full.len() as u64;
        let sent = self
            .tx
            .borrow()
            .as_ref()
            .is_some_and(|tx| tx.try_send(full).is_ok());
        if !sent {
            metrics.trace_spans_dropped_shard.add(n);
        }
    }

    /// The shard has stopped: its last batch is sent if the queue has room (a stop never
    /// waits on a slow collector) and its end closed.
    pub fn close(&self, metrics: &ShardMetrics) {
        let batch = std::mem::take(&mut *self.batch.borrow_mut());
        if let Some(tx) = self.tx.borrow_mut().take() {
            let n = batch.len() as u64;
            if n > 0 && tx.try_send(batch).is_err() {
                metrics.trace_spans_dropped_shard.add(n);
            }
        }
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// One batch as an OTLP `ExportTraceServiceRequest`, protobuf-encoded.
pub fn encode(names: &Names, batch: &[Finished]) -> Vec<u8> {
    let spans = batch
        .iter()
        .map(|f| {
            let mut attributes = vec![text("mcp.method.name", f.method)];
            let item = f.name();
            if !item.is_empty() {
                attributes.push(text(
                    if f.method == "tools/call" {
                        "gen_ai.tool.name"
                    } else {
                        "mcp.item.name"
                    },
                    item,
                ));
            }
            if let Some(r) = names.routes.get(f.route as usize) {
                attributes.push(text("ringmux.route", r));
            }
            if let Some(b) = f.backend.and_then(|b| names.backends.get(b as usize)) {
                attributes.push(text("ringmux.backend", b));
            }
            if f.status != 0 {
                attributes.push(int("http.response.status_code", f.status as i64));
            }
            let status = match f.error {
                Some((code, side)) => {
                    attributes.push(int("rpc.jsonrpc.error_code", code));
                    attributes.push(text("error.type", side));
                    Some(Status {
                        code: status::StatusCode::Error as i32,
                        message: format!("JSON-RPC error {code} ({side})"),
                    })
                }
                None => None,
            };
            let name = match (f.server, item.is_empty()) {
                (true, false) => format!("{} {item}", f.method),
                (true, true) => f.method.to_owned(),
                (false, _) => format!(
                    "{} {}",
                    f.method,
                    f.backend
                        .and_then(|b| names.backends.get(b as usize))
                        .map_or("backend", String::as_str)
                ),
            };
            Span {
                trace_id: f.ctx.trace_id.to_vec(),
                span_id: f.ctx.span_id.to_vec(),
                parent_span_id: if f.ctx.parent == [0; 8] {
                    Vec::new()
                } else {
                    f.ctx.parent.to_vec()
                },
                // HAS_IS_REMOTE, and IS_REMOTE for a server span whose parent is the client's.
                flags: 0x100
                    | u32::from(f.ctx.sampled)
                    | if f.server && f.ctx.parent != [0; 8] {
                        0x200
                    } else {
                        0
                    },
                name,
                kind: if f.server {
                    span::SpanKind::Server
                } else {
                    span::SpanKind::Client
                } as i32,
                start_time_unix_nano: f.start_ns,
                end_time_unix_nano: f.end_ns.max(f.start_ns),
                attributes,
                status,
                ..Default::default()
            }
        })
        .collect();
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", &names.service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "ringmux".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    prost::Message::encode_to_vec(&req)
}

/// POSTs one export within `bound` per step; `Ok` on a 2xx. The endpoint's address is
/// resolved once (`addr`) and again after a failed export.
fn post(
    cfg: &ringmux_core::config::Traces,
    addr: &mut Option<std::net::SocketAddr>,
    body: &[u8],
    bound: Duration,
) -> std::io::Result<()> {
    use std::net::ToSocketAddrs;
    let to = match *addr {
        Some(a) => a,
        None => {
            let a = cfg
                .addr
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| std::io::Error::other("the endpoint resolves to nothing"))?;
            *addr = Some(a);
            a
        }
    };
    let result = exchange(cfg, to, body, bound);
    if result.is_err() {
        *addr = None;
    }
    result
}

fn exchange(
    cfg: &ringmux_core::config::Traces,
    to: std::net::SocketAddr,
    body: &[u8],
    bound: Duration,
) -> std::io::Result<()> {
    let mut conn = std::net::TcpStream::connect_timeout(&to, bound)?;
    conn.set_write_timeout(Some(bound))?;
    conn.set_read_timeout(Some(bound))?;
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        cfg.path,
        cfg.host,
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    let mut status = [0u8; 12];
    conn.read_exact(&mut status)?;
    match &status[9..12] {
        [b'2', _, _] => Ok(()),
        s => Err(std::io::Error::other(format!(
            "the collector answered {}",
            String::from_utf8_lossy(s)
        ))),
    }
}
