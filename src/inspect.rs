//! What the admin API shows of a shard beyond its counters: its backends' eras as it found
//! them, the tools its catalog cache holds, and its most recent errors. The shard keeps the
//! errors in a small ring (reused strings, no allocation once full) and publishes everything
//! once a second into its metrics slot ([`Published`], a mutex only that copy and the admin
//! API take); a backend's tools are re-read only when its cached catalog changes.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Mutex;

use ringmux_core::catalog::ListKind;
use ringmux_core::config::Era;

use crate::observe::Side;

/// Recent errors a shard keeps.
pub const RECENT_ERRORS: usize = 32;

/// Longest tool or prompt name kept with a recent error (longer ones are cut).
const NAME_MAX: usize = 128;

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

/// A shard's side.
#[derive(Default)]
pub struct Inspect {
    errors: RefCell<VecDeque<RecentError>>,
    /// Per backend: the catalog its tools were read from (by address).
    read_from: RefCell<Vec<usize>>,
    tools: RefCell<Vec<Vec<Tool>>>,
}

impl Inspect {
    /// Keeps an error (the oldest of [`RECENT_ERRORS`] gives its strings back for reuse).
    #[allow(clippy::too_many_arguments)]
    pub fn error(
        &self,
        method: &'static str,
        route: &str,
        backend: &str,
        name: &[u8],
        code: i64,
        side: Side,
    ) {
        let mut errors = self.errors.borrow_mut();
        let mut e = if errors.len() == RECENT_ERRORS {
            errors.pop_front().expect("full")
        } else {
            RecentError {
                time_ms: 0,
                method,
                route: String::new(),
                backend: String::new(),
                name: String::new(),
                code,
                side: side.as_str(),
            }
        };
        e.time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        e.method = method;
        e.code = code;
        e.side = side.as_str();
        e.route.clear();
        e.route.push_str(route);
        e.backend.clear();
        e.backend.push_str(backend);
        e.name.clear();
        // A JSON string literal: shown without its quotes (escapes as written).
        let name = name
            .strip_prefix(b"\"")
            .and_then(|n| n.strip_suffix(b"\""))
            .unwrap_or(name);
        let mut cut = name.len().min(NAME_MAX);
        while cut > 0 && std::str::from_utf8(&name[..cut]).is_err() {
            cut -= 1;
        }
        e.name
            .push_str(std::str::from_utf8(&name[..cut]).unwrap_or_default());
        errors.push_back(e);
    }

    /// Publishes the shard's backends, tools and recent errors (once a second).
    pub fn publish(&self, shard: &crate::shard::Shard, slot: &Published) {
        // A shard never waits: when the admin API holds the slot, this second is skipped.
        let Ok(mut info) = slot.try_lock() else {
            return;
        };
        let n = shard.pools.len();
        let mut read_from = self.read_from.borrow_mut();
        let mut tools = self.tools.borrow_mut();
        read_from.resize(n, 0);
        tools.resize_with(n, Vec::new);
        let mut changed = false;
        for (b, pool) in shard.pools.iter().enumerate() {
            let Some(catalog) = shard.cached_catalog(ListKind::Tools, b as u16) else {
                continue;
            };
            let at = Rc::as_ptr(&catalog) as usize;
            if read_from[b] == at {
                continue;
            }
            read_from[b] = at;
            changed = true;
            #[derive(serde::Deserialize)]
            struct Described {
                #[serde(default)]
                description: String,
            }
            tools[b] = (0..catalog.len())
                .map(|i| Tool {
                    backend: pool.name().to_owned(),
                    name: if pool.cfg.prefixed {
                        ringmux_core::names::prefixed(
                            false,
                            pool.name(),
                            &shard.cfg.separator,
                            &catalog.key(i),
                        )
                    } else {
                        catalog.key(i).into_owned()
                    },
                    description: serde_json::from_slice::<Described>(catalog.item(i))
                        .map(|d| d.description)
                        .unwrap_or_default(),
                })
                .collect();
        }
        info.eras.clear();
        info.eras
            .extend(shard.pools.iter().map(|p| match p.era_now() {
                Era::Auto => "unknown",
                Era::Stateful => "stateful",
                Era::Sessionless => "2026-07-28",
            }));
        if changed || info.tools.len() != n {
            info.tools.clone_from(&tools);
        }
        let now = std::time::Instant::now();
        info.circuit.clear();
        info.circuit
            .extend(shard.pools.iter().map(|p| p.circuit(now) as u8));
        info.catalog_age_ms.clear();
        info.catalog_age_ms.extend((0..n).map(|b| {
            shard
                .catalog_age(ListKind::Tools, b as u16, now)
                .map(|a| a.as_millis() as u64)
        }));
        info.errors.clear();
        info.errors.extend(self.errors.borrow().iter().cloned());
    }
}
