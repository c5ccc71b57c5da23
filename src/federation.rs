//! Per-shard federation state: each backend's cached catalogs (parsed once per fetch) and the
//! merged [`Index`] per list kind, rebuilt only when the set of catalogs changes. Everything
//! here is shard-local: no locks, no shared atomics.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringmux_core::catalog::{Catalog, ListKind};
use ringmux_core::merge::{Index, Source};

use crate::backend::upstream::Pool;

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
    /// Tool safety's generation when it was built (its pins change what is left out).
    safety: u64,
    /// A virtual server's edits of its tool list (`None`: shown as merged).
    pub shaped: Option<crate::routes::Shaped>,
}

impl Merged {
    /// Where the name a client gave leads (a route's new names included).
    pub fn route(&self, name: &str) -> Option<ringmux_core::merge::Route> {
        match &self.shaped {
            None => self.index.route(name),
            Some(s) => s.route(&self.index, name),
        }
    }
}

impl crate::authz::Listing for Merged {
    fn index(&self) -> &Index {
        &self.index
    }

    fn catalogs(&self) -> &[Rc<Catalog>] {
        &self.catalogs
    }

    fn backends(&self) -> &[u16] {
        &self.backends
    }
}

/// (backend | tag, generation) of every cached catalog of a member backend.
fn generations<'a>(
    st: &'a KindState,
    member: &'a impl Fn(u16) -> bool,
    tag: u16,
) -> impl Iterator<Item = (u16, u64)> + 'a {
    st.catalogs.iter().enumerate().filter_map(move |(b, c)| {
        let b = b as u16;
        match c {
            Some(c) if member(b) => Some((b | tag, c.generation)),
            _ => None,
        }
    })
}

/// The key of a resources merge: resource catalogs, then template catalogs (tagged).
fn generations_of<'a>(
    resources: &'a KindState,
    templates: &'a KindState,
    member: &'a impl Fn(u16) -> bool,
) -> impl Iterator<Item = (u16, u64)> + 'a {
    generations(resources, member, 0).chain(generations(templates, member, 0x8000))
}

/// A fetch in progress ([`Federation::begin_fetch`]); ends when dropped, however the fetch
/// ended (cancelled included).
pub struct Fetching<'a> {
    fed: &'a Federation,
    kind: ListKind,
    b: u16,
}

impl Drop for Fetching<'_> {
    fn drop(&mut self) {
        self.fed
            .fetching
            .borrow_mut()
            .retain(|f| *f != (self.kind, self.b));
        for w in self.fed.fetch_waiters.borrow_mut().drain(..) {
            w.wake();
        }
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
    /// (kind, backend) lists being fetched now, and the tasks waiting for one: concurrent
    /// lists of one view fetch a backend's list once, not once per client.
    fetching: RefCell<Vec<(ListKind, u16)>>,
    fetch_waiters: RefCell<Vec<std::task::Waker>>,
    ttl: Duration,
    separator: String,
    fingerprint: u32,
    next_generation: std::cell::Cell<u64>,
    /// The tool shape of the virtual server whose clients this cache serves (`None`: all
    /// tools, as merged).
    shape: Option<Rc<crate::routes::Shape>>,
}

fn slot(kind: ListKind) -> usize {
    kind as usize
}

impl Federation {
    pub fn new(
        backends: usize,
        ttl: Duration,
        separator: String,
        fingerprint: u32,
        shape: Option<Rc<crate::routes::Shape>>,
    ) -> Self {
        let state = || {
            RefCell::new(KindState {
                catalogs: (0..backends).map(|_| None).collect(),
                merged: None,
            })
        };
        Federation {
            kinds: [state(), state(), state(), state()],
            fetching: RefCell::new(Vec::new()),
            fetch_waiters: RefCell::new(Vec::new()),
            ttl,
            separator,
            fingerprint,
            next_generation: std::cell::Cell::new(1),
            shape,
        }
    }

    /// Whether backend `b`'s `kind` catalog must be (re)fetched.
    pub fn is_stale(&self, kind: ListKind, b: u16, now: Instant) -> bool {
        match &self.kinds[slot(kind)].borrow().catalogs[b as usize] {
            Some(c) => now.duration_since(c.fetched) >= self.ttl,
            None => true,
        }
    }

    /// Stores a freshly fetched catalog.
    pub fn store(&self, b: u16, catalog: Rc<Catalog>, now: Instant) {
        let generation = self.next_generation.get();
        self.next_generation.set(generation + 1);
        let kind = catalog.kind;
        self.kinds[slot(kind)].borrow_mut().catalogs[b as usize] = Some(Cached {
            catalog,
            fetched: now,
            generation,
        });
    }

    /// When backend `b`'s cached `kind` catalog was fetched, if there is one.
    pub fn fetched_at(&self, kind: ListKind, b: u16) -> Option<Instant> {
        self.kinds[slot(kind)].borrow().catalogs[b as usize]
            .as_ref()
            .map(|c| c.fetched)
    }

    /// Backend `b`'s cached `kind` catalog, if any.
    pub fn cached(&self, kind: ListKind, b: u16) -> Option<Rc<Catalog>> {
        self.kinds[slot(kind)].borrow().catalogs[b as usize]
            .as_ref()
            .map(|c| c.catalog.clone())
    }

    /// Claims the fetch of backend `b`'s `kind` list: `Some` (a guard that gives it back and
    /// wakes the waiters when dropped) if nobody is fetching it, `None` if someone is.
    pub fn begin_fetch(&self, kind: ListKind, b: u16) -> Option<Fetching<'_>> {
        let mut fetching = self.fetching.borrow_mut();
        if fetching.contains(&(kind, b)) {
            return None;
        }
        fetching.push((kind, b));
        Some(Fetching { fed: self, kind, b })
    }

    /// Waits until nobody fetches backend `b`'s `kind` list.
    pub async fn fetched(&self, kind: ListKind, b: u16) {
        std::future::poll_fn(|cx| {
            if self.fetching.borrow().contains(&(kind, b)) {
                self.fetch_waiters.borrow_mut().push(cx.waker().clone());
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await
    }

    /// Drops backend `b`'s cached list(s) after a `notifications/*/list_changed`.
    pub fn invalidate(&self, b: u16, kinds: &[ListKind]) {
        for kind in kinds {
            self.kinds[slot(*kind)].borrow_mut().catalogs[b as usize] = None;
        }
    }

    /// The merged index over the cached catalogs of the backends `member` accepts (config
    /// order), rebuilt if anything changed since the last build. Backends without a cached
    /// catalog are left out. The check that nothing changed runs on every list and routed call,
    /// so it compares generations in place and allocates nothing.
    pub fn merged(
        &self,
        kind: ListKind,
        member: impl Fn(u16) -> bool,
        pools: &[Rc<Pool>],
        safety: Option<&crate::safety::Safety>,
    ) -> Rc<Merged> {
        // Tool safety decides about tools only.
        let safety = safety.filter(|_| kind == ListKind::Tools);
        let safety_gen = safety.map_or(0, |s| s.refresh());
        let key_of = |st: &KindState, tag: u16| -> Vec<(u16, u64)> {
            generations(st, &member, tag).collect()
        };
        {
            let st = self.kinds[slot(kind)].borrow();
            if let Some(m) = &st.merged {
                let same = if kind == ListKind::Resources {
                    let t = self.kinds[slot(ListKind::ResourceTemplates)].borrow();
                    generations_of(&st, &t, &member).eq(m.key.iter().copied())
                } else {
                    generations(&st, &member, 0).eq(m.key.iter().copied())
                };
                if same && m.safety == safety_gen {
                    return m.clone();
                }
            }
        }
        let mut key = key_of(&self.kinds[slot(kind)].borrow(), 0);
        if kind == ListKind::Resources {
            key.extend(key_of(
                &self.kinds[slot(ListKind::ResourceTemplates)].borrow(),
                0x8000,
            ));
        }
        // Rebuild. This second walk takes the catalogs themselves.
        let collect = |k: ListKind| -> Vec<(u16, Rc<Catalog>)> {
            let st = self.kinds[slot(k)].borrow();
            st.catalogs
                .iter()
                .enumerate()
                .filter(|(b, _)| member(*b as u16))
                .filter_map(|(b, c)| c.as_ref().map(|c| (b as u16, c.catalog.clone())))
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
        let shape = self.shape.as_deref().filter(|_| kind == ListKind::Tools);
        let index = match (safety, shape) {
            (None, None) => {
                Index::build(kind, &sources, &self.separator, &tsources, self.fingerprint)
            }
            _ => {
                let hidden = safety.map(|s| {
                    let named: Vec<(u16, &str, &Rc<Catalog>)> = cats
                        .iter()
                        .map(|(b, c)| (*b, pools[*b as usize].name(), c))
                        .collect();
                    s.hidden(&named)
                });
                // A virtual server shows the tools its patterns name, by their merged names.
                let unshown = |si: usize, i: usize| {
                    shape.is_some_and(|shape| {
                        let src = &sources[si];
                        let key = src.catalog.key(i);
                        if src.prefixed {
                            let name = ringmux_core::names::prefixed(
                                false,
                                src.name,
                                &self.separator,
                                &key,
                            );
                            !shape.shows(&name)
                        } else {
                            !shape.shows(&key)
                        }
                    })
                };
                Index::build_hiding(
                    kind,
                    &sources,
                    &self.separator,
                    &tsources,
                    self.fingerprint,
                    &|si, i| hidden.as_ref().is_some_and(|h| h[si][i]) || unshown(si, i),
                )
            }
        };
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
        let catalogs: Vec<Rc<Catalog>> = cats.iter().map(|(_, c)| c.clone()).collect();
        let shaped = shape.map(|s| s.apply(&index, &catalogs));
        for name in shaped.iter().flat_map(|s| &s.unreadable) {
            tracing::warn!(tool = %name, "a route's override cannot be applied (serde_json cannot read the tool's definition): the tool is withheld on that route");
        }
        let merged = Rc::new(Merged {
            index,
            backends: cats.iter().map(|(b, _)| *b).collect(),
            catalogs,
            key,
            safety: safety_gen,
            shaped,
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
