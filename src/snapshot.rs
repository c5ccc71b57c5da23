//! What a shard publishes of itself for the admin API, once a second (its own
//! [`crate::inspect::Inspect`] writes it): plain data, below the metrics that hold it.

use std::sync::Mutex;

/// One recent error.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RecentError {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub method: &'static str,
    pub route: String,
    pub backend: String,
    /// The name the client wrote (a tool's or prompt's), or the URI; empty if none.
    pub name: String,
    pub code: i64,
    pub side: &'static str,
}

/// A tool in a shard's catalog cache, as clients see it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Tool {
    pub backend: String,
    pub name: String,
    pub description: String,
}

/// What a shard published last.
#[derive(Default, Clone)]
pub struct Info {
    /// Per backend (config order): its era as this shard knows it.
    pub eras: Vec<&'static str>,
    /// Per backend: its circuit's state (0 closed, 1 open, 2 half-open).
    pub circuit: Vec<u8>,
    /// Per backend: the age of the freshest tools catalog this shard holds, in milliseconds
    /// (`None`: none held).
    pub catalog_age_ms: Vec<Option<u64>>,
    /// Per backend: its tools (empty until this shard listed them).
    pub tools: Vec<Vec<Tool>>,
    pub errors: Vec<RecentError>,
}

pub type Published = Mutex<Info>;

/// The gateway's state as the admin listener reports it (never read on the request path).
#[derive(Debug, Default)]
pub struct Status {
    /// Shards running (each counts itself once its state is built).
    pub shards_up: std::sync::atomic::AtomicUsize,
    /// A graceful shutdown has begun.
    pub draining: std::sync::atomic::AtomicBool,
    /// Reloads applied and refused; the config generation running (0: the one at start).
    pub reloads: std::sync::atomic::AtomicU64,
    pub reloads_rejected: std::sync::atomic::AtomicU64,
    pub generation: std::sync::atomic::AtomicU64,
    /// The backends as the admin API shows them, by index (retired ones included, so that
    /// indices match the shards' published data).
    pub backends: std::sync::Mutex<std::sync::Arc<[BackendRow]>>,
}

/// A backend as the admin API describes it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BackendRow {
    pub name: String,
    /// Removed by a reload (its index stays taken until a restart): not shown.
    #[serde(skip)]
    pub retired: bool,
    /// `streamable-http`, `legacy-sse` or `stdio`.
    pub transport: &'static str,
    /// Its URL, or its command.
    pub target: String,
}

impl BackendRow {
    pub fn of(b: &ringmux_core::config::Backend) -> BackendRow {
        let (transport, target) = match &b.stdio {
            Some(cmd) if b.legacy_sse => ("legacy-sse", cmd.command.clone()),
            Some(cmd) => ("stdio", cmd.command.clone()),
            None if b.legacy_sse => ("legacy-sse", b.url.clone()),
            None => ("streamable-http", b.url.clone()),
        };
        BackendRow {
            retired: b.retired,
            name: b.name.clone(),
            transport,
            target,
        }
    }
}
