//! The client transports. Each checks its transport's rules and turns the bytes into one
//! [`crate::request::Request`] for the pipeline; nothing here decides what a request does.

pub mod door;
pub mod hop;
pub mod http;
pub mod legacy;
pub mod modern;

/// The client's `traceparent` header, and its `tracestate` to pass on, when traces are on.
#[inline]
pub(crate) fn trace_of(
    shard: &crate::shard::Shard,
    buf: &[u8],
    head: &ringmux_core::http::RequestHead,
) -> Option<ringmux_core::trace::Incoming> {
    shard.tracer.as_ref()?;
    let h = &head.headers;
    if h.traceparent_repeated {
        return None;
    }
    let parent = ringmux_core::trace::TraceParent::parse(h.traceparent.clone().map(|r| &buf[r])?)?;
    let state = match &h.tracestate {
        Some(r) if !h.tracestate_repeated => {
            ringmux_core::trace::tracestate(&buf[r.clone()]).map(Box::from)
        }
        _ => None,
    };
    Some(ringmux_core::trace::Incoming { parent, state })
}
