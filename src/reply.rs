//! What a front writes back to its client for one request: a status, a JSON body, a text
//! body, or an SSE stream. Every layer that answers a client returns one of these.

use ringmux_core::error::{ErrorEra, Fault, HttpReject, RpcError};
use ringmux_core::jsonrpc::{self, Raw};

/// What the connection writes back.
pub enum Reply {
    /// A status with an empty body (202 for notifications, 200 for DELETE).
    Status(u16),
    /// A JSON body; `session` becomes the `Mcp-Session-Id` header.
    Json {
        status: u16,
        body: Vec<u8>,
        session: Option<Box<str>>,
    },
    /// A non-JSON body (metrics, health).
    Text {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// An SSE body: each item is one or more encoded events; the stream ends when the sender
    /// is dropped.
    Stream(futures_channel::mpsc::UnboundedReceiver<Vec<u8>>),
    /// A refusal by authentication: its status, the `WWW-Authenticate` challenge and an OAuth
    /// error body (JSON).
    Challenge {
        status: u16,
        www_authenticate: Box<str>,
        body: Vec<u8>,
    },
    /// A refusal by a rate limit: 429 with `Retry-After` (whole seconds) and a JSON-RPC error
    /// body ([`Reply::limited`]).
    Limited { retry_after_s: u64, body: Vec<u8> },
}

impl Reply {
    /// The refusal of a request by a rate limit: -32029 naming the limit, `data.retryAfterMs`,
    /// carried by a 429 whose `Retry-After` says the same in whole seconds (at least 1).
    pub fn limited(id: Option<Raw<'_>>, limited: &crate::limits::Limited) -> Reply {
        let ms = limited.retry_after.as_millis().max(1) as u64;
        let mut body = Vec::with_capacity(160);
        ringmux_core::jsonrpc::write_error_parts(
            &mut body,
            id,
            ringmux_core::error::code::RATE_LIMITED,
            &format!(
                "Rate limited: too many {}; retry after {ms} ms",
                limited.what
            ),
            Some(&format!("{{\"retryAfterMs\":{ms}}}")),
        );
        Reply::Limited {
            retry_after_s: ms.div_ceil(1000).max(1),
            body,
        }
    }

    /// A JSON-RPC error for a stateful client.
    pub fn error(id: Option<Raw<'_>>, err: &RpcError) -> Reply {
        Reply::error_in(id, err, ErrorEra::Stateful)
    }

    /// A JSON-RPC error for a client of `era`, with that era's status for it.
    pub fn error_in(id: Option<Raw<'_>>, err: &RpcError, era: ErrorEra) -> Reply {
        Reply::error_with_status(id, err, err.status_in(era))
    }

    /// A JSON-RPC error carried by a given HTTP status. Logged by its fault side: an internal
    /// error is ringmux's own and always shown; a client's or a backend's (the backend's is
    /// logged with its name where it happened) only at debug level.
    fn error_with_status(id: Option<Raw<'_>>, err: &RpcError, status: u16) -> Reply {
        match err.fault() {
            Fault::Internal => tracing::error!(code = err.code(), status, "answered: {err}"),
            Fault::Backend | Fault::Client => {
                tracing::debug!(code = err.code(), status, fault = ?err.fault(), "answered: {err}")
            }
        }
        let mut body = Vec::with_capacity(128);
        jsonrpc::write_error(&mut body, id, err);
        Reply::Json {
            status,
            body,
            session: None,
        }
    }

    /// A request refused by its transport's rules (before any JSON-RPC message is read): the
    /// rejection's status, and a JSON-RPC -32600 body (id null) saying `<reason>: <detail>`.
    pub fn reject(kind: HttpReject, detail: &str) -> Reply {
        Reply::http_error(
            kind.status(),
            ringmux_core::error::code::INVALID_REQUEST,
            &format!("{kind}: {detail}"),
        )
    }

    /// An HTTP-level error with a JSON-RPC error body (id null).
    pub fn http_error(status: u16, code: i32, message: &str) -> Reply {
        let mut body = Vec::with_capacity(128);
        jsonrpc::write_error_parts(&mut body, None, code, message, None);
        Reply::Json {
            status,
            body,
            session: None,
        }
    }
}

/// 404 for an unknown or ended session (the client must re-initialize).
pub fn session_not_found() -> Reply {
    Reply::http_error(404, -32001, "Session not found")
}
