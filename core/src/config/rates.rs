//! `rate_limits:`: token buckets per principal, per principal and tool, and per backend;
//! requests in progress and sessions per principal. Enforced per shard (ARCHITECTURE.md,
//! "Rate limits").

use serde::Deserialize;

use super::{err, ConfigError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsFile {
    /// Every MCP request (and GET stream, DELETE) of one principal.
    #[serde(default)]
    pub principal: Option<BucketFile>,
    /// Calls of one tool (`tools/call`, by its name as the client knows it) by one principal.
    #[serde(default)]
    pub tool: Option<BucketFile>,
    /// Requests routed to one backend, whoever sends them.
    #[serde(default)]
    pub backend: Option<BucketFile>,
    /// Requests of one principal in progress at once (0: no limit).
    #[serde(default)]
    pub concurrent_per_principal: u32,
    /// Live sessions of one principal (0: no limit).
    #[serde(default)]
    pub sessions_per_principal: u32,
    /// Principals (and principal-tool pairs) a shard keeps buckets for; past it the idle ones
    /// are forgotten (a forgotten bucket starts full again).
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

fn default_max_keys() -> usize {
    100_000
}

/// A token bucket: `per_second` tokens added each second, at most `burst` kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketFile {
    pub per_second: f64,
    #[serde(default)]
    pub burst: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub per_second: f64,
    pub burst: f64,
}

/// Checked `rate_limits:`.
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub principal: Option<Bucket>,
    pub tool: Option<Bucket>,
    pub backend: Option<Bucket>,
    pub concurrent_per_principal: u32,
    pub sessions_per_principal: u32,
    pub max_keys: usize,
}

impl RateLimitsFile {
    pub fn check(self) -> Result<RateLimits, ConfigError> {
        let bucket = |key: &str, b: Option<BucketFile>| -> Result<Option<Bucket>, ConfigError> {
            let Some(b) = b else { return Ok(None) };
            if !(0.001..=1e9).contains(&b.per_second) {
                return Err(err(
                    format!("rate_limits.{key}.per_second"),
                    "from 0.001 to 1e9",
                ));
            }
            let burst = b.burst.unwrap_or(b.per_second.max(1.0));
            if !(1.0..=1e9).contains(&burst) {
                return Err(err(format!("rate_limits.{key}.burst"), "from 1 to 1e9"));
            }
            Ok(Some(Bucket {
                per_second: b.per_second,
                burst,
            }))
        };
        if self.max_keys == 0 {
            return Err(err("rate_limits.max_keys", "must be greater than 0"));
        }
        Ok(RateLimits {
            principal: bucket("principal", self.principal)?,
            tool: bucket("tool", self.tool)?,
            backend: bucket("backend", self.backend)?,
            concurrent_per_principal: self.concurrent_per_principal,
            sessions_per_principal: self.sessions_per_principal,
            max_keys: self.max_keys,
        })
    }
}
