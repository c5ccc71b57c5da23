//! The end of a request's life: what it turned out to be ([`Outcome`], filled in by the
//! stages that learn it) and the one place it is recorded ([`finish`]): its latency series
//! and error count ([`crate::latency`]) and its access-log line ([`crate::access`]). The
//! pipeline calls [`finish`] for every request its method stage accepts, whatever its era or
//! transport.

use std::cell::Cell;

use ringmux_core::error::code;

pub use crate::record::{Finished, Side};
use crate::reply::Reply;
use crate::shard::Shard;

/// What the handler learned about a request on its way: the backend it went to, and the
/// error code of the backend's own answer. One per request, on the stack of the task that
/// serves it.
pub struct Outcome {
    backend: Cell<u16>,
    /// The backend's whole answer, when the handler read it: `Some(None)` a result,
    /// `Some(Some(code))` an error.
    answered: Cell<Option<Option<i64>>>,
    /// The request's span and its start (Unix ns), with `traces:`.
    span: Option<(crate::otel::SpanCtx, u64)>,
    /// The client sent `params._meta.traceparent` (backends get the gateway's there).
    meta_trace: bool,
    /// The client's `tracestate` header, passed on to HTTP backends with the context.
    tracestate: Option<Box<str>>,
}

const NONE: u16 = u16::MAX;

impl Default for Outcome {
    fn default() -> Outcome {
        Outcome {
            backend: Cell::new(NONE),
            answered: Cell::new(None),
            span: None,
            meta_trace: false,
            tracestate: None,
        }
    }
}

impl Outcome {
    /// The outcome of a request starting now: with `traces:`, its span (a child of the
    /// client's `traceparent` header, else of its `params._meta.traceparent`, else a root).
    #[inline]
    pub fn begin(
        shard: &Shard,
        header: Option<ringmux_core::trace::Incoming>,
        meta: Option<&ringmux_core::jsonrpc::Meta<'_>>,
    ) -> Outcome {
        let Some(tracer) = &shard.tracer else {
            return Outcome::default();
        };
        let in_meta = meta.and_then(|m| m.traceparent);
        let (parent, tracestate) = match header {
            Some(h) => (Some(h.parent), h.state),
            None => (
                in_meta.and_then(|t| {
                    ringmux_core::trace::TraceParent::parse(t.get().trim_matches('"').as_bytes())
                }),
                None,
            ),
        };
        Outcome {
            span: Some((tracer.request_span(parent), crate::otel::now_ns())),
            meta_trace: in_meta.is_some(),
            tracestate,
            ..Outcome::default()
        }
    }

    /// The client's `tracestate` header (with `traces:`), to pass on with the context.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The client sent `params._meta.traceparent`.
    pub fn meta_trace(&self) -> bool {
        self.meta_trace
    }

    /// The request's span, with `traces:`.
    pub fn span(&self) -> Option<crate::otel::SpanCtx> {
        self.span.map(|(s, _)| s)
    }

    /// The request goes to backend `b`.
    #[inline]
    pub fn forwarded(&self, b: u16) {
        self.backend.set(b);
    }

    /// Backend `b`'s whole answer was relayed: a result, or an error with `code`.
    #[inline]
    pub fn answered(&self, code: Option<i64>) {
        self.answered.set(Some(code));
    }

    pub fn backend(&self) -> Option<u16> {
        (self.backend.get() != NONE).then_some(self.backend.get())
    }
}

/// Records a finished request: its latency series, its error if any, and its access-log line.
#[inline]
pub fn finish(shard: &Shard, req: &Finished<'_>, outcome: &Outcome, reply: &Reply) {
    let took = req.started.elapsed();
    let backend = outcome.backend();
    // A tool is a label once resolved to a backend's item, so a client cannot make series.
    // A name written with escapes is keyed by what it says, so spellings of one tool share
    // its series.
    let decoded;
    let tool = match (req.method, backend, req.name) {
        ("tools/call", Some(_), Some(name)) if name.get().contains('\\') => {
            decoded = serde_json::from_str::<String>(name.get()).unwrap_or_default();
            decoded.as_bytes()
        }
        ("tools/call", Some(_), Some(name)) => name.get().as_bytes(),
        _ => b"",
    };
    let backend_name = backend.map_or("", |b| shard.pools[b as usize].name());
    // `route="…",backend="…",method="…"`, the labels every series starts with.
    let common = || {
        let mut l = String::with_capacity(96);
        l.push_str("route=\"");
        crate::latency::label_value(&mut l, shard.route_path(req.route));
        l.push_str("\",backend=\"");
        crate::latency::label_value(&mut l, backend_name);
        l.push_str("\",method=\"");
        l.push_str(req.method);
        l
    };
    let render = |full: bool| {
        let mut l = common();
        l.push_str("\",tool=\"");
        if full {
            l.push_str("(other)");
        } else if !tool.is_empty() {
            // The raw literal's inside, or the decoded name.
            let name = tool
                .strip_prefix(b"\"")
                .and_then(|t| t.strip_suffix(b"\""))
                .unwrap_or(tool);
            crate::latency::label_value(&mut l, &String::from_utf8_lossy(name));
        }
        l.push('"');
        l
    };
    let key = crate::latency::key(req.method, req.route, backend, tool, 0);
    let overflow = crate::latency::key(req.method, req.route, backend, b"\0(other)", 0);
    let labels = |full: bool| crate::latency::Named {
        labels: render(full),
        backend: backend_name.to_owned(),
    };
    shard
        .latency
        .record(key, req.method, took, labels, overflow);
    let error = error_of(outcome, reply);
    if let Some((code, side)) = error {
        shard.inspect.error(
            req.method,
            shard.route_path(req.route),
            backend_name,
            req.name
                .or(req.uri)
                .map_or(&b""[..], |n| n.get().as_bytes()),
            code,
            side,
        );
        let ekey = crate::latency::key(req.method, req.route, backend, &[side as u8], code);
        shard.latency.error(ekey, || {
            let mut l = common();
            l.push_str("\",code=\"");
            l.push_str(&code.to_string());
            l.push_str("\",side=\"");
            l.push_str(side.as_str());
            l.push('"');
            l
        });
    }
    if let Some(log) = &shard.access {
        let traceparent = outcome.span().map(|s| s.traceparent());
        let line = crate::access::Line {
            req,
            route: shard.route_path(req.route),
            backend: backend.map(|b| shard.pools[b as usize].name()),
            status: reply_status(reply),
            bytes_out: match reply {
                Reply::Json { body, .. } | Reply::Challenge { body, .. } => body.len(),
                Reply::Limited { body, .. } => body.len(),
                Reply::Text { body, .. } => body.len(),
                Reply::Status(_) | Reply::Stream(_) => 0,
            },
            error,
            took,
            // The 32 hex digits of the trace id in the span's `traceparent`.
            trace_id: traceparent.as_ref().map(|t| &t[3..35]),
        };
        log.write(&line, &shard.metrics);
    }
    if let (Some(tracer), Some((ctx, start_ns))) = (&shard.tracer, outcome.span) {
        let name = match req.name.or(req.uri) {
            Some(n) => {
                serde_json::from_str::<std::borrow::Cow<'_, str>>(n.get()).unwrap_or_default()
            }
            None => "".into(),
        };
        let mut span = crate::otel::Finished::new(
            ctx,
            true,
            req.method,
            start_ns,
            start_ns + took.as_nanos() as u64,
            req.route,
            backend,
            &name,
        );
        span.error = error.map(|(c, s)| (c, s.as_str()));
        span.status = reply_status(reply);
        tracer.record(span, &shard.metrics);
    }
}

/// The HTTP status a reply goes out with.
pub fn reply_status(reply: &Reply) -> u16 {
    match reply {
        Reply::Status(s) => *s,
        Reply::Json { status, .. }
        | Reply::Text { status, .. }
        | Reply::Challenge { status, .. } => *status,
        Reply::Stream(_) => 200,
        Reply::Limited { .. } => 429,
    }
}

/// The JSON-RPC error a reply carries, and whose it is.
pub fn error_of(outcome: &Outcome, reply: &Reply) -> Option<(i64, Side)> {
    match outcome.answered.get() {
        None => {}
        Some(None) => return None,
        Some(Some(c)) => return Some((c, Side::Backend)),
    }
    let (c, backend_failed) = match reply {
        Reply::Json { body, .. } => written_error(body)?,
        Reply::Limited { .. } => return Some((code::RATE_LIMITED as i64, Side::Client)),
        _ => return None,
    };
    // Past forwarding, an error in the usual layout that ringmux did not write about a
    // failed backend is the backend's own answer, relayed (a path that reads the answer
    // says so exactly through `Outcome::answered`).
    let side = match c as i32 {
        code::INTERNAL_ERROR if backend_failed => Side::Upstream,
        code::REQUEST_CANCELLED => Side::Client,
        _ if outcome.backend().is_some() => Side::Backend,
        code::INTERNAL_ERROR => Side::Gateway,
        _ => Side::Client,
    };
    Some((c, side))
}

/// The code of an error answer laid out as [`ringmux_core::jsonrpc::write_error_parts`]
/// writes it, and whether its message names a failed backend
/// ([`ringmux_core::error::RpcError::Backend`]). Reads a few bytes: the first `,"` after the
/// id ends it (a JSON string holds no unescaped quote).
pub fn written_error(body: &[u8]) -> Option<(i64, bool)> {
    const HEAD: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":";
    const ERROR: &[u8] = b",\"error\":{\"code\":";
    let rest = body.strip_prefix(HEAD)?;
    let end = memchr::memmem::find(&rest[..rest.len().min(512)], b",\"")?;
    let rest = rest[end..].strip_prefix(ERROR)?;
    let digits = rest
        .iter()
        .position(|&b| !(b.is_ascii_digit() || b == b'-'))
        .unwrap_or(rest.len());
    let c: i64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let backend_failed = rest[digits..].starts_with(b",\"message\":\"backend ");
    Some((c, backend_failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmux_core::error::RpcError;
    use ringmux_core::jsonrpc::Raw;

    fn json(body: Vec<u8>) -> Reply {
        Reply::Json {
            status: 200,
            body,
            session: None,
        }
    }

    #[test]
    fn errors_are_read_from_the_gateway_layout() {
        let id = Raw::new("\"a,\\\"b\"").unwrap();
        let none = Outcome::default();
        let refused = Reply::error(Some(id), &RpcError::InvalidParams("x".into()));
        assert_eq!(error_of(&none, &refused), Some((-32602, Side::Client)));
        let failed = Reply::error(
            Some(id),
            &RpcError::Backend {
                backend: "a".into(),
                reason: "timed out".into(),
            },
        );
        assert_eq!(error_of(&none, &failed), Some((-32603, Side::Upstream)));
        let ours = Reply::error(None, &RpcError::Internal("x".into()));
        assert_eq!(error_of(&none, &ours), Some((-32603, Side::Gateway)));
        let mut ok = Vec::new();
        ringmux_core::jsonrpc::write_result(&mut ok, id, b"{\"error\":{\"code\":1}}");
        assert_eq!(error_of(&none, &json(ok)), None);
        // Relayed from the backend after forwarding.
        let fwd = Outcome::default();
        fwd.forwarded(0);
        let theirs = Reply::error(Some(id), &RpcError::InvalidParams("x".into()));
        assert_eq!(error_of(&fwd, &theirs), Some((-32602, Side::Backend)));
        fwd.answered(Some(-32000));
        assert_eq!(
            error_of(&fwd, &json(b"{}".to_vec())),
            Some((-32000, Side::Backend))
        );
        fwd.answered(None);
        assert_eq!(error_of(&fwd, &theirs), None);
    }
}
