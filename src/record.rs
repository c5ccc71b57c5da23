//! What the end of a request is made of, below the shard: the request as the pipeline saw
//! it ([`Finished`]) and whose fault an error is ([`Side`]). [`crate::observe`] records them;
//! the access log, the latency series and the admin API's recent errors read them.

use std::time::Instant;

use ringmux_core::jsonrpc::Raw;

use crate::request::{ClientEra, Principal};

/// Who an error came from (the `side` label, and the access log's).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    /// The request was refused (unreadable, unknown, invalid, denied, limited, cancelled).
    Client,
    /// The backend answered the error.
    Backend,
    /// The backend failed: unreachable, timed out, answered garbage or a bad status.
    Upstream,
    /// ringmux failed.
    Gateway,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Backend => "backend",
            Side::Upstream => "upstream",
            Side::Gateway => "gateway",
        }
    }
}

/// A request as the pipeline saw it, for [`crate::observe::finish`].
pub struct Finished<'a> {
    pub method: &'static str,
    pub route: u8,
    /// `params.name` (a tool's or a prompt's, as the client wrote it).
    pub name: Option<Raw<'a>>,
    /// `params.uri`.
    pub uri: Option<Raw<'a>>,
    pub principal: &'a Principal,
    pub session: Option<&'a str>,
    pub era: ClientEra,
    pub bytes_in: usize,
    pub started: Instant,
}

impl<'a> Finished<'a> {
    /// Request `msg` (the method table's `method`, from `body`) starting now.
    pub fn begin(
        method: &'static str,
        msg: &ringmux_core::jsonrpc::Message<'a>,
        body: &[u8],
        principal: &'a Principal,
        session: Option<&'a str>,
        era: ClientEra,
        route: u8,
    ) -> Finished<'a> {
        Finished {
            method,
            route,
            name: msg.params.name,
            uri: msg.params.uri,
            principal,
            session,
            era,
            bytes_in: body.len(),
            started: Instant::now(),
        }
    }
}
