//! OpenTelemetry traces against the real binary and a small OTLP/HTTP receiver here (it
//! decodes the protobuf with `opentelemetry-proto`): a span per request, a child span per
//! backend exchange, the client's trace context continued (header or `_meta.traceparent`),
//! the backend's `traceparent` naming the exchange's span, and sampling.

#[path = "support/harness.rs"]
mod harness;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};
use prost::Message as _;

const WAIT: Duration = Duration::from_secs(10);

/// An OTLP/HTTP receiver: every span it was sent, and the `service.name`s.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    services: Arc<Mutex<Vec<String>>>,
}

fn receiver() -> Receiver {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let spans = Arc::new(Mutex::new(Vec::new()));
    let services = Arc::new(Mutex::new(Vec::new()));
    let (s, n) = (spans.clone(), services.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let (head_end, len) = loop {
                let read = conn.read(&mut chunk).unwrap();
                assert!(read > 0, "the exporter closed before its request ended");
                buf.extend_from_slice(&chunk[..read]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    assert!(head.starts_with("post /v1/traces http/1.1"), "{head}");
                    assert!(
                        head.contains("content-type: application/x-protobuf"),
                        "{head}"
                    );
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    break (end + 4, len);
                }
            };
            while buf.len() < head_end + len {
                let read = conn.read(&mut chunk).unwrap();
                assert!(read > 0);
                buf.extend_from_slice(&chunk[..read]);
            }
            let req = ExportTraceServiceRequest::decode(&buf[head_end..head_end + len])
                .expect("an OTLP ExportTraceServiceRequest");
            for rs in req.resource_spans {
                for a in rs.resource.unwrap().attributes {
                    if a.key == "service.name" {
                        n.lock()
                            .unwrap()
                            .push(format!("{:?}", a.value.unwrap().value.unwrap()));
                    }
                }
                for ss in rs.scope_spans {
                    s.lock().unwrap().extend(ss.spans);
                }
            }
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
    });
    Receiver {
        url,
        spans,
        services,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| format!("{:?}", a.value.as_ref().unwrap().value.as_ref().unwrap()))
}

/// The spans `rx` holds of `trace`.
fn in_trace(rx: &Receiver, trace: &str) -> Vec<Span> {
    rx.spans
        .lock()
        .unwrap()
        .iter()
        .filter(|s| hex(&s.trace_id) == trace)
        .cloned()
        .collect()
}

/// Waits for a request's two spans in `trace`: (the server span, the backend exchange's).
fn request_and_exchange(rx: &Receiver, trace: &str) -> (Span, Span) {
    let mut spans = Vec::new();
    assert!(
        eventually(WAIT, || {
            spans = in_trace(rx, trace);
            spans.len() >= 2
        }),
        "{spans:?}"
    );
    let of = |kind: SpanKind| {
        spans
            .iter()
            .find(|s| s.kind == kind as i32)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind:?} span in {spans:?}"))
    };
    (of(SpanKind::Server), of(SpanKind::Client))
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[test]
fn spans_continue_the_clients_trace_and_reach_the_backend() {
    let rx = receiver();
    let a = mock("a").flag("--trace").start();
    let b = mock("b").start();
    let gw = gateway()
        .shards(2)
        .backend("a", &a.url)
        .backend("b", &b.url)
        .yaml(&format!(
            "traces:\n  endpoint: {}\n  sample_ratio: 0\n  service_name: edge-gw\n",
            rx.url
        ))
        .start();
    let mut c = client(&gw.url);
    // The header: the request's span is the client's span's child, in its trace.
    let parent = format!("00-{TRACE}-{PARENT}-01");
    let r = c
        .request_with_headers(
            "tools/call",
            json!({"name": "a__traceparent", "arguments": {}}),
            &[("traceparent", &parent)],
        )
        .unwrap();
    let at_backend = text_of(&r).to_owned();
    // The client's tracestate goes on with the context, as it came.
    let state = c
        .request_with_headers(
            "tools/call",
            json!({"name": "a__tracestate", "arguments": {}}),
            &[
                (
                    "traceparent",
                    "00-55555555555555555555555555555555-00f067aa0ba902b7-01",
                ),
                ("tracestate", "vendor1=opaque,rojo=00f067aa0ba902b7"),
            ],
        )
        .unwrap();
    assert_eq!(text_of(&state), "vendor1=opaque,rojo=00f067aa0ba902b7");
    let fields: Vec<&str> = at_backend.split('-').collect();
    assert_eq!(fields.len(), 4, "{at_backend}");
    assert_eq!((fields[0], fields[1], fields[3]), ("00", TRACE, "01"));
    let exchange = fields[2].to_owned();
    let (server, client_span) = request_and_exchange(&rx, TRACE);
    let (server, client_span) = (&server, &client_span);
    assert_eq!(hex(&server.parent_span_id), PARENT);
    assert_eq!(server.name, "tools/call a__traceparent");
    assert_eq!(
        attr(server, "mcp.method.name").unwrap(),
        "StringValue(\"tools/call\")"
    );
    assert_eq!(
        attr(server, "gen_ai.tool.name").unwrap(),
        "StringValue(\"a__traceparent\")"
    );
    assert_eq!(
        attr(server, "ringmux.backend").unwrap(),
        "StringValue(\"a\")"
    );
    assert_eq!(
        hex(&client_span.span_id),
        exchange,
        "the backend's parent is the exchange span"
    );
    assert_eq!(client_span.parent_span_id, server.span_id);
    assert!(client_span.start_time_unix_nano >= server.start_time_unix_nano);
    assert!(client_span.end_time_unix_nano <= server.end_time_unix_nano);
    assert!(server.end_time_unix_nano > server.start_time_unix_nano);
    assert!(rx
        .services
        .lock()
        .unwrap()
        .iter()
        .all(|s| s.contains("edge-gw")));

    // `_meta.traceparent` (MCP's convention) when no header says otherwise; an unknown tool
    // ends its span with the error.
    let meta_trace = "0af7651916cd43dd8448eb211c80319c";
    let r = c
        .request(
            "tools/call",
            json!({"name": "b__nope", "arguments": {}, "_meta": {"traceparent": format!("00-{meta_trace}-b7ad6b7169203331-01")}}),
        )
        .unwrap();
    assert_eq!(error_code(&r), -32602);
    let mut spans = Vec::new();
    assert!(
        eventually(WAIT, || {
            spans = in_trace(&rx, meta_trace);
            !spans.is_empty()
        }),
        "{spans:?}"
    );
    assert_eq!(hex(&spans[0].parent_span_id), "b7ad6b7169203331");
    assert_eq!(
        attr(&spans[0], "rpc.jsonrpc.error_code").unwrap(),
        "IntValue(-32602)"
    );
    assert_eq!(spans[0].status.as_ref().unwrap().code, 2);

    // A 2026-07-28 request (no session: its principal session's) is traced the same way.
    let modern_trace = "22222222222222222222222222222222";
    let r = modern_request(
        &gw.url,
        9,
        "tools/call",
        json!({"name": "a__traceparent", "arguments": {}}),
        json!({}),
        &[("traceparent", &format!("00-{modern_trace}-{PARENT}-01"))],
    );
    let seen = text_of(&r).to_owned();
    assert!(seen.starts_with(&format!("00-{modern_trace}-")), "{seen}");
    let (server, exchange) = request_and_exchange(&rx, modern_trace);
    assert_eq!(hex(&server.parent_span_id), PARENT);
    assert_eq!(hex(&exchange.span_id), seen.split('-').nth(2).unwrap());
    assert_eq!(exchange.parent_span_id, server.span_id);

    // Sampling: sample_ratio 0 traces no request that came without a sampled context, yet
    // the backend still gets a (not sampled) context.
    let before = rx.spans.lock().unwrap().len();
    let r = c
        .request(
            "tools/call",
            json!({"name": "a__traceparent", "arguments": {}}),
        )
        .unwrap();
    let unsampled = text_of(&r).to_owned();
    assert!(
        unsampled.starts_with("00-") && unsampled.ends_with("-00"),
        "{unsampled}"
    );
    let unsampled_trace = unsampled.split('-').nth(1).unwrap().to_owned();
    let exported = metric(&gw.admin, "ringmux_trace_spans_exported_total");
    // Another sampled request after it: once its spans are in, the unsampled one's would be.
    let later = "11111111111111111111111111111111";
    c.request_with_headers(
        "ping",
        json!({}),
        &[("traceparent", &format!("00-{later}-{PARENT}-01"))],
    )
    .unwrap();
    assert!(eventually(WAIT, || !in_trace(&rx, later).is_empty()));
    assert!(in_trace(&rx, &unsampled_trace).is_empty());
    assert!(rx.spans.lock().unwrap().len() > before);
    assert!(metric(&gw.admin, "ringmux_trace_spans_exported_total") > exported);
}

/// A stdio backend has no headers: it gets the exchange's context in `_meta.traceparent`,
/// in place of the client's own there.
#[test]
fn a_stdio_backend_gets_the_context_in_meta() {
    let rx = receiver();
    let gw = gateway()
        .stdio_mock_with("s", &["--trace"], "")
        .yaml(&format!("traces:\n  endpoint: {}\n", rx.url))
        .start();
    let mut c = client(&gw.url);
    let r = c
        .request(
            "tools/call",
            json!({"name": "s__traceparent", "arguments": {},
                   "_meta": {"traceparent": format!("00-{TRACE}-{PARENT}-01"), "progressToken": 5}}),
        )
        .unwrap();
    let seen = text_of(&r).to_owned();
    let fields: Vec<&str> = seen.split('-').collect();
    assert_eq!(fields.len(), 4, "{r}");
    assert_eq!(fields[1], TRACE);
    assert_ne!(
        fields[2], PARENT,
        "the gateway's exchange span, not the client's"
    );
    let mut spans = Vec::new();
    assert!(eventually(WAIT, || {
        spans = rx
            .spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| hex(&s.span_id) == fields[2])
            .cloned()
            .collect();
        !spans.is_empty()
    }));
    assert_eq!(spans[0].kind, SpanKind::Client as i32);
}

/// Without `traces:` nothing is read or sent: the backend gets no `traceparent`.
#[test]
fn without_traces_the_backend_gets_no_context() {
    let a = mock("a").flag("--trace").start();
    let gw = gateway().backend("a", &a.url).start();
    let mut c = client(&gw.url);
    let r = c
        .request_with_headers(
            "tools/call",
            json!({"name": "a__traceparent", "arguments": {}}),
            &[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))],
        )
        .unwrap();
    assert_eq!(text_of(&r), "");
}

/// A bad `traces:` section is refused with its key path.
#[test]
fn traces_settings_are_checked() {
    for (yaml, want) in [
        (
            "traces:\n  endpoint: https://x:4318/v1/traces\n",
            "traces.endpoint",
        ),
        (
            "traces:\n  endpoint: http://127.0.0.1:4318\n  sample_ratio: 2\n",
            "traces.sample_ratio",
        ),
    ] {
        let (ok, err) = check_config(
            "traces",
            &format!("listen: 127.0.0.1:0\n{yaml}backends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\n"),
        );
        assert!(!ok && err.contains(want), "{yaml}: {err}");
    }
}

/// A stateful client's call to a 2026-07-28 backend (its requests brokered into the
/// sessionless era) carries the exchange's context too.
#[test]
fn a_sessionless_backend_gets_the_context_of_a_stateful_clients_call() {
    let rx = receiver();
    let m = mock("m").flag("--modern").flag("--trace").start();
    let gw = gateway()
        .backend_with("m", &m.url, "transport: sessionless")
        .yaml(&format!(
            "traces:\n  endpoint: {}\n  sample_ratio: 1\n",
            rx.url
        ))
        .start();
    let mut c = client(&gw.url);
    let trace = "33333333333333333333333333333333";
    let r = c
        .request_with_headers(
            "tools/call",
            json!({"name": "m__traceparent", "arguments": {}}),
            &[("traceparent", &format!("00-{trace}-{PARENT}-01"))],
        )
        .unwrap();
    let seen = text_of(&r).to_owned();
    assert!(seen.starts_with(&format!("00-{trace}-")), "{r}");
    let (server, exchange) = request_and_exchange(&rx, trace);
    assert_eq!(hex(&exchange.span_id), seen.split('-').nth(2).unwrap());
    assert_eq!(exchange.parent_span_id, server.span_id);
}

/// A call a route's `call_timeout_ms` ends has its exchange span too, ended in error when the
/// bound passed.
#[test]
fn a_route_timeout_ends_the_exchange_span_in_error() {
    let rx = receiver();
    let a = mock("a").start();
    let gw = gateway()
        .backend("a", &a.url)
        .yaml(&format!(
            "traces:\n  endpoint: {}\n  sample_ratio: 1\nroutes:\n  - path: /quick/mcp\n    call_timeout_ms: 200\n",
            rx.url
        ))
        .start();
    let mut c = client(&gw.url.replace("/mcp", "/quick/mcp"));
    let trace = "44444444444444444444444444444444";
    let r = c
        .request_with_headers(
            "tools/call",
            json!({"name": "a__slow", "arguments": {"ms": 5000}}),
            &[("traceparent", &format!("00-{trace}-{PARENT}-01"))],
        )
        .unwrap();
    assert_eq!(error_code(&r), -32603, "{r}");
    let (server, exchange) = request_and_exchange(&rx, trace);
    assert_eq!(exchange.parent_span_id, server.span_id);
    assert_eq!(exchange.status.as_ref().unwrap().code, 2, "{exchange:?}");
    let took = exchange.end_time_unix_nano - exchange.start_time_unix_nano;
    assert!(took >= 200_000_000, "ended at the bound: {took} ns");
    assert_eq!(server.status.as_ref().unwrap().code, 2);
}
