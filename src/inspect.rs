//! What the admin API shows of a shard beyond its counters: its backends' eras as it found
//! them, the tools its catalog cache holds, and its most recent errors. The shard keeps the
//! errors in a small ring (reused strings, no allocation once full) and publishes everything
//! once a second into its metrics slot ([`Published`], in [`crate::snapshot`]: a mutex only
//! that copy and the admin API take); a backend's tools are re-read only when its cached
//! catalog changes.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringmux_core::config::Era;

use crate::record::Side;
pub use crate::snapshot::{Info, Published, RecentError, Tool};

/// Recent errors a shard keeps.
pub const RECENT_ERRORS: usize = 32;

/// Longest tool description the admin API shows (longer ones are cut, with `…`).
const DESCRIPTION_MAX: usize = 240;

/// `s` cut to at most `max` bytes at a character boundary, `…` marking a cut.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
        s.push('…');
    }
    s
}

/// Longest tool or prompt name kept with a recent error (longer ones are cut).
const NAME_MAX: usize = 128;

/// A shard's side.
#[derive(Default)]
pub struct Inspect {
    errors: RefCell<VecDeque<RecentError>>,
    /// Per backend: the catalog its published tools were read from (by address).
    read_from: RefCell<Vec<usize>>,
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

    /// Publishes the shard's backends (`pools`), tools (`catalog`: backend `b`'s tools catalog
    /// as the shard caches it, and its age at `now`) and recent errors (once a second).
    pub fn publish(
        &self,
        pools: &[Rc<crate::backend::upstream::Pool>],
        separator: &str,
        catalog: impl Fn(u16, Instant) -> Option<(Rc<ringmux_core::catalog::Catalog>, Duration)>,
        slot: &Published,
    ) {
        // A shard never waits: when the admin API holds the slot, this second is skipped.
        let Ok(mut info) = slot.try_lock() else {
            return;
        };
        let n = pools.len();
        let now = Instant::now();
        let mut read_from = self.read_from.borrow_mut();
        read_from.resize(n, 0);
        info.tools.resize_with(n, Vec::new);
        let mut ages = vec![None; n];
        for (b, pool) in pools.iter().enumerate() {
            let Some((catalog, age)) = catalog(b as u16, now) else {
                continue;
            };
            if let Some(a) = ages.get_mut(b) {
                *a = Some(age.as_millis() as u64);
            }
            let at = Rc::as_ptr(&catalog) as usize;
            if read_from[b] == at {
                continue;
            }
            read_from[b] = at;
            #[derive(serde::Deserialize)]
            struct Described {
                #[serde(default)]
                description: String,
            }
            // Written straight into the published slot, descriptions cut short: the admin
            // API shows a catalog, it does not keep a second copy of it.
            info.tools[b] = (0..catalog.len())
                .map(|i| Tool {
                    backend: pool.name().to_owned(),
                    name: if pool.cfg.prefixed {
                        ringmux_core::names::prefixed(
                            false,
                            pool.name(),
                            separator,
                            &catalog.key(i),
                        )
                    } else {
                        catalog.key(i).into_owned()
                    },
                    description: serde_json::from_slice::<Described>(catalog.item(i))
                        .map(|d| cut(d.description, DESCRIPTION_MAX))
                        .unwrap_or_default(),
                })
                .collect();
        }
        info.eras.clear();
        info.eras.extend(pools.iter().map(|p| match p.era_now() {
            Era::Auto => "unknown",
            Era::Stateful => "stateful",
            Era::Sessionless => "2026-07-28",
        }));
        info.circuit.clear();
        info.circuit
            .extend(pools.iter().map(|p| p.circuit(now) as u8));
        info.catalog_age_ms.clear();
        info.catalog_age_ms
            .extend((0..n).map(|b| ages.get(b).copied().flatten()));
        info.errors.clear();
        info.errors.extend(self.errors.borrow().iter().cloned());
    }
}
