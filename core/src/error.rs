//! Error kinds on the request path, classified by which side is at fault, and the one mapping
//! from a kind to its JSON-RPC code and HTTP status.

use std::fmt;

/// JSON-RPC 2.0 and MCP error codes ringmux emits.
pub mod code {
    pub const PARSE_ERROR: i32 = -32700;
    pub const INVALID_REQUEST: i32 = -32600;
    pub const METHOD_NOT_FOUND: i32 = -32601;
    pub const INVALID_PARAMS: i32 = -32602;
    pub const INTERNAL_ERROR: i32 = -32603;
    /// MCP: resource not found (`resources/read` of an unknown URI).
    pub const RESOURCE_NOT_FOUND: i32 = -32002;
    /// The client cancelled the request (`notifications/cancelled`). MCP defines no code for
    /// this; the client ignores the answer anyway. -32800 is the LSP's "request cancelled".
    pub const REQUEST_CANCELLED: i32 = -32800;
    /// A rate limit refused the request (HTTP 429 with `Retry-After`; `data.retryAfterMs`).
    /// MCP defines no code for this; ringmux's is in JSON-RPC's implementation-defined range.
    pub const RATE_LIMITED: i32 = -32029;
}

/// Who caused a failure: decides logging level and whether a retry could help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client sent something wrong; retrying the same bytes fails again.
    Client,
    /// A backend is down, slow, or answered garbage; another try may succeed.
    Backend,
    /// A bug or resource exhaustion inside ringmux.
    Internal,
}

/// An error that becomes a JSON-RPC error response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("Parse error: {0}")]
    Parse(String),
    #[error("Invalid Request: {0}")]
    InvalidRequest(String),
    #[error("Method not found: {0}")]
    MethodNotFound(String),
    #[error("Invalid params: {0}")]
    InvalidParams(String),
    #[error("Resource not found: {0}")]
    ResourceNotFound(String),
    #[error("backend {backend}: {reason}")]
    Backend { backend: String, reason: String },
    #[error("Internal error: {0}")]
    Internal(String),
    #[error("Request cancelled by the client")]
    Cancelled,
}

impl RpcError {
    pub fn fault(&self) -> Fault {
        match self {
            RpcError::Parse(_)
            | RpcError::InvalidRequest(_)
            | RpcError::MethodNotFound(_)
            | RpcError::InvalidParams(_)
            | RpcError::ResourceNotFound(_)
            | RpcError::Cancelled => Fault::Client,
            RpcError::Backend { .. } => Fault::Backend,
            RpcError::Internal(_) => Fault::Internal,
        }
    }

    /// The JSON-RPC error code.
    pub fn code(&self) -> i32 {
        match self {
            RpcError::Parse(_) => code::PARSE_ERROR,
            RpcError::InvalidRequest(_) => code::INVALID_REQUEST,
            RpcError::MethodNotFound(_) => code::METHOD_NOT_FOUND,
            RpcError::InvalidParams(_) => code::INVALID_PARAMS,
            RpcError::ResourceNotFound(_) => code::RESOURCE_NOT_FOUND,
            RpcError::Cancelled => code::REQUEST_CANCELLED,
            RpcError::Backend { .. } | RpcError::Internal(_) => code::INTERNAL_ERROR,
        }
    }

    /// The HTTP status of the response that carries this error to a client of `era`: the one
    /// mapping from an error to its status. For a stateful client, a message that could not
    /// be read as a JSON-RPC request at all is a bad HTTP request, and an error about a
    /// well-formed request is an ordinary JSON-RPC response (200).
    pub fn status_in(&self, era: ErrorEra) -> u16 {
        match era {
            ErrorEra::Stateful => match self {
                RpcError::Parse(_) | RpcError::InvalidRequest(_) => 400,
                _ => 200,
            },
            ErrorEra::Sessionless => sessionless_status(self.code() as i64),
        }
    }

    /// Whether the same request may succeed if sent again.
    pub fn retryable(&self) -> bool {
        self.fault() == Fault::Backend
    }
}

/// The protocol era of the client an error goes to: it decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorEra {
    /// 2024-11-05 … 2025-11-25: errors about well-formed requests travel in 200 responses.
    Stateful,
    /// 2026-07-28: each code has its status ([`sessionless_status`]).
    Sessionless,
}

/// The HTTP status of a 2026-07-28 error response, by its JSON-RPC code (also for the errors
/// a sessionless backend answers, which carry their code only).
pub fn sessionless_status(code: i64) -> u16 {
    match code {
        -32700 | -32600 | -32602 | -32022..=-32020 => 400,
        -32601 => 404,
        _ => 200,
    }
}

/// HTTP-level rejections that happen before any JSON-RPC message exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpReject {
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
    HeadersTooLarge,
    RequestTimeout,
    NotImplemented,
}

impl HttpReject {
    pub fn status(self) -> u16 {
        match self {
            HttpReject::BadRequest => 400,
            HttpReject::Forbidden => 403,
            HttpReject::NotFound => 404,
            HttpReject::MethodNotAllowed => 405,
            HttpReject::NotAcceptable => 406,
            HttpReject::RequestTimeout => 408,
            HttpReject::PayloadTooLarge => 413,
            HttpReject::UnsupportedMediaType => 415,
            HttpReject::HeadersTooLarge => 431,
            HttpReject::NotImplemented => 501,
        }
    }
}

impl fmt::Display for HttpReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::http::reason(self.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_status_per_error_and_era() {
        let cases = [
            (RpcError::Parse("x".into()), 400, 400),
            (RpcError::InvalidRequest("x".into()), 400, 400),
            (RpcError::InvalidParams("x".into()), 200, 400),
            (RpcError::MethodNotFound("x".into()), 200, 404),
            (RpcError::ResourceNotFound("x".into()), 200, 200),
            (RpcError::Internal("x".into()), 200, 200),
            (RpcError::Cancelled, 200, 200),
        ];
        for (e, stateful, sessionless) in cases {
            assert_eq!(e.status_in(ErrorEra::Stateful), stateful, "{e}");
            assert_eq!(e.status_in(ErrorEra::Sessionless), sessionless, "{e}");
        }
        let backend = RpcError::Backend {
            backend: "b".into(),
            reason: "down".into(),
        };
        assert!(backend.retryable() && backend.fault() == Fault::Backend);
        assert!(!RpcError::InvalidParams("x".into()).retryable());
        assert_eq!(sessionless_status(-32021), 400);
    }
}
