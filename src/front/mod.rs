//! The client transports. Each checks its transport's rules and turns the bytes into one
//! [`crate::request::Request`] for the pipeline; nothing here decides what a request does.

pub mod door;
pub mod hop;
pub mod http;
pub mod legacy;
pub mod modern;

/// The client's `traceparent` header, when traces are on.
#[inline]
pub(crate) fn trace_of(
    shard: &crate::shard::Shard,
    buf: &[u8],
    head: &ringmux_core::http::RequestHead,
) -> Option<ringmux_core::trace::TraceParent> {
    shard.tracer.as_ref()?;
    if head.headers.traceparent_repeated {
        return None;
    }
    ringmux_core::trace::TraceParent::parse(head.headers.traceparent.clone().map(|r| &buf[r])?)
}
