//! The MCP protocol versions ringmux speaks, newest first.

/// Stateful-era versions (initialize + Mcp-Session-Id), newest first. 2024-11-05 clients use the
/// legacy HTTP+SSE transport, which ringmux's front end does not serve yet (ARCHITECTURE.md).
pub const STATEFUL: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The sessionless era (no initialize; `server/discover`).
pub const SESSIONLESS: &str = "2026-07-28";

/// The version ringmux offers when a client asks for one it does not know.
pub const LATEST_STATEFUL: &str = STATEFUL[0];

/// Streamable HTTP: a request without `MCP-Protocol-Version` is taken to be 2025-03-26.
pub const DEFAULT_HTTP: &str = "2025-03-26";

/// The version negotiated for an `initialize` that asked for `requested`: the same when
/// supported, else the latest ringmux speaks (the client then decides whether to go on).
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| STATEFUL.iter().find(|v| **v == r))
        .copied()
        .unwrap_or(LATEST_STATEFUL)
}

/// Whether `v` is a stateful-era (handshake) version.
pub fn is_stateful(v: &[u8]) -> bool {
    STATEFUL.iter().any(|s| s.as_bytes() == v)
}

/// Whether a `MCP-Protocol-Version` header value names a version ringmux accepts.
pub fn is_supported(v: &str) -> bool {
    STATEFUL.contains(&v) || v == SESSIONLESS
}

/// Whether a client of version `v` takes SSE priming events (an id and `retry:` without data):
/// from 2025-11-25 on, the revision that introduced them (SEP-1699). The official TypeScript
/// SDK sends none to older clients, which may read an event without data as a message.
pub fn primes_streams(v: &str) -> bool {
    // Versions are ISO dates: their text order is their time order.
    v >= "2025-11-25"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("1999-01-01")), LATEST_STATEFUL);
        assert_eq!(negotiate(None), LATEST_STATEFUL);
        assert!(is_supported("2025-03-26"));
        assert!(!is_supported("2025-13-01"));
        assert!(primes_streams("2025-11-25") && primes_streams(SESSIONLESS));
        assert!(!primes_streams("2025-06-18") && !primes_streams("2025-03-26"));
        assert!(!primes_streams("2024-11-05"));
    }
}
