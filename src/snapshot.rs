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
