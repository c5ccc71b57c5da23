//! Per-shard federation state: each backend's cached catalogs (parsed once per fetch) and the
//! merged [`Index`] per list kind, rebuilt only when the set of catalogs changes. Everything
//! here is shard-local: no locks, no shared atomics.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringmux_core::catalog::{Catalog, ListKind};
use ringmux_core::merge::{Index, Source};

use crate::upstream::Pool;

struct Cached {
    catalog: Rc<Catalog>,
    fetched: Instant,
    generation: u64,
}

/// A merged index together with the catalogs it was built from (pages are written from them).
pub struct Merged {
    pub index: Index,
    pub catalogs: Vec<Rc<Catalog>>,
    /// Backend index of each source.
    pub backends: Vec<u16>,
    /// (backend, generation) of every catalog that went in, templates included.
    key: Vec<(u16, u64)>,
}

impl Merged {
    pub fn catalog_refs(&self) -> Vec<&Catalog> {
        self.catalogs.iter().map(|c| c.as_ref()).collect()
    }
}

/// One list kind's state.
#[derive(Default)]
struct KindState {
    /// Per backend (config index).
    catalogs: Vec<Option<Cached>>,
    merged: Option<Rc<Merged>>,
}

pub struct Federation {
    kinds: [RefCell<KindState>; 4],
    ttl: Duration,
    separator: String,
    fingerprint: u32,
    next_generation: std::cell::Cell<u64>,
}

fn slot(kind: ListKind) -> usize {
    kind as usize
}

impl Federation {
    pub fn new(backends: usize, ttl: Duration, separator: String, fingerprint: u32) -> Self {
        let state = || {
            RefCell::new(KindState {
                catalogs: (0..backends).map(|_| None).collect(),
                merged: None,
            })
        };
        Federation {
            kinds: [state(), state(), state(), state()],
            ttl,
            separator,
            fingerprint,
            next_generation: std::cell::Cell::new(1),
        }
    }

    /// Whether backend `b`'s `kind` catalog must be (re)fetched.
    pub fn is_stale(&self, kind: ListKind, b: u16, now: Instant) -> bool {
        match &self.kinds[slot(kind)].borrow().catalogs[b as usize] {
            Some(c) => now.duration_since(c.fetched) >= self.ttl,
            None => true,
        }
    }

    pub fn has(&self, kind: ListKind, b: u16) -> bool {
        self.kinds[slot(kind)].borrow().catalogs[b as usize].is_some()
    }

    /// Stores a freshly fetched catalog.
    pub fn store(&self, b: u16, catalog: Catalog, now: Instant) {
        let generation = self.next_generation.get();
        self.next_generation.set(generation + 1);
        let kind = catalog.kind;
        self.kinds[slot(kind)].borrow_mut().catalogs[b as usize] = Some(Cached {
            catalog: Rc::new(catalog),
            fetched: now,
            generation,
        });
    }

    /// Drops backend `b`'s cached list(s) after a `notifications/*/list_changed`.
    pub fn invalidate(&self, b: u16, kinds: &[ListKind]) {
        for kind in kinds {
            self.kinds[slot(*kind)].borrow_mut().catalogs[b as usize] = None;
        }
    }

    /// The merged index over the cached catalogs of `backends` (config order), rebuilt if
    /// anything changed since the last build. Backends without a cached catalog are left out.
    pub fn merged(&self, kind: ListKind, backends: &[u16], pools: &[Rc<Pool>]) -> Rc<Merged> {
        let want = |k: ListKind| -> Vec<(u16, u64)> {
            let st = self.kinds[slot(k)].borrow();
            backends
                .iter()
                .filter_map(|b| {
                    st.catalogs[*b as usize]
                        .as_ref()
                        .map(|c| (*b, c.generation))
                })
                .collect()
        };
        let mut key = want(kind);
        if kind == ListKind::Resources {
            key.extend(
                want(ListKind::ResourceTemplates)
                    .into_iter()
                    .map(|(b, g)| (b | 0x8000, g)),
            );
        }
        if let Some(m) = &self.kinds[slot(kind)].borrow().merged {
            if m.key == key {
                return m.clone();
            }
        }
        // Rebuild. This second walk takes the catalogs themselves; the key walk above runs on
        // every list and routed call, so it only reads generations.
        let collect = |k: ListKind| -> Vec<(u16, Rc<Catalog>)> {
            let st = self.kinds[slot(k)].borrow();
            backends
                .iter()
                .filter_map(|b| {
                    st.catalogs[*b as usize]
                        .as_ref()
                        .map(|c| (*b, c.catalog.clone()))
                })
                .collect()
        };
        let cats = collect(kind);
        let tmpl = if kind == ListKind::Resources {
            collect(ListKind::ResourceTemplates)
        } else {
            Vec::new()
        };
        let sources = sources_of(&cats, pools);
        let tsources = sources_of(&tmpl, pools);
        let index = Index::build(kind, &sources, &self.separator, &tsources, self.fingerprint);
        for c in &index.collisions {
            tracing::warn!(
                list = kind.method(),
                name = %c.merged,
                kept = %pools[c.kept as usize].name(),
                hidden = %pools[c.hidden as usize].name(),
                "name collision: the second backend's item is hidden"
            );
        }
        for (b, name) in &index.invalid {
            tracing::warn!(backend = %pools[*b as usize].name(), name = %name, "merged tool name breaks the spec's tool-name rule (1-128 of A-Za-z0-9_-.); hidden");
        }
        let merged = Rc::new(Merged {
            index,
            backends: cats.iter().map(|(b, _)| *b).collect(),
            catalogs: cats.iter().map(|(_, c)| c.clone()).collect(),
            key,
        });
        self.kinds[slot(kind)].borrow_mut().merged = Some(merged.clone());
        merged
    }
}

/// Merge inputs for cached catalogs, with each backend's name and prefix setting.
fn sources_of<'a>(cats: &'a [(u16, Rc<Catalog>)], pools: &'a [Rc<Pool>]) -> Vec<Source<'a>> {
    cats.iter()
        .map(|(b, c)| Source {
            backend: *b,
            name: pools[*b as usize].name(),
            prefixed: pools[*b as usize].cfg.prefixed,
            catalog: c,
        })
        .collect()
}
